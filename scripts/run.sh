#!/usr/bin/env bash
# The run command: install dependencies, build, then run m3serve end to end on
# its embedded default: a generated sample dataset (real M3IT and M3IT-80 file
# layouts) ingested into a local RocksDB store, served by m3serve-server on
# 127.0.0.1, and streamed with m3serve-client.
#   DEMO_DIR (default .m3serve-demo)   SCALE (default 1)   PORT (default 50051)
#   HTTP_PORT (default 0: any free port): the dataset browser and /metrics
#   KEEP_SERVING=1: leave the server running at the end (browse the data; Ctrl-C stops it)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
DEMO_DIR=${DEMO_DIR:-.m3serve-demo}
PORT=${PORT:-50051}
BIN=build/bin
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"

echo "== sample: a synthetic M3IT / M3IT-80 tree in $DEMO_DIR/sample"
"$BIN/m3serve-admin" sample --out "$DEMO_DIR/sample" --scale "${SCALE:-1}"
echo "== ingest into $DEMO_DIR/store"
"$BIN/m3serve-admin" ingest --db "$DEMO_DIR/store" "$DEMO_DIR/sample/M3IT" "$DEMO_DIR/sample/M3IT-80"
"$BIN/m3serve-admin" verify --db "$DEMO_DIR/store"

echo "== serve on 127.0.0.1:$PORT"
"$BIN/m3serve-server" --db "$DEMO_DIR/store" --listen "127.0.0.1:$PORT" --http-listen "127.0.0.1:${HTTP_PORT:-0}" \
  --ready-file "$DEMO_DIR/ready.json" >"$DEMO_DIR/server.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -f "$DEMO_DIR/ready.json" ] && break; sleep 0.1; done
if [ ! -f "$DEMO_DIR/ready.json" ]; then cat "$DEMO_DIR/server.log"; exit 1; fi
T="--target 127.0.0.1:$PORT"
HTTP="http://127.0.0.1:$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_port"])' "$DEMO_DIR/ready.json")"

echo "== catalog"
"$BIN/m3serve-client" catalog $T
echo "== count: VQA in Chinese and French"
"$BIN/m3serve-client" count $T --tasks vqa-v2 --languages zh,fr
echo "== stream: Chinese and French VQA training instances, shard 1 of 2, shuffled (seed 17, epoch 2),"
echo "   images decoded and resized to 224x224; images and texts written to $DEMO_DIR/stream"
"$BIN/m3serve-client" stream $T --tasks vqa-v2 --languages zh,fr --splits train \
  --shard-index 1 --shard-count 2 --shuffle --seed 17 --epoch 2 \
  --images decoded --width 224 --height 224 --resize fill --batch-size 4 --dump "$DEMO_DIR/stream"
echo "== bench: every instance, decoded 224x224"
"$BIN/m3serve-client" bench $T --images decoded --width 224 --height 224 --resize fill
echo "== the dataset browser's JSON API: French instances, page 1 of the shuffle with seed 17 (the page: $HTTP/)"
/usr/bin/python3 - "$HTTP" <<'PY'
import json, sys, urllib.request
page = json.load(urllib.request.urlopen(sys.argv[1] + "/api/instances?languages=fr&page_size=3&seed=17"))
print(f"{page['total']} French instances; page 1:")
for x in page["instances"]:
    print(f"  {x['id']}: {x['instruction'][:50]!r} -> {x['outputs'][:40]!r} ({len(x['images'])} image(s))")
PY
if [ "${KEEP_SERVING:-0}" = "1" ]; then
  echo "== serving: gRPC 127.0.0.1:$PORT, dataset browser $HTTP/ (Ctrl-C stops the server)"
  wait $SERVER || true
  exit 0
fi
echo "== stop the server (SIGTERM drains, then exits 0)"
kill -TERM $SERVER
wait $SERVER
trap - EXIT
echo "done: store in $DEMO_DIR/store, server log in $DEMO_DIR/server.log"
