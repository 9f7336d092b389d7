"""Bad data in, one clear line out: every kind of malformed record names the file, the line and the field, exits
with code 2 and leaves no output behind; --skip-bad-rows leaves them out and says so; predict keeps every line."""

import json
import warnings

import pytest
from cli_helpers import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multifield.config import load_config
from multifield.data.encoding import check_records, load_records, record_ids
from multifield.data.io import read_table
from multifield.errors import DataError, DataWarning


def record(index: int, **fields) -> dict:
    base = {"id": f"r{index}", "plot": f"A story number {index} about a heist.", "actors": ["Ann", "Bob"],
            "title": f"Film {index}", "genres": ["Drama"] if index % 2 else ["Crime", "Drama"]}
    return {**base, **fields}


def jsonl(*lines) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


GOOD = [record(i) for i in range(1, 6)]

# (name, file name, content, what the error says): the bad record is always on line 3 (CSV: header on line 1).
CASES = [
    ("malformed JSON", "d.jsonl", jsonl(GOOD[0], GOOD[1], b'{"id": "x", "plot": ', GOOD[2]),
     "d.jsonl, line 3: not valid JSON"),
    ("not an object", "d.jsonl", jsonl(GOOD[0], GOOD[1], b'["r9", "plot"]', GOOD[2]),
     "d.jsonl, line 3: expected a JSON object, got an array"),
    ("wrong column count", "d.csv", b"id,plot,genres\nr1,one,Drama\nr2,two,three,Drama\nr3,x,Drama\n",
     "d.csv, line 3: not valid CSV: 4 columns where the header has 3"),
    ("wrong type", "d.jsonl", jsonl(GOOD[0], GOOD[1], record(9, plot={"text": "x"})),
     "d.jsonl, line 3, field 'plot': expected a string, got dict"),
    ("list of numbers", "d.jsonl", jsonl(GOOD[0], GOOD[1], record(9, actors=[1, 2])),
     "d.jsonl, line 3, field 'actors': expected a list of strings, found int 1"),
    ("unknown label format", "d.jsonl", jsonl(GOOD[0], GOOD[1], record(9, genres='["Drama", '), GOOD[2]),
     "d.jsonl, line 3, field 'genres': labels in an unknown format: starts with '[' but is not a JSON array"),
    ("labels as a number", "d.jsonl", jsonl(GOOD[0], GOOD[1], record(9, genres=7)),
     "d.jsonl, line 3, field 'genres': labels in an unknown format: expected a list of strings, got int"),
    ("no id", "d.jsonl", jsonl(GOOD[0], GOOD[1], {k: v for k, v in record(9).items() if k != "id"}),
     "d.jsonl, line 3, field 'id': the record has no id"),
    ("duplicate id", "d.jsonl", jsonl(GOOD[0], GOOD[1], record(1)),
     "d.jsonl, line 3, field 'id': duplicate id 'r1' (first seen on line 1)"),
    ("not UTF-8", "d.jsonl", jsonl(GOOD[0], GOOD[1], b'{"id": "r9", "plot": "caf\xe9"}'),
     "d.jsonl, line 3: not UTF-8 text (byte 26 of the line)"),
    ("CSV not UTF-8", "d.csv", b"id,plot,genres\nr1,one,Drama\nr2,caf\xe9,Drama\n",
     "d.csv, line 3, field 'plot': not UTF-8 text"),
    ("a 10 MB field", "d.jsonl", jsonl(GOOD[0], GOOD[1], record(9, plot="x" * 10 * 1024 * 1024)),
     "d.jsonl, line 3, field 'plot': 10,485,760 characters long, over the limit of 1,000,000"),
    ("empty file", "d.jsonl", b"", "d.jsonl: the file holds no records"),
    ("empty CSV", "d.csv", b"", "d.csv: the file is empty"),
    ("only bad rows", "d.jsonl", b"{\n[]\n\xff\n", "d.jsonl, line 1: not valid JSON"),
]


@pytest.mark.parametrize("name, file_name, content, expected", CASES, ids=[case[0] for case in CASES])
def test_train_names_file_line_and_field_and_exits_2(small_config_path, tmp_path, name, file_name, content, expected):
    data = tmp_path / file_name
    data.write_bytes(content)
    out = tmp_path / "model"
    result = run_cli("train", small_config_path, "--train", data, "--out", out, check_exit=2)
    assert expected in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1
    assert "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "model.checkpoint.npz").exists()


