"""Attention as a picture: a matplotlib heatmap of one record's attention, a row per field (and head) and a
cell per token, written as PNG by ``multifield explain --png``."""

from __future__ import annotations

import numpy as np

from multifield.explain.html import attention_heads
from multifield.plots import figure_png, pyplot

HEATMAP_COLUMNS = 40


def _plain(text: str) -> str:
    """Text for matplotlib, which would read a pair of ``$`` as mathematics."""
    return str(text).replace("$", r"\$")


def heatmap_png(prediction: dict, title: str = "") -> bytes:
    """One row per attention field (and head), one cell per token, coloured by weight; a field longer than
    ``HEATMAP_COLUMNS`` tokens is wrapped onto several rows, coloured on one scale."""
    rows = []  # (name, pairs, largest weight of the field)
    for name, pairs in prediction.get("attention", {}).items():
        heads = attention_heads(pairs)
        for h, head in enumerate(heads):
            if not head:
                continue
            label = name if len(heads) == 1 else f"{name} (head {h + 1})"
            peak = max(weight for _, weight in head) or 1.0
            for start in range(0, len(head), HEATMAP_COLUMNS):
                rows.append((label if start == 0 else "", head[start : start + HEATMAP_COLUMNS], peak))
    width = max((len(pairs) for _, pairs, _ in rows), default=1)
    figure, axes = pyplot().subplots(
        len(rows) or 1, 1, figsize=(2 + 0.3 * width, 1.0 + 1.15 * max(1, len(rows))), squeeze=False
    )
    for axis, (name, pairs, peak) in zip(axes[:, 0], rows):
        weights = np.full((1, width), np.nan)
        weights[0, : len(pairs)] = [weight for _, weight in pairs]
        axis.imshow(weights, aspect="auto", cmap="Oranges", vmin=0, vmax=peak)
        axis.set_xticks(range(len(pairs)), [_plain(word) for word, _ in pairs], rotation=60, ha="right", fontsize=8)
        axis.set_yticks([0], [_plain(name)])
        axis.tick_params(length=0)
    if not rows:
        axes[0, 0].set_axis_off()
    if title:
        figure.suptitle(_plain(title))
    figure.tight_layout()
    return figure_png(figure, dpi=90)


__all__ = ["HEATMAP_COLUMNS", "heatmap_png"]
