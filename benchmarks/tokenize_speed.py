"""Tokenizing the bundled movies: the ``tokenizers`` path against Arrow's (``FastTokenizer``), on the shipped
config's vocabularies fitted on the training movies and 20,000 records (the test movies repeated).

Run: ``python -m benchmarks.tokenize_speed [--records 20000] [--repeats 5]``. Prints the best of the repeats
for the plot field alone, for ``RecordEncoder.encode_values`` over every field, and for ``encode_inputs`` (which
also coerces each record's values), and checks that both paths give the same ids.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import REPO, load_dataset
from multifield.config import load_config
from multifield.data.encoding import RecordEncoder, field_values
from multifield.data.io import Table


def best_seconds(run, repeats: int) -> tuple[float, dict]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    config = load_config(REPO / "configs" / "movies.toml")
    data = load_dataset()
    encoder = RecordEncoder.fit(config, Table("train", data.train))
    records = (data.test * (args.records // len(data.test) + 1))[: args.records]
    table = Table("records", records)
    values = field_values(config, table)
    fast = {name: tokenizer.fast for name, tokenizer in encoder.tokenizers.items()}
    plot = encoder.tokenizers["plot"]
    encoder.encode_values(values)  # the first Arrow call of a process imports pandas (about 0.3 s): not counted
    rows = []
    for name, run in (
        ("plot field", lambda: {"plot": plot.encode(values["plot"])}),
        ("encode_values, all fields", lambda: encoder.encode_values(values)),
        ("encode_inputs, all fields", lambda: encoder.encode_inputs(table)),
    ):
        for tokenizer in encoder.tokenizers.values():
            tokenizer.fast = None
        old, old_ids = best_seconds(run, args.repeats)
        for field_name, tokenizer in encoder.tokenizers.items():
            tokenizer.fast = fast[field_name]
        new, new_ids = best_seconds(run, args.repeats)
        same = all(np.array_equal(old_ids[key], new_ids[key]) for key in old_ids)
        rows.append((name, old, new, same))
    slow_rows = {name: len(tokenizer.fast.encode(values[name], tokenizer.max_tokens, tokenizer.max_tokens)[1])
                 for name, tokenizer in encoder.tokenizers.items()}
    print(f"{args.records:,} records, best of {args.repeats}; rows left to tokenizers: {slow_rows}")
    print(f"| {'what':<26} | tokenizers s | Arrow s | speed-up | same ids |")
    for name, old, new, same in rows:
        print(f"| {name:<26} | {old:12.3f} | {new:7.3f} | {old / new:7.1f}x | {same} |")


if __name__ == "__main__":
    main()
