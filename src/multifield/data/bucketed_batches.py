"""``BucketedBatches``: the training batches of records held in memory, grouped by length (see
``multifield.data.batches``), as a Keras ``PyDataset``."""

from __future__ import annotations

import keras
import numpy as np

from multifield.data.batches import batch_order, row_lengths, take_batch


class BucketedBatches(keras.utils.PyDataset):
    """Training batches of ``(inputs dict, labels)`` grouped by the length of the ``sort_by`` field.

    ``drop_remainder``: ``None`` (default) leaves the records beyond the last full batch out of the
    epoch (a different few each epoch), unless there is no full batch; ``True`` always leaves them out
    (data-parallel training: every batch splits evenly over the devices); ``False`` makes them one short
    last batch. ``steps`` cuts each epoch to that many batches (the same on every process);
    ``agree_width`` (a function of one width) makes the processes pad each step alike; ``trim=False`` keeps
    the ``sort_by`` field at full width (batches still grouped by its length).
    """

    def __init__(
        self,
        inputs: dict[str, np.ndarray],
        labels: np.ndarray,
        batch_size: int,
        sort_by: str | None,
        seed: int = 0,
        drop_remainder: bool | None = None,
        steps: int | None = None,
        agree_width=None,
        trim: bool = True,
    ):
        super().__init__()
        self.inputs, self.labels = inputs, labels
        self.batch_size = batch_size
        self.sort_by = sort_by
        self.sort_lengths = row_lengths(inputs[sort_by]) if sort_by else np.zeros(len(labels), dtype=np.int64)
        self.rng = np.random.default_rng(seed)
        self.drop_remainder, self.steps, self.agree_width = drop_remainder, steps, agree_width
        self.trim = trim
        self.batches = self._order()

    def _order(self) -> list[np.ndarray]:
        if self.drop_remainder is None:  # full batches, or one short batch when there is no full one
            keep_short = len(self.sort_lengths) < self.batch_size
        else:
            keep_short = not self.drop_remainder
        batches, _ = batch_order(self.sort_lengths, self.batch_size, self.rng, keep_short=keep_short)
        return batches[: self.steps] if self.steps is not None else batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        rows = np.sort(self.batches[index])
        return take_batch(self.inputs, rows, self.sort_by, self.sort_lengths, self.agree_width, self.trim), self.labels[rows]

    def on_epoch_end(self):
        self.batches = self._order()

    def state(self) -> tuple[dict, list[np.ndarray]]:
        """What decides the coming batches (for a checkpoint): the shuffling generator and the batch order."""
        return {"rng": self.rng.bit_generator.state}, list(self.batches)

    def restore_state(self, state: dict, arrays: list[np.ndarray]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.batches = list(arrays)
