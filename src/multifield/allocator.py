"""Keep freed memory at the top of the C heap for reuse, on Linux with glibc.

A training or prediction step allocates and frees the same large buffers (XLA's, NumPy's, ONNX Runtime's) over
and over. glibc's ``malloc`` gives freed memory at the top of its heap back to the kernel as soon as more than
128 KiB of it is free, so the next step faults every page in again and the kernel zeroes it: a cold
``multifield train configs/movies.toml --epochs 3`` made 4.2 million page faults and spent 13 s of system time
on it, out of 43 s. Asking ``malloc`` to keep 256 MiB of padding at the top of its heap (``M_TOP_PAD``, the
``MALLOC_TOP_PAD_`` environment variable) takes that to 0.7 million faults and 3 s, and the run to 36 s, for
about 100 MiB more peak memory (BENCHMARKS.md, Training).

The command line asks for it when a command starts; a program that uses the library can call
``keep_freed_memory`` itself. Nothing is changed where the C library is not glibc, or where the user has set
``malloc``'s padding through the environment already.
"""

from __future__ import annotations

import ctypes
import os
import platform

TOP_PAD_BYTES = 256 * 1024 * 1024
_M_TOP_PAD = -2  # mallopt's parameter number, from glibc's malloc.h


def keep_freed_memory(pad_bytes: int = TOP_PAD_BYTES) -> bool:
    """Ask glibc's ``malloc`` to keep ``pad_bytes`` of freed memory at the top of its heap instead of giving it
    back to the kernel. True when the setting was taken; False where there is no glibc or the user has set
    ``MALLOC_TOP_PAD_`` or a ``glibc.malloc`` tunable."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_TOP_PAD_" in os.environ or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_TOP_PAD, ctypes.c_int(pad_bytes)))
    except (OSError, AttributeError):
        return False
