"""The web page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium; nothing is downloaded): type a prompt, press generate, wait for the player, check
that its source plays for the asked duration, and take a screenshot (into the test's temp
folder; `AUDIOX_TURBO_SCREENSHOT=docs/web_page.png` refreshes the README's picture)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from audiox_turbo.pipeline import AudioXTurbo
from audiox_turbo.serve.app import create_app
from serving import running_server

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,1300",
    "--autoplay-policy=no-user-gesture-required",
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian chromium + driver"),
]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory(prefix="audiox-chromium-") as profile:
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def test_generate_from_the_page(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app = create_app(AudioXTurbo.from_preset("tiny"))
    with running_server(app) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: "model: tiny" in b.find_element(By.ID, "model").text)
        assert "untrained" in browser.find_element(By.ID, "notice").text
        prompt = browser.find_element(By.ID, "prompt")
        prompt.send_keys("The sound of a bell ringing, clearly audible.")
        duration = browser.find_element(By.ID, "duration")
        duration.clear()
        duration.send_keys("2.5")
        browser.find_element(By.ID, "generate").click()
        wait.until(lambda b: b.find_element(By.ID, "result").is_displayed())
        player = browser.find_element(By.ID, "player")
        wait.until(lambda b: b.execute_script("return arguments[0].readyState", player) >= 1)
        source = player.get_attribute("src")
        seconds = browser.execute_script("return arguments[0].duration", player)
        error = browser.execute_script("return arguments[0].error", player)
        spectrogram = browser.find_element(By.ID, "spectrogram")
        width = browser.execute_script("return arguments[0].naturalWidth", spectrogram)
        meta = browser.find_element(By.ID, "result-meta").text
        download = browser.find_element(By.ID, "download").get_attribute("download")
        assert browser.find_element(By.ID, "error").text == ""
        screenshot = Path(os.environ.get("AUDIOX_TURBO_SCREENSHOT", tmp_path / "page.png"))
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 10_000
    assert source.startswith("blob:") and error is None
    assert abs(seconds - 2.5) < 0.01, seconds
    assert width > 100 and "2.5 s" in meta and "seed 0" in meta
    assert download == "audiox_0.wav"
