"""The Python API on a small model trained once per session (see conftest.trained_bundle)."""

import json
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

import multifield
from multifield.errors import BundleError, DataError, DataWarning


@pytest.fixture(scope="module")
def classifier(trained_bundle):
    return multifield.load(trained_bundle)


def test_bundle_holds_json_and_keras_only(trained_bundle):
    names = {path.relative_to(trained_bundle).as_posix() for path in trained_bundle.rglob("*") if path.is_file()}
    assert {"model.keras", "config.json", "labels.json", "thresholds.json", "metrics.json", "history.json",
            "manifest.json", "learning_curves.png"} <= names
    assert {f"tokenizers/{field}.json" for field in ("actors", "plot", "features", "reviews", "title")} <= names
    assert not [name for name in names if name.endswith((".pkl", ".pickle", ".npy"))]
    thresholds = json.loads((trained_bundle / "thresholds.json").read_text())
    assert set(thresholds) == set(json.loads((trained_bundle / "labels.json").read_text()))
    history = json.loads((trained_bundle / "history.json").read_text())
    assert len(history["learning_rate"]) == len(history["loss"]) >= 1
    assert {"val_micro_f1", "val_loss"} <= set(history)


def test_save_load_gives_equal_predictions(classifier, movie_files, tmp_path):
    before = classifier.predict_proba(movie_files["test"])
    classifier.save(tmp_path / "again")
    after = multifield.load(tmp_path / "again").predict_proba(movie_files["test"])
    np.testing.assert_allclose(before, after, rtol=1e-6, atol=1e-7)
    assert before.shape == (100, len(classifier.labels_))


def test_inputs_as_file_dataframe_or_records_agree(classifier, movie_files):
    records = [json.loads(line) for line in movie_files["test"].read_text().splitlines()]
    from_file = classifier.predict_proba(movie_files["test"])
    np.testing.assert_allclose(classifier.predict_proba(records), from_file, rtol=1e-6)
    np.testing.assert_allclose(classifier.predict_proba(pd.DataFrame(records)), from_file, rtol=1e-6)
    labels = classifier.predict(records)
    assert len(labels) == 100 and all(len(row) >= 1 for row in labels)  # min_labels = 1
    assert all(set(row) <= set(classifier.labels_) for row in labels)


def test_missing_and_empty_fields_are_valid(classifier):
    records = [
        {"id": "only-plot", "plot": "A haunted house terrifies a family."},
        {"id": "nothing"},
        {"id": "empties", "plot": "", "actors": [], "features": None, "reviews": "", "title": ""},
    ]
    scores = classifier.predict_proba(records)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores[1], scores[2], rtol=1e-6)


def test_predict_records_format_and_attention(classifier, movie_files):
    rows = classifier.predict_records(movie_files["test"], attention=True)
    records = [json.loads(line) for line in movie_files["test"].read_text().splitlines()]
    assert [row["id"] for row in rows] == [record["id"] for record in records]
    for row, record in zip(rows, records):
        assert set(row) == {"id", "labels", "scores", "attention"}
        assert set(row["scores"]) == set(classifier.labels_)
        assert set(row["labels"]) <= set(classifier.labels_)
        assert set(row["attention"]) == {"plot", "reviews"}
        for field, pairs in row["attention"].items():
            if record.get(field):
                assert sum(weight for _, weight in pairs) == pytest.approx(1.0, abs=1e-4)
                # Words as written: every token is a piece of the original text.
                assert all(word in record[field] for word, _ in pairs)
            else:
                assert pairs == []
    plain = classifier.predict_records(movie_files["test"])
    assert "attention" not in plain[0] and plain[0]["scores"] == rows[0]["scores"]


def test_metrics_from_evaluate(classifier, movie_files):
    metrics = classifier.evaluate(movie_files["test"])
    assert 0.0 <= metrics["micro_f1"] <= 1.0
    assert {row["label"] for row in metrics["per_label"]} == set(classifier.labels_)


def test_training_is_reproducible_with_a_seed(small_config_path, movie_files):
    first = multifield.MultiFieldClassifier(small_config_path).fit(movie_files["train"], epochs=1, verbose=False)
    second = multifield.MultiFieldClassifier(small_config_path).fit(movie_files["train"], epochs=1, verbose=False)
    np.testing.assert_allclose(first.predict_proba(movie_files["test"]), second.predict_proba(movie_files["test"]), rtol=1e-5, atol=1e-6)


