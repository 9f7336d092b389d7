"""Arrow's tokenization (a batch) and Python's (a few values) give the ids of the ``tokenizers`` pipeline, row
for row, and leave to it the rows they cannot vouch for."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from movie_data import bundled_movies

from multifield.data.fast_tokens import FastTokenizer
from multifield.data.text import FAST_PATH_MIN_VALUES, FieldTokenizer, as_items, as_text

# Characters where the two pipelines could part: accents (composed and combining), ligatures and full-width
# letters (NFKC), the dotted capital I and sharp s (lowercase), digits of other scripts, joiners, letter
# numbers, circled letters, CJK, emoji with modifiers, unusual spaces, characters newer than some Unicode tables,
# long runs of combining marks (reordering), Hangul jamo, half-width kana, expansions with spaces and brackets.
HARD = [
    "ﬁne", "ＦＵＬＬ", "İstanbul", "ẞ", "straße", "e\u0301te\u0301", "naïve", "café_bar", "١٢٣", "٣٤x", "中文字符",
    "日本語", "😀", "👍🏽", "a\u200db", "Ⅻ", "〇", "ᛮ", "ⓐⓑ", "🄰", "🅐", "\u00a0", "\u3000", "\u2028", "\t", "\u0558", "\u32ff",
    "\u1100\u1161", "Σίσυφος", "ΌΣΟΣ", "\u0334", "\u0301", "A\u0301\u0316", "½", "x²", "K", "Å", "ǅ", "ﬀ", "…", "—", "’", "_",
    "a" + "\u0301\u0316\u0334" * 20, "ｶﾞ", "\u0f73", "ﷺ", "⑴",
]
PLAIN = ["The", "killer", "hunts", "a", "detective", "in", "Paris", "!", ",", ".", "...", "(", "1984", "don't", "x-ray"]
SEPARATORS = [" ", "  ", "\n", "", "-", ", "]
PIECES = st.one_of(st.sampled_from(HARD + PLAIN + SEPARATORS), st.text(max_size=6))
VALUES = st.lists(PIECES, max_size=12).map("".join)
ITEMS = st.lists(st.one_of(st.sampled_from(HARD + PLAIN + ["Tom Hanks", " padded "]), st.text(max_size=5)), max_size=6)


def reference(tokenizer: FieldTokenizer) -> FieldTokenizer:
    """The same tokenizer with only the ``tokenizers`` path."""
    slow = FieldTokenizer.from_json(tokenizer.to_json())
    slow.fast = None
    return slow


def fitted(kind: str, lowercase: bool, max_tokens: int) -> FieldTokenizer:
    if kind == "text":
        corpus = [" ".join(HARD + PLAIN)] * 2 + [" ".join(HARD).upper(), " ".join(HARD).lower()]
    else:
        corpus = [HARD + PLAIN + ["Tom Hanks"]] * 2 + [[item.upper() for item in HARD]]
    return FieldTokenizer.fit(corpus, kind=kind, max_tokens=max_tokens, min_count=1, lowercase=lowercase)


TOKENIZERS = {(kind, lowercase): fitted(kind, lowercase, 7) for kind in ("text", "items") for lowercase in (True, False)}


def assert_same_ids(tokenizer: FieldTokenizer, values: list, length: int | None = None, every: int = 1) -> None:
    """The same ids as ``tokenizers`` alone, on Arrow's path (the values repeated up to a batch that takes it)
    and on Python's (every ``every``-th value, in runs of fewer than ``FAST_PATH_MIN_VALUES``)."""
    assert tokenizer.fast is not None
    slow = reference(tokenizer)
    batch = (values * FAST_PATH_MIN_VALUES)[: max(len(values), FAST_PATH_MIN_VALUES)]
    np.testing.assert_array_equal(tokenizer.encode(batch, length), slow.encode(batch, length))
    sample = values[::every]
    for start in range(0, len(sample), FAST_PATH_MIN_VALUES - 1):
        few = sample[start : start + FAST_PATH_MIN_VALUES - 1]
        np.testing.assert_array_equal(tokenizer.encode(few, length), slow.encode(few, length))


@pytest.mark.parametrize("lowercase", [True, False])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(VALUES, min_size=1, max_size=8), length=st.sampled_from([None, 3, 12]))
def test_text_ids_equal_the_tokenizers_ids(lowercase, values, length):
    assert_same_ids(TOKENIZERS["text", lowercase], values, length)


@pytest.mark.parametrize("lowercase", [True, False])
@settings(max_examples=100, deadline=None)
@given(values=st.lists(ITEMS, min_size=1, max_size=8), length=st.sampled_from([None, 2, 9]))
def test_items_ids_equal_the_tokenizers_ids(lowercase, values, length):
    assert_same_ids(TOKENIZERS["items", lowercase], values, length)


@pytest.mark.parametrize("lowercase", [True, False])
def test_hand_picked_characters_take_the_fast_path_with_the_same_ids(lowercase):
    tokenizer = TOKENIZERS["text", lowercase]
    values = [f"{word} and {word}{word}. ({word})" for word in HARD] + ["", None, "   ", " ".join(HARD)]
    for length in (None, 30):
        assert_same_ids(tokenizer, values, length)
    # Only the characters newer than one side's Unicode tables leave their rows to the slow path.
    _, slow = tokenizer.fast.encode(values, 7, 7)
    assert all("\u0558" in values[row] or "\u32ff" in values[row] for row in slow)
    # Python's path leaves more: also the characters it splits or lowercases otherwise (final sigma, marks).
    _, slow = tokenizer.fast.encode_few(values, 7, 7)
    assert len(slow) < len(values) / 2
    assert values.index("naïve and naïvenaïve. (naïve)") not in slow
    assert (tokenizer.encode(["ＦＵＬＬ ﬁne"])[0, :2] == tokenizer.encode(["FULL fine"])[0, :2]).all()


