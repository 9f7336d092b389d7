"""A stable train/validation split by a hash of each record's id: the same id always lands on the same side."""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def hash_bucket(record_id, buckets: int = BUCKETS) -> int:
    return int(hashlib.sha256(str(record_id).encode("utf-8")).hexdigest(), 16) % buckets


def split_by_hash(ids, validation_fraction: float) -> tuple[list[int], list[int]]:
    """Indices of the training and validation parts; about ``validation_fraction`` of ids go to validation."""
    cut = round(validation_fraction * BUCKETS)
    train, valid = [], []
    for index, record_id in enumerate(ids):
        (valid if hash_bucket(record_id) < cut else train).append(index)
    return train, valid
