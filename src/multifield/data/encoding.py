"""Turning validated records into the arrays a model reads: one id matrix per field, one label matrix."""

from __future__ import annotations

from collections import Counter

import numpy as np

from multifield.config import Config
from multifield.data.io import Table
from multifield.data.labels import LabelEncoder, parse_labels
from multifield.data.text import FieldTokenizer, as_items, as_text
from multifield.errors import DataError


class RecordEncoder:
    """The fitted per-field tokenizers and label vocabulary of a config."""

    def __init__(self, config: Config, tokenizers: dict[str, FieldTokenizer], labels: LabelEncoder):
        self.config = config
        self.tokenizers = tokenizers
        self.labels = labels

    @classmethod
    def fit(cls, config: Config, table: Table) -> "RecordEncoder":
        """Fit the tokenizers and the label vocabulary on training records only."""
        values = field_values(config, table)
        tokenizers = {
            name: FieldTokenizer.fit(
                values[name],
                kind=field.kind,
                max_tokens=field.max_tokens,
                vocabulary_size=field.vocabulary_size,
                min_count=field.min_count,
                lowercase=field.lowercase,
            )
            for name, field in config.fields.items()
        }
        labels = LabelEncoder.fit(label_sets(config, table, required=True), config.labels.min_count)
        return cls(config, tokenizers, labels)

    def encode_inputs(self, table: Table) -> dict[str, np.ndarray]:
        return self.encode_values(field_values(self.config, table))

    def encode_values(self, values: dict[str, list]) -> dict[str, np.ndarray]:
        """Id matrices of values already coerced by ``field_values``."""
        return {name: tokenizer.encode(values[name]) for name, tokenizer in self.tokenizers.items()}

    def encode_labels(self, table: Table) -> tuple[np.ndarray, Counter]:
        return self.labels.transform(label_sets(self.config, table, required=True))


def field_values(config: Config, table: Table) -> dict[str, list]:
    """Each field's values, coerced to a string (text) or a list of strings (items); missing means empty."""
    values: dict[str, list] = {name: [] for name in config.fields}
    for index, record in enumerate(table.records):
        for name, field in config.fields.items():
            try:
                value = as_text(record.get(name)) if field.kind == "text" else as_items(record.get(name))
            except ValueError as error:
                raise DataError(str(error), table.path, table.where(index), name) from None
            values[name].append(value)
    return values


def label_sets(config: Config, table: Table, required: bool = False) -> list[list[str]]:
    key = config.labels.field
    sets = []
    for index, record in enumerate(table.records):
        if required and key not in record:
            raise DataError("the record has no labels", table.path, table.where(index), key)
        try:
            sets.append(parse_labels(record.get(key), config.labels.delimiter))
        except ValueError as error:
            raise DataError(str(error), table.path, table.where(index), key) from None
    return sets


def record_ids(config: Config, table: Table) -> list:
    ids = []
    for index, record in enumerate(table.records):
        value = record.get(config.id_field)
        if value is None or value == "":
            raise DataError("the record has no id", table.path, table.where(index), config.id_field)
        if not isinstance(value, (str, int)):
            raise DataError(f"an id must be a string or an integer, got {type(value).__name__}", table.path, table.where(index), config.id_field)
        ids.append(value)
    return ids