@pytest.mark.parametrize("command", ["predict", "evaluate", "explain"])
def test_predict_evaluate_explain_name_the_bad_line_and_leave_no_output(trained_bundle, tmp_path, command):
    data = tmp_path / "d.jsonl"
    data.write_bytes(jsonl(GOOD[0], GOOD[1], record(9, genres="[Drama"), b'{"id": "x", '))
    out = tmp_path / "out.file"
    args = {"predict": ["--input", data, "--output", out], "evaluate": ["--data", data],
            "explain": ["--input", data, "--out", out]}[command]
    result = run_cli(command, trained_bundle, *args, check_exit=2)
    first_bad = "line 3, field 'genres'" if command == "evaluate" else "line 4: not valid JSON"
    assert first_bad in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [data]  # no output, no temporary file


def test_predict_with_skip_bad_rows_keeps_one_line_per_record_in_order(trained_bundle, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_bytes(jsonl(GOOD[0], b'{"id": "x", ', GOOD[1], b"", record(9, plot=[1]), GOOD[1], GOOD[2]))
    out = tmp_path / "predictions.jsonl"
    result = run_cli("predict", trained_bundle, "--input", data, "--output", out, "--skip-bad-rows")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["r1", None, "r2", "r9", "r2", "r3"]  # the blank line is no record
    assert [row.get("line") for row in rows if "error" in row] == [2, 5, 6]
    assert rows[3]["error"].startswith("field 'plot': expected a string or a list of strings")
    assert rows[4]["error"] == "field 'id': duplicate id 'r2' (first seen on line 3)"
    assert all("labels" in row and "scores" in row for row in rows if "error" not in row)
    notes = [line for line in result.output.splitlines() if "bad records skipped" in line]
    assert len(notes) == 1 and "3 bad records skipped (lines 2, 5, 6)" in notes[0]
    # A file of bad records only still gets its lines, one error each: nothing is dropped.
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_bytes(b"{\n[]\n")
    result = run_cli("predict", trained_bundle, "--input", only_bad, "--output", out, "--skip-bad-rows")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["line"] for row in rows] == [1, 2] and all(row["error"] for row in rows)
    assert "0 predictions and 2 error lines written" in result.output


