import numpy as np

from multifield.data.text import FieldTokenizer, as_items, as_text

PLOTS = ["A detective hunts a killer.", "A killer hunts a detective!", "Love, in Paris."]


def test_text_rows_are_right_padded_and_truncated():
    tokenizer = FieldTokenizer.fit(PLOTS, kind="text", max_tokens=4, min_count=1)
    ids = tokenizer.encode(["a killer", "", "a detective hunts a killer ."])
    assert ids.shape == (3, 4) and ids.dtype == np.int32
    assert (ids[0, :2] > 1).all() and (ids[0, 2:] == 0).all()
    assert (ids[1] == 0).all()
    assert (ids[2] > 0).all()


def test_case_is_folded_and_unknown_words_get_id_1():
    tokenizer = FieldTokenizer.fit(PLOTS, kind="text", max_tokens=8, min_count=1)
    same = tokenizer.encode(["KILLER", "killer"])
    np.testing.assert_array_equal(same[0], same[1])
    assert tokenizer.encode(["zeppelin"])[0, 0] == 1


def test_min_count_and_vocabulary_size():
    tokenizer = FieldTokenizer.fit(PLOTS, kind="text", min_count=2)
    vocabulary = tokenizer.vocabulary()
    assert vocabulary[:2] == ["[PAD]", "[UNK]"]
    assert "paris" not in vocabulary and "killer" in vocabulary
    assert FieldTokenizer.fit(PLOTS, kind="text", min_count=1, vocabulary_size=5).vocabulary_size == 5


def test_items_are_whole_tokens():
    tokenizer = FieldTokenizer.fit([["Tom Hanks", "Meg Ryan"], ["Tom Hanks"]], kind="items", max_tokens=3, min_count=1)
    ids = tokenizer.encode([["Tom Hanks", "Nobody Else"], []])
    assert ids[0, 0] > 1 and ids[0, 1] == 1 and ids[0, 2] == 0
    assert (ids[1] == 0).all()
    assert "tom hanks" in tokenizer.vocabulary()


def test_words_as_written_for_explanations():
    tokenizer = FieldTokenizer.fit(PLOTS, kind="text", max_tokens=10, min_count=1)
    ids, words = tokenizer.encode_with_words("The Killer, in PARIS.")
    assert words == ["The", "Killer", ",", "in", "PARIS", "."]
    assert len(ids) == len(words)
    items = FieldTokenizer.fit([["Tom Hanks"]], kind="items", min_count=1)
    assert items.encode_with_words(["Tom Hanks", "Meg Ryan"])[1] == ["Tom Hanks", "Meg Ryan"]


def test_json_round_trip_encodes_the_same():
    tokenizer = FieldTokenizer.fit(PLOTS, kind="text", max_tokens=6, min_count=1)
    again = FieldTokenizer.from_json(tokenizer.to_json())
    np.testing.assert_array_equal(tokenizer.encode(PLOTS), again.encode(PLOTS))
    assert again.max_tokens == 6 and again.kind == "text"


def test_value_coercion():
    assert as_text(None) == "" and as_text(float("nan")) == ""
    assert as_text(["a", "b"]) == "a b"
    assert as_items("Tom Hanks|Meg Ryan") == ["Tom Hanks", "Meg Ryan"]
    assert as_items('["Tom Hanks", "Meg Ryan"]') == ["Tom Hanks", "Meg Ryan"]
    assert as_items(None) == [] and as_items("") == []
    for bad, coerce in ((5, as_text), ({"a": 1}, as_items), ([1, 2], as_items)):
        try:
            coerce(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
