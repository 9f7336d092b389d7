"""Running the command line in tests: in-process through typer's runner, or as the installed script."""

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from multifield.cli import app

EXECUTABLE = str(Path(sys.executable).with_name("multifield"))
runner = CliRunner()


def run_cli(*args, check_exit=0):
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == check_exit, result.output
    return result


def run_script(*args):
    return subprocess.run([EXECUTABLE, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
