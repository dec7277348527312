#!/usr/bin/env bash
# The sanitizer job: build everything with clang under AddressSanitizer +
# UndefinedBehaviorSanitizer (+ libFuzzer coverage) into build-sanitize/, run
# the whole test suite there (the benchmark excepted), then each fuzz target
# for FUZZ_SECONDS. Every process the tests start (servers, admin tools,
# clients) is instrumented and writes any sanitizer report to
# build-sanitize/sanitizer-logs/; the job fails when a test fails or when any
# report was written, even by a process whose exit code no test checks.
#   SANITIZE_BUILD_DIR (default build-sanitize)   FUZZ_SECONDS (default 30)
#   JOBS (default: number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${SANITIZE_BUILD_DIR:-build-sanitize}
fuzz_seconds=${FUZZ_SECONDS:-30}

CC=clang CXX=clang++ BUILD_DIR="$build" BUILD_TYPE=RelWithDebInfo \
  CMAKE_ARGS="-DM3SERVE_SANITIZE=ON -DM3SERVE_FUZZ=ON -DM3SERVE_FUZZ_SECONDS=$fuzz_seconds" \
  ./scripts/build.sh

logs="$root/$build/sanitizer-logs"
rm -rf "$logs" "$root/$build/fuzz-artifacts"
mkdir -p "$logs" "$root/$build/fuzz-artifacts"
export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"

status=0
(cd "$build" && ctest --output-on-failure --timeout 1800 -LE 'bench|fuzz') || status=1
(cd "$build" && ctest --output-on-failure -L fuzz) || status=1

shopt -s nullglob
reports=("$logs"/*)
if ((${#reports[@]})); then
  echo "sanitize: ${#reports[@]} sanitizer report(s):" >&2
  for r in "${reports[@]}"; do
    echo "==== $r" >&2
    head -c 20000 "$r" >&2
  done
  status=1
fi
artifacts=("$root/$build/fuzz-artifacts"/*)
if ((${#artifacts[@]})); then
  echo "sanitize: fuzz inputs that fail (replay with $build/fuzz/<target> FILE):" >&2
  printf '  %s\n' "${artifacts[@]}" >&2
  status=1
fi
if ((status == 0)); then echo "sanitize: all tests and fuzz runs passed, no sanitizer reports"; fi
exit $status
