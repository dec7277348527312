#!/usr/bin/env bash
# The test command: install dependencies, build, run every test with ctest.
# Exits non-zero when any test fails. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900
