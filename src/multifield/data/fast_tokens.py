"""A whole column of field values tokenized at once with Arrow compute kernels, giving the very ids of the
fitted ``tokenizers`` pipeline (NFKC, optional lowercase, the ``Whitespace`` split, word-level lookup).

The two pipelines are built on different Unicode tables (Rust's ``regex`` and ``unicode-normalization``
on one side, RE2 and utf8proc on the other), so agreement is not taken on trust: every character outside
ASCII that a batch holds, as written and as normalized, is first run through both pipelines in a few
probe strings (once per process). A row holding a character on which they differ, or the text of a
special token, is left to the ``tokenizers`` path, which the caller runs for those rows alone.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tokenizers import Tokenizer

# What ``\w`` and ``\s`` mean to the ``Whitespace`` pre-tokenizer (Rust ``regex``: Alphabetic, marks, decimal
# digits, connector punctuation and the joiners; the White_Space property), written for RE2, whose own
# ``\w`` and ``\s`` are ASCII only. Alphabetic holds the letter numbers (Nl) and the circled and squared
# Latin letters besides the letters.
WORD = (
    r"\pL\pM\p{Nd}\p{Nl}\p{Pc}\x{200C}\x{200D}"
    r"\x{24B6}-\x{24E9}\x{1F130}-\x{1F149}\x{1F150}-\x{1F169}\x{1F170}-\x{1F189}"
)
SPACE = r"\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"

# Rust lowercases U+0130 (I with a dot above) to two characters, utf8proc to one.
DOTTED_CAPITAL_I, DOTTED_SMALL_I = "\u0130", "i\u0307"

# Contexts a character is tried in: alone, inside a word, inside punctuation, between spaces, and beside
# combining marks of the lowest and of a high combining class (canonical reordering).
PROBES = ("{}", "a{}a", ".{}.", " {} ", "a{}\u0334", "a\u0301{}")

# Per pipeline (kind, lowercase): character -> whether both pipelines agree on it.
_agreement: dict[tuple[str, bool], dict[str, bool]] = {}
_agreement_lock = threading.Lock()


class FastTokenizer:
    """Arrow's version of one fitted word-level tokenizer; ``of`` gives None for a pipeline it cannot copy."""

    def __init__(self, tokenizer: Tokenizer, kind: str, lowercase: bool, vocabulary: list[str], unknown_id: int, specials: list[str]):
        self.tokenizer = tokenizer
        self.kind = kind
        self.lowercase = lowercase
        self.vocabulary = pa.array(vocabulary, type=pa.string())
        self.unknown_id = unknown_id
        self.specials = specials

    @classmethod
    def of(cls, tokenizer: Tokenizer, kind: str) -> FastTokenizer | None:
        """The fast version of ``tokenizer``, or None unless its pipeline is exactly the one this module copies."""
        data = json.loads(tokenizer.to_str())
        steps = (data.get("normalizer") or {}).get("normalizers") if (data.get("normalizer") or {}).get("type") == "Sequence" else None
        model = data.get("model") or {}
        expected_split = {"type": "Whitespace"} if kind == "text" else None
        plain = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False}
        if (
            steps not in ([{"type": "NFKC"}], [{"type": "NFKC"}, {"type": "Lowercase"}])
            or data.get("pre_tokenizer") != expected_split
            or data.get("post_processor") is not None
            or model.get("type") != "WordLevel"
            or model.get("unk_token") not in model.get("vocab", {})
            or any({key: token.get(key) for key in plain} != plain for token in data.get("added_tokens") or [])
        ):
            return None
        vocabulary = [""] * (max(model["vocab"].values()) + 1)
        for token, index in model["vocab"].items():
            vocabulary[index] = token
        if len(set(vocabulary)) != len(vocabulary):  # a gap in the ids: "" twice
            return None
        specials = [token["content"] for token in data.get("added_tokens") or []]
        return cls(tokenizer, kind, len(steps) == 2, vocabulary, model["vocab"][model["unk_token"]], specials)

    def encode(self, values, length: int, keep: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(len(values), length)`` int32 ids holding each row's first ``keep`` tokens, right-padded with 0,
        and the indices of the rows left to the ``tokenizers`` path (their ids here are zeros). None when
        the values are not strings (text) or lists of strings (items)."""
        pieces, rows = self.pieces(values)
        if pieces is None:
            return None
        normal = self.normalize(pieces)
        tokens, token_pieces = self.split(normal)
        token_rows = rows[token_pieces]
        counts = np.bincount(token_rows, minlength=len(values))
        position = np.arange(len(token_rows)) - (np.cumsum(counts) - counts)[token_rows]
        kept = np.flatnonzero(position < keep)
        ids = np.zeros((len(values), length), dtype=np.int32)
        found = pc.index_in(tokens.take(pa.array(kept)), value_set=self.vocabulary).fill_null(self.unknown_id)
        ids[token_rows[kept], position[kept]] = found.to_numpy(zero_copy_only=False)
        slow = np.unique(rows[self.doubtful(pieces, normal)])
        ids[slow] = 0
        return ids, slow

    def pieces(self, values) -> tuple[pa.Array | None, np.ndarray]:
        """The strings to tokenize (a text field's values, an items field's items; missing means empty) and,
        for each, its row."""
        try:
            if self.kind == "text":
                strings = pa.array(values, type=pa.string()).fill_null("")
                return strings, np.arange(len(strings))
            lists = pa.array(values, type=pa.list_(pa.string()))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            return None, np.zeros(0, dtype=np.int64)
        items = pc.list_flatten(lists)
        rows = pc.list_parent_indices(lists).to_numpy()
        if items.null_count:
            return None, rows
        return items, rows

    def normalize(self, strings: pa.Array) -> pa.Array:
        strings = pc.utf8_normalize(strings, form="NFKC")
        if self.lowercase:
            strings = pc.utf8_lower(pc.replace_substring(strings, DOTTED_CAPITAL_I, DOTTED_SMALL_I))
        return strings

    def split(self, normal: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """The tokens of normalized strings (text: runs of word characters and runs of other characters
        but spaces; items: each whole non-empty item) and, for each token, the index of its string."""
        if self.kind == "text":
            spaced = pc.replace_substring_regex(normal, f"([{WORD}]+)", r" \1 ")
            lists = pc.split_pattern_regex(spaced, f"[{SPACE}]+")
            tokens, parents = pc.list_flatten(lists), pc.list_parent_indices(lists).to_numpy()
        else:
            tokens, parents = normal, np.arange(len(normal))
        present = pc.not_equal(tokens, "")
        return tokens.filter(present), parents[present.to_numpy(zero_copy_only=False)]

    def doubtful(self, pieces: pa.Array, normal: pa.Array) -> np.ndarray:
        """Indices of the pieces whose ids may differ from the ``tokenizers`` path: they hold a special
        token's text, or a character on which the two pipelines do not agree."""
        flags = np.zeros(len(pieces), dtype=bool)
        for special in self.specials:
            flags |= pc.match_substring(pieces, special).to_numpy(zero_copy_only=False)
        foreign = ~pc.string_is_ascii(pieces).to_numpy(zero_copy_only=False)
        if not foreign.any():
            return np.flatnonzero(flags)
        where = pa.array(np.flatnonzero(foreign))
        written, normalized = pieces.take(where), normal.take(where)
        characters = self.characters(written, normalized)
        known = _agreement.setdefault((self.kind, self.lowercase), {})
        unknown = [char for char in characters if char not in known]
        if unknown:
            self.learn(unknown)
        disagreeing = [char for char in characters if not known[char]]
        if disagreeing:
            pattern = "[" + "".join(f"\\x{{{ord(char):X}}}" for char in disagreeing) + "]"
            hits = pc.or_(pc.match_substring_regex(written, pattern), pc.match_substring_regex(normalized, pattern))
            flags[np.flatnonzero(foreign)[hits.to_numpy(zero_copy_only=False)]] = True
        return np.flatnonzero(flags)

    @staticmethod
    def characters(*arrays: pa.Array) -> list[str]:
        """The distinct characters outside ASCII in string arrays."""
        seen = np.zeros(0x110000, dtype=bool)
        for strings in arrays:
            codes = np.frombuffer("".join(strings.to_pylist()).encode("utf-32-le"), dtype=np.uint32)
            seen[codes] = True
        seen[:128] = False
        return [chr(code) for code in np.flatnonzero(seen)]

    def learn(self, chars: list[str]) -> None:
        """Run each character's probe strings through both pipelines and remember whether the tokens agree."""
        probes = [probe.format(char) for char in chars for probe in PROBES]
        fast = self.tokens_of(probes)
        slow = [self.reference_tokens(probe) for probe in probes]
        with _agreement_lock:
            known = _agreement.setdefault((self.kind, self.lowercase), {})
            for index, char in enumerate(chars):
                window = slice(index * len(PROBES), (index + 1) * len(PROBES))
                known[char] = fast[window] == slow[window]

    def tokens_of(self, strings: list[str]) -> list[list[str]]:
        """The fast pipeline's tokens of each string (an item, for an items field)."""
        pieces = pa.array(strings, type=pa.string())
        tokens, parents = self.split(self.normalize(pieces))
        grouped: list[list[str]] = [[] for _ in strings]
        for token, parent in zip(tokens.to_pylist(), parents):
            grouped[parent].append(token)
        return grouped

    def reference_tokens(self, string: str) -> list[str]:
        """The ``tokenizers`` pipeline's tokens of one string (an item, for an items field)."""
        normal = self.tokenizer.normalizer.normalize_str(string)
        if self.kind == "items":
            return [normal] if normal else []
        return [token for token, _ in self.tokenizer.pre_tokenizer.pre_tokenize_str(normal)]
