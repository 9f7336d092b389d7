"""Running a producer one step ahead in a background thread, so that reading and tokenizing the next chunk
of a file overlaps the model's work on the current one.

The model (XLA) and the tokenizers release the GIL while they compute, so on a machine of two cores the
reading of chunk ``n + 1`` costs little wall time while chunk ``n`` is predicted.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetched(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of ``items``, in order, produced in a background thread at most ``depth`` items ahead of
    the consumer. An exception of the producer is raised in the consumer, in its place in the sequence;
    closing the iterator early stops the producer and closes ``items``."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
        except BaseException as error:  # noqa: BLE001 (handed to the consumer, raised there)
            put(_Failure(error))
            return
        finally:
            close = getattr(iterator, "close", None)  # a generator closes its file now, not when collected
            if close is not None:
                close()
        put(_DONE)

    thread = threading.Thread(target=produce, name="multifield-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
