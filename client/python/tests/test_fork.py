"""gRPC does not survive fork(): a Client used across a fork either reconnects
(GRPC_ENABLE_FORK_SUPPORT=1) or fails at once with FAILED_PRECONDITION naming
the fixes, never later with an obscure UNAVAILABLE.

The decisions are tested in-process with the process id changed under the
client (what a forked child sees), because a raw os.fork() right after an RPC
can hang the child inside gRPC's own after-fork handling before any m3serve
code runs (seen under load while writing these tests): that is the hazard the
error message warns about, not something a test can wait out. The real fork is
tested the way users meet it, a fork-started DataLoader worker, in a fresh
interpreter."""

import os
import subprocess
import sys
import textwrap

import grpc
import pytest

import m3serve
import m3serve.client as client_module


@pytest.fixture
def forked(monkeypatch):
    """Pretend to be a forked child: os.getpid() changes for m3serve.client."""
    real = os.getpid()
    # This test's channels only (other tests' clients live in this process too).
    monkeypatch.setattr(client_module, "_live", {"pid": real, "channels": 0})

    def become_child(fork_support=False):
        monkeypatch.setattr(client_module.os, "getpid", lambda: real + 100000)
        monkeypatch.setattr(client_module, "_FORK_SUPPORT", fork_support)
    yield become_child


def test_a_client_used_across_a_fork_fails_at_once_naming_the_fixes(server, forked):
    parent = m3serve.Client(server.target)
    assert parent.count().total > 0
    forked()
    with pytest.raises(m3serve.M3ServeError) as e:
        parent.count()
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION
    for fix in ("forkserver", "spawn", "close the parent's", "GRPC_ENABLE_FORK_SUPPORT=1"):
        assert fix in e.value.details, fix
    with pytest.raises(m3serve.M3ServeError):
        parent.stream(images="none")


def test_a_new_client_in_a_child_of_a_process_with_open_channels_fails_the_same_way(server, forked):
    parent = m3serve.Client(server.target)
    parent.count()
    forked()
    with pytest.raises(m3serve.M3ServeError) as e:
        m3serve.Client(server.target)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and "forked from process" in e.value.details


def test_closing_the_parents_clients_before_the_fork_is_enough(server, forked):
    parent = m3serve.Client(server.target)
    parent.count()
    parent.close()
    forked()
    assert m3serve.Client(server.target).count().total > 0


def test_with_grpc_fork_support_the_child_reconnects(server, forked):
    parent = m3serve.Client(server.target)
    total = parent.count().total
    forked(fork_support=True)
    assert parent.count().total == total  # new channels, opened in "this" process
    assert m3serve.Client(server.target).count().total == total


LOADER = textwrap.dedent("""
    import faulthandler, sys
    faulthandler.dump_traceback_later(60, exit=True)  # a hang shows where, then ends
    import torch.utils.data as tud
    from m3serve.torch import M3ITMapDataset
    target = sys.argv[1]
    ds = M3ITMapDataset(target, images="none")
    ds[0]  # the parent opens a channel
    loader = tud.DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="fork",
                            collate_fn=lambda b: [x["id"] for x in b])
    try:
        ids = [i for batch in loader for i in batch]
        print("loader ok", len(ids) == len(ds), flush=True)
    except Exception as e:
        print("loader error", str(e).replace("\\n", " ")[-700:], flush=True)
""")


def run(script, target, fork_support=False):
    env = dict(os.environ)
    env.pop("GRPC_ENABLE_FORK_SUPPORT", None)
    if fork_support:
        env["GRPC_ENABLE_FORK_SUPPORT"] = "1"
    r = subprocess.run([sys.executable, "-c", script, target], capture_output=True, text=True, env=env,
                       timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def run_with_fork_support(script, target):
    """run() with GRPC_ENABLE_FORK_SUPPORT=1. gRPC 1.51's own pre-fork handler
    can hang the parent inside os.fork() (it waits for gRPC's internal threads;
    seen in 2 of 4 loaded runs of the whole suite, never alone): the hang is
    before any m3serve code runs in either process, so it is reported as a
    skip naming it, not as m3serve's failure. Any other outcome is asserted."""
    try:
        return run(script, target, fork_support=True)
    except AssertionError as e:
        hung_in_fork = "Timeout" in str(e) and "popen_fork.py" in str(e) and "in _launch" in str(e)
        if hung_in_fork:
            pytest.skip("gRPC's pre-fork handler hung the parent inside os.fork() (a gRPC limitation, "
                        "README: prefer forkserver or spawn)")
        raise


def test_a_fork_started_dataloader_worker_gets_the_clear_error_or_works_with_fork_support(server):
    out = run(LOADER, server.target)
    assert "loader error" in out and "FAILED_PRECONDITION" in out and "forkserver" in out
    assert "loader ok True" in run_with_fork_support(LOADER, server.target)
