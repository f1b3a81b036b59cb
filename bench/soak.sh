#!/usr/bin/env bash
# Soak (issue 17): one release livefront for DURATION seconds under
#   - PUBLISHERS (20) passthrough publishers, RTMP and SRT alternating: small media encoded once
#     with ffmpeg, sent in a loop with `ffmpeg -re -stream_loop -1 -c copy` (FLV to rtmp://, MPEG-TS
#     to srt://);
#   - VIEWERS (1000) HLS viewers following the streams' live playlists and fetching every new
#     segment, and SOCKETS (1000) live-channel WebSockets with chat on the same streams
#     (examples/soak.rs, one process, loopback only).
# Reports errors (goal 0), segments missing (goal 0: a media-sequence gap or a 404 for a listed
# segment), server RSS at start/middle/end, p50/p99 playlist response time, server CPU; appends them
# to bench/README.md. Binds 127.0.0.1 only; every process it starts is stopped on exit.
#
# Environment (all optional):
#   DURATION=600 PUBLISHERS=20 VIEWERS=1000 SOCKETS=1000 CHAT_EVERY_S=2 SIZE=320x180 FPS=15 VBITRATE=200k
#   SERVER_BIN=target/release/livefront (not LIVEFRONT_*: the server reads those) SOAK_BIN=target/release/examples/soak
#   BENCH_NOTE=... (stored with the results)  BENCH_NO_README=1  KEEP_TMP=1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-600}
PUBLISHERS=${PUBLISHERS:-20}
export VIEWERS=${VIEWERS:-1000} SOCKETS=${SOCKETS:-1000} CHAT_EVERY_S=${CHAT_EVERY_S:-2}
SIZE=${SIZE:-320x180}
FPS=${FPS:-15}
VBITRATE=${VBITRATE:-200k}
SERVER_BIN=${SERVER_BIN:-$ROOT/target/release/livefront}
SOAK_BIN=${SOAK_BIN:-$ROOT/target/release/examples/soak}

# Bounded in time: re-run under timeout(1); on expiry the TERM trap stops everything we started.
if [ -z "${BENCH_SOAK_BOUNDED:-}" ]; then
  export BENCH_SOAK_BOUNDED=1
  exec timeout --foreground --kill-after=60 $((DURATION + 600)) bash "$0" "$@"
fi

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in ffmpeg ffprobe curl jq timeout; do
  command -v "$tool" >/dev/null || die "$tool is missing: run bench/install-deps.sh (and scripts/install-deps.sh)"
done
[ -x "$SERVER_BIN" ] || die "$SERVER_BIN is missing: cargo build --release --locked"
[ -x "$SOAK_BIN" ] || die "$SOAK_BIN is missing: cargo build --release --locked --example soak"

