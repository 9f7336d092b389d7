"""Reading a training file chunk by chunk, so that memory does not grow with the file, and the training
batches read from it anew each epoch.

A file is read as a sequence of small ``Table`` chunks (``multifield.data.io.iter_tables``: JSONL and
CSV row by row, Parquet by pyarrow record batches), each record keeping its line for error messages.
``StreamingBatches`` is a ``keras.utils.PyDataset`` that reads the file each epoch and shuffles within a
bounded buffer; the pass that fits the vocabularies first is ``multifield.data.stream_source``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import numpy as np

from multifield.data.batches import batch_order, concatenate_padded, row_lengths, take_batch
from multifield.data.io import Table, iter_tables
from multifield.errors import DataError

CHUNK_RECORDS = 2048
SHUFFLE_BUFFER_RECORDS = 16_384
# A file larger than this (bytes on disk) is streamed unless the user says otherwise.
STREAM_ABOVE_BYTES = 256 * 1024 * 1024


def should_stream(path, stream: bool | None) -> bool:
    """``stream`` when the user chose; otherwise stream files above ``STREAM_ABOVE_BYTES``."""
    if stream is not None:
        return stream
    try:
        return Path(path).stat().st_size > STREAM_ABOVE_BYTES
    except OSError:
        return False


# -- reading in chunks ---------------------------------------------------------------------------------
def iter_chunks(
    path, chunk_records: int = CHUNK_RECORDS, shard_index: int = 0, shard_count: int = 1
) -> Iterator[Table]:
    """The records of a JSONL, CSV/TSV or Parquet file (optionally gzipped) as Tables of at most
    ``chunk_records`` records (``multifield.data.io.iter_tables``: same records, lines and errors as
    ``read_table``); with ``shard_count`` > 1 only the records whose position in the file (0-based,
    counting records, not lines) is ``shard_index`` modulo ``shard_count``."""
    position = 0
    for table in iter_tables(path, chunk_records):
        if shard_count > 1:
            first, position = position, position + len(table)
            table = table.subset(range((shard_index - first) % shard_count, len(table), shard_count))
        if len(table):
            yield table




# -- training batches, read anew each epoch ----------------------------------------------------------------
class StreamingBatches(keras.utils.PyDataset):
    """Training batches of ``(inputs dict, labels)`` read from a file (a ``StreamSource``) each epoch, shuffled within a buffer
    of ``buffer_records`` records and grouped by the length of the ``sort_by`` field inside it.

    Holds at most the buffer and one chunk of records at a time. An epoch has ``steps`` batches:
    ``ceil(records / batch_size)`` by default; ``drop_remainder`` drops the last short batch and
    ``steps`` (the same on every process of a multi-process run) cuts the epoch short there.
    ``agree_width`` (a function of one width) lets the processes agree on each batch's padded width; ``trim=False``
    keeps the ``sort_by`` field at full width.
    """

    def __init__(
        self,
        source,
        batch_size: int,
        sort_by: str | None,
        seed: int = 0,
        shard_index: int = 0,
        shard_count: int = 1,
        steps: int | None = None,
        drop_remainder: bool = False,
        buffer_records: int = SHUFFLE_BUFFER_RECORDS,
        agree_width: Callable[[int], int] | None = None,
        trim: bool = True,
    ):
        super().__init__()
        self.source = source
        self.trim = trim
        self.batch_size = batch_size
        self.sort_by = sort_by
        self.seed = seed
        self.shard_index, self.shard_count = shard_index, shard_count
        if shard_count > 1 and len(source.shard_counts) != shard_count:
            raise ValueError(f"the source was counted for {len(source.shard_counts)} shards, not {shard_count}")
        local = source.shard_counts[shard_index] if shard_count > 1 else source.count
        full = local // batch_size if drop_remainder else -(-local // batch_size)
        self.steps = max(1, min(steps, full) if steps is not None else full)
        self.drop_remainder = drop_remainder
        self.buffer_records = max(buffer_records, batch_size)
        self.agree_width = agree_width
        self.epoch = 0
        self._iterator = None
        self._served = 0

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        # The file is read in order: ``index`` only counts (Keras' adapter may shuffle the indices of a
        # PyDataset, which would be no shuffle here); each epoch starts the file again.
        if self._iterator is None:
            self._iterator = self._batches(self.epoch)
            self._served = 0
        self._served += 1
        try:
            return next(self._iterator)
        except StopIteration:
            raise DataError(
                f"the file ended after {self._served - 1} batches, {self.steps} expected; did it change during training?",
                self.source.path,
            ) from None

    def on_epoch_begin(self):
        self._iterator = None

    def on_epoch_end(self):
        self.epoch += 1
        self._iterator = None

    def state(self) -> tuple[dict, list[np.ndarray]]:
        """What decides the coming batches (for a checkpoint): the epoch count, which seeds each epoch's shuffle."""
        return {"epoch": self.epoch}, []

    def restore_state(self, state: dict, arrays: list[np.ndarray]) -> None:
        self.epoch = state["epoch"]

    def _batches(self, epoch: int):
        rng = np.random.default_rng([self.seed, epoch])
        encoder = self.source.encoder
        inputs: list[dict] = []
        labels: list[np.ndarray] = []
        buffered = 0
        for chunk in iter_chunks(self.source.path, self.source.chunk_records, self.shard_index, self.shard_count):
            chunk = self.source.keeps(chunk)
            if not len(chunk):
                continue
            inputs.append(encoder.encode_inputs(chunk))
            labels.append(encoder.encode_labels(chunk)[0])
            buffered += len(chunk)
            if buffered >= self.buffer_records:
                x, y = concatenate_padded(inputs), np.concatenate(labels)
                rest = yield from self._emit(x, y, rng, final=False)
                inputs, labels = [{name: ids[rest] for name, ids in x.items()}], [y[rest]]
                buffered = len(rest)
        if buffered:
            yield from self._emit(concatenate_padded(inputs), np.concatenate(labels), rng, final=True)

    def _emit(self, x: dict, y: np.ndarray, rng: np.random.Generator, final: bool):
        """Yield the full batches of the buffer (and, when ``final``, the short one); return the rest."""
        lengths = row_lengths(x[self.sort_by]) if self.sort_by else np.zeros(len(y), dtype=np.int64)
        batches, rest = batch_order(lengths, self.batch_size, rng, keep_short=final and not self.drop_remainder)
        for rows in batches:
            rows = np.sort(rows)
            yield take_batch(x, rows, self.sort_by, lengths, self.agree_width, self.trim), y[rows]
        return rest


__all__ = ["CHUNK_RECORDS", "StreamingBatches", "iter_chunks", "should_stream"]
