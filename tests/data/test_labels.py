import numpy as np
import pytest

from multifield.data.labels import LabelEncoder, parse_labels


@pytest.mark.parametrize(
    "value, expected",
    [
        (["Drama", "War"], ["Drama", "War"]),
        ('["Drama", "War"]', ["Drama", "War"]),
        ("Drama|War", ["Drama", "War"]),
        (" Drama | War |", ["Drama", "War"]),
        ("", []),
        (None, []),
        (float("nan"), []),
        ([], []),
    ],
)
def test_label_formats(value, expected):
    assert parse_labels(value) == expected


def test_other_delimiter():
    assert parse_labels("Drama;War", delimiter=";") == ["Drama", "War"]


@pytest.mark.parametrize("value", [5, {"a": 1}, [1, 2], "[not json"])
def test_bad_labels(value):
    with pytest.raises(ValueError):
        parse_labels(value)


def test_encoder_sorts_counts_and_reports_unknown_labels():
    encoder = LabelEncoder.fit([["War", "Drama"], ["Drama"], ["Rare"]], min_count=1)
    assert encoder.labels == ["Drama", "Rare", "War"]
    matrix, unknown = encoder.transform([["Drama"], ["Western", "War"]])
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 0, 1]])
    assert unknown == {"Western": 1}
    assert encoder.decode(matrix) == [["Drama"], ["War"]]
    assert LabelEncoder.fit([["War", "Drama"], ["Drama"], ["Rare"]], min_count=2).labels == ["Drama"]
