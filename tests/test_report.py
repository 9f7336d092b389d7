"""The training report: written by `multifield train` into the bundle, self-contained, with every section."""

import base64
import json
import re

import numpy as np
from cli_helpers import run_cli
from rich.console import Console

import multifield
from multifield.report import error_cooccurrence, training_report_html, write_run_report

SECTIONS = ('id="curves"', 'id="labels"', 'id="errors"', 'id="attention"', 'id="model"', 'id="read"')


def assert_self_contained(page: str) -> None:
    assert "<link" not in page and "<script" not in page
    assert not re.search(r'(src|href)="(?!data:|#)', page), "only data URIs and in-page anchors"
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert images and all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)


def test_train_writes_the_report_into_the_bundle(small_config_path, movie_files, tmp_path):
    out = tmp_path / "model"
    result = run_cli("train", small_config_path, "--train", movie_files["train"], "--valid", movie_files["valid"],
                     "--out", out, "--epochs", 2)
    assert "training report written" in result.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert_self_contained(page)
    for section in SECTIONS:
        assert section in page
    assert page.count('<section class="record"') == 5  # the first five validation movies, explained
    first = json.loads(movie_files["valid"].read_text().splitlines()[0])
    assert f'data-id="{first["id"]}"' in page
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"{metrics['validation']['micro_f1']:.3f}" in page
    assert "Total params" in page  # Keras' model.summary()
    # The deletion test of each attention field, on the validation records, shown as measured.
    assert set(metrics["attention_check"]) == {"plot", "reviews"}
    plot = metrics["attention_check"]["plot"]
    assert f"{plot['top']:.4f}" in page and f"{plot['random']:.4f}" in page
    assert "attention check on validation, plot: removing its 3 most attended words" in result.output
    assert multifield.load(out).predict([first])  # the report beside the bundle's files does not disturb it


def test_without_valid_the_report_shows_the_numbers_fit_measured_on_its_split(small_config_path, movie_files, tmp_path):
    out = tmp_path / "model"
    run_cli("train", small_config_path, "--train", movie_files["train"], "--out", out, "--epochs", 1)
    page = (out / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((out / "metrics.json").read_text())
    assert 'id="labels"' in page and f"{metrics['validation']['micro_f1']:.3f}" in page
    for row in metrics["validation"]["per_label"]:
        assert f"<td>{row['label']}</td><td>{row['support']}</td><td>{row['precision']:.3f}</td>" in page


def test_error_cooccurrence_counts_wrong_labels_by_true_label():
    # labels a, b, c; record 1: true a, predicted a+b; record 2: true a+c, predicted b; record 3: true b, predicted b
    y_true = np.array([[1, 0, 0], [1, 0, 1], [0, 1, 0]])
    y_pred = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 0]])
    wrong, missed = error_cooccurrence(y_true, y_pred)
    assert wrong.tolist() == [[0, 2, 0], [0, 0, 0], [0, 1, 0]]
    assert missed.tolist() == [1, 0, 1]


def test_report_of_a_loaded_bundle_without_records_and_failures_are_warnings(trained_bundle, tmp_path):
    classifier = multifield.load(trained_bundle)
    page = training_report_html(classifier)  # no validation records: curves, per-label F1 and the model only
    assert_self_contained(page)
    assert 'id="curves"' in page and 'id="labels"' in page and 'id="model"' in page
    assert 'id="errors"' not in page and 'id="read"' not in page

    console = Console(record=True, width=200)
    assert write_run_report(classifier, tmp_path / "r.html", valid=tmp_path / "missing.jsonl", console=console) is None
    assert "warning" in console.export_text() and not (tmp_path / "r.html").exists()


def test_report_escapes_what_it_shows(trained_bundle, movie_files):
    classifier = multifield.load(trained_bundle)
    records = [json.loads(line) for line in movie_files["valid"].read_text().splitlines()[:3]]
    records[0]["title"] = "<script>alert(1)</script>"
    records[0]["plot"] = "A <img src=x onerror=alert(1)> plot"
    page = training_report_html(classifier, records, explained=1)
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_per_label_numbers_are_those_fit_measured_not_measured_again(trained_bundle, movie_files):
    classifier = multifield.load(trained_bundle)
    records = [json.loads(line) for line in movie_files["valid"].read_text().splitlines()]
    page = training_report_html(classifier, records[:3], explained=1)  # a few records: not enough to measure on
    validation = classifier.metrics_["validation"]
    assert validation["records"] == len(records) == 100  # measured by fit on all the validation movies
    for row in validation["per_label"]:
        assert f"<td>{row['label']}</td><td>{row['support']}</td><td>{row['precision']:.3f}</td>" in page
