"""Profiling a data file and writing a config that trains well on it unedited (``multifield init``).

Each column of a sample of the file is given a kind (long text, short text, items, a category, numbers, id-like,
constant, empty, ...) from evidence measured on it, and the kind decides its encoder: the recipe of
``configs/movies.toml`` (a BiGRU with attention for long text, attention or pooling for short text, pooled items,
a wide TF-IDF part on every field) with sizes taken from the data. ``profile_file`` measures, ``config_toml``
writes the commented TOML, ``decisions_table`` shows what was decided and why.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from dataclasses import field as _default
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rich.table import Table as RichTable

from multifield.config import load_config
from multifield.data.io import Table, iter_tables
from multifield.data.labels import parse_labels
from multifield.data.vectors import vector_package_files
from multifield.errors import DataError, MultifieldError
from multifield.files import write_text

SAMPLE_RECORDS = 5000

# Tokens as a text field's tokenizer splits them (the ``Whitespace`` pre-tokenizer of ``tokenizers``).
TOKEN = re.compile(r"\w+|[^\w\s]+")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)
DATE = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?|\d{1,2}/\d{1,2}/\d{2,4}")
FIELD_DELIMITERS = ("|", ";", ",")
LABEL_DELIMITERS = ("|", ";", ",", "/")

# Where one kind ends and the next begins (tokens of a value, share of values), and the caps on sizes.
LONG_MEDIAN_TOKENS, LONG_P95_TOKENS = 20, 64  # a long text: a BiGRU reads it
ATTENTION_MEDIAN_TOKENS = 5  # a short text of a sentence or so: attention without recurrence
MAX_TOKENS_CAP = {"rnn_attention": 256, "attention": 64, "pooled": 32, "items": 32}
# With this many labels or more, the longest text gets label-wise attention (one attention query per label).
LABEL_ATTENTION_MIN_LABELS = 100
NEARLY_EMPTY_SHARE = 0.01
MIN_VECTOR_COVERAGE = 0.5
# Used for text fields when its package is installed and no --vectors file is given.
DEFAULT_VECTOR_PACKAGE = "glove-6b-50d"

class InitError(MultifieldError):
    """``multifield init`` cannot write a config for this file and these flags; the message says why."""


@dataclass
class Column:
    """One column of the sample: what it holds (``kind``), the measurements that say so (``evidence``), and what the
    config does with it (``decision``; ``field`` is its field config, None when it is left out)."""

    name: str
    kind: str
    evidence: str
    decision: str
    field: dict | None = None
    why: str = ""
    stats: dict = _default(default_factory=dict)


@dataclass
class Labels:
    name: str
    format: str
    delimiter: str
    evidence: str
    stats: dict = _default(default_factory=dict)

    @property
    def decision(self) -> str:
        return {
            "list": "labels: lists",
            "JSON-array string": "labels: JSON-array strings",
            "delimited string": f"labels: strings split on {self.delimiter!r}",
        }.get(self.format, "labels: one label a record")


@dataclass
class Profile:
    """What ``profile_file`` found in a sample of a data file."""

    path: Path
    format: str
    sample: int
    complete: bool
    labels: Labels
    id_field: str
    id_note: str
    columns: list[Column]
    bad_rows: int = 0
    vectors: dict | None = None

    @property
    def fields(self) -> list[Column]:
        return [column for column in self.columns if column.field is not None]

    @property
    def left_out(self) -> list[Column]:
        return [column for column in self.columns if column.field is None and column.kind != "id"]


# -- measuring -------------------------------------------------------------------------------------------------
def _missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return not any(not _missing(item) for item in value)
    return False


def _is_number(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and NUMBER.fullmatch(value.strip().replace(",", "")) is not None


def _json_list(value):
    """The list a JSON-array string holds, or None."""
    if not isinstance(value, str) or not value.strip().startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return None
    return parsed if isinstance(parsed, list) else None


def _tokens(text: str) -> int:
    return len(TOKEN.findall(text))


def _percent(share: float) -> str:
    if 0 < share < 0.01:
        return "<1%"
    if 0.99 < share < 1:
        return ">99%"
    return f"{share:.0%}"


def _round_up(value: float, step: int, low: int, high: int) -> int:
    return int(min(high, max(low, step * math.ceil(value / step))))


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def read_sample(path: str | os.PathLike, records: int = SAMPLE_RECORDS) -> tuple[Table, bool]:
    """The first ``records`` records of a file (bad rows left out, kept in ``skipped``), and whether that is all
    of it."""
    tables = iter_tables(path, records, skip_bad_rows=True)
    sample = next(tables)
    complete = next(tables, None) is None
    return sample, complete


def _columns_of(table: Table) -> list[str]:
    names: dict[str, None] = {}
    for record in table.records:
        for name in record:
            names.setdefault(name, None)
    return list(names)


def profile_labels(table: Table, name: str) -> Labels:
    """The label column's format (list, JSON-array string, delimited string) and delimiter, checked by parsing every
    value of the sample as ``multifield train`` will."""
    values = [record.get(name) for record in table.records]
    absent = sum(name not in record for record in table.records)
    lists = sum(isinstance(value, (list, tuple)) for value in values)
    json_arrays = sum(_json_list(value) is not None for value in values)
    strings = [value for value in values if isinstance(value, str) and value.strip() and _json_list(value) is None]
    delimiter, delimiter_share = "|", 0.0
    shares = {candidate: _share(sum(candidate in value for value in strings), len(strings)) for candidate in LABEL_DELIMITERS}
    best = max(LABEL_DELIMITERS, key=lambda candidate: shares[candidate])
    if strings and shares[best] > 0:
        delimiter, delimiter_share = best, shares[best]
    elif strings and _space_separated(strings):
        delimiter, delimiter_share = " ", _share(sum(" " in value.strip() for value in strings), len(strings))
    sets = []
    for index, value in enumerate(values):
        try:
            sets.append(parse_labels(value, delimiter))
        except ValueError as error:
            raise DataError(f"labels in an unknown format: {error}", table.path, table.where(index), name, table.line_kind) from None
    counts = Counter(label for labels in sets for label in set(labels))
    if not counts:
        raise InitError(f"{table.path}: column {name!r} holds no labels in the first {len(values):,} records")
    total = len(values)
    stats = {
        "records": total,
        "absent": absent,
        "lists": lists,
        "json_arrays": json_arrays,
        "strings": len(strings),
        "delimiter_share": delimiter_share,
        "distinct": len(counts),
        "per_record": float(np.mean([len(set(labels)) for labels in sets])),
        "without": sum(not labels for labels in sets),
        "rare": sum(count < 3 for count in counts.values()),
    }
    kinds = {"list": lists, "JSON-array string": json_arrays, "delimited string": len(strings)}
    label_format = max(kinds, key=lambda kind: kinds[kind])
    if label_format == "delimited string" and delimiter_share == 0:
        label_format = "single"
    shown = {"list": "lists", "JSON-array string": "JSON-array strings", "delimited string": "other strings"}
    evidence = ", ".join(f"{shown[kind]} in {_percent(_share(count, total))}" for kind, count in kinds.items() if count)
    if strings:
        found = f"{delimiter!r} in {_percent(delimiter_share)} of them" if delimiter_share else "no delimiter in any"
        evidence += f" ({found})"
    evidence += (
        f"; {stats['distinct']:,} labels, {stats['per_record']:.2f} a record"
        + (f", {stats['rare']:,} seen fewer than 3 times" if stats["rare"] else "")
        + (f", {stats['without']:,} records without any" if stats["without"] else "")
        + (f"; {absent:,} records lack the column (train refuses them without --skip-bad-rows)" if absent else "")
    )
    return Labels(name, label_format, delimiter, evidence, stats)


def _space_separated(strings: list[str]) -> bool:
    """Whether labels are separated by spaces ("splicing mrna"): splitting on spaces turns many distinct values
    into a few reused words, which one-label-a-value strings such as "Science Fiction" do not."""
    spaced = sum(" " in value.strip() for value in strings)
    if spaced < 0.2 * len(strings):
        return False
    words = {word for value in strings for word in value.split()}
    return len(words) < 0.5 * len(set(strings))


def profile_column(table: Table, name: str) -> Column:
    """The kind of one column and what the config does with it (``field`` None: left out, and why)."""
    values = [record.get(name) for record in table.records]
    total = len(values)
    present = [value for value in values if not _missing(value)]
    missing = 1 - _share(len(present), total)
    missing_note = f"; missing in {_percent(missing)}" if missing else ""
    if not present:
        return Column(name, "empty", f"no value in {total:,} records", "left out: nothing to read", stats={"present": 0})
    if len(present) < NEARLY_EMPTY_SHARE * total:
        return Column(
            name, "nearly empty", f"a value in {len(present):,} of {total:,} records", "left out: too rare to learn from",
            stats={"present": len(present)},
        )
    hashable = [json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value for value in present]
    distinct = len(set(hashable))
    stats = {"present": len(present), "distinct": distinct, "missing": missing}
    column = _not_text_column(name, present, distinct, stats, missing_note)
    if column is not None:
        return column
    # A few numbers among strings are read as text, as training reads them.
    present = [str(value) if _is_number(value) and not isinstance(value, str) else value for value in present]
    column, present, missing_note = _list_column(name, present, stats, missing_note)
    if column is not None:
        return column
    column = _string_column(name, present, distinct, stats, missing_note)
    if column is not None:
        return column
    return _text_column(name, present, distinct, stats, missing_note)


def _not_text_column(name: str, present: list, distinct: int, stats: dict, missing_note: str) -> Column | None:
    """A column left out because it holds one value, objects, booleans or numbers; None for anything else."""
    if distinct == 1:
        shown = str(present[0])
        shown = shown if len(shown) <= 30 else shown[:27] + "..."
        return Column(
            name, "constant", f"one value ({shown!r}) in every record that has one{missing_note}",
            "left out: the same for every record, it tells nothing", stats=stats,
        )
    if any(isinstance(value, dict) for value in present):
        return Column(name, "objects", f"JSON objects in {_percent(_share(sum(isinstance(v, dict) for v in present), len(present)))} of values",
                      "left out: nested objects are not text (make the parts worth reading columns of their own)", stats=stats)
    if all(isinstance(value, bool) for value in present):
        return Column(name, "true/false", f"true/false values{missing_note}", "left out: not text", stats=stats)
    numbers = sum(_is_number(value) for value in present)
    if numbers >= 0.95 * len(present):
        return Column(
            name, "numbers", f"numbers in {_percent(_share(numbers, len(present)))} of values, {distinct:,} distinct{missing_note}",
            "left out: numbers are not text (a text model would read them as words)", stats=stats,
        )
    return None


def _list_column(name: str, present: list, stats: dict, missing_note: str) -> tuple[Column | None, list, str]:
    """Lists (or JSON-array strings) of short items: an items field. Lists of longer texts are joined, to be
    read as text: the values and note to go on with."""
    lists = [value for value in present if isinstance(value, (list, tuple))]
    lists += [parsed for parsed in (_json_list(value) for value in present) if parsed is not None]
    if len(lists) >= 0.5 * len(present):
        if not all(isinstance(item, str) for items in lists for item in items):
            left_out = Column(name, "lists of non-strings", "lists whose items are not all strings", "left out: not text", stats=stats)
            return left_out, present, missing_note
        item_tokens = [_tokens(item) for items in lists for item in items if item.strip()]
        if not item_tokens or np.median(item_tokens) <= 4:
            return _items_column(name, present, lists, None, stats, missing_note), present, missing_note
        # Lists of sentences or paragraphs (reviews, comments): a text field reads a list as its items joined.
        present = [" ".join(value) if isinstance(value, (list, tuple)) else value for value in present]
        missing_note = f"; lists of texts (median item {np.median(item_tokens):g} tokens), read joined" + missing_note
    return None, present, missing_note


def _string_column(name: str, present: list, distinct: int, stats: dict, missing_note: str) -> Column | None:
    """Mixed types, dates and id-like codes (left out), or delimited short items (an items field); None for text."""
    if not all(isinstance(value, str) for value in present):
        kinds = sorted({type(value).__name__ for value in present if not isinstance(value, str)})
        return Column(name, "mixed", f"values of type {', '.join(kinds)} among the strings", "left out: not text", stats=stats)
    dates = sum(DATE.fullmatch(value.strip()) is not None for value in present)
    if dates >= 0.9 * len(present):
        return Column(name, "dates", f"dates in {_percent(_share(dates, len(present)))} of values{missing_note}",
                      "left out: dates are not text", stats=stats)
    unique = _share(distinct, len(present))
    no_space = _share(sum(not any(c.isspace() for c in value.strip()) for value in present), len(present))
    digits = _share(sum(any(c.isdigit() for c in value) for value in present), len(present))
    stats.update(unique=unique, no_space=no_space, digits=digits)
    if unique >= 0.95 and no_space >= 0.9 and digits >= 0.5 and len(present) >= 10:
        return Column(
            name, "id-like",
            f"{_percent(unique)} distinct, {_percent(no_space)} one word, digits in {_percent(digits)}",
            "left out: a code that names a record, not text about it", stats=stats,
        )
    for delimiter in FIELD_DELIMITERS:
        split = [[part.strip() for part in value.split(delimiter) if part.strip()] for value in present]
        containing = _share(sum(len(parts) > 1 for parts in split), len(present))
        items = [item for parts in split for item in parts]
        item_tokens = float(np.median([_tokens(item) for item in items]))
        reuse = _share(len(set(items)), len(items))
        # Short items in most values, or in some values and used again and again: a list, not prose with commas.
        if item_tokens <= 4 and (containing >= 0.5 or (containing >= 0.2 and reuse <= 0.5)):
            stats.update(delimiter=delimiter, delimited=containing)
            return _items_column(name, present, split, delimiter, stats, missing_note)
    return None


def _text_column(name: str, present: list[str], distinct: int, stats: dict, missing_note: str) -> Column:
    """A text column's encoder by its length: a category, a long text, a short text or a few words."""
    unique = stats["unique"]
    lengths = np.array([_tokens(value) for value in present])
    median, p95 = float(np.median(lengths)), float(np.percentile(lengths, 95, method="higher"))
    stats.update(median_tokens=median, p95_tokens=p95)
    if unique <= 0.2 and median <= 4 and distinct <= max(50, 0.05 * len(present)):
        max_tokens = _round_up(p95, 1, 1, 8)
        field_config = {
            "kind": "text", "encoder": "pooled", "pooling": "max_mean", "max_tokens": max_tokens, "min_count": 2,
            "embedding_dim": 16, "field_dropout": 0.3,
        }
        return Column(
            name, "category", f"{distinct:,} distinct values in {len(present):,} (median {median:g} tokens){missing_note}",
            f"pooled words, max_tokens {max_tokens}", field_config,
            f"A category ({distinct:,} values): its words pooled; the wide part is a linear model over them. "
            f"max_tokens {max_tokens}: the 95th percentile ({p95:g}).",
            stats,
        )
    evidence = f"median {median:g} tokens, 95th percentile {p95:g}, {_percent(unique)} distinct{missing_note}"
    if median >= LONG_MEDIAN_TOKENS or p95 >= LONG_P95_TOKENS:
        max_tokens = _round_up(p95, 16, 16, MAX_TOKENS_CAP["rnn_attention"])
        field_config = {
            "kind": "text", "encoder": "rnn_attention", "max_tokens": max_tokens, "min_count": 2,
            "embedding_dim": 64, "field_dropout": 0.1,
            "cell": "gru", "units": 48,
        }
        if p95 > MAX_TOKENS_CAP["rnn_attention"]:
            size = (
                f"max_tokens {max_tokens}: the most it is given, to keep training fast (the 95th percentile, {p95:g}, "
                "is longer; the rest of a text is cut)."
            )
        else:
            size = f"max_tokens {max_tokens}: the 95th percentile of the sample ({p95:g}) rounded up."
        return Column(
            name, "long text", evidence, f"BiGRU + attention, max_tokens {max_tokens}", field_config,
            f"A long text (median {median:g} tokens): read by a BiGRU(48), pooled by attention, whose weights show "
            f"what the model read. {size}",
            stats,
        )
    if median >= ATTENTION_MEDIAN_TOKENS:
        max_tokens = _round_up(p95, 8, 8, MAX_TOKENS_CAP["attention"])
        field_config = {
            "kind": "text", "encoder": "attention", "max_tokens": max_tokens, "min_count": 2, "embedding_dim": 64,
            "field_dropout": 0.3,
        }
        return Column(
            name, "short text", evidence, f"attention, max_tokens {max_tokens}", field_config,
            f"A short text (median {median:g} tokens): attention over its words, no recurrent layer (on the movies' "
            f"taglines as accurate as a BiGRU, and faster). max_tokens {max_tokens}: the 95th percentile ({p95:g}) "
            "rounded up.",
            stats,
        )
    max_tokens = _round_up(p95, 4, 4, MAX_TOKENS_CAP["pooled"])
    field_config = {
        "kind": "text", "encoder": "pooled", "pooling": "max_mean", "max_tokens": max_tokens, "min_count": 2,
        "embedding_dim": 64, "field_dropout": 0.3,
    }
    return Column(
        name, "short text", evidence, f"pooled words, max_tokens {max_tokens}", field_config,
        f"A few words (median {median:g} tokens): their embeddings pooled (max and mean); word order adds little. "
        f"max_tokens {max_tokens}: the 95th percentile ({p95:g}) rounded up.",
        stats,
    )


