"""Label sets: parsing the formats users give them in, and turning them into indicator matrices."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Sequence

import numpy as np

from multifield.errors import DataError


def parse_labels(value, delimiter: str = "|") -> list[str]:
    """A list, a JSON-array string (``'["Drama", "War"]'``) or a delimited string (``"Drama|War"``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ValueError(f"labels start with '[' but are not a JSON array: {text[:60]!r}") from None
        else:
            return [part.strip() for part in text.split(delimiter) if part.strip()]
    if isinstance(value, (list, tuple, np.ndarray)):
        labels = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"a label must be a string, got {type(item).__name__} {item!r}")
            if item.strip():
                labels.append(item.strip())
        return labels
    raise ValueError(f"labels must be a list or a string, got {type(value).__name__}")


class LabelEncoder:
    """The label vocabulary of a training set (sorted by name) and its indicator matrices."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def fit(cls, label_sets: Sequence[list[str]], min_count: int = 1) -> "LabelEncoder":
        counts = Counter(label for labels in label_sets for label in set(labels))
        kept = sorted(label for label, count in counts.items() if count >= min_count)
        if not kept:
            raise DataError("no labels found in the training data")
        return cls(kept)

    def transform(self, label_sets: Sequence[list[str]]) -> tuple[np.ndarray, Counter]:
        """The (records, labels) 0/1 matrix, and a count of labels outside the vocabulary (ignored)."""
        matrix = np.zeros((len(label_sets), len(self.labels)), dtype=np.float32)
        unknown: Counter = Counter()
        for row, labels in enumerate(label_sets):
            for label in labels:
                column = self.index.get(label)
                if column is None:
                    unknown[label] += 1
                else:
                    matrix[row, column] = 1.0
        return matrix, unknown

    def decode(self, indicators: np.ndarray) -> list[list[str]]:
        return [[self.labels[j] for j in np.flatnonzero(row)] for row in indicators]
