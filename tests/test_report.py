"""The training report: written by `multifield train` into the bundle, self-contained, with every section."""

import base64
import json
import re

import numpy as np
import pytest
from cli_helpers import run_cli
from rich.console import Console

import multifield
from multifield.report import (
    SHOWN_LABELS,
    chart_panels,
    error_cooccurrence,
    error_labels,
    errors_part,
    label_summary,
    labels_part,
    per_label_f1_png,
    training_report_html,
    write_run_report,
)

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


def per_label_rows(count: int) -> list[dict]:
    """``count`` labels: label i has F1 i / count (so label count - 1 is the best), support i % 7 (0: none)."""
    return [{"label": f"label-{i}", "support": i % 7, "precision": i / count, "recall": i / count, "f1": i / count}
            for i in range(count)]


def png_height(png: bytes) -> int:
    return int.from_bytes(png[20:24], "big")


def test_a_chart_of_300_labels_shows_the_best_and_the_worst_at_a_bounded_height():
    rows = per_label_rows(300)
    (best_title, best), (worst_title, worst) = chart_panels(rows)
    present = [row for row in rows if row["support"]]
    by_f1 = sorted(present, key=lambda row: row["f1"])
    assert [row["label"] for row in best] == [row["label"] for row in reversed(by_f1[-SHOWN_LABELS:])]
    assert [row["label"] for row in worst] == [row["label"] for row in by_f1[:SHOWN_LABELS]]
    assert best[0]["label"] == "label-299" and worst[0]["label"] == "label-1"  # label-0 has no records: no F1
    assert f"best {SHOWN_LABELS} of {len(present)}" in best_title and "worst" in worst_title
    height = png_height(per_label_f1_png(rows))
    assert height == png_height(per_label_f1_png(per_label_rows(3000)))  # the same whatever the label count
    assert height <= 100 * (1.1 + 0.3 * SHOWN_LABELS)  # 100 dpi: 15 rows, not 300


def test_a_chart_of_a_few_labels_shows_them_all_by_support():
    rows = per_label_rows(5)
    [(title, shown)] = chart_panels(rows)
    assert title == "" and [row["label"] for row in shown] == ["label-4", "label-3", "label-2", "label-1", "label-0"]
    assert png_height(per_label_f1_png(rows)) < png_height(per_label_f1_png(per_label_rows(2 * SHOWN_LABELS)))


def test_the_summary_of_the_labels_is_true_of_them():
    rows = [
        {"label": "a", "support": 10, "precision": 0.5, "recall": 0.5, "f1": 0.5},
        {"label": "b", "support": 2, "precision": 0.0, "recall": 0.0, "f1": 0.0},
        {"label": "c", "support": 4, "precision": 1.0, "recall": 0.8, "f1": 0.9},
        {"label": "d", "support": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0},
        {"label": "e", "support": 40, "precision": 0.7, "recall": 0.7, "f1": 0.7},
    ]
    assert label_summary(rows) == {
        "labels": 5, "in_validation": 4, "f1_zero": 1, "median_f1": pytest.approx(0.6), "support_min": 2,
        "support_median": 7.0, "support_max": 40, "few_records": 2,
    }
    body = labels_part(rows).body
    assert "5 labels; 1 have no validation records" in body and "F1 = 0 for 1, median F1 0.600" in body
    assert "2 at least, 7 at the median, 40 at most; 2 have fewer than 5" in body


def test_the_labels_section_of_300_labels_keeps_every_label_in_a_folded_table():
    part = labels_part(per_label_rows(300))
    assert part.anchor == "labels"
    assert "300 labels; 43 have no validation records (no F1). Of the 257 that have" in part.body
    assert part.body.count('src="data:image/png') == 1
    table = part.body.split("<details>")[1]
    assert table.count("<tr>") == 301 and "label-0</td>" in table and "label-299</td>" in table


def test_the_error_matrix_of_many_labels_shows_those_with_the_most_errors():
    labels = [f"tag-{i}" for i in range(300)]
    y_true = np.zeros((40, 300), dtype=int)
    y_pred = np.zeros((40, 300), dtype=int)
    y_true[:, 7] = 1  # tag-7 is always true and missed in half the records ...
    y_pred[::2, 7] = 1
    y_pred[:, 250] = 1  # ... and tag-250 always predicted wrongly
    wrong, missed = error_cooccurrence(y_true, y_pred)
    shown = error_labels(wrong, missed, count=20)
    assert len(shown) == 20 and shown == sorted(shown) and {7, 250} <= set(shown)
    assert error_labels(wrong[:5, :5], missed[:5], count=20) == [0, 1, 2, 3, 4]
    body = errors_part(y_true, y_pred, labels).body
    assert "the 20 of 300 labels with the most errors" in body
    assert "<td>tag-7</td><td>tag-250</td><td>40</td>" in body
    figure = body.split('src="data:image/png;base64,')[1].split('"')[0]
    assert png_height(base64.b64decode(figure)) < 1200


def test_the_curves_of_a_blended_model_say_they_are_the_deep_parts_alone():
    from multifield.report import curves_part

    history = {"loss": [0.9, 0.8], "val_micro_f1": [0.3, 0.33], "learning_rate": [1e-3, 5e-4]}
    plain = curves_part(history).body
    blended = curves_part({**history, "blend": {"scale": 0.4, "trials": []}}).body
    assert "deep part's alone" not in plain
    assert "These curves are the deep part's alone" in blended and "with weight 0.4, chosen on validation" in blended
