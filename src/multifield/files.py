"""The one way multifield writes a file: to a temporary file beside it, flushed to disk, renamed into place,
and the directory flushed too, so that a crash at any instant leaves the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_directory(directory: str | os.PathLike) -> None:
    """Flush a directory's entries (a rename in it) to disk; a no-op where directories cannot be opened."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def atomic_writer(path: str | os.PathLike, before_rename: Callable[[BinaryIO], None] | None = None) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` when the block ends without an error.

    The temporary file is ``.<name>.<random>.tmp`` beside ``path`` (so that the rename stays on one file
    system); on an error it is deleted and ``path`` is left as it was. The new file gets the permissions a
    newly created file would (``0o666`` less the umask). ``before_rename`` is called with the handle once the
    content is written (tests use it to simulate a crash).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            yield handle
            if before_rename is not None:
                before_rename(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o666 & ~_umask())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_bytes(path: str | os.PathLike, content: bytes) -> Path:
    """Replace ``path`` with ``content`` atomically."""
    with atomic_writer(path) as handle:
        handle.write(content)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_lines(path: str | os.PathLike, lines: Iterable[bytes]) -> int:
    """Replace ``path`` atomically with ``lines`` (bytes, each ending in a newline); how many were written."""
    count = 0
    with atomic_writer(path) as handle:
        for line in lines:
            handle.write(line)
            count += 1
    return count


def leftover_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files a killed writer of ``path`` may have left beside it."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []


# Files left by a process (a lock, a bundle being written) are stale once it has ended.
def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


__all__ = ["atomic_writer", "fsync_directory", "leftover_temporaries", "pid_alive", "write_bytes", "write_lines", "write_text"]
