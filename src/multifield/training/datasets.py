"""The records of a training run made ready: the vocabularies and label set fitted on the training records, the
training records encoded (held in memory) or counted (a file streamed each epoch), and the validation records
split off by id hash or read from their own file."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from multifield.config import Config
from multifield.data.encoding import RecordEncoder, record_ids
from multifield.data.in_memory import InMemoryRecords
from multifield.data.io import Table, as_table
from multifield.data.split import split_by_hash
from multifield.data.stream import should_stream
from multifield.data.stream_source import StreamSource, fit_streaming
from multifield.errors import DataError
from multifield.training.distribution import current_plan


@dataclass
class TrainingSet:
    """What a run trains and validates on."""

    encoder: RecordEncoder
    train: InMemoryRecords | StreamSource
    valid_table: Table
    x_valid: dict[str, np.ndarray]
    y_valid: np.ndarray
    unknown_valid_labels: dict = field(default_factory=dict)
    started: float = 0.0  # when fitting the vocabularies began (perf_counter): the run's training time counts from it

    def rare_labels(self, below: int = 3) -> list[str]:
        positives, _ = self.train.label_totals()
        return [label for label, count in zip(self.encoder.labels.labels, positives) if count < below]

    def summary(self) -> str:
        vocabularies = ", ".join(f"{name}: {tok.vocabulary_size} tokens" for name, tok in self.encoder.tokenizers.items())
        return (
            f"{len(self.train)} training and {len(self.valid_table)} validation records, "
            f"{len(self.encoder.labels.labels)} labels; {vocabularies}"
        )


def streams(train, stream: bool | None) -> bool:
    """Whether ``train`` is a file to read anew each epoch (``stream``, or files above 256 MB when None)."""
    return isinstance(train, (str, os.PathLike)) and should_stream(train, stream)


def check_unique_ids(ids: list, table: Table) -> None:
    """A ``DataError`` naming the line of the first repeated id."""
    seen: dict = {}
    for index, record_id in enumerate(ids):
        if record_id in seen:
            raise DataError(
                f"duplicate id {record_id!r} (first seen on {table.line_kind} {table.where(seen[record_id])})",
                table.path,
                table.where(index),
            )
        seen[record_id] = index


def prepare(config: Config, train, valid=None, stream: bool | None = None) -> TrainingSet:
    """Fit the encoder on ``train`` (a path, DataFrame, list of dicts or Table) and encode it and the
    validation records (``valid``, or a stable hash split of ``train``). The random seed is set here, as
    the first step that may draw from it."""
    if streams(train, stream):
        plan = current_plan()
        started = time.perf_counter()
        source, valid_table = fit_streaming(config, Path(train), valid is None, plan.processes if plan else 1)
        if valid is not None:
            valid_table = _unique(config, as_table(valid, "<valid>"))
        keras.utils.set_random_seed(config.training.seed)
        encoder, train_data = source.encoder, source
    else:
        train_table = as_table(train, "<train>")
        ids = record_ids(config, train_table)
        check_unique_ids(ids, train_table)
        if valid is None:
            train_table, valid_table = _split(config, train_table, ids)
        else:
            valid_table = _unique(config, as_table(valid, "<valid>"))
        keras.utils.set_random_seed(config.training.seed)
        started = time.perf_counter()
        encoder = RecordEncoder.fit(config, train_table)
        train_data = InMemoryRecords(encoder.encode_inputs(train_table), encoder.encode_labels(train_table)[0], encoder)
    y_valid, unknown = encoder.encode_labels(valid_table)
    return TrainingSet(encoder, train_data, valid_table, encoder.encode_inputs(valid_table), y_valid, dict(unknown), started)


def _unique(config: Config, table: Table) -> Table:
    check_unique_ids(record_ids(config, table), table)
    return table


def _split(config: Config, table: Table, ids: list) -> tuple[Table, Table]:
    train_index, valid_index = split_by_hash(ids, config.training.validation_fraction)
    if not train_index or not valid_index:
        raise DataError(f"too few records to split off a validation part ({len(ids)} records); give --valid", table.path)
    return table.subset(train_index), table.subset(valid_index)


__all__ = ["TrainingSet", "check_unique_ids", "prepare", "streams"]