def _items_field(max_tokens: int, delimiter: str | None = None) -> dict:
    return {
        "kind": "items", **({"delimiter": delimiter} if delimiter not in (None, "|") else {}), "encoder": "pooled",
        "pooling": "max_mean", "max_tokens": max_tokens, "min_count": 2, "embedding_dim": 64,
        "field_dropout": 0.3,
    }


def _items_column(name, present, lists, delimiter, stats, missing_note) -> Column:
    counts = [len([item for item in items if item.strip()]) for items in lists]
    items = [item.strip() for items in lists for item in items if item.strip()]
    median, p95 = float(np.median(counts)), float(np.percentile(counts, 95, method="higher"))
    reuse = _share(len(set(items)), len(items))
    stats.update(items_median=median, items_p95=p95, distinct_items=len(set(items)), item_uses=len(items))
    max_tokens = _round_up(p95, 1, 1, MAX_TOKENS_CAP["items"])
    if delimiter is None:
        how = f"lists in {_percent(_share(len(lists), len(present)))} of values"
    else:
        how = f"{delimiter!r}-delimited in {_percent(stats['delimited'])} of values"
    evidence = (
        f"{how}; median {median:g} items, 95th percentile {p95:g}; {len(set(items)):,} distinct items "
        f"in {len(items):,} uses{missing_note}"
    )
    split = f" split on {delimiter!r}" if delimiter else ""
    return Column(
        name, "items", evidence, f"items{split}, pooled, max_tokens {max_tokens}",
        _items_field(max_tokens, delimiter),
        f"A list{split}: each whole item is one token (distinct items are {_percent(reuse)} of uses), pooled (max "
        f"and mean). max_tokens {max_tokens}: the 95th percentile of items a record.",
        stats,
    )


