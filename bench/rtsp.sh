#!/usr/bin/env bash
# RTSP benchmark: server CPU-seconds per media-second and peak RSS (VmHWM) of one passthrough
# stream, fresh livefront per scenario, same media in all:
#   rtmp       ffmpeg publishes the file over RTMP (-re -c copy), as bench/passthrough.sh does
#   pull       livefront pulls the file from an RTSP "camera" (GStreamer's RTSP server, real time)
#   pull+out   the same, plus one RTSP-out viewer (ffmpeg -rtsp_transport tcp -c copy -f null)
# CPU = utime+stime delta of the livefront process from just before the stream is created until it
# has ended and its recording is ready. The camera ends with the file; livefront notices after its
# idle timeout (10 s of idle server, included). Needs a release build, ffmpeg, curl, jq,
# /usr/bin/python3 with python3-gi + gir1.2-gst-rtsp-server-1.0. Binds only 127.0.0.1; every
# process it starts is stopped on exit.
#
# Environment: DURATION=30 (s of 1080p30 media), RUNS=1 (runs per scenario), SCENARIOS="rtmp pull pull+out",
#   LIVEFRONT_BIN=target/release/livefront, KEEP_TMP=1 keeps the temp dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-30}
RUNS=${RUNS:-1}
LIVEFRONT_BIN=${LIVEFRONT_BIN:-$ROOT/target/release/livefront}
CAMERA=$ROOT/tests/support/rtsp_camera.py
CAM_USER=benchcam CAM_PASS=benchpass

log() { printf '[rtsp-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in ffmpeg ffprobe curl jq; do command -v "$tool" >/dev/null || die "$tool is missing"; done
[ -x "$LIVEFRONT_BIN" ] || die "$LIVEFRONT_BIN is missing: cargo build --release"
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null \
  || die "apt-get install python3-gi gir1.2-gst-rtsp-server-1.0"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfrtspbench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_TMP:-}" ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { local s f; s=$(<"/proc/$1/stat"); s=${s##*) }; read -r -a f <<<"$s"; echo $((f[11] + f[12])); }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

SRC=$TMP/src-1080p30.mp4
log "pre-encoding ${DURATION}s of 1080p30 H.264 (camera-like: main profile, no B-frames, 1 s GOP) + AAC"
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=1920x1080:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t "$DURATION" -map 0:v -map 1:a \
  -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -bf 0 -g 30 -keyint_min 30 \
  -sc_threshold 0 -b:v 6M -maxrate 6M -bufsize 12M -c:a aac -b:a 128k -ar 48000 -ac 2 "$SRC"

