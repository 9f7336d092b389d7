"""``MicroBatcher``: gathers concurrent requests into one model call, on one thread of its own."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from multifield.server.settings import ServerSettings

logger = logging.getLogger("multifield.server")

Predict = Callable[[list[dict], bool], list[dict]]


class Overloaded(Exception):
    """The queue is full (or the server is stopping): the client should retry later."""


@dataclass
class _Job:
    """One request's records. ``future`` is a ``concurrent.futures.Future``, or an asyncio future of ``loop``
    (``submit_async``), which only that loop's thread may settle."""

    records: list[dict]
    attention: bool
    future: Future | asyncio.Future = field(default_factory=Future)
    loop: asyncio.AbstractEventLoop | None = None
    queued_at: float = field(default_factory=time.monotonic)

    def claim(self) -> bool:
        """Whether the job is still wanted (its future not cancelled); a thread future is marked running."""
        if self.loop is None:
            return self.future.set_running_or_notify_cancel()
        return not self.future.cancelled()


# A job with its results, or with its error.
Outcome = tuple[_Job, "list[dict] | None", "Exception | None"]


class MicroBatcher:
    """Runs ``predict(records, attention)`` on one worker thread, batching the records of concurrent requests.

    The model is called from this thread only (a Keras model is not safe to call from several threads at
    once). The worker takes the oldest waiting request and the requests queued behind it, up to
    ``max_batch_records`` records, after waiting until the oldest has waited ``batch_window_ms`` (if the
    batch is not full already). Under load, requests pile up while the model runs, so batches fill
    without any window. The queue is bounded in requests and in records: ``submit`` raises
    ``Overloaded`` rather than let latency grow without bound. A batch that fails is rerun request by
    request, so that one bad request never fails the requests batched with it.

    Args:
        predict: called with the records of a batch and whether any request in it wants attention
            weights; returns one result dict per record, in order.
        settings: ``max_batch_records``, ``batch_window_ms``, ``max_queue_requests``, ``max_queue_records``.
        first: called once on the worker thread before any request (the warm-up).
    """

    def __init__(self, predict: Predict, settings: ServerSettings, first: Callable[[], None] | None = None):
        self.predict = predict
        self.settings = settings
        self.first = first
        self._jobs: deque[_Job] = deque()
        self._queued_records = 0
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def queued_requests(self) -> int:
        return len(self._jobs)

    def start(self) -> None:
        """Start the worker thread, unless it runs already."""
        with self._condition:
            if self._thread is not None and self._thread.is_alive() and not self._stopping:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="multifield-model", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress, refuse the queued requests, and end the worker thread."""
        with self._condition:
            self._stopping = True
            refused = list(self._jobs)
            self._jobs.clear()
            self._queued_records = 0
            self._condition.notify_all()
            thread = self._thread
        _settle([(job, None, Overloaded("the server is shutting down")) for job in refused if job.claim()])
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def submit(self, records: list[dict], attention: bool = False) -> Future:
        """Queue the records of one request; the future gives their results, in order."""
        return self._queue(_Job(records, attention)).future

    def submit_async(self, records: list[dict], attention: bool = False) -> asyncio.Future:
        """``submit`` for a coroutine: an asyncio future of the running loop. The requests of one batch are
        answered with one wake-up of their loop, not one each (which cost a fifth of the model thread's time at
        16 concurrent clients)."""
        loop = asyncio.get_running_loop()
        return self._queue(_Job(records, attention, loop.create_future(), loop)).future

    def _queue(self, job: _Job) -> _Job:
        records = job.records
        settings = self.settings
        with self._condition:
            if self._stopping:
                raise Overloaded("the server is shutting down")
            if len(self._jobs) >= settings.max_queue_requests:
                raise Overloaded(f"{len(self._jobs)} requests are waiting for the model (at most {settings.max_queue_requests})")
            if self._queued_records and self._queued_records + len(records) > settings.max_queue_records:
                raise Overloaded(
                    f"{self._queued_records} records are waiting for the model (at most {settings.max_queue_records})"
                )
            self._jobs.append(job)
            self._queued_records += len(records)
            self._condition.notify()
        return job

    def _take_batch(self) -> list[_Job] | None:
        settings = self.settings
        window = settings.batch_window_ms / 1000.0
        with self._condition:
            while not self._jobs and not self._stopping:
                self._condition.wait()
            if not self._jobs:
                return None
            deadline = self._jobs[0].queued_at + window
            while self._queued_records < settings.max_batch_records and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch, count = [], 0
            while self._jobs and (not batch or count + len(self._jobs[0].records) <= settings.max_batch_records):
                job = self._jobs.popleft()
                self._queued_records -= len(job.records)
                batch.append(job)
                count += len(job.records)
            return batch

    def _work(self) -> None:
        if self.first is not None:
            try:
                self.first()
            except Exception:  # the requests can still be answered; the failure is the caller's to report
                logger.exception("the worker's first task failed")
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            jobs = [job for job in batch if job.claim()]
            if jobs:
                _settle(self._run(jobs))

    def _run(self, jobs: list[_Job]) -> list[Outcome]:
        records = [record for job in jobs for record in job.records]
        try:
            results = self.predict(records, any(job.attention for job in jobs))
        except Exception as error:
            if len(jobs) == 1:
                return [(jobs[0], None, error)]
            outcomes = []
            for job in jobs:  # find the request that failed; the others still get their answers
                try:
                    outcomes.append((job, _requested(job, self.predict(job.records, job.attention)), None))
                except Exception as job_error:
                    outcomes.append((job, None, job_error))
            return outcomes
        outcomes, start = [], 0
        for job in jobs:
            outcomes.append((job, _requested(job, results[start : start + len(job.records)]), None))
            start += len(job.records)
        return outcomes


def _requested(job: _Job, results: list[dict]) -> list[dict]:
    if not job.attention:  # computed for another request of the batch
        for result in results:
            result.pop("attention", None)
    return results


def _settle(outcomes: list[Outcome]) -> None:
    """Set each job's future: thread futures here, asyncio futures on their loop, one call per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        loop = outcome[0].loop
        if loop is None:
            _set(outcome)
        else:
            by_loop.setdefault(loop, []).append(outcome)
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(_set_all, group)
        except RuntimeError:  # the loop is closed: nobody waits for these answers any more
            pass


def _set_all(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        _set(outcome)


def _set(outcome: Outcome) -> None:
    job, results, error = outcome
    if job.loop is not None and job.future.done():  # cancelled meanwhile (the client went away)
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(results)
