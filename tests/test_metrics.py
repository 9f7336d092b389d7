import numpy as np
import pytest

from multifield.metrics import evaluate, precision_at_k


def test_precision_at_k_by_hand():
    y = np.array([[1, 0, 1], [0, 1, 0]])
    scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.9]])
    assert precision_at_k(y, scores, 1) == pytest.approx(0.5)  # right, wrong
    assert precision_at_k(y, scores, 2) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_evaluate_report():
    y = np.array([[1, 0], [1, 1], [0, 1]])
    predicted = np.array([[1, 0], [1, 0], [0, 1]])
    metrics = evaluate(y, predicted, predicted.astype(float), ["A", "B"])
    assert metrics["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1))
    assert metrics["hamming_loss"] == pytest.approx(1 / 6)
    assert metrics["per_label"][1] == {"label": "B", "support": 2, "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)}
