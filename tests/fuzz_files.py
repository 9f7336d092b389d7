"""Hostile data files for the readers of train, predict and evaluate: hypothesis strategies for JSONL, CSV and
Parquet files (broken quoting, NUL bytes, huge fields, odd encodings, wrong types, duplicate columns, truncated
files), and the check every outcome must pass: success, or a one-line ``MultifieldError`` (what the command line
prints as one line with exit 2); never another exception. Used by ``tests/test_fuzz_readers.py`` (a short run)
and ``benchmarks/fuzz_readers.py`` (a long one)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from multifield.errors import MultifieldError

FIELDS = ["id", "title", "plot", "actors", "features", "reviews", "genres"]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252", "utf-32"]
HUGE = 300_000  # characters: over the server's default field limit, far over any field's max_tokens

names = st.sampled_from(FIELDS) | st.text(max_size=6)
texts = (
    st.text(max_size=40)
    | st.text(alphabet=st.sampled_from(['"', ",", "\n", "\r", "\x00", "\\", "'", "\t", " ", "a", "é", "\ufeff", "\u2028"]),
              max_size=20)
    | st.builds(lambda char, count: char * count, st.sampled_from(["a", "é ", "\x00", '"', "\n"]), st.integers(1_000, HUGE))
)
scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True) | texts
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                      max_leaves=8)
words = st.text(alphabet=st.sampled_from("abcdefghij éü-'\x00\n\""), min_size=1, max_size=30)
# Mostly well-typed records (so that files also succeed, and predict --skip-bad-rows writes their lines), some
# with any value in any field.
plausible = st.fixed_dictionaries(
    {"plot": words},
    optional={"id": st.text(min_size=1, max_size=8) | st.integers(0, 10**6), "title": words, "reviews": words | st.none(),
              "actors": st.lists(words, max_size=3) | words, "features": st.lists(words, max_size=3),
              "genres": st.lists(st.sampled_from(["Drama", "Comedy", "Action", "Nowhere"]), max_size=3) | values},
)
records = plausible | plausible | st.dictionaries(names, values, max_size=8)


@dataclass
class Sample:
    """A generated file: its name (the suffix says its format) and bytes."""

    name: str
    content: bytes

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        path.write_bytes(self.content)
        return path


@st.composite
def jsonl_lines(draw) -> bytes:
    record = draw(records)
    kind = draw(st.sampled_from(["record", "record", "record", "truncated", "junk", "not-object", "deep", "blank"]))
    text = json.dumps(record, ensure_ascii=draw(st.booleans()))  # NaN and Infinity as JSON's extension writes them
    if kind == "truncated":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif kind == "not-object":
        text = json.dumps(draw(values))
    elif kind == "deep":
        depth = draw(st.integers(500, 20_000))
        text = '{"plot":' + "[" * depth + "]" * depth + "}"
    elif kind == "blank":
        text = draw(st.sampled_from(["", " ", "\t", "\r"]))
    if kind == "junk":
        return draw(st.binary(max_size=60))
    return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")


@st.composite
def jsonl_files(draw) -> Sample:
    lines = draw(st.lists(jsonl_lines(), max_size=6))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return Sample(draw(st.sampled_from(["data.jsonl", "data.json", "data.ndjson"])), b"".join(line + ending for line in lines))


@st.composite
def csv_files(draw) -> Sample:
    header = draw(st.lists(names, min_size=0, max_size=8))
    width = len(header)
    rows = draw(st.lists(st.lists(texts, min_size=max(0, width - 1), max_size=width + 1), max_size=5))
    buffer = io.StringIO()
    if draw(st.booleans()):  # well quoted
        csv.writer(buffer).writerows([header, *rows])
    else:  # quoting left to chance: quotes and separators inside fields break the rows
        buffer.write("".join(",".join(map(str, row)) + "\n" for row in [header, *rows]))
    content = buffer.getvalue().encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    if draw(st.booleans()):
        content += draw(st.binary(max_size=40))
    return Sample(draw(st.sampled_from(["data.csv", "data.tsv"])), content)


def _column(draw, size: int):
    import pyarrow as pa

    kind = draw(st.sampled_from(["string", "int", "float", "bool", "list", "list-int", "binary", "struct", "null"]))
    cells = {
        "string": st.none() | texts,
        "int": st.none() | st.integers(-(2**63), 2**63 - 1),
        "float": st.none() | st.floats(allow_nan=True, allow_infinity=True),
        "bool": st.none() | st.booleans(),
        "list": st.none() | st.lists(st.none() | texts, max_size=3),
        "list-int": st.none() | st.lists(st.integers(-5, 5), max_size=3),
        "binary": st.none() | st.binary(max_size=20),
        "struct": st.none() | st.fixed_dictionaries({"a": st.none() | st.integers(0, 9), "b": st.none() | texts}),
        "null": st.none(),
    }[kind]
    return pa.array(draw(st.lists(cells, min_size=size, max_size=size)), type=pa.null() if kind == "null" else None)


@st.composite
def parquet_files(draw) -> Sample:
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = draw(st.integers(0, 5))
    columns = draw(st.lists(names, max_size=6))  # repeated names are kept: a Parquet schema allows them
    table = pa.Table.from_arrays([_column(draw, size) for _ in columns], names=columns) if columns else pa.table({})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    content = buffer.getvalue()
    if draw(st.integers(0, 4)) == 0:  # a truncated or damaged file
        cut = draw(st.integers(0, len(content)))
        content = content[:cut] + draw(st.binary(max_size=8))
    return Sample("data.parquet", content)


data_files = jsonl_files() | csv_files() | parquet_files()


def input_records(sample: Sample, path: Path) -> int | None:
    """How many records the file holds as its format defines them (None: not a readable file of its format),
    counted without multifield's readers: what ``predict --skip-bad-rows`` must write a line for."""
    suffix = path.suffix
    if suffix in (".jsonl", ".json", ".ndjson"):
        lines = sample.content.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        count = 0
        for number, line in enumerate(lines, start=1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                blank = not line.decode("utf-8").strip()
            except UnicodeDecodeError:
                blank = False
            count += not blank
        return count
    if suffix in (".csv", ".tsv"):
        text = sample.content.decode("utf-8-sig", errors="surrogateescape")
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="," if suffix == ".csv" else "\t"))
        except csv.Error:
            return None
        return sum(1 for row in rows[1:] if row)
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(io.BytesIO(sample.content)).metadata.num_rows
    except Exception:  # a damaged file: its records cannot be counted
        return None


