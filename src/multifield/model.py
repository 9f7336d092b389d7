"""Builds the multi-input Keras model of a config, which returns its attention weights beside the scores;
and the encoder registry, ``ENCODERS``: one place per encoder kind for its config class, layer and search space.

One integer input per field → its embedding (id 0 is padding, masked all the way) → its encoder
(``rnn_attention``: RecurrentAttentionEncoder, ``attention``: AttentionPooling over the embedded tokens,
``pooled``: masked max/mean pooling) → concatenation →
Dropout → Dense → Dropout → one sigmoid per label. An ``rnn_attention`` field with ``label_attention`` gives one
logit per label of its own (``LabelAttention``), added to the dense head's. Fields marked ``wide`` also feed their bag of tokens
to a linear part whose logits are added to the deep part's ("wide & deep").
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import keras
import numpy as np

from multifield.config import (
    ATTENTION_ENCODERS,
    FIELD_CONFIGS,
    AttentionFieldConfig,
    Config,
    PooledFieldConfig,
    RNNAttentionFieldConfig,
    attention_output,
    encoder_name,
)
from multifield.layers import (
    AttentionPooling,
    FieldDropout,
    IdfPooling,
    LogitBlend,
    MaskedGlobalPooling,
    RecurrentAttentionEncoder,
)
from multifield.layers.numpy_initializers import GlorotUniform, RandomUniform, Zeros, attention_pooling_initializers

__all__ = [
    "ATTENTION_HEADS",
    "ENCODERS",
    "RECURRENT_UNITS",
    "EncoderKind",
    "attention_output",
    "blends_logits",
    "build_model",
    "deep_scores_model",
    "encoder_kind",
    "ensemble_model",
    "register_encoder",
    "scores_model",
    "set_wide_trainable",
    "training_model",
    "wide_scores_model",
]

# Settings that hyper-parameter search draws for the encoders (see each kind's ``search_space``).
RECURRENT_UNITS = (32, 64, 128)
ATTENTION_HEADS = (1, 2, 4)


# -- the encoder registry: one place per encoder kind -----------------------------------------------------
class EncoderKind:
    """One kind of field encoder: its config class, the Keras layer it builds, and what tuning searches.

    A kind is a subclass registered with ``@register_encoder``; its config class (in ``multifield.config``,
    listed in ``FIELD_CONFIGS``) names it. The layer reads the embedded tokens of a field,
    ``(batch, time, embedding_dim)`` with a mask, and returns ``(batch, features)``; a kind whose config
    ``pools_with_attention`` also returns its attention weights when called with
    ``return_attention_scores=True``.
    """

    #: The pydantic class of a field read by this encoder.
    config: ClassVar[type]

    def build(self, field, name: str) -> keras.layers.Layer:
        """The encoder layer of ``field`` (an instance of ``config``), named ``name``."""
        raise NotImplementedError

    def search_space(self, trial, field_name: str, field) -> dict:
        """The settings of ``field`` that hyper-parameter search draws from an Optuna ``trial``, by config key.

        A parameter is named after the key it sets, ``fields.<field_name>.<key>``. The order of the draws is part
        of a study: with the same seed, a study draws the same trials only if the order stays.
        """
        return {}


#: Each registered encoder kind by its name in a config file (``"rnn_attention"``).
ENCODERS: dict[str, EncoderKind] = {}


def register_encoder(kind: type[EncoderKind]) -> type[EncoderKind]:
    """Class decorator: register an ``EncoderKind`` under the name of its config class's encoder."""
    if kind.config not in FIELD_CONFIGS:
        raise ValueError(
            f"{kind.__name__}: its config class {kind.config.__name__} is not in "
            "multifield.config.FIELD_CONFIGS; add it there"
        )
    name = encoder_name(kind.config)
    if name in ENCODERS:
        raise ValueError(f"{kind.__name__}: encoder {name!r} is already registered ({type(ENCODERS[name]).__name__})")
    ENCODERS[name] = kind()
    return kind


def encoder_kind(field) -> EncoderKind:
    """The registered encoder kind of a field config."""
    try:
        return ENCODERS[field.encoder]
    except KeyError:
        raise ValueError(f"no encoder registered for {field.encoder!r} (registered: {', '.join(ENCODERS)})") from None


def _suggest_heads(trial, field_name: str) -> int:
    return trial.suggest_categorical(f"fields.{field_name}.heads", ATTENTION_HEADS)


