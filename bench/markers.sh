#!/usr/bin/env bash
# Product markers: how far (ms) a focus marker's START-DATE lands from the instant the host asked
# for it, over a real-time RTMP publish (examples/focus_offset.rs; what it measures is explained
# there and in bench/README.md). No peer has product markers, so there is no side-by-side run.
#
# Environment (all optional):
#   CHANGES=30          focus changes in the run
#   SIZE=1280x720       publisher picture size (30 fps)
#   BENCH_NOTE=...      free text stored with the results
#   BENCH_NO_README=1   do not append to bench/README.md
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHANGES=${CHANGES:-30}
SIZE=${SIZE:-1280x720}
EXAMPLE=$ROOT/target/release/examples/focus_offset
[ -x "$EXAMPLE" ] || { echo "build it first: cargo build --release --locked --example focus_offset" >&2; exit 1; }

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
RESULT=$(timeout --kill-after=30 600 "$EXAMPLE" "$CHANGES" "$SIZE")
echo "$RESULT"
if [ -z "${BENCH_NO_README:-}" ]; then
  {
    printf '\n### markers.sh, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- %s\n' "$RESULT"
    printf -- '- %s cores, load before the run: %s%s\n' "$(nproc)" "$LOAD" "${BENCH_NOTE:+; note: $BENCH_NOTE}"
  } >>"$ROOT/bench/README.md"
fi
