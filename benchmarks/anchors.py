"""The systems that ``multifield`` is measured against, on the fixed split of the bundled movies.

Each anchor trains on the training movies, may use the validation movies (model selection, early stopping, the
decision threshold), and returns its predicted label sets on the test movies with the seconds it spent training.
"Train time" is wall-clock from the raw training records to a fitted model with its threshold: vocabularies,
fitting, and any model selection on validation; reading the data and predicting on test are not counted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")  # before any keras import

import numpy as np
import scipy.sparse as sp

from benchmarks.common import (
    CACHE_DIR,
    FIELDS,
    LIST_FIELDS,
    REPO,
    Dataset,
    blank,
    field_items,
    field_text,
    load_dataset,
    tune_threshold,
    write_jsonl,
    write_split_jsonl,
)
from multifield.explain import attention_heads


@dataclass
class AnchorResult:
    """Predicted label indicator matrix on test (n_test x n_labels) and training seconds."""

    pred: np.ndarray
    train_seconds: float
    details: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- TF-IDF + logistic regression


def _items(value: list[str]) -> list[str]:
    """Analyzer for list fields: each element is one token (an actor, a keyword)."""
    return [v.strip().lower() for v in value if v.strip()]


def _vectorizer(name: str):
    from sklearn.feature_extraction.text import TfidfVectorizer

    if name in LIST_FIELDS:
        return TfidfVectorizer(analyzer=_items, sublinear_tf=True)
    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)


def _column(records: list[dict], name: str):
    if name in LIST_FIELDS:
        return [field_items(r, name) for r in records]
    return [field_text(r, name) for r in records]


def tfidf_logreg(fields: tuple[str, ...] = FIELDS, *, data: Dataset | None = None,
                 c_grid: tuple[float, ...] = (1.0, 4.0, 10.0),
                 class_weights: tuple[str | None, ...] = (None, "balanced")) -> AnchorResult:
    """TF-IDF per field + one-vs-rest logistic regression (liblinear); C, class weighting and one global
    threshold picked on validation micro-F1.

    Text fields (plot, reviews, title): word 1-2-grams, sublinear tf. List fields (actors, features): every
    element one token. The per-field matrices are stacked side by side.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    data = data or load_dataset()
    t0 = time.perf_counter()
    vecs = {f: _vectorizer(f) for f in fields}
    x_train = sp.hstack([vecs[f].fit_transform(_column(data.train, f)) for f in fields]).tocsr()
    x_valid = sp.hstack([vecs[f].transform(_column(data.valid, f)) for f in fields]).tocsr()
    best = None
    for cw in class_weights:
        for c in c_grid:
            clf = OneVsRestClassifier(LogisticRegression(solver="liblinear", C=c, class_weight=cw))
            clf.fit(x_train, data.y_train)
            thr, f1 = tune_threshold(data.y_valid, clf.predict_proba(x_valid))
            if best is None or f1 > best[0]:
                best = (f1, c, cw, thr, clf)
    valid_f1, c, cw, thr, clf = best
    seconds = time.perf_counter() - t0
    x_test = sp.hstack([vecs[f].transform(_column(data.test, f)) for f in fields]).tocsr()
    pred = (clf.predict_proba(x_test) >= thr).astype(int)
    return AnchorResult(pred, seconds, {"C": c, "class_weight": cw or "none", "threshold": thr,
                                        "valid micro-F1": round(valid_f1, 4),
                                        "features": x_train.shape[1]})


# --------------------------------------------------------------------------- the seed-style Keras model

SEED_FIELDS = ("actors", "plot", "features", "reviews", "title")
SEED_MAXLEN = {"plot": 200, "actors": 50, "features": 50, "reviews": 50, "title": 50}
SEED_NUM_WORDS = 20_000
SEED_EMBED = 100

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    """Lowercase, split on non-word characters."""
    return _WORD.findall(text.lower())


