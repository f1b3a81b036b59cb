#!/usr/bin/env bash
# Failover of a live stream between two livefront nodes (README, "Running several nodes"):
# two release binaries on one PostgreSQL database, nginx in front of both (HTTP for viewers;
# `stream` for RTMP, node B first and node A as backup, as a TCP load balancer would), an
# ffmpeg publisher that reconnects like OBS (RECONNECT_S after a drop) through nginx. Node B
# owns the stream; it is killed with SIGKILL; the script measures, from the kill:
#   - accepted: the publish that node A accepts (its log),
#   - playable: the first media playlist through nginx with a segment of A's session.
#
# Environment (all optional):
#   RUNS=3              kill/measure rounds (each with fresh nodes and database)
#   LEASE_TTL=10s       node.lease_ttl of both nodes (its default)
#   RECONNECT_S=2       the publisher's wait before reconnecting after a drop
#   BENCH_NO_README=1   do not append to bench/README.md
#   KEEP_TMP=1          keep the logs and data of the last run
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-3}
LEASE_TTL=${LEASE_TTL:-10s}
RECONNECT_S=${RECONNECT_S:-2}
BIN=$ROOT/target/release/livefront
[ -x "$BIN" ] || { echo "build it first: cargo build --release --locked" >&2; exit 1; }
for tool in nginx ffmpeg curl python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required (bench/install-deps.sh)" >&2; exit 1; }
done
PGBIN=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -1)")
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL is required (scripts/install-postgres.sh)" >&2; exit 1; }
ADMIN=bench-admin-token-0123456789

