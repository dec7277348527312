#!/usr/bin/env bash
# The container image, built and run as a user would (called by scripts/test.sh):
#   1. a Docker daemon: Debian's docker.io; started here when none answers;
#   2. the base images debian:bookworm and debian:bookworm-slim, made with
#      debootstrap from this machine's Debian mirror when missing (no registry
#      is reachable);
#   3. docker build of the Dockerfile (its runtime stage checks that every
#      binary loads and runs);
#   4. in containers, as uid 10001: sample, ingest and publish into host
#      folders, the server on the published store mounted read-only with a
#      read-only root filesystem, a stream and the health service from the
#      host's client, /metrics and the dataset browser's API, a republish while
#      the server runs (the version it serves stays), SIGTERM drain exit 0;
#   5. every container of the rendered Kubernetes manifests (tests/image/
#      run_k8s_specs.py): its args, user, read-only root, capabilities, env,
#      mounts, and probes, in Docker.
# Prints the image size.   M3SERVE_IMAGE (default m3serve:0.1.0)   BUILD_DIR (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
image=${M3SERVE_IMAGE:-m3serve:0.1.0}
bin=$root/${BUILD_DIR:-build}/bin
work=$(mktemp -d /tmp/m3serve-image.XXXXXX)
chmod 755 "$work"
say() { echo "== test-image: $*"; }
fail() { echo "test-image: FAILED: $*" >&2; exit 1; }
cleanup() {
  docker rm -f m3serve-image-server >/dev/null 2>&1 || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

# --- 1. the Docker daemon --------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || fail "no Docker daemon and no dockerd (scripts/install-deps.sh installs docker.io)"
  say "starting dockerd (log: /tmp/m3serve-dockerd.log)"
  nohup dockerd >/tmp/m3serve-dockerd.log 2>&1 &
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -30 /tmp/m3serve-dockerd.log >&2; fail "dockerd did not come up"; }
fi

# --- 2. base images -----------------------------------------------------------------
# The first Debian mirror apt is configured with (deb822 or one-line sources).
mirror() {
  local m
  m=$( (grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}';
        grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}') |
       grep -v -- '-security' | grep -E '/debian/?$' | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}
