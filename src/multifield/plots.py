"""Matplotlib without a screen: the pyplot module on the Agg backend, and a figure as PNG bytes."""

from __future__ import annotations

import io

import numpy as np


def pyplot():
    """``matplotlib.pyplot`` drawing off-screen (Agg), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(figure)
    return buffer.getvalue()


def learning_curves_png(histories: list[dict[str, list[float]]]) -> bytes:
    """Loss, validation micro-F1 and learning rate per epoch (one line per ensemble member), as a PNG."""
    figure, axes = pyplot().subplots(1, 3, figsize=(13, 3.6))
    for member, history in enumerate(histories):
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        suffix = f" ({member + 1})" if len(histories) > 1 else ""
        for key, label, style in (("loss", "train", "-"), ("val_loss", "validation", "--")):
            if key in history:
                axes[0].plot(epochs, history[key], style, marker="o", label=label + suffix)
        if "val_micro_f1" in history:
            axes[1].plot(epochs, history["val_micro_f1"], marker="o", label=f"member {member + 1}")
        if "learning_rate" in history:
            axes[2].plot(epochs, history["learning_rate"], marker="o")
    axes[0].set(title="binary cross-entropy", xlabel="epoch")
    axes[0].legend(fontsize="small")
    axes[1].set(title="validation micro-F1", xlabel="epoch")
    axes[2].set(title="learning rate", xlabel="epoch")
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure_png(figure)
