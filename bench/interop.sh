#!/usr/bin/env bash
# Interop benchmark: every publisher of the interop matrix, N times each, on a loaded box (a 720p30
# publisher transcoded through the default ladder beside it); successes out of tries per publisher.
# A try succeeds when its stream goes live, the publisher exits cleanly (it was not disconnected),
# the recording becomes ready with the published tracks and at least the published length minus
# 0.7 s, and the HLS master plays in ffprobe with those tracks. The goal: every try, every publisher.
# See bench/README.md. Needs ffmpeg/ffprobe, gst-launch-1.0 (plugins good/bad/ugly, libav),
# srt-live-transmit (srt-tools), curl, jq. Binds only 127.0.0.1; stops every process it starts.
#
# Environment (all optional):
#   N=5                tries per publisher
#   PUBLISH_S=4        seconds each publisher sends (320x240)
#   LOAD=1             0: no transcoding load beside the tries
#   LIVEFRONT_BIN=target/release/livefront   (a debug build works too; the results say which)
#   BENCH_TIMEOUT=3600 hard limit for the whole run, seconds
#   BENCH_NOTE=...     free text stored with the results
#   BENCH_NO_README=1  do not append to bench/README.md
#   KEEP_TMP=1         keep the temp dir (server log, data dir, publisher logs)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TIMEOUT=${BENCH_TIMEOUT:-3600}
if [ -z "${BENCH_INTEROP_BOUNDED:-}" ]; then
  export BENCH_INTEROP_BOUNDED=1
  exec timeout --foreground --kill-after=60 "$BENCH_TIMEOUT" bash "$0" "$@"
fi

N=${N:-5}
PUBLISH_S=${PUBLISH_S:-4}
LOAD=${LOAD:-1}
LIVEFRONT_BIN=${LIVEFRONT_BIN:-$ROOT/target/release/livefront}
ADMIN=bench-interop-admin-token-0123456789
LIVE_DEADLINE_S=30
RECORDING_DEADLINE_S=60

