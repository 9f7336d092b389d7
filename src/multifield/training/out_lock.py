"""One writer per ``--out``: a training run holds ``OUT.lock``, a file beside ``--out``, while it writes.

The lock is an ``fcntl.flock`` on that file, which the kernel releases when the process ends however it
ends (``kill -9`` included); the file itself says who holds it (pid, host, start time), so that a second
run is refused with a line naming the holder. A file left by a killed run holds no flock: the next run
takes it over and says so. Removing the file on release is safe: a run that opened the old file before it
was removed notices that the path now names another file (or none) and tries again.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from multifield.errors import MultifieldError
from multifield.files import pid_alive


def lock_path(out: str | os.PathLike) -> Path:
    """Where the lock of a run writing its bundle to ``out`` lives: ``OUT.lock``, beside ``out``."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        out = out.resolve()
    return out.with_name(out.name + ".lock")


class OutLocked(MultifieldError):
    """Another live process holds the lock of ``--out``."""


def describe_holder(text: str) -> str:
    """The holder named in a lock file's content, in words ("pid 12 on host since 2026-01-01 10:00:00 UTC")."""
    try:
        holder = json.loads(text)
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder["started"])))
        return f"pid {int(holder['pid'])} on {holder['host']} since {started}"
    except (ValueError, KeyError, TypeError):
        return "a process that left no readable details"


def _stale_note(path: Path, previous: str) -> str | None:
    if not previous.strip():
        return None
    try:
        holder = json.loads(previous)
        same_host = holder.get("host") == socket.gethostname()
        state = "no longer running" if same_host and not pid_alive(int(holder["pid"])) else "no longer holding it"
    except (ValueError, KeyError, TypeError, AttributeError):
        state = "unreadable"
    return f"note: {path}: a lock left by an ended run ({describe_holder(previous)}, {state}) was taken over"


def _open_locked(path: Path) -> int:
    """A descriptor of ``path`` holding its flock; raises ``OutLocked`` if another process holds it."""
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 4096, 0).decode("utf-8", "replace")
            os.close(descriptor)
            raise OutLocked(
                f"{path}: another training run ({describe_holder(holder)}) is writing this --out; "
                "wait for it to end, or give another --out"
            ) from None
        except OSError:
            os.close(descriptor)
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        opened = os.fstat(descriptor)
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return descriptor
        os.close(descriptor)  # released and removed by its holder between our open and our flock: again


@contextmanager
def out_lock(out: str | os.PathLike, announce: Callable[[str], None] = print) -> Iterator[Path]:
    """Hold the lock of ``out`` for the block; ``announce`` hears of a stale lock taken over.

    Raises ``OutLocked`` (a one-line user error) while another live process holds it.
    """
    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = _open_locked(path)
    except OSError as error:
        raise MultifieldError(f"{path}: cannot lock --out ({error.strerror or error})") from None
    try:
        note = _stale_note(path, os.pread(descriptor, 4096, 0).decode("utf-8", "replace"))
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, holder.encode(), 0)
        os.fsync(descriptor)
        if note:
            announce(note)
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still holding the flock: no one else can have taken it
        os.close(descriptor)
