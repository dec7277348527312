"""Fixtures: a sample store built with m3serve-admin and real m3serve-server
processes on 127.0.0.1 (no mocks)."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

BIN = Path(os.environ.get("M3SERVE_BIN_DIR", "build/bin"))


def run(*args, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


class ServerProcess:
    """m3serve-server on 127.0.0.1; restart() comes back on the same port."""

    def __init__(self, db, workdir, *extra):
        self.db, self.workdir, self.extra = db, Path(workdir), list(extra)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc = None

    def start(self):
        ready = self.workdir / "ready.json"
        if ready.exists():
            ready.unlink()
        log = open(self.workdir / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(BIN / "m3serve-server"), "--db", str(self.db), "--listen", f"127.0.0.1:{self.port}",
             "--metrics-listen", "", "--ready-file", str(ready), *self.extra],
            stdout=log, stderr=log)
        deadline = time.time() + 20
        while time.time() < deadline:
            if ready.exists():
                self.port = json.loads(ready.read_text())["port"]
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("server did not start:\n" + (self.workdir / "server.log").read_text())

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def restart(self):
        self.kill()
        return self.start()


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("m3serve")
    run(BIN / "m3serve-admin", "sample", "--out", root / "sample", "--scale", "2")
    run(BIN / "m3serve-admin", "ingest", "--db", root / "store", "--progress", "none",
        root / "sample" / "M3IT", root / "sample" / "M3IT-80")
    return root / "store"


@pytest.fixture(scope="session")
def server(store, tmp_path_factory):
    s = ServerProcess(store, tmp_path_factory.mktemp("server")).start()
    yield s
    s.kill(signal.SIGTERM)


@pytest.fixture
def own_server(store, tmp_path):
    """A server a test may kill and restart."""
    s = ServerProcess(store, tmp_path / "server").start()
    yield s
    s.kill()
