#!/usr/bin/env bash
# Simulcast CPU: livefront CPU-seconds per media-second for one public 720p30 stream with 0, 1 and
# 3 passthrough targets, and with a 360p rung on the ladder with 0 and 1 target taking that rung.
# The targets are one local nginx-rtmp (each target its own stream name). The publisher sends a
# pre-encoded file (-c copy), so its own CPU is not in the figures. See bench/README.md
# ("Simulcast"). Binds only 127.0.0.1; stops everything it starts.
#
# Environment (optional): LIVEFRONT_BIN (target/release/livefront), BUILD=release (a label for the
# row: say "debug" when LIVEFRONT_BIN is a debug build), MEASURE_S=10 (window),
# WARMUP_S=5, BENCH_NO_README=1 (do not append to bench/README.md), KEEP_TMP=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIVEFRONT_BIN=${LIVEFRONT_BIN:-$ROOT/target/release/livefront}
MEASURE_S=${MEASURE_S:-10}
WARMUP_S=${WARMUP_S:-5}
NGINX_MODULES=/usr/lib/nginx/modules
log() { printf '[simulcast-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in ffmpeg nginx curl jq python3; do command -v "$tool" >/dev/null || die "$tool is missing"; done
[ -x "$LIVEFRONT_BIN" ] || die "$LIVEFRONT_BIN is missing (cargo build --release)"
[ -f "$NGINX_MODULES/ngx_rtmp_module.so" ] || die "apt-get install libnginx-mod-rtmp"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfsim.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { local s f; s=$(<"/proc/$1/stat"); s=${s##*) }; read -r -a f <<<"$s"; echo $((f[11] + f[12])); }

SECONDS_OF_MEDIA=$((WARMUP_S + MEASURE_S + 15))
log "encoding ${SECONDS_OF_MEDIA}s of 720p30 H.264 + AAC"
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$SECONDS_OF_MEDIA" -c:v libx264 -preset ultrafast -b:v 3000k -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
  -c:a aac -b:a 128k -f flv "$TMP/in.flv"

NGINX_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
load_module $NGINX_MODULES/ngx_rtmp_module.so;
events { worker_connections 256; }
rtmp { server { listen 127.0.0.1:$NGINX_PORT; application live { live on; } } }
CONF
nginx -p "$TMP/nginx" -e error.log -c "$TMP/nginx/nginx.conf" &
PIDS+=($!)
cat >"$TMP/rung.toml" <<'TOML'
name = "rung360"
source = true
[[rung]]
name = "360p"
height = 360
max_fps = 30
video_bitrate_kbps = 800
[rung.x264]
preset = "veryfast"
tune = "zerolatency"
profile = "main"
TOML

# One run: ladder, targets, rendition -> "cpu_s_per_media_s"
run_case() {
  local ladder=$1 targets=$2 rendition=$3 dir http rtmp token id key ids="" t0 t1 pid pub
  dir=$(mktemp -d "$TMP/case.XXXX")
  http=$(free_port); rtmp=$(free_port)
  (cd "$dir" && exec env -u LIVEFRONT_BIN RUST_LOG=warn LIVEFRONT_DATA_DIR="$dir/data" LIVEFRONT_HTTP_ADDR=127.0.0.1:$http \
    LIVEFRONT_RTMP_ADDR=127.0.0.1:$rtmp LIVEFRONT_SRT_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 \
    LIVEFRONT_LADDER="$ladder" LIVEFRONT_SIMULCAST_ALLOW_PRIVATE=true "$LIVEFRONT_BIN" serve) >"$dir/stdout" 2>"$dir/stderr" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 300); do grep -q 'demo API token' "$dir/stdout" 2>/dev/null && break; sleep 0.1; done
  token=$(awk '/demo API token/ { print $4 }' "$dir/stdout")
  [ -n "$token" ] || die "livefront did not start: $(tail -5 "$dir/stderr")"
  local api="http://127.0.0.1:$http/api/v1" auth="Authorization: Bearer $token"
  local s
  s=$(curl -fsS -X POST -H "$auth" -H 'Content-Type: application/json' -d '{"title":"bench"}' "$api/streams")
  id=$(jq -r .id <<<"$s"); key=$(jq -r .stream_key <<<"$s")
  for i in $(seq "$targets"); do
    local body
    body=$(jq -nc --arg u "rtmp://127.0.0.1:$NGINX_PORT/live" --arg k "benchtarget_${i}_$RANDOM" --arg r "$rendition" \
      '{name: "t", url: $u, key: $k} + (if $r == "" then {} else {rendition: $r} end)')
    ids="$ids\"$(curl -fsS -X POST -H "$auth" -H 'Content-Type: application/json' -d "$body" "$api/me/destinations" | jq -r .id)\","
  done
  curl -fsS -X PUT -H "$auth" -H 'Content-Type: application/json' -d "{\"ids\":[${ids%,}]}" "$api/streams/$id/destinations" >/dev/null
  curl -fsS -X PUT -H "$auth" -H 'Content-Type: application/json' -d '{"mode":"public"}' "$api/streams/$id/mode" >/dev/null
  ffmpeg -hide_banner -loglevel error -re -i "$TMP/in.flv" -c copy -f flv "rtmp://127.0.0.1:$rtmp/live/$key" &
  pub=$!
  PIDS+=("$pub")
  sleep "$WARMUP_S"
  local live
  live=$(curl -fsS -H "$auth" "$api/streams/$id/destinations" | jq '[.destinations[] | select(.state == "live")] | length')
  [ "$live" = "$targets" ] || die "$live of $targets targets live: $(curl -fsS -H "$auth" "$api/streams/$id/destinations")"
  t0=$(cpu_ticks "$pid")
  sleep "$MEASURE_S"
  t1=$(cpu_ticks "$pid")
  kill -TERM "$pub" 2>/dev/null || true; wait "$pub" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v s="$MEASURE_S" 'BEGIN { printf "%.3f", d / hz / s }'
}

declare -A R
R[p0]=$(run_case passthrough 0 "")
R[p1]=$(run_case passthrough 1 "")
R[p3]=$(run_case passthrough 3 "")
R[r0]=$(run_case "$TMP/rung.toml" 0 "")
R[r1]=$(run_case "$TMP/rung.toml" 1 360p)
per_pass=$(awk -v a="${R[p0]}" -v b="${R[p3]}" 'BEGIN { printf "%.3f", (b - a) / 3 }')
per_rung=$(awk -v a="${R[r0]}" -v b="${R[r1]}" 'BEGIN { printf "%.3f", b - a }')
rung_cost=$(awk -v a="${R[p0]}" -v b="${R[r0]}" 'BEGIN { printf "%.3f", b - a }')
summary=$(cat <<TXT
| $(date -u +%Y-%m-%d) | ${BUILD:-release} | ${R[p0]} | ${R[p1]} | ${R[p3]} | $per_pass | ${R[r0]} | ${R[r1]} | $per_rung | $rung_cost | $(cut -d' ' -f1-3 /proc/loadavg) |
TXT
)
echo "$summary"
if [ -z "${BENCH_NO_README:-}" ]; then
  printf '%s\n' "$summary" >>"$ROOT/bench/README.md"
fi
