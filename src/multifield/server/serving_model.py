"""``ServingModel``: a bundle loaded once, read-only, run by ONNX Runtime on its ``model.onnx`` (any batch shape),
or by Keras with a few fixed batch shapes (``MULTIFIELD_RUNTIME=keras``, or a bundle without ``model.onnx``)."""

from __future__ import annotations

import gc
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from multifield.bundle import load_bundle
from multifield.data.batches import concatenate_padded, sort_field, trim_to_longest, width_step
from multifield.inference import Predictor
from multifield.server.settings import ServerSettings
from multifield.version import __version__

logger = logging.getLogger("multifield.server")


def field_widths(max_tokens: int) -> list[int]:
    """Every width ``predict_in_buckets`` may trim the sort field to (at most four)."""
    step = width_step(max_tokens)
    return sorted({min(max_tokens, k * step) for k in range(1, -(-max_tokens // step) + 1)})


def _bound_forward(model):
    """On JAX, the model's inference as one jitted function of its inputs, its weights read once (they never
    change while serving): ``predict_on_batch`` gathers and writes back every weight on each call, which costs
    more than the model itself for a few records. ``None`` on other backends."""
    import keras  # the Keras runtime only

    if keras.backend.backend() != "jax":
        return None
    import jax  # only on the JAX backend

    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]

    @jax.jit
    def forward(trainable, non_trainable, inputs):
        return model.stateless_call(trainable, non_trainable, inputs, training=False)[0]

    return lambda inputs: forward(trainable, non_trainable, inputs)


class FixedShapeCaller:
    """Calls a model with only a few row counts (``batch_sizes``) and, for the longest attention field, a few
    widths, so that XLA compiles each shape once, at warm-up. A ``Predictor``'s ``call``.

    The records of a bucket are cut into runs of those sizes, the last one padded with empty records; the
    cut is the one that costs least by the times measured at warm-up (padding 9 records up to 64 rows can
    cost more than two calls of 8). Each run is trimmed to its own longest record. The full model (scores
    and attention weights) answers both kinds of request.
    """

    def __init__(self, model, config, encoder, batch_sizes: tuple[int, ...]):
        self.batch_sizes = tuple(batch_sizes)
        self.encoder = encoder
        self.sort_by = sort_field(config)
        self.sort_tokens = encoder.tokenizers[self.sort_by].max_tokens if self.sort_by else 0
        self.costs: dict[tuple[int, int | None], float] = {}
        self.forward = _bound_forward(model) or model.predict_on_batch
        self._plans: dict[tuple[int, int | None], list[int]] = {}

    def widths(self) -> list[int | None]:
        return field_widths(self.sort_tokens) if self.sort_by else [None]

    def blank_inputs(self, size: int, width: int | None) -> dict[str, np.ndarray]:
        return {
            name: np.ones((size, width if name == self.sort_by else tokenizer.max_tokens), dtype=np.int32)
            for name, tokenizer in self.encoder.tokenizers.items()
        }

    def call_shape(self, batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        """One model call, the rows padded up to ``size``."""
        count = len(next(iter(batch.values())))
        if size > count:  # padding rows are empty records: every field all padding
            batch = {name: np.pad(ids, [(0, size - count), (0, 0)]) for name, ids in batch.items()}
        outputs = self.forward(batch)
        return {key: np.asarray(value)[:count] for key, value in outputs.items()}

    def plan(self, count: int, width: int | None) -> list[int]:
        """The batch sizes (largest first) to cut ``count`` records into: the cut that costs least by the
        times measured at warm-up, by dynamic programming over the record count."""
        key = (count, width)
        if key not in self._plans:
            # Unmeasured (no warm-up): a call costs as much as 4 rows more than its rows.
            cost = {size: self.costs.get((size, width), (size + 4) * 1e-3) for size in self.batch_sizes}
            best, choice = [0.0] + [math.inf] * count, [0] * (count + 1)
            for n in range(1, count + 1):
                for size in self.batch_sizes:
                    total = cost[size] + best[max(0, n - size)]
                    if total < best[n]:
                        best[n], choice[n] = total, size
            sizes, n = [], count
            while n > 0:
                sizes.append(choice[n])
                n -= choice[n]
            self._plans[key] = sorted(sizes, reverse=True)
        return self._plans[key]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = len(next(iter(batch.values())))
        width = batch[self.sort_by].shape[1] if self.sort_by else None
        pieces, start = [], 0
        for size in self.plan(count, width):
            run = {name: ids[start : start + size] for name, ids in batch.items()}
            if self.sort_by:
                run[self.sort_by] = trim_to_longest(run[self.sort_by], self.sort_tokens)
            pieces.append(self.call_shape(run, size))
            start += size
        return concatenate_padded(pieces)


class ServingModel:
    """The predictor of a bundle (a ``Predictor`` calling the model with fixed shapes), its description, and its warm-up.

    Loading goes through ``multifield.load`` (Keras ``safe_mode=True``; a model holding a ``Lambda`` layer or
    a class from outside Keras and multifield is refused with a ``BundleError``). Nothing is ever written to
    the bundle directory. ``predict`` and ``warm_up`` must be called from one thread only.

    Args:
        bundle_dir: a directory written by ``multifield train``.
        settings: the server settings (``batch_sizes`` are the row counts the model is called with).
    """

    def __init__(self, bundle_dir: str | os.PathLike, settings: ServerSettings):
        self.bundle_dir = Path(bundle_dir)
        self.settings = settings
        # `multifield serve --runtime` sets it for every worker; ONNX Runtime compiles nothing, so needs no caller.
        bundle = load_bundle(self.bundle_dir, runtime=os.environ.get("MULTIFIELD_RUNTIME", "onnx"))
        self.config = bundle.config
        self.metrics = bundle.metrics
        if bundle.model is None:  # loaded for ONNX Runtime
            self.caller = None
            self.predictor = Predictor.from_bundle(bundle, batch_size=max(settings.batch_sizes))
        else:
            self.caller = FixedShapeCaller(bundle.model, bundle.config, bundle.encoder, settings.batch_sizes)
            self.predictor = Predictor.from_bundle(bundle, call=self.caller, batch_size=self.caller.batch_sizes[-1])
        self.status = "warming_up"
        self.warmup_seconds: float | None = None
        try:
            self.manifest = json.loads((self.bundle_dir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.manifest = {}

    @property
    def ready(self) -> bool:
        return self.status == "ok"

    def shapes(self) -> list[tuple[int, int | None]]:
        """The (rows, width of the sort field) the model is called with: every batch size by every width (none
        to compile on ONNX Runtime)."""
        if self.caller is None:
            return []
        return [(size, width) for size in self.settings.batch_sizes for width in self.caller.widths()]

    def warm_up(self) -> None:
        """Call the model with every shape it will see, so that no request waits for a compilation, and time
        a second call of each to plan how batches are cut."""
        if self.ready:
            return
        started = time.perf_counter()
        caller = self.caller
        try:
            if self.settings.warmup and caller is None:
                # ONNX Runtime compiles nothing, but its memory arena grows to the largest batch it has run: one
                # batch of the largest size at every field's full width sizes it before the server says ready.
                self.predictor.call(self.largest_batch())
            if self.settings.warmup:
                for size, width in self.shapes():
                    inputs = caller.blank_inputs(size, width)
                    caller.call_shape(inputs, size)
                    timed = time.perf_counter()
                    caller.call_shape(inputs, size)
                    caller.costs[(size, width)] = time.perf_counter() - timed
                self.predict([{}], attention=True)
        except Exception:
            self.status = "failed"
            logger.exception("warm-up failed")
            return
        self.warmup_seconds = round(time.perf_counter() - started, 2)
        # The model, the tokenizers and the compiled functions live as long as the server: moved out of the
        # collector's generations, they are not walked again by every full collection during requests.
        gc.collect()
        gc.freeze()
        self.status = "ok"
        logger.info("model warmed up in %.1f s (%d shapes); ready", self.warmup_seconds, len(self.shapes()))

    def largest_batch(self) -> dict[str, np.ndarray]:
        """The largest id matrices a request can lead to: the predictor's batch size by each field's max_tokens
        (id 1, the unknown token, in every position)."""
        rows = self.predictor.batch_size
        return {name: np.ones((rows, field.max_tokens), dtype=np.int32) for name, field in self.config.fields.items()}

    def predict(self, records: list[dict], attention: bool = False) -> list[dict]:
        """``Predictor.records`` of these records."""
        return self.predictor.records(records, attention=attention)

    def info(self) -> dict:
        """What ``GET /v1/model`` shows: labels, fields, the config, validation metrics, versions."""
        config = self.config
        labels = list(self.predictor.labels)
        config_dict = config.to_toml_dict()
        for field in config_dict.get("fields", {}).values():
            if field.get("embeddings", {}).get("path"):  # a path on the server's disk: its file name says enough
                field["embeddings"]["path"] = Path(field["embeddings"]["path"]).name
        return _finite(
            {
                "name": config.name,
                "multifield_version": __version__,
                "bundle": {
                    key: self.manifest.get(key)
                    for key in ("format_version", "multifield_version", "keras_version", "backend", "created")
                },
                "id_field": config.id_field,
                "labels": labels,
                "thresholds": {label: round(float(t), 4) for label, t in zip(labels, self.predictor.thresholds)},
                "fields": {
                    name: {
                        "kind": field.kind,
                        "encoder": field.encoder,
                        "max_tokens": field.max_tokens,
                        "attention": name in config.attention_fields(),
                    }
                    for name, field in config.fields.items()
                },
                "config": config_dict,
                "validation": self.metrics.get("validation"),
                "attention_check": self.metrics.get("attention_check"),
                "limits": self.settings.limits(),
            }
        )


def _finite(value):
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
