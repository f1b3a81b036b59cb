#!/usr/bin/env bash
# nginx as a caching edge in front of livefront for low-latency HLS (examples/nginx-edge): many
# viewers' identical blocking playlist requests and part requests reach livefront once.
#
# Runs the release binary, publishes a real RTMP stream (ffmpeg), puts nginx with the example
# configuration in front, fires VIEWERS concurrent blocking requests for the next part and for the
# hinted part through the edge, and counts the HLS requests livefront served (/metrics).
#
# Environment (all optional):
#   VIEWERS=50          concurrent requests per round
#   ROUNDS=5            rounds (one part each)
#   BENCH_NO_README=1   do not append to bench/README.md
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VIEWERS=${VIEWERS:-50}
ROUNDS=${ROUNDS:-5}
BIN=$ROOT/target/release/livefront
[ -x "$BIN" ] || { echo "build it first: cargo build --release --locked" >&2; exit 1; }
for tool in nginx ffmpeg curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required (bench/install-deps.sh)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/edge-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); RTMP=$(free_port); EDGE=$(free_port)

LIVEFRONT_DATA_DIR=$WORK/data LIVEFRONT_HTTP_ADDR=127.0.0.1:$HTTP LIVEFRONT_RTMP_ADDR=127.0.0.1:$RTMP \
  LIVEFRONT_SRT_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 LIVEFRONT_LADDER=passthrough \
  "$BIN" serve >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "OBS Stream Key" "$WORK/server.log" && break; sleep 0.2; done
TOKEN=$(awk '/^  demo API token / {print $4}' "$WORK/server.log")
ID=$(awk '/^  stream id / {print $3}' "$WORK/server.log")
KEY=$(awk '/^  OBS Stream Key / {print $4}' "$WORK/server.log")
API=http://127.0.0.1:$HTTP
curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"mode":"public"}' "$API/api/v1/streams/$ID/mode" >/dev/null

ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=640x360:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t 120 -c:v libx264 -preset veryfast -tune zerolatency \
  -g 60 -keyint_min 60 -sc_threshold 0 -c:a aac -f flv "rtmp://127.0.0.1:$RTMP/live/$KEY" &
PIDS+=($!)

mkdir -p "$WORK/cache"
sed -e "s|/var/cache/nginx/livefront|$WORK/cache|" -e "s|127.0.0.1:8080|127.0.0.1:$HTTP|" \
  -e "s|listen 8081|listen 127.0.0.1:$EDGE|" "$ROOT/examples/nginx-edge/livefront-edge.conf" >"$WORK/edge.conf"
# Workers run as the caller (as root, nginx would switch to an unprivileged user that cannot
# write the temporary cache directory).
cat >"$WORK/nginx.conf" <<CONF
user $(id -un) $(id -gn);
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/body;
  proxy_temp_path $WORK/proxy;
  include $WORK/edge.conf;
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK"

EDGE_URL=http://127.0.0.1:$EDGE/hls/$ID/ll/source
for _ in $(seq 150); do curl -fsS "$EDGE_URL/index.m3u8" 2>/dev/null | grep -q '#EXTINF' && break; sleep 0.2; done
served() { curl -fsS "$API/metrics" | awk '/^livefront_hls_requests_total/ {print $2}'; }

total_requests=0; total_origin=0; waits=()
for round in $(seq "$ROUNDS"); do
  # The hint of the origin's current playlist: a part no viewer has asked for yet.
  playlist=$(curl -fsS "$API/hls/$ID/ll/source/index.m3u8")
  hint=$(grep -o 'PRELOAD-HINT:TYPE=PART,URI="[^"]*"' <<<"$playlist" | sed 's/.*URI="//; s/"$//')
  msn=${hint#part}; msn=${msn%%.*}; part=${hint#*.}; part=${part%%.*}
  msn=$((10#$msn))
  before=$(served)
  start=$(date +%s.%N)
  viewers=()
  for _ in $(seq "$VIEWERS"); do
    curl -fsS -o /dev/null "$EDGE_URL/index.m3u8?_HLS_msn=$msn&_HLS_part=$part" &
    viewers+=($!)
    curl -fsS -o /dev/null "$EDGE_URL/$hint" &
    viewers+=($!)
  done
  failed=0
  for pid in "${viewers[@]}"; do wait "$pid" || failed=$((failed + 1)); done
  [ "$failed" -eq 0 ] || { echo "$failed requests failed" >&2; exit 1; }
  end=$(date +%s.%N)
  after=$(served)
  origin=$((after - before))
  total_requests=$((total_requests + 2 * VIEWERS)); total_origin=$((total_origin + origin))
  waits+=("$(echo "$end - $start" | bc)")
  echo "round $round: part $msn.$part: $((2 * VIEWERS)) edge requests -> $origin origin requests, all answered in ${waits[-1]} s"
  sleep 0.5
done
RESULT="$total_requests blocking playlist + hinted part requests through the nginx edge (${VIEWERS} viewers x ${ROUNDS} parts) reached livefront as $total_origin requests"
echo "$RESULT"
if [ -z "${BENCH_NO_README:-}" ]; then
  {
    printf '\n### edge.sh, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- %s\n' "$RESULT"
    printf -- '- %s cores, load: %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  } >>"$ROOT/bench/README.md"
fi