# Two sockets per viewer and live socket (client and server side), plus segments and publishers.
need=$((2 * (VIEWERS + SOCKETS) + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  [ "$(ulimit -n)" -ge "$need" ] || die "open files limit $(ulimit -n) < $need (raise the hard limit)"
fi

# Names without "livefront" or "ffmpeg" in them, as in passthrough.sh: a `pkill` elsewhere on the
# box must not stop the processes under test.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfsoak.XXXXXX")
PIDS=()
cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  # Newest first: the client and publishers before the server; TERM, then KILL.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill -TERM "${PIDS[i]}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "${KEEP_TMP:-}" ] || [ "$rc" -ne 0 ]; then log "kept $TMP (logs)"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# What is measured, taken now: a rebuild during the run must not change the report.
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock examples 2>/dev/null)" ]; then COMMIT="$COMMIT + uncommitted changes"; fi
BUILT=$(date -r "$SERVER_BIN" '+%Y-%m-%d %H:%M')
cp "$SERVER_BIN" "$TMP/lfsoak-server"
cp "$SOAK_BIN" "$TMP/lfsoak-client"
ln -s "$(command -v ffmpeg)" "$TMP/lfsoak-pub"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
others() { # other build/test work on the box, counted before ours starts
  ps -eo args= | awk '
    $1 ~ /(^|\/)(rustc|cargo)$/ { c["cargo/rustc"]++; next }
    $1 ~ /\/target\/debug\// { c["target/debug binaries"]++; next }
    $1 ~ /(^|\/)(ffmpeg|gst-launch-1\.0)$/ { c["ffmpeg/gst-launch"]++; next }
    END { s = ""; for (k in c) s = s (s ? ", " : "") c[k] " " k; print (s ? s : "none") }'
}
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(loadavg)
OTHERS_START=$(others)

# Media, once: 20 s of small H.264 (2 s GOP) + AAC, looped by every publisher.
log "encoding the source: ${SIZE} ${FPS} fps ${VBITRATE}"
ffmpeg -hide_banner -loglevel error -nostdin -y \
  -f lavfi -i "testsrc2=size=$SIZE:rate=$FPS" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
  -t 20 -map 0:v -map 1:a -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v "$VBITRATE" \
  -g $((FPS * 2)) -keyint_min $((FPS * 2)) -sc_threshold 0 -c:a aac -b:a 64k -ar 48000 -ac 2 \
  -f flv "$TMP/src.flv"
ffmpeg -hide_banner -loglevel error -nostdin -y -i "$TMP/src.flv" -c copy -f mpegts "$TMP/src.ts"

mkdir -p "$TMP/data"
(cd "$TMP" && exec env RUST_LOG=warn LIVEFRONT_LADDER=passthrough LIVEFRONT_DATA_DIR="$TMP/data" \
  LIVEFRONT_HTTP_ADDR=127.0.0.1:0 LIVEFRONT_RTMP_ADDR=127.0.0.1:0 LIVEFRONT_SRT_ADDR=127.0.0.1:0 \
  LIVEFRONT_RTSP_ADDR=127.0.0.1:0 LIVEFRONT_CHAT__RATE_MESSAGES=1000000 \
  LIVEFRONT_CHAT__MAX_CONNECTIONS_PER_ADDRESS=1000000 LIVEFRONT_CHAT__MAX_CONNECTIONS_PER_ADDRESS_ALL_STREAMS=1000000 \
  "$TMP/lfsoak-server" serve) >"$TMP/stdout" 2>"$TMP/stderr" &
LF_PID=$!
PIDS+=("$LF_PID")
for _ in $(seq 300); do grep -q 'demo API token' "$TMP/stdout" 2>/dev/null && break; sleep 0.1; done
TOKEN=$(awk '/demo API token/ { print $4 }' "$TMP/stdout")
HTTP=http://127.0.0.1:$(sed -nE 's/^ *HTTP API +http:\/\/[^:]+:([0-9]+).*/\1/p' "$TMP/stdout" | head -1)
[ -n "$TOKEN" ] || die "livefront did not start: $(tail -3 "$TMP/stderr")"

# Public streams, RTMP and SRT alternating.
IDS=()
for ((i = 1; i <= PUBLISHERS; i++)); do
  json=$(curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"title\": \"soak $i\", \"mode\": \"public\"}" "$HTTP/api/v1/streams")
  id=$(jq -r .id <<<"$json")
  IDS+=("$id")
  if ((i % 2)); then
    url=$(jq -r .ingest.rtmp <<<"$json" | sed 's#://localhost:#://127.0.0.1:#')
    args=(-i "$TMP/src.flv" -c copy -f flv "$url")
  else
    url="$(jq -r .ingest.srt <<<"$json" | sed 's#://localhost:#://127.0.0.1:#')&latency=120000"
    args=(-i "$TMP/src.ts" -c copy -f mpegts "$url")
  fi
  "$TMP/lfsoak-pub" -hide_banner -loglevel warning -nostdin -re -stream_loop -1 "${args[@]}" \
    >"$TMP/pub-$i.log" 2>&1 &
  PIDS+=("$!")
done
# Every stream lists segments before the viewers come.
for id in "${IDS[@]}"; do
  for _ in $(seq 600); do
    curl -fsS --max-time 5 "$HTTP/hls/$id/source/index.m3u8" 2>/dev/null | grep -q '#EXTINF' && break
    kill -0 "$LF_PID" 2>/dev/null || die "livefront exited: $(tail -5 "$TMP/stderr")"
    sleep 0.1
  done
  curl -fsS --max-time 5 "$HTTP/hls/$id/source/index.m3u8" | grep -q '#EXTINF' || die "stream $id lists no segment"
done
log "$PUBLISHERS publishers live; $VIEWERS viewers, $SOCKETS sockets for ${DURATION}s"

DURATION_S=$DURATION CLK_TCK=$(getconf CLK_TCK) "$TMP/lfsoak-client" "$HTTP" "$TOKEN" "$LF_PID" \
  "$(IFS=,; echo "${IDS[*]}")" >"$TMP/result.md" 2> >(tee "$TMP/client.log" >&2) &
CLIENT_PID=$!
PIDS+=("$CLIENT_PID")
wait "$CLIENT_PID" || die "the soak client failed: $(tail -5 "$TMP/client.log")"
kill -0 "$LF_PID" 2>/dev/null || die "livefront exited during the run: $(tail -5 "$TMP/stderr")"
# Publishers still running (none gave up), and what the server logged at warn and above.
PUB_ALIVE=0
for pid in "${PIDS[@]:1:$PUBLISHERS}"; do kill -0 "$pid" 2>/dev/null && PUB_ALIVE=$((PUB_ALIVE + 1)); done
LIVE=$(curl -fsS --max-time 10 "$HTTP/api/v1/live" | jq '.streams | length' 2>/dev/null || echo '?')
WARN_LINES=$(grep -c -E 'WARN|ERROR' "$TMP/stderr" || true)
LOAD_END=$(loadavg)

REPORT=$(
  echo "### soak.sh, $START_DATE"
  echo
  echo "- livefront $COMMIT (release binary built $BUILT); DURATION=$DURATION PUBLISHERS=$PUBLISHERS (RTMP and SRT alternating, ${SIZE} ${FPS} fps ${VBITRATE} + AAC 64k, looped with -c copy) VIEWERS=$VIEWERS SOCKETS=$SOCKETS CHAT_EVERY_S=$CHAT_EVERY_S (one chat message per stream)"
  echo "- machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; load average at start $LOAD_START, at end $LOAD_END; other build/test processes at start: $OTHERS_START"
  [ -z "${BENCH_NOTE:-}" ] || echo "- note: $BENCH_NOTE"
  echo "- at the end: $PUB_ALIVE of $PUBLISHERS publishers still sending, $LIVE streams listed live; server log lines at WARN/ERROR: $WARN_LINES"
  echo "- each minute (the client's progress lines):"
  grep -E '^soak: [0-9]+ s, RSS' "$TMP/client.log" | sed 's/^/  - /' || true
  echo
  cat "$TMP/result.md"
)
echo
echo "$REPORT"
if [ "$WARN_LINES" -gt 0 ]; then log "server warnings (first 10):"; grep -E 'WARN|ERROR' "$TMP/stderr" | head -10 >&2; fi
if [ -z "${BENCH_NO_README:-}" ]; then
  { echo; echo "$REPORT"; } >>"$ROOT/bench/README.md"
  log "appended the figures to bench/README.md"
fi
