"""``MicroBatcher`` with a stand-in model: batching, order, isolation of a failing request, bounds, stop."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError

import pytest

from multifield.server.micro_batcher import MicroBatcher, Overloaded
from multifield.server.settings import ServerSettings


class FakeModel:
    """Echoes each record's "x" doubled; holds its first call until ``release`` is set; fails on "bad"."""

    def __init__(self):
        self.calls: list[list[dict]] = []
        self.threads: set[str] = set()
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, records, attention):
        self.calls.append(records)
        self.threads.add(threading.current_thread().name)
        if not self.entered.is_set():
            self.entered.set()
            self.release.wait(10)
        if any(record.get("bad") for record in records):
            raise ValueError("bad record")
        return [{"y": record["x"] * 2, "attention": "weights"} for record in records]


def make(settings=None, **limits):
    model = FakeModel()
    batcher = MicroBatcher(model, settings or ServerSettings(**limits))
    batcher.start()
    return model, batcher


def test_waiting_requests_go_to_the_model_as_one_batch_in_order():
    model, batcher = make(max_batch_records=64)
    try:
        first = batcher.submit([{"x": 0}])
        assert model.entered.wait(10)
        waiting = [batcher.submit([{"x": i}, {"x": i + 100}], attention=i % 2 == 0) for i in range(1, 6)]
        model.release.set()
        assert first.result(10) == [{"y": 0}]
        for i, future in enumerate(waiting, start=1):
            expected = [{"y": 2 * i}, {"y": 2 * (i + 100)}]
            if i % 2 == 0:
                expected = [dict(row, attention="weights") for row in expected]
            assert future.result(10) == expected
        assert [len(call) for call in model.calls] == [1, 10]
        assert model.threads == {"multifield-model"}  # one thread calls the model
    finally:
        batcher.stop()


def test_a_batch_stops_at_max_batch_records():
    model, batcher = make(max_batch_records=4)
    try:
        first = batcher.submit([{"x": 0}])
        assert model.entered.wait(10)
        waiting = [batcher.submit([{"x": i}]) for i in range(10)]
        model.release.set()
        for future in [first, *waiting]:
            future.result(10)
        assert [len(call) for call in model.calls] == [1, 4, 4, 2]
    finally:
        batcher.stop()


def test_a_failing_request_does_not_fail_the_others():
    model, batcher = make()
    try:
        first = batcher.submit([{"x": 0}])
        assert model.entered.wait(10)
        good, bad, other = batcher.submit([{"x": 1}]), batcher.submit([{"x": 2, "bad": True}]), batcher.submit([{"x": 3}])
        model.release.set()
        first.result(10)
        assert good.result(10) == [{"y": 2}] and other.result(10) == [{"y": 6}]
        with pytest.raises(ValueError, match="bad record"):
            bad.result(10)
    finally:
        batcher.stop()


def test_queue_bounds_and_a_lone_large_request():
    model, batcher = make(max_queue_requests=2, max_queue_records=10)
    try:
        running = batcher.submit([{"x": 0}])
        assert model.entered.wait(10)
        large = batcher.submit([{"x": 1}] * 50)  # over max_queue_records, but alone in the queue: accepted
        with pytest.raises(Overloaded, match="records are waiting"):
            batcher.submit([{"x": 2}])
        model.release.set()
        running.result(10), large.result(10)
    finally:
        batcher.stop()
    model, batcher = make(max_queue_requests=2)
    try:
        running = batcher.submit([{"x": 0}])
        assert model.entered.wait(10)
        queued = [batcher.submit([{"x": 1}]), batcher.submit([{"x": 2}])]
        with pytest.raises(Overloaded, match="requests are waiting"):
            batcher.submit([{"x": 3}])
        model.release.set()
        for future in [running, *queued]:
            future.result(10)
    finally:
        batcher.stop()


