#!/usr/bin/env bash
# WHIP CPU: livefront CPU-seconds per media-second for one public stream published over WHIP with
# H.264 (passed through) and with VP8 (decoded and encoded to H.264), beside the same size over
# RTMP (a pre-encoded file, -c copy) in the same run. The WHIP publisher is tests/whip/publish.py
# (GStreamer webrtcbin, test video + Opus); its own encoding runs on the same cores, but only the
# server's CPU is counted. Passthrough ladder, so the figures are the ingest's and the source
# rendition's. See bench/README.md ("WHIP"). Binds only 127.0.0.1; stops everything it starts.
#
# Environment (optional): SERVER_BIN (target/release/livefront; not LIVEFRONT_*: the server reads
# those), SIZE=1280x720, KBPS=2500, MEASURE_S=10, WARMUP_S=6, BENCH_NO_README=1, KEEP_TMP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVER_BIN=${SERVER_BIN:-$ROOT/target/release/livefront}
SIZE=${SIZE:-1280x720}
KBPS=${KBPS:-2500}
MEASURE_S=${MEASURE_S:-10}
WARMUP_S=${WARMUP_S:-6}
PYTHON=/usr/bin/python3
log() { printf '[whip-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in ffmpeg curl jq; do command -v "$tool" >/dev/null || die "$tool is missing"; done
[ -x "$SERVER_BIN" ] || die "$SERVER_BIN is missing (cargo build --release)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfwhip.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { local s f; s=$(<"/proc/$1/stat"); s=${s##*) }; read -r -a f <<<"$s"; echo $((f[11] + f[12])); }

MEDIA_S=$((WARMUP_S + MEASURE_S + 4))
log "encoding ${MEDIA_S}s of ${SIZE}p30 H.264 + AAC for the RTMP row"
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=$SIZE:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$MEDIA_S" -c:v libx264 -preset ultrafast -tune zerolatency -b:v "${KBPS}k" -g 60 -pix_fmt yuv420p \
  -c:a aac -b:a 128k -f flv "$TMP/in.flv"

# One run: "rtmp" | "h264" | "vp8" -> CPU-s per media-s of the server
run_case() {
  local how=$1 dir http rtmp pid pub t0 t1 token
  dir=$(mktemp -d "$TMP/case.XXXX")
  http=$(free_port); rtmp=$(free_port)
  (cd "$dir" && exec env -u SERVER_BIN RUST_LOG=warn LIVEFRONT_DATA_DIR="$dir/data" LIVEFRONT_HTTP_ADDR=127.0.0.1:$http \
    LIVEFRONT_RTMP_ADDR=127.0.0.1:$rtmp LIVEFRONT_SRT_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 \
    LIVEFRONT_LADDER=passthrough LIVEFRONT_WHIP_ICE_ADDRESSES=127.0.0.1 "$SERVER_BIN" serve) >"$dir/stdout" 2>"$dir/stderr" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 300); do grep -q 'demo API token' "$dir/stdout" 2>/dev/null && break; sleep 0.1; done
  token=$(awk '/demo API token/ { print $4 }' "$dir/stdout")
  [ -n "$token" ] || die "livefront did not start: $(tail -5 "$dir/stderr")"
  local api="http://127.0.0.1:$http/api/v1" auth="Authorization: Bearer $token" s id key
  s=$(curl -fsS -X POST -H "$auth" -H 'Content-Type: application/json' -d '{"title":"bench","mode":"public"}' "$api/streams")
  id=$(jq -r .id <<<"$s"); key=$(jq -r .stream_key <<<"$s")
  case $how in
    rtmp) ffmpeg -hide_banner -loglevel error -re -i "$TMP/in.flv" -c copy -f flv "rtmp://127.0.0.1:$rtmp/live/$key" & ;;
    *) "$PYTHON" "$ROOT/tests/whip/publish.py" "http://127.0.0.1:$http/whip/$id" "$key" --codec "$how" \
         --size "$SIZE" --kbps "$KBPS" --seconds "$MEDIA_S" >"$dir/publisher.log" 2>&1 & ;;
  esac
  pub=$!
  PIDS+=("$pub")
  sleep "$WARMUP_S"
  [ "$(curl -fsS -H "$auth" "$api/streams/$id" | jq -r .state)" = live ] || die "$how: not live: $(cat "$dir/publisher.log" 2>/dev/null | tail -3)"
  t0=$(cpu_ticks "$pid")
  sleep "$MEASURE_S"
  t1=$(cpu_ticks "$pid")
  kill -TERM "$pub" 2>/dev/null || true; wait "$pub" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$MEASURE_S" 'BEGIN { printf "%.3f", d / hz / s }'
}

rtmp=$(run_case rtmp)
h264=$(run_case h264)
vp8=$(run_case vp8)
report=$(cat <<TXT

### whip.sh, $(date -u '+%Y-%m-%d %H:%M') UTC

- livefront $(git -C "$ROOT" rev-parse --short HEAD) ($(date -u -r "$SERVER_BIN" '+release binary built %Y-%m-%d %H:%M')); one public stream, passthrough ladder, ${SIZE} 30 fps ${KBPS} kb/s + audio; ${MEASURE_S} s measured after ${WARMUP_S} s; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)${BENCH_NOTE:+; $BENCH_NOTE}

| server CPU-s per media-s | RTMP (H.264, -c copy) | WHIP H.264 (passed through) | WHIP VP8 (to H.264) |
|---|---:|---:|---:|
| livefront | $rtmp | $h264 | $vp8 |
TXT
)
echo "$report"
if [ -z "${BENCH_NO_README:-}" ]; then
  printf '%s\n' "$report" >>"$ROOT/bench/README.md"
fi
