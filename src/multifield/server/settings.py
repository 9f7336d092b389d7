"""The limits and batching knobs of ``multifield serve``, as one validated pydantic model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ServerSettings(BaseModel):
    """How much one request may ask for, and how concurrent requests are batched for the model.

    Every limit is checked before the model sees a record; a request over a limit gets a 4xx answer
    that names the limit. Text longer than a field's ``max_tokens`` is not a limit: it is truncated,
    as in training.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_records: int = Field(1000, ge=1, le=1_000_000, description="Records in one request.")
    max_field_chars: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="Characters in one field of a record (an items field: its items' characters plus one per item).",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=1024**3, description="Bytes of a request body, checked before it is parsed."
    )
    batch_sizes: tuple[int, ...] = Field(
        (1, 8, 64, 256),
        min_length=1,
        description="Row counts the model is called with: a batch is padded up to the next one, so that each "
        "shape is compiled once, at warm-up.",
    )
    max_batch_records: int = Field(
        64, ge=1, description="The batcher stops gathering requests once a batch holds this many records."
    )
    batch_window_ms: float = Field(
        0.0,
        ge=0.0,
        le=1000.0,
        description="How long a lone request waits for others to share its model call. 0: none; requests that "
        "arrive while the model is busy are batched anyway, and waiting only added latency in measurements.",
    )
    max_queue_requests: int = Field(256, ge=1, description="Requests waiting for the model before 503 answers.")
    max_queue_records: int = Field(
        8192, ge=1, description="Records waiting for the model before 503 answers (a lone request always fits)."
    )
    retry_after_seconds: int = Field(1, ge=1, description="The Retry-After header of a 503 answer.")
    warmup: bool = Field(True, description="Compile every batch shape before /healthz reports ready.")
    drain_seconds: float = Field(
        30.0,
        ge=0.0,
        le=3600.0,
        description="On SIGTERM, how long the requests in flight and queued may take to be answered before "
        "the server exits anyway.",
    )
    cors_origins: tuple[str, ...] = Field(
        (),
        description="Origins (scheme://host[:port]) whose web pages may call the API from a browser; none: CORS is off.",
    )

    @field_validator("batch_sizes")
    @classmethod
    def _increasing(cls, sizes: tuple[int, ...]) -> tuple[int, ...]:
        if any(size < 1 for size in sizes) or list(sizes) != sorted(set(sizes)):
            raise ValueError(f"batch_sizes must be positive and strictly increasing, got {list(sizes)}")
        return sizes

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            scheme, separator, rest = origin.partition("://")
            if origin != "*" and (scheme not in ("http", "https") or not separator or not rest or "/" in rest):
                raise ValueError(f"{origin!r} is not an origin: give scheme://host[:port], such as https://example.org")
        return origins

    def limits(self) -> dict[str, int]:
        """The limits a client must respect, as published by ``GET /v1/model``."""
        return {
            "max_records": self.max_records,
            "max_field_chars": self.max_field_chars,
            "max_body_bytes": self.max_body_bytes,
        }
