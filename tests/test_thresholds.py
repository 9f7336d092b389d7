import numpy as np
import pytest
from sklearn.metrics import f1_score

from multifield.thresholds import (
    GRID,
    SHRINKAGE_GRID,
    best_global_threshold,
    choose_shrinkage,
    decide,
    macro_f1,
    micro_f1,
    objective_value,
    per_label_thresholds,
    shrink,
    tune_thresholds,
)


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


def sklearn_best_global_threshold(y, scores, min_labels):
    """The former implementation: sklearn's micro-F1 at each threshold of the grid, the first best kept."""
    best = (0.5, -1.0)
    for threshold in GRID:
        score = f1_score(y, decide(scores, threshold, min_labels), average="micro", zero_division=0)
        if score > best[1]:
            best = (float(threshold), float(score))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("min_labels", [0, 1])
def test_best_global_threshold_matches_sklearn_micro_f1(seed, min_labels):
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.integers(30, 200)), int(rng.integers(2, 12))
    y = (rng.random((n, n_labels)) < rng.uniform(0.05, 0.4)).astype(int)
    scores = rng.random((n, n_labels)).astype(np.float32)
    if seed % 2:
        scores = np.round(scores, 2)  # scores on the grid itself, and many ties between thresholds
    threshold, f1 = best_global_threshold(y, scores, min_labels)
    expected_threshold, expected_f1 = sklearn_best_global_threshold(y, scores, min_labels)
    assert threshold == expected_threshold
    assert f1 == pytest.approx(expected_f1, abs=1e-12)


def test_best_global_threshold_with_nothing_to_find():
    # No positives and nothing predicted at any threshold: F1 is 0 everywhere and the first threshold is kept.
    y = np.zeros((10, 3), dtype=int)
    assert best_global_threshold(y, np.zeros((10, 3), dtype=np.float32)) == (float(GRID[0]), 0.0)


def noisy_labels(seed=0, n=300, n_labels=30, rate=0.05, spread=0.2):
    """Labels with one score distribution and few positives: each label's own best threshold is noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, n_labels)) < rate).astype(int)
    scores = np.where(y == 1, rng.normal(0.6, spread, y.shape), rng.normal(0.35, spread, y.shape))
    return y, np.clip(scores, 0, 1).astype(np.float32)


def shifted_labels(seed=0, n=1000):
    """Labels 2 and 3 score 0.3 higher than labels 0 and 1: they really need their own thresholds."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < 0.3).astype(int)
    scores = np.where(y == 1, 0.4, 0.2) + np.array([0.0, 0.0, 0.3, 0.3]) + rng.normal(0, 0.08, y.shape)
    return y, np.clip(scores, 0, 1).astype(np.float32)


def test_choose_shrinkage_is_a_deterministic_grid_value():
    y, scores = noisy_labels()
    chosen = choose_shrinkage(y, scores, repeats=5)
    assert chosen in SHRINKAGE_GRID
    assert choose_shrinkage(y, scores, repeats=5) == chosen
    assert choose_shrinkage(y, scores, grid=(0.3,), repeats=1) == 0.3


def test_choose_shrinkage_without_anything_to_choose():
    y, scores = shifted_labels()
    assert choose_shrinkage(y, scores, "global") == 0.0
    assert choose_shrinkage(y[:19], scores[:19]) == 0.0  # too few records to split
    # Every label under min_support keeps the global threshold: all shrinkages tie, the smallest wins.
    assert choose_shrinkage(y, scores, min_support=10_000, grid=(1.0, 0.5, 0.75), repeats=2) == 0.5
    with pytest.raises(ValueError, match="mode"):
        choose_shrinkage(y, scores, "per_field")
    with pytest.raises(ValueError, match="grid"):
        choose_shrinkage(y, scores, grid=(0.5, 2.0))


@pytest.mark.parametrize("min_labels", [0, 1])
def test_choose_shrinkage_shrinks_noisy_per_label_thresholds(min_labels):
    y, scores = noisy_labels()
    assert choose_shrinkage(y, scores, min_labels=min_labels) >= 0.75


@pytest.mark.parametrize("min_labels", [0, 1])
def test_choose_shrinkage_keeps_thresholds_that_labels_need(min_labels):
    y, scores = shifted_labels()
    chosen = choose_shrinkage(y, scores, min_labels=min_labels)
    assert chosen == 0.0
    # And that is right: on fresh records from the same distribution, the unshrunk thresholds score better.
    fresh_y, fresh_scores = shifted_labels(seed=1)
    own = tune_thresholds(y, scores, min_labels=min_labels, shrinkage=chosen)
    shrunk = tune_thresholds(y, scores, min_labels=min_labels, shrinkage=1.0)
    assert micro_f1(fresh_y, decide(fresh_scores, own, min_labels)) > micro_f1(
        fresh_y, decide(fresh_scores, shrunk, min_labels)
    )


def test_shrinking_is_the_mix_tune_thresholds_uses():
    y, scores = shifted_labels()
    global_threshold, _ = best_global_threshold(y, scores)
    own = per_label_thresholds(y, scores, global_threshold)
    for shrinkage in SHRINKAGE_GRID:
        np.testing.assert_array_equal(
            shrink(own, global_threshold, shrinkage), tune_thresholds(y, scores, shrinkage=shrinkage)
        )


def _a_rare_label_behind_a_frequent_one():
    """Label 0: 50 positives scored 0.8, 50 negatives scored 0.3. Label 1 (rare): 5 positives scored 0.3,
    95 negatives scored 0.1. Any threshold that catches the rare label also lets in label 0's negatives."""
    y = np.zeros((100, 2), dtype=np.int8)
    scores = np.zeros((100, 2), dtype=np.float32)
    y[:50, 0] = 1
    scores[:, 0] = np.where(y[:, 0] == 1, 0.8, 0.3)
    y[50:55, 1] = 1
    scores[:, 1] = np.where(y[:, 1] == 1, 0.3, 0.1)
    return y, scores


def test_micro_f1_alone_leaves_a_rare_label_out_and_the_mean_with_macro_f1_takes_it_in():
    y, scores = _a_rare_label_behind_a_frequent_one()
    micro_threshold, micro_value = best_global_threshold(y, scores, objective="micro")
    mean_threshold, mean_value = best_global_threshold(y, scores, objective="micro_macro")
    assert micro_threshold > 0.3 and not decide(scores, micro_threshold)[:, 1].any()
    assert micro_value == pytest.approx(2 * 50 / (50 + 55))
    assert 0.1 < mean_threshold <= 0.3 and (decide(scores, mean_threshold)[:, 1] == y[:, 1]).all()
    assert mean_value == pytest.approx((2 * 55 / (105 + 55) + (2 * 50 / 150 + 1.0) / 2) / 2)
    tuned = tune_thresholds(y, scores, mode="global", objective="micro_macro")
    np.testing.assert_allclose(tuned, mean_threshold)


def test_macro_f1_counts_the_labels_that_have_a_positive():
    y = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.int8)
    assert macro_f1(y, np.array([[1, 0, 0], [0, 0, 0]])) == pytest.approx(0.5)  # label 2 has no positive: not counted
    assert macro_f1(np.zeros((2, 3)), np.ones((2, 3))) == 0.0
    assert objective_value(y, y, "micro_macro") == pytest.approx(1.0)


def test_an_unknown_objective_is_refused():
    y, scores = _a_rare_label_behind_a_frequent_one()
    with pytest.raises(ValueError, match="objective"):
        best_global_threshold(y, scores, objective="macro")
    with pytest.raises(ValueError, match="objective"):
        choose_shrinkage(y, scores, objective="f2")
