"""The deletion test of the attention: removing the most attended tokens against removing random ones."""

import json

import numpy as np
import pytest

import multifield
from multifield.config import config_from_dict
from multifield.explain.attention_check import attention_check, describe, without_positions
from multifield.inference import Predictor
from multifield.model import attention_output

KEY = 7  # the one token the stand-in model below rests on


def test_without_positions_takes_tokens_out_and_pads_again():
    ids = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 11, 0, 0, 0]], dtype=np.int32)
    removed = np.zeros(ids.shape, dtype=bool)
    removed[0, [0, 2]] = True
    removed[1, 2] = True
    removed[1, 4] = True  # padding: nothing to take out
    assert without_positions(ids, removed).tolist() == [[6, 8, 0, 0, 0, 0], [9, 10, 0, 0, 0, 0]]


def key_token_predictor(honest: bool) -> Predictor:
    """A Predictor over a stand-in model whose one label's score is high when token KEY is in the plot, and
    whose attention either sits on that token (``honest``) or on the first token (not)."""
    config = config_from_dict(
        {"labels": {"field": "genres"}, "fields": {"plot": {"encoder": "rnn_attention"}}, "training": {"min_labels": 0}}
    )

    def call(batch):
        ids = batch["plot"]
        scores = np.where((ids == KEY).any(axis=1), 0.9, 0.1)[:, None].astype(np.float32)
        focus = ids == KEY if honest else np.arange(ids.shape[1]) == 0
        weights = np.where(ids != 0, 0.01, 0.0) + np.where(focus & (ids != 0), 1.0, 0.0)
        total = weights.sum(axis=1, keepdims=True)
        return {"scores": scores, attention_output("plot"): weights / np.where(total > 0, total, 1.0)}

    return Predictor(config, encoder=None, model=None, thresholds=np.array([0.5]), call=call)


def _plots(rows: int = 200, width: int = 30) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    ids = np.zeros((rows, width), dtype=np.int32)
    for row in range(rows):
        length = rng.integers(12, width + 1)
        ids[row, :length] = rng.integers(10, 500, size=length)
        ids[row, rng.integers(0, length)] = KEY
    ids[:20, 5:] = 0  # too short to be measured
    return {"plot": ids}


def test_attention_on_the_deciding_token_passes_the_test_and_attention_elsewhere_fails_it():
    honest = attention_check(key_token_predictor(honest=True), _plots())["plot"]
    assert honest["records"] == 180 and honest["k"] == 3
    assert honest["top"] == pytest.approx(0.8)  # the key token is always among the 3 removed
    assert honest["random"] < 0.3 * honest["top"]  # 3 of 12-30 tokens at random hit it now and then
    elsewhere = attention_check(key_token_predictor(honest=False), _plots())["plot"]
    assert elsewhere["top"] < 0.3 * honest["top"]
    assert describe({"plot": honest})[0].startswith("plot: removing its 3 most attended words lowers")


def test_records_without_a_predicted_label_or_long_enough_field_are_left_out():
    inputs = _plots()
    inputs["plot"][:, :] = np.where(inputs["plot"] == KEY, 11, inputs["plot"])  # no key: no label predicted
    assert attention_check(key_token_predictor(honest=True), inputs) == {}


def test_on_a_trained_bundle_each_attention_field_is_measured(trained_bundle, movie_files):
    classifier = multifield.load(trained_bundle)
    records = [json.loads(line) for line in movie_files["valid"].read_text().splitlines()]
    check = attention_check(classifier.predictor(), records)
    assert set(check) <= {"plot", "reviews"} and "plot" in check
    plot = check["plot"]
    long_enough = sum(len(classifier.encoder_.tokenizers["plot"].encode_with_words(r.get("plot", ""))[0]) >= 10 for r in records)
    assert 0 < plot["records"] <= long_enough
    assert np.isfinite([plot["top"], plot["random"]]).all()
    assert check == attention_check(classifier.predictor(), records)  # the same records and seed: the same figures
