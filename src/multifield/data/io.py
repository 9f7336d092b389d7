"""Reading records from JSONL, CSV or Parquet files, with errors that name the file and the line."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from multifield.errors import DataError

JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass
class Table:
    """Records of one file, each with the line (JSONL), row (CSV) or row index (Parquet) it came from."""

    path: str
    records: list[dict]
    lines: list[int] = field(default_factory=list)
    line_kind: str = "line"

    def __len__(self) -> int:
        return len(self.records)

    def where(self, index: int) -> int | None:
        return self.lines[index] if self.lines else None

    def subset(self, indices: Iterable[int]) -> "Table":
        indices = list(indices)
        return Table(
            self.path,
            [self.records[i] for i in indices],
            [self.lines[i] for i in indices] if self.lines else [],
            self.line_kind,
        )


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


def _read_jsonl(path: Path, compressed: bool) -> Table:
    records, lines = [], []
    # Bytes are decoded line by line, so that a bad byte is reported on its own line.
    with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"not UTF-8 text (byte {error.start + 1} of the line)", path, number) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"not valid JSON ({error.msg} at column {error.colno})", path, number) from None
            if not isinstance(record, dict):
                raise DataError(f"expected a JSON object, got {type(record).__name__}", path, number)
            records.append(record)
            lines.append(number)
    return Table(str(path), records, lines, "line")


def _read_csv(path: Path, compressed: bool, separator: str) -> Table:
    import pandas as pd

    try:
        frame = pd.read_csv(
            path,
            sep=separator,
            dtype=str,
            keep_default_na=False,
            compression="gzip" if compressed else None,
            encoding="utf-8",
        )
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text", path) from None
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty", path) from None
    except pd.errors.ParserError as error:
        raise DataError(f"not valid CSV: {str(error).strip()}", path) from None
    # Row 1 is the header, so the first record is on line 2 (for files without quoted newlines).
    return Table(str(path), frame.to_dict(orient="records"), list(range(2, len(frame) + 2)), "line")


def _read_parquet(path: Path) -> Table:
    import pyarrow.parquet as pq

    try:
        records = pq.read_table(path).to_pylist()
    except Exception as error:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"not a readable Parquet file: {error}", path) from None
    return Table(str(path), records, list(range(1, len(records) + 1)), "row")


def read_table(path: str | os.PathLike) -> Table:
    """Read every record of a JSONL (.jsonl/.json/.ndjson), CSV/TSV or Parquet file, optionally gzipped."""
    path = Path(path)
    kind, compressed = _format_of(path)
    if not path.is_file():
        raise DataError("no such file", path)
    if kind == "jsonl":
        table = _read_jsonl(path, compressed)
    elif kind in ("csv", "tsv"):
        table = _read_csv(path, compressed, "," if kind == "csv" else "\t")
    else:
        table = _read_parquet(path)
    if not table.records:
        raise DataError("the file holds no records", path)
    return table


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows as JSON lines to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    count = 0
    try:
        with handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        os.replace(handle.name, path)
    except BaseException:
        os.unlink(handle.name)
        raise
    return count