class _Vocabulary:
    """A word-level vocabulary the way a Keras ``Tokenizer(num_words=...)`` user gets one: the most frequent
    words of the training texts numbered from 1, unknown words dropped, 0 left for padding."""

    def __init__(self, texts: list[str], num_words: int = SEED_NUM_WORDS):
        counts = Counter(w for t in texts for w in _words(t))
        self.index = {w: i + 1 for i, (w, _) in enumerate(counts.most_common(num_words))}

    def __len__(self) -> int:
        return len(self.index) + 1

    def sequences(self, texts: list[str]) -> list[list[int]]:
        return [[self.index[w] for w in _words(t) if w in self.index] for t in texts]


def _peel_the_layer_class():
    import keras
    from keras import ops

    class PeelTheLayer(keras.layers.Layer):
        """The widely copied attention layer: ``e = tanh(x W + b)``, ``a = softmax(e, axis=1)``,
        ``sum(x * a, axis=1)``; ``b`` has one entry per time step, so the length is fixed; no mask."""

        def build(self, input_shape):
            self.W = self.add_weight(name="att_weight", shape=(input_shape[-1], 1), initializer="normal")
            self.b = self.add_weight(name="att_bias", shape=(input_shape[1], 1), initializer="zeros")

        def call(self, x):
            e = ops.tanh(ops.matmul(x, self.W) + self.b)
            a = ops.softmax(e, axis=1)
            return ops.sum(x * a, axis=1)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[-1])

    return PeelTheLayer


def build_seed_model(vocab_sizes: dict[str, int], n_labels: int):
    """The five-input model of the popular answer, including its unwired Dropout."""
    import keras
    from keras import layers

    inputs, pooled = {}, []
    for f in SEED_FIELDS:
        inp = keras.Input(shape=(SEED_MAXLEN[f],), dtype="int32", name=f)
        inputs[f] = inp
        emb = layers.Embedding(vocab_sizes[f], SEED_EMBED, embeddings_initializer="uniform", name=f"{f}_embedding")(inp)
        if f == "plot":
            seq = layers.Bidirectional(layers.LSTM(64, return_sequences=True), name="plot_bilstm")(emb)
            pooled.append(_peel_the_layer_class()(name="plot_attention")(seq))
        else:
            pooled.append(layers.GlobalMaxPooling1D(name=f"{f}_maxpool")(emb))
    merged = layers.Concatenate()(pooled)
    dense = layers.Dense(64, activation="relu")(merged)
    _dropped = layers.Dropout(0.5)(dense)  # as in the seed: its output is never used
    out = layers.Dense(n_labels, activation="sigmoid", name="genres")(dense)
    model = keras.Model(inputs=[inputs[f] for f in SEED_FIELDS], outputs=out)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def seed_style_keras(threshold: float | None = 0.5, epochs: int = 3, *, early_stopping: bool = False,
                     seed: int = 0, data: Dataset | None = None, verbose: int = 0) -> AnchorResult:
    """The Keras model a user following the popular answer writes (Keras 3, JAX backend).

    ``threshold=None`` tunes one global threshold on validation; ``early_stopping=True`` trains up to ``epochs``
    epochs, stops on validation loss (patience 2) and restores the best weights.
    """
    import keras
    from keras.utils import pad_sequences

    data = data or load_dataset()
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    vocabs = {f: _Vocabulary([field_text(r, f) for r in data.train]) for f in SEED_FIELDS}

    def arrays(records):
        # keras' defaults: padding="pre", truncating="pre"
        return [pad_sequences(vocabs[f].sequences([field_text(r, f) for r in records]), maxlen=SEED_MAXLEN[f])
                for f in SEED_FIELDS]

    x_train, x_valid = arrays(data.train), arrays(data.valid)
    model = build_seed_model({f: len(v) for f, v in vocabs.items()}, data.y_train.shape[1])
    y_train = data.y_train.astype("float32")
    fit_kw = {}
    if early_stopping:
        fit_kw["validation_data"] = (x_valid, data.y_valid.astype("float32"))
        fit_kw["callbacks"] = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=2,
                                                             restore_best_weights=True)]
    hist = model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=verbose, **fit_kw)
    details = {"epochs run": len(hist.history["loss"])}
    if early_stopping:
        val = hist.history["val_loss"]
        details["best epoch"] = int(np.argmin(val)) + 1
        details["best val loss"] = round(float(np.min(val)), 4)
    if threshold is None:
        threshold, valid_f1 = tune_threshold(data.y_valid, model.predict(x_valid, batch_size=256, verbose=0))
        details["valid micro-F1"] = round(valid_f1, 4)
    seconds = time.perf_counter() - t0
    pred = (model.predict(arrays(data.test), batch_size=256, verbose=0) >= threshold).astype(int)
    details["threshold"] = threshold
    details["labels/movie on test"] = round(float(pred.sum(axis=1).mean()), 2)
    return AnchorResult(pred, seconds, details)


