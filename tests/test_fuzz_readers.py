"""Hypothesis-generated hostile JSONL, CSV and Parquet files through the readers of train, predict and evaluate:
success or a one-line error (exit 2 on the command line), never a traceback; ``predict --skip-bad-rows`` writes
one line per input record. ``benchmarks/fuzz_readers.py`` runs the same check for longer."""

import tempfile
from pathlib import Path

import pytest
from cli_helpers import runner
from fuzz_files import Readers, Sample, data_files
from hypothesis import HealthCheck, given, settings

from multifield.cli import app


@pytest.fixture(scope="module")
def readers(trained_bundle):
    return Readers.load(trained_bundle)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(sample=data_files)
def test_every_generated_file_is_read_or_refused_in_one_line(readers, sample):
    with tempfile.TemporaryDirectory() as folder:
        readers.check(sample, Path(folder))


NASTY = [
    Sample("nul.jsonl", b'{"id": "a\\u0000", "plot": "x\x00y"}\n\x00\x00\x00\n'),
    Sample("quotes.csv", b'id,plot,genres\n1,"unterminated,Drama\n2,ok,"Drama"x\n'),
    Sample("dup.csv", b"id,plot,plot\n1,a,b\n"),
    Sample("latin.csv", "id,plot,genres\n1,caf\u00e9,Drama\n".encode("latin-1")),
    Sample("broken.parquet", b"PAR1\x00\x00PAR1"),
]


@pytest.mark.parametrize("sample", NASTY, ids=lambda sample: sample.name)
def test_the_command_line_answers_a_nasty_file_with_exit_0_or_one_line_and_exit_2(trained_bundle, tmp_path, sample):
    path = sample.write(tmp_path)
    for args in (["predict", trained_bundle, "--input", path, "--output", tmp_path / "out.jsonl"],
                 ["predict", trained_bundle, "--input", path, "--output", tmp_path / "out.jsonl", "--skip-bad-rows"],
                 ["evaluate", trained_bundle, "--data", path]):
        result = runner.invoke(app, [str(arg) for arg in args])
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        if result.exit_code == 2:
            errors = [line for line in result.output.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "Traceback" not in result.output, result.output