def test_the_text_of_a_special_token_is_left_to_the_tokenizers_path():
    tokenizer = TOKENIZERS["text", True]
    values = ["a [PAD] b", "the [UNK]", "[pad] is plain text"]
    for encode in (tokenizer.fast.encode, tokenizer.fast.encode_few):
        _, slow = encode(values, 7, 7)
        assert list(slow) == [0, 1]
    assert_same_ids(tokenizer, values)
    assert tokenizer.encode(values)[0, 1] == 0  # what tokenizers itself does with the text "[PAD]"


def test_items_keep_whole_items_and_drop_empty_ones():
    tokenizer = TOKENIZERS["items", True]
    values = [["Tom Hanks", "", " ", "TOM HANKS", "nobody"], [], None, ("ﬁne", "İstanbul")]
    assert_same_ids(tokenizer, values)
    ids = tokenizer.encode(values)
    assert ids[0, 0] == ids[0, 2] > 1 and ids[0, 1] > 0 and ids[0, 3] == 1 and ids[0, 4] == 0  # " " is an item, "" is not
    assert not ids[1:3].any()


def test_a_pipeline_it_does_not_copy_has_no_fast_path():
    tokenizer = fitted("text", True, 5)
    from tokenizers import pre_tokenizers

    tokenizer.tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    assert FastTokenizer.of(tokenizer.tokenizer, "text") is None
    assert FastTokenizer.of(TOKENIZERS["items", True].tokenizer, "text") is None


def test_values_that_are_not_strings_give_the_same_error():
    tokenizer = TOKENIZERS["text", True]
    for batch in ([3.5], ["a"] * FAST_PATH_MIN_VALUES + [3.5]):
        with pytest.raises(TypeError):
            tokenizer.encode(batch)


def test_a_small_batch_takes_the_python_path_and_a_large_one_arrows(monkeypatch):
    tokenizer = fitted("text", True, 7)
    calls = []
    monkeypatch.setattr(tokenizer.fast, "encode", lambda *args: calls.append("arrow") or None)
    few = tokenizer.fast.encode_few
    monkeypatch.setattr(tokenizer.fast, "encode_few", lambda *args: calls.append("python") or few(*args))
    tokenizer.encode(["a"] * (FAST_PATH_MIN_VALUES - 1))
    assert calls == ["python"]
    tokenizer.encode(["a"] * FAST_PATH_MIN_VALUES)
    assert calls == ["python", "arrow"]


def test_the_python_path_vouches_for_plain_and_accented_text_only():
    tokenizer = TOKENIZERS["text", True]
    assert tokenizer.fast.few_tokens("Don't x-ray CAFÉ ﬁne, naïve…") == ["don", "'", "t", "x", "-", "ray", "café", "fine", ",", "naïve", "..."]
    assert tokenizer.fast.few_tokens(None) == []
    assert tokenizer.fast.few_tokens("a\x1cb") == ["a", "\x1c", "b"]  # in ASCII the classes are the pre-tokenizer's own
    for doubtful in ("ΌΣΟΣ", "é\x1cb", "\ud800", "x [UNK]", 3.5):
        assert tokenizer.fast.few_tokens(doubtful) is None


def test_bundled_movies_take_the_fast_path_with_the_same_ids():
    records = bundled_movies(400)
    plots = [as_text(record.get("plot")) for record in records]
    actors = [as_items(record.get("actors")) for record in records]
    text = FieldTokenizer.fit(plots[:200], kind="text", max_tokens=60, min_count=1)
    items = FieldTokenizer.fit(actors[:200], kind="items", max_tokens=5, min_count=1)
    for tokenizer, values in ((text, plots), (items, actors)):
        assert_same_ids(tokenizer, values)
        _, slow = tokenizer.fast.encode(values, tokenizer.max_tokens, tokenizer.max_tokens)
        assert len(slow) == 0
        assert (tokenizer.encode(values) > 1).mean() > 0.3


def test_encoding_imports_neither_keras_nor_jax_nor_pandas():
    code = (
        "import sys\n"
        "from multifield.data.text import FieldTokenizer\n"
        "text = FieldTokenizer.fit(['a é b', 'a c'], kind='text', min_count=1)\n"
        "items = FieldTokenizer.fit([['a é', 'b']], kind='items', min_count=1)\n"
        "assert text.encode(['a é', 'ｃ']).any() and items.encode([['b'], None]).any()\n"
        "print(sorted({'keras', 'jax', 'pandas'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_every_code_point_gets_the_tokenizers_ids_and_few_leave_the_fast_path():
    codes = [code for code in range(0x110000) if not 0xD800 <= code < 0xE000]  # surrogates are not text
    values = [f"A{chr(code)}b {chr(code)}. x{chr(code)}\u0301" for code in codes]
    tokenizer = FieldTokenizer.fit(values[::5], kind="text", max_tokens=12, min_count=1, vocabulary_size=10**7)
    assert_same_ids(tokenizer, values, every=29)  # Python's path on 38,000 of them (all would take minutes)
    _, slow = tokenizer.fast.encode(values, 12, 12)
    assert len(slow) < 0.001 * len(values)  # characters newer than one side's Unicode tables
