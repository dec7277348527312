#!/usr/bin/env bash
# Configure and build m3serve into build/ (binaries in build/bin/).
#   BUILD_TYPE=Release|RelWithDebInfo|Debug (default RelWithDebInfo)
#   BUILD_DIR (default build)   JOBS (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