WORK=$(mktemp -d /tmp/failover-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -f "$WORK/pg/data/postmaster.pid" ] && kill -INT "$(head -1 "$WORK/pg/data/postmaster.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  sleep 0.5
  if [ -z "${KEEP_TMP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# PostgreSQL refuses to run as root: as root, its files and process belong to `postgres`.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
now() { date +%s.%N; }

start_node() { # name http rtmp database
  local name=$1 http=$2 rtmp=$3 db=$4
  LIVEFRONT_DATA_DIR=$WORK/$name LIVEFRONT_HTTP_ADDR=127.0.0.1:$http LIVEFRONT_RTMP_ADDR=127.0.0.1:$rtmp \
    LIVEFRONT_SRT_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 LIVEFRONT_LADDER=passthrough \
    LIVEFRONT_ADMIN_TOKEN=$ADMIN LIVEFRONT_DATABASE_URL=$db LIVEFRONT_NODE_ID=$name \
    LIVEFRONT_NODE_LEASE_TTL=$LEASE_TTL RUST_LOG=info \
    "$BIN" serve >"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

run() {
  local r=$1
  rm -rf "$WORK/pg" "$WORK/a" "$WORK/b" "$WORK/nginx.pid"
  mkdir -p "$WORK/pg"
  [ "$(id -u)" -eq 0 ] && chown postgres "$WORK/pg"
  local pg http_a http_b rtmp_a rtmp_b edge edge_rtmp
  pg=$(free_port); http_a=$(free_port); http_b=$(free_port); rtmp_a=$(free_port); rtmp_b=$(free_port)
  edge=$(free_port); edge_rtmp=$(free_port)
  as_pg "$PGBIN/initdb" -D "$WORK/pg/data" --auth=trust --username=postgres --no-sync >/dev/null
  as_pg "$PGBIN/postgres" -D "$WORK/pg/data" -c listen_addresses=127.0.0.1 -c port="$pg" \
    -c unix_socket_directories="$WORK/pg" >"$WORK/pg.log" 2>&1 &
  PIDS+=($!)
  local db=postgres://postgres@127.0.0.1:$pg/postgres
  for _ in $(seq 100); do grep -q "ready to accept" "$WORK/pg.log" && break; sleep 0.1; done

  local pid_b
  start_node a "$http_a" "$rtmp_a" "$db"
  for _ in $(seq 100); do grep -q "livefront listening" "$WORK/a.log" && break; sleep 0.2; done
  start_node b "$http_b" "$rtmp_b" "$db"
  pid_b=$LAST_PID
  for _ in $(seq 100); do grep -q "livefront listening" "$WORK/b.log" && break; sleep 0.2; done

  cat >"$WORK/nginx.conf" <<CONF
user $(id -un) $(id -gn);
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events { worker_connections 1024; }
stream {
  upstream ingest { server 127.0.0.1:$rtmp_b max_fails=1 fail_timeout=30s; server 127.0.0.1:$rtmp_a backup; }
  server { listen 127.0.0.1:$edge_rtmp; proxy_pass ingest; proxy_connect_timeout 1s; }
}
http {
  access_log off;
  client_body_temp_path $WORK/body;
  proxy_temp_path $WORK/proxy;
  upstream nodes { server 127.0.0.1:$http_a max_fails=1 fail_timeout=2s; server 127.0.0.1:$http_b max_fails=1 fail_timeout=2s; }
  server {
    listen 127.0.0.1:$edge;
    location / {
      proxy_pass http://nodes;
      proxy_next_upstream error timeout http_502;
      proxy_connect_timeout 1s;
    }
  }
}
CONF
  nginx -c "$WORK/nginx.conf" -p "$WORK"

  local api=http://127.0.0.1:$http_a token stream id key
  token=$(curl -fsS -X POST -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d '{"handle":"bench"}' "$api/api/v1/creators" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  stream=$(curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"title":"failover","mode":"public"}' "$api/api/v1/streams")
  id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$stream")
  key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["stream_key"])' "$stream")

  # A publisher that reconnects like OBS, through nginx's RTMP balancer.
  (
    while true; do
      ffmpeg -hide_banner -loglevel quiet -nostdin -re -f lavfi -i testsrc2=size=640x360:rate=30 \
        -f lavfi -i sine=frequency=440:sample_rate=48000 -t 300 -c:v libx264 -preset veryfast \
        -tune zerolatency -g 60 -keyint_min 60 -sc_threshold 0 -c:a aac -f flv \
        "rtmp://127.0.0.1:$edge_rtmp/live/$key" || true
      sleep "$RECONNECT_S"
    done
  ) &
  PIDS+=($!)
  local playlist=http://127.0.0.1:$edge/hls/$id/source/index.m3u8
  for _ in $(seq 300); do curl -fsS "$playlist" 2>/dev/null | grep -q '#EXTINF' && break; sleep 0.2; done
  grep -q "publish accepted" "$WORK/b.log" || { echo "run $r: node B did not take the publisher" >&2; return 1; }
  sleep 4

  local killed accepted playable
  kill -9 "$pid_b"
  killed=$(now)
  accepted=""; playable=""
  for _ in $(seq 1200); do
    if [ -z "$accepted" ] && grep -q "publish accepted" "$WORK/a.log"; then accepted=$(now); fi
    if [ -n "$accepted" ] && curl -fsS "$playlist" 2>/dev/null | grep -q '#EXTINF'; then
      playable=$(now); break
    fi
    sleep 0.1
  done
  [ -n "$playable" ] || { echo "run $r: not playable again within 120 s" >&2; return 1; }
  local refused
  refused=$(grep "publish refused" "$WORK/a.log" | grep -c "live on node b" || true)
  python3 - "$r" "$killed" "$accepted" "$playable" "$refused" <<'PY' | tee -a "$WORK/results"
import sys
r, killed, accepted, playable, refused = sys.argv[1], *map(float, sys.argv[2:5]), sys.argv[5]
print(f"run {r}: accepted on A {accepted - killed:.1f} s after the kill, playable through nginx {playable - killed:.1f} s ({refused} publishes refused while B's lease ran)")
PY
  kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -f "rtmp://127.0.0.1:$edge_rtmp/" 2>/dev/null || true
  wait 2>/dev/null || true
  PIDS=()
}

for r in $(seq "$RUNS"); do run "$r"; done

commit=$(git -C "$ROOT" rev-parse --short HEAD)
summary=$(cat "$WORK/results")
echo "$summary"
if [ -z "${BENCH_NO_README:-}" ]; then
  {
    echo
    echo "### failover.sh, $(date -u +%Y-%m-%dT%H:%MZ), $commit, node.lease_ttl $LEASE_TTL, reconnect every ${RECONNECT_S} s"
    echo
    sed 's/^/- /' <<<"$summary"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  } >>"$ROOT/bench/README.md"
fi