@register_encoder
class RNNAttentionKind(EncoderKind):
    """``rnn_attention``: (Bi)LSTM/GRU layers, then attention pooling (``RecurrentAttentionEncoder``)."""

    config = RNNAttentionFieldConfig

    def build(self, field: RNNAttentionFieldConfig, name: str, num_labels: int | None = None, dropout: float = 0.0) -> keras.layers.Layer:
        """With ``field.label_attention``, a label-wise attention over ``num_labels`` labels, its input steps
        dropped out at ``dropout`` in training: the layer then returns logits."""
        label_attention = {"labels": num_labels, "label_dropout": dropout} if field.label_attention else {}
        return RecurrentAttentionEncoder(
            units=field.units,
            cell=field.cell,
            bidirectional=field.bidirectional,
            num_layers=field.num_layers,
            attention_units=field.attention_units,
            heads=field.heads,
            attention_dropout=field.attention_dropout,
            dropout=field.recurrent_input_dropout,
            name=name,
            **label_attention,
        )

    def search_space(self, trial, field_name: str, field: RNNAttentionFieldConfig) -> dict:
        return {
            "units": trial.suggest_categorical(f"fields.{field_name}.units", RECURRENT_UNITS),
            "cell": trial.suggest_categorical(f"fields.{field_name}.cell", ("lstm", "gru")),
            "heads": _suggest_heads(trial, field_name),
        }


@register_encoder
class AttentionKind(EncoderKind):
    """``attention``: attention pooling over the embedded tokens, no recurrence (``AttentionPooling``)."""

    config = AttentionFieldConfig

    def build(self, field: AttentionFieldConfig, name: str) -> keras.layers.Layer:
        return AttentionPooling(
            units=field.attention_units, heads=field.heads, dropout=field.attention_dropout, name=name, **attention_pooling_initializers()
        )

    def search_space(self, trial, field_name: str, field: AttentionFieldConfig) -> dict:
        return {"heads": _suggest_heads(trial, field_name)}


@register_encoder
class PooledKind(EncoderKind):
    """``pooled``: masked max/mean pooling over the embedded tokens (``MaskedGlobalPooling``); nothing searched."""

    config = PooledFieldConfig

    def build(self, field: PooledFieldConfig, name: str) -> keras.layers.Layer:
        return MaskedGlobalPooling(mode=field.pooling, name=name)


# -- the model ---------------------------------------------------------------------------------------------
def _field_dropout_seed(seed: int, position: int, field) -> int:
    """Fields draw from seeds of their own, so that each is blanked independently; the fields of one
    ``field_dropout_group`` share a seed (one number per record for all of them) and go missing together."""
    if field.field_dropout_group is None:
        return seed + position
    return seed + 1_000 + zlib.crc32(field.field_dropout_group.encode("utf-8")) % 1_000_000