def _read_vector_words(path: Path) -> tuple[set[str], int, str]:
    """The words of a GloVe or word2vec text file, the vectors' size and the format."""
    opener = gzip.open if path.suffix == ".gz" else open
    words: set[str] = set()
    size, file_format = 0, "glove"
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.rstrip().split(" ")
                if number == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    file_format = "word2vec"
                    continue
                if len(parts) > 2:
                    size = size or len(parts) - 1
                    words.add(parts[0])
    except OSError as error:
        raise InitError(f"{path}: cannot read the vector file ({error.strerror or error})") from None
    if not words:
        raise InitError(f"{path}: holds no word vectors (expected GloVe or word2vec text)")
    return words, size, file_format


def profile_file(
    path: str | os.PathLike,
    labels: str,
    id_field: str | None = None,
    sample: int = SAMPLE_RECORDS,
    vectors: str | os.PathLike | None = None,
) -> Profile:
    """Measure the first ``sample`` records of a JSONL, CSV or Parquet file: the label column ``labels``, the id
    column (``id_field``, or a column named ``id`` when there is one), and every other column."""
    table, complete = read_sample(path, sample)
    names = _columns_of(table)
    if labels not in names:
        raise InitError(f"{table.path}: no column {labels!r} to take the labels from; its columns: {_listed(names)}")
    if id_field is not None and id_field not in names:
        raise InitError(f"{table.path}: no column {id_field!r} to take the ids from; its columns: {_listed(names)}")
    if id_field is not None and id_field == labels:
        raise InitError(f"--id and --labels name the same column {labels!r}; the labels cannot be the id")
    label_profile = profile_labels(table, labels)
    chosen_id, id_note = _choose_id(table, id_field, names, labels)
    candidates = [name for name in names if name != labels]
    columns = []
    for name in candidates:
        column = profile_column(table, name)
        if name == chosen_id:
            if column.field is not None:
                column.decision += "; also the id"
            else:
                column.kind, column.decision = "id", f"the id; not a field ({column.kind})"
        if column.field is not None and ("/" in name or "\\" in name):
            # A field's name names its layers and its tokenizer's file in the bundle.
            column.field, column.decision = None, "left out: a field's name cannot hold '/' or '\\' (rename the column)"
        columns.append(column)
    fields = [column for column in columns if column.field is not None]
    if not fields:
        raise InitError(
            f"{table.path}: no column holds text to learn from ({_listed([f'{c.name} ({c.kind})' for c in columns])})"
        )
    if len(fields) == 1:  # blanking the only field leaves nothing to learn from
        fields[0].field["field_dropout"] = 0.0
    _label_wise_attention(fields, label_profile)
    if chosen_id is None:
        # An id_field the file does not have: each record's line (row) number is its id.
        chosen_id = "id"
        while chosen_id in names:
            chosen_id = f"{table.line_kind}_number" if chosen_id == "id" else f"{chosen_id}_"
    profile = Profile(
        Path(path), table.format, len(table), complete, label_profile, chosen_id, id_note, columns, len(table.skipped)
    )
    if vectors is not None:
        _use_vectors(profile, table, *_read_vector_words(Path(vectors)), path=Path(vectors))
    elif (package := vector_package_files(DEFAULT_VECTOR_PACKAGE)) is not None:
        # The general English vectors of ``pip install "multifield[vectors]"``, when it is installed.
        words = set(pq.read_table(package[0]).column(0).to_pylist())
        _use_vectors(profile, table, words, 50, "glove", package=DEFAULT_VECTOR_PACKAGE)
    return profile