def one_line_error(call) -> tuple[object | None, MultifieldError | None]:
    """``call()``'s result, or the ``MultifieldError`` it raised, which must be one non-empty line. Any other
    exception propagates: the command line would show a traceback for it."""
    try:
        return call(), None
    except MultifieldError as error:
        message = str(error)
        assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
        return None, error


@dataclass
class Readers:
    """What train, predict and evaluate call on a data file, loaded once: the predictor and the estimator."""

    predictor: object
    classifier: object

    @classmethod
    def load(cls, bundle: Path) -> Readers:
        from multifield.classifier import load
        from multifield.inference import Predictor

        return cls(Predictor.load(bundle), load(bundle))

    def check(self, sample: Sample, folder: Path) -> list[str]:
        """Every reader on ``sample``, with and without skipping bad rows; the outcomes, for counting."""
        from rich.console import Console

        from multifield.runs import read_records

        path = sample.write(folder)
        expected = input_records(sample, path)
        console = Console(file=io.StringIO())
        outcomes = []
        for skip in (False, True):
            # train and evaluate read labelled records (runs.read_records); evaluate then scores them.
            table, error = one_line_error(lambda: read_records(path, self.classifier.config_, True, skip, console))
            outcomes.append(f"read{'-skip' if skip else ''}: {'ok' if error is None else 'error'}")
            if table is not None and len(table):
                one_line_error(lambda: self.classifier.evaluate(table))
            out = folder / "predictions.jsonl"
            written, error = one_line_error(lambda: self.predictor.predict_file(path, out, skip_bad_rows=skip))
            outcomes.append(f"predict{'-skip' if skip else ''}: {'ok' if error is None else 'error'}")
            if written is not None:
                lines = out.read_bytes().splitlines()
                assert len(lines) == written.count, (len(lines), written.count)
                if skip and expected is not None:
                    assert written.count == expected, (written.count, expected)
            elif skip and expected and "none of its records is usable" in str(error):
                # Every record was read and found bad: each gets its error line, none is dropped.
                raise AssertionError(f"predict --skip-bad-rows wrote nothing for {expected} records: {error}")
                out.unlink()
        return outcomes
