"""Checking records (ids, field types and sizes, labels) and turning them into the arrays a model reads: one id
matrix per field, one label matrix."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np

from multifield.config import Config
from multifield.data.io import BadRow, Table, iter_tables, read_table
from multifield.data.labels import LabelEncoder, parse_labels
from multifield.data.text import FieldTokenizer, as_items, as_text
from multifield.errors import DataError, DataWarning

# Longer fields are refused: a field of a million characters is far past any max_tokens, and is most
# likely a column of other data (a base64 image, a whole page of HTML).
MAX_FIELD_CHARS = 1_000_000
MAX_ID_CHARS = 1_000


class RecordEncoder:
    """The fitted per-field tokenizers and label vocabulary of a config."""

    def __init__(self, config: Config, tokenizers: dict[str, FieldTokenizer], labels: LabelEncoder):
        self.config = config
        self.tokenizers = tokenizers
        self.labels = labels

    @classmethod
    def fit(cls, config: Config, table: Table) -> RecordEncoder:
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


def document_frequencies(ids: np.ndarray, vocabulary_size: int) -> np.ndarray:
    """For each token id, the number of rows of ``ids`` (a ``(records, time)`` id matrix) that hold it."""
    rows = np.sort(ids, axis=1)
    first = np.ones(rows.shape, dtype=bool)
    first[:, 1:] = rows[:, 1:] != rows[:, :-1]
    return np.bincount(rows[first], minlength=vocabulary_size)


def field_values(config: Config, table: Table) -> dict[str, list]:
    """Each field's values, coerced to a string (text) or a list of strings (items); missing means empty.

    A table from ``check_records`` holds them already (``table.values``): records are coerced once."""
    if table.values is not None and all((name, field.kind) in table.values for name, field in config.fields.items()):
        return {name: table.values[name, field.kind] for name, field in config.fields.items()}
    values: dict[str, list] = {name: [] for name in config.fields}
    notes: dict[tuple[str, str], list[int]] = {}
    for index, record in enumerate(table.records):
        for name, field in config.fields.items():
            try:
                value, note = coerce_field(record.get(name), field.kind, table.format, field.delimiter)
            except ValueError as error:
                raise DataError(str(error), table.path, table.where(index), name, table.line_kind) from None
            if note:
                _count_note(notes, name, note, table.where(index))
            values[name].append(value)
    say_notes(table, notes)
    return values


def coerce_field(
    value, kind: str, file_format: str = "records", delimiter: str = "|"
) -> tuple[str | list[str], str | None]:
    """A field's value as a string (``kind="text"``) or a list of strings (``"items"``), and a note when
    a value of another type was converted because its meaning is clear. Raises ``ValueError``."""
    size = _size(value)
    if size > MAX_FIELD_CHARS:
        raise ValueError(f"{size:,} characters long, over the limit of {MAX_FIELD_CHARS:,} (is it the right column?)")
    if kind == "text" and type(value) is str:  # the common case: nothing to convert
        return value, None
    note = None
    if kind == "text":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            value, note = str(value), "numbers are read as text"
        return as_text(value), note
    if isinstance(value, str) and value.strip() and not value.strip().startswith("[") and file_format != "csv":
        # In CSV every value is a string; elsewhere a list was expected.
        note = f"a string where a list is expected is split on {delimiter!r}"
    return as_items(value, delimiter), note


def _size(value) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(len(item) for item in value if isinstance(item, str))
    return 0


def _count_note(notes: dict, name: str, note: str, line: int | None) -> None:
    notes.setdefault((name, note), []).append(line)


def say_notes(table: Table, notes: dict[tuple[str, str], list[int]]) -> None:
    """Warn (``DataWarning``) once per file, field and kind of conversion."""
    for (name, note), lines in notes.items():
        if (name, note) in table.notes:
            continue
        table.notes.add((name, note))
        where = f"first on {table.line_kind} {lines[0]}" if lines[0] is not None else "first record"
        count = f"{len(lines)} record{'s' if len(lines) > 1 else ''}"
        warnings.warn(DataWarning(f"{table.path}: field {name!r}: {note} ({count}, {where})"), stacklevel=3)


def label_sets(config: Config, table: Table, required: bool = False) -> list[list[str]]:
    key = config.labels.field
    sets = []
    for index, record in enumerate(table.records):
        if required and key not in record:
            raise DataError("the record has no labels", table.path, table.where(index), key, table.line_kind)
        try:
            sets.append(parse_labels(record.get(key), config.labels.delimiter))
        except ValueError as error:
            raise DataError(str(error), table.path, table.where(index), key, table.line_kind) from None
    return sets


def _id_problem(value) -> str | None:
    if value is None or value == "":
        return "the record has no id"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"an id must be a string or an integer, got {type(value).__name__}"
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        return f"an id of {len(value):,} characters, over the limit of {MAX_ID_CHARS:,}"
    return None


# What ``table.notes`` (shared by the chunks of one file) remembers about where a file's ids come from.
_ID_COLUMN, _ID_POSITIONS = "has an id column", "ids are positions"


def ids_from_positions(config: Config, table: Table) -> bool:
    """Whether the records of ``table`` take their line (JSONL, CSV) or row (Parquet, DataFrame) number as
    their id: the file has no id column at all. A record list given in Python (the server's requests) keeps
    its ids as they are. Decided on a file's first chunk, kept for the others, and said once (``DataWarning``)."""
    key = config.id_field
    if table.line_kind == "record" or (key, _ID_COLUMN) in table.notes:
        return False
    if (key, _ID_POSITIONS) in table.notes:
        return True
    if not table.records:
        return False
    if any(key in record for record in table.records):
        table.notes.add((key, _ID_COLUMN))
        return False
    table.notes.add((key, _ID_POSITIONS))
    warnings.warn(
        DataWarning(f"{table.path}: no {key!r} column: each record's id is its {table.line_kind} number"), stacklevel=3
    )
    return True


def _position(table: Table, index: int) -> int:
    return table.lines[index] if table.lines else index + 1


def record_ids(config: Config, table: Table, check: bool = True) -> list:
    """Each record's id: its id field, or its line (row) number in a file without an id column. With
    ``check``, a missing or malformed id raises a ``DataError``; without, it is given as it is (None when
    absent)."""
    if ids_from_positions(config, table):
        return [_position(table, index) for index in range(len(table))]
    ids = []
    for index, record in enumerate(table.records):
        value = record.get(config.id_field)
        problem = _id_problem(value) if check else None
        if problem:
            raise DataError(problem, table.path, table.where(index), config.id_field, table.line_kind)
        ids.append(value)
    return ids


def _labels_problem(config: Config, record: dict) -> str | None:
    key = config.labels.field
    if key not in record:
        return "the record has no labels"
    value = record[key]
    if _size(value) > MAX_FIELD_CHARS:
        return f"{_size(value):,} characters long, over the limit of {MAX_FIELD_CHARS:,}"
    try:
        parse_labels(value, config.labels.delimiter)
    except ValueError as error:
        return f"labels in an unknown format: {error}"
    return None


def check_records(
    config: Config,
    table: Table,
    labels: bool = False,
    skip_bad_rows: bool = False,
    seen: dict | None = None,
    require_some: bool = True,
) -> Table:
    """The records of ``table`` that can be used: each has an id (unique in the file), fields that are a
    string or a list of strings (numbers in text fields are converted, and said once), no field over
    ``MAX_FIELD_CHARS`` and, with ``labels``, labels in a known format. In a file without an id column,
    each record's id is its line (row) number (``ids_from_positions``).

    The first bad record (of the table's own ``skipped`` ones too) raises a ``DataError`` naming the file,
    the line and the field; with ``skip_bad_rows`` bad records are left out and listed in the result's
    ``skipped``. ``seen`` (id →
    line) carries the ids of earlier chunks of the same file; ``require_some`` refuses a table left empty."""
    kept: list[int] = []
    values: dict[tuple[str, str], list] = {(name, field.kind): [] for name, field in config.fields.items()}
    seen = {} if seen is None else seen
    notes: dict[tuple[str, str], list[int]] = {}
    positions = ids_from_positions(config, table)
    for index, record in enumerate(table.records):
        line = table.where(index)
        record_id = _position(table, index) if positions else record.get(config.id_field)
        coerced: list = []
        problem = _record_problem(config, record, labels, notes, line, table.format, coerced, check_id=not positions)
        if problem is None and not positions and record_id in seen:
            problem = BadRow(line, f"duplicate id {record_id!r} (first seen on {table.line_kind} {seen[record_id]})", config.id_field)
        if problem is not None:
            problem.id = record_id if isinstance(record_id, (str, int)) and not isinstance(record_id, bool) else None
            table.skipped.append(problem)
            continue
        seen[record_id] = line
        kept.append(index)
        for key, value in zip(values, coerced):
            values[key].append(value)
    result = table.subset(kept)
    result.values = values
    result.skipped = sorted(table.skipped, key=lambda row: row.line or 0)
    if result.skipped and not skip_bad_rows:
        first, more = result.skipped[0], len(result.skipped) - 1
        after = f"; {more} more bad record{'s' if more > 1 else ''} after it (--skip-bad-rows leaves them out)" if more else ""
        raise DataError(first.reason + after, table.path, first.line, first.field, table.line_kind)
    if require_some and not result.records:
        raise DataError(f"none of its records is usable: {result.skipped_summary()}", table.path)
    say_notes(result, notes)
    return result


def _record_problem(
    config: Config, record: dict, labels: bool, notes: dict, line, file_format: str, coerced: list,
    check_id: bool = True,
) -> BadRow | None:
    """What is wrong with a record, or None; its fields' coerced values are appended to ``coerced``."""
    problem = _id_problem(record.get(config.id_field)) if check_id else None
    if problem:
        return BadRow(line, problem, config.id_field)
    for name, field in config.fields.items():
        try:
            value, note = coerce_field(record.get(name), field.kind, file_format, field.delimiter)
        except ValueError as error:
            return BadRow(line, str(error), name)
        if note:
            _count_note(notes, name, note, line)
        coerced.append(value)
    if labels:
        problem = _labels_problem(config, record)
        if problem:
            return BadRow(line, problem, config.labels.field)
    return None


def load_records(source, config: Config, labels: bool = False, skip_bad_rows: bool = False) -> Table:
    """Read a file (or take a ``Table``) and keep the records that ``check_records`` accepts."""
    # Rows that are not even records (bad JSON, wrong CSV columns) are collected too, so that the error
    # names the first bad line of the file, whatever is wrong with it.
    table = source if isinstance(source, Table) else read_table(source, skip_bad_rows=True, require_some=False)
    return check_records(config, table, labels=labels, skip_bad_rows=skip_bad_rows)


def checked_tables(
    path, config: Config, labels: bool = False, skip_bad_rows: bool = False, chunk_records: int = 8192, require_some: bool = True
):
    """``load_records`` chunk by chunk, for files too big to hold: each chunk's usable records, with its
    bad ones in ``skipped`` (``skip_bad_rows``) or the first bad one raised; ids are unique across chunks.
    A file with no usable record is an error unless ``require_some`` is false."""
    seen: dict = {}
    usable, last = 0, None
    for chunk in iter_tables(path, chunk_records, skip_bad_rows=True, require_some=False):
        last = check_records(config, chunk, labels, skip_bad_rows, seen=seen, require_some=False)
        usable += len(last)
        yield last
    if not usable and (require_some or last is None):
        raise DataError(f"none of its records is usable: {last.skipped_summary() if last is not None else ''}", path)