def build_model(
    config: Config,
    vocabulary_sizes: dict[str, int],
    num_labels: int,
    embedding_matrices: dict[str, np.ndarray] | None = None,
    name_suffix: str = "",
    document_frequencies: dict[str, tuple[np.ndarray, int]] | None = None,
) -> keras.Model:
    """The full model: a dict of ``(batch, time)`` int32 id arrays in; out, a dict holding ``"scores"``
    ``(batch, num_labels)`` and, for each attention field, ``"<field>_attention"`` ``(batch, [heads,] time)``.

    Each encoder is called once, returning its attention weights too: Keras cannot reconnect a second
    call of a layer to a graph that was built without it. Train and predict with ``scores_model``.
    ``document_frequencies`` gives, for each field whose wide part is pooled by ``tfidf``, the number of
    training records holding each token id and the number of records.
    """
    embedding_matrices = embedding_matrices or {}
    document_frequencies = document_frequencies or {}
    training = config.training

    # === Fields: ids → field dropout → embedding → encoder; a wide field's bag of tokens → its logits ===
    inputs, encoders, deep_parts, label_parts, wide_parts, attention = {}, {}, [], [], [], {}
    for position, (name, field) in enumerate(config.fields.items()):
        ids = inputs[name] = keras.Input(shape=(None,), dtype="int32", name=name)
        if field.field_dropout > 0:
            ids = FieldDropout(
                field.field_dropout, seed=_field_dropout_seed(training.seed, position, field), name=f"{name}_field_dropout"
            )(ids)
        tokens = _embedded_tokens(name, field, ids, vocabulary_sizes[name], embedding_matrices.get(name))
        label_wise = getattr(field, "label_attention", False)
        options = {"num_labels": num_labels, "dropout": training.dropout} if label_wise else {}
        encoder = encoders[name] = encoder_kind(field).build(field, name=f"{name}_encoder", **options)
        if field.encoder in ATTENTION_ENCODERS:
            context, attention[attention_output(name)] = encoder(tokens, return_attention_scores=True)
        else:
            context = encoder(tokens)
        # A label-wise encoder's output is already one logit per label.
        (label_parts if label_wise else deep_parts).append(context)
        if field.wide:
            wide_parts.append(
                _wide_logits(name, field, ids, vocabulary_sizes[name], num_labels, document_frequencies.get(name))
            )

    # === Head: the deep part's logits, plus the wide part's ("wide & deep"), through a sigmoid ===
    # A wide part solved by logistic regression is blended with a deep part trained on its own (LogitBlend: the
    # regression's intercepts, and the deep logits' weight chosen on validation); otherwise the deep part starts
    # as a zero correction of the wide part's logits, trained with it.
    blend = bool(wide_parts) and training.wide_solver == "logistic"
    zero_start = bool(wide_parts) and not blend
    logits = _deep_logits(deep_parts, label_parts, config, num_labels, zero_start=zero_start)
    if zero_start:  # a label-wise field's logits start at zero too: its read-out vectors
        for name, field in config.fields.items():
            if getattr(field, "label_attention", False):
                readout = encoders[name].label_attention.readout
                readout.assign(np.zeros(readout.shape, dtype=readout.dtype))
    if wide_parts:
        wide_logits = wide_parts[0] if len(wide_parts) == 1 else keras.layers.Add(name="wide_logits")(wide_parts)
        if blend:
            logits = LogitBlend(num_labels, name="logits")([wide_logits, logits])
        else:
            logits = keras.layers.Add(name="logits")([logits, wide_logits])
    scores = keras.layers.Activation("sigmoid", dtype="float32", name="scores")(logits)

    # === Functional model ===
    return keras.Model(inputs=inputs, outputs={"scores": scores, **attention}, name=_model_name(config) + name_suffix)


def _embedded_tokens(name: str, field, ids, vocabulary_size: int, matrix: np.ndarray | None):
    # Pretrained vectors are the layer's starting weights, not a Constant initializer, which would write
    # the whole matrix into the saved model's config.json.
    embedding = keras.layers.Embedding(
        vocabulary_size,
        field.embedding_dim,
        mask_zero=True,
        embeddings_initializer=RandomUniform(),
        weights=matrix,
        trainable=True if matrix is None or field.embeddings is None else field.embeddings.trainable,
        name=f"{name}_embedding",
    )
    tokens = embedding(ids)
    if field.embedding_dropout > 0:
        tokens = keras.layers.SpatialDropout1D(field.embedding_dropout, name=f"{name}_embedding_dropout")(tokens)
    return tokens


def _wide_logits(name: str, field, ids, vocabulary_size: int, num_labels: int, document_frequencies):
    """A linear model over the field's bag of tokens: one weight per (token, label), pooled over tokens."""
    wide_tokens = keras.layers.Embedding(
        vocabulary_size, num_labels, mask_zero=True, embeddings_initializer=Zeros(), name=f"{name}_wide"
    )(ids)
    if field.wide_pooling != "tfidf":
        return MaskedGlobalPooling(mode=field.wide_pooling, name=f"{name}_wide_pooling")(wide_tokens)
    pooling = IdfPooling(vocabulary_size, sublinear_tf=field.wide_tf == "sublinear", name=f"{name}_wide_pooling")
    logits = pooling(wide_tokens, ids)
    # Without the training records' document frequencies (a model built to load saved weights into), every
    # token weighs 1 until they are set.
    if document_frequencies is not None:
        pooling.set_document_frequencies(*document_frequencies)
    return logits


