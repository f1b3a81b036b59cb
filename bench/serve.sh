#!/usr/bin/env bash
# HLS serving: requests per server CPU-second, livefront beside nginx serving copies of the same files.
#
# livefront (the release binary, built-in defaults but the passthrough ladder) gets its demo stream made
# public and published by
# ffmpeg (a pre-encoded 1080p30 6 Mb/s file with a 2 s GOP, looped, `-c copy`), so it serves live:
#   segment   /hls/{id}/source/segNNNNN.ts    a ~1.5 MB MPEG-TS segment already listed
#   playlist  /hls/{id}/source/index.m3u8     the live media playlist (public audience, no token)
#   ll        /hls/{id}/ll/source/index.m3u8  the low-latency playlist (plain reload, no blocking)
# nginx (`sendfile on`, 2 workers, `access_log off`) serves copies of those three responses taken from
# livefront during the run, with the same Cache-Control. wrk loads one server at a time; the server's
# CPU (utime + stime from /proc, all its processes) over the wrk run gives requests per CPU-second.
# livefront keeps ingesting during its runs: its CPU without load, measured for IDLE_S before the
# wrk runs, is subtracted (the ingest is not serving).
#
# Needs: a release build (cargo build --release --locked), ffmpeg, nginx, wrk, curl, jq
# (bench/install-deps.sh). Binds only 127.0.0.1; every process it starts is stopped on exit.
#
# Environment (all optional):
#   DURATION_S=10      seconds per wrk run
#   RUNS=2             wrk runs per server and file, alternating livefront / nginx
#   CONNECTIONS=50     wrk connections for the segment (playlists: 2 × CONNECTIONS)
#   THREADS=2          wrk threads
#   IDLE_S=5           seconds of livefront's ingest-only CPU measured before the runs
#   SERVER_BIN=target/release/livefront   another binary (not LIVEFRONT_*: the server reads those)
#   BENCH_NOTE=...     free text stored with the results
#   BENCH_NO_README=1  do not append to bench/README.md
#   KEEP_TMP=1         keep the temp dir (logs, nginx files)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${BENCH_SERVE_BOUNDED:-}" ]; then
  export BENCH_SERVE_BOUNDED=1
  exec timeout --foreground --kill-after=30 "${BENCH_TIMEOUT:-900}" bash "$0" "$@"
fi
DURATION_S=${DURATION_S:-10}
RUNS=${RUNS:-2}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
IDLE_S=${IDLE_S:-5}
SERVER_BIN=${SERVER_BIN:-$ROOT/target/release/livefront}

