#!/usr/bin/env bash
# Glass-to-screen latency of low-latency HLS in hls.js (headless Chromium), with a real RTMP
# publisher on loopback, plus livefront's own "last frame of a part -> part listed" latency.
#
# examples/stamp_publisher writes raw frames with the wall-clock time (ms) stamped into the
# picture; ffmpeg encodes them (x264 zerolatency, 2 s GOP) and publishes over RTMP to the release
# binary; bench/llhls-watch.mjs plays /hls/{id}/master.m3u8 with hls.js and, on every presented
# frame, reads the stamp back and records now - stamp. At the end /metrics gives the server's
# livefront_ll_part_latency_seconds quantiles.
#
# Needs: cargo build --release --locked && cargo build --release --locked --example stamp_publisher,
# ffmpeg, curl, node + scripts/install-web-test-deps.sh (chromium, tests/web/node_modules).
#
# Environment (all optional):
#   LADDER=passthrough  LIVEFRONT_LADDER (default: source only; "default" adds the transcoded rungs)
#   MEASURE_S=60        seconds measured
#   WARMUP_S=10         seconds discarded first
#   BITRATE=1500k       publisher's video bitrate
#   PUBLISH=rtmp        whip: the stamped frames go over WHIP instead (tests/whip/publish.py:
#                       webrtcbin, x264 zerolatency with a keyframe only when livefront asks, Opus)
#   AUDIO=1             0: publish video only (no lavfi sine + AAC)
#   HLSJS_CONFIG='{"liveSyncOnStallIncrease":0}'   hls.js options (JSON) on top of lowLatencyMode:
#                       true; hls.js's default adds 1 s to its target latency per stall, for good
#   BENCH_NOTE=…        free text stored with the results
#   BENCH_NO_README=1   do not append to bench/README.md
#   KEEP_TMP=1          keep the temp dir (logs)
#   SERVER_BIN, STAMP_BIN   other binaries than target/release/… (not LIVEFRONT_*: the server reads those)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LADDER=${LADDER:-passthrough}
MEASURE_S=${MEASURE_S:-60}
WARMUP_S=${WARMUP_S:-10}
BITRATE=${BITRATE:-1500k}
AUDIO=${AUDIO:-1}
PUBLISH=${PUBLISH:-rtmp}
case "$PUBLISH" in rtmp | whip) ;; *) echo "PUBLISH is rtmp or whip" >&2; exit 1 ;; esac
# No -re on the sine: paced from ffmpeg's start, its timestamps lag the video's (whose clock started
# with stamp_publisher) and the FLV interleaver then holds every video packet ~0.4 s for audio.
# Unpaced, the audio runs ahead and waits instead; the raw video pipe paces the whole publisher.
AUDIO_IN=(-f lavfi -i sine=frequency=440:sample_rate=48000)
AUDIO_OUT=(-c:a aac -shortest)
[ "$AUDIO" = 1 ] || { AUDIO_IN=(); AUDIO_OUT=(-an); }
HLSJS_CONFIG=${HLSJS_CONFIG:-'{"liveSyncOnStallIncrease":0}'}
BIN=${SERVER_BIN:-$ROOT/target/release/livefront}
STAMP=${STAMP_BIN:-$ROOT/target/release/examples/stamp_publisher}
[ -x "$BIN" ] || { echo "build it first: cargo build --release --locked" >&2; exit 1; }
[ -x "$STAMP" ] || { echo "build it first: cargo build --release --locked --example stamp_publisher" >&2; exit 1; }
[ -d "$ROOT/tests/web/node_modules/playwright-core" ] || { echo "run scripts/install-web-test-deps.sh" >&2; exit 1; }
for tool in ffmpeg curl node; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/llhls-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP=$(free_port); RTMP=$(free_port)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

LIVEFRONT_DATA_DIR=$WORK/data LIVEFRONT_HTTP_ADDR=127.0.0.1:$HTTP LIVEFRONT_RTMP_ADDR=127.0.0.1:$RTMP \
  LIVEFRONT_SRT_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 LIVEFRONT_LADDER=$LADDER \
  LIVEFRONT_WHIP_ICE_ADDRESSES=127.0.0.1 \
  "$BIN" serve >"$WORK/server.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "OBS Stream Key" "$WORK/server.log" && break; sleep 0.2; done
TOKEN=$(awk '/^  demo API token / {print $4}' "$WORK/server.log")
ID=$(awk '/^  stream id / {print $3}' "$WORK/server.log")
KEY=$(awk '/^  OBS Stream Key / {print $4}' "$WORK/server.log")
[ -n "$KEY" ] || { echo "livefront did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
API=http://127.0.0.1:$HTTP
curl -fsS -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"mode":"public"}' "$API/api/v1/streams/$ID/mode" >/dev/null

