"""A whole column of field values tokenized at once with Arrow compute kernels and NumPy, giving the very ids
of the fitted ``tokenizers`` pipeline (NFKC, optional lowercase, the ``Whitespace`` split, word-level lookup).

Arrow normalizes and looks words up; the split runs on the UTF-8 bytes, with each character's class (word,
other, space) learnt from the ``Whitespace`` pre-tokenizer itself the first time it is met. Normalization
is Arrow's (utf8proc) against Rust's, on Unicode tables of other versions, so it is not taken on trust:
every character outside ASCII that a batch holds, as written and as normalized, is first run through both
pipelines in a few probe strings (once per process). A row holding a character on which they differ, or
the text of a special token, is left to the ``tokenizers`` path, which the caller runs for those rows alone.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import unicodedata
from itertools import chain

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tokenizers import Tokenizer, pre_tokenizers

# Rust lowercases U+0130 (I with a dot above) to two characters, utf8proc to one.
DOTTED_CAPITAL_I, DOTTED_SMALL_I = "\u0130", "i\u0307"

# Contexts a character is tried in: alone, inside a word, inside punctuation, between spaces, and beside
# combining marks of the lowest and of a high combining class (canonical reordering).
PROBES = ("{}", "a{}a", ".{}.", " {} ", "a{}\u0334", "a\u0301{}")

# What a character is to the Whitespace pre-tokenizer (``\w+|[^\w\s]+``), by code point; 0: not asked yet.
WORD, OTHER, SPACE = 1, 2, 3
_classes = np.zeros(0x110000, dtype=np.uint8)
_whitespace = pre_tokenizers.Whitespace()
# Per pipeline (kind, lowercase): code point -> whether both pipelines agree on it.
_agreement: dict[tuple[str, bool], dict[int, bool]] = {}
# The same for Python's pipeline (``FastTokenizer.few_tokens``): character -> whether it agrees.
_python_agreement: dict[tuple[str, bool], dict[str, bool]] = {}
_lock = threading.Lock()


class FastTokenizer:
    """Arrow's version of one fitted word-level tokenizer; ``of`` gives None for a pipeline it cannot copy."""

    def __init__(self, tokenizer: Tokenizer, kind: str, lowercase: bool, vocabulary: list[str], unknown_id: int, specials: list[str]):
        self.tokenizer = tokenizer
        self.kind = kind
        self.lowercase = lowercase
        self.vocabulary = string_array(vocabulary)
        self.unknown_id = unknown_id
        self.specials = specials
        self.ids = {token: index for index, token in enumerate(vocabulary)}

    @classmethod
    def of(cls, tokenizer: Tokenizer, kind: str) -> FastTokenizer | None:
        """The fast version of ``tokenizer``, or None unless its pipeline is exactly the one this module copies."""
        data = json.loads(tokenizer.to_str())
        normalizer = data.get("normalizer") or {}
        steps = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else None
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
        found = with_default(pc.index_in(tokens, value_set=self.vocabulary), self.unknown_id)
        ids[token_rows[kept], position[kept]] = found[kept]
        slow = np.unique(rows[self.doubtful(pieces, normal)])
        ids[slow] = 0
        return ids, slow

    def encode_few(self, values, length: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
        """What ``encode`` gives, in plain Python, for a few values (``few_tokens``); the rows it cannot vouch for,
        and values of the wrong type (which ``tokenizers`` refuses), are left to the ``tokenizers`` path."""
        ids = np.zeros((len(values), length), dtype=np.int32)
        slow = []
        lookup, unknown = self.ids.get, self.unknown_id
        for row, value in enumerate(values):
            tokens = self.few_tokens(value)
            if tokens is None:
                slow.append(row)
            elif tokens:
                found = [lookup(token, unknown) for token in tokens[:keep]]
                ids[row, : len(found)] = found
        return ids, np.array(slow, dtype=np.int64)

    def few_tokens(self, value) -> list[str] | None:
        """The tokens of one value by Python's ``unicodedata``, ``str.lower`` and ``re`` (missing means none), or
        None when it holds a special token's text or a character on which Python and ``tokenizers`` may differ."""
        if value is None:
            return []
        if self.kind == "text":
            if type(value) is not str or any(special in value for special in self.specials):
                return None
            if value.isascii():  # NFKC changes no ASCII character
                return ASCII_WORDS.findall(value.lower() if self.lowercase else value)
            normal = self.python_normal(value)
            return None if normal is None or not self.python_agrees(value, normal) else python_words().findall(normal)
        if not isinstance(value, (list, tuple)):
            return None
        tokens = []
        for item in value:
            if type(item) is not str or any(special in item for special in self.specials):
                return None
            normal = self.python_normal(item)
            if normal is None or not (item.isascii() or self.python_agrees(item, normal)):
                return None
            if normal:  # an empty item is no token
                tokens.append(normal)
        return tokens

    def python_normal(self, string: str) -> str | None:
        """NFKC and the lowercase by Python; None for a string that is not valid Unicode (a lone surrogate)."""
        if not string.isascii():
            try:
                string = unicodedata.normalize("NFKC", string)
                string.encode()
            except UnicodeError:
                return None
        return string.lower() if self.lowercase else string

    def python_agrees(self, string: str, normal: str) -> bool:
        """Whether every character of ``string`` and of its normal form gives the ``tokenizers`` tokens in
        Python too, in each probe (learnt once per character and process, as ``learn`` does for Arrow)."""
        chars = (set(string) | set(normal)) - PLAIN_ASCII
        known = _python_agreement.setdefault((self.kind, self.lowercase), {})
        unknown = [char for char in chars if char not in known]
        if unknown:
            probes = [probe.format(char) for char in unknown for probe in PROBES]
            python = [self.python_tokens(probe) for probe in probes]
            slow = [self.reference_tokens(probe) for probe in probes]
            with _lock:
                for index, char in enumerate(unknown):
                    window = slice(index * len(PROBES), (index + 1) * len(PROBES))
                    known[char] = python[window] == slow[window]
        return all(known[char] for char in chars)

    def python_tokens(self, string: str) -> list[str] | None:
        """Python's tokens of one string (an item, for an items field), with no check."""
        normal = self.python_normal(string)
        if normal is None:
            return None
        if self.kind == "items":
            return [normal] if normal else []
        return python_words().findall(normal)

    def pieces(self, values: list) -> tuple[pa.LargeStringArray | None, np.ndarray]:
        """The strings to tokenize (a text field's values, an items field's items; missing means empty) and,
        for each, its row."""
        try:
            if self.kind == "text":
                return string_array(["" if value is None else value for value in values]), np.arange(len(values))
            rows = [() if value is None else value for value in values]
            counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
            return string_array(list(chain.from_iterable(rows))), np.repeat(np.arange(len(rows)), counts)
        except (TypeError, ValueError):  # not a string, or not one UTF-8 can hold (a lone surrogate)
            return None, np.zeros(0, dtype=np.int64)

    def normalize(self, strings: pa.Array) -> pa.Array:
        strings = pc.utf8_normalize(strings, form="NFKC")
        if self.lowercase:
            strings = pc.utf8_lower(pc.replace_substring(strings, DOTTED_CAPITAL_I, DOTTED_SMALL_I))
        return strings

    def split(self, normal: pa.LargeStringArray) -> tuple[pa.Array, np.ndarray]:
        """The tokens of normalized strings (text: runs of word characters and runs of other characters
        but spaces; items: each whole non-empty item) and, for each token, the index of its string."""
        data, offsets = utf8_bytes(normal)
        if self.kind == "items":  # the items themselves, but empty ones
            present = np.flatnonzero(np.diff(offsets) > 0)
            bounds = np.append(offsets[present], len(data))
            return pa.LargeStringArray.from_buffers(len(present), pa.py_buffer(bounds), pa.py_buffer(data)), present
        classes = byte_classes(data)
        inside = classes != SPACE
        begins = inside.copy()
        begins[1:] &= classes[1:] != classes[:-1]
        firsts = offsets[:-1][offsets[:-1] < len(data)]
        begins[firsts] = inside[firsts]  # a token never runs on from one string into the next
        starts = np.flatnonzero(begins)
        # Each token runs to the next one's start, over the spaces between them (none of its own: the bytes
        # are not copied), and the spaces are trimmed off its end.
        bounds = np.append(starts, len(data)).astype(np.int64)
        spaced = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(bounds), pa.py_buffer(data))
        tokens = pc.utf8_rtrim(spaced, characters="".join(map(chr, np.flatnonzero(_classes == SPACE))))
        counts = np.diff(np.searchsorted(starts, offsets))
        return tokens, np.repeat(np.arange(len(normal)), counts)

    def doubtful(self, pieces: pa.LargeStringArray, normal: pa.LargeStringArray) -> np.ndarray:
        """Indices of the pieces whose ids may differ from the ``tokenizers`` path: they hold a special
        token's text, or a character on which the two pipelines do not agree."""
        flags = np.zeros(len(pieces), dtype=bool)
        for special in self.specials:
            flags |= booleans(pc.match_substring(pieces, special))
        found = []
        for strings in (pieces, normal):
            data, offsets = utf8_bytes(strings)
            leads, codes = characters_in(data)
            found.append((np.searchsorted(offsets, leads, side="right") - 1, codes))
        distinct = np.unique(np.concatenate([codes for _, codes in found]))
        known = _agreement.setdefault((self.kind, self.lowercase), {})
        unknown = [chr(code) for code in distinct if code not in known]
        if unknown:
            self.learn(unknown)
        disagreeing = [code for code in distinct if not known[code]]
        for where, codes in found:
            flags[where[np.isin(codes, disagreeing)]] = True
        return np.flatnonzero(flags)

    def learn(self, chars: list[str]) -> None:
        """Run each character's probe strings through both pipelines and remember whether the tokens agree."""
        probes = [probe.format(char) for char in chars for probe in PROBES]
        fast = self.tokens_of(probes)
        slow = [self.reference_tokens(probe) for probe in probes]
        with _lock:
            known = _agreement.setdefault((self.kind, self.lowercase), {})
            for index, char in enumerate(chars):
                window = slice(index * len(PROBES), (index + 1) * len(PROBES))
                known[ord(char)] = fast[window] == slow[window]

    def tokens_of(self, strings: list[str]) -> list[list[str]]:
        """The fast pipeline's tokens of each string (an item, for an items field)."""
        tokens, parents = self.split(self.normalize(string_array(strings)))
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