def test_duplicate_ids_and_missing_ids_are_named(small_config_path, tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text('{"id": "a", "genres": ["X"]}\n{"id": "a", "genres": ["Y"]}\n')
    with pytest.raises(DataError, match=r"line 2: duplicate id 'a'"):
        multifield.MultiFieldClassifier(small_config_path).fit(path, verbose=False)
    path.write_text('{"id": "a", "genres": ["X"]}\n{"plot": "no id", "genres": ["Y"]}\n')
    with pytest.raises(DataError, match=r"line 2, field 'id': the record has no id"):
        multifield.MultiFieldClassifier(small_config_path).fit(path, verbose=False)


def test_wrong_field_type_names_line_and_field(classifier, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "plot": "fine"}\n{"id": "b", "plot": {"text": "x"}}\n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2, field 'plot': expected a string, got dict"):
        classifier.predict_proba(path)
    # A number in a text field has a clear meaning: it is read as text, and said once.
    path.write_text('{"id": "a", "plot": 5}\n{"id": "b", "plot": 6}\n')
    with pytest.warns(DataWarning, match=r"field 'plot': numbers are read as text \(2 records, first on line 1\)"):
        assert classifier.predict_proba(path).shape[0] == 2


def test_tampered_bundle_with_a_lambda_layer_is_refused(trained_bundle, tmp_path):
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(trained_bundle, tampered)
    with zipfile.ZipFile(trained_bundle / "model.keras") as source:
        members = {name: source.read(name) for name in source.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"].append(
        {"module": "keras.layers", "class_name": "Lambda", "config": {"name": "evil", "function": "os.system"},
         "registered_name": None}
    )
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tampered / "model.keras", "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    with pytest.raises(BundleError, match="Lambda layer"):
        multifield.load(tampered)


def test_foreign_class_and_truncated_model_are_refused(trained_bundle, tmp_path):
    import shutil

    foreign = tmp_path / "foreign"
    shutil.copytree(trained_bundle, foreign)
    with zipfile.ZipFile(trained_bundle / "model.keras") as source:
        members = {name: source.read(name) for name in source.namelist()}
    members["config.json"] = members["config.json"].replace(b'"module": "keras.layers"', b'"module": "evil.module"', 1)
    with zipfile.ZipFile(foreign / "model.keras", "w") as target:
        for name, content in members.items():
            target.writestr(name, content)
    with pytest.raises(BundleError, match="neither Keras nor multifield"):
        multifield.load(foreign)
    truncated = tmp_path / "truncated"
    shutil.copytree(trained_bundle, truncated)
    data = (truncated / "model.keras").read_bytes()
    (truncated / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="model.keras"):
        multifield.load(truncated)
    (truncated / "labels.json").unlink()
    with pytest.raises(BundleError, match="labels.json: missing"):
        multifield.load(truncated)


def test_saving_over_a_bundle_needs_overwrite(classifier, tmp_path):
    target = tmp_path / "model"
    classifier.save(target)
    with pytest.raises(BundleError, match="not empty"):
        classifier.save(target)
    classifier.save(target, overwrite=True)
    assert multifield.load(target).labels_ == classifier.labels_
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging directories left behind


def test_a_save_clears_what_a_killed_save_left_but_not_a_live_ones(classifier, tmp_path):
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(finished.stdout)  # a process that has ended: its staging directories are leftovers
    live = os.getppid()
    for name in (f".model.{dead}.a1b2c3.tmp", f".model.{dead}.d4e5f6.old", f".model.{live}.g7h8i9.tmp"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.keras").write_bytes(b"partial")
    (tmp_path / ".other.123.x.tmp").mkdir()  # another bundle's: not ours to touch
    classifier.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".model.%d.g7h8i9.tmp" % live, ".other.123.x.tmp", "model"])


def test_an_ensemble_is_one_bundle_with_averaged_attention(small_config_path, movie_files, tmp_path):
    from multifield.config import load_config

    config = load_config(small_config_path)
    config.training.ensemble = 2
    classifier = multifield.MultiFieldClassifier(config).fit(movie_files["train"], movie_files["valid"], epochs=1, verbose=False)
    assert len(classifier.metrics_["best_epochs"]) == 2 and len(classifier.history_["members"]) == 2
    classifier.save(tmp_path / "ensemble")
    loaded = multifield.load(tmp_path / "ensemble")
    np.testing.assert_allclose(loaded.predict_proba(movie_files["test"]), classifier.predict_proba(movie_files["test"]), rtol=1e-6, atol=1e-7)
    rows = loaded.predict_records(movie_files["test"], attention=True)
    for row in rows[:20]:
        pairs = row["attention"]["plot"]
        if pairs:
            assert sum(weight for _, weight in pairs) == pytest.approx(1.0, abs=1e-4)
