"""Dynamic batching: requests wait (at most `max_wait_ms`) in one queue; a single worker thread
runs every compatible group (same `Pipeline.batch_key`, at most `max_batch`) as one model call,
so concurrent requests never contend for the model."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field

from audiox_turbo.errors import AudioXError
from audiox_turbo.interface import GenerationOutput, GenerationRequest, Pipeline
from audiox_turbo.serve.metrics import ServeMetrics


class QueueFull(Exception):
    """The queue holds `max_queue` requests already; the client should retry later."""


@dataclass
class Progress:
    """What a client can poll: queued → running (step of total) → done."""

    state: str = "queued"
    step: int = 0
    total: int = 0


@dataclass
class Job:
    """One queued request, its batch key, its result and its progress."""

    request: GenerationRequest
    key: Hashable | None
    future: Future[GenerationOutput] = field(default_factory=Future)
    progress: Progress = field(default_factory=Progress)
    enqueued: float = field(default_factory=time.monotonic)


class BatchQueue:
    """A bounded FIFO in front of one pipeline, served by one worker thread."""

    def __init__(
        self,
        pipe: Pipeline,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        metrics: ServeMetrics | None = None,
    ) -> None:
        self.pipe, self.max_batch, self.max_queue = pipe, max(1, max_batch), max_queue
        self.max_wait = max_wait_ms / 1000
        self.metrics = metrics or ServeMetrics()
        self.pending: deque[Job] = deque()
        self.changed = threading.Condition()
        self.stopping = False
        self.worker = threading.Thread(target=self._run, name="audiox-batcher", daemon=True)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        """Stop the worker after its current batch; queued requests are cancelled."""
        with self.changed:
            self.stopping = True
            for job in self.pending:
                job.future.cancel()
            self.pending.clear()
            self.changed.notify_all()
        if self.worker.is_alive():
            self.worker.join()

    def depth(self) -> int:
        """Requests waiting (not yet running)."""
        return len(self.pending)

    def submit(self, request: GenerationRequest) -> Job:
        """Queue a request; AudioXError for options the model refuses, QueueFull when full."""
        key = self.pipe.batch_key(request)
        job = Job(request, key)
        with self.changed:
            if len(self.pending) >= self.max_queue:
                raise QueueFull(f"the queue holds {self.max_queue} requests")
            self.pending.append(job)
            self.changed.notify_all()
        return job

    def _next_batch(self) -> list[Job]:
        """Wait for the oldest job, then for companions with its key until its wait is over."""
        with self.changed:
            while not self.pending and not self.stopping:
                self.changed.wait()
            if self.stopping:
                return []
            first = self.pending[0]
            deadline = first.enqueued + self.max_wait
            while first.key is not None and not self.stopping:
                if len(self._companions(first)) >= self.max_batch:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(left)
            batch = self._companions(first)[: self.max_batch]
            for job in batch:
                self.pending.remove(job)
            return batch

    def _companions(self, first: Job) -> list[Job]:
        if first.key is None:
            return [first]
        return [job for job in self.pending if job.key == first.key]

    def _run(self) -> None:
        while batch := self._next_batch():  # empty only when stopping
            running = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if running:
                self._generate(running)

    def _generate(self, batch: list[Job]) -> None:
        """Run one batch; if it fails on one request's input, run each alone so only that one
        fails."""
        for job in batch:
            job.progress.state = "running"

        def on_step(step: int, total: int) -> None:
            for job in batch:
                job.progress.step, job.progress.total = step, total

        start = time.perf_counter()
        try:
            outputs = self.pipe.generate_batch([job.request for job in batch], on_step)
        except Exception as e:
            if len(batch) > 1 and isinstance(e, AudioXError):
                for job in batch:
                    self._generate([job])
                return
            for job in batch:
                job.progress.state = "done"
                job.future.set_exception(e)
            return
        seconds = time.perf_counter() - start
        rows = sum(out.waveforms.shape[0] for out in outputs)
        self.metrics.batch_done(len(batch), rows, outputs[0].nfe, outputs[0].duration, seconds)
        for job, out in zip(batch, outputs, strict=True):
            job.progress.state = "done"
            job.future.set_result(out)
