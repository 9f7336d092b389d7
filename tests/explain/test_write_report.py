"""``multifield explain`` end to end: the HTML report shows the same weights as ``predict --attention``,
a heatmap per record, and nothing loaded from elsewhere."""

import html
import json

import pytest
from explain_helpers import shown_words
from typer.testing import CliRunner

from multifield.cli import app


def test_predict_attention_sums_to_one_and_explain_shows_the_same_weights(trained_bundle, movie_files, tmp_path):
    runner = CliRunner()
    predictions = tmp_path / "predictions.jsonl"
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["predict", str(trained_bundle), "--input", str(movie_files["test"]), "--output", str(predictions), "--attention"])
    assert result.exit_code == 0, result.output
    arguments = ["--input", str(movie_files["test"]), "--out", str(report), "--limit", "5", "--png", str(tmp_path / "png")]
    result = runner.invoke(app, ["explain", str(trained_bundle), *arguments])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    for row in rows:  # every attention field of every record: weights sum to 1 (an empty field has none)
        for name, pairs in row["attention"].items():
            if pairs:
                assert sum(weight for _, weight in pairs) == pytest.approx(1.0, abs=1e-4), (row["id"], name)
    first = rows[0]
    page = report.read_text()
    section = page.split('<section class="record"')[1]
    assert html.escape(first["id"]) in section.split(">")[0]
    for name, pairs in first["attention"].items():
        field = section.split(f'data-field="{name}"')[1].split('<div class="field"')[0]
        words = shown_words(field)
        # the same tokens, in order, with the same weights; each word's weight is the sum of its tokens'
        assert [token for word in words for token in word["tokens"]] == pairs
        for word in words:
            assert word["weight"] == pytest.approx(sum(weight for _, weight in word["tokens"]), abs=2e-6)
            assert word["title"].startswith(f"{word['weight']:.4f}")
    assert len(list((tmp_path / "png").glob("*.png"))) == 5
    assert page.count('<section class="record"') == 5
    assert "<link" not in page and "<script" not in page and "http" not in page.split("<body>")[1]  # self-contained
