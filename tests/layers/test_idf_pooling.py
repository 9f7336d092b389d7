"""Tests of IdfPooling: what a linear model over TF-IDF computes, padding, empty rows, the `.keras` round trip."""

import json

import keras
import numpy as np
import pytest
from keras import ops

from multifield.layers import IdfPooling

VOCABULARY = 12
DOCUMENTS = 40


def _model(frequencies, sublinear_tf=False):
    ids = keras.Input(shape=(None,), dtype="int32")
    vectors = keras.layers.Embedding(VOCABULARY, 3, mask_zero=True, embeddings_initializer="random_normal", name="wide")
    pooling = IdfPooling(VOCABULARY, sublinear_tf=sublinear_tf, name="pooling")
    model = keras.Model(ids, pooling(vectors(ids), ids))
    pooling.set_document_frequencies(frequencies, documents=DOCUMENTS)
    return model


def _scikit_learn_tfidf(counts, ids, sublinear_tf):
    """scikit-learn's L2-normalised TF-IDF vectors of the rows of ``ids`` (without id 0), its smoothed idf fitted on
    documents that give each id its document frequency in ``counts``."""
    from sklearn.feature_extraction.text import TfidfTransformer

    documents = np.zeros((DOCUMENTS, VOCABULARY))
    for token, count in enumerate(counts):
        documents[:count, token] = 1
    transformer = TfidfTransformer(norm="l2", smooth_idf=True, sublinear_tf=sublinear_tf).fit(documents[:, 1:])
    bags = np.zeros((len(ids), VOCABULARY))
    for row, tokens in enumerate(ids):
        for token in tokens[tokens > 0]:
            bags[row, token] += 1
    return transformer.transform(bags[:, 1:]).toarray()


def _frequencies():
    counts = np.random.default_rng(0).integers(1, DOCUMENTS, size=VOCABULARY)
    counts[0] = 0
    return counts


def test_equals_a_linear_model_over_scikit_learns_tfidf_vectors():
    counts = _frequencies()
    model = _model(counts)
    ids = np.array([[3, 7, 1, 0, 0], [5, 0, 0, 0, 0], [2, 4, 6, 8, 10]], "int32")
    weights = ops.convert_to_numpy(model.get_layer("wide").embeddings)[1:]
    expected = _scikit_learn_tfidf(counts, ids, sublinear_tf=False) @ weights
    np.testing.assert_allclose(model.predict(ids, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_sublinear_tf_equals_scikit_learns_with_repeated_tokens():
    counts = _frequencies()
    model = _model(counts, sublinear_tf=True)
    pooling = model.get_layer("pooling")
    ids = np.array([[3, 3, 3, 7, 0, 0], [5, 5, 0, 0, 0, 0], [2, 4, 2, 8, 2, 10], [0, 0, 0, 0, 0, 0]], "int32")
    weights = ops.convert_to_numpy(model.get_layer("wide").embeddings)[1:]
    pooled = model.predict(ids, verbose=0)
    np.testing.assert_allclose(pooled, _scikit_learn_tfidf(counts, ids, sublinear_tf=True) @ weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pooled[3], np.zeros(3))  # a row of padding alone: zeros, no NaN
    # a token said three times weighs 1 + ln 3 times its idf, not 3 times: against the raw count, less
    raw = IdfPooling(VOCABULARY)
    raw.set_document_frequencies(counts, documents=DOCUMENTS)
    one_hot = np.eye(VOCABULARY, dtype="float32")[ids]
    share_sublinear = ops.convert_to_numpy(pooling(one_hot, ids))[0]
    share_raw = ops.convert_to_numpy(raw(one_hot, ids))[0]
    assert share_sublinear[3] / share_sublinear[7] < share_raw[3] / share_raw[7]


def test_padding_weighs_nothing_and_an_empty_row_gives_zeros():
    pooling = IdfPooling(VOCABULARY)
    pooling.set_document_frequencies(_frequencies(), documents=DOCUMENTS)
    ids = np.array([[4, 9, 0, 0], [0, 0, 0, 0]], "int32")
    vectors = np.random.default_rng(1).normal(size=(2, 4, 3)).astype("float32")
    changed = vectors.copy()
    changed[ids == 0] = 1e6  # whatever the padded steps hold
    pooled = ops.convert_to_numpy(pooling(vectors, ids))
    np.testing.assert_array_equal(pooled, ops.convert_to_numpy(pooling(changed, ids)))
    np.testing.assert_array_equal(pooled[1], np.zeros(3))
    assert np.isfinite(pooled).all()


def test_rare_tokens_weigh_more_than_frequent_ones():
    pooling = IdfPooling(4)
    pooling.set_document_frequencies(np.array([0, 39, 1, 20]), documents=DOCUMENTS)
    idf = ops.convert_to_numpy(pooling.idf)
    assert idf[0] == 0.0
    assert idf[2] > idf[3] > idf[1] >= 1.0
    assert not pooling.trainable_weights


def test_keras_file_round_trip_keeps_the_weights(tmp_path):
    model = _model(_frequencies())
    ids = np.array([[3, 7, 1, 0], [0, 0, 0, 0], [11, 11, 2, 5]], "int32")
    path = tmp_path / "idf.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded.get_layer("pooling").idf), ops.convert_to_numpy(model.get_layer("pooling").idf)
    )
    assert json.loads(json.dumps(model.get_layer("pooling").get_config()))["vocabulary_size"] == VOCABULARY
    assert IdfPooling.from_config(IdfPooling(VOCABULARY, sublinear_tf=True).get_config()).sublinear_tf is True


def test_bad_arguments_get_clear_errors():
    with pytest.raises(ValueError, match="vocabulary_size"):
        IdfPooling(0)
    with pytest.raises(ValueError, match="sublinear_tf"):
        IdfPooling(VOCABULARY, sublinear_tf="yes")
    with pytest.raises(ValueError, match="expected 12 counts"):
        IdfPooling(VOCABULARY).set_document_frequencies(np.ones(5), documents=DOCUMENTS)
