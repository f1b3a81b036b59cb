#!/usr/bin/env bash
# Passthrough benchmark: livefront side by side with nginx-rtmp in the same run.
#   1. first playable playlist: ms from publisher start until the media playlist lists a segment
#   2. server CPU-seconds per media-second and peak RSS (VmHWM) for 1 and for N concurrent
#      30 s 1080p30 passthrough streams
# See bench/README.md. Needs: a release build, ffmpeg/ffprobe, nginx + libnginx-mod-rtmp, curl, jq
# (`make bench` installs them). Binds only 127.0.0.1. Every process it starts is stopped on exit.
#
# Environment (all optional):
#   RUNS=5             publishes per server for the first-playlist measurement
#   STREAMS=5          concurrent publishers in the multi-stream measurement
#   DURATION=30        seconds of pre-encoded media per publisher
#   GOP_S=2            keyframe interval of the pre-encoded media, seconds
#   LADDER=passthrough livefront ladder preset (LIVEFRONT_LADDER), for binaries that have ladders
#   PROTO=rtmp         how livefront is published to: rtmp (FLV) or srt (MPEG-TS over SRT, the
#                      stream's ingest.srt URL + &linger=1); nginx-rtmp is always published to over RTMP
#   SERVER_BIN=target/release/livefront  the binary under test (LIVEFRONT_BIN is read too, and kept
#                      from the server, which takes every LIVEFRONT_ variable for configuration)
#   BENCH_TIMEOUT=1500 hard limit for the whole run, seconds
#   BENCH_NOTE=...     free text stored with the results (e.g. "lead running cargo test")
#   BENCH_NO_README=1  do not append to bench/README.md
#   KEEP_TMP=1         keep the temp dir (logs, data dirs, media)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TIMEOUT=${BENCH_TIMEOUT:-1500}

# Bounded in time: re-run under timeout(1); on expiry our TERM trap stops everything we started.
if [ -z "${BENCH_PASSTHROUGH_BOUNDED:-}" ]; then
  export BENCH_PASSTHROUGH_BOUNDED=1
  exec timeout --foreground --kill-after=60 "$BENCH_TIMEOUT" bash "$0" "$@"
fi

RUNS=${RUNS:-5}
STREAMS=${STREAMS:-5}
DURATION=${DURATION:-30}
GOP_S=${GOP_S:-2}
LADDER=${LADDER:-passthrough}
PROTO=${PROTO:-rtmp}
LIVEFRONT_BIN=${SERVER_BIN:-${LIVEFRONT_BIN:-$ROOT/target/release/livefront}}
export -n LIVEFRONT_BIN
NGINX_RTMP_MODULE=${NGINX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
POLL_S=0.02
STARTUP_DEADLINE_S=30
FIRST_SEGMENT_DEADLINE_S=30
END_DEADLINE_S=60

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case "$PROTO" in rtmp | srt) ;; *) die "PROTO must be rtmp or srt, not $PROTO" ;; esac

for tool in ffmpeg ffprobe nginx curl jq timeout; do
  command -v "$tool" >/dev/null || die "$tool is missing: run make bench (bench/install-deps.sh installs it)"
done
[ -f "$NGINX_RTMP_MODULE" ] || die "$NGINX_RTMP_MODULE is missing: apt-get install libnginx-mod-rtmp"
[ -x "$LIVEFRONT_BIN" ] || die "$LIVEFRONT_BIN is missing: cargo build --release --locked"

# Names without "livefront" or "ffmpeg" in them (temp dir, server copy, publisher link), so that a
# `pkill livefront` / `pkill ffmpeg` elsewhere on the box does not stop the processes under test.
# A signal from outside is still detected (server_ok) and fails the run.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfbench.XXXXXX")
PIDS=()
SERVER_COPY=$TMP/lfbench-server
PUB_BIN=$TMP/lfbench-pub
cp "$LIVEFRONT_BIN" "$SERVER_COPY"
ln -s "$(command -v ffmpeg)" "$PUB_BIN"
# Binaries with transcoding ladders default to one; this bench is about the passthrough path.
# Older binaries have no ladder key (and refuse unknown LIVEFRONT_ keys): they only pass through.
if grep -aq 'hls.ladder' "$SERVER_COPY"; then
  LADDER_ENV=("LIVEFRONT_LADDER=$LADDER")
  LADDER_DESC="$LADDER (LIVEFRONT_LADDER)"
