"""The web page of ``multifield serve`` in a real browser: Debian's Chromium, headless, driven by Playwright,
against a server started as a user starts it (``multifield serve`` in a subprocess, on 127.0.0.1).

It runs in CI (``.ci/run`` installs chromium and sets ``CI``); elsewhere it is skipped only when chromium or
Playwright is missing. The screenshot is kept under ``tmp/artifacts/`` (or ``$MULTIFIELD_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_helpers import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
EXECUTABLE = str(Path(sys.executable).with_name("multifield"))
ARTIFACTS = Path(os.environ.get("MULTIFIELD_ARTIFACTS", Path(__file__).resolve().parents[2] / "tmp" / "artifacts"))

RECORD = {
    "title": "Night Train <script>alert('title')</script>",
    "plot": (
        "A retired detective hunts a ruthless serial killer through a snowed-in mountain town; "
        "twenty-two years later, the killer's daughter <script>alert(1)</script> returns for revenge."
    ),
    "actors": ["Tom Hanks", "Meg Ryan"],
    "features": ["murder", "detective", "snow"],
    "reviews": "Nobody leaves the mountain.",
}

pytestmark = pytest.mark.slow


def require_browser():
    """Fail in CI, skip elsewhere, when chromium or Playwright is missing."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run it")
        pytest.skip(message)


KEY = "browser-test-key-0123456789"


@pytest.fixture(scope="module")
def server_url(trained_bundle, tmp_path_factory):
    yield from started_server(trained_bundle, tmp_path_factory, os.environ)


@pytest.fixture(scope="module")
def keyed_server_url(trained_bundle, tmp_path_factory):
    yield from started_server(trained_bundle, tmp_path_factory, {**os.environ, "MULTIFIELD_API_KEY": KEY})


def started_server(trained_bundle, tmp_path_factory, environment):
    """``multifield serve`` on a free port of 127.0.0.1 until the module's tests are done; yields its URL."""
    require_browser()
    port = free_port()
    log = tmp_path_factory.mktemp("browser") / "serve.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [EXECUTABLE, "serve", str(trained_bundle), "--host", "127.0.0.1", "--port", str(port),
             "--batch-sizes", "1,8", "--no-access-log"],
            stdout=handle, stderr=subprocess.STDOUT, env=environment,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, f"multifield serve exited:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the server did not get ready:\n{log.read_text()}"
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser(server_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_page_predicts_and_shows_attended_words(server_url, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.goto(server_url + "/")

    # the form has the bundle's fields; the example button fills it from the shipped movies
    page.wait_for_selector("#field-plot")
    fields = page.eval_on_selector_all("#fields [name]", "nodes => nodes.map(node => node.name)")
    assert fields == list(httpx.get(f"{server_url}/v1/model").json()["fields"])
    page.wait_for_selector("#example-button:not([hidden])")
    page.click("#example-button")
    page.wait_for_selector("#example-note:not([hidden])")
    assert page.input_value("#field-plot").strip()

    # our own record, typed in, then submitted
    for name, value in RECORD.items():
        page.fill(f"#field-{name}", ", ".join(value) if isinstance(value, list) else value)
    page.click("#predict-button")
    page.wait_for_selector("#result:not([hidden]) #labels .label", timeout=60_000)

    expected = httpx.post(f"{server_url}/v1/predict?attention=true", json={"records": [{"id": "web", **RECORD}]}).json()
    prediction = expected["predictions"][0]
    shown_labels = page.eval_on_selector_all("#labels .label", "nodes => nodes.map(node => node.dataset.label)")
    assert set(prediction["labels"]) <= set(shown_labels) and shown_labels
    predicted = page.eval_on_selector_all("#labels .label.predicted", "nodes => nodes.map(node => node.dataset.label)")
    assert predicted == sorted(prediction["labels"], key=lambda label: -prediction["scores"][label])

    # the plot as typed (markup shown as text), every word shaded with its weight in a tooltip
    plot = page.locator('#attention [data-field="plot"] .words')
    assert plot.inner_text().strip() == RECORD["plot"]
    words = page.eval_on_selector_all(
        '#attention [data-field="plot"] .w',
        "nodes => nodes.map(node => ({text: node.textContent, title: node.title, weight: node.dataset.weight,"
        " tokens: node.dataset.tokens, background: getComputedStyle(node).backgroundColor}))",
    )
    assert words and any(word["text"] == "twenty-two" for word in words)
    tokens = [token for word in words for token in json.loads(word["tokens"])]
    assert tokens == prediction["attention"]["plot"]  # the same weights as the JSON API
    assert sum(float(word["weight"]) for word in words) == pytest.approx(1.0, abs=1e-3)
    for word in words:
        assert word["title"].startswith(f"{float(word['weight']):.4f}")
    heaviest = max(words, key=lambda word: float(word["weight"]))
    assert heaviest["background"].startswith("rgba(255, 170, 0, 0.85")
    assert page.locator('#attention [data-field="reviews"] .w').count() > 0
    # under each field, the deletion test of the served model, as /v1/model gives it
    check = httpx.get(f"{server_url}/v1/model").json()["attention_check"]["plot"]
    sentence = page.locator('#attention [data-field="plot"] .check').inner_text()
    assert sentence.startswith("On validation, removing its 3 most attended words lowered the predicted labels' scores")
    if check["random"] > 0:
        assert f"{check['top'] / check['random']:.1f}x as much" in sentence
    assert page.locator("#attention script").count() == 0 and page.locator("#fields script").count() == 0

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "web-page.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"\nscreenshot of the page: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    assert not problems, problems
    page.close()


def test_bad_input_shows_the_servers_message(server_url, browser):
    page = browser.new_page()
    page.goto(server_url + "/")
    page.wait_for_selector("#field-plot")
    page.fill("#field-plot", "x" * 100_001)  # over --max-field-chars: the server's 422 message is shown
    page.click("#predict-button")
    page.wait_for_selector("#error:not([hidden])")
    assert "plot" in page.inner_text("#error")
    page.close()


def test_api_docs_render_without_internet(server_url, browser):
    """/docs loads Swagger UI from this server (the machine running the tests has no internet either)."""
    page = browser.new_page()
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(server_url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    assert page.locator(".opblock-summary-path", has_text="/v1/predict").count() >= 1
    assert not failed, failed
    page.close()


def test_page_asks_for_the_key_once_and_keeps_it_in_memory_only(keyed_server_url, browser):
    context = browser.new_context()
    page = context.new_page()
    asked: list[str] = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept(KEY)

    page.on("dialog", answer)
    page.goto(keyed_server_url + "/")
    page.wait_for_selector("#field-plot")  # GET /v1/model answered: the key was sent
    page.fill("#field-plot", RECORD["plot"])
    page.click("#predict-button")
    page.wait_for_selector("#result:not([hidden])")
    assert len(asked) == 1 and "API key" in asked[0]
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert context.cookies() == [] and KEY not in page.evaluate("document.cookie")
    page.reload()  # a new page: the key is gone, and asked for again
    page.wait_for_selector("#field-plot")
    assert len(asked) == 2
    context.close()
