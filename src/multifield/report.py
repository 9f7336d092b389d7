"""The training report: one self-contained HTML page per run (learning curves, per-label F1 with support, the
labels wrongly predicted for each true label, the model summary, and what the model read in a few validation
records), written by ``multifield train`` into the bundle and by ``multifield demo`` beside it."""

from __future__ import annotations

import base64
import html
import os
import time
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from multifield.data.io import as_table
from multifield.explain import LEGEND, records_html
from multifield.files import write_text
from multifield.metrics import evaluate
from multifield.pages import page_html
from multifield.plots import figure_png, learning_curves_png, pyplot
from multifield.thresholds import decide
from multifield.version import __version__

EXPLAINED_RECORDS = 5
#: Labels shown at each end (best, worst) of the per-label F1 chart; up to twice as many are all shown.
SHOWN_LABELS = 15
#: Labels in the error co-occurrence matrix: those with the most errors when there are more.
ERROR_LABELS = 20
#: Fewer validation records than this make a label's F1 rest on a handful of records.
FEW_RECORDS = 5

CSS = """
nav{font-size:.88rem;margin:.2rem 0 1.5rem;display:flex;flex-wrap:wrap;gap:.3rem 1rem}
nav a{color:var(--accent);text-decoration:none}
section.part{margin:2.2rem 0 0}
section.part>h2{font-size:1.25rem;border-bottom:1px solid var(--line);padding-bottom:.3rem;margin-bottom:.8rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr));gap:.6rem;margin:1rem 0}
.card{border:1px solid var(--line);border-radius:10px;padding:.6rem .8rem;background:var(--soft)}
.card .value{font-size:1.35rem;font-weight:600;font-variant-numeric:tabular-nums}
.card .name{font-size:.75rem;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
img.plot{max-width:100%;height:auto;border:1px solid var(--line);border-radius:8px;margin:.4rem 0}
table.data{border-collapse:collapse;font-size:.85rem;font-variant-numeric:tabular-nums}
table.data th,table.data td{padding:.25rem .6rem;border-bottom:1px solid var(--line);text-align:right}
table.data th:first-child,table.data td:first-child{text-align:left}
pre.summary{font-size:.72rem;line-height:1.25;background:var(--soft);border:1px solid var(--line);border-radius:8px;
padding:.8rem;overflow-x:auto}
p.note{font-size:.88rem;color:var(--muted)}
"""


class Part(NamedTuple):
    """A section of the report: its anchor, its heading and its body (HTML)."""

    anchor: str
    heading: str
    body: str


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(png: bytes, alt: str) -> str:
    return f'<img class="plot" alt="{html.escape(alt)}" src="{_png_data_uri(png)}">'


# === Per-label F1 ===


def label_summary(per_label: list[dict]) -> dict:
    """How F1 spreads over the labels: how many labels, how many have validation records, how many of those
    have F1 = 0, their median F1, and their validation records (support) at least, at the median, at most, and
    how many labels have fewer than ``FEW_RECORDS``."""
    present = [row for row in per_label if row["support"] > 0]
    f1 = np.array([row["f1"] for row in present], dtype=float)
    support = np.array([row["support"] for row in present], dtype=float)
    return {
        "labels": len(per_label),
        "in_validation": len(present),
        "f1_zero": int((f1 == 0).sum()),
        "median_f1": float(np.median(f1)) if len(present) else None,
        "support_min": int(support.min()) if len(present) else 0,
        "support_median": float(np.median(support)) if len(present) else 0.0,
        "support_max": int(support.max()) if len(present) else 0,
        "few_records": int((support < FEW_RECORDS).sum()),
    }


