"""The container image definition, checked without Docker (scripts/test-image.sh
builds and runs the image itself): the Dockerfile follows the rules we hold it
to, and deploy/runtime_libs.sh collects every shared library the built
binaries load."""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(os.environ.get("M3SERVE_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BIN = Path(os.environ.get("M3SERVE_BIN_DIR", ROOT / "build" / "bin"))
BINARIES = [str(BIN / b) for b in ("m3serve-server", "m3serve-admin", "m3serve-client")]
GLIBC = re.compile(r"^(ld-linux|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so|libresolv\.so|libutil\.so|libanl\.so)")


def test_runtime_libs_collects_every_library_the_binaries_load(tmp_path):
    r = subprocess.run([str(ROOT / "deploy" / "runtime_libs.sh"), str(tmp_path / "libs"), *BINARIES],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    copied = {p.name for p in (tmp_path / "libs").iterdir()}
    ldd = subprocess.run(["ldd", *BINARIES], capture_output=True, text=True, check=True).stdout
    needed = {Path(m.group(1)).name for m in re.finditer(r"=> (/\S+)", ldd)}
    assert {n for n in needed if not GLIBC.match(n)} <= copied
    assert not any(GLIBC.match(n) for n in copied), "glibc comes from the base image"
    assert "libopencv_imgcodecs.so.406" in copied and "librocksdb.so.7.8" in copied


def test_dockerfile_rules():
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.M)
    assert [f[0] for f in froms] == ["debian:bookworm", "debian:bookworm-slim"]
    build, runtime = text.split("FROM debian:bookworm-slim", 1)
    user = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^EXPOSE\s+50051\s+9464", runtime, flags=re.M)
    assert re.search(r'^ENTRYPOINT\s+\["/usr/local/bin/m3serve-server"\]', runtime, flags=re.M)
    assert re.search(r"^STOPSIGNAL\s+SIGTERM", runtime, flags=re.M)
    # The runtime stage installs no packages: its libraries are the binaries' closure,
    # and the build of the stage checks that every binary finds them and runs.
    assert "apt-get" not in runtime
    assert "deploy/runtime_libs.sh" in build
    assert 'grep "not found"' in runtime and "m3serve-server --help" in runtime
    assert "ctest --output-on-failure -LE integration" in build, "the build stage runs the unit tests"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "build/" in ignored and ".git" in ignored