LF_PID="" LF_HTTP="" LF_TOKEN="" LF_RTSP_PORT=""
start_livefront() { # dir
  mkdir -p "$1/data"
  (cd "$1" && exec env RUST_LOG=info LIVEFRONT_LADDER=passthrough LIVEFRONT_DATA_DIR="$1/data" \
    LIVEFRONT_HTTP_ADDR=127.0.0.1:0 LIVEFRONT_RTMP_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 \
    "$LIVEFRONT_BIN" serve) >"$1/stdout" 2>"$1/stderr" &
  LF_PID=$!
  PIDS+=("$LF_PID")
  for _ in $(seq 300); do grep -q 'demo API token' "$1/stdout" 2>/dev/null && break; sleep 0.1; done
  LF_TOKEN=$(awk '/demo API token/ { print $4 }' "$1/stdout")
  LF_HTTP=http://127.0.0.1:$(sed -nE 's/^ *HTTP API +http:\/\/[^:]+:([0-9]+).*/\1/p' "$1/stdout" | head -1)
  LF_RTSP_PORT=$(sed -nE 's/^ *RTSP out +rtsp:\/\/[^:]+:([0-9]+).*/\1/p' "$1/stdout" | head -1)
  [ -n "$LF_TOKEN" ] && [ -n "$LF_RTSP_PORT" ] || die "livefront did not start: $(tail -3 "$1/stderr")"
}
stop_pid() { kill -TERM "$1" 2>/dev/null || true; for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
api() { curl -fsS --max-time 10 -H "Authorization: Bearer $LF_TOKEN" -H 'Content-Type: application/json' "$@"; }
wait_json() { # url jq-filter expected seconds
  for _ in $(seq $(($4 * 10))); do [ "$(api "$1" | jq -r "$2")" = "$3" ] && return 0; sleep 0.1; done
  die "$1: $2 never became $3"
}

# Sets R_CPU (s), R_HWM (MiB).
scenario() { # name
  local dir=$TMP/$1.$RANDOM cam_pid="" pub_pid="" viewer_pid="" c0 c1 body id
  mkdir -p "$dir"
  start_livefront "$dir"
  if [ "$1" != rtmp ]; then
    /usr/bin/python3 "$CAMERA" 0 "$CAM_USER" "$CAM_PASS" --file "$SRC" >"$dir/camera" 2>"$dir/camera.err" &
    cam_pid=$!; PIDS+=("$cam_pid")
    for _ in $(seq 100); do grep -q PORT "$dir/camera" && break; sleep 0.1; done
    body=$(jq -n --arg u "rtsp://$CAM_USER:$CAM_PASS@127.0.0.1:$(awk '/PORT/{print $2}' "$dir/camera")/cam" \
      '{title: "bench", mode: "public", source: {url: $u}}')
  else
    body='{"title": "bench", "mode": "public"}'
  fi
  c0=$(cpu_ticks "$LF_PID")
  id=$(api -X POST -d "$body" "$LF_HTTP/api/v1/streams" | jq -r .id)
  if [ "$1" = rtmp ]; then
    ffmpeg -hide_banner -loglevel error -nostdin -re -i "$SRC" -c copy -f flv \
      "$(api "$LF_HTTP/api/v1/streams/$id" | jq -r .ingest.rtmp | sed 's#localhost#127.0.0.1#')" &
    pub_pid=$!; PIDS+=("$pub_pid")
  fi
  wait_json "$LF_HTTP/api/v1/streams/$id" .state live 30
  if [ "$1" = pull+out ]; then
    for _ in $(seq 100); do curl -fs "$LF_HTTP/hls/$id/source/index.m3u8" | grep -q EXTINF && break; sleep 0.1; done
    ffmpeg -hide_banner -loglevel error -nostdin -rtsp_transport tcp -i "rtsp://127.0.0.1:$LF_RTSP_PORT/live/$id" \
      -c copy -f null - &
    viewer_pid=$!; PIDS+=("$viewer_pid")
  fi
  wait_json "$LF_HTTP/api/v1/streams/$id/recording" .state ready $((DURATION + 60))
  c1=$(cpu_ticks "$LF_PID")
  R_HWM=$(awk -v k="$(status_kb "$LF_PID" VmHWM)" 'BEGIN { printf "%.0f", k / 1024 }')
  R_CPU=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
  R_DUR=$(api "$LF_HTTP/api/v1/streams/$id/recording" | jq -r .duration_s)
  for pid in $viewer_pid $pub_pid $cam_pid; do stop_pid "$pid"; done
  stop_pid "$LF_PID"
}

printf '| scenario | run | CPU s | CPU s per media s | recorded s | peak RSS (MiB) |\n|---|---|---|---|---|---|\n'
for name in ${SCENARIOS:-rtmp pull pull+out}; do
  for run in $(seq "$RUNS"); do
    log "$name run $run"
    scenario "$name"
    printf '| %s | %d | %s | %s | %s | %s |\n' "$name" "$run" "$R_CPU" \
      "$(awk -v c="$R_CPU" -v d="$DURATION" 'BEGIN { printf "%.3f", c / d }')" "$R_DUR" "$R_HWM"
  done
done
