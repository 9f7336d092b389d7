"""XLA's persistent compilation cache for the command line: a second run of the same model on the same
shapes loads its compiled functions from disk instead of compiling them again (JAX backend only).

The cache lives in ``$MULTIFIELD_CACHE_DIR`` (default ``$XDG_CACHE_HOME/multifield/xla``, that is
``~/.cache/multifield/xla``); ``MULTIFIELD_COMPILATION_CACHE=0`` turns it off. It holds compiled code
only, keyed by a hash of the computation and the versions of jax and jaxlib; deleting it is always safe.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Compilations faster than this are not worth a file. Low, because a training run also compiles dozens of
#: small functions (weight initializers, one per shape, about 0.15 s each) that add up to seconds.
MIN_COMPILE_SECONDS = 0.1


def cache_dir() -> Path:
    explicit = os.environ.get("MULTIFIELD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "multifield" / "xla"


def enable_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at ``cache_dir()``; the folder, or ``None`` when the
    backend is not JAX, the cache is turned off, or the folder cannot be created.

    JAX is not imported for it: a command that never runs Keras (``predict`` on ONNX Runtime) should not pay
    for the import. Before JAX is imported, its settings are environment variables, which it reads then."""
    if os.environ.get("MULTIFIELD_COMPILATION_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if os.environ.get("KERAS_BACKEND", "jax") != "jax":
        return None
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if "jax" in sys.modules:
        jax = sys.modules["jax"]
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    else:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(MIN_COMPILE_SECONDS)
    return folder
