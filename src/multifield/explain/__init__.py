"""Attention made visible: a self-contained HTML report of predictions with each word shaded by its attention
weight (``html``), a heatmap PNG per record (``heatmap``), and whether the attention explains the model at all
(``attention_check``); ``write_report`` writes the report and heatmaps of a predictor's records."""

from __future__ import annotations

from pathlib import Path

from multifield.data.io import as_table
from multifield.explain.heatmap import HEATMAP_COLUMNS, heatmap_png
from multifield.explain.html import (
    LEGEND,
    attention_heads,
    display_text,
    field_html,
    label_rows,
    record_html,
    records_html,
    report_html,
    word_spans,
)
from multifield.files import write_bytes, write_text
from multifield.inference import Predictor


def write_report(predictor: Predictor, data, out: Path, png_dir: Path | None = None, limit: int | None = None) -> int:
    """Predict with attention (a ``multifield.inference.Predictor``; a fitted estimator's is
    ``classifier.predictor()``) and write the HTML report (and PNG heatmaps); the number of records shown."""
    table = as_table(data)
    if limit:
        table = table.subset(range(min(limit, len(table))))
    predictions = predictor.records(table, attention=True)
    config = predictor.config
    page = report_html(table.records, predictions, config.labels.field, f"{config.name}: what the model read")
    write_text(out, page)
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for index, prediction in enumerate(predictions):
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(prediction.get("id", index)))
            write_bytes(png_dir / f"{index:04d}-{safe}.png", heatmap_png(prediction, str(prediction.get("id", ""))))
    return len(predictions)


__all__ = [
    "HEATMAP_COLUMNS", "LEGEND", "attention_heads", "display_text", "field_html", "heatmap_png", "label_rows",
    "record_html", "records_html", "report_html", "word_spans", "write_report",
]