def test_evaluate_and_explain_with_skip_bad_rows_report_what_they_left_out(trained_bundle, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_bytes(jsonl(*GOOD[:3], b"{oops", record(9, genres={"a": 1})))
    result = run_cli("evaluate", trained_bundle, "--data", data, "--json", "--skip-bad-rows")
    assert json.loads(result.stdout.strip().splitlines()[-1])["records"] == 3
    assert "2 bad records skipped (lines 4, 5); line 4: not valid JSON" in result.output
    report = tmp_path / "report.html"
    result = run_cli("explain", trained_bundle, "--input", data, "--out", report, "--skip-bad-rows")
    # explain needs no labels: only the line that is not JSON is left out
    assert report.exists() and "1 bad record skipped (line 4)" in result.output and "4 records explained" in result.output
    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_bytes(b"{\n[]\n")
    result = run_cli("evaluate", trained_bundle, "--data", only_bad, "--skip-bad-rows", check_exit=2)
    assert "none of its records is usable: 2 bad records skipped (lines 1, 2)" in result.output


def test_clear_conversions_are_made_and_said_once(trained_bundle, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_bytes(jsonl(record(1, plot=5), record(2, actors="Ann|Bob"), record(3, plot=7.5), record(4, actors="Cy")))
    result = run_cli("evaluate", trained_bundle, "--data", data, "--json")
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 2, notes
    assert "field 'plot': numbers are read as text (2 records, first on line 1)" in result.output
    assert "field 'actors': a string where a list is expected is split on '|' (2 records, first on line 2)" in result.output


def test_a_label_never_seen_in_training_is_reported_not_a_crash(trained_bundle, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_bytes(jsonl(record(1, genres=["Drama", "Space Opera"]), record(2)))
    result = run_cli("evaluate", trained_bundle, "--data", data, "--json")
    assert json.loads(result.stdout.strip().splitlines()[-1])["unknown_labels"] == {"Space Opera": 1}
    assert "never saw in training" in result.output and "Space Opera" in result.output


# -- property-based: any mix of good and malformed rows ----------------------------------------------------

def _bad_jsonl_line(kind: str, index: int, earlier_good_id: str | None) -> bytes:
    return {
        "json": b'{"id": "b%d", "plot": "unfinished' % index,
        "object": b'["b%d"]' % index,
        "utf8": b'{"id": "b%d", "plot": "\xff\xfe"}' % index,
        "no_id": json.dumps({k: v for k, v in record(index).items() if k != "id"}).encode(),
        "type": json.dumps(record(index, id=f"b{index}", title={"nested": True})).encode(),
        "labels": json.dumps(record(index, id=f"b{index}", genres="[unclosed")).encode(),
        "duplicate": json.dumps(record(index, id=earlier_good_id)).encode(),
    }[kind]


BAD_KINDS = ["json", "object", "utf8", "no_id", "type", "labels", "duplicate"]


@st.composite
def files_with_bad_rows(draw, min_bad=0):
    """(bytes of a JSONL file, the line numbers of its bad rows, the ids of its good rows): good rows with bad ones
    in between. In a file where no record has an id, a record without one is good: its line is its id."""
    plan = draw(st.lists(st.sampled_from(["good"] * 3 + BAD_KINDS), min_size=1, max_size=25))
    if sum(kind != "good" for kind in plan) < min_bad:
        plan = plan + ["json"]
    plan = ["json" if kind == "duplicate" and "good" not in plan[:number] else kind for number, kind in enumerate(plan)]
    id_column = any(kind in ("good", "type", "labels", "duplicate") for kind in plan)
    if not id_column and all(kind in ("no_id", "good") for kind in plan) and min_bad:
        plan = plan + ["json"]
    lines, bad, good_ids = [], [], []
    for number, kind in enumerate(plan, start=1):
        if kind == "no_id" and not id_column:
            good_ids.append(number)
            lines.append(_bad_jsonl_line(kind, number, None))
        elif kind == "good":
            good_ids.append(f"g{number}")
            lines.append(json.dumps(record(number, id=f"g{number}")).encode())
        else:
            bad.append(number)
            lines.append(_bad_jsonl_line(kind, number, draw(st.sampled_from(good_ids)) if good_ids else None))
    return b"\n".join(lines) + b"\n", bad, good_ids


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=files_with_bad_rows())
def test_reading_finds_exactly_the_bad_rows(small_config_path, tmp_path, case):
    content, bad, good_ids = case
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    config = load_config(small_config_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        if bad:
            with pytest.raises(DataError) as error:
                load_records(path, config, labels=True)
            assert error.value.line == bad[0] and f"line {bad[0]}" in str(error.value) and "\n" not in str(error.value)
        if good_ids:
            table = load_records(path, config, labels=True, skip_bad_rows=True)
            assert record_ids(config, table) == good_ids
            assert [row.line for row in table.skipped] == bad
        else:
            with pytest.raises(DataError, match="none of its records is usable"):
                load_records(path, config, labels=True, skip_bad_rows=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=files_with_bad_rows(min_bad=1))
def test_the_command_line_exits_2_naming_the_first_bad_line(small_config_path, tmp_path, case):
    content, bad, _ = case
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    out = tmp_path / "model"
    result = run_cli("train", small_config_path, "--train", path, "--out", out, check_exit=2)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"data.jsonl, line {bad[0]}" in errors[0]
    assert "Traceback" not in result.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_csv_rows_keep_their_lines_across_quoted_newlines(small_config_path, tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'id,plot,genres\nr1,"two\nlines",Drama\nr2,x,y,Drama\nr3,ok,Drama\n')
    table = read_table(path, skip_bad_rows=True)
    assert table.lines == [2, 5] and [row.line for row in table.skipped] == [4]
    with pytest.raises(DataError, match="d.csv, line 4: not valid CSV"):
        read_table(path)
    config = load_config(small_config_path)
    assert len(check_records(config, table, labels=True, skip_bad_rows=True)) == 2
    with pytest.raises(DataError, match="line 4"):  # a table's own bad rows count when they are not skipped
        check_records(config, table, labels=True)
