"""Serving throughput and latency: requests/s and p50/p95 latency at 1, 4 and 16 concurrent
clients, with dynamic batching on (--max-batch 16) and off (--max-batch 1), in the same run.

Each mode runs an `audiox-turbo serve` process on loopback; the clients are threads of this
process. Prints a table and writes benchmarks/results/serve_<preset>_<device>.json.

    python benchmarks/bench_serve.py                                   # tiny on CPU
    python benchmarks/bench_serve.py --preset demo --duration 5 --requests 48
    python benchmarks/bench_serve.py --device cuda --preset base       # on a GPU
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from audiox_turbo.atomic import write_json_atomic  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
PROMPTS = ("a dog barking", "rain on a tin roof", "a bell rings", "footsteps on gravel")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, max_batch: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        sys.executable, "-m", "audiox_turbo", "serve", "--preset", args.preset,
        "--port", str(port), "--device", args.device, "--max-batch", str(max_batch),
        "--max-wait-ms", str(args.max_wait_ms), "--max-queue", "1024", "--timeout", "3600",
    ]  # fmt: skip
    server = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(SRC)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def load(url: str, clients: int, requests: int, body: dict) -> dict:
    """`requests` requests from `clients` threads; throughput and latency percentiles."""
    latencies: list[float] = []
    lock = threading.Lock()
    numbers = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=3600) as http:
            for i in iter(lambda: next(numbers, None), None):
                start = time.perf_counter()
                r = http.post("/v1/generate", json={**body, "seed": i, "text": PROMPTS[i % 4]})
                r.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    cuts = statistics.quantiles(latencies, n=20)
    return {
        "clients": clients,
        "requests": requests,
        "requests_per_s": requests / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": cuts[18],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--requests", type=int, default=64, help="per level at 4 and 16 clients")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    args = parser.parse_args()
    body = {"duration": args.duration, "steps": args.steps, "method": "student"}
    levels = [int(c) for c in args.clients.split(",")]
    rows = []
    for mode, max_batch in (("batching", 16), ("no batching", 1)):
        server, url = start_server(args, max_batch)
        try:
            load(url, 1, 3, body)  # warm-up
            for clients in levels:
                count = max(args.requests // 4, 8) if clients == 1 else args.requests
                rows.append({"mode": mode, **load(url, clients, count, body)})
                r = rows[-1]
                print(
                    f"{mode:>12} {clients:>3} clients: {r['requests_per_s']:7.2f} req/s  "
                    f"p50 {r['p50_s']:.3f} s  p95 {r['p95_s']:.3f} s",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait(timeout=60)
    result = {
        "preset": args.preset,
        "device": args.device,
        "duration_s": args.duration,
        "steps": args.steps,
        "method": "student",
        "max_wait_ms": args.max_wait_ms,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    write_json_atomic(RESULTS / f"serve_{args.preset}_{args.device}.json", result)
    print("\n| clients | batching req/s | p50 | p95 | no batching req/s | p50 | p95 |")
    print("|---|---|---|---|---|---|---|")
    for clients in levels:
        on, off = (next(r for r in rows if r["mode"] == m and r["clients"] == clients)
                   for m in ("batching", "no batching"))  # fmt: skip
        print(
            f"| {clients} | {on['requests_per_s']:.2f} | {on['p50_s']:.3f} | {on['p95_s']:.3f} "
            f"| {off['requests_per_s']:.2f} | {off['p50_s']:.3f} | {off['p95_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
