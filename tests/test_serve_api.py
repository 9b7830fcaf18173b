"""The HTTP API on the tiny preset: every endpoint, every error path as a 4xx JSON error,
dynamic batching (two concurrent requests in one batch, each as if alone), queue limits."""

from __future__ import annotations

import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import av
import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from audiox_turbo.pipeline import AudioXTurbo
from audiox_turbo.serve.app import create_app
from audiox_turbo.serve.encoding import encode_output
from audiox_turbo.serve.schema import ServeLimits
from serving import metric, running_server
from test_cli import make_video

PCM16_STEP = 1 / 32768


@pytest.fixture(scope="module")
def pipe():
    return AudioXTurbo.from_preset("tiny")


@pytest.fixture(scope="module")
def client(pipe):
    with TestClient(create_app(pipe, ServeLimits(max_upload_bytes=200_000, max_wait_ms=1))) as c:
        yield c


def decode(data: bytes) -> tuple[np.ndarray, int]:
    wav, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return wav, rate


def as_served(wav) -> np.ndarray:
    """A waveform (1, S) as the server's 16-bit WAV gives it back: (S,)."""
    return decode(encode_output(wav, 16000, "wav"))[0][:, 0]


def test_health_models_page_and_docs(client):
    assert client.get("/health").json() == {"status": "ok", "queue_depth": 0}
    model = client.get("/v1/models").json()["data"][0]
    assert model["id"] == "tiny" and model["sample_rate"] == 16000 and model["trained"] is False
    page = client.get("/")
    assert page.status_code == 200
    for element in ('id="prompt"', 'id="generate"', 'id="player"', 'id="spectrogram"'):
        assert element in page.text
    assert client.get("/docs").status_code == 200
    body = client.get("/openapi.json").json()["paths"]["/v1/generate"]["post"]["requestBody"]
    assert set(body["content"]) == {"application/json", "multipart/form-data"}
    assert "duration" in body["content"]["application/json"]["schema"]["properties"]


@pytest.mark.parametrize(("fmt", "kind"), [("wav", "audio/wav"), ("flac", "audio/flac")])
def test_generate_returns_a_playable_file(client, pipe, fmt, kind):
    request = {"text": "a bell", "duration": 0.75, "seed": 4, "steps": 4, "format": fmt}
    r = client.post("/v1/generate", json=request)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == kind and r.headers["x-seed"] == "4"
    wav, rate = decode(r.content)
    assert rate == 16000 and wav.shape == (12000, 1)
    direct = as_served(pipe(text="a bell", duration=0.75, seed=4, steps=4).waveforms[0])
    assert np.abs(wav[:, 0] - direct).max() <= PCM16_STEP


