"""gRPC does not survive fork(): a Client used across a fork either reconnects
(GRPC_ENABLE_FORK_SUPPORT=1) or fails at once with FAILED_PRECONDITION naming
the fixes, never later with an obscure UNAVAILABLE. Each case runs in its own
interpreter (forking the pytest process itself would test pytest)."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, sys
    import m3serve
    target, case = sys.argv[1], sys.argv[2]
    parent = m3serve.Client(target, timeout=10)
    total = parent.count().total
    if case == "closed":
        parent.close()
    pid = os.fork()
    if pid == 0:
        try:
            if case == "same":
                n = parent.count().total
            else:
                n = m3serve.Client(target, timeout=10).count().total
            print("child ok", n == total, flush=True)
        except m3serve.M3ServeError as e:
            print("child error", e.code.name, e.details, flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    if case != "closed":
        assert parent.count().total == total  # the parent's channel still works
    print("parent ok", flush=True)
""")

LOADER = textwrap.dedent("""
    import sys
    import torch.utils.data as tud
    import m3serve
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


def run(script, target, *args, fork_support=False):
    env = dict(os.environ)
    env.pop("GRPC_ENABLE_FORK_SUPPORT", None)
    if fork_support:
        env["GRPC_ENABLE_FORK_SUPPORT"] = "1"
    r = subprocess.run([sys.executable, "-c", script, target, *args], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_client_used_across_a_fork_fails_at_once_naming_the_fixes(server):
    out = run(SCRIPT, server.target, "same")
    assert "child error FAILED_PRECONDITION" in out
    assert "forkserver" in out and "GRPC_ENABLE_FORK_SUPPORT=1" in out and "close the parent's" in out
    assert "parent ok" in out


def test_a_new_client_in_a_child_of_a_process_with_open_channels_fails_the_same_way(server):
    out = run(SCRIPT, server.target, "new")
    assert "child error FAILED_PRECONDITION" in out and "forked from process" in out


def test_closing_the_parents_client_before_the_fork_is_enough(server):
    assert "child ok True" in run(SCRIPT, server.target, "closed")


@pytest.mark.parametrize("case", ["same", "new"])
def test_with_grpc_fork_support_the_child_reconnects(server, case):
    out = run(SCRIPT, server.target, case, fork_support=True)
    assert "child ok True" in out and "parent ok" in out


def test_a_fork_started_dataloader_worker_gets_the_clear_error_or_works_with_fork_support(server):
    out = run(LOADER, server.target)
    assert "loader error" in out and "FAILED_PRECONDITION" in out and "forkserver" in out
    assert "loader ok True" in run(LOADER, server.target, fork_support=True)
