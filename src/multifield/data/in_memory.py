"""Training records held in memory, encoded: they answer what training asks of its data (batches, label
counts, document frequencies, a digest for the checkpoint) as a streamed file's ``StreamSource`` does, so
that training never asks which of the two it has."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multifield.data.bucketed_batches import BucketedBatches
from multifield.data.encoding import RecordEncoder, document_frequencies
from multifield.errors import MultifieldError


@dataclass
class InMemoryRecords:
    """The id matrices (one per field) and the label matrix of the training records."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    encoder: RecordEncoder

    def __len__(self) -> int:
        return len(self.labels)

    def arrays(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The id matrices and the label matrix."""
        return self.inputs, self.labels

    def label_totals(self) -> tuple[np.ndarray, int]:
        """Per-label positive counts and the number of records."""
        return np.asarray(self.labels).sum(axis=0), len(self.labels)

    def batches(self, batch_size: int, sort_by: str | None, seed: int, trim: bool = True) -> BucketedBatches:
        return BucketedBatches(self.inputs, self.labels, batch_size, sort_by, seed=seed, trim=trim)

    def shard_batches(
        self, local_batch: int, global_batch: int, sort_by, seed: int, index: int, count: int, agree_width, trim: bool = True
    ):
        """This process's shard (record ``i`` goes to process ``i % count``) in equal, full batches."""
        records = len(self.labels)
        if records // count < local_batch:
            raise MultifieldError(
                f"{records} training records are too few for a global batch of {global_batch} over {count} processes"
            )
        steps = max(1, (records // count) // local_batch)
        shard = {name: ids[index::count] for name, ids in self.inputs.items()}
        return BucketedBatches(
            shard, self.labels[index::count], local_batch, sort_by, seed=seed, drop_remainder=True, steps=steps,
            agree_width=agree_width, trim=trim,
        )

    def update_digest(self, digest) -> None:
        """What identifies the training data in a checkpoint's fingerprint: every id and label, with shapes."""
        update_digest(digest, self.inputs)
        update_digest(digest, self.labels)

    def document_frequencies(self, names) -> dict[str, tuple[np.ndarray, int]]:
        """For each field of ``names``: how many training records hold each token id, and the record count."""
        return {
            name: (document_frequencies(self.inputs[name], self.encoder.tokenizers[name].vocabulary_size), len(self))
            for name in names
        }


def update_digest(digest, arrays) -> None:
    """Feed an array, or a dict of arrays (in name order), to a hashlib digest: names, dtypes, shapes and bytes."""
    for name, value in sorted(arrays.items()) if isinstance(arrays, dict) else [("", arrays)]:
        value = np.ascontiguousarray(value)
        digest.update(f"{name}{value.dtype}{value.shape}".encode())
        digest.update(value.tobytes())


__all__ = ["InMemoryRecords", "update_digest"]
