import gzip
import json

import pandas as pd
import pytest

from multifield.data.io import read_table, write_jsonl
from multifield.errors import DataError

RECORDS = [
    {"id": "a", "plot": "A heist.", "actors": ["X", "Y"], "genres": ["Crime"]},
    {"id": "b", "plot": "", "actors": [], "genres": "Drama|War"},
]


def test_jsonl_keeps_line_numbers_and_skips_blank_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n\n" + json.dumps(RECORDS[1]) + "\n")
    table = read_table(path)
    assert [r["id"] for r in table.records] == ["a", "b"]
    assert table.lines == [1, 3]


def test_gzipped_jsonl(tmp_path):
    path = tmp_path / "r.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert len(read_table(path)) == 2


def test_bad_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n{not json\n")
    with pytest.raises(DataError) as error:
        read_table(path)
    assert str(path) in str(error.value) and "line 2" in str(error.value)


def test_non_object_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(DataError, match="line 1: expected a JSON object"):
        read_table(path)


def test_non_utf8(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "\xff\xfe"}\n')
    with pytest.raises(DataError, match="line 2: not UTF-8"):
        read_table(path)


def test_empty_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match="holds no records"):
        read_table(path)


def test_csv_and_parquet_read_the_same_records(tmp_path):
    frame = pd.DataFrame(
        {"id": ["a", "b"], "plot": ["A heist.", ""], "genres": ['["Crime"]', "Drama|War"]}
    )
    frame.to_csv(tmp_path / "r.csv", index=False)
    frame.to_parquet(tmp_path / "r.parquet")
    csv_table, parquet_table = read_table(tmp_path / "r.csv"), read_table(tmp_path / "r.parquet")
    assert csv_table.records == parquet_table.records
    assert csv_table.lines == [2, 3]


def test_csv_with_a_bad_row(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,plot\na,one\nb,two,three\n")
    with pytest.raises(DataError, match="not valid CSV"):
        read_table(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown file type"):
        read_table(tmp_path / "r.xlsx")
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "r.jsonl")


def test_write_jsonl_is_atomic(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")

    def rows():
        yield {"id": 1}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [path]
    assert write_jsonl(path, [{"id": 1}, {"id": 2}]) == 2
    assert path.read_text().splitlines() == ['{"id":1}', '{"id":2}']


def test_lines_the_fast_reader_refuses_read_as_the_json_module_reads_them(tmp_path):
    # NaN, integers over 64 bits (orjson reads them as floats) and a lone surrogate escape.
    lines = [
        '{"id": 1, "score": NaN}',
        '{"id": 123456789012345678901234567890}',
        '{"id": 2, "extra": {"n": [1.5, -123456789012345678901234567890]}}',
        '{"id": "\\ud800"}',
        '{"id": "é", "n": 1e300}',
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = read_table(path).records
    assert records[0]["id"] == 1 and records[0]["score"] != records[0]["score"]  # NaN
    assert records[1:] == [json.loads(line) for line in lines[1:]]


def test_write_jsonl_writes_what_the_fast_writer_refuses(tmp_path):
    path = tmp_path / "out.jsonl"
    rows = [{"id": 123456789012345678901234567890, "labels": ["Crime"]}, {"id": "é", "scores": {"Crime": float("nan")}}]
    assert write_jsonl(path, rows) == 2
    written = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert written == [rows[0], {"id": "é", "scores": {"Crime": None}}]


@pytest.mark.parametrize("depth", [900, 1100, 5000])
def test_a_line_nested_deeper_than_the_recursion_limit_is_a_record_or_a_bad_row(tmp_path, depth):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"plot": ' + "[" * depth + "1e300" + "]" * depth + "}\n" + '{"plot": "fine"}\n', encoding="utf-8")
    table = read_table(path, skip_bad_rows=True)
    assert len(table) + len(table.skipped) == 2
    if depth < 1000:  # orjson reads it (to 1024 levels), and the huge number inside is found without recursion
        assert len(table) == 2 and table.records[1] == {"plot": "fine"}