def _label_wise_attention(fields: list[Column], labels: Labels) -> None:
    """With many labels, the longest text is read by label-wise attention: one attention query per label."""
    long_texts = [column for column in fields if column.field.get("encoder") == "rnn_attention"]
    distinct = labels.stats["distinct"]
    if distinct < LABEL_ATTENTION_MIN_LABELS or not long_texts:
        return
    longest = max(long_texts, key=lambda column: column.stats["p95_tokens"])
    longest.field["label_attention"] = True
    longest.decision = longest.decision.replace("BiGRU + attention", "BiGRU + label-wise attention")
    longest.why = longest.why.replace("pooled by attention,", "pooled by label-wise attention,") + (
        f" {distinct:,} labels (at least {LABEL_ATTENTION_MIN_LABELS}): each label gets an attention query of its "
        "own over this text (label_attention), which validated better than one attention for all labels with "
        "hundreds of labels, and worse with 20."
    )


def _listed(names: list[str], shown: int = 12) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _choose_id(table: Table, id_field: str | None, names: list[str], labels: str) -> tuple[str | None, str]:
    """The id column and a sentence about it; None when the records are numbered by line (row)."""
    where = f"{table.line_kind} number"
    candidate = id_field if id_field is not None else ("id" if "id" in names and labels != "id" else None)
    if candidate is None:
        return None, f"no 'id' column: each record's id is its {where}"
    seen: dict = {}
    for index, record in enumerate(table.records):
        value = record.get(candidate)
        problem = None
        if _missing(value):
            problem = f"{table.line_kind} {table.where(index)} has none"
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            problem = f"{table.line_kind} {table.where(index)} holds a {type(value).__name__}"
        elif value in seen:
            problem = f"{value!r} is on {table.line_kind}s {seen[value]} and {table.where(index)}"
        if problem:
            if id_field is not None:
                raise InitError(f"{table.path}: column {candidate!r} cannot be the id: {problem}; choose another --id, or none")
            # The config then names an id column the file does not have: records are numbered instead.
            return None, f"column 'id' is not a usable id ({problem}): each record's id is its {where}"
        seen[value] = table.where(index)
    return candidate, f"column {candidate!r}: unique in the sample"


