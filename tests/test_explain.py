"""Explanations: the HTML report shows the same weights as predict --attention, merges the pieces of a
word back into the word as written, and escapes everything."""

import html
import json
import re

import pytest
from typer.testing import CliRunner

from multifield.cli import app
from multifield.explain import attention_heads, field_html, heatmap_png, report_html, word_spans

WORD = re.compile(r'<span class="w" [^>]*?title="([^"]*)" data-weight="([0-9.]+)" data-tokens="([^"]*)">(.*?)</span>')


def shown_words(fragment: str) -> list[dict]:
    """The shaded words of an HTML fragment: text, tooltip, weight and the tokens behind it."""
    return [
        {"word": html.unescape(word), "title": html.unescape(title), "weight": float(weight),
         "tokens": json.loads(html.unescape(tokens))}
        for title, weight, tokens, word in WORD.findall(fragment)
    ]


def test_predict_attention_sums_to_one_and_explain_shows_the_same_weights(trained_bundle, movie_files, tmp_path):
    runner = CliRunner()
    predictions = tmp_path / "predictions.jsonl"
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["predict", str(trained_bundle), "--input", str(movie_files["test"]), "--output", str(predictions), "--attention"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["explain", str(trained_bundle), "--input", str(movie_files["test"]), "--out", str(report), "--limit", "5", "--png", str(tmp_path / "png")])
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


def test_everything_is_escaped():
    record = {"id": "<b>x</b>", "title": "<script>alert(1)</script>", "plot": "A <script>alert('x')</script> plot",
              "genres": ["Drama"]}
    prediction = {"id": record["id"], "labels": ["<i>Drama</i>"], "scores": {"<i>Drama</i>": 0.9},
                  "attention": {'pl"ot': [["A", 0.2], ["<", 0.1], ["script", 0.3], ['">', 0.4]]}}
    record['pl"ot'] = record.pop("plot")
    page = report_html([record], [prediction], "genres")
    assert "<script" not in page and "<i>Drama</i>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-field="pl&quot;ot"' in page
    # a word that is itself markup stays text, in its tooltip and its data attribute too
    words = shown_words(page)
    assert words[-1]["word"] == '">' and words[-1]["tokens"] == [['">', 0.4]]


def test_words_keep_their_text_and_punctuation():
    out = field_html("Hello, world!", [["Hello", 0.5], [",", 0.1], ["world", 0.3], ["!", 0.1]])
    assert html.unescape(re.sub(r"<[^>]+>", "", out)) == "Hello, world!"
    assert [word["word"] for word in shown_words(out)] == ["Hello", ",", "world", "!"]
    assert 'title="0.5000"' in out


def test_pieces_of_a_word_are_merged_back_as_written():
    text = "Twenty-two years on, D'Onofrio (T-rex) roams."
    tokens = re.findall(r"\w+|[^\w\s]+", text)  # what the word-level tokenizer's Whitespace pre-tokenizer makes
    pairs = [[token, round(1 / len(tokens), 6)] for token in tokens]
    spans = word_spans(text, pairs)
    assert [text[start:end] for start, end, _ in spans] == [
        "Twenty-two", "years", "on", ",", "D'Onofrio", "(", "T-rex", ")", "roams", "."]
    out = field_html(text, pairs)
    words = shown_words(out)
    assert html.unescape(re.sub(r"<[^>]+>", "", out)) == text
    twenty_two = words[0]
    assert twenty_two["word"] == "Twenty-two" and twenty_two["tokens"] == [["Twenty", pairs[0][1]], ["-", pairs[1][1]], ["two", pairs[2][1]]]
    assert twenty_two["weight"] == pytest.approx(3 * pairs[0][1])
    assert "Twenty" in twenty_two["title"] and "two" in twenty_two["title"]


def test_text_beyond_what_the_model_read_is_greyed_and_items_are_listed():
    out = field_html("one two three four", [["one", 0.5], ["two", 0.5]])
    assert '<span class="unread"' in out and "three four" in out
    items = field_html(["Chris Pratt", "Irrfan Khan"], [["Chris Pratt", 0.25], ["Irrfan Khan", 0.75]])
    assert [word["word"] for word in shown_words(items)] == ["Chris Pratt", "Irrfan Khan"]
    assert "empty" in field_html(None, [])


def test_several_heads_get_one_row_each():
    heads = [[["a", 0.9], ["b", 0.1]], [["a", 0.2], ["b", 0.8]]]
    out = field_html("a b", heads)
    assert out.count('class="head"') == 2 and "head 2" in out
    assert [word["weight"] for word in shown_words(out)] == [0.9, 0.1, 0.2, 0.8]


def test_heatmap_is_a_png():
    data = heatmap_png({"attention": {"plot": [["a", 0.25], ["b", 0.75]], "reviews": []}}, "x")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_empty_field_with_several_heads_is_shown_empty():
    # predict --attention gives one empty list per head for an empty field.
    assert attention_heads([[], [], []]) == [[], [], []]
    assert attention_heads([]) == [[]] and attention_heads([["a", 1.0]]) == [[["a", 1.0]]]
    out = field_html("", [[], []])
    assert out.count('class="head"') == 2 and out.count("(empty)") == 2
    assert heatmap_png({"attention": {"plot": [[], []], "tagline": [["a", 0.4], ["b", 0.6]]}}, "x")[:8] == b"\x89PNG\r\n\x1a\n"