# --------------------------------------------------------------------------- the project's own configs


class Unavailable(Exception):
    """A row cannot run here (a config file or the ``multifield`` command is missing)."""


@dataclass
class ConfigResult:
    micro_f1: float
    macro_f1: float
    train_seconds: float
    details: dict = field(default_factory=dict)


_BUNDLES: dict[Path, tuple[Path, float]] = {}  # config -> (trained bundle, train seconds), one per process


def _multifield_exe() -> str:
    local = Path(sys.executable).parent / "multifield"
    for cand in (REPO / ".venv" / "bin" / "multifield", local):
        if cand.exists():
            return str(cand)
    found = shutil.which("multifield")
    if found:
        return found
    raise Unavailable("the `multifield` command is not installed")


def _rel(path: Path | str) -> str:
    """A path relative to the repository root where it lies inside it (the commands run from there)."""
    path = Path(path)
    return str(path.relative_to(REPO)) if path.is_absolute() and path.is_relative_to(REPO) else str(path)


def _run(cmd: list[str], verbose: bool) -> subprocess.CompletedProcess:
    cmd = [_rel(c) if os.sep in c else c for c in cmd]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE,
                          text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or "")[-2000:]
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode}\n{tail}")
    return proc


def _parse_json_object(stdout: str) -> dict:
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        start, end = stdout.find("{"), stdout.rfind("}")
        if start < 0 or end < start:
            raise
        return json.loads(stdout[start:end + 1])


def multifield_config(config_path: str | Path, blank_fields: tuple[str, ...] = (), *,
                      verbose: bool = False) -> ConfigResult:
    """Train a ``multifield`` config with the CLI and evaluate it on the test movies.

    ``multifield train CONFIG --train --valid --out`` is timed as a whole process; ``multifield evaluate DIR
    --data TEST --json`` gives the metrics. With ``blank_fields`` the same trained bundle (trained once per
    process) is evaluated on a copy of the test file whose listed fields are empty.
    """
    config = Path(config_path)
    config = config if config.is_absolute() else REPO / config
    if not config.exists():
        raise Unavailable(f"{_rel(config)} does not exist")
    exe = _multifield_exe()
    paths = write_split_jsonl()
    if config not in _BUNDLES:
        runs = CACHE_DIR / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkdtemp(prefix=config.stem + "-", dir=runs)) / "bundle"
        cmd = [exe, "train", str(config), "--train", str(paths["train"]), "--valid", str(paths["valid"]),
               "--out", str(out)]
        t0 = time.perf_counter()
        _run(cmd, verbose)
        _BUNDLES[config] = (out, time.perf_counter() - t0)
    bundle, seconds = _BUNDLES[config]
    test = paths["test"]
    if blank_fields:
        test = test.parent / f"test-blank-{'-'.join(blank_fields)}.jsonl"
        if not test.exists():
            write_jsonl(test, blank(load_dataset().test, tuple(blank_fields)))
    proc = _run([exe, "evaluate", str(bundle), "--data", str(test), "--json"], verbose)
    metrics = _parse_json_object(proc.stdout)
    details = {"bundle": _rel(bundle)}
    if blank_fields:
        details["blanked on test"] = ", ".join(blank_fields)
    for k in ("threshold", "epochs"):
        if k in metrics:
            details[k] = metrics[k]
    if not blank_fields:
        details.update(attention_sharpness(exe, bundle, test, verbose))
    return ConfigResult(float(metrics["micro_f1"]), float(metrics["macro_f1"]), seconds, details)