else
  LADDER_ENV=()
  LADDER_DESC="passthrough (this binary has no ladders)"
fi
# Binaries with SRT ingest bind UDP 8890 by default: keep them on a free port too.
if grep -aq 'srt.addr' "$SERVER_COPY"; then
  LADDER_ENV+=("LIVEFRONT_SRT_ADDR=127.0.0.1:0")
elif [ "$PROTO" = srt ]; then
  die "$LIVEFRONT_BIN has no SRT ingest"
fi

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  # Newest first: publishers before servers. TERM lets livefront finalise, then KILL.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${KEEP_TMP:-}" ] || [ "$rc" -ne 0 ]; then log "kept $TMP (logs)"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() { # stop tracking a pid that has been waited for
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }

# A currently free loopback port (the kernel picks it; nothing listens between probe and use
# except by coincidence, which the startup checks below would report).
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a whole process (all threads, exited ones included)
  local s f
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  read -r -a f <<<"$s"
  echo $((f[11] + f[12]))
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------------------------
# Media: DURATION s of 1080p30 H.264 High (3 B-frames, GOP_S s GOP, no scene cuts) + AAC 48 kHz stereo.
SRC=$TMP/src-1080p30.flv
encode_source() {
  log "pre-encoding ${DURATION}s (GOP ${GOP_S}s) of 1080p30 H.264 High + AAC to $SRC"
  ffmpeg -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$DURATION" -map 0:v -map 1:a \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf 3 \
    -g $((GOP_S * 30)) -keyint_min $((GOP_S * 30)) -sc_threshold 0 -b:v 6M -maxrate 6M -bufsize 12M \
    -c:a aac -b:a 128k -ar 48000 -ac 2 \
    -f flv "$SRC"
  local v
  v=$(ffprobe -v error -select_streams v:0 -show_entries stream=profile,width,height,r_frame_rate,has_b_frames \
    -of compact=p=0:nk=0 "$SRC")
  SRC_DESC="$v; GOP ${GOP_S}s; $(du -k "$SRC" | cut -f1) KiB"
  log "source: $SRC_DESC"
}

