"""Explanations: the HTML report shows the same weights as predict --attention, escapes everything."""

import html
import json
import re

import pytest
from typer.testing import CliRunner

from multifield.cli import app
from multifield.explain import field_html, heatmap_png, report_html


def test_predict_and_explain_show_the_same_weights(trained_bundle, movie_files, tmp_path):
    runner = CliRunner()
    predictions = tmp_path / "predictions.jsonl"
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["predict", str(trained_bundle), "--input", str(movie_files["test"]), "--output", str(predictions), "--attention"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["explain", str(trained_bundle), "--input", str(movie_files["test"]), "--out", str(report), "--limit", "5", "--png", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    first = json.loads(predictions.read_text().splitlines()[0])
    plot_pairs = first["attention"]["plot"]
    assert sum(weight for _, weight in plot_pairs) == pytest.approx(1.0, abs=1e-4)
    page = report.read_text()
    section = page.split('<section class="record"')[1]
    plot_html = section.split('data-field="plot"')[1].split('data-field="reviews"')[0]
    shown = [(html.unescape(word), float(weight)) for weight, word in re.findall(r'data-weight="([0-9.]+)">(.*?)</span>', plot_html)]
    assert [word for word, _ in shown] == [word for word, _ in plot_pairs]
    for (_, shown_weight), (_, weight) in zip(shown, plot_pairs):
        assert shown_weight == pytest.approx(weight, abs=1e-6)
    assert len(list((tmp_path / "png").glob("*.png"))) == 5
    assert page.count('<section class="record"') == 5
    assert "<link" not in page and "<script src" not in page  # self-contained


def test_everything_is_escaped():
    record = {"id": "<b>x</b>", "title": "<script>alert(1)</script>", "plot": "A <script>alert('x')</script> plot", "genres": ["Drama"]}
    prediction = {"id": record["id"], "labels": ["<i>Drama</i>"], "scores": {"<i>Drama</i>": 0.9},
                  "attention": {"plot": [["A", 0.2], ["<", 0.1], ["script", 0.3], [">", 0.4]]}}
    page = report_html([record], [prediction], "genres")
    assert "<script>" not in page and "<i>Drama</i>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_words_keep_their_text_and_punctuation():
    out = field_html("Hello, world!", [["Hello", 0.5], [",", 0.1], ["world", 0.3], ["!", 0.1]])
    text = re.sub(r"<[^>]+>", "", out)
    assert html.unescape(text) == "Hello, world!"
    assert 'title="0.5000"' in out


def test_heatmap_is_a_png():
    data = heatmap_png({"attention": {"plot": [["a", 0.25], ["b", 0.75]], "reviews": []}}, "x")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
