#!/usr/bin/env bash
# Capacity benchmark: the largest number of concurrent 1080p30 6 Mb/s passthrough streams that
# livefront keeps in real time with every segment written, and nginx-rtmp's number beside it.
# See bench/README.md ("What capacity.sh measures"). Needs: a release build, ffmpeg/ffprobe,
# nginx + libnginx-mod-rtmp, curl, jq (`make bench` installs them). Binds only 127.0.0.1. Every
# process it starts is stopped on exit.
#
# Environment (all optional):
#   STEPS="20 40 60 80 100"  publisher counts tried, in order; a server's search stops at its first failure
#   DURATION=20              seconds of pre-encoded media per publisher
#   GOP_S=2                  keyframe interval of the media (= the segment length of both servers)
#   PER_PUBLISHER=10         streams sent by one ffmpeg process (one read of the file, N `-c copy` outputs)
#   START_GAP_S=0.3          pause between starting two publisher processes
#   SERVERS="livefront nginx"
#   SERVER_BIN=target/release/livefront  (not LIVEFRONT_BIN: every LIVEFRONT_ variable is server config)
#   BENCH_TIMEOUT=900        hard limit for the whole run, seconds
#   BENCH_NOTE=...           free text stored with the results
#   BENCH_NO_README=1        do not append to bench/README.md
#   KEEP_TMP=1               keep the temp dir (logs; media and data dirs are removed after each step)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TIMEOUT=${BENCH_TIMEOUT:-900}
if [ -z "${BENCH_CAPACITY_BOUNDED:-}" ]; then
  export BENCH_CAPACITY_BOUNDED=1
  exec timeout --foreground --kill-after=60 "$BENCH_TIMEOUT" bash "$0" "$@"
fi