def _deep_logits(deep_parts: list, label_parts: list, config: Config, num_labels: int, zero_start: bool):
    """Concatenated field encodings → Dropout → Dense → Dropout → logits, plus the logits of label-wise
    encoders (``label_parts``); the deep part's logits are the output of the layer named ``deep_logits``."""
    if not deep_parts:
        if len(label_parts) == 1:
            return keras.layers.Identity(name="deep_logits")(label_parts[0])
        return keras.layers.Add(name="deep_logits")(label_parts)
    training = config.training
    features = deep_parts[0] if len(deep_parts) == 1 else keras.layers.Concatenate(name="fields")(deep_parts)
    features = keras.layers.Dropout(training.dropout, name="features_dropout")(features)
    if training.hidden_units > 0:
        features = keras.layers.Dense(
            training.hidden_units, activation="relu", kernel_initializer=GlorotUniform(), bias_initializer=Zeros(), name="hidden"
        )(features)
        features = keras.layers.Dropout(training.dropout, name="hidden_dropout")(features)
    logits = keras.layers.Dense(
        num_labels,
        kernel_initializer=Zeros() if zero_start else GlorotUniform(),
        bias_initializer=Zeros(),
        name="field_logits" if label_parts else "deep_logits",
    )(features)
    return keras.layers.Add(name="deep_logits")([logits, *label_parts]) if label_parts else logits


def ensemble_model(members: list[keras.Model], config: Config) -> keras.Model:
    """One model that averages the scores and the attention weights of several full models.

    Averaged attention weights still sum to 1 over a field's tokens, so they explain the ensemble.
    """
    inputs = {tensor.name: keras.Input(shape=(None,), dtype="int32", name=tensor.name) for tensor in members[0].inputs}
    outputs = [member(inputs) for member in members]
    averaged = {key: keras.layers.Average(name=key)([output[key] for output in outputs]) for key in outputs[0]}
    return keras.Model(inputs=inputs, outputs=averaged, name=f"{_model_name(config)}_ensemble")


def wide_scores_model(model: keras.Model) -> keras.Model | None:
    """The linear (wide) part of a full model alone, with its own sigmoid; None without a wide part."""
    wide_layers = [layer for layer in model.layers if layer.name.endswith("_wide_pooling")]
    if not wide_layers:
        return None
    logits = model.get_layer("wide_logits").output if len(wide_layers) > 1 else wide_layers[0].output
    scores = keras.layers.Activation("sigmoid", dtype="float32", name="wide_scores")(logits)
    return keras.Model(inputs=model.input, outputs=scores, name=f"{model.name}_wide")


def set_wide_trainable(model: keras.Model, trainable: bool) -> None:
    for layer in model.layers:
        if layer.name.endswith("_wide"):
            layer.trainable = trainable


def scores_model(model: keras.Model) -> keras.Model:
    """The part of a full model that computes the scores alone (sharing its weights)."""
    return keras.Model(inputs=model.input, outputs=model.output["scores"], name=f"{model.name}_scores")


def deep_scores_model(model: keras.Model) -> keras.Model:
    """The deep part of a full model alone: the sigmoid of its own logits (sharing the full model's weights)."""
    deep_scores = keras.layers.Activation("sigmoid", dtype="float32", name="deep_scores")(model.get_layer("deep_logits").output)
    return keras.Model(inputs=model.input, outputs=deep_scores, name=f"{model.name}_deep")


def blends_logits(model: keras.Model) -> bool:
    """Whether the model's logits are a ``LogitBlend`` of a solved wide part and a deep part trained alone."""
    return any(isinstance(layer, LogitBlend) for layer in model.layers)


def training_model(model: keras.Model, deep_loss_weight: float) -> keras.Model:
    """The model the deep stage trains: the deep part alone when the logits are blended (``blends_logits``);
    else ``scores_model``, or with a ``deep_loss_weight`` and a wide part, ``(batch, 2 * labels)``: the scores,
    then the deep part's own scores (the sigmoid of its logits alone), for ``multifield.training.make_loss``'s
    second term. It shares the full model's weights."""
    if blends_logits(model):
        return deep_scores_model(model)
    names = {layer.name for layer in model.layers}
    if deep_loss_weight <= 0 or "logits" not in names:
        return scores_model(model)
    deep_scores = keras.layers.Activation("sigmoid", dtype="float32", name="deep_scores")(model.get_layer("deep_logits").output)
    both = keras.layers.Concatenate(name="scores_and_deep_scores")([model.output["scores"], deep_scores])
    return keras.Model(inputs=model.input, outputs=both, name=f"{model.name}_training")


def _model_name(config: Config) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in config.name) or "multifield"
