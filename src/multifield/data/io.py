"""Reading records from JSONL, CSV or Parquet files, with errors that name the file and the line."""

from __future__ import annotations

import csv
import gzip
import json
import os
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from multifield.errors import DataError, MultifieldError
from multifield.files import write_lines

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
BOM = b"\xef\xbb\xbf"


@dataclass
class BadRow:
    """A record that could not be used: where it is, which field, and why (one line)."""

    line: int | None
    reason: str
    field: str | None = None
    id: str | int | None = None

    def error(self, table: Table) -> DataError:
        return DataError(self.reason, table.path, self.line, self.field, table.line_kind)


@dataclass
class Table:
    """Records of one file, each with the line (JSONL, CSV) or row (Parquet) it came from.

    ``skipped`` holds the rows left out by ``skip_bad_rows``; ``notes`` the coercions already reported
    (shared with subsets, so that each is said once); ``values``, once the records are checked, each
    field's coerced values by (field, kind) (``multifield.data.encoding.check_records``).
    """

    path: str
    records: list[dict]
    lines: list[int] = field(default_factory=list)
    line_kind: str = "line"
    format: str = "records"
    skipped: list[BadRow] = field(default_factory=list)
    notes: set = field(default_factory=set)
    values: dict[tuple[str, str], list] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def where(self, index: int) -> int | None:
        return self.lines[index] if self.lines else None

    def subset(self, indices: Iterable[int]) -> Table:
        indices = list(indices)
        return Table(
            self.path,
            [self.records[i] for i in indices],
            [self.lines[i] for i in indices] if self.lines else [],
            self.line_kind,
            self.format,
            notes=self.notes,
            values=None if self.values is None else {key: [column[i] for i in indices] for key, column in self.values.items()},
        )

    def bad(self, row: BadRow, skip_bad_rows: bool) -> None:
        """Remember a bad row, or raise its error when bad rows are not skipped."""
        if not skip_bad_rows:
            raise row.error(self)
        self.skipped.append(row)

    def skipped_summary(self, shown: int = 5) -> str | None:
        """One line: how many rows were skipped, their first line numbers and the first reason."""
        return skipped_summary(self.skipped, self.line_kind, shown)


def skipped_summary(skipped: list[BadRow], line_kind: str = "line", shown: int = 5) -> str | None:
    """``3 bad records skipped (lines 4, 9, 17); line 4: not valid JSON (...)``, or None for none."""
    if not skipped:
        return None
    rows = sorted(skipped, key=lambda row: row.line or 0)
    numbers = ", ".join(str(row.line) for row in rows[:shown]) + (", ..." if len(rows) > shown else "")
    first = rows[0]
    reason = f"field {first.field!r}: {first.reason}" if first.field else first.reason
    plural = "s" if len(rows) > 1 else ""
    return f"{len(rows)} bad record{plural} skipped ({line_kind}{plural} {numbers}); {line_kind} {first.line}: {reason}"


def _format_of(path: Path) -> tuple[str, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in JSONL_SUFFIXES:
        return "jsonl", compressed
    if suffix in (".csv", ".tsv"):
        return suffix[1:], compressed
    if suffix in (".parquet", ".pq"):
        return "parquet", compressed
    raise DataError(f"unknown file type {''.join(path.suffixes) or '(none)'}; use .jsonl, .csv or .parquet", path)


def _jsonl_rows(path: Path, compressed: bool):
    """``(line, record)`` or a ``BadRow`` for each non-blank line."""
    # Bytes are decoded line by line, so that a bad byte is reported on its own line.
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            # orjson reads a well-formed line about 3x faster than the json module; a line it refuses (bad
            # bytes or JSON, a blank line, NaN) or may have read otherwise (a huge number) goes the json
            # module's way, which accepts what it always did and words the error the same.
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pass
            else:
                if isinstance(record, dict) and not _holds_huge_number(record):
                    yield number, record
                    continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                yield BadRow(number, f"not UTF-8 text (byte {error.start + 1} of the line)")
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield BadRow(number, f"not valid JSON ({error.msg} at column {error.colno})")
                continue
            except RecursionError:
                yield BadRow(number, "not valid JSON (nested too deeply)")
                continue
            if not isinstance(record, dict):
                yield BadRow(number, f"expected a JSON object, got {_json_type(record)}")
                continue
            yield number, record


def _holds_huge_number(value) -> bool:
    """Whether a parsed JSON value holds a number beyond ±2**63 anywhere: orjson reads an integer of over
    64 bits as a float, where the json module keeps it exact. Walked with a stack, not by recursion: orjson
    reads arrays nested 1024 deep, deeper than Python's recursion limit allows a recursive walk."""
    stack = [value]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is float:
            if not -9.2e18 < value < 9.2e18:
                return True
        elif kind is dict:
            stack.extend(value.values())
        elif kind is list:
            stack.extend(value)
    return False


def _json_type(value) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def _is_utf8(text: str) -> bool:
    # Bytes that are not UTF-8 were read as lone surrogates ("surrogateescape").
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _csv_rows(path: Path, compressed: bool, separator: str):
    """``(line, record)`` or a ``BadRow`` for each row after the header; every value a string."""
    # The csv module (not pandas or pyarrow) so that each row keeps its line and a bad row is one bad row.
    csv.field_size_limit(2**31 - 1)  # long fields are judged later, with a clear message
    opener = gzip.open if compressed else open
    with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=separator)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError("the file is empty", path)
            if not all(_is_utf8(name) for name in header):
                raise DataError("the header is not UTF-8 text", path, 1)
            header = [name.strip() for name in header]
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise DataError(f"the header names column {repeated[0]!r} more than once", path, 1)
            end = reader.line_num
            for row in reader:
                # A quoted field may span lines: a row starts on the line after the previous row ended.
                number, end = end + 1, reader.line_num
                if not row:  # a blank line
                    continue
                if len(row) != len(header):
                    yield BadRow(number, f"not valid CSV: {len(row)} columns where the header has {len(header)}")
                    continue
                bad_column = next((name for name, cell in zip(header, row) if not _is_utf8(cell)), None)
                if bad_column is not None:
                    yield BadRow(number, "not UTF-8 text", bad_column)
                    continue
                yield number, dict(zip(header, row))
        except csv.Error as error:
            raise DataError(f"not valid CSV ({error})", path, reader.line_num) from None


