"""ONNX Runtime sessions of a bundle's ``model.onnx``, and the batch call that ``Predictor`` makes through one.

A session on a machine shared with others should neither take every core nor keep its idle threads spinning
(they burn a core each while waiting for work, and a busy machine then runs several times slower): by
default it uses at most two intra-op threads, which do not spin, and one when the cores are already busy
(measured on a loaded 2-core machine: one thread predicted 5,300 records/s, two 3,300). ``MULTIFIELD_THREADS``
and ``MULTIFIELD_SPINNING=1`` change that for every command and the server; ``--threads`` for one command.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import onnxruntime

from multifield.errors import ConfigError

__all__ = ["default_threads", "inference_session", "onnx_call"]


def default_threads() -> int:
    """``MULTIFIELD_THREADS``, or the smaller of 2 and the number of cores that the load average leaves idle
    (at least 1)."""
    value = os.environ.get("MULTIFIELD_THREADS", "").strip()
    if not value:
        cores = os.cpu_count() or 1
        idle = cores - os.getloadavg()[0] if hasattr(os, "getloadavg") else cores
        return max(1, min(2, cores, round(idle)))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"MULTIFIELD_THREADS must be a whole number of threads, 1 or more; got {value!r}")
    return int(value)


def _default_spinning() -> bool:
    return os.environ.get("MULTIFIELD_SPINNING", "0").strip().lower() in ("1", "true", "yes", "on")


def inference_session(graph: bytes, threads: int | None = None, spinning: bool | None = None) -> onnxruntime.InferenceSession:
    """A CPU session of the serialized ``graph`` with ``threads`` intra-op threads (default ``default_threads()``),
    spinning while idle only if ``spinning`` (default ``MULTIFIELD_SPINNING``)."""
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be 1 or more; got {threads}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    spin = _default_spinning() if spinning is None else spinning
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3  # errors only: its warnings about unused initializers say nothing to a user
    return onnxruntime.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


def onnx_call(session: onnxruntime.InferenceSession) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """One batch of id matrices through ``session``: its outputs by name (``scores``, ``<field>_attention``)."""
    inputs = [node.name for node in session.get_inputs()]
    outputs = [node.name for node in session.get_outputs()]

    def call(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(batch[name], dtype=np.int32) for name in inputs}
        return dict(zip(outputs, session.run(outputs, feed)))

    return call
