"""Attention made visible: a self-contained HTML report of predictions with each word shaded by its attention
weight (``html``), and a heatmap PNG per record (``heatmap``); ``write_report`` writes both for a classifier."""

from __future__ import annotations

from pathlib import Path

from multifield.classifier import as_table
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


def write_report(classifier, data, out: Path, png_dir: Path | None = None, limit: int | None = None) -> int:
    """Predict with attention and write the HTML report (and PNG heatmaps); the number of records shown."""
    table = as_table(data)
    if limit:
        table = table.subset(range(min(limit, len(table))))
    predictions = classifier.predict_records(table, attention=True)
    page = report_html(table.records, predictions, classifier.config_.labels.field, f"{classifier.config_.name}: what the model read")
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
