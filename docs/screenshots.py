"""Regenerate the README's screenshots from a real model: the web page of `multifield serve` with a prediction,
an explain report, and the top of a training report, each rendered by Debian's Chromium (headless, Playwright).

Usage (after `make demo`, which trains runs/demo/model on the bundled movies):

    .venv/bin/python docs/screenshots.py --model runs/demo/model

writes docs/web-page.png, docs/explain-report.png and docs/training-report.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx

DOCS = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(model: Path, port: int) -> subprocess.Popen:
    executable = str(Path(sys.executable).with_name("multifield"))
    process = subprocess.Popen(
        [executable, "serve", str(model), "--port", str(port), "--batch-sizes", "1,8", "--no-access-log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"multifield serve {model} exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit("the server did not get ready in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("runs/demo/model"), help="a bundle trained on the bundled movies")
    parser.add_argument("--out", type=Path, default=DOCS, help="where the PNGs go")
    parser.add_argument("--example", type=int, default=38, help="which shipped example the web page predicts")
    parser.add_argument("--explain", default="38,42,0", help="shipped examples shown in the explain report")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    import multifield
    from multifield.demo import bundled_split
    from multifield.explain import write_report
    from multifield.report import write_training_report

    args.out.mkdir(parents=True, exist_ok=True)
    examples = json.loads((resources.files("multifield.server") / "static" / "examples.json").read_text("utf-8"))["records"]
    classifier = multifield.load(args.model)
    with tempfile.TemporaryDirectory() as folder:
        explain_html = Path(folder) / "explain.html"
        write_report(classifier.predictor(), [examples[int(i)] for i in args.explain.split(",")], explain_html)
        training_html = write_training_report(classifier, Path(folder) / "report.html", bundled_split()[1])
        port = free_port()
        server = serve(args.model, port)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
                page.goto(f"http://127.0.0.1:{port}/?example={args.example}")
                page.wait_for_selector("#result:not([hidden]) #attention .w", timeout=60_000)
                page.mouse.move(0, 0)
                page.screenshot(path=str(args.out / "web-page.png"), full_page=True)

                page = browser.new_page(viewport={"width": 1000, "height": 1250})
                page.goto(explain_html.as_uri())
                page.screenshot(path=str(args.out / "explain-report.png"))

                page = browser.new_page(viewport={"width": 1000, "height": 1150})
                page.goto(training_html.as_uri())
                page.screenshot(path=str(args.out / "training-report.png"))
                browser.close()
        finally:
            server.terminate()
            server.wait(30)
    for name in ("web-page.png", "explain-report.png", "training-report.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