log() { printf '[interop %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in ffmpeg ffprobe gst-launch-1.0 srt-live-transmit curl jq timeout; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install ffmpeg gstreamer1.0-tools srt-tools curl jq)"
done
[ -x "$LIVEFRONT_BIN" ] || die "$LIVEFRONT_BIN is missing: cargo build --release --locked"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfinterop.XXXXXX")
PIDS=()
cleanup() {
  # Publishers run in their own process group (setsid): stop the group, not just its shell.
  for pid in "${PIDS[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -z "${KEEP_TMP:-}" ]; then rm -rf "$TMP"; else log "kept $TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- server -------------------------------------------------------------------------------------
# (LIVEFRONT_BIN is this script's knob, not the server's: every LIVEFRONT_ variable is config.)
env -u LIVEFRONT_BIN LIVEFRONT_DATA_DIR=$TMP/data LIVEFRONT_HTTP_ADDR=127.0.0.1:0 LIVEFRONT_RTMP_ADDR=127.0.0.1:0 \
  LIVEFRONT_SRT_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 LIVEFRONT_ADMIN_TOKEN=$ADMIN \
  LIVEFRONT_CONFIG=/dev/null LIVEFRONT_LADDER=passthrough RUST_LOG=${RUST_LOG:-warn} \
  "$LIVEFRONT_BIN" serve >"$TMP/server.out" 2>"$TMP/server.log" &
PIDS+=($!)
for _ in $(seq 300); do
  grep -q "SRT ingest" "$TMP/server.out" 2>/dev/null && break
  sleep 0.1
done
HTTP=$(awk '/HTTP API/ {print $3; exit}' "$TMP/server.out" | sed 's/localhost/127.0.0.1/')
RTMP=$(awk '/RTMP ingest/ {print $3; exit}' "$TMP/server.out" | sed 's/localhost/127.0.0.1/')
SRT=$(awk '/SRT ingest/ {print $3; exit}' "$TMP/server.out" | sed 's/localhost/127.0.0.1/')
[ -n "$HTTP" ] && [ -n "$RTMP" ] && [ -n "$SRT" ] || die "no server banner: $(cat "$TMP/server.out" "$TMP/server.log")"
SRT_PORT=${SRT##*:}
TOKEN=$(curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"handle":"bench"}' "$HTTP/api/v1/creators" | jq -r .token)
log "server $HTTP, rtmp $RTMP, srt $SRT"

# A public stream (HLS open to ffprobe); prints "id key".
new_stream() {
  local body
  body=$(jq -nc --arg t "$1" --arg l "${2:-}" '{title: $t, mode: "public"} + (if $l == "" then {} else {ladder: $l} end)')
  curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$body" \
    "$HTTP/api/v1/streams" | jq -r '"\(.id) \(.stream_key)"'
}
stream_json() { curl -sf -H "Authorization: Bearer $TOKEN" "$HTTP/api/v1/streams/$1"; }

# --- load ---------------------------------------------------------------------------------------
if [ "$LOAD" = 1 ]; then
  read -r LOAD_ID LOAD_KEY < <(new_stream load default)
  ffmpeg -hide_banner -loglevel error -nostdin -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 3600 -c:v libx264 -preset veryfast -bf 2 \
    -g 60 -pix_fmt yuv420p -c:a aac -f flv "$RTMP/$LOAD_KEY" >"$TMP/load.log" 2>&1 &
  PIDS+=($!)
  log "load: 720p30 through the default ladder on stream $LOAD_ID"
fi

# --- publishers -----------------------------------------------------------------------------------
# Each: name, expected tracks, and a command line (KEY and URLs substituted) run under bash.
S=$PUBLISH_S
ffmpeg_cmd() { # bframes gop_frames rate channels video audio format url
  local a="ffmpeg -hide_banner -loglevel error -nostdin -re"
  [ "$5" = 1 ] && a+=" -f lavfi -i testsrc2=size=320x240:rate=30"
  [ "$6" = 1 ] && a+=" -f lavfi -i sine=frequency=440:sample_rate=$3"
  a+=" -t $S"
  [ "$5" = 1 ] && a+=" -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf $1 -g $2 -keyint_min $2 -sc_threshold 0"
  [ "$6" = 1 ] && a+=" -c:a aac -b:a 128k -ar $3 -ac $4"
  echo "$a -f $7 '$8'"
}
gst_rtmp_cmd() { # fps bframes rate channels url
  echo "gst-launch-1.0 -q -e videotestsrc is-live=true num-buffers=$(($1 * S)) ! video/x-raw,width=320,height=240,framerate=$1/1 \
    ! x264enc speed-preset=ultrafast bframes=$2 key-int-max=$((2 * $1)) bitrate=800 ! video/x-h264,profile=high ! h264parse \
    ! queue ! flvmux name=m streamable=true ! rtmp2sink location='$5' \
    audiotestsrc is-live=true num-buffers=$(($3 * S / 1024)) ! audio/x-raw,rate=$3,channels=$4 ! audioconvert \
    ! avenc_aac ! aacparse ! queue ! m."
}
publisher() { # name key -> command
  local url="$RTMP/$2" srt="srt://127.0.0.1:$SRT_PORT?streamid=publish:$2"
  case "$1" in
  ffmpeg-bf0-gop1-44k-mono) ffmpeg_cmd 0 30 44100 1 1 1 flv "$url" ;;
  ffmpeg-bf2-gop2-48k-stereo) ffmpeg_cmd 2 60 48000 2 1 1 flv "$url" ;;
  ffmpeg-bf3-gop4-44k-stereo) ffmpeg_cmd 3 120 44100 2 1 1 flv "$url" ;;
  ffmpeg-audio-only) ffmpeg_cmd 0 60 48000 2 0 1 flv "$url" ;;
  ffmpeg-video-only) ffmpeg_cmd 2 60 48000 2 1 0 flv "$url" ;;
  ffmpeg-srt) ffmpeg_cmd 2 60 48000 2 1 1 mpegts "$srt&linger=1" ;;
  gst-rtmp2sink-30fps-bf0) gst_rtmp_cmd 30 0 48000 2 "$url" ;;
  gst-rtmp2sink-30fps-bf2) gst_rtmp_cmd 30 2 48000 2 "$url" ;;
  gst-rtmp2sink-60fps-bf0) gst_rtmp_cmd 60 0 44100 1 "$url" ;;
  gst-rtmp2sink-60fps-bf2) gst_rtmp_cmd 60 2 44100 1 "$url" ;;
  gst-srtsink-mpegtsmux)
    echo "gst-launch-1.0 -q -e videotestsrc is-live=true num-buffers=$((30 * S)) ! video/x-raw,width=320,height=240,framerate=30/1 \
      ! x264enc speed-preset=ultrafast bframes=2 key-int-max=60 bitrate=800 ! h264parse ! queue ! mpegtsmux name=m alignment=7 \
      ! srtsink uri=srt://127.0.0.1:$SRT_PORT streamid=publish:$2 latency=200 wait-for-connection=true \
      audiotestsrc is-live=true num-buffers=$((48000 * S / 1024)) ! audio/x-raw,rate=48000,channels=2 ! audioconvert \
      ! avenc_aac ! aacparse ! queue ! m." ;;
  srt-live-transmit)
    # It keeps running at the end of its input: SIGINT (a clean close) once the input is done.
    echo "$(ffmpeg_cmd 2 60 48000 2 1 1 mpegts -) | timeout --preserve-status -s INT $((S + 3)) srt-live-transmit -q file://con '$srt'" ;;
  *) die "unknown publisher $1" ;;
  esac
}
tracks_of() {
  case "$1" in
  ffmpeg-audio-only) echo aac ;;
  ffmpeg-video-only) echo h264 ;;
  *) echo h264,aac ;;
  esac
}
PUBLISHERS=(ffmpeg-bf0-gop1-44k-mono ffmpeg-bf2-gop2-48k-stereo ffmpeg-bf3-gop4-44k-stereo
  ffmpeg-audio-only ffmpeg-video-only ffmpeg-srt gst-rtmp2sink-30fps-bf0 gst-rtmp2sink-30fps-bf2
  gst-rtmp2sink-60fps-bf0 gst-rtmp2sink-60fps-bf2 gst-srtsink-mpegtsmux srt-live-transmit)

