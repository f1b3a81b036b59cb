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

# AFL++ is built from C sources on first use.
for tool in make cc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is required to build AFL++ (apt-get install build-essential)" >&2; exit 1; }
done
# cargo-afl must be the version of the afl crate in Cargo.lock (cargo afl build refuses a
# mismatch, and a newer cargo-afl may need a newer rustc). Installed with its own target dir:
# a CARGO_TARGET_DIR from the environment must not mix it with the instrumented build.
AFL_VERSION=$(awk '$0 == "name = \"afl\"" { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$AFL_VERSION" ] || { echo "no afl in fuzz/afl/Cargo.lock" >&2; exit 1; }
# `cargo afl` is found where cargo install puts it, on PATH or not.
export PATH="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin:$PATH"
if ! cargo install --list | grep -qx "cargo-afl v$AFL_VERSION:"; then
  echo "installing cargo-afl $AFL_VERSION (first use; a few minutes)" >&2
  env -u CARGO_TARGET_DIR cargo install --locked --force "cargo-afl@$AFL_VERSION"
fi

export CARGO_TARGET_DIR=${AFL_TARGET_DIR:-$PWD/../../target/afl}
OUT=${OUT:-$CARGO_TARGET_DIR/out}
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
