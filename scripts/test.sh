#!/usr/bin/env bash
# The test command: install dependencies, build, run every test with ctest,
# then the container image test (scripts/test-image.sh: the image built and run
# in Docker as a user would, and every rendered Kubernetes container), then the
# sanitizer job (scripts/sanitize.sh: the whole suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer, and a bounded run of every
# fuzz target). Exits non-zero when any test fails. This is what .ci/run calls.
#   M3SERVE_IMAGE_TEST=0     skip the image test
#   M3SERVE_SANITIZE_JOB=0   skip the sanitizer job (a quicker local loop)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure --timeout 900)
if [ "${M3SERVE_IMAGE_TEST:-1}" != "0" ]; then
  ./scripts/test-image.sh
fi
if [ "${M3SERVE_SANITIZE_JOB:-1}" != "0" ]; then
  ./scripts/sanitize.sh
fi