def _parquet_rows(path: Path):
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=4096)
        number = 0
        for batch in batches:
            for record in batch.to_pylist():
                number += 1
                yield number, record
    except Exception as error:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"not a readable Parquet file: {error}", path) from None


def iter_tables(
    path: str | os.PathLike, chunk_records: int | None = None, skip_bad_rows: bool = False, require_some: bool = True
) -> Iterator[Table]:
    """The records of a JSONL (.jsonl/.json/.ndjson), CSV/TSV or Parquet file (optionally gzipped) as
    Tables of at most ``chunk_records`` records (None: one Table), read as they are needed.

    A row that is not JSON, not UTF-8, or (CSV) has the wrong number of columns raises a ``DataError``
    naming the file and the line; with ``skip_bad_rows`` it goes to the ``skipped`` of its chunk. An empty
    file is an error; so is a file of bad rows only, unless ``require_some`` is False."""
    path = Path(path)
    kind, compressed = _format_of(path)
    if not path.is_file():
        raise DataError("is a directory, not a file" if path.is_dir() else "no such file", path)
    if kind == "jsonl":
        rows, line_kind = _jsonl_rows(path, compressed), "line"
    elif kind in ("csv", "tsv"):
        rows, line_kind = _csv_rows(path, compressed, "," if kind == "csv" else "\t"), "line"
    else:
        rows, line_kind = _parquet_rows(path), "row"
    notes: set = set()
    chunk = Table(str(path), [], [], line_kind, kind if kind != "tsv" else "csv", notes=notes)
    records = skipped = 0
    try:
        for row in rows:
            if isinstance(row, BadRow):
                chunk.bad(row, skip_bad_rows)
                skipped += 1
                continue
            chunk.records.append(row[1])
            chunk.lines.append(row[0])
            records += 1
            if chunk_records is not None and len(chunk.records) >= chunk_records:
                yield chunk
                chunk = Table(chunk.path, [], [], chunk.line_kind, chunk.format, notes=notes)
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"not a readable gzip file ({error})", path) from None
    except PermissionError:
        raise DataError("cannot be read (permission denied)", path) from None
    if not records:
        if skipped and not require_some:
            yield chunk
            return
        if skipped:
            raise DataError(f"none of its records is usable: {chunk.skipped_summary()}", path)
        raise DataError("the file holds no records", path)
    if chunk.records or chunk.skipped:
        yield chunk


def read_table(path: str | os.PathLike, skip_bad_rows: bool = False, require_some: bool = True) -> Table:
    """Every record of a file (see ``iter_tables``) as one Table."""
    return next(iter(iter_tables(path, None, skip_bad_rows, require_some)))


def as_table(data, name: str = "<records>") -> Table:
    """A file path, a pandas DataFrame, a list of record dicts or a Table, as a Table."""
    if isinstance(data, Table):
        return data
    if isinstance(data, (str, os.PathLike)):
        return read_table(data)
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        records = data.to_dict(orient="records")
        return Table("<DataFrame>", records, list(range(1, len(records) + 1)), "row")
    if isinstance(data, (list, tuple)) and all(isinstance(record, dict) for record in data):
        return Table(name, list(data), list(range(1, len(data) + 1)), "record")
    raise MultifieldError(f"expected a file path, a DataFrame or a list of dicts, got {type(data).__name__}")


def with_bad_rows(table: Table, rows: list[dict]) -> list[dict]:
    """``rows`` (one per record of ``table``) with an ``{"id", "line", "error"}`` row put in the place of each
    skipped record, so that every input record has its output row, in input order."""
    if not table.skipped:
        return list(rows)
    placed = [(line, 0, row) for line, row in zip(table.lines, rows)]
    placed += [
        (bad.line or 0, 1, {"id": bad.id, table.line_kind: bad.line, "error": f"field {bad.field!r}: {bad.reason}" if bad.field else bad.reason})
        for bad in table.skipped
    ]
    return [row for _, _, row in sorted(placed, key=lambda item: (item[0], item[1]))]


def json_line(row: dict) -> bytes:
    """One JSON line, UTF-8, compact (orjson); NaN and infinity become null."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # what orjson does not take (an integer over 64 bits, a key that is not a string)
        return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows as JSON lines, atomically (``multifield.files``); how many were written."""
    return write_lines(path, (json_line(row) for row in rows))