if ! docker image inspect debian:bookworm >/dev/null 2>&1 || ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || fail "debootstrap is missing (scripts/install-deps.sh installs it)"
  m=$(mirror)
  say "making debian:bookworm and debian:bookworm-slim with debootstrap from $m"
  rootfs=$work/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" "$m" >"$work/debootstrap.log" 2>&1 ||
    { tail -30 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  security=${m%/debian*}/debian-security
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' "$m" "$m" "$security" \
    >"$rootfs/etc/apt/sources.list"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - debian:bookworm >/dev/null
  # slim: the same without documentation, manuals and locales (as Debian's slim images)
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  rm -rf "$rootfs"
fi

# --- 3. build ---------------------------------------------------------------------
say "docker build -t $image . (log: $work/build.log)"
start=$(date +%s)
docker build --network host -t "$image" . >"$work/build.log" 2>&1 || { tail -60 "$work/build.log" >&2; fail "docker build"; }
size=$(docker image inspect -f '{{.Size}}' "$image")
say "built in $(( $(date +%s) - start )) s; image size $(( size / 1000000 )) MB"

# --- 4. run it as a user would ------------------------------------------------------
# Host folders the container user (10001) writes to must be its own: a folder
# that Docker creates for a bind mount belongs to root (docs/operations.md).
install -d -o 10001 -g 10001 "$work/src" "$work/work" "$work/published"
admin() { docker run --rm --network none --user 10001:10001 --read-only --cap-drop ALL \
            --security-opt no-new-privileges -v "$work/src:/src" -v "$work/work:/work" -v "$work/published:/published" \
            --entrypoint m3serve-admin "$image" "$@"; }
say "sample, ingest (M3IT), publish in containers"
admin sample --out /src/sample >/dev/null
admin ingest --db /work/store --progress none /src/sample/M3IT >/dev/null
admin publish --db /work/store --root /published --keep 0 | tee "$work/publish1.txt"
v1=$(cat "$work/published/CURRENT_VERSION")

say "serve: the publish root read-only, leases writable, read-only root filesystem"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hport=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
docker run -d --name m3serve-image-server --network host --user 10001:10001 --read-only --cap-drop ALL \
  --security-opt no-new-privileges --stop-timeout 30 \
  -v "$work/published:/data:ro" -v "$work/published/leases:/data/leases" \
  "$image" --db /data --listen "127.0.0.1:$port" --http-listen "127.0.0.1:$hport" --store-check-seconds 1 >/dev/null
T="--target 127.0.0.1:$port"
for _ in $(seq 100); do "$bin/m3serve-client" catalog $T >/dev/null 2>&1 && break; sleep 0.2; done
"$bin/m3serve-client" catalog $T >/dev/null || { docker logs m3serve-image-server >&2; fail "the server in the container does not answer"; }
total=$("$bin/m3serve-client" count $T --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
streamed=$("$bin/m3serve-client" stream $T --images decoded --width 64 --height 64 --batch-size 16 --json |
           /usr/bin/python3 -c 'import json,sys; print(sum(1 for l in sys.stdin if l.strip() and "id" in json.loads(l)))')
[ "$streamed" = "$total" ] || fail "streamed $streamed of $total instances"
/usr/bin/python3 - "$port" "$hport" <<'PY' || fail "health / metrics / browser API"
import json, sys, urllib.request
import grpc
port, hport = sys.argv[1], sys.argv[2]
with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
    check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda _: b"", response_deserializer=lambda b: b)
    assert check(None, timeout=5)[1] == 1, "health: not SERVING"
metrics = urllib.request.urlopen(f"http://127.0.0.1:{hport}/metrics", timeout=5).read().decode()
assert "m3serve_streams_total 1" in metrics and "m3serve_store_ok 1" in metrics, metrics[:500]
page = json.load(urllib.request.urlopen(f"http://127.0.0.1:{hport}/api/instances?page_size=3", timeout=5))
assert len(page["instances"]) == 3
print("health SERVING, /metrics and /api answer")
PY
say "republish (M3IT-80 added) while the server runs: its version stays"
admin ingest --db /work/store --progress none /src/sample/M3IT /src/sample/M3IT-80 >/dev/null
admin publish --db /work/store --root /published --keep 0 | tee "$work/publish2.txt"
grep -q "kept: $v1 (in use by" "$work/publish2.txt" || fail "the served version was not kept"
[ -d "$work/published/versions/$v1" ] || fail "the served version was removed"
again=$("$bin/m3serve-client" stream $T --images encoded --batch-size 16 --json |
        /usr/bin/python3 -c 'import json,sys; print(sum(1 for l in sys.stdin if l.strip() and "id" in json.loads(l)))')
[ "$again" = "$total" ] || fail "after the republish the server streamed $again of $total"
say "SIGTERM: drain, exit 0"
docker stop -t 30 m3serve-image-server >/dev/null
code=$(docker inspect -f '{{.State.ExitCode}}' m3serve-image-server)
docker logs m3serve-image-server 2>&1 | grep -q "drained; exiting" || fail "no drain in the server's log"
[ "$code" = "0" ] || { docker logs m3serve-image-server >&2; fail "the server exited $code after SIGTERM"; }
docker rm m3serve-image-server >/dev/null

# --- 5. the rendered Kubernetes containers, in Docker ----------------------------------
say "Kubernetes container specs in Docker"
if kubectl kustomize deploy/k8s/overlays/dev >/dev/null 2>&1; then
  /usr/bin/python3 tests/image/run_k8s_specs.py --image "$image" --work "$work/k8s"
else
  echo "test-image: SKIPPED the Kubernetes container specs: no kubectl here renders the overlays (kustomize v4+ needed)"
fi
say "passed (image $image, $(( size / 1000000 )) MB)"