def byte_classes(data: np.ndarray) -> np.ndarray:
    """Each byte's class: its character's (a character of several bytes gives its class to all)."""
    classes = _classes[:256][data]  # right for ASCII; the bytes of other characters are set below
    leads, codes = characters_in(data)
    if len(leads):
        learn_classes(np.unique(codes))
        classes[leads] = _classes[codes]
        follow = np.flatnonzero((data & 0xC0) == 0x80)
        classes[follow] = classes[leads[np.searchsorted(leads, follow, side="right") - 1]]
    return classes


def learn_classes(codes: np.ndarray) -> None:
    """Ask the ``Whitespace`` pre-tokenizer what the characters it has not been asked about are."""
    split = _whitespace.pre_tokenize_str
    for code in codes[_classes[codes] == 0]:
        char = chr(code)
        _classes[code] = SPACE if not split(char) else WORD if len(split("a" + char)) == 1 else OTHER


learn_classes(np.arange(128))


def _ascii_words() -> re.Pattern:
    """The Whitespace pre-tokenizer's split of ASCII text: runs of word characters, and runs of the others but
    spaces, by the classes it gave each ASCII character."""
    def characters(kind: int) -> str:
        return "".join(re.escape(chr(code)) for code in range(128) if _classes[code] == kind)

    return re.compile(f"[{characters(WORD)}]+|[{characters(OTHER)}]+")


