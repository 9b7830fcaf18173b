"""A bounded load test on loopback: 200 requests from 16 concurrent clients against an
`audiox-turbo serve --preset tiny` process; only 200s and deliberate 503s (full queue, then
retried), and the server's resident memory after the run within 10 % of after warm-up."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from serving import free_port, metric

REQUESTS, CLIENTS = 200, 16
SRC = Path(__file__).resolve().parents[1] / "src"


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def request_body(i: int) -> dict:
    return {
        "text": f"sound number {i % 7}",
        "duration": 0.25,
        "seed": i,
        "method": "student",
        "steps": 2,
    }


def run_clients(url: str, count: int, statuses: Counter[int]) -> None:
    """`count` requests from CLIENTS threads; a 503 is retried after its Retry-After hint."""
    lock = threading.Lock()
    numbers = iter(range(count))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for i in iter(lambda: next(numbers, None), None):
                while True:
                    r = http.post("/v1/generate", json=request_body(i))
                    with lock:
                        statuses[r.status_code] += 1
                    if r.status_code != 503:
                        break
                    assert r.headers["retry-after"] == "1" and r.json()["error"]["message"]
                    time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory from /proc")
def test_200_requests_from_16_clients():
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "audiox_turbo",
        "serve",
        "--preset",
        "tiny",
        "--port",
        str(port),
        "--max-queue",
        "8",
        "--max-batch",
        "8",
        "--max-wait-ms",
        "5",
    ]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "2"}
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        warm_statuses: Counter[int] = Counter()
        run_clients(url, 2 * CLIENTS, warm_statuses)
        warm = resident_bytes(server.pid)
        statuses: Counter[int] = Counter()
        run_clients(url, REQUESTS, statuses)
        after = resident_bytes(server.pid)
        text = httpx.get(f"{url}/metrics").text
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert set(statuses) | set(warm_statuses) <= {200, 503}, (statuses, warm_statuses)
    assert statuses[200] == REQUESTS
    assert (
        metric(text, 'audiox_requests_total{path="/v1/generate",status="200"}')
        == REQUESTS + 2 * CLIENTS
    )
    batches = metric(text, "audiox_batch_size_count")
    assert metric(text, "audiox_batch_size_sum") == REQUESTS + 2 * CLIENTS
    assert batches < REQUESTS  # concurrent clients were batched
    assert after <= 1.10 * warm, (warm, after)
    rss = f"RSS {warm / 2**20:.0f} -> {after / 2**20:.0f} MiB"
    print(f"{dict(statuses)}, {batches:.0f} batches, {rss}")