def test_a_cancelled_request_is_skipped():
    model, batcher = make()
    try:
        running = batcher.submit([{"x": 0}])
        assert model.entered.wait(10)
        cancelled, kept = batcher.submit([{"x": 1}]), batcher.submit([{"x": 2}])
        assert cancelled.cancel()
        model.release.set()
        assert kept.result(10) == [{"y": 4}] and running.result(10) == [{"y": 0}]
        assert [len(call) for call in model.calls] == [1, 1]
        with pytest.raises(CancelledError):
            cancelled.result(0)
    finally:
        batcher.stop()


def test_stop_refuses_the_queued_requests_and_restarts():
    model, batcher = make()
    running = batcher.submit([{"x": 0}])
    assert model.entered.wait(10)
    queued = batcher.submit([{"x": 1}])
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    with pytest.raises(Overloaded, match="shutting down"):
        queued.result(10)
    model.release.set()
    stopper.join(10)
    assert running.result(10) == [{"y": 0}]
    batcher.start()
    try:
        assert batcher.submit([{"x": 5}]).result(10) == [{"y": 10}]
    finally:
        batcher.stop()


def test_the_first_task_runs_before_any_request():
    order = []
    batcher = MicroBatcher(lambda records, attention: order.append("predict") or [{}], ServerSettings(), first=lambda: order.append("warm"))
    future = batcher.submit([{}])
    batcher.start()
    try:
        future.result(10)
        assert order == ["warm", "predict"]
    finally:
        batcher.stop()


def test_a_window_lets_a_lone_request_wait_for_company():
    calls = []
    batcher = MicroBatcher(
        lambda records, attention: calls.append(len(records)) or [{} for _ in records],
        ServerSettings(batch_window_ms=300),
    )
    batcher.start()
    try:
        first = batcher.submit([{}])
        second = batcher.submit([{}, {}])  # within the first one's window
        first.result(10), second.result(10)
        assert calls == [3]
    finally:
        batcher.stop()


def test_coroutines_get_their_answers_and_a_batch_wakes_their_loop_once():
    import asyncio

    model, batcher = make(max_batch_records=64)
    wake_ups = []

    async def main():
        loop = asyncio.get_running_loop()
        threadsafe = loop.call_soon_threadsafe

        def counted(callback, *args):
            wake_ups.append(callback)
            return threadsafe(callback, *args)

        loop.call_soon_threadsafe = counted
        first = batcher.submit_async([{"x": 0}])
        await asyncio.to_thread(model.entered.wait, 10)
        waiting = [batcher.submit_async([{"x": i}], attention=i == 2) for i in range(1, 6)]
        bad = batcher.submit_async([{"x": 9, "bad": True}])
        model.release.set()
        assert await first == [{"y": 0}]
        answers = await asyncio.gather(*waiting)
        with pytest.raises(ValueError, match="bad record"):
            await bad
        return answers

    try:
        answers = asyncio.run(main())
    finally:
        batcher.stop()
    assert answers == [[{"y": 2 * i, **({"attention": "weights"} if i == 2 else {})}] for i in range(1, 6)]
    assert [len(call) for call in model.calls] == [1, 6] + [1] * 6  # the failing batch rerun request by request
    # One wake-up per batch (the first request's, then the six behind it); asyncio.to_thread makes the others.
    assert sum(getattr(callback, "__module__", "") == "multifield.server.micro_batcher" for callback in wake_ups) == 2


def test_stop_refuses_the_queued_coroutines():
    import asyncio

    model, batcher = make()

    async def main():
        first = batcher.submit_async([{"x": 0}])
        await asyncio.to_thread(model.entered.wait, 10)
        queued = batcher.submit_async([{"x": 1}])
        await asyncio.to_thread(batcher.stop, 0)
        with pytest.raises(Overloaded, match="shutting down"):
            await queued
        model.release.set()
        return await first

    assert asyncio.run(main()) == [{"y": 0}]
