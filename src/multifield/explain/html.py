"""The explain report in HTML: each record's predicted labels with probability bars, and the words of each
attention field as written, shaded by the attention the model gave them."""

from __future__ import annotations

import html
import json

from multifield.data.labels import parse_labels
from multifield.pages import page_html


def _shade(weight: float, peak: float) -> str:
    alpha = 0.0 if peak <= 0 else min(1.0, weight / peak)
    return f"background:rgba(255,170,0,{alpha * 0.85:.3f})"


def _is_punctuation(token: str) -> bool:
    return not any(character.isalnum() for character in token)


def word_spans(text: str, pairs: list) -> list[tuple[int | None, int | None, list]]:
    """The tokens of ``pairs`` located in ``text`` and merged back into the words as written: tokens that
    touch (no space between, as in "Twenty-two" or "D'Onofrio") form one word, except punctuation at either
    end of it ("Park," is "Park" and ","). Each item is ``(start, end, [[token, weight], ...])``; a token not
    found in the text has ``None`` offsets."""
    located, cursor = [], 0
    for token, weight in pairs:
        start = text.find(token, cursor) if token else -1
        if start < 0:
            located.append((None, None, [[token, weight]]))
            continue
        located.append((start, start + len(token), [[token, weight]]))
        cursor = start + len(token)
    groups: list[list] = []
    for item in located:
        previous = groups[-1][-1] if groups else None
        if item[0] is not None and previous is not None and previous[1] == item[0]:
            groups[-1].append(item)
        else:
            groups.append([item])
    spans = []
    for group in groups:
        head, tail = [], []
        while len(group) > 1 and _is_punctuation(group[0][2][0][0]):
            head.append(group.pop(0))
        while len(group) > 1 and _is_punctuation(group[-1][2][0][0]):
            tail.insert(0, group.pop())
        core = (group[0][0], group[-1][1], [pair for item in group for pair in item[2]])
        spans.extend(head + [core] + tail)
    return spans


def _word_html(word: str, tokens: list, peak: float) -> str:
    weight = sum(w for _, w in tokens)
    if len(tokens) == 1:
        tooltip = f"{weight:.4f}"
    else:
        tooltip = f"{weight:.4f} = " + " + ".join(f"{token} {w:.4f}" for token, w in tokens)
    data_tokens = json.dumps(tokens, ensure_ascii=False, separators=(",", ":"))
    return (
        f'<span class="w" style="{_shade(weight, peak)}" title="{html.escape(tooltip)}" data-weight="{weight:.6f}" '
        f'data-tokens="{html.escape(data_tokens)}">{html.escape(word)}</span>'
    )


def display_text(value) -> str:
    """A field's value as shown: a string as written, a list of items joined by commas."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)


def attention_heads(pairs: list) -> list[list]:
    """A field's attention from ``predict --attention`` as one ``[[token, weight], ...]`` list per head: the
    field's list itself for one head; several heads already come as one list each (empty for an empty field)."""
    several = bool(pairs) and (pairs[0] == [] or isinstance(pairs[0][0], list))
    return pairs if several else [pairs]


def field_html(text, pairs: list) -> str:
    """The field's text as written, each word shaded by its attention weight (pieces of one word summed;
    tooltip and ``data-weight``: the weight, ``data-tokens``: the tokens and weights of ``predict --attention``).
    Spaces and punctuation stay where they were; text beyond what the model read is shown greyed."""
    text = display_text(text)
    heads = attention_heads(pairs)
    if len(heads) > 1:  # several heads: one row per head
        return "".join(
            f'<div class="head"><span class="head-name">head {h + 1}</span>{field_html(text, head)}</div>'
            for h, head in enumerate(heads)
        )
    if not text and not pairs:
        return '<span class="words empty">(empty)</span>'
    spans = word_spans(text, pairs)
    peak = max((sum(w for _, w in tokens) for _, _, tokens in spans), default=0.0)
    pieces, cursor = [], 0
    for start, end, tokens in spans:
        if start is None:  # not found as written: show the token on its own
            pieces.append(" " + _word_html(tokens[0][0], tokens, peak))
            continue
        pieces.append(html.escape(text[cursor:start]))
        pieces.append(_word_html(text[start:end], tokens, peak))
        cursor = end
    rest = text[cursor:]
    if rest.strip():
        pieces.append(
            f'<span class="unread" title="not read: beyond the {len(pairs)} tokens the model reads of this field">'
            f"{html.escape(rest)}</span>"
        )
    else:
        pieces.append(html.escape(rest))
    return f'<span class="words">{"".join(pieces)}</span>'