STEPS=${STEPS:-20 40 60 80 100}
DURATION=${DURATION:-20}
GOP_S=${GOP_S:-2}
PER_PUBLISHER=${PER_PUBLISHER:-10}
START_GAP_S=${START_GAP_S:-0.3}
SERVERS=${SERVERS:-livefront nginx}
SERVER_BIN=${SERVER_BIN:-$ROOT/target/release/livefront}
NGINX_RTMP_MODULE=${NGINX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
STARTUP_DEADLINE_S=30
END_DEADLINE_S=180
# A publisher "kept real time" when its -re run took at most this much longer than the media. Its
# wall time includes ffmpeg's start and its PER_PUBLISHER RTMP connections, one after another: on a
# loaded box up to 2.4 s for nginx-rtmp at 0.09 cores (not behind), while a server that stops
# reading makes it run for twice the media (41.7 s for 20 s in a trial).
LATE_S=3

log() { printf '[capacity %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in ffmpeg ffprobe nginx curl jq timeout /usr/bin/time; do
  command -v "$tool" >/dev/null || die "$tool is missing: run make bench (bench/install-deps.sh installs it)"
done
[ -f "$NGINX_RTMP_MODULE" ] || die "$NGINX_RTMP_MODULE is missing: apt-get install libnginx-mod-rtmp"
[ -x "$SERVER_BIN" ] || die "$SERVER_BIN is missing: cargo build --release --locked"

# As in passthrough.sh: names without "livefront" or "ffmpeg", so that a `pkill` elsewhere on the
# box does not stop the processes under test.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfcapacity.XXXXXX")
PIDS=()
LF_BIN=$TMP/lfcap-server
PUB_BIN=$TMP/lfcap-pub
cp "$SERVER_BIN" "$LF_BIN"
ln -s "$(command -v ffmpeg)" "$PUB_BIN"

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
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

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { local s f; s=$(<"/proc/$1/stat"); s=${s##*) }; read -r -a f <<<"$s"; echo $((f[11] + f[12])); }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
server_ok() { # pid name log
  kill -0 "$1" 2>/dev/null || die "$2 exited during the run: $(tail -5 "$3" 2>/dev/null)"
  if [ "$2" = livefront ] && grep -q 'shutting down' "$3"; then
    die "livefront received SIGTERM/SIGINT from outside this script during the run"
  fi
}

# ---------------------------------------------------------------------------------------------
# Media: as passthrough.sh, DURATION s of testsrc2 1080p30 H.264 High (3 B-frames, fixed GOP),
# 6 Mb/s, + AAC 48 kHz stereo 128 kb/s, in FLV.
SRC=$TMP/src-1080p30.flv
log "pre-encoding ${DURATION}s of 1080p30 6 Mb/s H.264 + AAC"
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$DURATION" -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf 3 \
  -g $((GOP_S * 30)) -keyint_min $((GOP_S * 30)) -sc_threshold 0 -b:v 6M -maxrate 6M -bufsize 12M \
  -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "$SRC"
SRC_DESC="$(ffprobe -v error -select_streams v:0 -show_entries stream=profile,width,height,r_frame_rate \
  -of compact=p=0:nk=0 "$SRC"); GOP ${GOP_S}s; $(du -k "$SRC" | cut -f1) KiB"

# Publishers: one ffmpeg process per PER_PUBLISHER URLs reads the file once at real time (-re) and
# copies it to each URL. Sets PUB_PIDS; each process writes "wall user sys" to $dir/pub-K.time.
start_publishers() { # dir url...
  local dir=$1 k=0 args=() url
  shift
  PUB_PIDS=()
  while (($# > 0)); do
    k=$((k + 1)) args=()
    for url in "${@:1:$PER_PUBLISHER}"; do args+=(-map 0 -c copy -f flv "$url"); done
    shift $(($# < PER_PUBLISHER ? $# : PER_PUBLISHER))
    timeout --kill-after=10 $((DURATION + 120)) /usr/bin/time -f '%e %U %S' -o "$dir/pub-$k.time" \
      "$PUB_BIN" -hide_banner -nostats -loglevel warning -nostdin -re -i "$SRC" "${args[@]}" >"$dir/pub-$k.log" 2>&1 &
    PUB_PIDS+=("$!")
    PIDS+=("$!")
    # One address may hold only a few connections that have not published yet (livefront's
    # rtmp admission, 8): every process opens its outputs one after another, so starting them
    # a moment apart keeps all of them from one loopback address within that bound.
    sleep "$START_GAP_S"
  done
}

# Waits for the publishers; sets P_WALL (slowest publisher's wall time, s), P_CPU (their CPU-s),
# P_FAILED (publishers that exited with an error).
wait_publishers() { # dir server_pid server_name server_log
  local dir=$1 pid rc f
  P_FAILED=0
  for pid in "${PUB_PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do server_ok "$2" "$3" "$4"; sleep 0.5; done
    rc=0; wait "$pid" || rc=$?
    forget_pid "$pid"
    [ "$rc" -eq 0 ] || P_FAILED=$((P_FAILED + 1))
  done
  P_WALL=0 P_CPU=0
  for f in "$dir"/pub-*.time; do
    read -r wall user sys < <(tail -1 "$f")
    P_WALL=$(awk -v a="$P_WALL" -v b="$wall" 'BEGIN { print (b > a) ? b : a }')
    P_CPU=$(awk -v a="$P_CPU" -v u="$user" -v s="$sys" 'BEGIN { print a + u + s }')
  done
}

# ---------------------------------------------------------------------------------------------
LF_PID="" LF_HTTP="" LF_TOKEN="" LF_DIR=""
start_livefront() { # dir
  LF_DIR=$1
  mkdir -p "$LF_DIR/data"
  (cd "$LF_DIR" && exec env LIVEFRONT_LADDER=passthrough LIVEFRONT_SRT_ADDR=127.0.0.1:0 RUST_LOG="${RUST_LOG:-info}" \
    LIVEFRONT_DATA_DIR="$LF_DIR/data" LIVEFRONT_HTTP_ADDR=127.0.0.1:0 LIVEFRONT_RTMP_ADDR=127.0.0.1:0 \
    LIVEFRONT_RTSP_ADDR=127.0.0.1:0 "$LF_BIN" serve) >"$LF_DIR/stdout" 2>"$LF_DIR/stderr" &
  LF_PID=$!
  PIDS+=("$LF_PID")
  local deadline=$(($(now_ms) + STARTUP_DEADLINE_S * 1000)) port
  until grep -q 'demo API token' "$LF_DIR/stdout" 2>/dev/null; do
    kill -0 "$LF_PID" 2>/dev/null || die "livefront exited: $(tail -5 "$LF_DIR/stderr")"
    (($(now_ms) < deadline)) || die "livefront did not start in ${STARTUP_DEADLINE_S}s"
    sleep 0.05
  done
  LF_TOKEN=$(awk '/demo API token/ { print $4 }' "$LF_DIR/stdout")
  port=$(sed -nE 's/^ *HTTP API +http:\/\/[^:]+:([0-9]+).*/\1/p' "$LF_DIR/stdout" | head -1)
  LF_HTTP=http://127.0.0.1:$port
}

stop_server() { # pid
  kill -TERM "$1" 2>/dev/null || true
  local deadline=$(($(now_ms) + 60000))
  while kill -0 "$1" 2>/dev/null && (($(now_ms) < deadline)); do sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

lf_api() { curl -fsS --max-time 10 -H "Authorization: Bearer $LF_TOKEN" "$@"; }

# One step for livefront: N streams created through the API, published at once.
step_livefront() { # n dir
  local n=$1 dir=$2 i json ids=() events=() urls=() c0 c1 t0 t1 id segs
  start_livefront "$dir"
  for ((i = 0; i < n; i++)); do
    json=$(lf_api -X POST -H 'Content-Type: application/json' -d '{"title":"capacity"}' "$LF_HTTP/api/v1/streams") \
      || die "POST /api/v1/streams failed"
    ids+=("$(jq -r .id <<<"$json")")
    urls+=("$(jq -r .ingest.rtmp <<<"$json" | sed 's#://localhost:#://127.0.0.1:#')")
    events+=("$(jq -r .playback.hls <<<"$json" | sed -e 's#://localhost:#://127.0.0.1:#' -e 's#/master\.m3u8#/source/event.m3u8#')")
  done
  c0=$(cpu_ticks "$LF_PID") t0=$(now_ms)
  start_publishers "$dir" "${urls[@]}"
  wait_publishers "$dir" "$LF_PID" livefront "$dir/stderr"
  c1=$(cpu_ticks "$LF_PID") t1=$(now_ms)
  # Segments closed by the time the publishers stopped (the last one closes at the end).
  R_SEGS=""
  for ((i = 0; i < n; i++)); do
    segs=$(curl -fsS --max-time 5 "${events[i]}" | grep -c '^#EXTINF' || true)
    [ -n "$R_SEGS" ] && ((segs >= R_SEGS)) || R_SEGS=$segs
  done
  R_RSS=$(status_kb "$LF_PID" VmHWM)
  # Backlog: publishers gone -> every stream ended (HLS closed, recording finalised).
  local deadline=$(($(now_ms) + END_DEADLINE_S * 1000))
  # A stream whose publisher never got in stays `ready`: nothing to end (the step already fails on
  # "publishers failed"; at 100 streams from one address a saturated livefront closed
  # connections still in their handshake: 8 pending per address, 5 s to publish).
  local state
  for id in "${ids[@]}"; do
    while state=$(lf_api "$LF_HTTP/api/v1/streams/$id" | jq -r .state); [ "$state" != ended ] && [ "$state" != ready ]; do
      server_ok "$LF_PID" livefront "$dir/stderr"
      (($(now_ms) < deadline)) || die "livefront stream $id did not end in ${END_DEADLINE_S}s (state $state)"
      sleep 0.2
    done
  done
  R_BACKLOG=$(($(now_ms) - t1))
  R_CORES=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v ms=$((t1 - t0)) 'BEGIN { printf "%.2f", t / hz / (ms / 1000) }')
  stop_server "$LF_PID"
}

NG_PID=""
step_nginx() { # n dir
  local n=$1 dir=$2 i urls=() c0 c1 t0 t1 segs rtmp
  mkdir -p "$dir/hls" "$dir/tmp"
  rtmp=$(free_port)
  cat >"$dir/nginx.conf" <<EOF
load_module $NGINX_RTMP_MODULE;
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
rtmp {
  server {
    listen 127.0.0.1:$rtmp;
    chunk_size 4096;
    application live { live on; record off; hls on; hls_path $dir/hls; hls_fragment ${GOP_S}s; hls_playlist_length 12s; hls_cleanup off; }
  }
}
EOF
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout" 2>&1 &
  NG_PID=$!
  PIDS+=("$NG_PID")
  local deadline=$(($(now_ms) + STARTUP_DEADLINE_S * 1000))
  until (exec 3<>"/dev/tcp/127.0.0.1/$rtmp") 2>/dev/null; do
    kill -0 "$NG_PID" 2>/dev/null || die "nginx exited: $(tail -5 "$dir/error.log")"
    (($(now_ms) < deadline)) || die "nginx did not start in ${STARTUP_DEADLINE_S}s"
    sleep 0.05
  done
  for ((i = 1; i <= n; i++)); do urls+=("rtmp://127.0.0.1:$rtmp/live/cap$i"); done
  c0=$(cpu_ticks "$NG_PID") t0=$(now_ms)
  start_publishers "$dir" "${urls[@]}"
  wait_publishers "$dir" "$NG_PID" nginx "$dir/error.log"
  c1=$(cpu_ticks "$NG_PID") t1=$(now_ms)
  # nginx-rtmp creates a fragment's file when the fragment starts: closed ones are all but the newest.
  R_SEGS=""
  for ((i = 1; i <= n; i++)); do
    segs=$(($(find "$dir/hls" -name "cap$i-*.ts" | wc -l) - 1))
    [ -n "$R_SEGS" ] && ((segs >= R_SEGS)) || R_SEGS=$segs
  done
  R_RSS=$(status_kb "$NG_PID" VmHWM)
  R_BACKLOG=0
  R_CORES=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v ms=$((t1 - t0)) 'BEGIN { printf "%.2f", t / hz / (ms / 1000) }')
  stop_server "$NG_PID"
}

# ---------------------------------------------------------------------------------------------
START_DATE=$(date '+%Y-%m-%d %H:%M %Z')
LOAD_START=$(loadavg)
MIN_SEGS=$((DURATION / GOP_S - 1))
ROWS=()
declare -A BEST
for server in $SERVERS; do
  BEST[$server]=0
  for n in $STEPS; do
    dir="$TMP/$server-$n"
    mkdir -p "$dir"
    log "$server: $n publishers of ${DURATION}s (load $(loadavg))"
    "step_$server" "$n" "$dir"
    late=$(awk -v w="$P_WALL" -v d="$DURATION" -v l="$LATE_S" 'BEGIN { print (w > d + l) ? 1 : 0 }')
    ok=yes
    if ((P_FAILED > 0 || late == 1 || R_SEGS < MIN_SEGS)); then ok=no; fi
    row="| $server | $n | $ok | $R_SEGS | $P_WALL | $R_BACKLOG | $R_CORES | $(awk -v c="$P_CPU" -v w="$P_WALL" 'BEGIN { printf "%.2f", c / w }') | $((R_RSS / 1024)) | $P_FAILED |"
    ROWS+=("$row")
    log "  $row"
    # Keep the logs, not the media.
    rm -rf "$dir/data" "$dir/hls"
    [ "$ok" = yes ] || break
    BEST[$server]=$n
  done
done
LOAD_END=$(loadavg)

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
BIN_DATE=$(date -r "$SERVER_BIN" '+%Y-%m-%d %H:%M')
SUMMARY=""
for server in $SERVERS; do
  last=${STEPS##* }
  s=${BEST[$server]}
  [ "$s" = "$last" ] && s="≥ $s (every step passed)"
  SUMMARY="$SUMMARY${SUMMARY:+; }$server $s"
done
TABLE=$(
  echo "| server | streams | real time | segments closed, min per stream (of $MIN_SEGS needed) | slowest publisher wall (s, media ${DURATION} s) | backlog after publishers (ms) | server cores while publishing | publisher cores | peak RSS (MiB) | publishers failed |"
  echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
)
echo
echo "capacity, $START_DATE: largest real-time step: $SUMMARY"
echo "$TABLE"

if [ -z "${BENCH_NO_README:-}" ]; then
  {
    echo
    echo "### capacity.sh, $START_DATE"
    echo
    echo "- livefront $COMMIT (binary built $BIN_DATE), passthrough; STEPS=\"$STEPS\" DURATION=$DURATION GOP_S=$GOP_S PER_PUBLISHER=$PER_PUBLISHER"
    echo "- source: $SRC_DESC; $(nproc) cores; load average at start $LOAD_START, at end $LOAD_END"
    echo "- largest real-time step: $SUMMARY"
    [ -z "${BENCH_NOTE:-}" ] || echo "- note: $BENCH_NOTE"
    echo
    echo "$TABLE"
  } >>"$ROOT/bench/README.md"
  log "appended results to bench/README.md"
fi