def chart_panels(per_label: list[dict], shown: int = SHOWN_LABELS) -> list[tuple[str, list[dict]]]:
    """What the per-label F1 chart shows, as ``(title, rows top to bottom)`` panels: every label by support
    when there are at most ``2 * shown``; else, of the labels with validation records, the ``shown`` best and
    the ``shown`` worst by F1 (among equal F1, the label with more records first)."""
    if len(per_label) <= 2 * shown:
        return [("", sorted(per_label, key=lambda row: (-row["support"], row["label"])))]
    present = [row for row in per_label if row["support"] > 0]
    if len(present) <= 2 * shown:
        return [("", sorted(present, key=lambda row: (-row["support"], row["label"])))]
    best = sorted(present, key=lambda row: (-row["f1"], -row["support"], row["label"]))[:shown]
    worst = sorted(present, key=lambda row: (row["f1"], -row["support"], row["label"]))[:shown]
    return [(f"best {shown} of {len(present)} labels by F1", best), (f"worst {shown} by F1 (equal F1: more records first)", worst)]


def _short(text: str, width: int = 28) -> str:
    text = str(text).replace("$", r"\$")  # matplotlib would read a pair of $ as mathematics
    return text if len(text) <= width else text[: width - 1] + "…"


def _f1_bars(axis, rows: list[dict], title: str) -> None:
    positions = np.arange(len(rows))[::-1]  # the first row at the top
    axis.barh(positions, [row["f1"] for row in rows], color="#2f55d4", height=0.65, label="F1")
    axis.scatter([row["precision"] for row in rows], positions, marker="|", s=120, color="#1a7f37", label="precision", zorder=3)
    axis.scatter([row["recall"] for row in rows], positions, marker="|", s=120, color="#cf222e", label="recall", zorder=3)
    axis.set_yticks(positions, [f"{_short(row['label'])}  (n={row['support']})" for row in rows], fontsize=8)
    for position, row in zip(positions, rows):
        axis.text(min(row["f1"], 1.0) + 0.01, position, f"{row['f1']:.2f}", va="center", fontsize=7, color="#444")
    axis.set_xlim(0, 1.08)
    axis.set_ylim(-0.6, max(len(rows), 1) - 0.4)  # no blank band: the default margins grow with the rows
    axis.grid(axis="x", alpha=0.3)
    if title:
        axis.set_title(title, fontsize=10)


def per_label_f1_png(per_label: list[dict], shown: int = SHOWN_LABELS) -> bytes:
    """Horizontal bars of each label's F1 (precision and recall as ticks), support written: every label ordered
    by support, or side by side the best and the worst labels (see ``chart_panels``); at most ``2 * shown``
    bars, so the figure's height is bounded whatever the number of labels."""
    panels = chart_panels(per_label, shown)
    rows = max(len(panel_rows) for _, panel_rows in panels)
    figure, axes = pyplot().subplots(
        1, len(panels), figsize=(9 if len(panels) == 1 else 13, 1.1 + 0.3 * max(1, rows)), squeeze=False
    )
    for axis, (title, panel_rows) in zip(axes[0], panels):
        _f1_bars(axis, panel_rows, title)
    axes[0, -1].legend(loc="lower right", fontsize=8)
    if len(panels) == 1:
        axes[0, 0].set_xlabel("validation F1 (labels ordered by support: validation records holding the label)")
    else:
        figure.supxlabel("validation F1 (n: validation records holding the label)", fontsize=10)
    figure.tight_layout()
    return figure_png(figure)


def _summary_note(summary: dict) -> str:
    labels, present = summary["labels"], summary["in_validation"]
    if present == labels:
        text = f"{labels:,} labels, all in the validation records"
    else:
        text = f"{labels:,} labels; {labels - present:,} have no validation records (no F1). Of the {present:,} that have"
    if present:
        text += (
            f": F1 = 0 for {summary['f1_zero']:,}, median F1 {summary['median_f1']:.3f}; validation records per label "
            f"{summary['support_min']:,} at least, {summary['support_median']:g} at the median, "
            f"{summary['support_max']:,} at most; {summary['few_records']:,} have fewer than {FEW_RECORDS}, "
            "so their F1 rests on a handful of records"
        )
    return f'<p class="note">{text}.</p>'


def _per_label_table(per_label: list[dict]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(row['label'])}</td><td>{row['support']}</td><td>{row['precision']:.3f}</td>"
        f"<td>{row['recall']:.3f}</td><td>{row['f1']:.3f}</td></tr>"
        for row in sorted(per_label, key=lambda row: -row["support"])
    )
    return (
        f'<details><summary>the numbers of all {len(per_label):,} labels</summary><table class="data"><tr>'
        f"<th>label</th><th>support</th><th>precision</th><th>recall</th><th>F1</th></tr>{rows}</table></details>"
    )


