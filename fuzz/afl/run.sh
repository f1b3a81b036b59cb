#!/usr/bin/env bash
# Coverage-guided fuzzing of the pure parsers with AFL++ (cargo-afl, stable toolchain): builds the
# targets of fuzz/afl/src/bin, runs each for FUZZ_SECONDS from its committed seeds in
# fuzz/afl/corpus/, and prints executions, coverage and crashes per target (also appended to
# $FUZZ_REPORT when set). Crashing inputs stay in $OUT/<target>/default/crashes/; the exit status
# is non-zero when there is one. Installs cargo-afl and builds AFL++ on first use.
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
TARGETS=${TARGETS:-"avc_config srt_stream_id playlist_restore purchase_signature"}
export CARGO_TARGET_DIR=${AFL_TARGET_DIR:-$PWD/../../target/afl}
OUT=${OUT:-$CARGO_TARGET_DIR/out}

command -v cargo-afl >/dev/null 2>&1 || cargo install --locked cargo-afl
# Builds AFL++ for this rustc once (about a minute and a half on 2 cores).
if ! out=$(cargo afl config --build 2>&1) && ! grep -q "already built" <<<"$out"; then
  echo "$out" >&2
  exit 1
fi
cargo afl build --release --locked

# No core dumps to wait for, no CPU governor to set, no UI: this runs unattended.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_QUIET=1
crashes=0
for t in $TARGETS; do
  rm -rf "${OUT:?}/$t"
  mkdir -p "$OUT/$t"
  cargo afl fuzz -i "corpus/$t" -o "$OUT/$t" -V "$FUZZ_SECONDS" "$CARGO_TARGET_DIR/release/$t" \
    >"$OUT/$t/afl.log" 2>&1 || { tail -20 "$OUT/$t/afl.log"; exit 1; }
  stats="$OUT/$t/default/fuzzer_stats"
  get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
  n=$(find "$OUT/$t/default/crashes" -type f -name 'id:*' | wc -l)
  crashes=$((crashes + n))
  line="afl $t: $(get execs_done) executions in $(get run_time) s ($(get execs_per_sec)/s), corpus $(get corpus_count), edges $(get edges_found) of $(get total_edges) ($(get bitmap_cvg)), $n crashes"
  echo "$line"
  if [ -n "${FUZZ_REPORT:-}" ]; then echo "$line" >>"$FUZZ_REPORT"; fi
  if [ "$n" -gt 0 ]; then ls "$OUT/$t/default/crashes"; fi
done
[ "$crashes" -eq 0 ]
