"""Length-bucketed batches: records of similar length share a batch, which is cut to its longest record.

A recurrent encoder's cost grows with the padded length, and most plots are far shorter than the
longest one. Records are grouped by the length of one field (the longest attention field), and each
batch of that field is trimmed to its longest record, rounded up to one of at most four widths
(``width_step``), so that XLA compiles only a handful of shapes. The other fields keep their width.
Rows stay right-padded. Training batches are all full: the few records left over by the last full
batch wait for the next epoch (a new shuffle leaves out others), so that a short batch does not cost
a compilation of its own. A GRU that runs only the steps its batch holds (``multifield.layers.gru_steps``)
needs no trimming: its field keeps its full width (``trims_sort_field``), one shape to compile, and the
grouping alone saves the padding steps.
"""

from __future__ import annotations

import numpy as np

from multifield.config import Config


def sort_field(config: Config) -> str | None:
    """The attention field with the most tokens: batches are grouped by its length (``None`` when
    ``training.length_buckets`` is off: batches in random order, every field padded to its max_tokens)."""
    fields = config.attention_fields() if config.training.length_buckets else []
    return max(fields, key=lambda name: config.fields[name].max_tokens) if fields else None


def trims_sort_field(config: Config) -> bool:
    """Whether training batches cut the sort field to a width step: only when its encoder runs every step of
    the padded width (an LSTM, or a GRU with dropout, or off JAX). A GRU that runs only the steps its batch
    holds (``multifield.layers.gru_steps``) gets its field at full width: one shape to compile, whatever the
    batch's length, and no more steps run; unless the field has label-wise attention, whose arrays span the width."""
    from multifield.layers.recurrent_encoder import runs_only_needed_steps

    name = sort_field(config)
    if name is None:
        return False
    field = config.fields[name]
    if field.encoder != "rnn_attention" or field.label_attention:
        # Label-wise attention holds a (batch, time, labels) array of every padded step: its cost grows with the width.
        return True
    return not runs_only_needed_steps(field.cell, field.recurrent_input_dropout)


def row_lengths(ids: np.ndarray) -> np.ndarray:
    """Number of tokens of each right-padded row (the position after its last non-zero id)."""
    nonzero = ids != 0
    return np.where(nonzero.any(axis=1), ids.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)


