"""A training run, as ``multifield train`` and ``multifield demo`` make one: join the other processes of a
data-parallel run, check ``--out``, read the records, train with a checkpoint after every epoch, write the
bundle and its training report, and remove the checkpoint once both are in place."""

from __future__ import annotations

import functools
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from multifield.classifier import MultiFieldClassifier
from multifield.config import Config
from multifield.data.encoding import load_records
from multifield.data.io import Table
from multifield.errors import MultifieldError
from multifield.report import write_run_report
from multifield.training.checkpoint import Checkpoint, check_out, checkpoint_path
from multifield.training.datasets import streams
from multifield.training.distribution import DataParallelPlan, setup_data_parallel
from multifield.training.out_lock import out_lock


@dataclass
class Distribution:
    """How to join a data-parallel run (``--distribute``, ``--coordinator-address``, ...)."""

    strategy: str = "data-parallel"
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None


def read_records(path: Path, config: Config, labels: bool, skip_bad_rows: bool, console: Console) -> Table:
    """A data file's checked records; what ``skip_bad_rows`` left out is said in one line on ``console``."""
    table = load_records(path, config, labels=labels, skip_bad_rows=skip_bad_rows)
    if table.skipped:
        console.print(f"[yellow]note:[/] {table.path}: {table.skipped_summary()}", highlight=False, soft_wrap=True)
    return table


def join_distribution(distribution: Distribution | None, config: Config, console: Console) -> DataParallelPlan | None:
    """Join the other processes (before anything touches a JAX device) and round the batch size up to a
    multiple of the devices; None without distribution."""
    if distribution is None:
        return None
    plan = setup_data_parallel(
        distribution.strategy, distribution.coordinator_address, distribution.num_processes, distribution.process_id
    )
    console.print(plan.describe())
    batch_size = plan.global_batch_size(config.training.batch_size)
    if batch_size != config.training.batch_size:
        console.print(f"batch size {config.training.batch_size} rounded up to {batch_size}, a multiple of {plan.devices} devices")
        config.training.batch_size = batch_size
    return plan


def training_records(train, valid, config: Config, stream: bool | None, skip_bad_rows: bool, console: Console):
    """The training and validation data to fit on: files to stream stay paths; others are read and checked."""
    if streams(train, stream):
        if skip_bad_rows:
            raise MultifieldError(
                "--skip-bad-rows holds the training file in memory and cannot be used with --stream "
                "(files over 256 MB stream unless --in-memory is given)"
            )
        return train, valid
    if isinstance(train, Table):
        return train, valid
    valid_table = read_records(valid, config, True, skip_bad_rows, console) if valid is not None else None
    return read_records(train, config, True, skip_bad_rows, console), valid_table


def train_run(
    config: Config,
    train,
    valid,
    out: Path,
    console: Console,
    epochs: int | None = None,
    overwrite: bool = False,
    resume: bool = False,
    stream: bool | None = None,
    skip_bad_rows: bool = False,
    distribution: Distribution | None = None,
    report: Path | None = None,
) -> MultiFieldClassifier:
    """Train ``config`` on ``train`` (a path or a Table; ``valid`` likewise, or None) and write the bundle to
    ``out`` and the training report to ``report`` (default ``out/report.html``). Only the chief process of a
    data-parallel run writes files. The fitted estimator."""
    plan = join_distribution(distribution, config, console)
    chief = plan is None or plan.is_chief
    # One writer per --out: the lock is held from the check of --out to the last file written.
    announce = functools.partial(console.print, markup=False, highlight=False, soft_wrap=True)
    with out_lock(out, announce=announce) if chief else nullcontext():
        return _train_and_write(config, train, valid, out, console, plan, epochs, overwrite, resume, stream, skip_bad_rows, report)


def _train_and_write(config, train, valid, out, console, plan, epochs, overwrite, resume, stream, skip_bad_rows, report):
    note = check_out(out, resume, overwrite)
    if note:
        console.print(note)
    train_data, valid_data = training_records(train, valid, config, stream, skip_bad_rows, console)
    # Every process reads a checkpoint when resuming; only process 0 writes it.
    checkpoint = Checkpoint(checkpoint_path(out), resume=resume, write=plan is None or plan.is_chief)
    classifier = MultiFieldClassifier(config).fit(
        train_data, valid_data, epochs=epochs, console=console, stream=stream, checkpoint=checkpoint
    )
    if plan is not None and not plan.is_chief:
        console.print(f"process {plan.process_index} done; process 0 writes the bundle")
        return classifier
    classifier.save(out, overwrite=overwrite or resume)
    console.print(f"model bundle written to {out}")
    write_run_report(classifier, report or out / "report.html", valid=classifier.validation_table_, console=console)
    # Last, once the bundle and its report are in place: a crash before this leaves the checkpoint, and
    # --resume writes both again.
    checkpoint.remove()
    return classifier


__all__ = ["Distribution", "join_distribution", "read_records", "train_run", "training_records"]