# The publisher runs for the whole bench plus a margin; its pipeline is one job, stopped by PID.
PUB_S=$((WARMUP_S + MEASURE_S + 60))
if [ "$PUBLISH" = whip ]; then
  "$STAMP" 640 360 30 "$PUB_S" 2>"$WORK/stamp.log" |
    /usr/bin/python3 "$ROOT/tests/whip/publish.py" "$API/whip/$ID" "$KEY" --size 640x360 \
      --raw-stdin 30 --seconds "$PUB_S" --kbps "${BITRATE%k}" >"$WORK/ffmpeg.log" 2>&1 &
else
  "$STAMP" 640 360 30 "$PUB_S" 2>"$WORK/stamp.log" |
    ffmpeg -hide_banner -loglevel error -nostdin \
      -f rawvideo -pix_fmt yuv420p -s 640x360 -r 30 -i - \
      "${AUDIO_IN[@]}" \
      -c:v libx264 -preset veryfast -tune zerolatency -g 60 -keyint_min 60 -sc_threshold 0 -b:v "$BITRATE" \
      "${AUDIO_OUT[@]}" -f flv "rtmp://127.0.0.1:$RTMP/live/$KEY" 2>"$WORK/ffmpeg.log" &
fi
PIDS+=($!)
PUB_JOB=$!

MASTER=$API/hls/$ID/master.m3u8
for _ in $(seq 150); do curl -fsS "$MASTER" 2>/dev/null | grep -q 'll/' && break; sleep 0.2; done
LL=$(curl -fsS "$MASTER" | grep -m1 '^ll/')
for _ in $(seq 150); do curl -fsS "$API/hls/$ID/$LL" 2>/dev/null | grep -q '#EXT-X-PART:' && break; sleep 0.2; done
PART=$(curl -fsS "$API/hls/$ID/$LL" | sed -n 's/^#EXT-X-PART-INF:PART-TARGET=\([0-9.]*\).*/\1/p')

node "$ROOT/bench/llhls-watch.mjs" "$MASTER" "$MEASURE_S" "$WARMUP_S" "$HLSJS_CONFIG" >"$WORK/watch.json" 2>"$WORK/watch.log" &
WATCH=$!
PIDS+=($WATCH)
wait "$WATCH" || { echo "llhls-watch.mjs failed:" >&2; cat "$WORK/watch.log" >&2; exit 1; }
kill -0 "$PUB_JOB" 2>/dev/null || { echo "the publisher stopped early:" >&2; cat "$WORK/ffmpeg.log" "$WORK/stamp.log" >&2; exit 1; }
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
WATCH_JSON=$(cat "$WORK/watch.json")
quantile() { curl -fsS "$API/metrics" | awk -v q="$1" -F'[ "]' '$1 ~ /^livefront_ll_part_latency_seconds/ && $2 == q {printf "%.0f", $4 * 1000}'; }
P50=$(quantile 0.5); P90=$(quantile 0.9); P99=$(quantile 0.99)
field() { node -e 'const r = JSON.parse(process.argv[1]); console.log(r[process.argv[2]] ?? "-")' "$WATCH_JSON" "$1"; }

RESULT="glass-to-screen in hls.js: median $(field median_ms) ms, p90 $(field p90_ms) ms (p10 $(field p10_ms), min $(field min_ms), max $(field max_ms); $(field count) frames over ${MEASURE_S} s, $(field undecodable) undecodable, $(field seeks) seeks); hls.js latency median $(field hlsjs_latency_median_s) s, target $(field hlsjs_target_latency_median_s) s; server part latency p50 ${P50} ms, p90 ${P90} ms, p99 ${P99} ms; parts ${PART} s (hls.js's rendition: $(field part_target_s) s, $(field video_size)), ladder ${LADDER}, audio ${AUDIO}, published over ${PUBLISH}, hls.js options $HLSJS_CONFIG"
echo "$RESULT"
echo "$WATCH_JSON"
if [ -z "${BENCH_NO_README:-}" ]; then
  {
    printf '\n### llhls.sh, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- livefront %s; LADDER=%s MEASURE_S=%s WARMUP_S=%s BITRATE=%s\n' \
      "$(git -C "$ROOT" rev-parse --short HEAD)" "$LADDER" "$MEASURE_S" "$WARMUP_S" "$BITRATE"
    printf -- '- %s\n' "$RESULT"
    printf -- '- %s cores, load average at start %s, at end %s\n' "$(nproc)" "$LOAD_START" "$LOAD_END"
    [ -z "${BENCH_NOTE:-}" ] || printf -- '- note: %s\n' "$BENCH_NOTE"
  } >>"$ROOT/bench/README.md"
fi
