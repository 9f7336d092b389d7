"""The explain report's HTML: it merges the pieces of a word back into the word as written, shows each word's
weight, greys what the model did not read, and escapes everything."""

import html
import re

import pytest
from explain_helpers import shown_words

from multifield.explain import attention_heads, field_html, label_rows, report_html, word_spans


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


def test_an_empty_field_with_several_heads_is_shown_empty():
    # predict --attention gives one empty list per head for an empty field.
    assert attention_heads([[], [], []]) == [[], [], []]
    assert attention_heads([]) == [[]] and attention_heads([["a", 1.0]]) == [[["a", 1.0]]]
    out = field_html("", [[], []])
    assert out.count('class="head"') == 2 and out.count("(empty)") == 2


def test_label_rows_mark_right_wrong_and_missed_and_leave_out_unlikely_labels():
    prediction = {"labels": ["Drama", "Crime"], "scores": {"Drama": 0.9, "Crime": 0.6, "War": 0.2, "Comedy": 0.01,
                                                            "Western": 0.02}}
    out = label_rows(prediction, truth={"Drama", "Western"})
    shown = re.findall(r'<div class="label[^"]*">([^<]*)</div>', out)
    assert shown == ["Drama", "Crime", "War", "Western"]  # by score; Comedy is under the floor, Western is true
    marks = dict(zip(shown, re.findall(r'<div class="mark ?([a-z]*)">', out)))
    assert marks == {"Drama": "right", "Crime": "wrong", "War": "", "Western": "missed"}
    assert 'style="width:90.0%"' in out
    assert "right" not in label_rows(prediction, truth=None)  # no truth, no marks
