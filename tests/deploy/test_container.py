"""The container image definition: the runtime stage provides every shared
library of the built binaries (deploy/check_runtime_libs.py), and the
Dockerfile follows the rules we hold it to (no Docker engine runs here)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ.get("M3SERVE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BIN = Path(os.environ.get("M3SERVE_BIN_DIR", ROOT / "build" / "bin"))
CHECK = ROOT / "deploy" / "check_runtime_libs.py"
BINARIES = [str(BIN / b) for b in ("m3serve-server", "m3serve-admin", "m3serve-client")]


def check(dockerfile):
    return subprocess.run([sys.executable, str(CHECK), "--dockerfile", str(dockerfile), *BINARIES],
                          capture_output=True, text=True)


def test_runtime_stage_provides_every_library():
    r = check(ROOT / "Dockerfile")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_missing_runtime_library_fails_the_check(tmp_path):
    text = (ROOT / "Dockerfile").read_text()
    assert "librocksdb7.8" in text
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace("librocksdb7.8 ", ""))
    r = check(broken)
    assert r.returncode == 1
    assert "librocksdb.so.7.8" in r.stdout and "librocksdb7.8" in r.stdout


def test_dockerfile_rules():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.M)
    assert [f[0] for f in froms] == ["debian:bookworm", "debian:bookworm-slim"]
    runtime = text.split("FROM debian:bookworm-slim", 1)[1]
    user = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^EXPOSE\s+50051\s+9464", runtime, flags=re.M)
    assert re.search(r'^ENTRYPOINT\s+\["/usr/local/bin/m3serve-server"\]', runtime, flags=re.M)
    for block in re.findall(r"apt-get install[^\n]*(?:\\\n[^\n]*)*", text):
        assert "--no-install-recommends" in block or "install-deps" in block
    assert "rm -rf /var/lib/apt/lists/*" in runtime
    assert "ctest --output-on-failure -LE integration" in text.split("FROM debian:bookworm-slim", 1)[0], \
        "the build stage runs the unit tests"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "build/" in ignored and ".git" in ignored