ASCII_WORDS = _ascii_words()


@functools.cache
def python_words() -> re.Pattern:
    """Python's version of the split for text outside ASCII: a word character is one of ``\\w`` (letters and
    numbers), a combining mark, a connector or a joiner of the Basic Multilingual Plane, as in Rust's ``\\w``.
    Made on first use (about 15 ms); the characters where it may still differ are probed (``python_agrees``)."""
    extra = [code for code in range(0x80, 0x10000) if unicodedata.category(chr(code)) in ("Mn", "Mc", "Me", "Pc")]
    extra += [0x200C, 0x200D]
    ranges, start, previous = [], None, None
    for code in sorted(extra):
        if start is not None and code == previous + 1:
            previous = code
            continue
        if start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
        start = previous = code
    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
    word = "\\w" + "".join(ranges)
    return re.compile(f"[{word}]+|[^{word}\\s]+")


# The ASCII characters that ``python_words`` puts in the class the pre-tokenizer gives them (all but the
# separators \x1c-\x1f, which are spaces to Python): no need to probe them.
PLAIN_ASCII = frozenset(
    chr(code) for code in range(128)
    if _classes[code] == (SPACE if chr(code).isspace() else WORD if re.fullmatch(r"\w", chr(code)) else OTHER)
)


def string_array(strings: list[str]) -> pa.LargeStringArray:
    """Python strings as an Arrow array, built from their UTF-8 bytes: ``pa.array`` would import pandas (a
    third of a second). Raises ``TypeError`` for a value that is not a string."""
    encoded = list(map(str.encode, strings))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return pa.LargeStringArray.from_buffers(len(encoded), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded)))


