"""The `Example:` of every layer's docstring runs and prints what it shows."""

import doctest

import pytest

import multifield.layers.attention_pooling
import multifield.layers.masked_global_pooling
import multifield.layers.numpy_initializers
import multifield.layers.recurrent_encoder


@pytest.mark.parametrize(
    "module",
    [
        multifield.layers.attention_pooling,
        multifield.layers.recurrent_encoder,
        multifield.layers.masked_global_pooling,
        multifield.layers.numpy_initializers,
    ],
    ids=lambda module: module.__name__.rsplit(".", 1)[-1],
)
def test_docstring_example_runs(module):
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0
    assert results.failed == 0
