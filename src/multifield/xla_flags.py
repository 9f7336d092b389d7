"""XLA's CPU scheduler for this kind of model, set before JAX starts its backend.

By default XLA orders a CPU program's operations to run independent ones at the same time
(``--xla_cpu_enable_concurrency_optimized_scheduler``). A training step of a recurrent encoder is a few
loops of small matrix products next to a handful of larger ones, and in that order the attention's
products over the recurrent outputs wait on the loops: a movie training step took 40–88 ms with it and
28–68 ms without it (``benchmarks/speed.py``, BENCHMARKS.md). The flag is added to ``XLA_FLAGS`` unless
the user has set it there; it changes the order of the operations only, not what they compute.
"""

from __future__ import annotations

import os

SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


def set_xla_cpu_flags() -> None:
    """Turn the concurrency-optimized CPU scheduler off in ``XLA_FLAGS``, unless the flag is there already.
    It takes effect only if JAX has not started its CPU backend yet (XLA reads the variable then)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if SCHEDULER_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {SCHEDULER_FLAG}=false".strip()
