import numpy as np

from multifield.data.batches import bucketed_order, predict_in_buckets, row_lengths, width_step
from multifield.data.bucketed_batches import BucketedBatches


def test_row_lengths_of_right_padded_rows():
    ids = np.array([[3, 4, 0, 0], [0, 0, 0, 0], [5, 6, 7, 8], [9, 0, 0, 0]])
    assert row_lengths(ids).tolist() == [2, 0, 4, 1]


def test_every_record_once_per_epoch_and_batches_share_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 160, size=1000)
    batches = bucketed_order(lengths, 32, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < 30  # random batches of 32 would spread over about 150


def test_batches_are_trimmed_to_a_few_widths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 161, size=600)
    plot = np.zeros((600, 160), dtype=np.int32)
    for row, length in enumerate(lengths):
        plot[row, :length] = rng.integers(2, 50, size=length)
    labels = rng.integers(0, 2, size=(600, 3)).astype(np.float32)
    batches = BucketedBatches({"plot": plot, "title": plot[:, :24]}, labels, 32, "plot", seed=3)
    widths = set()
    for index in range(len(batches)):
        x, y = batches[index]
        widths.add(x["plot"].shape[1])
        assert x["title"].shape[1] == 24  # only the field that orders the batches is trimmed
        assert (row_lengths(x["plot"]) <= x["plot"].shape[1]).all()
        assert len(y) == len(x["plot"]) == 32  # 600 records: 18 full batches, 24 records left for the next epoch
    assert widths <= {40, 80, 120, 160} and width_step(160) == 40
    assert len(batches) == 18


def test_leftover_records_change_from_epoch_to_epoch_and_a_tiny_set_keeps_its_short_batch():
    labels = np.zeros((100, 2), dtype=np.float32)
    ids = np.arange(1, 101, dtype=np.int32)[:, None]
    batches = BucketedBatches({"plot": ids}, labels, 32, "plot", seed=0)
    seen = []
    for _ in range(4):
        rows = np.concatenate([batches[index][0]["plot"][:, 0] for index in range(len(batches))])
        assert len(rows) == 96 and len(set(rows.tolist())) == 96
        seen.append(frozenset(range(1, 101)) - set(rows.tolist()))
        batches.on_epoch_end()
    assert len(set(seen)) > 1  # a different four are left out each epoch
    tiny = BucketedBatches({"plot": ids[:10]}, labels[:10], 32, "plot", seed=0)
    assert len(tiny) == 1 and len(tiny[0][1]) == 10
    kept = BucketedBatches({"plot": ids}, labels, 32, "plot", seed=0, drop_remainder=False)
    assert sorted(len(kept[index][1]) for index in range(len(kept))) == [4, 32, 32, 32]


def test_predict_in_buckets_returns_input_order():
    rng = np.random.default_rng(0)
    ids = np.zeros((50, 40), dtype=np.int32)
    for row in range(50):
        ids[row, : rng.integers(0, 41)] = row + 1

    def function(batch):  # first id of each row, and the batch's width
        return {"first": batch["plot"][:, :1].astype(np.float32), "width": np.full((len(batch["plot"]), 1), batch["plot"].shape[1])}

    result = predict_in_buckets(function, {"plot": ids}, 8, "plot")
    np.testing.assert_array_equal(result["first"][:, 0], ids[:, 0])
    assert result["width"].max() <= 40 and result["width"].min() >= 16


def test_a_short_last_batch_is_padded_to_a_power_of_two_and_cut_back():
    ids = np.arange(1, 1 + 2 * 45, dtype=np.int32).reshape(45, 2)
    shapes = []

    def function(batch):
        shapes.append(batch["plot"].shape[0])
        return batch["plot"][:, :1] * 10

    result = predict_in_buckets(function, {"plot": ids}, 16, None)
    assert shapes == [16, 16, 16]  # 16, 16 and 13 records padded to 16
    np.testing.assert_array_equal(result[:, 0], ids[:, 0] * 10)
    shapes.clear()
    predict_in_buckets(function, {"plot": ids[:5]}, 16, None)
    assert shapes == [8]
    shapes.clear()
    predict_in_buckets(function, {"plot": ids[:1]}, 16, None)
    assert shapes == [1]


def test_without_fixed_shapes_every_field_is_cut_to_its_batch_and_no_row_is_added():
    rng = np.random.default_rng(1)
    inputs = {}
    for name, width in (("plot", 40), ("title", 12)):
        ids = np.zeros((45, width), dtype=np.int32)
        for row in range(45):
            ids[row, : rng.integers(0, width + 1)] = row + 1
        inputs[name] = ids
    inputs["title"][:, :] = 0  # a field empty in every record still gets one column
    seen = []

    def function(batch):
        seen.append({name: ids.shape for name, ids in batch.items()})
        for ids in batch.values():
            assert row_lengths(ids).max(initial=0) == ids.shape[1] or not ids.any()
        return {"first": batch["plot"][:, :1].astype(np.float32)}

    result = predict_in_buckets(function, inputs, 16, "plot", fixed_shapes=False)
    np.testing.assert_array_equal(result["first"][:, 0], inputs["plot"][:, 0])
    assert [shapes["plot"][0] for shapes in seen] == [16, 16, 13]
    assert all(shapes["title"] == (shapes["plot"][0], 1) for shapes in seen)
    widths = [shapes["plot"][1] for shapes in seen]
    assert widths == sorted(widths) and widths[-1] == row_lengths(inputs["plot"]).max()
