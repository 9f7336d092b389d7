"""A probe for the design of a label-wise attention head, on validation records only (BENCHMARKS.md, "Any data set").

With hundreds of labels, one attention over a long text must serve them all. Label-wise attention (Mullenbach et
al. 2018, "Explainable prediction of medical codes from clinical text", CAML; Xiao et al. 2019, LWAN) gives each
label a query of its own over the recurrent states and reads its logit from what that query attends to. This
script trains such a deep part beside a bundle trained by ``multifield train`` (its encoder, the same BiGRU and
embedding sizes, the same loss settings: label smoothing 0.05, positive weights sqrt(negatives/positives), Adam
at 0.002) and prints, after every epoch, validation micro-F1 at the best global threshold of:

- the bundle's deep part alone, and blended with the bundle's regression (the deep weight from a grid);
- the label-wise deep part alone, and blended with the same regression.

Nothing here is used by the library. Run:
``KERAS_BACKEND=jax .venv/bin/python benchmarks/label_attention_probe.py BUNDLE TRAIN.jsonl VALID.jsonl [EPOCHS]``
(the bundle's config must have a long text field ``--long`` read by ``rnn_attention`` and a wide part).
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
from keras import ops

from multifield.bundle import load_bundle
from multifield.data.batches import predict_in_buckets, sort_field
from multifield.data.io import read_table
from multifield.inference import PREDICT_BATCH_SIZE, keras_call
from multifield.layers import MaskedGlobalPooling
from multifield.thresholds import best_global_threshold

BLEND_WEIGHTS = (0.0, 0.2, 0.3, 0.5, 0.8, 1.0, 1.5)


class LabelAttention(keras.layers.Layer):
    """One attention query per label over ``(batch, time, features)`` states; each label's logit is its own
    weight vector dotted with what its query attended to. Padding gets exactly zero weight."""

    def __init__(self, labels: int, **kwargs):
        super().__init__(**kwargs)
        self.labels = labels
        self.supports_masking = True

    def build(self, shape):
        features = shape[-1]
        self.queries = self.add_weight(shape=(features, self.labels), initializer="glorot_uniform", name="queries")
        self.outputs = self.add_weight(shape=(self.labels, features), initializer="glorot_uniform", name="outputs")
        self.bias = self.add_weight(shape=(self.labels,), initializer="zeros", name="bias")

    def call(self, states, mask=None):
        scores = ops.einsum("btd,dl->btl", states, self.queries)
        if mask is not None:
            scores = ops.where(mask[:, :, None], scores, -1e9)
        weights = ops.softmax(scores, axis=1)
        if mask is not None:
            weights = ops.where(mask[:, :, None], weights, 0.0)
        context = ops.einsum("btl,btd->bld", weights, states)
        return ops.sum(context * self.outputs[None], axis=-1) + self.bias

    def compute_mask(self, inputs, mask=None):
        return None


def label_wise_model(inputs: dict[str, np.ndarray], long_field: str, labels: int, units: int = 48, dim: int = 64) -> keras.Model:
    """The long field: embedding, BiGRU, label-wise attention; every other field: mean of its embeddings, a dense
    layer to the labels; the logits added."""
    fields = {name: keras.Input((None,), dtype="int32", name=name) for name in inputs}
    parts = []
    for name, ids in fields.items():
        vectors = keras.layers.Embedding(int(inputs[name].max()) + 2, dim, mask_zero=True)(ids)
        if name == long_field:
            vectors = keras.layers.SpatialDropout1D(0.3)(vectors)
            states = keras.layers.Bidirectional(keras.layers.GRU(units, return_sequences=True))(vectors)
            parts.append(LabelAttention(labels)(keras.layers.Dropout(0.5)(states)))
        else:
            pooled = MaskedGlobalPooling(mode="mean")(vectors)  # an empty field gives zeros, not NaN
            parts.append(keras.layers.Dense(labels)(keras.layers.Dropout(0.5)(pooled)))
    logits = parts[0] if len(parts) == 1 else keras.layers.Add()(parts)
    return keras.Model(fields, logits)


def weighted_loss(y_train: np.ndarray):
    share = y_train.mean(axis=0)
    positive = np.sqrt((1 - share) / np.maximum(share, 1e-6)).astype("float32")

    def loss(y, logits):
        y = y * 0.95 + 0.025
        return ops.mean(positive * y * ops.softplus(-logits) + (1 - y) * ops.softplus(logits))

    return loss


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle")
    parser.add_argument("train")
    parser.add_argument("valid")
    parser.add_argument("epochs", type=int, nargs="?", default=12)
    parser.add_argument("--long", default="body")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    bundle = load_bundle(args.bundle, runtime="keras")

    def encoded(path):
        table = read_table(path)
        return bundle.encoder.encode_inputs(table), np.asarray(bundle.encoder.encode_labels(table)[0], dtype="float32")

    (x_train, y_train), (x_valid, y_valid) = encoded(args.train), encoded(args.valid)
    blend = bundle.model.get_layer("logits")
    parts = keras.Model(bundle.model.input, dict(zip(("wide", "deep"), blend.input)))
    logits = predict_in_buckets(keras_call(parts), x_valid, PREDICT_BATCH_SIZE, sort_field(bundle.config))
    wide = np.asarray(logits["wide"]) + ops.convert_to_numpy(blend.intercept)

    def report(name: str, deep: np.ndarray) -> str:
        blended = max((best_global_threshold(y_valid, sigmoid(wide + w * deep))[1], w) for w in BLEND_WEIGHTS)
        alone = best_global_threshold(y_valid, sigmoid(deep))[1]
        return f"{name}: alone {alone:.4f}, blended {blended[0]:.4f} (deep weight {blended[1]:g})"

    print(report("the bundle's deep part", np.asarray(logits["deep"])), flush=True)
    model = label_wise_model(x_train, args.long, y_train.shape[1])
    model.compile(keras.optimizers.Adam(2e-3), loss=weighted_loss(y_train))
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0, shuffle=True)
        deep = model.predict(x_valid, batch_size=256, verbose=0)
        print(f"epoch {epoch} ({time.perf_counter() - started:.0f} s): " + report("label-wise", deep), flush=True)


if __name__ == "__main__":
    main()
