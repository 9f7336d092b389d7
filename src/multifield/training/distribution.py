"""Data-parallel training on the Keras distribution API: every JAX device of this machine, and of
several machines joined by ``jax.distributed`` (through ``keras.distribution.initialize``).

Each process feeds its own shard of the training records (record ``i`` of the file goes to process
``i % processes``); Keras' JAX trainer assembles the per-process batches into one global batch with
``jax.make_array_from_process_local_data`` and splits it over the devices. Every process holds a full
replica of the model, the same validation records and the same vocabularies, so validation and
thresholds come out the same everywhere; only the chief (process 0) writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
import numpy as np

from multifield.errors import MultifieldError

STRATEGIES = ("data-parallel",)
# Environment variables of launchers that start one process per task; jax.distributed reads them itself.
_CLUSTER_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


@dataclass(frozen=True)
class DataParallelPlan:
    """Where this process stands in a data-parallel run."""

    devices: int
    processes: int
    process_index: int
    local_devices: int

    @property
    def is_chief(self) -> bool:
        return self.process_index == 0

    def global_batch_size(self, batch_size: int) -> int:
        """``batch_size`` rounded up to a multiple of the device count, so that it splits evenly."""
        return -(-batch_size // self.devices) * self.devices

    def describe(self) -> str:
        return (
            f"data-parallel over {self.devices} device{'s' if self.devices != 1 else ''} in "
            f"{self.processes} process{'es' if self.processes != 1 else ''} (this is process {self.process_index})"
        )


_plan: DataParallelPlan | None = None


def current_plan() -> DataParallelPlan | None:
    """The plan set by ``setup_data_parallel`` in this process, or None (one device, no distribution)."""
    return _plan


def is_chief() -> bool:
    """True unless this is a non-chief process of a multi-process run: the process that writes files."""
    return _plan is None or _plan.is_chief


def _wants_cluster(coordinator_address, num_processes, process_id) -> bool:
    if coordinator_address or (num_processes or 1) > 1 or process_id is not None:
        return True
    if os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return True
    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1) > 1:
        return True
    return any(int(os.environ.get(name, "1") or 1) > 1 for name in _CLUSTER_VARIABLES)


def setup_data_parallel(
    strategy: str = "data-parallel",
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> DataParallelPlan:
    """Join the other processes (when there are any) and set ``keras.distribution.DataParallel`` over
    every device of all of them. Call it before any model is built.

    Flags win over environment variables: ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator first,
    or all addresses comma-separated), ``KERAS_DISTRIBUTION_NUM_PROCESSES``, ``KERAS_DISTRIBUTION_PROCESS_ID``;
    with none of these, ``jax.distributed`` finds SLURM, Open MPI and Kubernetes (JobSet) settings itself.
    """
    global _plan
    if strategy not in STRATEGIES:
        raise MultifieldError(f"--distribute {strategy!r}: expected one of {', '.join(STRATEGIES)}")

    if keras.backend.backend() != "jax":
        raise MultifieldError(
            f"--distribute needs the JAX backend (KERAS_BACKEND=jax); this process runs {keras.backend.backend()}"
        )
    if _plan is not None:
        return _plan
    if _wants_cluster(coordinator_address, num_processes, process_id):
        try:
            keras.distribution.initialize(coordinator_address, num_processes, process_id)
        except (RuntimeError, ValueError) as error:
            raise MultifieldError(f"cannot join the other processes: {error}") from None
    import jax  # only here: the package runs on PyTorch and TensorFlow too, where the rest of this module is unused

    devices = keras.distribution.list_devices()
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    _plan = DataParallelPlan(len(devices), jax.process_count(), jax.process_index(), jax.local_device_count())
    return _plan


def agree_max(value: int) -> int:
    """The largest of this value over all processes (the value itself with one process)."""
    if _plan is None or _plan.processes == 1:
        return value
    from jax.experimental import multihost_utils  # JAX only, as in setup_data_parallel

    return int(np.max(multihost_utils.process_allgather(np.asarray([value], dtype=np.int32))))


def training_batches(train_data, batch_size: int, sort_by: str | None, seed: int, trim: bool = True):
    """The training PyDataset of ``train_data`` (``InMemoryRecords`` or a ``StreamSource``); under a
    data-parallel plan, this process's shard in equal, full batches. ``trim``: see ``take_batch``."""
    plan = _plan
    if plan is None:
        return train_data.batches(batch_size, sort_by, seed, trim)
    global_batch = plan.global_batch_size(batch_size)
    agree = agree_max if plan.processes > 1 else None
    return train_data.shard_batches(
        global_batch // plan.processes, global_batch, sort_by, seed, plan.process_index, plan.processes, agree, trim
    )


__all__ = ["DataParallelPlan", "agree_max", "current_plan", "is_chief", "setup_data_parallel", "training_batches"]