log() { printf '[serve %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in ffmpeg nginx wrk curl jq python3; do
  command -v "$tool" >/dev/null || die "$tool is missing: run bench/install-deps.sh"
done
[ -x "$SERVER_BIN" ] || die "$SERVER_BIN is missing: cargo build --release --locked"

# Names without "livefront", "nginx" or "ffmpeg" in them, so a broad pkill elsewhere misses them.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfserve.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${KEEP_TMP:-}" ] || [ "$rc" -ne 0 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CLK_TCK=$(getconf CLK_TCK)
ticks() { # utime + stime of processes (all threads)
  local t=0 s f pid
  for pid in "$@"; do
    s=$(<"/proc/$pid/stat")
    s=${s##*) }
    read -r -a f <<<"$s"
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---------------------------------------------------------------------------------------------
log "pre-encoding 10 s of 1080p30 H.264 6 Mb/s + AAC (2 s GOP)"
SRC=$TMP/src.flv
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t 10 -map 0:v -map 1:a -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf 3 \
  -g 60 -keyint_min 60 -sc_threshold 0 -b:v 6M -maxrate 6M -bufsize 12M \
  -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "$SRC"

HTTP=$(free_port); RTMP=$(free_port)
cp "$SERVER_BIN" "$TMP/lfserve-server"
ln -s "$(command -v ffmpeg)" "$TMP/lfserve-pub"
mkdir -p "$TMP/lf"
(cd "$TMP/lf" && exec env LIVEFRONT_DATA_DIR="$TMP/lf/data" LIVEFRONT_HTTP_ADDR=127.0.0.1:$HTTP \
  LIVEFRONT_RTMP_ADDR=127.0.0.1:$RTMP LIVEFRONT_SRT_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 \
  LIVEFRONT_LADDER=passthrough "$TMP/lfserve-server" serve) >"$TMP/lf/server.log" 2>&1 &
LF_PID=$!
PIDS+=("$LF_PID")
for _ in $(seq 150); do grep -q "OBS Stream Key" "$TMP/lf/server.log" 2>/dev/null && break; sleep 0.2; done
TOKEN=$(awk '/^  demo API token / {print $4}' "$TMP/lf/server.log")
ID=$(awk '/^  stream id / {print $3}' "$TMP/lf/server.log")
KEY=$(awk '/^  OBS Stream Key / {print $4}' "$TMP/lf/server.log")
[ -n "$KEY" ] || die "livefront did not start: $(tail -5 "$TMP/lf/server.log")"
API=http://127.0.0.1:$HTTP
curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"mode":"public"}' "$API/api/v1/streams/$ID/mode" >/dev/null

"$TMP/lfserve-pub" -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$SRC" -c copy \
  -f flv "rtmp://127.0.0.1:$RTMP/live/$KEY" 2>"$TMP/publisher.log" &
PUB_PID=$!
PIDS+=("$PUB_PID")

PLAYLIST=$API/hls/$ID/source/index.m3u8
LL_PLAYLIST=$API/hls/$ID/ll/source/index.m3u8
log "waiting for a full live window (six segments) in $PLAYLIST"
for _ in $(seq 300); do
  [ "$(curl -fsS "$PLAYLIST" 2>/dev/null | grep -c "^#EXTINF" || true)" -ge 6 ] && break
  sleep 0.2
done
SEG=$(curl -fsS "$PLAYLIST" | grep -v '^#' | sed -n 2p)
[ -n "$SEG" ] || die "no segments listed: $(tail -5 "$TMP/lf/server.log" "$TMP/publisher.log")"
SEGMENT=$API/hls/$ID/source/$SEG
curl -fsS "$LL_PLAYLIST" | grep -q '#EXT-X-PART:' || die "no low-latency playlist at $LL_PLAYLIST"

# nginx: copies of what livefront answers, with the same Cache-Control.
NG=$TMP/ng
mkdir -p "$NG/www/source" "$NG/www/ll/source" "$NG/tmp"
curl -fsS -o "$NG/www/source/$SEG" "$SEGMENT"
curl -fsS -o "$NG/www/source/index.m3u8" "$PLAYLIST"
curl -fsS -o "$NG/www/ll/source/index.m3u8" "$LL_PLAYLIST"
SEG_BYTES=$(stat -c %s "$NG/www/source/$SEG")
# nginx's workers run as another user.
chmod 755 "$TMP" "$NG"
chmod -R a+rX "$NG/www"
header() { curl -fsS -o /dev/null -D - "$1" | tr -d '\r' | sed -n 's/^cache-control: //Ip'; }
SEG_CACHE=$(header "$SEGMENT"); PL_CACHE=$(header "$PLAYLIST"); LL_CACHE=$(header "$LL_PLAYLIST")
NG_HTTP=$(free_port)
cat >"$NG/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $NG/tmp/body;
  proxy_temp_path $NG/tmp/proxy;
  fastcgi_temp_path $NG/tmp/fastcgi;
  uwsgi_temp_path $NG/tmp/uwsgi;
  scgi_temp_path $NG/tmp/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:$NG_HTTP;
    root $NG/www;
    location ~ \.ts\$ { add_header Cache-Control "$SEG_CACHE"; }
    location = /ll/source/index.m3u8 { add_header Cache-Control "$LL_CACHE"; }
    location ~ \.m3u8\$ { add_header Cache-Control "$PL_CACHE"; }
  }
}
EOF
ln -s "$(command -v nginx)" "$TMP/lfserve-edge"
"$TMP/lfserve-edge" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" >"$NG/stdout" 2>&1 &
NG_PID=$!
PIDS+=("$NG_PID")
NG_URL=http://127.0.0.1:$NG_HTTP
for _ in $(seq 100); do curl -fsS -o /dev/null "$NG_URL/source/index.m3u8" 2>/dev/null && break; sleep 0.1; done
curl -fsS -o /dev/null "$NG_URL/source/$SEG" || die "nginx does not serve: $(tail -5 "$NG/error.log")"
ng_pids() { echo "$NG_PID" $(pgrep -P "$NG_PID"); }
[ "$(ng_pids | wc -w)" -eq 3 ] || die "nginx should have a master and 2 workers: $(ng_pids)"

# livefront's CPU without load (ingest, segment writing): subtracted from its runs.
c0=$(ticks "$LF_PID"); t0=$EPOCHREALTIME
sleep "$IDLE_S"
c1=$(ticks "$LF_PID"); t1=$EPOCHREALTIME
IDLE_RATE=$(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
  'BEGIN { printf "%.4f", c / hz / t }')
log "livefront ingest alone: $IDLE_RATE CPU-s per s; segment $SEG ($SEG_BYTES bytes)"

# One wrk run; prints "requests cpu_s req_per_cpu_s req_per_s errors".
measure() { # who url connections
  local who=$1 url=$2 conns=$3 pids out c0 c1 t0 t1 reqs errs cpu idle=0
  if [ "$who" = livefront ]; then pids=$LF_PID; idle=$IDLE_RATE; else pids=$(ng_pids); fi
  kill -0 "$LF_PID" 2>/dev/null || die "livefront exited: $(tail -5 "$TMP/lf/server.log")"
  kill -0 "$PUB_PID" 2>/dev/null || die "the publisher exited: $(tail -5 "$TMP/publisher.log")"
  c0=$(ticks $pids); t0=$EPOCHREALTIME
  out=$(wrk -t "$THREADS" -c "$conns" -d "${DURATION_S}s" --latency "$url")
  c1=$(ticks $pids); t1=$EPOCHREALTIME
  echo "$out" >>"$TMP/wrk.log"
  reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ { s = s $0 "; " } END { print s }' <<<"$out")
  [ -z "$errs" ] || die "$who $url: $errs"
  awk -v r="$reqs" -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" -v idle="$idle" 'BEGIN {
    cpu = c / hz - idle * (t1 - t0); printf "%d %.2f %.0f %.0f\n", r, cpu, r / cpu, r / (t1 - t0) }'
}

