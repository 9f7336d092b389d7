import threading
import time

import pytest

from multifield.data.prefetch import prefetched


def test_items_come_in_order_and_the_producer_runs_in_another_thread():
    threads = []

    def produce():
        for item in range(50):
            threads.append(threading.current_thread())
            yield item

    assert list(prefetched(produce())) == list(range(50))
    assert threads and all(thread is not threading.main_thread() for thread in threads)


def test_the_producer_stays_at_most_depth_items_ahead():
    produced = []

    def produce():
        for item in range(10):
            produced.append(item)
            yield item

    items = prefetched(produce(), depth=2)
    assert next(items) == 0
    time.sleep(0.3)  # ample time for the producer to run ahead as far as it may
    # item 0 was taken; 1 and 2 wait in the queue; 3 is produced and waits for room
    assert len(produced) <= 4
    assert list(items) == list(range(1, 10))


def test_an_error_of_the_producer_is_raised_in_its_place():
    def produce():
        yield 1
        yield 2
        raise ValueError("line 3 is bad")

    seen = []
    with pytest.raises(ValueError, match="line 3 is bad"):
        for item in prefetched(produce()):
            seen.append(item)  # noqa: PERF402 (the items before the error, one by one)
    assert seen == [1, 2]


def test_closing_early_stops_the_producer_and_closes_its_source():
    produced = []
    stopped = threading.Event()

    def produce():
        try:
            for item in range(1_000_000):
                produced.append(item)
                yield item
        finally:
            stopped.set()

    items = prefetched(produce())
    assert next(items) == 0
    items.close()
    assert len(produced) < 10
    assert stopped.is_set()
    assert not any(thread.name == "multifield-prefetch" for thread in threading.enumerate())
