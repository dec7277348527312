"""Shared by the Python integration suites under tests/: run m3serve's binaries
and real m3serve-server processes on 127.0.0.1 (gRPC and HTTP ports chosen by
the server), and talk to them over HTTP and the gRPC health service."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

BIN = Path(os.environ.get("M3SERVE_BIN_DIR", "build/bin"))


def run(*args, check=True):
    """Run a command to completion; RuntimeError with its output when it fails (and check)."""
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def admin(*args, check=True):
    return run(BIN / "m3serve-admin", *args, check=check)


class Server:
    """m3serve-server on 127.0.0.1 with its gRPC and HTTP ports."""

    def __init__(self, db, workdir, *extra):
        workdir = Path(workdir)
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
        self.target = f"127.0.0.1:{self.port}"
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

    def metric(self, name):
        """The value of an unlabelled metric on /metrics, or None."""
        for line in self.get("/metrics")[2].decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def health(self):
        """The grpc.health.v1 status of the server: 1 SERVING, 2 NOT_SERVING."""
        import grpc
        with grpc.insecure_channel(self.target) as ch:
            check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda _: b"",
                                   response_deserializer=lambda b: b)
            reply = check(None, timeout=5)
        return reply[1] if len(reply) >= 2 else 0

    def stop(self):
        """SIGTERM (drain), then the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=60)
        return self.proc.returncode


def wait_for(cond, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False
