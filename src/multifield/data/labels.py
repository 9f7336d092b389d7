"""Label sets: parsing the formats users give them in, and turning them into indicator matrices."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from multifield.data.text import as_items
from multifield.errors import DataError


def parse_labels(value, delimiter: str = "|") -> list[str]:
    """A list, a JSON-array string (``'["Drama", "War"]'``) or a delimited string (``"Drama|War"``)."""
    return as_items(value, delimiter, strict_json=True)


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