def _truth(record: dict, label_field: str | None) -> set[str] | None:
    if not label_field or record.get(label_field) in (None, "", []):
        return None
    try:
        return set(parse_labels(record[label_field]))
    except ValueError:
        return None


def label_rows(prediction: dict, truth: set[str] | None, floor: float = 0.05) -> str:
    """The label grid: name, probability bar, probability, and right/wrong/missed when the truth is known.
    Labels under ``floor`` are left out unless predicted or true."""
    predicted = set(prediction["labels"])
    rows = []
    for label, score in sorted(prediction["scores"].items(), key=lambda item: -item[1]):
        if score < floor and label not in predicted and (truth is None or label not in truth):
            continue
        mark, css = "", ""
        if truth is not None:
            if label in predicted:
                mark, css = ("✓ right", "right") if label in truth else ("✗ wrong", "wrong")
            elif label in truth:
                mark, css = "missed", "missed"
        chosen = " predicted" if label in predicted else ""
        rows.append(
            f'<div class="label{chosen} {css}">{html.escape(label)}</div>'
            f'<div class="bar{chosen}"><span style="width:{score * 100:.1f}%"></span></div>'
            f'<div class="score">{score:.2f}</div><div class="mark {css}">{mark}</div>'
        )
    return f'<div class="label-grid">{"".join(rows)}</div>'


def record_html(record: dict, prediction: dict, label_field: str | None, title_field: str | None) -> str:
    """One record: heading, true labels, the label grid, and each attention field's words shaded."""
    title = record.get(title_field) if title_field else None
    record_id = prediction.get("id")
    heading = html.escape(str(title or record_id or ""))
    id_html = f'<span class="id">{html.escape(str(record_id))}</span>' if title and record_id is not None else ""
    truth = _truth(record, label_field)
    truth_html = (
        f'<div class="truth">true: {html.escape(", ".join(sorted(truth)) or "(none)")}</div>' if truth is not None else ""
    )
    fields = "".join(
        f'<div class="field" data-field="{html.escape(name)}"><div class="field-name">{html.escape(name)}</div>'
        f"{field_html(record.get(name), pairs)}</div>"
        for name, pairs in prediction.get("attention", {}).items()
    )
    return (
        f'<section class="record" data-id="{html.escape(str(record_id))}"><h2>{heading}{id_html}</h2>{truth_html}'
        f"{label_rows(prediction, truth)}{fields}</section>"
    )


LEGEND = (
    '<p class="legend">Bars: the predicted probability of each label (dark: predicted). Words are shaded by the '
    'attention the model gave them <span class="scale"></span> (the darkest word of a field has its largest weight; '
    "hover for the weight, pieces of a word such as <i>Twenty-two</i> are summed); grey text lies beyond the "
    "tokens the model reads.</p>"
)


def records_html(records: list[dict], predictions: list[dict], label_field: str | None) -> str:
    """The explain sections of these records (for a report of its own or inside the training report)."""
    title_field = next((key for key in ("title", "name") if any(key in r for r in records)), None)
    return "".join(record_html(r, p, label_field, title_field) for r, p in zip(records, predictions))


def report_html(records: list[dict], predictions: list[dict], label_field: str | None, title: str = "multifield explain") -> str:
    """The explain report: a whole page of these records, their predictions and what the model read."""
    return page_html(title, LEGEND + records_html(records, predictions, label_field))


__all__ = [
    "LEGEND", "attention_heads", "display_text", "field_html", "label_rows", "record_html", "records_html",
    "report_html", "word_spans",
]