# "h264,aac": the codecs ffprobe finds (a master playlist's programs list them again: not counted).
codecs_of() {
  timeout 60 ffprobe -v error -show_entries stream=codec_name -of json "$1" |
    jq -r '[.streams[].codec_name] | join(",")'
}

# One try; sets RESULT to "ok" or the reason it failed.
try_once() {
  local name=$1 n=$2 id key
  read -r id key < <(new_stream "$name #$n")
  # Started here (not in the command substitution below) so that the exit trap stops it.
  setsid bash -c "$(publisher "$name" "$key"); echo \"exit \$?\" >'$TMP/$name-$n.status'" >"$TMP/$name-$n.log" 2>&1 &
  PIDS+=($!)
  RESULT=$(check_try "$name" "$n" "$id" $!)
}
check_try() {
  local name=$1 n=$2 id=$3 pid=$4 live=0 state v codecs dur rec_codecs
  for _ in $(seq $((LIVE_DEADLINE_S * 10))); do
    state=$(stream_json "$id" | jq -r .state)
    if [ "$state" = live ]; then live=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  if ! grep -q "^exit 0$" "$TMP/$name-$n.status" 2>/dev/null; then
    echo "publisher exited non-zero ($(tail -c 200 "$TMP/$name-$n.log" | tr '\n' ' '))"
    return
  fi
  [ "$live" = 1 ] || { echo "never seen live"; return; }
  for _ in $(seq $((RECORDING_DEADLINE_S * 10))); do
    v=$(stream_json "$id")
    state=$(jq -r '.recording.state // empty' <<<"$v")
    [ "$state" = ready ] || [ "$state" = failed ] && break
    sleep 0.1
  done
  [ "$state" = ready ] || { echo "recording $state: $(jq -c .recording <<<"$v")"; return; }
  dur=$(jq -r .recording.duration_s <<<"$v")
  awk -v d="$dur" -v s="$S" 'BEGIN { exit !(d >= s - 0.7) }' || { echo "recording $dur s of $S"; return; }
  rec_codecs=$(codecs_of "$TMP/data/streams/$id/recording.mp4")
  [ "$rec_codecs" = "$(tracks_of "$name")" ] || { echo "recording has $rec_codecs"; return; }
  codecs=$(codecs_of "$HTTP/hls/$id/master.m3u8")
  [ "$codecs" = "$(tracks_of "$name")" ] || { echo "HLS has $codecs"; return; }
  echo ok
}

declare -A OK
declare -a FAILURES=()
START=$(date +%s)
for n in $(seq "$N"); do
  for name in "${PUBLISHERS[@]}"; do
    try_once "$name" "$n"
    result=$RESULT
    if [ "$result" = ok ]; then
      OK[$name]=$((${OK[$name]:-0} + 1))
    else
      FAILURES+=("$name #$n: $result")
    fi
    log "$name #$n: $result"
  done
done
ELAPSED=$(($(date +%s) - START))
LOAD_STATE=none
if [ "$LOAD" = 1 ]; then
  LOAD_STATE=$(stream_json "$LOAD_ID" | jq -r '"\(.state); health warnings: \((.health.warnings // []) | if . == [] then "none" else join("; ") end)"' 2>/dev/null || echo "?")
  log "load stream at the end: $LOAD_STATE"
fi

TABLE="| publisher | successes / tries |
|---|---|"
for name in "${PUBLISHERS[@]}"; do
  TABLE+=$'\n'"| \`$name\` | ${OK[$name]:-0} / $N |"
done
echo "$TABLE"
for f in "${FAILURES[@]}"; do echo "failed: $f"; done

if [ -z "${BENCH_NO_README:-}" ]; then
  {
    echo
    echo "### interop.sh, $(date -u +%Y-%m-%dT%H:%MZ) ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    echo
    echo "N=$N, ${PUBLISH_S} s per publish at 320x240, load: $([ "$LOAD" = 1 ] && echo "720p30 through the default ladder beside it (at the end: $LOAD_STATE)" || echo none);" \
      "binary \`${LIVEFRONT_BIN#"$ROOT"/}\`; $(nproc) cores; ${ELAPSED} s.${BENCH_NOTE:+ Note: $BENCH_NOTE}"
    echo
    echo "$TABLE"
    if [ "${#FAILURES[@]}" -gt 0 ]; then
      echo
      for f in "${FAILURES[@]}"; do echo "- $f"; done
    fi
  } >>"$ROOT/bench/README.md"
  log "appended to bench/README.md"
fi
