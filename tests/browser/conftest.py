"""Fixtures for the dataset browser's tests: a sample store (with one row whose
text holds markup) ingested by m3serve-admin, real m3serve-server processes
with their HTTP listener on 127.0.0.1, and headless Chromium driven by
Selenium through Debian's chromedriver (no mocks, no network)."""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BIN = Path(os.environ.get("M3SERVE_BIN_DIR", "build/bin"))
# Screenshots and page dumps go here (ctest sets it to build/test-output/browser).
OUTPUT = Path(os.environ.get("M3SERVE_TEST_OUTPUT", "test-output/browser"))
MARKUP = '<script>window.injected=1</script><img src=x onerror="window.injected=2">How many?'
NARROW_TOKEN = "narrow-token-0123456789abcdef"
WIDE_TOKEN = "wide-token-0123456789abcdef01"


def run(*args):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


class Server:
    """m3serve-server with its gRPC and HTTP ports on 127.0.0.1."""

    def __init__(self, db, workdir, *extra):
        workdir.mkdir(parents=True, exist_ok=True)
        ready = workdir / "ready.json"
        self.log = workdir / "server.log"
        self.proc = subprocess.Popen(
            [str(BIN / "m3serve-server"), "--db", str(db), "--listen", "127.0.0.1:0",
             "--http-listen", "127.0.0.1:0", "--ready-file", str(ready), *extra],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("server did not start:\n" + self.log.read_text())
            time.sleep(0.02)
        info = json.loads(ready.read_text())
        self.port, self.http_port = info["port"], info["http_port"]
        self.url = f"http://127.0.0.1:{self.http_port}"

    def get(self, path, token=None, method="GET", headers=None):
        """(status, headers, body bytes) of an HTTP request."""
        req = urllib.request.Request(self.url + path, method=method, headers=dict(headers or {}))
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, path, token=None):
        status, _, body = self.get(path, token)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


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
