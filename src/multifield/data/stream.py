"""Reading training and prediction files chunk by chunk, so that memory does not grow with the file.

A file is read as a sequence of small ``Table`` chunks (``multifield.data.io.iter_tables``: JSONL and
CSV row by row, Parquet by pyarrow record batches), each record keeping its line for error messages. One pass over the training
file fits the vocabularies and the label set, counts the records and keeps the (small, capped)
validation part; each epoch then reads the file again through ``StreamingBatches``, a
``keras.utils.PyDataset`` that shuffles within a bounded buffer. ``predict_file`` writes predictions
chunk by chunk to a temporary file that is renamed into place.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from multifield.config import Config
from multifield.data.batches import batch_order, row_lengths, take_batch
from multifield.data.encoding import (
    RecordEncoder,
    checked_tables,
    document_frequencies,
    field_values,
    label_sets,
    record_ids,
)
from multifield.data.io import Table, iter_tables, with_bad_rows, write_jsonl
from multifield.data.labels import LabelEncoder
from multifield.data.split import BUCKETS
from multifield.data.text import PAD, UNKNOWN, FieldTokenizer
from multifield.errors import DataError

CHUNK_RECORDS = 2048
SHUFFLE_BUFFER_RECORDS = 16_384
MAX_STREAM_VALIDATION = 10_000
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


# -- one pass: vocabularies, labels, counts, validation part ---------------------------------------------
class TokenCounter:
    """Counts a field's tokens as its ``FieldTokenizer`` would (same normalizer and pre-tokenizer), chunk
    by chunk; holds one entry per distinct token, pruned to the most frequent ``max_distinct`` when it
    grows past twice that (so a field of ever-new tokens cannot exhaust memory)."""

    def __init__(self, kind: str, lowercase: bool, max_distinct: int):
        self.kind = kind
        self.blank = FieldTokenizer._blank(kind, lowercase)
        self.max_distinct = max_distinct
        self.counts: Counter = Counter()
        self.pruned = False

    def add(self, values: list) -> None:
        normalize = self.blank.normalizer.normalize_str
        if self.kind == "text":
            # Whitespace separates words, so one call on the joined chunk splits exactly as per value.
            text = "\n".join(value for value in values if value)
            if text:
                self.counts.update(word for word, _ in self.blank.pre_tokenizer.pre_tokenize_str(normalize(text)))
        else:
            items = [item for value in values for item in value]
            if items:
                joined = normalize("\n".join(items)).split("\n")
                self.counts.update(joined if len(joined) == len(items) else [normalize(item) for item in items])
        if len(self.counts) > 2 * self.max_distinct:
            self.counts = Counter(dict(self.counts.most_common(self.max_distinct)))
            self.pruned = True

    def tokenizer(self, max_tokens: int, vocabulary_size: int, min_count: int) -> FieldTokenizer:
        """The fitted tokenizer: the same vocabulary ``FieldTokenizer.fit`` gives on the same values
        (most frequent first, ties in byte order of the token, special tokens first)."""
        kept = sorted(
            ((token, count) for token, count in self.counts.items() if count >= min_count and token),
            key=lambda pair: (-pair[1], pair[0].encode("utf-8")),
        )
        vocabulary = {PAD: 0, UNKNOWN: 1}
        for token, _ in kept:
            if len(vocabulary) >= vocabulary_size:
                break
            vocabulary.setdefault(token, len(vocabulary))
        from tokenizers import models

        tokenizer = self.blank
        tokenizer.model = models.WordLevel(vocab=vocabulary, unk_token=UNKNOWN)
        tokenizer.add_special_tokens([PAD, UNKNOWN])
        return FieldTokenizer(tokenizer, self.kind, max_tokens)


@dataclass
class StreamSource:
    """A training file read anew each epoch, and what the fitting pass learned about it."""

    path: Path
    config: Config
    encoder: RecordEncoder
    count: int
    positives: np.ndarray
    shard_counts: list[int]
    validation_cut: int | None = None
    chunk_records: int = CHUNK_RECORDS
    pruned_fields: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return self.count

    def keeps(self, table: Table) -> Table:
        """The training side of a chunk: records whose id hash is not on the validation side."""
        if self.validation_cut is None:
            return table
        ids = record_ids(self.config, table)
        return table.subset(i for i, record_id in enumerate(ids) if _id_hash(record_id)[0] >= self.validation_cut)

    def document_frequencies(self, names) -> dict[str, tuple[np.ndarray, int]]:
        """For each field of ``names``: how many training records hold each token id, and the number of
        training records (one more pass over the whole file, every shard)."""
        counts = {name: np.zeros(self.encoder.tokenizers[name].vocabulary_size, dtype=np.int64) for name in names}
        for chunk in iter_chunks(self.path, self.chunk_records):
            chunk = self.keeps(chunk)
            values = field_values(self.config, chunk)
            for name in names:
                tokenizer = self.encoder.tokenizers[name]
                counts[name] += document_frequencies(tokenizer.encode(values[name]), tokenizer.vocabulary_size)
        return {name: (count, self.count) for name, count in counts.items()}


def _id_hash(record_id) -> tuple[int, int]:
    """(bucket of ``split_by_hash``, a 64-bit key for finding duplicates) of one id."""
    digest = hashlib.sha256(str(record_id).encode("utf-8")).digest()
    return int.from_bytes(digest, "big") % BUCKETS, int.from_bytes(digest[:8], "big")


def fit_streaming(
    config: Config,
    path,
    split_validation: bool,
    shard_count: int = 1,
    chunk_records: int = CHUNK_RECORDS,
    max_validation: int = MAX_STREAM_VALIDATION,
) -> tuple[StreamSource, Table | None]:
    """One pass over a training file: the fitted encoder, record counts (also per ``shard_count``
    shard), label counts and, with ``split_validation``, the validation part split off by id hash
    (the records of the validation side with the smallest hashes, at most ``max_validation``)."""
    path = Path(path)
    cut = round(config.training.validation_fraction * BUCKETS) if split_validation else None
    counters = {
        name: TokenCounter(field_config.kind, field_config.lowercase, max(1_000_000, 50 * field_config.vocabulary_size))
        for name, field_config in config.fields.items()
    }
    label_counts: Counter = Counter()
    shard_counts = [0] * shard_count
    keys: list[np.ndarray] = []
    validation_heap: list = []
    position = 0
    for chunk in iter_chunks(path, chunk_records):
        ids = record_ids(config, chunk)
        hashes = [_id_hash(record_id) for record_id in ids]
        keys.append(np.fromiter((key for _, key in hashes), dtype=np.uint64, count=len(hashes)))
        train_rows = []
        for index, (bucket, key) in enumerate(hashes):
            if cut is not None and bucket < cut:
                entry = (-bucket, -key, chunk.lines[index], chunk.records[index])
                if len(validation_heap) < max_validation:
                    heapq.heappush(validation_heap, entry)
                elif entry[:2] > validation_heap[0][:2]:
                    heapq.heapreplace(validation_heap, entry)
            else:
                train_rows.append(index)
                shard_counts[(position + index) % shard_count] += 1
        position += len(chunk)
        train = chunk if len(train_rows) == len(chunk) else chunk.subset(train_rows)
        if not len(train):
            continue
        values = field_values(config, train)
        for name, counter in counters.items():
            counter.add(values[name])
        label_counts.update(label for labels in label_sets(config, train, required=True) for label in set(labels))
    _check_unique_keys(config, path, keys, chunk_records)

    count = sum(shard_counts)
    validation = None
    if cut is not None:
        entries = sorted(validation_heap, key=lambda entry: entry[2])
        validation = Table(
            str(path), [entry[3] for entry in entries], [entry[2] for entry in entries], chunk.line_kind, chunk.format
        )
        if not count or not len(validation):
            raise DataError(
                f"too few records to split off a validation part ({count + len(validation)} records); give --valid", path
            )
    kept = sorted(label for label, n in label_counts.items() if n >= config.labels.min_count)
    if not kept:
        raise DataError("no labels found in the training data", path)
    tokenizers = {
        name: counters[name].tokenizer(field_config.max_tokens, field_config.vocabulary_size, field_config.min_count)
        for name, field_config in config.fields.items()
    }
    encoder = RecordEncoder(config, tokenizers, LabelEncoder(kept))
    positives = np.array([label_counts[label] for label in kept], dtype=np.float64)
    source = StreamSource(
        path, config, encoder, count, positives, shard_counts, cut, chunk_records,
        [name for name, counter in counters.items() if counter.pruned],
    )
    return source, validation


def _check_unique_keys(config: Config, path: Path, keys: list[np.ndarray], chunk_records: int) -> None:
    everything = np.sort(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.uint64)
    repeated = everything[1:][everything[1:] == everything[:-1]]
    if not len(repeated):
        return
    # A second pass names the lines, as the in-memory reader does.
    wanted, first_seen = int(repeated[0]), None
    for chunk in iter_chunks(path, chunk_records):
        for index, record_id in enumerate(record_ids(config, chunk)):
            if _id_hash(record_id)[1] == wanted:
                if first_seen is not None:
                    raise DataError(
                        f"duplicate id {record_id!r} (first seen on {chunk.line_kind} {first_seen})",
                        path, chunk.where(index), config.id_field, chunk.line_kind,
                    )
                first_seen = chunk.where(index)


# -- training batches, read anew each epoch ----------------------------------------------------------------
class StreamingBatches(keras.utils.PyDataset):
    """Training batches of ``(inputs dict, labels)`` read from a file each epoch, shuffled within a buffer
    of ``buffer_records`` records and grouped by the length of the ``sort_by`` field inside it.

    Holds at most the buffer and one chunk of records at a time. An epoch has ``steps`` batches:
    ``ceil(records / batch_size)`` by default; ``drop_remainder`` drops the last short batch and
    ``steps`` (the same on every process of a multi-process run) cuts the epoch short there.
    ``agree_width`` (a function of one width) lets the processes agree on each batch's padded width.
    """

    def __init__(
        self,
        source: StreamSource,
        batch_size: int,
        sort_by: str | None,
        seed: int = 0,
        shard_index: int = 0,
        shard_count: int = 1,
        steps: int | None = None,
        drop_remainder: bool = False,
        buffer_records: int = SHUFFLE_BUFFER_RECORDS,
        agree_width: Callable[[int], int] | None = None,
    ):
        super().__init__()
        self.source = source
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
                x, y = _concatenate(inputs), np.concatenate(labels)
                rest = yield from self._emit(x, y, rng, final=False)
                inputs, labels = [{name: ids[rest] for name, ids in x.items()}], [y[rest]]
                buffered = len(rest)
        if buffered:
            yield from self._emit(_concatenate(inputs), np.concatenate(labels), rng, final=True)

    def _emit(self, x: dict, y: np.ndarray, rng: np.random.Generator, final: bool):
        """Yield the full batches of the buffer (and, when ``final``, the short one); return the rest."""
        lengths = row_lengths(x[self.sort_by]) if self.sort_by else np.zeros(len(y), dtype=np.int64)
        batches, rest = batch_order(lengths, self.batch_size, rng, keep_short=final and not self.drop_remainder)
        for rows in batches:
            rows = np.sort(rows)
            yield take_batch(x, rows, self.sort_by, lengths, self.agree_width), y[rows]
        return rest


def _concatenate(parts: list[dict]) -> dict:
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


# -- prediction, chunk by chunk ----------------------------------------------------------------------------
@dataclass
class PredictedFile:
    """What ``predict_file`` wrote: how many lines, and the bad records it left out (``skip_bad_rows``)."""

    count: int
    skipped: list = field(default_factory=list)
    line_kind: str = "line"


def predict_file(
    classifier, input_path, output_path, attention: bool = False, chunk_records: int = 8192, skip_bad_rows: bool = False
) -> PredictedFile:
    """Write one prediction line per input record, in order, reading, checking and predicting chunk by
    chunk (memory does not grow with the file); the output appears (renamed from a temporary file) only
    when every record is written. A bad record fails the run with its file, line and field, or with
    ``skip_bad_rows`` gets an ``{"id", "line", "error"}`` line in its place."""
    result = PredictedFile(0)

    def rows():
        chunks = checked_tables(input_path, classifier.config_, skip_bad_rows=skip_bad_rows, chunk_records=chunk_records)
        for chunk, predictions in classifier.predict_chunks(chunks, attention=attention):
            result.skipped.extend(chunk.skipped)
            result.line_kind = chunk.line_kind
            yield from with_bad_rows(chunk, predictions)

    result.count = write_jsonl(output_path, rows())
    return result
