"""``multifield serve`` as a user runs it: a real server in a subprocess, and the refusal of a tampered bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from server_helpers import free_port
from typer.testing import CliRunner

from multifield.cli import app as cli
from multifield.errors import BundleError
from multifield.server import create_app

EXECUTABLE = str(Path(sys.executable).with_name("multifield"))
JSON = {"content-type": "application/json"}


def tampered_copy(bundle: Path, folder: Path, change) -> Path:
    """A copy of ``bundle`` whose model.keras config was edited by ``change(layer_config)``."""
    copy = folder / "tampered"
    shutil.copytree(bundle, copy)
    model = copy / "model.keras"
    with zipfile.ZipFile(bundle / "model.keras") as source:
        entries = {name: source.read(name) for name in source.namelist()}
    config = json.loads(entries["config.json"])
    change(config["config"]["layers"][-1])
    entries["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(model, "w") as target:
        for name, data in entries.items():
            target.writestr(name, data)
    return copy


def as_lambda(layer):
    layer["class_name"] = "Lambda"
    layer["config"]["function"] = {"class_name": "__lambda__", "config": {"code": "print('hi')"}}


def as_foreign(layer):
    layer["module"], layer["class_name"], layer["registered_name"] = "os", "system", None


@pytest.mark.parametrize("change, reason", [(as_lambda, "Lambda"), (as_foreign, "os.system")])
def test_create_app_refuses_a_tampered_bundle(trained_bundle, tmp_path, change, reason):
    tampered = tampered_copy(trained_bundle, tmp_path, change)
    with pytest.raises(BundleError, match=reason):
        create_app(tampered)


def test_serve_exits_2_with_one_line_on_a_tampered_bundle(trained_bundle, tmp_path):
    tampered = tampered_copy(trained_bundle, tmp_path, as_lambda)
    before = {path: path.read_bytes() for path in tampered.rglob("*") if path.is_file()}
    result = subprocess.run(
        [EXECUTABLE, "serve", str(tampered), "--port", str(free_port())],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Lambda" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert {path: path.read_bytes() for path in tampered.rglob("*") if path.is_file()} == before


def test_serve_option_errors_exit_2():
    runner = CliRunner()
    for args in (["--batch-sizes", "8,1"], ["--batch-sizes", "a"], ["--max-records", "2000000"]):
        result = runner.invoke(cli, ["serve", "no-such-dir", *args])
        assert result.exit_code == 2, result.output
    result = runner.invoke(cli, ["serve", "no-such-dir"])
    assert result.exit_code == 2 and "no such model directory" in result.output
    assert "Example:" in runner.invoke(cli, ["serve", "--help"]).output


def test_serve_answers_over_http(trained_bundle, movie_files):
    port = free_port()
    before = sorted((path.name, path.stat().st_mtime_ns) for path in trained_bundle.rglob("*"))
    server = subprocess.Popen(
        [EXECUTABLE, "serve", str(trained_bundle), "--port", str(port), "--batch-sizes", "1,4", "--no-access-log"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        statuses = []
        deadline = time.monotonic() + 180
        while not statuses or statuses[-1] != 200:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the server was not ready within 180 s"
            try:
                statuses.append(httpx.get(f"{url}/healthz", timeout=5).status_code)
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert set(statuses) <= {503, 200}
        records = [json.loads(line) for line in movie_files["test"].read_text().splitlines()[:3]]
        response = httpx.post(f"{url}/v1/predict?attention=true", json={"records": records}, timeout=30)
        assert response.status_code == 200
        predictions = response.json()["predictions"]
        assert [row["id"] for row in predictions] == [record["id"] for record in records]
        assert all(set(row["attention"]) == {"plot", "reviews"} for row in predictions)
        assert httpx.post(f"{url}/v1/predict", content=b"{", headers=JSON, timeout=30).status_code == 400
        assert httpx.post(f"{url}/v1/predict", content=b"{}", timeout=30).status_code == 415  # no Content-Type
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    finally:
        server.terminate()
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert "127.0.0.1" in output
    assert sorted((path.name, path.stat().st_mtime_ns) for path in trained_bundle.rglob("*")) == before
