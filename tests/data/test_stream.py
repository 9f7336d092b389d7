"""Streaming input: chunked readers, the one-pass fit, streamed training batches and streamed predictions."""

from __future__ import annotations

import gzip
import json
import tomllib
import tracemalloc
import unicodedata

import numpy as np
import pandas as pd
import pytest
from movie_data import SMALL_CONFIG, bundled_movies, write_jsonl

from multifield.config import config_from_dict
from multifield.data.encoding import RecordEncoder
from multifield.data.io import read_table
from multifield.data.split import hash_bucket
from multifield.data.stream import StreamingBatches, iter_chunks
from multifield.data.stream_source import fit_streaming
from multifield.errors import DataError
from multifield.inference import Predictor


def small_config(**field_overrides):
    data = tomllib.loads(SMALL_CONFIG)
    for field in data["fields"].values():
        field.update(field_overrides)
    return config_from_dict(data)


@pytest.fixture(scope="module")
def movies():
    return bundled_movies(1200)


def _flat(value):
    return "|".join(value) if isinstance(value, list) else value


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".csv", ".csv.gz", ".parquet"])
def test_chunks_hold_every_record_once_in_order(tmp_path, movies, suffix):
    records = [{key: _flat(value) for key, value in record.items()} for record in movies[:300]]
    path = tmp_path / f"movies{suffix}"
    if suffix.startswith(".jsonl"):
        text = "".join(json.dumps(record) + "\n" + ("\n" if i == 5 else "") for i, record in enumerate(records))
        path.write_bytes(gzip.compress(text.encode()) if suffix.endswith(".gz") else text.encode())
    elif suffix.startswith(".csv"):
        pd.DataFrame(records).to_csv(path, index=False, compression="gzip" if suffix.endswith(".gz") else None)
    else:
        pd.DataFrame(records).to_parquet(path)
    whole = read_table(path)
    chunks = list(iter_chunks(path, chunk_records=64))
    assert all(len(chunk) <= 64 for chunk in chunks)
    assert [r for c in chunks for r in c.records] == whole.records
    assert [n for c in chunks for n in c.lines] == whole.lines
    shards = [list(iter_chunks(path, 64, index, 3)) for index in range(3)]
    ids = [[r["id"] for c in shard for r in c.records] for shard in shards]
    assert ids == [[r["id"] for r in whole.records][index::3] for index in range(3)]


def test_reading_in_chunks_does_not_grow_with_the_file(tmp_path, movies):
    """The reader never holds the file: 10x the records, about the same peak of Python memory."""

    def peak(count: int) -> int:
        path = write_jsonl(tmp_path / f"m{count}.jsonl", (movies * 10)[:count])
        tracemalloc.start()
        total = sum(len(chunk) for chunk in iter_chunks(path, chunk_records=100))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert total == count
        return top

    small, large = peak(600), peak(6000)
    assert large < 1.5 * small, (small, large)


@pytest.mark.parametrize(
    "overrides", [{"vocabulary_size": 300}, {"min_count": 2}], ids=["capped-with-ties", "min-count"]
)
def test_streamed_vocabulary_equals_the_in_memory_fit(tmp_path, movies, overrides):
    config = small_config(**overrides)
    path = write_jsonl(tmp_path / "train.jsonl", movies)
    in_memory = RecordEncoder.fit(config, read_table(path))
    source, validation = fit_streaming(config, path, split_validation=False, chunk_records=97)
    assert validation is None and source.count == len(movies)
    for name in config.fields:  # the whole tokenizer, vocabulary and settings, as saved
        assert source.encoder.tokenizers[name].tokenizer.to_str() == in_memory.tokenizers[name].tokenizer.to_str()
    assert source.encoder.labels.labels == in_memory.labels.labels
    y, _ = in_memory.encode_labels(read_table(path))
    assert np.array_equal(source.positives, y.sum(axis=0))


def test_split_off_validation_is_the_hash_side_and_capped(tmp_path, movies):
    config = small_config()
    path = write_jsonl(tmp_path / "train.jsonl", movies)
    cut = round(config.training.validation_fraction * 10_000)
    valid_side = [r["id"] for r in movies if hash_bucket(r["id"]) < cut]
    source, validation = fit_streaming(config, path, split_validation=True, shard_count=2)
    assert [r["id"] for r in validation.records] == valid_side
    assert source.count == len(movies) - len(valid_side) and sum(source.shard_counts) == source.count
    _, capped = fit_streaming(config, path, split_validation=True, max_validation=10)
    assert len(capped) == 10 and {r["id"] for r in capped.records} <= set(valid_side)


