#!/usr/bin/env bash
# Live channel benchmark (GET /api/v1/streams/{id}/live, WebSocket): one release livefront, one
# public stream, CLIENTS (1000) anonymous viewers from examples/ws_fanout.rs on this box.
#   1. memory: RSS of the livefront process before and with the viewers connected and idle;
#      CPU of the livefront process while they sit idle for IDLE_S seconds;
#   2. fan-out: one sender (the creator's token) posts chat messages at each rate of RATES for
#      PHASE_S seconds; reports messages delivered per second across viewers, send->receive
#      latency p50/p99 (one clock: sender and viewers are the same process), CPU of both sides.
#      Stops at the first rate where a viewer is dropped or a message does not arrive.
# The viewers and the sender run on the same 2 cores as the server: the client's CPU is in the
# table. Binds 127.0.0.1 only; every process it starts is stopped on exit.
#
# Environment: CLIENTS=1000 IDLE_S=30 PHASE_S=5 RATES="20 50 100 200 400 800"
#   LIVEFRONT_BIN=target/release/livefront WS_BIN=target/release/examples/ws_fanout KEEP_TMP=1
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIVEFRONT_BIN=${LIVEFRONT_BIN:-$ROOT/target/release/livefront}
WS_BIN=${WS_BIN:-$ROOT/target/release/examples/ws_fanout}
export CLIENTS=${CLIENTS:-1000} IDLE_S=${IDLE_S:-30} PHASE_S=${PHASE_S:-5}
export RATES=${RATES:-20 50 100 200 400 800}

log() { printf '[ws-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in curl jq; do command -v "$tool" >/dev/null || die "$tool is missing"; done
[ -x "$LIVEFRONT_BIN" ] || die "$LIVEFRONT_BIN is missing: cargo build --release"
[ -x "$WS_BIN" ] || die "$WS_BIN is missing: cargo build --release --example ws_fanout"

# Each viewer is one socket on both sides (the server and the client are separate processes).
need=$((CLIENTS + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  [ "$(ulimit -n)" -ge "$need" ] || die "open files limit $(ulimit -n) < $need (raise the hard limit)"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfwsbench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_TMP:-}" ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# Names without "livefront" in them, as in passthrough.sh: nothing else on the box may signal them.
cp "$LIVEFRONT_BIN" "$TMP/lfbench-server"
cp "$WS_BIN" "$TMP/lfbench-ws"
mkdir -p "$TMP/data"
# The sender posts far more than a person may: lift the per-user limit for it.
(cd "$TMP" && exec env RUST_LOG=warn LIVEFRONT_LADDER=passthrough LIVEFRONT_DATA_DIR="$TMP/data" \
  LIVEFRONT_HTTP_ADDR=127.0.0.1:0 LIVEFRONT_RTMP_ADDR=127.0.0.1:0 LIVEFRONT_SRT_ADDR=127.0.0.1:0 \
  LIVEFRONT_RTSP_ADDR=127.0.0.1:0 LIVEFRONT_CHAT__RATE_MESSAGES=1000000 \
  LIVEFRONT_CHAT__MAX_CONNECTIONS_PER_ADDRESS=1000000 LIVEFRONT_CHAT__MAX_CONNECTIONS_PER_ADDRESS_ALL_STREAMS=1000000 \
  "$TMP/lfbench-server" serve) >"$TMP/stdout" 2>"$TMP/stderr" &
LF_PID=$!
PIDS+=("$LF_PID")
for _ in $(seq 300); do grep -q 'demo API token' "$TMP/stdout" 2>/dev/null && break; sleep 0.1; done
TOKEN=$(awk '/demo API token/ { print $4 }' "$TMP/stdout")
HTTP=http://127.0.0.1:$(sed -nE 's/^ *HTTP API +http:\/\/[^:]+:([0-9]+).*/\1/p' "$TMP/stdout" | head -1)
[ -n "$TOKEN" ] || die "livefront did not start: $(tail -3 "$TMP/stderr")"
ID=$(curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"title": "ws bench", "mode": "public"}' "$HTTP/api/v1/streams" | jq -r .id)

log "$CLIENTS viewers, idle ${IDLE_S}s, then rates $RATES msg/s for ${PHASE_S}s each"
echo "### ws.sh, $(date -u '+%Y-%m-%d %H:%M') UTC"
echo
echo "- livefront $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + uncommitted changes'); CLIENTS=$CLIENTS IDLE_S=$IDLE_S PHASE_S=$PHASE_S"
echo "- machine: $(nproc) cores; load average at start $(cut -d' ' -f1-3 /proc/loadavg); open files limit $(ulimit -n)"
CLK_TCK=$(getconf CLK_TCK) "$TMP/lfbench-ws" "$HTTP" "$ID" "$TOKEN" "$LF_PID" &
WS_PID=$!
PIDS+=("$WS_PID")
wait "$WS_PID" || die "the benchmark client failed"
echo "- load average at end $(cut -d' ' -f1-3 /proc/loadavg)"
kill -0 "$LF_PID" 2>/dev/null || die "livefront exited during the run: $(tail -3 "$TMP/stderr")"