def test_json_response_has_base64_outputs_and_spectrograms(client):
    request = {
        "text": "rain",
        "duration": 0.5,
        "num_outputs": 2,
        "response": "json",
        "format": "mp3",
    }
    body = client.post("/v1/generate", json=request).json()
    assert body["format"] == "mp3" and body["content_type"] == "audio/mpeg"
    assert len(body["outputs"]) == 2
    for out in body["outputs"]:
        with av.open(io.BytesIO(base64.b64decode(out["data"]))) as container:
            assert container.streams.audio[0].codec_context.name.startswith("mp3")
        assert base64.b64decode(out["spectrogram_png"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_multipart_audio_and_video_prompts(client, pipe, tmp_path):
    clip = tmp_path / "take.wav"
    sf.write(clip, 0.3 * np.sin(np.linspace(0, 900, 16000)), 16000)
    data = {"duration": "1", "audio_mode": "inpaint", "span": "0.2,0.5", "seed": "1"}
    files = {"audio": ("take.wav", clip.read_bytes(), "audio/wav")}
    r = client.post("/v1/generate", data=data, files=files)
    assert r.status_code == 200, r.text
    wav, _ = decode(r.content)
    direct = pipe(audio=str(clip), audio_mode="inpaint", span=(0.2, 0.5), duration=1, seed=1)
    assert wav.shape == (16000, 1)
    assert np.abs(wav[:, 0] - as_served(direct.waveforms[0])).max() <= PCM16_STEP
    video = tmp_path / "ball.mp4"
    make_video(video, seconds=1.0)
    files = {"video": ("ball.mp4", video.read_bytes(), "video/mp4")}
    r = client.post("/v1/generate", data={"text": "a ball", "steps": "2"}, files=files)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4", r.text
    with av.open(io.BytesIO(r.content)) as container:
        assert container.streams.video and container.streams.audio


CORRUPT_MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(200))


@pytest.mark.parametrize(
    ("case", "status", "field"),
    [
        ("bad_json", 400, "body"),
        ("not_an_object", 422, "body"),
        ("unknown_field", 422, "durations"),
        ("unknown_method", 422, "method"),
        ("unknown_format", 422, "format"),
        ("wrong_type", 422, "steps"),
        ("duration_zero", 422, "duration"),
        ("duration_too_long", 422, "duration"),
        ("steps_over_limit", 422, "steps"),
        ("num_outputs_over_limit", 422, "num_outputs"),
        ("cfg_with_student", 422, "cfg"),
        ("mp4_without_video", 422, "format"),
        ("oversized_upload", 413, "body"),
        ("corrupt_video", 422, "video"),
        ("corrupt_audio", 422, "audio"),
        ("unknown_upload", 422, "picture"),
        ("wrong_content_type", 415, "content-type"),
    ],
)
def test_bad_requests_are_4xx_json_errors(client, case, status, field):
    post = {
        "bad_json": dict(content=b'{"text": "a",', headers={"content-type": "application/json"}),
        "not_an_object": dict(json=["a bell"]),
        "unknown_field": dict(json={"durations": 2}),
        "unknown_method": dict(json={"method": "rk4"}),
        "unknown_format": dict(json={"format": "ogg"}),
        "wrong_type": dict(json={"steps": "many"}),
        "duration_zero": dict(json={"duration": 0}),
        "duration_too_long": dict(json={"duration": 31}),
        "steps_over_limit": dict(json={"steps": 5000}),
        "num_outputs_over_limit": dict(json={"num_outputs": 9, "response": "json"}),
        "cfg_with_student": dict(json={"method": "student", "cfg": 3}),
        "mp4_without_video": dict(json={"format": "mp4"}),
        "oversized_upload": dict(files={"audio": ("big.wav", b"\0" * 300_000)}),
        "corrupt_video": dict(files={"video": ("x.mp4", CORRUPT_MP4)}, data={"duration": "1"}),
        "corrupt_audio": dict(files={"audio": ("x.wav", b"RIFF not really")}),
        "unknown_upload": dict(files={"picture": ("x.png", b"png")}),
        "wrong_content_type": dict(content=b"text=a", headers={"content-type": "text/plain"}),
    }[case]
    r = client.post("/v1/generate", **post)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["field"] == field and error["message"]
    assert "Traceback" not in r.text


def test_unknown_paths_and_methods_are_json_errors(client):
    assert client.get("/v2/nothing").json()["error"]["message"] == "Not Found"
    assert client.get("/v1/generate").status_code == 405
    assert client.get("/v1/progress/unknown").status_code == 404


def test_two_concurrent_requests_share_a_batch_and_match_alone(pipe):
    app = create_app(pipe, ServeLimits(max_batch=2, max_wait_ms=3000))
    requests = [
        {"text": "a dog barking", "duration": 0.6, "seed": 11, "method": "student"},
        {"text": "a siren far away", "duration": 0.6, "seed": 12, "method": "student"},
    ]
    with running_server(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        with ThreadPoolExecutor(2) as pool:
            together = list(pool.map(lambda r: http.post("/v1/generate", json=r), requests))
        text = http.get("/metrics").text
    assert [r.status_code for r in together] == [200, 200]
    assert metric(text, "audiox_batch_size_count") == 1
    assert metric(text, "audiox_batch_size_sum") == 2
    assert metric(text, 'audiox_batch_size_bucket{le="1"}') == 0
    assert metric(text, "audiox_nfe_total") == 8
    for request, response in zip(requests, together, strict=True):
        alone = as_served(pipe(**request).waveforms[0])
        wav, _ = decode(response.content)
        assert np.abs(wav[:, 0] - alone).max() <= PCM16_STEP
    first, second = (decode(r.content)[0] for r in together)
    assert np.abs(first - second).max() > 0.01


def test_full_queue_is_503_with_retry_after_and_timeouts_are_503(pipe, monkeypatch):
    gate = threading.Event()
    real = pipe.generate_batch

    def held(requests, callback=None):
        gate.wait(30)
        return real(requests, callback)

    monkeypatch.setattr(pipe, "generate_batch", held)
    app = create_app(pipe, ServeLimits(max_queue=1, max_batch=1, max_wait_ms=0, timeout_s=20))
    request = {"text": "a", "duration": 0.3, "steps": 1}
    with (
        running_server(app) as url,
        httpx.Client(base_url=url, timeout=60) as http,
        ThreadPoolExecutor(2) as pool,
    ):
        running = pool.submit(http.post, "/v1/generate", json=request)
        while app.state.queue.depth() or not running.running():
            time.sleep(0.01)
        time.sleep(0.2)  # the worker has taken the first request
        queued = pool.submit(http.post, "/v1/generate", json=request)
        while app.state.queue.depth() < 1:
            time.sleep(0.01)
        busy = http.post("/v1/generate", json=request)
        gate.set()
        assert running.result().status_code == queued.result().status_code == 200
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert "busy" in busy.json()["error"]["message"]
    gate.clear()
    app = create_app(pipe, ServeLimits(max_wait_ms=0, timeout_s=0.3))
    with TestClient(app) as c:
        slow = c.post("/v1/generate", json=request)
        gate.set()
    assert slow.status_code == 503 and "not finished" in slow.json()["error"]["message"]


def test_progress_is_reported_while_running(pipe, monkeypatch):
    seen: list[dict] = []
    app = create_app(pipe, ServeLimits(max_wait_ms=0))
    real = pipe.generate_batch

    def watched(requests, callback=None):
        def on_step(step, total):
            callback(step, total)
            seen.append(client.get("/v1/progress/job-1").json())

        return real(requests, on_step)

    monkeypatch.setattr(pipe, "generate_batch", watched)
    with TestClient(app) as client:
        r = client.post(
            "/v1/generate",
            json={"text": "a", "duration": 0.3, "steps": 3},
            headers={"X-Request-Id": "job-1"},
        )
        assert r.status_code == 200
        assert client.get("/v1/progress/job-1").status_code == 404
    assert seen == [{"state": "running", "step": s, "total": 3} for s in (1, 2, 3)]


def test_the_json_examples_of_docs_api_md_are_accepted(client):
    import json
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    bodies = [json.loads(b) for b in re.findall(r"-d '(\{.*?\})'", doc)]
    assert len(bodies) >= 3
    for body in bodies:
        r = client.post("/v1/generate", json={**body, "duration": 0.3})
        assert r.status_code == 200, (body, r.text)