# Starts a publisher in the background; sets PUB_PID (the timeout(1) wrapper, which forwards TERM).
publish() { # url logfile; FLV to rtmp:// URLs, MPEG-TS to srt:// URLs
  local format=flv
  [[ $1 == srt://* ]] && format=mpegts
  timeout --kill-after=10 $((DURATION + 60)) \
    "$PUB_BIN" -hide_banner -nostats -loglevel info -nostdin -re -i "$SRC" -c copy -f "$format" "$1" >"$2" 2>&1 &
  PUB_PID=$!
  PIDS+=("$PUB_PID")
}

stop_publisher() { # pid
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

wait_publisher() { # pid logfile; fails when ffmpeg failed
  local rc=0
  wait "$1" || rc=$?
  forget_pid "$1"
  [ "$rc" -eq 0 ] || die "publisher failed (exit $rc): $(tail -5 "$2"); server log: $(dirname "$2")"
}

running() { # pid: alive and not a zombie waiting to be reaped
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

# The server under test must only stop when we stop it. Someone else's signal (a `pkill` or
# `killall` elsewhere on the box) shows up here instead of as odd numbers.
server_ok() { # pid name log
  running "$1" || die "$2 exited during the run: $(tail -5 "$3" 2>/dev/null)"
  if [ "$2" = livefront ] && grep -q 'shutting down' "$3"; then
    die "livefront received SIGTERM/SIGINT from outside this script during the run"
  fi
}

# Starts one publisher per URL and samples the server's RSS every 0.5 s until all have exited.
# Sets R_LIVE (max VmRSS while publishing, KiB). Fails when a publisher or the server failed.
run_publishers() { # server_pid server_name server_log dir url...
  local spid=$1 sname=$2 slog=$3 dir=$4 i=0 p r pids=() any all
  shift 4
  for url in "$@"; do i=$((i + 1)); publish "$url" "$dir/ffmpeg-$i.log"; pids+=("$PUB_PID"); done
  R_LIVE=0
  while :; do
    server_ok "$spid" "$sname" "$slog"
    any="" all=1
    for p in "${pids[@]}"; do if running "$p"; then any=1; else all=""; fi; done
    [ -n "$any" ] || break
    # Only while every publisher is still sending: afterwards livefront finalises recordings.
    if [ -n "$all" ]; then
      r=$(status_kb "$spid" VmRSS)
      ((r > R_LIVE)) && R_LIVE=$r
    fi
    sleep 0.5
  done
  for ((i = 0; i < ${#pids[@]}; i++)); do wait_publisher "${pids[i]}" "$dir/ffmpeg-$((i + 1)).log"; done
  server_ok "$spid" "$sname" "$slog"
}

# Polls a playlist every POLL_S until it lists a segment; prints ms since t0.
first_segment_ms() { # url t0_ms
  local body deadline=$(( $2 + FIRST_SEGMENT_DEADLINE_S * 1000 ))
  while :; do
    body=$(curl -s --max-time 2 "$1" || true)
    if [[ $body == *"#EXTINF"* ]]; then echo $(( $(now_ms) - $2 )); return 0; fi
    (( $(now_ms) < deadline )) || return 1
    sleep "$POLL_S"
  done
}

# ---------------------------------------------------------------------------------------------
# livefront
LF_PID="" LF_HTTP="" LF_TOKEN="" LF_DIR=""
start_livefront() { # name
  LF_DIR=$(mktemp -d "$TMP/$1.XXXX")
  mkdir -p "$LF_DIR/data"
  # Built-in defaults (a test asserts they equal config/livefront.toml): run from the temp dir, so
  # no config/livefront.toml is found, and a release binary older than the working tree's config
  # file still starts.
  (cd "$LF_DIR" && exec env "${LADDER_ENV[@]}" RUST_LOG="${RUST_LOG:-info}" LIVEFRONT_DATA_DIR="$LF_DIR/data" \
    LIVEFRONT_HTTP_ADDR=127.0.0.1:0 LIVEFRONT_RTMP_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 \
    "$SERVER_COPY" serve) \
    >"$LF_DIR/stdout" 2>"$LF_DIR/stderr" &
  LF_PID=$!
  PIDS+=("$LF_PID")
  local deadline=$(( $(now_ms) + STARTUP_DEADLINE_S * 1000 ))
  until grep -q 'demo API token' "$LF_DIR/stdout" 2>/dev/null; do
    kill -0 "$LF_PID" 2>/dev/null || die "livefront exited: $(tail -5 "$LF_DIR/stderr")"
    (( $(now_ms) < deadline )) || die "livefront did not start in ${STARTUP_DEADLINE_S}s"
    sleep 0.05
  done
  LF_TOKEN=$(awk '/demo API token/ { print $4 }' "$LF_DIR/stdout")
  local port
  port=$(sed -nE 's/^ *HTTP API +http:\/\/[^:]+:([0-9]+).*/\1/p' "$LF_DIR/stdout" | head -1)
  [ -n "$port" ] && [ -n "$LF_TOKEN" ] || die "could not read the livefront banner: $(cat "$LF_DIR/stdout")"
  LF_HTTP=http://127.0.0.1:$port
  curl -fsS --max-time 5 "$LF_HTTP/healthz" >/dev/null || die "livefront /healthz failed"
}

stop_livefront() {
  kill -TERM "$LF_PID" 2>/dev/null || true
  local deadline=$(( $(now_ms) + END_DEADLINE_S * 1000 ))
  while kill -0 "$LF_PID" 2>/dev/null && (( $(now_ms) < deadline )); do sleep 0.1; done
  kill -KILL "$LF_PID" 2>/dev/null || true
  wait "$LF_PID" 2>/dev/null || true
  forget_pid "$LF_PID"
}

# Creates a stream through the API; sets LF_ID, LF_INGEST, LF_PLAYLIST.
lf_create_stream() {
  local json
  json=$(curl -fsS --max-time 10 -X POST -H "Authorization: Bearer $LF_TOKEN" \
    -H 'Content-Type: application/json' -d '{"title":"bench"}' "$LF_HTTP/api/v1/streams") \
    || { server_ok "$LF_PID" livefront "$LF_DIR/stderr"; die "POST /api/v1/streams failed"; }
  LF_ID=$(jq -r .id <<<"$json")
  if [ "$PROTO" = srt ]; then
    LF_INGEST="$(jq -r .ingest.srt <<<"$json" | sed 's#://localhost:#://127.0.0.1:#')&linger=1"
  else
    LF_INGEST=$(jq -r .ingest.rtmp <<<"$json" | sed 's#://localhost:#://127.0.0.1:#')
  fi
  LF_PLAYLIST=$(jq -r .playback.hls <<<"$json" | sed -e 's#://localhost:#://127.0.0.1:#' -e 's#/master\.m3u8#/source/index.m3u8#')
}

lf_state() { curl -fsS --max-time 5 -H "Authorization: Bearer $LF_TOKEN" "$LF_HTTP/api/v1/streams/$1" | jq -r .state; }

lf_wait_ended() { # id: the publisher is gone; wait until the recording is finalised
  local deadline=$(( $(now_ms) + END_DEADLINE_S * 1000 ))
  until [ "$(lf_state "$1" || true)" = ended ]; do
    server_ok "$LF_PID" livefront "$LF_DIR/stderr"
    (( $(now_ms) < deadline )) || die "livefront stream $1 did not end in ${END_DEADLINE_S}s"
    sleep 0.1
  done
}

lf_segments() { # playlist url: segments in the stream's complete (event) playlist
  local url=${1/index.m3u8/event.m3u8}
  curl -fsS --max-time 5 "$url" | grep -c '^#EXTINF' || true
}

# ---------------------------------------------------------------------------------------------
# nginx-rtmp: one process (master_process off), HLS with 2 s fragments, served by its own http{}.
NG_PID="" NG_RTMP="" NG_HTTP="" NG_DIR=""
start_nginx() { # name
  NG_DIR=$(mktemp -d "$TMP/$1.XXXX")
  mkdir -p "$NG_DIR/hls" "$NG_DIR/tmp"
  NG_RTMP=$(free_port)
  NG_HTTP=$(free_port)
  while [ "$NG_HTTP" = "$NG_RTMP" ]; do NG_HTTP=$(free_port); done
  cat >"$NG_DIR/nginx.conf" <<EOF
load_module $NGINX_RTMP_MODULE;
daemon off;
master_process off;
worker_processes 1;
pid $NG_DIR/nginx.pid;
error_log $NG_DIR/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$NG_RTMP;
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path $NG_DIR/hls;
      hls_fragment 2s;
      hls_playlist_length 12s;
      hls_cleanup off;
    }
  }
}
http {
  access_log off;
  client_body_temp_path $NG_DIR/tmp/body;
  proxy_temp_path $NG_DIR/tmp/proxy;
  fastcgi_temp_path $NG_DIR/tmp/fastcgi;
  uwsgi_temp_path $NG_DIR/tmp/uwsgi;
  scgi_temp_path $NG_DIR/tmp/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:$NG_HTTP;
    location /hls/ { alias $NG_DIR/hls/; add_header Cache-Control no-cache; }
  }
}
EOF
  nginx -p "$NG_DIR" -c "$NG_DIR/nginx.conf" -e "$NG_DIR/error.log" >"$NG_DIR/stdout" 2>&1 &
  NG_PID=$!
  PIDS+=("$NG_PID")
  local deadline=$(( $(now_ms) + STARTUP_DEADLINE_S * 1000 ))
  until (exec 3<>"/dev/tcp/127.0.0.1/$NG_RTMP") 2>/dev/null \
    && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NG_HTTP/hls/none.m3u8")" = 404 ]; do
    kill -0 "$NG_PID" 2>/dev/null || die "nginx exited: $(cat "$NG_DIR/stdout" "$NG_DIR/error.log" 2>/dev/null | tail -5)"
    (( $(now_ms) < deadline )) || die "nginx did not start in ${STARTUP_DEADLINE_S}s"
    sleep 0.05
  done
}

stop_nginx() {
  kill -TERM "$NG_PID" 2>/dev/null || true
  wait "$NG_PID" 2>/dev/null || true
  forget_pid "$NG_PID"
}

ng_segments() { find "$NG_DIR/hls" -name "$1-*.ts" | wc -l; }

# ---------------------------------------------------------------------------------------------
# 1. First playable playlist. Both servers run; publishes alternate so background load hits both.
bench_first_playlist() {
  log "first playlist: $RUNS publishes per server, alternating"
  start_livefront ttfp-livefront
  start_nginx ttfp-nginx
  LF_TTFP=() NG_TTFP=()
  local i ms t0
  for ((i = 1; i <= RUNS; i++)); do
    lf_create_stream
    t0=$(now_ms)
    publish "$LF_INGEST" "$LF_DIR/ffmpeg-$i.log"
    ms=$(first_segment_ms "$LF_PLAYLIST" "$t0") || die "livefront: no segment listed within ${FIRST_SEGMENT_DEADLINE_S}s (run $i; $(tail -3 "$LF_DIR/ffmpeg-$i.log"))"
    stop_publisher "$PUB_PID"
    lf_wait_ended "$LF_ID"
    LF_TTFP+=("$ms")
    log "  livefront run $i: $ms ms"

    t0=$(now_ms)
    publish "rtmp://127.0.0.1:$NG_RTMP/live/ttfp$i" "$NG_DIR/ffmpeg-$i.log"
    ms=$(first_segment_ms "http://127.0.0.1:$NG_HTTP/hls/ttfp$i.m3u8" "$t0") || die "nginx: no segment listed within ${FIRST_SEGMENT_DEADLINE_S}s (run $i)"
    stop_publisher "$PUB_PID"
    NG_TTFP+=("$ms")
    log "  nginx-rtmp run $i: $ms ms"
    sleep 1 # let nginx close the previous stream's files
  done
  stop_nginx
  stop_livefront
  LF_TTFP_MED=$(printf '%s\n' "${LF_TTFP[@]}" | median)
  NG_TTFP_MED=$(printf '%s\n' "${NG_TTFP[@]}" | median)
}

# 2. CPU and memory: fresh server per scenario, n concurrent publishers of the whole file.
#    CPU = utime+stime delta of the server process from just before the publishers start until
#    every stream has ended (livefront: recording finalised; nginx: publishers gone + 2 s).
#    Sets R_CPU (seconds), R_HWM and R_IDLE (KiB), R_SEGS (segments written, summed).
bench_load_livefront() { # n
  local n=$1 i c0 c1 id ids=() playlists=() urls=()
  start_livefront "load-livefront-$n"
  for ((i = 1; i <= n; i++)); do lf_create_stream; ids+=("$LF_ID"); playlists+=("$LF_PLAYLIST"); urls+=("$LF_INGEST"); done
  R_IDLE=$(status_kb "$LF_PID" VmRSS)
  R_LOAD0=$(loadavg)
  c0=$(cpu_ticks "$LF_PID")
  run_publishers "$LF_PID" livefront "$LF_DIR/stderr" "$LF_DIR" "${urls[@]}"
  for id in "${ids[@]}"; do lf_wait_ended "$id"; done
  server_ok "$LF_PID" livefront "$LF_DIR/stderr"
  c1=$(cpu_ticks "$LF_PID")
  R_HWM=$(status_kb "$LF_PID" VmHWM)
  R_LOAD1=$(loadavg)
  R_CPU=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
  R_SEGS=0
  for ((i = 0; i < n; i++)); do R_SEGS=$((R_SEGS + $(lf_segments "${playlists[i]}"))); done
  stop_livefront
}

bench_load_nginx() { # n
  local n=$1 i c0 c1 urls=()
  start_nginx "load-nginx-$n"
  R_IDLE=$(status_kb "$NG_PID" VmRSS)
  R_LOAD0=$(loadavg)
  c0=$(cpu_ticks "$NG_PID")
  for ((i = 1; i <= n; i++)); do urls+=("rtmp://127.0.0.1:$NG_RTMP/live/load$i"); done
  run_publishers "$NG_PID" nginx "$NG_DIR/error.log" "$NG_DIR" "${urls[@]}"
  sleep 2 # nginx closes the last fragment and playlist when the publisher goes
  server_ok "$NG_PID" nginx "$NG_DIR/error.log"
  c1=$(cpu_ticks "$NG_PID")
  R_HWM=$(status_kb "$NG_PID" VmHWM)
  R_LOAD1=$(loadavg)
  R_CPU=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
  R_SEGS=0
  for ((i = 1; i <= n; i++)); do R_SEGS=$((R_SEGS + $(ng_segments "load$i"))); done
  stop_nginx
}

declare -A RES
WARNINGS=()
bench_load() { # n
  local n=$1 who
  for who in livefront nginx; do
    log "load: $who, $n concurrent stream(s) of ${DURATION}s"
    RES[$who,$n,others]=$(others)
    "bench_load_$who" "$n"
    RES[$who,$n,cpu]=$R_CPU
    RES[$who,$n,per]=$(awk -v c="$R_CPU" -v m=$((n * DURATION)) 'BEGIN { printf "%.4f", c / m }')
    RES[$who,$n,hwm]=$(awk -v k="$R_HWM" 'BEGIN { printf "%.1f", k / 1024 }')
    RES[$who,$n,idle]=$(awk -v k="$R_IDLE" 'BEGIN { printf "%.1f", k / 1024 }')
    RES[$who,$n,live]=$(awk -v k="$R_LIVE" 'BEGIN { printf "%.1f", k / 1024 }')
    RES[$who,$n,segs]=$R_SEGS
    # Each stream should give about DURATION / GOP_S segments; fewer means the server fell behind.
    if ((R_SEGS < n * (DURATION / GOP_S - 1))); then
      WARNINGS+=("$who, $n stream(s): only $R_SEGS HLS segments written, about $((n * DURATION / GOP_S)) expected (server fell behind?)")
      log "  WARNING: ${WARNINGS[-1]}"
    fi
    RES[$who,$n,load]="$R_LOAD0 -> $R_LOAD1"
    log "  cpu ${R_CPU}s, ${RES[$who,$n,per]} cpu-s/media-s, peak RSS ${RES[$who,$n,hwm]} MiB (idle ${RES[$who,$n,idle]}, while publishing ${RES[$who,$n,live]}), $R_SEGS segments, load $R_LOAD0 -> $R_LOAD1"
  done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f×", a / b; else print "n/a" }'; }

# ---------------------------------------------------------------------------------------------
START_DATE=$(date '+%Y-%m-%d %H:%M %Z')
LOAD_START=$(loadavg)
# Other work on the box (the lead's builds and tests): rustc/cargo, test binaries and servers under
# target/debug, ffmpeg/gst-launch publishers. Counted before our own processes exist.
others() {
  ps -eo args= | awk '
    $1 ~ /(^|\/)(rustc|cargo)$/ { c["cargo/rustc"]++; next }
    $1 ~ /\/target\/debug\// { c["target/debug binaries"]++; next }
    $1 ~ /(^|\/)(ffmpeg|gst-launch-1\.0)$/ { c["ffmpeg/gst-launch"]++; next }
    END { s = ""; for (k in c) s = s (s ? ", " : "") c[k] " " k; print (s ? s : "none") }'
}
OTHERS_START=$(others)
log "temp dir $TMP; livefront ladder: $LADDER_DESC; livefront ingest: $PROTO; load average $LOAD_START; other build/test processes: $OTHERS_START"
encode_source
bench_first_playlist
bench_load 1
[ "$STREAMS" -eq 1 ] || bench_load "$STREAMS"
LOAD_END=$(loadavg)

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then COMMIT="$COMMIT + uncommitted changes in src/"; fi
BIN_DATE=$(date -r "$LIVEFRONT_BIN" '+%Y-%m-%d %H:%M')

TABLE=$(
  printf '| measurement | livefront (%s) | nginx-rtmp | livefront / nginx |\n' "$PROTO"
  printf '|---|---:|---:|---:|\n'
  printf '| first playlist with a segment, median of %d (ms) | %s | %s | %s |\n' "$RUNS" "$LF_TTFP_MED" "$NG_TTFP_MED" "$(ratio "$LF_TTFP_MED" "$NG_TTFP_MED")"
  printf '| first playlist, each run (ms) | %s | %s | |\n' "${LF_TTFP[*]}" "${NG_TTFP[*]}"
  for n in $(printf '%s\n' 1 "$STREAMS" | uniq); do
    printf '| %d stream(s): CPU s total (%d media-s) | %s | %s | %s |\n' "$n" $((n * DURATION)) "${RES[livefront,$n,cpu]}" "${RES[nginx,$n,cpu]}" "$(ratio "${RES[livefront,$n,cpu]}" "${RES[nginx,$n,cpu]}")"
    printf '| %d stream(s): CPU s per media-s | %s | %s | %s |\n' "$n" "${RES[livefront,$n,per]}" "${RES[nginx,$n,per]}" "$(ratio "${RES[livefront,$n,per]}" "${RES[nginx,$n,per]}")"
    printf '| %d stream(s): peak RSS, VmHWM (MiB) | %s | %s | %s |\n' "$n" "${RES[livefront,$n,hwm]}" "${RES[nginx,$n,hwm]}" "$(ratio "${RES[livefront,$n,hwm]}" "${RES[nginx,$n,hwm]}")"
    printf '| %d stream(s): max RSS while publishing, sampled every 0.5 s (MiB) | %s | %s | %s |\n' "$n" "${RES[livefront,$n,live]}" "${RES[nginx,$n,live]}" "$(ratio "${RES[livefront,$n,live]}" "${RES[nginx,$n,live]}")"
    printf '| %d stream(s): RSS before publishing (MiB) | %s | %s | |\n' "$n" "${RES[livefront,$n,idle]}" "${RES[nginx,$n,idle]}"
    printf '| %d stream(s): HLS segments written | %s | %s | |\n' "$n" "${RES[livefront,$n,segs]}" "${RES[nginx,$n,segs]}"
  done
)

MACHINE="$(lscpu | sed -nE 's/^Model name: +//p' | head -1), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
VERSIONS="$(ffmpeg -version | head -1 | cut -d' ' -f1-3), nginx $(nginx -v 2>&1 | sed 's#.*/##') + libnginx-mod-rtmp $(dpkg-query -W -f='${Version}' libnginx-mod-rtmp 2>/dev/null || echo '?'), $(gst-launch-1.0 --version 2>/dev/null | sed -n 2p)"

echo
echo "livefront passthrough benchmark, $START_DATE; livefront ladder: $LADDER_DESC; livefront ingest: $PROTO"
for w in "${WARNINGS[@]}"; do echo "WARNING: $w"; done
echo "$TABLE"
echo

if [ -z "${BENCH_NO_README:-}" ]; then
  README=$ROOT/bench/README.md
  [ -f "$README" ] || printf '# livefront benchmarks\n\n## Results\n' >"$README"
  {
    echo
    echo "### passthrough.sh, $START_DATE"
    echo
    echo "- livefront $COMMIT (binary built $BIN_DATE), ladder $LADDER_DESC; PROTO=$PROTO (livefront published to over $PROTO, nginx over rtmp) RUNS=$RUNS STREAMS=$STREAMS DURATION=$DURATION GOP_S=$GOP_S"
    echo "- machine: $MACHINE"
    echo "- $VERSIONS"
    echo "- source: $SRC_DESC"
    echo "- load average at start $LOAD_START, at end $LOAD_END; other build/test processes at start: $OTHERS_START"
    for n in $(printf '%s\n' 1 "$STREAMS" | uniq); do
      echo "- $n-stream runs: load average livefront ${RES[livefront,$n,load]}, nginx ${RES[nginx,$n,load]}; other processes at their start: livefront run ${RES[livefront,$n,others]}; nginx run ${RES[nginx,$n,others]}"
    done
    [ -z "${BENCH_NOTE:-}" ] || echo "- note: $BENCH_NOTE"
    for w in "${WARNINGS[@]}"; do echo "- WARNING: $w"; done
    echo
    echo "$TABLE"
  } >>"$README"
  log "appended results to $README"
fi