def token_weights(pairs: list) -> tuple[list[str], np.ndarray]:
    """A field's words and attention weights from ``predict --attention``, the heads' weights averaged (how
    much the context, all heads, draws on each word; still summing to 1), as ``multifield.explain.attention_check``
    does."""
    heads = attention_heads(pairs)
    words = [word for word, _ in heads[0]]
    weights = np.mean([[weight for _, weight in head] for head in heads], axis=0) if words else np.zeros(0)
    return words, np.asarray(weights, dtype=np.float64)


def attention_sharpness(exe: str, bundle: Path, test: Path, verbose: bool = False, min_tokens: int = 5) -> dict:
    """How far each attention field's weights (averaged over heads) on the test records are from uniform: the
    median over records (of ``min_tokens`` tokens or more) of the largest weight times the number of tokens (1
    for uniform weights) and of the entropy divided by log(tokens) (1 for uniform weights); then whether the
    weights point at the words the prediction rests on (``attention_deletion``)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "attention.jsonl"
        _run([exe, "predict", str(bundle), "--input", str(test), "--output", str(output), "--attention"], verbose)
        rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    details = {}
    for name in rows[0].get("attention", {}) if rows else ():
        peaks, entropies = [], []
        for row in rows:
            _, weights = token_weights(row["attention"][name])
            if len(weights) < min_tokens:
                continue
            peaks.append(weights.max() * len(weights))
            entropies.append(-(weights * np.log(np.maximum(weights, 1e-12))).sum() / np.log(len(weights)))
        if peaks:
            details[f"{name} attention: largest weight x tokens (median; 1 = uniform)"] = round(float(np.median(peaks)), 2)
            details[f"{name} attention: normalised entropy (median; 1 = uniform)"] = round(float(np.median(entropies)), 3)
        with tempfile.TemporaryDirectory() as folder:
            details.update(attention_deletion(exe, bundle, test, rows, name, Path(folder), verbose))
    return details


def attention_deletion(exe: str, bundle: Path, test: Path, rows: list[dict], name: str, folder: Path,
                       verbose: bool = False, k: int = 3, min_tokens: int = 10) -> dict:
    """Whether an attention field's weights point at the words the prediction rests on (a deletion test):
    on the test records whose field has ``min_tokens`` tokens or more, remove its ``k`` most attended
    words, or ``k`` words at random, and measure how far the scores of the labels predicted on the
    unchanged record fall (mean over records and their predicted labels). Attention that explains the
    model makes the first fall much larger than the second."""
    rng = np.random.default_rng(0)
    records = [json.loads(line) for line in test.read_text(encoding="utf-8").splitlines()]
    kept, variants = [], {"same": [], "top": [], "random": []}
    for record, row in zip(records, rows):
        words, weights = token_weights(row["attention"][name])
        if len(words) < min_tokens or not row["labels"]:
            continue
        dropped = {"same": set(), "top": set(np.argsort(-weights)[:k].tolist()),
                   "random": set(rng.choice(len(words), k, replace=False).tolist())}
        for variant, positions in dropped.items():
            left = [word for position, word in enumerate(words) if position not in positions]
            variants[variant].append(dict(record, **{name: left if isinstance(record.get(name), list) else " ".join(left)}))
        kept.append(row["labels"])
    if not kept:
        return {}
    scores = {}
    for variant, variant_records in variants.items():
        source, output = folder / f"deletion-{variant}.jsonl", folder / f"deletion-{variant}-out.jsonl"
        write_jsonl(source, variant_records)
        _run([exe, "predict", str(bundle), "--input", str(source), "--output", str(output)], verbose)
        scores[variant] = [json.loads(line)["scores"] for line in output.read_text(encoding="utf-8").splitlines()]

    def fall(variant: str) -> float:
        return float(np.mean([np.mean([same[label] - changed[label] for label in labels])
                              for labels, same, changed in zip(kept, scores["same"], scores[variant])]))

    return {f"{name} attention: score fall when its {k} most attended words are removed (random {k})":
            f"{fall('top'):.4f} ({fall('random'):.4f})"}