def _use_vectors(
    profile: Profile, table: Table, words: set[str], size: int, file_format: str, path: Path | None = None, package: str | None = None
) -> None:
    profile.vectors = {"path": path, "package": package, "size": size, "format": file_format, "coverage": {}}
    for column in profile.fields:
        if column.field["kind"] != "text":
            continue
        tokens = Counter(
            token.lower() for record in table.records if isinstance(record.get(column.name), str)
            for token in TOKEN.findall(record[column.name])
        )
        coverage = _share(sum(count for token, count in tokens.items() if token in words), sum(tokens.values()))
        profile.vectors["coverage"][column.name] = coverage
        if coverage >= MIN_VECTOR_COVERAGE:
            column.field.update(embedding_dim=size, min_count=1, embeddings=True)
            column.decision += f"; vectors ({_percent(coverage)} of words)"
            column.why += (
                f" Starts from the pretrained vectors, which hold {_percent(coverage)} of its words in the sample; "
                "every word seen in training is kept (min_count = 1), since most have a vector to start from."
            )


# -- writing -----------------------------------------------------------------------------------------------------
def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name, ensure_ascii=False)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _comment(text: str, width: int = 110) -> list[str]:
    lines, line = [], "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#"
        line += " " + word
    return lines + [line]


def config_toml(profile: Profile, out: str | os.PathLike | None = None) -> str:
    """The commented TOML config of a profile; a path to vectors is written relative to ``out``'s folder."""
    data = profile.path.name
    run_name = re.sub(r"[^A-Za-z0-9_-]+", "-", data.split(".")[0]).strip("-") or "model"
    sampled = f"all {profile.sample:,} records" if profile.complete else f"the first {profile.sample:,} records"
    lines = _comment(
        f"Written by `multifield init` from {data} ({sampled}). Train it: multifield train "
        f"{Path(out).name if out else 'CONFIG.toml'} --train {profile.path} --out runs/{Path(out).stem if out else run_name}"
    )
    lines += _comment(
        "Every field has a deep part (its encoder) and a wide part: a linear model over its bag of tokens weighted "
        "by TF-IDF, solved first as logistic regression, so that the model never does worse on validation than "
        "TF-IDF + logistic regression. Every key left out is at its default (multifield's defaults are a recipe "
        "that held on two unrelated data sets); any of them can be set here."
    )
    lines += [f"name = {_value(run_name)}", f"id_field = {_value(profile.id_field)}"]
    lines += _comment(f"{profile.id_note}.")
    left_out = profile.left_out
    if left_out:
        lines += ["# Left out:"] + [f"#   {column.name} ({column.kind}): {column.decision.removeprefix('left out: ')}" for column in left_out]
    labels = profile.labels
    lines += ["", "[labels]"] + _comment(f"Labels as {labels.evidence}.")
    lines += [f"field = {_value(labels.name)}", f"delimiter = {_value(labels.delimiter)}"]
    for column in profile.fields:
        lines += ["", f"[fields.{_key(column.name)}]"] + _comment(column.why)
        for key, value in column.field.items():
            if key == "embeddings" and profile.vectors["package"]:
                lines.append(f"embeddings = {_value(profile.vectors['package'])}")
                continue
            if key == "embeddings":
                vectors = profile.vectors
                where = Path(os.path.relpath(vectors["path"].resolve(), Path(out).resolve().parent)) if out else vectors["path"]
                lines.append(f"embeddings = {{path = {_value(where.as_posix())}, format = {_value(vectors['format'])}}}")
                continue
            lines.append(f"{key} = {_value(value)}")
        if column.field["kind"] == "text" and "embeddings" not in column.field:
            lines += [
                "# Pretrained vectors help with little data: pip install \"multifield[vectors]\" and run init again, or",
                "# give a local GloVe file (nothing is downloaded), set embedding_dim to its size and min_count = 1:",
                '# embeddings = {path = "glove.6B.100d.txt", format = "glove"}',
            ]
    lines += ["", "[training]"]
    lines += _comment(
        "The defaults: the wide part is solved as logistic regression on TF-IDF (wide_solver, C chosen on validation); the deep "
        "part is trained on its own (so its attention learns to point at what its prediction rests on) with Adam at "
        "0.002 and a cosine decay, early-stopped on validation micro-F1; its logits are then added to the "
        "regression's with a weight chosen on validation (0 would keep the regression alone). Positive examples "
        "weigh sqrt(negatives/positives) in the loss (helps rare labels) and labels are smoothed by 0.05. One "
        "threshold per label, tuned on validation and moved back towards the global one by a share (\"auto\") "
        "chosen on validation: with few validation records per label, per-label thresholds over-fit. The global "
        "threshold and the share are chosen for the mean of micro- and macro-F1 (threshold_objective)."
    )
    lines += ["seed = 42", ""]
    return "\n".join(lines)