def width_step(max_tokens: int) -> int:
    """Widths are multiples of this: at least 16, and at most four of them up to ``max_tokens``.

    Each width is one more compiled training step (seconds of XLA on a CPU) against the padding it
    saves: for the movie plots (160 tokens at most, median 56), four widths pad about as little as
    five, and three pad 14% more."""
    return max(16, -(-max_tokens // 32) * 8)


def trimmed(ids: np.ndarray, rows: np.ndarray, lengths: np.ndarray, agree_width=None) -> np.ndarray:
    step = width_step(ids.shape[1])
    longest = int(lengths[rows].max()) if len(rows) else 0
    width = min(ids.shape[1], max(step, -(-longest // step) * step))
    if agree_width is not None:  # processes of one data-parallel step must feed the same shape
        width = agree_width(width)
    return ids[rows, :width]


def trim_to_longest(ids: np.ndarray, max_tokens: int | None = None) -> np.ndarray:
    """All rows of ``ids``, cut to their longest record rounded up to a width step of ``max_tokens``
    (default: the width of ``ids``), as a batch of ``trimmed`` rows is."""
    max_tokens = max_tokens or ids.shape[1]
    step = width_step(max_tokens)
    longest = int(row_lengths(ids).max()) if len(ids) else 0
    return ids[:, : min(max_tokens, max(step, -(-longest // step) * step))]


def bucketed_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator, window: int = 50) -> list[np.ndarray]:
    """Batches of indices: shuffled, then sorted by length within windows of ``window`` batches, and
    the batches themselves shuffled, so that each epoch sees a new order."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * window
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def batch_order(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, keep_short: bool = True, window: int = 50
) -> tuple[list[np.ndarray], np.ndarray]:
    """Like ``bucketed_order``, but only full batches, plus the rows left over (fewer than ``batch_size``),
    which ``keep_short`` turns into one last short batch instead."""
    order = rng.permutation(len(lengths))
    full = len(order) // batch_size * batch_size
    rest = order[full:]
    batches = bucketed_order(lengths[order[:full]], batch_size, rng, window) if full else []
    batches = [order[:full][rows] for rows in batches]
    if keep_short and len(rest):
        batches.append(rest)
        rest = rest[:0]
    return batches, rest


def take_batch(inputs: dict[str, np.ndarray], rows: np.ndarray, sort_by: str | None, lengths, agree_width=None, trim=True):
    """The ``rows`` of every field; with ``trim``, the ``sort_by`` field trimmed to the batch's longest record."""
    return {
        name: trimmed(ids, rows, lengths, agree_width) if trim and name == sort_by else ids[rows]
        for name, ids in inputs.items()
    }


def predict_in_buckets(function, inputs: dict[str, np.ndarray], batch_size: int, sort_by: str | None, fixed_shapes: bool = True):
    """Apply ``function`` (dict of id arrays → array or dict of arrays) batch by batch, records sorted by
    length so that short records are not padded to the longest; results come back in input order.

    With ``fixed_shapes`` (a compiling runtime: XLA), a short last batch is padded with empty records up to
    the next power of two (at most ``batch_size``) and the sort field is cut to one of a few widths, so that a
    file read in chunks of any size compiles a handful of batch shapes, not one per chunk. Without (ONNX
    Runtime compiles nothing), every field of a batch is cut to its own longest record, and no row is added; a
    ``function`` with ``workers`` and ``map`` (``multifield.onnx_session.OnnxCall``) then runs that many batches
    at once, and fewer records than ``workers`` full batches are split evenly between them."""
    count = len(next(iter(inputs.values())))
    workers = getattr(function, "workers", 1) if not fixed_shapes else 1
    if workers > 1:
        batch_size = max(1, min(batch_size, -(-count // workers)))
    if sort_by:
        lengths = row_lengths(inputs[sort_by])
    elif not fixed_shapes:
        lengths = sum(row_lengths(ids) for ids in inputs.values())
    else:
        lengths = None
    order = np.argsort(lengths, kind="stable") if lengths is not None else np.arange(count)
    starts = range(0, count, batch_size)
    if fixed_shapes:
        pieces = [_padded_outputs(function, inputs, order[start : start + batch_size], sort_by, lengths, batch_size) for start in starts]
    else:
        batches = [{name: trim_to_own_longest(ids[order[start : start + batch_size]]) for name, ids in inputs.items()} for start in starts]
        pieces = function.map(batches) if workers > 1 else [function(batch) for batch in batches]
    inverse = np.empty(count, dtype=np.int64)
    inverse[order] = np.arange(count)
    return _reordered(concatenate_padded(pieces), inverse)


def _padded_outputs(function, inputs: dict[str, np.ndarray], rows: np.ndarray, sort_by, lengths, batch_size: int):
    """``function`` on one batch of a compiling runtime: the sort field cut to a width step, a short batch padded
    with empty records to the next power of two; the outputs of ``rows`` only."""
    batch = _batch(inputs, rows, sort_by, lengths)
    padded = min(batch_size, 1 << (len(rows) - 1).bit_length())
    if padded > len(rows):
        batch = {name: np.pad(ids, [(0, padded - len(rows)), (0, 0)]) for name, ids in batch.items()}
    return _first_rows(function(batch), len(rows))


def trim_to_own_longest(ids: np.ndarray) -> np.ndarray:
    """``ids`` cut to their longest row (at least one column: a batch of empty fields is one padding step)."""
    longest = int(row_lengths(ids).max()) if len(ids) else 0
    return ids[:, : max(1, longest)]


def concatenate_padded(pieces):
    """Outputs of several batches (arrays, or dicts of arrays) joined along the records; attention weights of
    batches trimmed to different widths are right-padded with zeros to the widest."""
    if isinstance(pieces[0], dict):
        return {key: concatenate_padded([piece[key] for piece in pieces]) for key in pieces[0]}
    if len(pieces) == 1:
        return pieces[0]
    width = max(piece.shape[-1] for piece in pieces)
    pieces = [np.pad(p, [(0, 0)] * (p.ndim - 1) + [(0, width - p.shape[-1])]) for p in pieces]
    return np.concatenate(pieces, axis=0)


def _first_rows(output, rows: int):
    if isinstance(output, dict):
        return {key: value[:rows] for key, value in output.items()}
    return output[:rows]


def _reordered(output, inverse: np.ndarray):
    if isinstance(output, dict):
        return {key: value[inverse] for key, value in output.items()}
    return output[inverse]


def _batch(inputs: dict[str, np.ndarray], rows: np.ndarray, sort_by: str | None, lengths) -> dict[str, np.ndarray]:
    return {name: trimmed(ids, rows, lengths) if name == sort_by else ids[rows] for name, ids in inputs.items()}
