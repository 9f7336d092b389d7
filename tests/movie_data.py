"""Test data shared by the fixtures and by test modules (importable: pytest puts tests/ on sys.path):
slices of the bundled movies, a small config, a JSONL writer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SMALL_CONFIG = """
name = "small-movies"

[labels]
field = "genres"

[fields.actors]
kind = "items"
encoder = "pooled"
max_tokens = 6
min_count = 1
embedding_dim = 8

[fields.plot]
kind = "text"
encoder = "rnn_attention"
max_tokens = 40
min_count = 1
embedding_dim = 16
units = 8

[fields.features]
kind = "items"
encoder = "pooled"
max_tokens = 6
min_count = 1
embedding_dim = 8
wide = true
wide_pooling = "tfidf"
field_dropout = 0.2

[fields.reviews]
kind = "text"
encoder = "attention"
max_tokens = 16
min_count = 1
embedding_dim = 8

[fields.title]
kind = "text"
encoder = "pooled"
pooling = "max"
max_tokens = 8
min_count = 1
embedding_dim = 8

[training]
# The wide part trained by Adam, as in every run that is streamed or distributed: those are compared with this one.
wide_solver = "adam"
batch_size = 32
max_epochs = 2
patience = 1
hidden_units = 16
deep_loss_weight = 1.0
seed = 7
"""


def bundled_movies(limit: int) -> list[dict]:
    records = []
    with gzip.open(REPO / "data" / "tmdb10k.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            records.append(json.loads(line))
            if len(records) == limit:
                break
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path
