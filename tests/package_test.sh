#!/usr/bin/env bash
# The C++ client as a user's project gets it: `cmake --install` of this build into a
# temporary prefix, an outside project (tests/package) configured with
# find_package(m3serve CONFIG) and built against that prefix alone, then run against a
# real server on a sample store: it must stream every instance of the catalog.
#   tests/package_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=$1
SOURCE=$2
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill -TERM "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
test -f "$WORK/prefix/lib/cmake/m3serve/m3serveConfig.cmake"
test -f "$WORK/prefix/include/m3serve/client/dataset_client.h"
test -f "$WORK/prefix/include/m3serve/m3serve/v1/dataset.grpc.pb.h"

# The consumer is built the way the installed libraries were: same compiler, and the
# sanitizer runtime when they are instrumented (the sanitizer job's build).
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
FLAGS=""
if [ "$(cache M3SERVE_SANITIZE)" = "ON" ]; then FLAGS="-fsanitize=address,undefined"; fi
cmake -S "$SOURCE/tests/package" -B "$WORK/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$WORK/prefix" \
  -DCMAKE_CXX_COMPILER="$(cache CMAKE_CXX_COMPILER)" -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="$FLAGS" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$WORK/consumer" >/dev/null

"$BUILD/bin/m3serve-admin" sample --out "$WORK/sample" --scale 1 >/dev/null
"$BUILD/bin/m3serve-admin" ingest --db "$WORK/store" --progress none "$WORK/sample/M3IT" "$WORK/sample/M3IT-80" >/dev/null
"$BUILD/bin/m3serve-server" --db "$WORK/store" --listen 127.0.0.1:0 --metrics-listen "" \
  --ready-file "$WORK/ready.json" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 200); do [ -f "$WORK/ready.json" ] && break; sleep 0.05; done
if [ ! -f "$WORK/ready.json" ]; then cat "$WORK/server.log"; exit 1; fi
PORT=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['port'])" "$WORK/ready.json")

OUT=$("$WORK/consumer/consumer" "127.0.0.1:$PORT")
echo "$OUT"
read -r _ catalog _ streamed <<<"$OUT"
if [ "$catalog" -eq 0 ] || [ "$catalog" != "$streamed" ]; then
  echo "package_test: the outside project streamed $streamed of $catalog instances" >&2
  exit 1
fi
echo "package_test: OK"
