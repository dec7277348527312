"""Build step of the m3serve Python package (pyproject.toml holds the metadata).

Two things are made at build time, never committed:
- m3serve/v1/dataset_pb2.py and dataset_pb2_grpc.py, generated from
  proto/m3serve/v1/dataset.proto with protoc and grpc_python_plugin (Debian:
  protobuf-compiler, protobuf-compiler-grpc; python3-grpc-tools 1.14 is too old
  for the proto3 `optional` fields the API uses);
- m3serve/_version.py, the version of the project (CMakeLists.txt).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def project_root() -> Path:
    root = Path(os.environ.get("M3SERVE_SOURCE_DIR", HERE.parent.parent))
    if not (root / "proto" / "m3serve" / "v1" / "dataset.proto").is_file():
        raise SystemExit(f"m3serve: no proto/m3serve/v1/dataset.proto under {root}: build the package from an "
                         "m3serve checkout (pip install ./client/python), or set M3SERVE_SOURCE_DIR to one")
    return root


def project_version() -> str:
    text = (project_root() / "CMakeLists.txt").read_text()
    m = re.search(r"project\(\s*m3serve\s+VERSION\s+([0-9][0-9.]*)", text)
    if not m:
        raise SystemExit("m3serve: no `project(m3serve VERSION x.y.z)` in CMakeLists.txt")
    return m.group(1)


class BuildWithStubs(build_py):
    """build_py, then the generated stubs and version file into the build tree."""

    def run(self):
        super().run()
        protoc = shutil.which("protoc")
        plugin = shutil.which("grpc_python_plugin")
        missing = [name for name, path in (("protoc (Debian package protobuf-compiler)", protoc),
                                           ("grpc_python_plugin (Debian package protobuf-compiler-grpc)", plugin))
                   if path is None]
        if missing:
            raise SystemExit("m3serve: generating the gRPC stubs needs " + " and ".join(missing) +
                             ": apt-get install protobuf-compiler protobuf-compiler-grpc")
        root = project_root()
        out = Path(self.build_lib)
        (out / "m3serve" / "v1").mkdir(parents=True, exist_ok=True)
        subprocess.run([protoc, "-I", str(root / "proto"), f"--python_out={out}", f"--grpc_python_out={out}",
                        f"--plugin=protoc-gen-grpc_python={plugin}",
                        str(root / "proto" / "m3serve" / "v1" / "dataset.proto")], check=True)
        (out / "m3serve" / "v1" / "__init__.py").write_text("")
        (out / "m3serve" / "_version.py").write_text(f'__version__ = "{project_version()}"\n')


setup(version=project_version(), cmdclass={"build_py": BuildWithStubs})
