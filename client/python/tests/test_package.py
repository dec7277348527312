"""The Python client as users install it: a wheel built offline (build
dependencies from Debian, no index), installed into a fresh virtual environment
(`python3 -m venv --system-site-packages`), imported there without PYTHONPATH
and used as the README shows, against a real server."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SOURCE = Path(os.environ.get("M3SERVE_SOURCE_DIR", Path(__file__).resolve().parents[3]))
EXAMPLES = SOURCE / "client" / "python" / "examples"


def sh(*args, env=None, cwd=None, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    if check:
        assert r.returncode == 0, f"{args}:\n{r.stdout}\n{r.stderr}"
    return r


def clean_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # A copy of the package sources, so the build leaves nothing in the checkout;
    # the stubs come from the checkout's proto/ (M3SERVE_SOURCE_DIR).
    work = tmp_path_factory.mktemp("package")
    shutil.copytree(SOURCE / "client" / "python", work / "python",
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "tests"))
    env = dict(clean_env(), M3SERVE_SOURCE_DIR=str(SOURCE))
    sh("/usr/bin/python3", "-m", "pip", "wheel", "--no-build-isolation", "--no-index", "--no-deps",
       "-w", work / "dist", work / "python", env=env)
    wheels = list((work / "dist").glob("m3serve-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    root = tmp_path_factory.mktemp("venv") / "env"
    sh("/usr/bin/python3", "-m", "venv", "--system-site-packages", root)
    sh(root / "bin" / "python", "-m", "pip", "install", "--no-index", wheel, env=clean_env())
    return root


def test_the_wheel_holds_the_package_its_stubs_and_py_typed(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("m3serve/__init__.py", "m3serve/client.py", "m3serve/torch.py", "m3serve/py.typed",
              "m3serve/_version.py", "m3serve/v1/dataset_pb2.py", "m3serve/v1/dataset_pb2_grpc.py"):
        assert f in names, f
    version = (SOURCE / "CMakeLists.txt").read_text().split("project(m3serve VERSION ")[1].split()[0]
    assert wheel.name.startswith(f"m3serve-{version}-py3-none-any")


def test_installed_in_a_fresh_venv_it_imports_without_pythonpath(venv, tmp_path):
    r = sh(venv / "bin" / "python", "-c",
           "import m3serve, m3serve.torch, os; print(m3serve.__version__, os.path.dirname(m3serve.__file__))",
           env=clean_env(), cwd=tmp_path)
    version, where = r.stdout.split()
    assert Path(where).is_relative_to(venv), where
    assert version == (SOURCE / "CMakeLists.txt").read_text().split("project(m3serve VERSION ")[1].split()[0]


def test_the_readme_snippets_run_in_the_venv(venv, server, tmp_path):
    env = clean_env()
    r = sh(venv / "bin" / "python", "-c",
           f"import m3serve; print(m3serve.Client('{server.target}').count(tasks=['vqa-v2'])['total'])",
           env=env, cwd=tmp_path)
    assert int(r.stdout) > 0
    r = sh(venv / "bin" / "python", EXAMPLES / "train.py", "--target", server.target, "--steps", "6",
           "--checkpoint", tmp_path / "ckpt.pt", env=env, cwd=tmp_path)
    assert "resumed" in r.stdout and "epoch 0 done" in r.stdout
    # The README's torchrun command, with the environment's interpreter: two ranks.
    r = sh(venv / "bin" / "python", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--redirects", "2", "--tee", "1", EXAMPLES / "ddp_train.py", "--target", server.target,
           "--checkpoint", tmp_path / "ddp.pt", env=env, cwd=tmp_path)
    assert (tmp_path / "ddp.pt").exists(), r.stdout + r.stderr


def test_building_without_the_stub_generator_names_the_debian_packages(tmp_path):
    # A PATH without protoc and grpc_python_plugin.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to("/usr/bin/python3")
    env = dict(clean_env(), PATH=str(bindir), M3SERVE_SOURCE_DIR=str(SOURCE))
    shutil.copytree(SOURCE / "client" / "python", tmp_path / "python",
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "tests"))
    r = sh("/usr/bin/python3", "-m", "pip", "wheel", "--no-build-isolation", "--no-index", "--no-deps",
           "-w", tmp_path / "dist", tmp_path / "python", env=env, check=False)
    assert r.returncode != 0
    assert "protobuf-compiler-grpc" in r.stdout + r.stderr and "protoc" in r.stdout + r.stderr


def test_cmake_install_puts_the_package_where_the_prefix_imports_from(tmp_path):
    build = Path(os.environ["M3SERVE_BIN_DIR"]).resolve().parent
    root = tmp_path / "env"
    sh("/usr/bin/python3", "-m", "venv", "--system-site-packages", root)
    sh("cmake", "--install", build, "--prefix", root)
    r = sh(root / "bin" / "python", "-c", "import m3serve, os; print(os.path.dirname(m3serve.__file__))",
           env=clean_env(), cwd=tmp_path)
    assert Path(r.stdout.strip()).is_relative_to(root), r.stdout
    # Any other prefix: PREFIX/lib/python3.X/site-packages, for PYTHONPATH.
    sh("cmake", "--install", build, "--prefix", tmp_path / "other")
    assert list((tmp_path / "other" / "lib").glob("python3.*/site-packages/m3serve/v1/dataset_pb2.py"))