def write_config(profile: Profile, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the config of ``profile`` to ``out`` (atomically); an existing file is refused unless ``overwrite``."""
    out = Path(out)
    if out.is_dir():
        raise InitError(f"{out}: is a directory; give a file name such as {out / 'config.toml'}")
    if out.exists() and not overwrite:
        raise InitError(f"{out}: exists; pass --overwrite to replace it")
    write_text(out, config_toml(profile, out))
    load_config(out)  # what is written must load
    return out


def decisions_table(profile: Profile):
    """A rich table: each column, its kind, the evidence and the decision."""
    sampled = f"all {profile.sample:,} records" if profile.complete else f"first {profile.sample:,} records"
    table = RichTable(title=f"{profile.path.name} ({profile.format}, {sampled})", show_lines=False)
    for heading in ("column", "kind", "evidence", "decision"):
        table.add_column(heading, overflow="fold")
    labels = profile.labels
    table.add_row(labels.name, "labels", labels.evidence, labels.decision)
    for column in profile.columns:
        style = None if column.field is not None or column.kind == "id" else "dim"
        table.add_row(column.name, column.kind, column.evidence, column.decision, style=style)
    return table


__all__ = ["Profile", "Column", "Labels", "InitError", "profile_file", "config_toml", "write_config", "decisions_table"]
