#!/usr/bin/env bash
# The run command: install dependencies, build, then run m3serve on its
# embedded default: a generated sample dataset (real M3IT and M3IT-80 file
# layouts) ingested into a local RocksDB store, whose catalog is printed.
#   DEMO_DIR (default .m3serve-demo)   SCALE (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
DEMO_DIR=${DEMO_DIR:-.m3serve-demo}
ADMIN=build/bin/m3serve-admin
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
echo "== sample: writing a synthetic M3IT / M3IT-80 tree to $DEMO_DIR/sample"
"$ADMIN" sample --out "$DEMO_DIR/sample" --scale "${SCALE:-1}"
echo "== ingest: $DEMO_DIR/sample -> $DEMO_DIR/store"
"$ADMIN" ingest --db "$DEMO_DIR/store" "$DEMO_DIR/sample/M3IT" "$DEMO_DIR/sample/M3IT-80"
echo "== verify"
"$ADMIN" verify --db "$DEMO_DIR/store"
echo "== stats"
"$ADMIN" stats --db "$DEMO_DIR/store"
