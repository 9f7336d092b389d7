"""The one pass over a streamed training file that fits the vocabularies and the label set, counts the
records and keeps the (small, capped) validation part: a ``StreamSource``, which then answers what training
asks of its data (batches, label counts, document frequencies) as in-memory records do."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import models

from multifield.config import Config
from multifield.data.encoding import RecordEncoder, document_frequencies, field_values, label_sets, record_ids
from multifield.data.io import Table
from multifield.data.labels import LabelEncoder
from multifield.data.split import BUCKETS
from multifield.data.stream import CHUNK_RECORDS, StreamingBatches, iter_chunks
from multifield.data.text import PAD, UNKNOWN, FieldTokenizer
from multifield.errors import DataError

MAX_STREAM_VALIDATION = 10_000


class TokenCounter:
    """Counts a field's tokens as its ``FieldTokenizer`` would (same normalizer and pre-tokenizer), chunk
    by chunk; holds one entry per distinct token, pruned to the most frequent ``max_distinct`` when it
    grows past twice that (so a field of ever-new tokens cannot exhaust memory)."""

    def __init__(self, kind: str, lowercase: bool, max_distinct: int):
        self.kind = kind
        self.blank = FieldTokenizer.blank(kind, lowercase)
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

    def arrays(self) -> None:
        """None: a streamed file is never held in memory whole."""
        return None

    def label_totals(self) -> tuple[np.ndarray, int]:
        """Per-label positive counts and the number of training records."""
        return self.positives, self.count

    def batches(self, batch_size: int, sort_by: str | None, seed: int, trim: bool = True) -> StreamingBatches:
        return StreamingBatches(self, batch_size, sort_by, seed=seed, trim=trim)

    def shard_batches(
        self, local_batch: int, global_batch: int, sort_by, seed: int, index: int, count: int, agree_width, trim: bool = True
    ):
        """This process's shard (record ``i`` goes to process ``i % count``) in equal, full batches."""
        steps = max(1, min(self.shard_counts) // local_batch)
        return StreamingBatches(
            self, local_batch, sort_by, seed=seed, shard_index=index, shard_count=count,
            steps=steps, drop_remainder=True, agree_width=agree_width, trim=trim,
        )

    def update_digest(self, digest) -> None:
        """What identifies the training data in a checkpoint's fingerprint: the file's path, size and record count."""
        text = f"{Path(self.path).resolve()}{Path(self.path).stat().st_size}{self.count}".encode()
        digest.update(text)
        digest.update(text)  # once for the inputs, once for the labels, which are the same file

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


__all__ = ["MAX_STREAM_VALIDATION", "StreamSource", "TokenCounter", "fit_streaming"]