def labels_part(per_label: list[dict], shown: int = SHOWN_LABELS) -> Part:
    """F1 per label: a summary of the spread, the chart, and every label's numbers folded away."""
    panels = chart_panels(per_label, shown)
    alt = "per-label F1" if len(panels) == 1 else f"per-label F1: the {shown} best and the {shown} worst labels"
    body = _summary_note(label_summary(per_label)) + _img(per_label_f1_png(per_label, shown), alt)
    return Part("labels", "F1 per label", body + _per_label_table(per_label))


# === Errors ===


def error_cooccurrence(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``wrong[t, p]``: records whose true labels hold ``t`` and whose prediction holds ``p`` although ``p``
    is not true; ``missed[t]``: records whose true label ``t`` was not predicted."""
    y_true = np.asarray(y_true, dtype=np.int64)
    false_positive = (np.asarray(y_pred, dtype=np.int64) * (1 - y_true)).astype(np.int64)
    wrong = y_true.T @ false_positive
    missed = (y_true * (1 - np.asarray(y_pred, dtype=np.int64))).sum(axis=0)
    return wrong, missed


def error_labels(wrong: np.ndarray, missed: np.ndarray, count: int = ERROR_LABELS) -> list[int]:
    """The columns of the labels the error matrix shows, in label order: all of them, or the ``count`` with the
    most errors (wrongly predicted, or true and wrongly given another label, or missed)."""
    size = len(missed)
    if size <= count:
        return list(range(size))
    errors = wrong.sum(axis=0) + wrong.sum(axis=1) + missed
    return sorted(np.argsort(-errors, kind="stable")[:count].tolist())


def error_cooccurrence_png(wrong: np.ndarray, missed: np.ndarray, labels: list[str]) -> bytes:
    size = len(labels)
    matrix = np.concatenate([wrong, missed[:, None]], axis=1).astype(float)
    figure, axis = pyplot().subplots(figsize=(2.5 + 0.42 * (size + 1), 1.8 + 0.36 * size))
    image = axis.imshow(matrix, cmap="Reds", aspect="auto", vmin=0)
    axis.set_xticks(range(size + 1), [_short(label) for label in labels] + ["(missed)"], rotation=60, ha="right", fontsize=8)
    axis.set_yticks(range(size), [_short(label) for label in labels], fontsize=8)
    axis.set_xlabel("label predicted wrongly (last column: the true label was missed)")
    axis.set_ylabel("true label")
    axis.axvline(size - 0.5, color="#888", linewidth=1)
    peak = matrix.max() if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axis.text(column, row, f"{int(count)}", ha="center", va="center", fontsize=6,
                      color="white" if count > 0.6 * peak else "#333")
    figure.colorbar(image, ax=axis, fraction=0.03, pad=0.02)
    figure.tight_layout()
    return figure_png(figure)


def _top_errors(wrong: np.ndarray, labels: list[str], count: int = 8) -> str:
    pairs = sorted(((int(wrong[t, p]), labels[t], labels[p]) for t, p in zip(*np.nonzero(wrong))), reverse=True)[:count]
    if not pairs:
        return '<p class="note">No label was predicted wrongly on the validation records.</p>'
    items = "".join(
        f"<tr><td>{html.escape(true)}</td><td>{html.escape(predicted)}</td><td>{n}</td></tr>" for n, true, predicted in pairs
    )
    return (
        '<table class="data"><tr><th>true label</th><th>predicted wrongly</th><th>records</th></tr>'
        f"{items}</table>"
    )


def errors_part(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> Part:
    """Which labels are predicted wrongly, by true label: the matrix and the most frequent pairs."""
    wrong, missed = error_cooccurrence(y_true, y_pred)
    shown = error_labels(wrong, missed)
    which = "" if len(shown) == len(labels) else f" Shown: the {len(shown)} of {len(labels):,} labels with the most errors."
    figure = error_cooccurrence_png(wrong[np.ix_(shown, shown)], missed[shown], [labels[i] for i in shown])
    body = (
        '<p class="note">For each true label (row), how many validation records holding it were also given a '
        "label they do not hold (column), and how many missed it (last column). Rows that light up across the "
        f"same columns show labels the model confuses.{which}</p>"
        + _img(figure, "labels predicted wrongly, by true label")
        + "<h3>Most frequent wrong labels</h3>"
        + _top_errors(wrong, labels)
    )
    return Part("errors", "Errors: which labels are predicted wrongly, by true label", body)


# === The other sections ===


def curves_part(history: dict) -> Part | None:
    """The learning curves of each ensemble member, when the classifier kept its history."""
    histories = history.get("members") or ([history] if history.get("loss") else [])
    if not histories:
        return None
    blend = history.get("blend")
    blended = (
        f" These curves are the deep part's alone: it is trained on its own, then its logits are added to the logistic "
        f"regression's with weight {blend['scale']:g}, chosen on validation, which is the model the cards above score."
        if blend else ""
    )
    body = _img(learning_curves_png(histories), "learning curves") + (
        '<p class="note">Training loss per epoch (validation loss dashed), validation micro-F1 at the best single '
        f"threshold, and the learning rate at the end of each epoch. The weights of the best epoch are kept.{blended}</p>"
    )
    return Part("curves", "Learning curves", body)


def model_summary(model) -> str:
    """Keras' ``model.summary()`` as plain text."""
    lines: list[str] = []
    model.summary(line_length=110, print_fn=lambda line, *args, **kwargs: lines.append(str(line)))
    return "\n".join(lines)


def model_part(model) -> Part:
    body = (
        f'<p class="note">{html.escape(model.name)}: {len(model.layers)} layers, {model.count_params():,} parameters.</p>'
        f'<details><summary>model.summary()</summary><pre class="summary">{html.escape(model_summary(model))}</pre></details>'
    )
    return Part("model", "Model", body)


def _ratio(top: float, random: float) -> str:
    return f"{top / random:.1f}x" if random > 0 else "—"


def attention_part(check: dict[str, dict]) -> Part:
    """The deletion test of each attention field (``metrics_["attention_check"]``), as measured by fit."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{result['top']:.4f}</td><td>{result['random']:.4f}</td>"
        f"<td>{_ratio(result['top'], result['random'])}</td><td>{result['records']:,}</td></tr>"
        for name, result in check.items()
    )
    k = next(iter(check.values()))["k"]
    body = (
        f'<p class="note">A deletion test on the validation records: remove a field\'s {k} most attended words, or {k} '
        "words at random, and see how far the scores of the labels predicted on the unchanged record fall (mean "
        "over records with 10 words or more). Where the first fall is several times the second, the highlighted "
        "words are the ones the prediction rests on; where the two are alike, the shading shows little of why.</p>"
        f"<table><tr><th>field</th><th>{k} most attended removed</th><th>{k} random removed</th><th>ratio</th>"
        f"<th>records</th></tr>{rows}</table>"
    )
    return Part("attention", "Does the attention explain the prediction?", body)


def read_part(classifier, table, explained: int = EXPLAINED_RECORDS) -> Part:
    """The first ``explained`` validation records, explained as ``multifield explain`` does."""
    sample = table.subset(range(min(explained, len(table))))
    predictions = classifier.predict_records(sample, attention=True)
    body = LEGEND + records_html(sample.records, predictions, classifier.config_.labels.field)
    return Part("read", f"What the model read: {len(sample.records)} validation records", body)


# === The page ===


def _card(name: str, value) -> str:
    return f'<div class="card"><div class="value">{html.escape(str(value))}</div><div class="name">{html.escape(name)}</div></div>'


def _cards(metrics: dict) -> str:
    validation = metrics.get("validation") or {}
    cards = []
    for key, name in (("micro_f1", "micro-F1"), ("macro_f1", "macro-F1"), ("samples_f1", "samples-F1"),
                      ("precision_at_1", "precision@1")):
        if key in validation:
            cards.append(_card(f"validation {name}", f"{validation[key]:.3f}"))
    for key, name in (("best_epoch", "best epoch"), ("epochs_run", "epochs run"), ("train_records", "training records"),
                      ("validation_records", "validation records")):
        if key in metrics:
            cards.append(_card(name, f"{metrics[key]:,}" if isinstance(metrics[key], int) else metrics[key]))
    if "train_seconds" in metrics:
        cards.append(_card("training time", f"{metrics['train_seconds'] / 60:.1f} min"))
    return f'<div class="cards">{"".join(cards)}</div>'


def _lead(classifier) -> str:
    created = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f'<p class="lead">multifield {html.escape(__version__)} · Keras {html.escape(keras.__version__)} '
        f"({html.escape(keras.backend.backend())}) · {len(classifier.labels_)} labels · fields "
        + ", ".join(html.escape(name) for name in classifier.config_.fields)
        + f" · written {created}</p>"
    )


def _sections(parts: list[Part]) -> str:
    nav = "".join(f'<a href="#{anchor}">{html.escape(heading.split(":")[0])}</a>' for anchor, heading, _ in parts)
    sections = "".join(
        f'<section class="part" id="{anchor}"><h2>{html.escape(heading)}</h2>{body}</section>' for anchor, heading, body in parts
    )
    return f"<nav>{nav}</nav>{sections}"


def validation_predictions(classifier, table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y_true, y_pred, scores)`` of the validation records, decided as ``predict`` decides."""
    y_true, _ = classifier.encoder_.encode_labels(table)
    scores = classifier.predict_proba(table)
    return y_true, decide(scores, classifier.thresholds_, classifier.config_.training.min_labels), scores


def training_report_html(classifier, valid=None, explained: int = EXPLAINED_RECORDS, title: str | None = None) -> str:
    """The report of a fitted (or loaded) classifier. The numbers are those ``fit`` measured on its validation
    records (``metrics_["validation"]``); ``valid``, those records (a path, DataFrame, list of dicts or Table),
    adds the error co-occurrence and the explained records."""
    metrics = dict(getattr(classifier, "metrics_", {}) or {})
    table = as_table(valid, "<valid>") if valid is not None else None
    errors = None
    if table is not None and len(table):
        y_true, y_pred, scores = validation_predictions(classifier, table)
        if not metrics.get("validation"):  # fit's numbers were not kept: measure them on these records
            metrics["validation"] = evaluate(y_true, y_pred, scores, list(classifier.labels_))
        errors = errors_part(y_true, y_pred, list(classifier.labels_))
    per_label = (metrics.get("validation") or {}).get("per_label")
    parts = [
        curves_part(getattr(classifier, "history_", {}) or {}),
        labels_part(per_label) if per_label else None,
        errors,
        model_part(classifier.model_),
        attention_part(metrics["attention_check"]) if metrics.get("attention_check") else None,
        read_part(classifier, table, explained) if errors is not None and explained else None,
    ]
    title = title or f"{classifier.config_.name}: training report"
    body = _lead(classifier) + _cards(metrics) + _sections([part for part in parts if part is not None])
    return page_html(title, body, CSS)


def write_training_report(classifier, out: str | os.PathLike, valid=None, explained: int = EXPLAINED_RECORDS) -> Path:
    """Write the training report to ``out`` atomically (a temporary file renamed into place)."""
    return write_text(out, training_report_html(classifier, valid, explained))


def write_run_report(classifier, out: str | os.PathLike, valid=None, console=None) -> Path | None:
    """The report of a training run just finished; ``valid``: the validation records the run used (a Table,
    path, DataFrame or list of dicts). A failure is told on ``console`` and returns None: the trained bundle
    matters more than its report."""
    try:
        path = write_training_report(classifier, out, valid)
    except Exception as error:  # noqa: BLE001 - any failure of the report must leave the run's result intact
        if console is not None:
            console.print(f"[yellow]warning:[/] no training report ({type(error).__name__}: {error})", highlight=False)
        return None
    if console is not None:
        console.print(f"training report written to {path}")
    return path


__all__ = [
    "Part", "chart_panels", "error_cooccurrence", "error_labels", "label_summary", "labels_part", "per_label_f1_png",
    "training_report_html", "write_run_report", "write_training_report",
]
