import numpy as np
import pytest
from sklearn.metrics import f1_score

from multifield.thresholds import best_global_threshold, decide, tune_thresholds


def test_decide_applies_thresholds_and_min_labels():
    scores = np.array([[0.9, 0.2, 0.1], [0.3, 0.4, 0.1], [0.1, 0.1, 0.1]], dtype=np.float32)
    thresholds = np.array([0.5, 0.5, 0.05], dtype=np.float32)
    np.testing.assert_array_equal(decide(scores, thresholds), [[1, 0, 1], [0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(decide(scores, 0.5, min_labels=1), [[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    assert decide(scores, 0.5, min_labels=2).sum(axis=1).tolist() == [2, 2, 2]


def test_per_label_thresholds_fit_each_label():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(400, 2))
    # Label 0 is well separated at 0.3, label 1 at 0.7.
    scores = np.where(y == 1, np.array([0.35, 0.75]), np.array([0.25, 0.65])) + rng.normal(0, 0.01, size=y.shape)
    thresholds = tune_thresholds(y, scores, "per_label")
    assert 0.25 < thresholds[0] <= 0.35 and 0.65 < thresholds[1] <= 0.75
    per_label = f1_score(y, decide(scores, thresholds), average="micro")
    _, global_f1 = best_global_threshold(y, scores)
    assert per_label == 1.0 and global_f1 < 1.0


def test_rare_labels_keep_the_global_threshold():
    y = np.zeros((100, 2), dtype=int)
    y[:50, 0] = 1
    y[0, 1] = 1
    scores = np.column_stack([y[:, 0] * 0.5 + 0.2, np.full(100, 0.1)])
    thresholds = tune_thresholds(y, scores, "per_label", min_support=5)
    global_threshold, _ = best_global_threshold(y, scores)
    assert thresholds[1] == np.float32(global_threshold)
    assert np.all(tune_thresholds(y, scores, "global") == np.float32(global_threshold))


def test_shrinkage_moves_per_label_thresholds_toward_the_global_one():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(400, 2))
    scores = np.where(y == 1, np.array([0.35, 0.75]), np.array([0.25, 0.65])) + rng.normal(0, 0.01, size=y.shape)
    own = tune_thresholds(y, scores, "per_label")
    global_threshold, _ = best_global_threshold(y, scores)
    half = tune_thresholds(y, scores, "per_label", shrinkage=0.5)
    np.testing.assert_allclose(half, (own + global_threshold) / 2, atol=1e-6)
    np.testing.assert_allclose(tune_thresholds(y, scores, "per_label", shrinkage=1.0), global_threshold, atol=1e-6)
    np.testing.assert_allclose(tune_thresholds(y, scores, "per_label", shrinkage=0.0), own)
    with pytest.raises(ValueError, match="shrinkage"):
        tune_thresholds(y, scores, "per_label", shrinkage=1.5)