def with_default(numbers: pa.Int32Array, default: int) -> np.ndarray:
    """An Arrow integer array as NumPy, missing values given ``default`` (``fill_null`` would import pandas)."""
    if not len(numbers):
        return np.zeros(0, dtype=np.int32)
    values = np.frombuffer(numbers.buffers()[1], dtype=np.int32)[numbers.offset : numbers.offset + len(numbers)].copy()
    if numbers.null_count:
        bits = np.unpackbits(np.frombuffer(numbers.buffers()[0], dtype=np.uint8), bitorder="little")
        values[bits[numbers.offset : numbers.offset + len(numbers)] == 0] = default
    return values


def booleans(flags: pa.BooleanArray) -> np.ndarray:
    """An Arrow boolean array without missing values as NumPy (``to_numpy`` would import pandas)."""
    bits = np.unpackbits(np.frombuffer(flags.buffers()[1], dtype=np.uint8), bitorder="little") if len(flags) else np.zeros(0, np.uint8)
    return bits[flags.offset : flags.offset + len(flags)].astype(bool)


def utf8_bytes(strings: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a string array and its ``len + 1`` offsets into them (the first is 0)."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64)[strings.offset : strings.offset + len(strings) + 1]
    buffer = strings.buffers()[2]
    data = np.frombuffer(buffer, dtype=np.uint8)[offsets[0] : offsets[-1]] if buffer is not None else np.zeros(0, np.uint8)
    return data, offsets - offsets[0]


def characters_in(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the characters outside ASCII start in valid UTF-8 bytes, and their code points."""
    leads = np.flatnonzero(data >= 0xC0)
    first = data[leads].astype(np.uint32)
    more = [data.take(leads + step, mode="clip").astype(np.uint32) & 0x3F for step in (1, 2, 3)]
    codes = np.where(
        first >= 0xF0,
        ((first & 0x07) << 18) | (more[0] << 12) | (more[1] << 6) | more[2],
        np.where(first >= 0xE0, ((first & 0x0F) << 12) | (more[0] << 6) | more[1], ((first & 0x1F) << 6) | more[0]),
    )
    return leads, codes
