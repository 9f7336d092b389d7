"""Matplotlib without a screen: the pyplot module on the Agg backend, and a figure as PNG bytes."""

from __future__ import annotations

import io


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
