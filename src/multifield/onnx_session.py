"""ONNX Runtime sessions of a bundle's ``model.onnx``, and the batch call that ``Predictor`` makes through one.

A session on a machine shared with others should neither take every core nor keep its idle threads spinning
(they burn a core each while waiting for work, and a busy machine then runs several times slower): by
default ``OnnxCall`` runs at most two batches at once, each on one thread that does not spin. ``MULTIFIELD_THREADS``
and ``MULTIFIELD_SPINNING=1`` change that for every command and the server; ``--threads`` for one command.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime

from multifield.errors import ConfigError

__all__ = ["OnnxCall", "default_threads", "inference_session"]


def default_threads() -> int:
    """``MULTIFIELD_THREADS``, or the smaller of 2 and the number of cores. Busy cores do not lower it: threads
    that each run a batch and do not spin lose nothing to a busy machine (measured on 2 cores running two busy
    loops: ``predict`` of 20,000 movies 7.9-8.2 s with two threads, 8.3-9.5 s with one)."""
    value = os.environ.get("MULTIFIELD_THREADS", "").strip()
    if not value:
        return max(1, min(2, os.cpu_count() or 1))
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


class OnnxCall:
    """Batches of id matrices through one ONNX Runtime session of ``graph``: its outputs by name (``scores``,
    ``<field>_attention``).

    Each batch runs on one core, and ``map`` runs ``threads`` batches at once (default ``default_threads()``),
    on the calling thread and ``threads - 1`` of its own: the recurrent layers step through the tokens one at a
    time, too little work per step to share between cores, so two batches side by side use two cores where one
    batch on two intra-op threads does not (measured on 2 cores: 20,000 movies' model time 1.7 s against 3.0 s; 16 records, split in two,
    1.8 ms against 3.1 ms). One session serves every thread (ONNX Runtime's ``run`` is thread-safe).
    """

    def __init__(self, graph: bytes, threads: int | None = None, spinning: bool | None = None):
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be 1 or more; got {threads}")
        self.workers = threads or default_threads()
        self.session = inference_session(graph, threads=1, spinning=spinning)
        self.inputs = [node.name for node in self.session.get_inputs()]
        self.outputs = [node.name for node in self.session.get_outputs()]
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(batch[name], dtype=np.int32) for name in self.inputs}
        return dict(zip(self.outputs, self.session.run(self.outputs, feed)))

    def map(self, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Each batch's outputs, in order; ``workers`` batches at a time: the calling thread runs batches too,
        beside ``workers - 1`` threads of this call's own, each taking the next batch left when it is done."""
        if self.workers == 1 or len(batches) < 2:
            return [self(batch) for batch in batches]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="multifield-onnx")
        results: list[dict[str, np.ndarray] | None] = [None] * len(batches)
        left = iter(range(len(batches)))
        lock = threading.Lock()

        def run_left() -> None:
            while True:
                with lock:
                    index = next(left, None)
                if index is None:
                    return
                results[index] = self(batches[index])

        helpers = [self._pool.submit(run_left) for _ in range(min(self.workers, len(batches)) - 1)]
        try:
            run_left()
        finally:
            for helper in helpers:
                helper.result()
        return results

