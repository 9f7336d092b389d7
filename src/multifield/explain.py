"""Attention made visible: a self-contained HTML report of predictions with each word shaded by its
attention weight, and a matplotlib heatmap per record."""

from __future__ import annotations

import html
import io
from pathlib import Path

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:960px;color:#1d1d1f;
line-height:1.45;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin:0 0 .4rem}
.record{border:1px solid #ddd;border-radius:8px;padding:1rem 1.2rem;margin:1.2rem 0}
.genres{display:grid;grid-template-columns:10rem 1fr 3.5rem 1.5rem;gap:.15rem .6rem;align-items:center;
font-size:.9rem;margin:.6rem 0}
.bar{height:.7rem;background:#eee;border-radius:4px;overflow:hidden}
.bar span{display:block;height:100%;background:#6b8afd}
.predicted .bar span{background:#2f55d4}
.right{color:#1a7f37}.wrong{color:#c62828}.missed{color:#9a6700}
.field{margin:.7rem 0}.field-name{font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:#666}
.words{font-size:1rem}
.w{border-radius:3px;padding:0 1px;cursor:default}
.truth{font-size:.9rem;color:#444}
.legend{font-size:.85rem;color:#555}
"""


def _shade(weight: float, peak: float) -> str:
    alpha = 0.0 if peak <= 0 else min(1.0, weight / peak)
    return f"background:rgba(255,170,0,{alpha * 0.85:.3f})"


def field_html(text: str, pairs: list) -> str:
    """The field's text as written, each token shaded by its weight (tooltip: the weight); the text
    between tokens (spaces) is kept, and punctuation stays where it was."""
    if pairs and isinstance(pairs[0][0], list):  # several heads: one row per head
        return "".join(
            f'<div class="words"><span class="legend">head {h + 1}: </span>{field_html(text, head)}</div>'
            for h, head in enumerate(pairs)
        )
    peak = max((weight for _, weight in pairs), default=0.0)
    pieces, cursor = [], 0
    for word, weight in pairs:
        start = text.find(word, cursor) if isinstance(text, str) else -1
        if start < 0:  # not found as written (items fields): show the token on its own
            pieces.append(" ")
        else:
            pieces.append(html.escape(text[cursor:start]))
            cursor = start + len(word)
        pieces.append(
            f'<span class="w" style="{_shade(weight, peak)}" title="{weight:.4f}" data-weight="{weight:.6f}">'
            f"{html.escape(word)}</span>"
        )
    if isinstance(text, str):
        pieces.append(html.escape(text[cursor:]))
    return f'<span class="words">{"".join(pieces)}</span>'


def record_html(record: dict, prediction: dict, label_field: str | None, title_field: str | None) -> str:
    from multifield.data.labels import parse_labels

    title = record.get(title_field) if title_field else None
    heading = html.escape(str(title or prediction.get("id") or ""))
    truth = None
    if label_field and record.get(label_field) not in (None, "", []):
        try:
            truth = set(parse_labels(record[label_field]))
        except ValueError:
            truth = None
    predicted = set(prediction["labels"])
    rows = []
    ranked = sorted(prediction["scores"].items(), key=lambda item: -item[1])
    for label, score in ranked:
        if score < 0.05 and label not in predicted and (truth is None or label not in truth):
            continue
        mark, css = "", ""
        if truth is not None:
            if label in predicted:
                mark, css = ("✓", "right") if label in truth else ("✗", "wrong")
            elif label in truth:
                mark, css = "missed", "missed"
        row_class = "predicted" if label in predicted else ""
        rows.append(
            f'<div class="{row_class} {css}">{"<b>" if label in predicted else ""}{html.escape(label)}'
            f'{"</b>" if label in predicted else ""}</div><div class="{row_class} bar"><span style="width:{score * 100:.1f}%">'
            f'</span></div><div>{score:.2f}</div><div class="{css}">{mark}</div>'
        )
    truth_html = (
        f'<div class="truth">true: {html.escape(", ".join(sorted(truth)))}</div>' if truth is not None else ""
    )
    fields = "".join(
        f'<div class="field" data-field="{html.escape(name)}"><div class="field-name">{html.escape(name)}</div>'
        f'{field_html(record.get(name) or "", pairs)}</div>'
        for name, pairs in prediction.get("attention", {}).items()
    )
    return (
        f'<section class="record" data-id="{html.escape(str(prediction.get("id")))}"><h2>{heading}</h2>{truth_html}'
        f'<div class="genres">{"".join(rows)}</div>{fields}</section>'
    )


def report_html(records: list[dict], predictions: list[dict], label_field: str | None, title: str = "multifield explain") -> str:
    title_field = next((key for key in ("title", "name") if any(key in r for r in records)), None)
    body = "".join(record_html(r, p, label_field, title_field) for r, p in zip(records, predictions))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
        '<p class="legend">Bars: predicted probability per label (bold: predicted). Words are shaded by the '
        "attention the model gave them (hover for the weight; the darkest word of a field has the largest "
        f"weight).</p>{body}</body></html>"
    )


def heatmap_png(prediction: dict, title: str = "") -> bytes:
    """One row per attention field (and head), one cell per token, coloured by weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = []
    for name, pairs in prediction.get("attention", {}).items():
        heads = pairs if pairs and isinstance(pairs[0][0], list) else [pairs]
        for h, head in enumerate(heads):
            rows.append((name if len(heads) == 1 else f"{name} ({h + 1})", head))
    rows = [row for row in rows if row[1]]
    width = max((len(pairs) for _, pairs in rows), default=1)
    figure, axes = plt.subplots(len(rows) or 1, 1, figsize=(min(24, 2 + 0.42 * width), 1.2 + 1.6 * max(1, len(rows))), squeeze=False)
    for axis, (name, pairs) in zip(axes[:, 0], rows):
        weights = np.array([[weight for _, weight in pairs]])
        axis.imshow(weights, aspect="auto", cmap="Oranges", vmin=0)
        axis.set_xticks(range(len(pairs)), [word for word, _ in pairs], rotation=60, ha="right", fontsize=8)
        axis.set_yticks([0], [name])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def write_report(classifier, data, out: Path, png_dir: Path | None = None, limit: int | None = None) -> int:
    """Predict with attention and write the HTML report (and PNG heatmaps); the number of records shown."""
    import os
    import tempfile

    from multifield.classifier import as_table

    table = as_table(data)
    if limit:
        table = table.subset(range(min(limit, len(table))))
    predictions = classifier.predict_records(table, attention=True)
    page = report_html(table.records, predictions, classifier.config_.labels.field, f"{classifier.config_.name}: what the model read")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=out.parent, delete=False, suffix=".tmp") as handle:
        handle.write(page)
    os.replace(handle.name, out)
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for index, prediction in enumerate(predictions):
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(prediction.get("id", index)))
            (png_dir / f"{index:04d}-{safe}.png").write_bytes(heatmap_png(prediction, str(prediction.get("id", ""))))
    return len(predictions)