def test_errors_name_the_file_line_and_field(tmp_path, movies):
    config = small_config()
    lines = [json.dumps(r) for r in movies[:50]]
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text("\n".join(lines[:6] + ["{oops"] + lines[6:]) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 7: not valid JSON"):
        fit_streaming(config, bad_json, False, chunk_records=4)
    bad_field = tmp_path / "field.jsonl"
    bad_field.write_text("\n".join(lines[:30] + [json.dumps({**movies[30], "actors": {"a": 1}})] + lines[31:]) + "\n")
    with pytest.raises(DataError, match=r"field.jsonl, line 31, field 'actors'"):
        fit_streaming(config, bad_field, False, chunk_records=8)
    duplicate = tmp_path / "dup.jsonl"
    duplicate.write_text("\n".join(lines + [lines[3]]) + "\n")
    with pytest.raises(DataError, match=r"dup.jsonl, line 51, field 'id': duplicate id .* \(first seen on line 4\)"):
        fit_streaming(config, duplicate, False)


def test_streaming_batches_hold_each_record_once_an_epoch(tmp_path, movies):
    config = small_config()
    path = write_jsonl(tmp_path / "train.jsonl", movies[:500])
    source, _ = fit_streaming(config, path, False)
    batches = StreamingBatches(source, batch_size=32, sort_by="plot", seed=3, buffer_records=128)
    assert len(batches) == 16  # ceil(500 / 32)
    epochs = []
    for _ in range(2):
        batches.on_epoch_begin()
        rows = [batches[i] for i in range(len(batches))]
        batches.on_epoch_end()
        assert sum(len(y) for _, y in rows) == 500
        assert all(x["plot"].shape[1] <= 40 and x["actors"].shape == (len(y), 6) for x, y in rows)
        epochs.append(np.concatenate([x["actors"][:, 0] for x, _ in rows]))
    assert not np.array_equal(epochs[0], epochs[1])  # shuffled anew each epoch
    halves, _ = fit_streaming(config, path, False, shard_count=2)
    assert halves.shard_counts == [250, 250]
    full = StreamingBatches(halves, 32, "plot", shard_index=1, shard_count=2, drop_remainder=True, steps=7)
    full.on_epoch_begin()
    assert len(full) == 7 and all(len(full[i][1]) == 32 for i in range(7))


@pytest.mark.slow
def test_streamed_training_matches_in_memory(movie_files, small_config_path):
    from multifield import MultiFieldClassifier

    scores = {}
    for stream in (False, True):
        model = MultiFieldClassifier(small_config_path).fit(
            movie_files["train"], movie_files["valid"], epochs=1, verbose=False, stream=stream
        )
        assert model.metrics_["train_records"] == 300
        scores[stream] = model.metrics_["validation"]["micro_f1"]
    assert abs(scores[True] - scores[False]) <= 0.08, scores


def test_tfidf_wide_pooling_counts_the_same_documents_streamed_or_in_memory(movie_files):
    from multifield import MultiFieldClassifier

    weights = {}
    for stream in (False, True):
        model = MultiFieldClassifier(small_config()).fit(
            movie_files["train"], movie_files["valid"], epochs=1, verbose=False, stream=stream
        )
        weights[stream] = np.asarray(model.model_.get_layer("features_wide_pooling").idf)
    np.testing.assert_array_equal(weights[True], weights[False])
    # each keyword weighs ln((1 + records) / (1 + records holding it)) + 1, counted in the training file
    # among the first max_tokens (6) keywords of a record, the ones the model reads
    records = [json.loads(line) for line in movie_files["train"].read_text().splitlines()]
    vocabulary = model.encoder_.tokenizers["features"].vocabulary()
    token = vocabulary[2]
    holding = sum(token in {unicodedata.normalize("NFKC", item).lower() for item in record["features"][:6]} for record in records)
    assert holding >= 2
    np.testing.assert_allclose(weights[True][2], np.log(301 / (1 + holding)) + 1, rtol=1e-6)
    assert weights[True][0] == 0.0


def test_predict_file_streams_one_line_per_record(tmp_path, trained_bundle, movie_files):
    predictor = Predictor.load(trained_bundle)
    out = tmp_path / "predictions.jsonl"
    written = predictor.predict_file(movie_files["test"], out, chunk_records=30)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert written.count == len(rows) == 100 and written.skipped == []
    assert rows == json.loads(json.dumps(predictor.records(movie_files["test"])))
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]  # no temporary file left

    bad = tmp_path / "bad.jsonl"
    bad.write_text(movie_files["test"].read_text() + "[1, 2]\n")
    with pytest.raises(DataError, match="line 101"):
        predictor.predict_file(bad, tmp_path / "never.jsonl", chunk_records=30)
    assert not (tmp_path / "never.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "predictions.jsonl"]


@pytest.mark.slow
def test_the_logistic_wide_solver_needs_the_records_in_memory(movie_files):
    import io

    from rich.console import Console

    from multifield import MultiFieldClassifier

    config = small_config()
    config.training.wide_solver = "logistic"
    histories = {}
    for stream in (False, True):
        output = io.StringIO()
        model = MultiFieldClassifier(config).fit(
            movie_files["train"], movie_files["valid"], epochs=1, console=Console(file=output, width=200), stream=stream
        )
        histories[stream] = model.history_["wide_stage"]
        said = output.getvalue()
        assert ('"logistic" is not used (the training records are streamed)' in said) == stream
        assert np.isfinite(model.predict_proba(movie_files["test"])).all()
    assert histories[False]["solver"] == "logistic" and histories[False]["C"] > 0
    assert "solver" not in histories[True] and len(histories[True]["val_micro_f1"]) == 1  # one Adam epoch instead
