"""Record ids as users have them: a file without an id column gives each record its line (row) number, said
once; a column may be both the id and a text field; real id columns keep their checks."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from cli_helpers import run_cli

from multifield.classifier import as_table
from multifield.config import config_from_dict
from multifield.data.encoding import check_records, checked_tables, load_records, record_ids
from multifield.errors import ConfigError, DataError, DataWarning

CONFIG = {"labels": {"field": "genres"}, "fields": {"plot": {"encoder": "pooled"}}}


def config(**top) -> object:
    return config_from_dict({**CONFIG, **top})


def notes_of(caught) -> list[str]:
    return [str(warning.message) for warning in caught if issubclass(warning.category, DataWarning)]


def test_csv_without_an_id_column_takes_each_records_line_said_once(tmp_path):
    path = tmp_path / "d.csv"
    # The second record's plot spans two lines: the third record starts on line 5.
    path.write_text('plot,genres\none,Drama\n"two\nlines",Crime\nthree,Drama\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = load_records(path, config(), labels=True)
        ids = record_ids(config(), table)
    assert ids == [2, 3, 5]
    assert notes_of(caught) == [f"{path}: no 'id' column: each record's id is its line number"]


def test_jsonl_without_ids_takes_line_numbers_and_parquet_and_dataframes_row_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"plot": "one", "genres": ["A"]}\n\n{"plot": "two", "genres": ["B"]}\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert record_ids(config(), load_records(path, config())) == [1, 3]
        frame = pd.DataFrame({"plot": ["one", "two", "three"], "genres": ["A", "B", "A"]})
        frame.to_parquet(tmp_path / "d.parquet")
        assert record_ids(config(), load_records(tmp_path / "d.parquet", config())) == [1, 2, 3]
        assert record_ids(config(), as_table(frame)) == [1, 2, 3]
    assert [note.split(": ", 1)[1] for note in notes_of(caught)] == [
        "no 'id' column: each record's id is its line number",
        "no 'id' column: each record's id is its row number",
        "no 'id' column: each record's id is its row number",
    ]


def test_chunks_of_one_file_keep_counting_lines_and_say_it_once(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"plot": f"p{i}", "genres": ["A"]}) + "\n" for i in range(5)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunks = list(checked_tables(path, config(), chunk_records=2))
    assert [record_ids(config(), chunk) for chunk in chunks] == [[1, 2], [3, 4], [5]]
    assert len(notes_of(caught)) == 1


def test_a_bad_record_in_a_file_without_ids_is_named_by_its_line_and_keeps_it_as_id(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"plot": "one", "genres": ["A"]}\n{"plot": {"x": 1}, "genres": ["B"]}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        table = load_records(path, config(), skip_bad_rows=True)
    assert [(bad.line, bad.id, bad.field) for bad in table.skipped] == [(2, 2, "plot")]


def test_a_real_id_column_keeps_its_checks(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,plot,genres\na,one,Drama\n,two,Drama\n")
    with pytest.raises(DataError, match=r"d.csv, line 3, field 'id': the record has no id$"):
        load_records(path, config())
    path.write_text("id,plot,genres\na,one,Drama\na,two,Drama\n")
    with pytest.raises(DataError, match=r"line 3, field 'id': duplicate id 'a' \(first seen on line 2\)"):
        load_records(path, config())
    # JSONL: one record with an id makes it an id column, and the others lack theirs.
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "plot": "one"}\n{"plot": "two"}\n')
    with pytest.raises(DataError, match=r"line 2, field 'id': the record has no id"):
        load_records(path, config())


def test_records_given_in_python_keep_their_ids_as_they_are():
    # The server's requests: an absent id is echoed as null, not numbered.
    records = [{"plot": "one"}, {"id": "b", "plot": "two"}]
    assert record_ids(config(), as_table(records), check=False) == [None, "b"]


def test_a_column_can_be_both_the_id_and_a_text_field(tmp_path):
    both = config(id_field="title", fields={"title": {"encoder": "pooled"}, "plot": {"encoder": "pooled"}})
    path = tmp_path / "d.csv"
    path.write_text("title,plot,genres\nHeat,A heist.,Crime\nUp,A house flies.,Family\n")
    table = check_records(both, as_table(str(path)), labels=True)
    assert record_ids(both, table) == ["Heat", "Up"]
    assert table.values["title", "text"] == ["Heat", "Up"]
    with pytest.raises(ConfigError, match=r"key \(top level\): Value error, field 'genres' is also the label key"):
        config(fields={"genres": {"encoder": "pooled"}})


def test_predict_echoes_the_line_of_a_csv_without_ids(trained_bundle, tmp_path):
    data = tmp_path / "new.csv"
    data.write_text('title,plot\nHeat,"A thief plans\none last heist."\nUp,An old man flies his house.\n')
    out = tmp_path / "predictions.jsonl"
    result = run_cli("predict", trained_bundle, "--input", data, "--output", out)
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [2, 4]
    notes = [line for line in result.output.splitlines() if "'id' column" in line]
    assert notes == [f"note: {data}: no 'id' column: each record's id is its line number"]
    assert "Traceback" not in result.output
