"""Multi-label metrics on scikit-learn: micro/macro/samples F1, precision@k, hamming loss, per-label report."""

from __future__ import annotations

import numpy as np
from rich.table import Table
from sklearn.metrics import f1_score, hamming_loss, precision_recall_fscore_support, precision_score, recall_score


def precision_at_k(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of the k best-scored labels of each record that are true, averaged over records."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.take_along_axis(y_true, top, axis=1).sum(axis=1).mean() / k)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, labels: list[str]) -> dict:
    y_true = y_true.astype(np.int8)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    return {
        "records": int(y_true.shape[0]),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "samples_f1": float(f1_score(y_true, y_pred, average="samples", zero_division=0)),
        "micro_precision": float(precision_score(y_true, y_pred, average="micro", zero_division=0)),
        "micro_recall": float(recall_score(y_true, y_pred, average="micro", zero_division=0)),
        "precision_at_1": precision_at_k(y_true, scores, 1),
        "precision_at_3": precision_at_k(y_true, scores, 3),
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
        "per_label": [
            {
                "label": label,
                "support": int(support[i]),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
            }
            for i, label in enumerate(labels)
        ],
    }


SUMMARY_METRICS = ("micro_f1", "macro_f1", "samples_f1", "precision_at_1", "precision_at_3", "hamming_loss")


def metrics_tables(metrics: dict) -> list[Table]:
    """The metrics of ``evaluate`` as two rich tables: the summary, and one row per label (most frequent first)."""
    summary = Table(title=f"{metrics['records']} records", show_header=True)
    for name in SUMMARY_METRICS:
        summary.add_column(name.replace("_", " "), justify="right")
    summary.add_row(*(f"{metrics[name]:.4f}" for name in SUMMARY_METRICS))
    per_label = Table(title="per label")
    for name, justify in (("label", "left"), ("support", "right"), ("precision", "right"), ("recall", "right"), ("F1", "right")):
        per_label.add_column(name, justify=justify)
    for row in sorted(metrics["per_label"], key=lambda row: -row["support"]):
        per_label.add_row(row["label"], str(row["support"]), f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}")
    return [summary, per_label]