declare -A PER_CPU PER_S CPU
KINDS=(segment playlist ll)
url_of() { # who kind
  local base=$NG_URL
  if [ "$1" = livefront ]; then
    case $2 in segment) echo "$SEGMENT" ;; playlist) echo "$PLAYLIST" ;; ll) echo "$LL_PLAYLIST" ;; esac
    return
  fi
  case $2 in segment) echo "$base/source/$SEG" ;; playlist) echo "$base/source/index.m3u8" ;; ll) echo "$base/ll/source/index.m3u8" ;; esac
}
LOAD_START=$(loadavg)
for kind in "${KINDS[@]}"; do
  conns=$CONNECTIONS
  [ "$kind" = segment ] || conns=$((CONNECTIONS * 2))
  for ((run = 1; run <= RUNS; run++)); do
    for who in livefront nginx; do
      read -r reqs cpu per_cpu per_s <<<"$(measure "$who" "$(url_of "$who" "$kind")" "$conns")"
      log "$kind $who run $run: $reqs requests, $cpu CPU-s, $per_cpu req/CPU-s, $per_s req/s"
      PER_CPU[$who,$kind]="${PER_CPU[$who,$kind]:-} $per_cpu"
      PER_S[$who,$kind]="${PER_S[$who,$kind]:-} $per_s"
      CPU[$who,$kind]="${CPU[$who,$kind]:-} $cpu"
    done
  done
done
LOAD_END=$(loadavg)

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
describe() {
  case $1 in
    segment) echo "MPEG-TS segment, $SEG_BYTES bytes, $CONNECTIONS connections" ;;
    playlist) echo "live media playlist, $(stat -c %s "$NG/www/source/index.m3u8") bytes, $((CONNECTIONS * 2)) connections" ;;
    ll) echo "LL-HLS playlist (plain reload), $(stat -c %s "$NG/www/ll/source/index.m3u8") bytes, $((CONNECTIONS * 2)) connections" ;;
  esac
}
TABLE=$(
  printf '| response | livefront req/CPU-s | nginx req/CPU-s | livefront / nginx | livefront req/s | nginx req/s |\n'
  printf '|---|---:|---:|---:|---:|---:|\n'
  for kind in "${KINDS[@]}"; do
    lf=$(median <<<"${PER_CPU[livefront,$kind]}"); ng=$(median <<<"${PER_CPU[nginx,$kind]}")
    printf '| %s | %s (%s) | %s (%s) | **%s** | %s | %s |\n' "$(describe "$kind")" \
      "$lf" "${PER_CPU[livefront,$kind]# }" "$ng" "${PER_CPU[nginx,$kind]# }" "$(ratio "$lf" "$ng")" \
      "$(median <<<"${PER_S[livefront,$kind]}")" "$(median <<<"${PER_S[nginx,$kind]}")"
  done
)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then COMMIT="$COMMIT + uncommitted changes in src/"; fi
echo
echo "$TABLE"
if [ -z "${BENCH_NO_README:-}" ]; then
  {
    printf '\n### serve.sh, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- livefront %s (binary built %s); DURATION_S=%s RUNS=%s CONNECTIONS=%s THREADS=%s; medians of RUNS, each run in brackets\n' \
      "$COMMIT" "$(date -r "$SERVER_BIN" '+%Y-%m-%d %H:%M')" "$DURATION_S" "$RUNS" "$CONNECTIONS" "$THREADS"
    printf -- '- livefront ingest alone %s CPU-s per s, subtracted; %s cores, load average at start %s, at end %s; %s, %s\n' \
      "$IDLE_RATE" "$(nproc)" "$LOAD_START" "$LOAD_END" "$(nginx -v 2>&1 | sed 's#.*: ##')" "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
    [ -z "${BENCH_NOTE:-}" ] || printf -- '- note: %s\n' "$BENCH_NOTE"
    echo
    echo "$TABLE"
  } >>"$ROOT/bench/README.md"
  log "appended results to bench/README.md"
fi
