"""The attention heatmap: a PNG with one row per attention field (and head), long fields wrapped."""

from multifield.explain import HEATMAP_COLUMNS, heatmap_png

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_heatmap_is_a_png():
    data = heatmap_png({"attention": {"plot": [["a", 0.25], ["b", 0.75]], "reviews": []}}, "x")
    assert data[:8] == PNG


def test_an_empty_field_with_several_heads_has_no_row():
    one = heatmap_png({"attention": {"tagline": [["a", 0.4], ["b", 0.6]]}}, "x")
    with_empty_heads = heatmap_png({"attention": {"plot": [[], []], "tagline": [["a", 0.4], ["b", 0.6]]}}, "x")
    assert with_empty_heads[:8] == PNG and png_size(with_empty_heads) == png_size(one)


def test_a_long_field_is_wrapped_onto_rows_of_at_most_heatmap_columns():
    long = [[f"w{i}", 1 / (3 * HEATMAP_COLUMNS)] for i in range(3 * HEATMAP_COLUMNS)]
    short = long[:HEATMAP_COLUMNS]
    wide, tall = png_size(heatmap_png({"attention": {"plot": long}}))
    assert wide == png_size(heatmap_png({"attention": {"plot": short}}))[0]  # no wider than one full row
    assert tall > 2 * png_size(heatmap_png({"attention": {"plot": short}}))[1]  # three rows
    assert heatmap_png({"attention": {"plot": [["$x$", 0.5], ["$", 0.5]]}}, "$1 $2")[:8] == PNG  # no mathematics
