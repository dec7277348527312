#!/usr/bin/env bash
# Install m3serve's build and test dependencies from Debian bookworm packages.
# Idempotent: packages already installed are not touched, and apt-get runs only
# when something is missing. Needs root (or sudo).
#   M3SERVE_DEPS=all (default): everything, including python3-torch for the
#                               PyTorch dataset and its tests, and clang for
#                               the sanitizer and fuzzing job
#   M3SERVE_DEPS=build:         what building and the C++ unit tests need (the
#                               container image's build stage)
set -euo pipefail
PROFILE=${M3SERVE_DEPS:-all}

PACKAGES=(
  # toolchain
  g++ cmake ninja-build pkg-config git
  # gRPC / protobuf / abseil
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  # storage
  librocksdb-dev
  # parsing, hashing
  libsimdjson-dev libxxhash-dev
  # images (only the three modules we use, not the full libopencv-dev)
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  # JPEG decode straight to RGB (libjpeg-turbo's libjpeg API; OpenCV uses the same library)
  libjpeg62-turbo-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # metrics; the HTTP listener (/metrics, the dataset browser)
  prometheus-cpp-dev libcivetweb-dev
  # python client stubs
  python3
)
if [ "$PROFILE" = "all" ]; then
  PACKAGES+=(
    # python client, PyTorch dataset, their tests, manifest checks
    python3-grpcio python3-protobuf python3-numpy python3-pytest python3-yaml python3-torch
    # the Python package: wheel built offline and installed into a fresh venv by the tests
    python3-pip python3-setuptools python3-wheel python3-venv
    # benchmark peers (the Python / PIL pipeline a user writes today)
    python3-pil
    # the dataset browser's tests and benchmark: headless Chromium driven by Selenium
    chromium chromium-driver python3-selenium
    # the container image test (scripts/test-image.sh): Docker's daemon, base
    # images made with debootstrap, kubectl for the rendered manifests
    docker.io debootstrap
    # the sanitizer job (scripts/sanitize.sh): clang with libFuzzer and the
    # ASan / UBSan runtimes; openssl makes the TLS tests' certificates
    clang libclang-rt-14-dev openssl
  )
elif [ "$PROFILE" != "build" ]; then
  echo "install-deps: M3SERVE_DEPS must be all or build, got '$PROFILE'" >&2
  exit 2
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root or install sudo" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
