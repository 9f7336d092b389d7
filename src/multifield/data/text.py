"""Per-field tokenizers (Hugging Face ``tokenizers``, word level), fitted on training data and saved as JSON.

A ``text`` field is split into words and punctuation; an ``items`` field (actors, keywords) keeps each whole
item as one token. Id 0 is padding and id 1 stands for a token outside the vocabulary. Rows are right-padded.
"""

from __future__ import annotations

import json
import math
from typing import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from multifield.data.fast_tokens import FastTokenizer

# Arrow's kernels cost a fixed ~0.3-0.7 ms a call: below this many values (one record, a small request) plain
# Python is the faster (``FastTokenizer.encode_few``; benchmarks/tokenize_speed.py).
FAST_PATH_MIN_VALUES = 64

PAD, UNKNOWN = "[PAD]", "[UNK]"


def as_text(value, delimiter: str = " ") -> str:
    """A text field's value as one string; missing means empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        if all(isinstance(item, str) for item in value):
            return delimiter.join(value)
        raise ValueError("expected a string or a list of strings")
    raise ValueError(f"expected a string, got {type(value).__name__}")


def as_items(value, delimiter: str = "|", strict_json: bool = False) -> list[str]:
    """A list of strings from a list, a JSON-array string or a delimited string; missing means empty.

    A string that starts with ``[`` but is not a JSON array is split on the delimiter, unless
    ``strict_json`` asks for an error instead.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                return as_items(parsed, delimiter)
            if strict_json:
                raise ValueError(f"starts with '[' but is not a JSON array: {text[:60]!r}")
        return [part.strip() for part in text.split(delimiter) if part.strip()]
    if isinstance(value, (list, tuple, np.ndarray)):
        items = []
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"expected a list of strings, found {type(item).__name__} {item!r}")
            if item.strip():
                items.append(item.strip())
        return items
    raise ValueError(f"expected a list of strings, got {type(value).__name__}")


class FieldTokenizer:
    """A word-level tokenizer for one field, turning its values into right-padded id rows."""

    def __init__(self, tokenizer: Tokenizer, kind: str, max_tokens: int):
        if kind not in ("text", "items"):
            raise ValueError(f"kind must be 'text' or 'items', got {kind!r}")
        self.tokenizer = tokenizer
        self.kind = kind
        self.max_tokens = max_tokens
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_tokens)
        self._fast: FastTokenizer | None | bool = False  # made on first use: it reads the whole vocabulary

    @property
    def fast(self) -> FastTokenizer | None:
        """Arrow's version of this tokenizer, or None when its pipeline is not one Arrow copies (``encode``
        then takes the ``tokenizers`` path for every row; setting None does the same)."""
        if self._fast is False:
            self._fast = FastTokenizer.of(self.tokenizer, self.kind)
        return self._fast

    @fast.setter
    def fast(self, value: FastTokenizer | None) -> None:
        self._fast = value

    @staticmethod
    def blank(kind: str, lowercase: bool) -> Tokenizer:
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNKNOWN))
        steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        tokenizer.normalizer = normalizers.Sequence(steps)
        if kind == "text":
            tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        return tokenizer

    @classmethod
    def fit(
        cls,
        values: Iterable,
        kind: str = "text",
        max_tokens: int = 128,
        vocabulary_size: int = 20_000,
        min_count: int = 2,
        lowercase: bool = True,
    ) -> "FieldTokenizer":
        tokenizer = cls.blank(kind, lowercase)
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocabulary_size, min_frequency=min_count, special_tokens=[PAD, UNKNOWN], show_progress=False
        )
        # Items are whole tokens: without a pre-tokenizer each string given to the trainer is one word.
        tokenizer.train_from_iterator((value for value in values if value), trainer)
        return cls(tokenizer, kind, max_tokens)

    @property
    def vocabulary_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def vocabulary(self) -> list[str]:
        """Tokens in id order (index 0 is padding)."""
        vocabulary = self.tokenizer.get_vocab()
        ordered = [""] * len(vocabulary)
        for token, index in vocabulary.items():
            ordered[index] = token
        return ordered

    def _encode_batch(self, values: Sequence, offsets: bool = False):
        # encode_batch_fast leaves out the character offsets, which only explanations need.
        encode = self.tokenizer.encode_batch if offsets else self.tokenizer.encode_batch_fast
        if self.kind == "text":
            return encode(list(values))
        return encode([list(items) for items in values], is_pretokenized=True)

    def encode(self, values: Sequence, length: int | None = None) -> np.ndarray:
        """``(len(values), length or max_tokens)`` int32 ids, right-padded with 0; a missing value is empty.

        Arrow's kernels tokenize a batch of at least ``FAST_PATH_MIN_VALUES`` (``FastTokenizer``), plain Python
        a smaller one; the rows they cannot vouch for, or every row when the pipeline is not one they copy, go
        through ``tokenizers``."""
        length = length or self.max_tokens
        values = values if isinstance(values, (list, tuple)) else list(values)
        fast = None
        if self.fast is not None:
            keep = min(length, self.max_tokens)
            few = len(values) < FAST_PATH_MIN_VALUES
            fast = self.fast.encode_few(values, length, keep) if few else self.fast.encode(values, length, keep)
        ids, slow = fast if fast is not None else (np.zeros((len(values), length), dtype=np.int32), np.arange(len(values)))
        if len(slow):
            blank = "" if self.kind == "text" else []
            rows = [blank if values[row] is None else values[row] for row in slow]
            for row, encoding in zip(slow, self._encode_batch(rows)):
                tokens = encoding.ids[:length]
                ids[row, : len(tokens)] = tokens
        return ids

    def encode_with_words(self, value) -> tuple[list[int], list[str]]:
        """Ids of one value and, for each id, the word as the user wrote it (for explanations)."""
        encoding = self._encode_batch([value], offsets=True)[0]
        if self.kind == "text":
            words = [value[start:end] for start, end in encoding.offsets]
        else:
            words = [value[index] for index in encoding.word_ids]
        return list(encoding.ids), words

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "max_tokens": self.max_tokens, "tokenizer": json.loads(self.tokenizer.to_str())})

    @classmethod
    def from_json(cls, text: str) -> "FieldTokenizer":
        data = json.loads(text)
        return cls(Tokenizer.from_str(json.dumps(data["tokenizer"])), data["kind"], int(data["max_tokens"]))
