"""The HTTP API's pydantic models; the record model is generated from the bundle's config, so that the
OpenAPI schema names every field of the model with its type and limits."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints, create_model

from multifield.config import Config
from multifield.data.text import as_items
from multifield.server.settings import ServerSettings


def _text(max_chars: int):
    # pydantic refuses a string holding an unpaired surrogate ("\ud800"), which the tokenizers could not read.
    return Annotated[StrictStr, StringConstraints(max_length=max_chars)]


def _items_list(max_chars: int):
    def within_limit(items: list[str]) -> list[str]:
        size = sum(len(item) for item in items) + len(items)
        if size > max_chars:
            raise ValueError(
                f"the items hold {size} characters, counting one per item; at most {max_chars} are allowed"
            )
        return items

    return Annotated[list[_text(max_chars)], Field(max_length=max_chars), AfterValidator(within_limit)]


def _items_string(delimiter: str):
    """An items field given as one string is read as the data files read it: a JSON array or delimited."""
    return AfterValidator(lambda value: as_items(value, delimiter))


def allowed_values(config: Config, settings: ServerSettings) -> dict[str, str]:
    """For each record key, the values it takes, in words (for error messages and the schema)."""
    limit = settings.max_field_chars
    allowed = {
        config.id_field: f"a string of at most {limit} characters, an integer, or null (echoed back)",
    }
    for name, field in config.fields.items():
        if field.kind == "text":
            allowed[name] = f"a string of at most {limit} characters, or null"
        else:
            allowed[name] = (
                f"a list of strings, a JSON-array string or a {field.delimiter!r}-delimited string, or null; "
                f"at most {limit} characters (counting one per item)"
            )
    return allowed


def record_models(config: Config, settings: ServerSettings) -> tuple[type[BaseModel], type[BaseModel]]:
    """The ``Record`` and ``PredictRequest`` models of a config, with the limits of ``settings``."""
    limit = settings.max_field_chars
    allowed = allowed_values(config, settings)
    definitions: dict[str, Any] = {}
    if config.id_field not in config.fields:  # an id that is also a field is read (and echoed) as that field
        definitions["record_id"] = (
            Optional[Union[_text(limit), StrictInt]],
            Field(None, alias=config.id_field, description=f"The record's id, {allowed[config.id_field]}."),
        )
    example: dict[str, Any] = {config.id_field: "r1"}
    for index, (name, field) in enumerate(config.fields.items()):
        reads = f"the first {field.max_tokens} {'words' if field.kind == 'text' else 'items'} are read, the rest ignored"
        if field.kind == "text":
            annotation = Optional[_text(limit)]
            example[name] = f"Some {name} text."
        else:
            annotation = Optional[Union[_items_list(limit), Annotated[_text(limit), _items_string(field.delimiter)]]]
            example[name] = [f"first {name} item", f"second {name} item"]
        definitions[f"field_{index}"] = (
            annotation,
            Field(
                None,
                alias=name,
                description=f"{field.kind.capitalize()} field ({field.encoder} encoder; {reads}): {allowed[name]}. "
                "Missing or null means unknown.",
            ),
        )
    record = create_model(
        "Record",
        __config__=ConfigDict(extra="ignore", json_schema_extra={"examples": [example]}),
        __doc__="One record to classify. Every field is optional; keys that are not fields of the model "
        "(labels, other columns) are ignored.",
        **definitions,
    )
    request = create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="ignore", json_schema_extra={"examples": [{"records": [example]}]}),
        __doc__=f"Records to classify, at most {settings.max_records} in one request.",
        records=(
            list[record],
            Field(min_length=1, max_length=settings.max_records, description="The records, answered in this order."),
        ),
    )
    return record, request


AttentionPairs = list[tuple[str, float]]


class Prediction(BaseModel):
    """What the model predicts for one record."""

    id: Union[str, int, None] = Field(description="The record's id as sent, or null.")
    labels: list[str] = Field(description="The predicted labels (each label's score at or over its threshold).")
    scores: dict[str, float] = Field(description="Every label's probability, rounded to 6 decimals.")
    attention: Optional[dict[str, Union[AttentionPairs, list[AttentionPairs]]]] = Field(
        None,
        description="Only with ?attention=true: for each attention field, its [word, weight] pairs (one list "
        "per head for several heads); a field's weights sum to 1.",
    )


class PredictResponse(BaseModel):
    predictions: list[Prediction] = Field(description="One prediction per record, in the order sent.")


class FieldInfo(BaseModel):
    kind: Literal["text", "items"]
    encoder: str
    max_tokens: int
    attention: bool = Field(description="Whether predictions can show this field's attention weights.")


class ModelInfo(BaseModel):
    """The served model."""

    name: str
    multifield_version: str = Field(description="The version of multifield serving the model.")
    bundle: dict[str, Any] = Field(description="The bundle's manifest: format, versions that wrote it, creation time.")
    id_field: str
    labels: list[str]
    thresholds: dict[str, float] = Field(description="Each label's decision threshold, tuned on validation.")
    fields: dict[str, FieldInfo]
    config: dict[str, Any] = Field(description="The config the model was trained with.")
    validation: Optional[dict[str, Any]] = Field(description="Metrics on the validation records, if recorded.")
    attention_check: Optional[dict[str, dict[str, Any]]] = Field(
        None,
        description="For each attention field, if recorded: how far the predicted labels' scores fall on the validation "
        'records when its k most attended words are removed ("top") and when k random ones are ("random"); '
        "attention that explains the model makes the first clearly larger.",
    )
    limits: dict[str, int] = Field(description="The limits of one request.")


class Health(BaseModel):
    status: Literal["ok", "warming_up", "failed", "draining"]


class ErrorDetail(BaseModel):
    location: str = Field(description='Where in the request, e.g. "records[2].plot" or "query.attention".')
    problem: str
    allowed: Optional[str] = Field(None, description="What that place accepts.")


class ErrorBody(BaseModel):
    code: str = Field(description='A stable name of the error, e.g. "invalid_request", "body_too_large".')
    message: str = Field(description="One sentence: what was wrong and what is allowed.")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer has this body."""

    error: ErrorBody
