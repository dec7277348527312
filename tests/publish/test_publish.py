"""Versioned stores with real processes: m3serve-admin publish / gc /
wait-store and m3serve-server on a publish root. A stream in flight across a
publish finishes; a server whose store vanishes reports NOT_SERVING; bad input
is refused with nothing deleted."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from m3serve import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))
from m3serve_testlib import BIN, admin, run, wait_for  # noqa: E402
from m3serve_testlib import Server as _Server  # noqa: E402


def Server(db, workdir, *extra):
    """A server that checks its store every second."""
    return _Server(db, workdir, "--store-check-seconds", "1", *extra)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    admin("sample", "--out", root / "sample", "--scale", "2")
    return root / "sample"


def versions(root):
    return sorted(p.name for p in (root / "versions").iterdir() if not p.name.startswith("."))


def test_a_stream_in_flight_survives_a_publish(sample, tmp_path):
    work, root = tmp_path / "work", tmp_path / "published"
    admin("ingest", "--db", work, "--progress", "none", sample / "M3IT")
    first = json.loads(admin("publish", "--db", work, "--root", root, "--json").stdout)
    assert first["written"] and (root / "CURRENT_VERSION").read_text().strip() == first["version"]
    # A server starts on the root: it serves version 1 and holds a lease on it.
    old = Server(root, tmp_path / "old")
    try:
        assert len(list((root / "leases").iterdir())) == 1
        client = Client(old.target)
        total = client.count().total
        stream = client.stream(batch_size=2, images="encoded")
        ids = [x.id for x in next(stream).instances]
        # Version 2 (M3IT-80 added) is published with no spare versions kept:
        # version 1 stays, because a running server holds it.
        admin("ingest", "--db", work, "--progress", "none", sample / "M3IT", sample / "M3IT-80")
        second = json.loads(admin("publish", "--db", work, "--root", root, "--keep", "0", "--json").stdout)
        assert second["version"] != first["version"] and second["previous"] == first["version"]
        assert any(first["version"] in k and "in use" in k for k in second["kept"]), second
        assert versions(root) == sorted([first["version"], second["version"]])
        # The stream in flight finishes, every instance of version 1 read from its files.
        for batch in stream:
            for x in batch.instances:
                assert x.images and all(len(i.data) > 0 for i in x.images)
                ids.append(x.id)
        assert len(ids) == len(set(ids)) == total
        # The old server notices the new version, keeps serving its own.
        assert wait_for(lambda: old.metric("m3serve_store_outdated") == 1.0)
        assert client.count().total == total
        # A new server opens version 2.
        new = Server(root, tmp_path / "new")
        try:
            assert Client(new.target).count().total > total
            assert Client(new.target).catalog().dataset_version == second["version"]
            # The old server stops: its lease goes, and so does version 1 at the next clean-up.
            assert old.stop() == 0
            report = json.loads(admin("gc", "--root", root, "--keep", "0", "--json").stdout)
            assert report["removed"] == [first["version"]]
            assert versions(root) == [second["version"]]
            assert new.health() == 1
        finally:
            new.stop()
    finally:
        old.stop()
    # stats and verify read a publish root's current version.
    stats = json.loads(admin("stats", "--db", root, "--json").stdout)
    assert stats["fingerprint"] == second["version"]


def test_a_vanished_store_fails_the_probe(sample, tmp_path):
    work, root = tmp_path / "work", tmp_path / "published"
    admin("ingest", "--db", work, "--progress", "none", sample / "M3IT")
    v = json.loads(admin("publish", "--db", work, "--root", root, "--json").stdout)["version"]
    s = Server(root, tmp_path / "s")
    try:
        assert s.health() == 1 and s.metric("m3serve_store_ok") == 1.0
        shutil.rmtree(root / "versions" / v)  # someone deletes the data under a running server
        assert wait_for(lambda: s.health() == 2, timeout=15), s.log.read_text()
        assert s.metric("m3serve_store_ok") == 0.0
        assert "no longer whole" in s.log.read_text()
    finally:
        s.stop()


def test_wait_store_waits_for_the_first_publish(sample, tmp_path):
    work, root = tmp_path / "work", tmp_path / "published"
    root.mkdir()
    waiter = subprocess.Popen([str(BIN / "m3serve-admin"), "wait-store", "--db", str(root), "--timeout", "120",
                               "--interval", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)
    assert waiter.poll() is None  # still waiting: nothing published
    admin("ingest", "--db", work, "--progress", "none", sample / "M3IT")
    admin("publish", "--db", work, "--root", root)
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0 and "store ready" in out
    # Without a store the server itself says what is missing and exits 1 (the
    # init container is what waits).
    r = run(BIN / "m3serve-server", "--db", tmp_path / "empty-root-does-not-exist", "--listen", "127.0.0.1:0",
            "--http-listen", "", check=False)
    assert r.returncode == 1 and "no m3serve store" in r.stderr
    # A timeout is an error naming what is missing.
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "versions").mkdir()
    r = admin("wait-store", "--db", tmp_path / "nothing", "--timeout", "1", "--interval", "1", check=False)
    assert r.returncode == 1 and "no published version" in r.stderr


def test_bad_input_is_refused_and_nothing_deleted(sample, tmp_path):
    work, root = tmp_path / "work", tmp_path / "published"
    admin("ingest", "--db", work, "--progress", "none", sample / "M3IT")
    # A publish into a folder that holds a store (of another dataset, or this one).
    other = tmp_path / "other-store"
    admin("ingest", "--db", other, "--progress", "none", sample / "M3IT-80")
    before = sorted(p.name for p in other.iterdir())
    r = admin("publish", "--db", work, "--root", other, check=False)
    assert r.returncode == 1 and "holds a store itself" in r.stderr
    assert sorted(p.name for p in other.iterdir()) == before
    assert admin("verify", "--db", other).returncode == 0
    # A pointer to a missing version.
    v = json.loads(admin("publish", "--db", work, "--root", root, "--json").stdout)["version"]
    (root / "versions" / v).rename(tmp_path / "aside")
    r = run(BIN / "m3serve-server", "--db", root, "--listen", "127.0.0.1:0", "--http-listen", "", check=False)
    assert r.returncode == 1 and "is missing" in r.stderr
    # A store whose version differs from the pointer.
    wrong = "0" * 32
    (tmp_path / "aside").rename(root / "versions" / wrong)
    (root / "CURRENT_VERSION").write_text(wrong + "\n")
    r = run(BIN / "m3serve-server", "--db", root, "--listen", "127.0.0.1:0", "--http-listen", "", check=False)
    assert r.returncode == 1 and f"not the {wrong} its pointer names" in r.stderr
    r = admin("wait-store", "--db", root, "--timeout", "5", check=False)
    assert r.returncode == 1 and "its pointer names" in r.stderr
    assert (root / "versions" / wrong).is_dir()  # nothing deleted
