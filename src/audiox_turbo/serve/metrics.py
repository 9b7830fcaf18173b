"""Serving metrics in the Prometheus text format: requests, queue depth, batch sizes, latency
and throughput (NFE per second)."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics: le buckets, _sum, _count)."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            self.counts[index] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            out.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        out += [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {self.sum:.6f}"]
        return [*out, f"{name}_count {self.count}"]


class ServeMetrics:
    """Thread-safe counters of one server; `queue_depth` is read when rendered."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.lock = threading.Lock()
        self.queue_depth = queue_depth
        self.requests: Counter[tuple[str, int]] = Counter()
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.nfe_total = 0
        self.compute_seconds = 0.0
        self.audio_seconds = 0.0
        self.last_nfe_per_second = 0.0

    def request_done(self, path: str, status: int, seconds: float) -> None:
        """Count one answered request; latency is recorded for generations."""
        with self.lock:
            self.requests[(path, status)] += 1
            if path == "/v1/generate":
                self.latency.observe(seconds)

    def batch_done(self, size: int, rows: int, nfe: int, audio_s: float, seconds: float) -> None:
        """One model call: `size` requests, `rows` waveforms of `audio_s` s, `nfe` per row."""
        with self.lock:
            self.batch_sizes.observe(size)
            self.nfe_total += nfe * rows
            self.compute_seconds += seconds
            self.audio_seconds += audio_s * rows
            self.last_nfe_per_second = nfe * rows / max(seconds, 1e-9)

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        with self.lock:
            lines = ["# TYPE audiox_requests_total counter"]
            for (path, status), count in sorted(self.requests.items()):
                lines.append(f'audiox_requests_total{{path="{path}",status="{status}"}} {count}')
            lines += ["# TYPE audiox_queue_depth gauge", f"audiox_queue_depth {self.queue_depth()}"]
            lines += [
                "# TYPE audiox_batch_size histogram",
                *self.batch_sizes.lines("audiox_batch_size"),
            ]
            lines += ["# TYPE audiox_request_latency_seconds histogram"]
            lines += self.latency.lines("audiox_request_latency_seconds")
            lines += [
                "# TYPE audiox_nfe_total counter",
                f"audiox_nfe_total {self.nfe_total}",
                "# TYPE audiox_compute_seconds_total counter",
                f"audiox_compute_seconds_total {self.compute_seconds:.6f}",
                "# TYPE audiox_generated_audio_seconds_total counter",
                f"audiox_generated_audio_seconds_total {self.audio_seconds:.6f}",
                "# TYPE audiox_nfe_per_second gauge",
                f"audiox_nfe_per_second {self.last_nfe_per_second:.3f}",
            ]
        return "\n".join(lines) + "\n"
