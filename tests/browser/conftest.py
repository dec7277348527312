"""Fixtures for the dataset browser's tests: a sample store (with one row whose
text holds markup) ingested by m3serve-admin, real m3serve-server processes
with their HTTP listener on 127.0.0.1, and headless Chromium driven by
Selenium through Debian's chromedriver (no mocks, no network)."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))
from m3serve_testlib import BIN, Server, run  # noqa: E402
# Screenshots and page dumps go here (ctest sets it to build/test-output/browser).
OUTPUT = Path(os.environ.get("M3SERVE_TEST_OUTPUT", "test-output/browser"))
MARKUP = '<script>window.injected=1</script><img src=x onerror="window.injected=2">How many?'
NARROW_TOKEN = "narrow-token-0123456789abcdef"
WIDE_TOKEN = "wide-token-0123456789abcdef01"


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    run(BIN / "m3serve-admin", "sample", "--out", root / "sample", "--scale", "1")
    # A real-layout vqa-v2 row whose question is markup: the page must show it as text.
    train = root / "sample" / "M3IT" / "data" / "vqa" / "vqav2" / "train.jsonl"
    row = json.loads(train.read_text().splitlines()[0])
    row["question"] = MARKUP
    with open(train, "a") as f:
        f.write(json.dumps(row) + "\n")
    run(BIN / "m3serve-admin", "ingest", "--db", root / "store", "--progress", "none",
        root / "sample" / "M3IT", root / "sample" / "M3IT-80")
    return root / "store"


@pytest.fixture(scope="session")
def stats(store):
    return json.loads(run(BIN / "m3serve-admin", "stats", "--db", store, "--json").stdout)


@pytest.fixture(scope="session")
def server(store, tmp_path_factory):
    s = Server(store, tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def token_server(store, tmp_path_factory):
    work = tmp_path_factory.mktemp("token-server")
    tokens = work / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [
        {"token": NARROW_TOKEN, "identity": "narrow", "allowed_licenses": ["CC-BY-4.0"]},
        {"token": WIDE_TOKEN, "identity": "wide"}]}))
    s = Server(store, work, "--tokens", str(tokens))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def output_dir():
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium (Debian's chromium + chromium-driver) through Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    opts = Options()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1300,1000", "--no-first-run", "--disable-extensions",
              # No connections of Chromium's own (the machine's network is closed).
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-quic",
              f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
