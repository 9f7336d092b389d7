"""Bad HTTP requests to ``multifield serve`` and the answer each must get: shared by the soak run
(``serve_load.py --soak``) and the reliability table (``reliability.py``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class BadRequest:
    """One request that the server must refuse with ``expected`` (and never a 5xx). ``may_close``: the server
    answers before reading the body and closes the connection, so a client still sending it may see the
    connection closed instead of the answer."""

    name: str
    method: str
    path: str
    body: bytes = b""
    headers: dict = field(default_factory=lambda: dict(JSON))
    expected: int = 422
    may_close: bool = False


def bad_requests(record: dict, max_records: int, max_body_bytes: int) -> list[BadRequest]:
    """The catalogue, for a server with these limits; ``record`` is a good record to spoil."""
    good = json.dumps({"records": [record]}).encode()
    return [
        BadRequest("body not JSON", "POST", "/v1/predict", b'{"records": [', expected=400),
        BadRequest("body not UTF-8", "POST", "/v1/predict", b'{"records": [{"plot": "\xff\xfe"}]}', expected=400),
        BadRequest("JSON nested 100,000 deep", "POST", "/v1/predict", b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                   expected=400),
        BadRequest("no Content-Type", "POST", "/v1/predict", good, headers={}, expected=415),
        BadRequest("Content-Type text/plain", "POST", "/v1/predict", good, headers={"content-type": "text/plain"}, expected=415),
        BadRequest("body over the limit", "POST", "/v1/predict", b" " * (max_body_bytes + 1), expected=413, may_close=True),
        BadRequest("records missing", "POST", "/v1/predict", b"{}"),
        BadRequest("records not a list", "POST", "/v1/predict", b'{"records": {"plot": "x"}}'),
        BadRequest("records empty", "POST", "/v1/predict", b'{"records": []}'),
        BadRequest("too many records", "POST", "/v1/predict", json.dumps({"records": [record] * (max_records + 1)}).encode()),
        BadRequest("a record not an object", "POST", "/v1/predict", b'{"records": [42]}'),
        BadRequest("a text field a number array", "POST", "/v1/predict", b'{"records": [{"plot": [[1, 2], {"a": 1}]}]}'),
        BadRequest("NaN in a field", "POST", "/v1/predict", b'{"records": [{"plot": NaN}]}'),
        BadRequest("attention not a boolean", "POST", "/v1/predict?attention=maybe", good),
        BadRequest("unknown path", "GET", "/v1/nothing", headers={}, expected=404),
        BadRequest("GET on predict", "GET", "/v1/predict", headers={}, expected=405),
    ]
