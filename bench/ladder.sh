#!/usr/bin/env bash
# Ladder benchmark (issue 3, "Performance"): livefront's transcoding ladder against ffmpeg doing the same.
#   1. CPU-seconds (user+sys) of the whole livefront process ingesting DURATION s of 1080p30 H.264
#      (High, B-frames, GOP_S s GOP, 6 Mb/s, film-grain-like noise) published in real time, with the
#      LADDER preset (default: source + 720p/480p/360p x264), against one ffmpeg process producing the
#      same rungs from the same file (x264 settings read from livefront's generated pipeline
#      description), audio copied, HLS written. Median of RUNS interleaved runs, and the ratio.
#   2. Capacity: how many concurrent 720p30 publishers (source + 480p + 360p rungs) one livefront keeps
#      in real time: every segment of every rendition written, every frame encoded, no rung dropped.
#   3. Optional (GST_VARIANTS=1): CPU-seconds of gst-launch-1.0 variants of livefront's transcode branch
#      (scaler element/method/threads, cascaded scaling, colorimetry, x264/decoder threads), ranked.
# See bench/README.md. Needs: a release build (livefront and the pipeline_description example),
# ffmpeg/ffprobe, curl, jq (`make bench` installs and builds them). Binds only 127.0.0.1. Every
# process it starts is stopped on exit (by PID).
#
# Environment (all optional):
#   RUNS=3              interleaved livefront/ffmpeg runs for the CPU comparison; 0 skips part 1
#   DURATION=30         seconds of pre-encoded media per publisher
#   GOP_S=2             keyframe interval of the pre-encoded media, seconds
#   NOISE=12            strength of ffmpeg's `noise` filter (temporal, uniform) on testsrc2; 0 = clean
#   SRC_COLOR=untagged  colour tags (VUI) of the pre-encoded media: untagged (what ffmpeg's libx264 writes by
#                       default) or bt709 (tagged like OBS's default output); a list ("untagged bt709") runs
#                       part 1 for each, interleaved within every run. Parts 2 and 3 use the first.
#   LADDER=default      livefront ladder preset (LIVEFRONT_LADDER) and the description ffmpeg copies
#   SEG_S=2             HLS segment length for both (LIVEFRONT_HLS_SEGMENT; keyframes forced on it)
#   CAPACITY="1 2 3 4"  concurrent 720p30 publishers per capacity scenario; empty: skip part 2
#   GST_VARIANTS=1      also run part 3: gst-launch variants of the transcode branch (~30 min more)
#   GST_RUNS=RUNS       interleaved rounds of part 3 (3 when RUNS=0)
#   GST_FILTER=REGEX    part 3: only the variants whose label matches (the baseline always runs)
#   LIVEFRONT_BIN=target/release/livefront
#   DESCRIBE_BIN=target/release/examples/pipeline_description
#   BENCH_TIMEOUT=1500  hard limit for the whole run, seconds (3600 with GST_VARIANTS=1)
#   BENCH_NOTE=...      free text stored with the results (e.g. "lead running cargo test")
#   BENCH_NO_README=1   do not append to bench/README.md
#   KEEP_TMP=1          keep the temp dir (logs, data dirs, media, ffmpeg's HLS output)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# About 8 min for parts 1 and 2 with the defaults, 30 more with part 3.
if [ "${GST_VARIANTS:-0}" = 1 ]; then BENCH_TIMEOUT=${BENCH_TIMEOUT:-3600}; else BENCH_TIMEOUT=${BENCH_TIMEOUT:-1500}; fi

# Bounded in time: re-run under timeout(1); on expiry our TERM trap stops everything we started.
if [ -z "${BENCH_LADDER_BOUNDED:-}" ]; then
  export BENCH_LADDER_BOUNDED=1
  exec timeout --foreground --kill-after=60 "$BENCH_TIMEOUT" bash "$0" "$@"
fi

RUNS=${RUNS:-3}
DURATION=${DURATION:-30}
GOP_S=${GOP_S:-2}
NOISE=${NOISE:-12}
SRC_COLOR=${SRC_COLOR:-untagged}
read -r -a COLORS <<<"$SRC_COLOR"
for c in "${COLORS[@]}"; do [[ $c =~ ^(untagged|bt709|bt470bg|smpte170m)$ ]] || { echo "SRC_COLOR: unknown colour $c" >&2; exit 2; }; done
LADDER=${LADDER:-default}
CAPACITY=${CAPACITY-1 2 3 4}
GST_RUNS=${GST_RUNS:-$((RUNS > 0 ? RUNS : 3))}
LIVEFRONT_BIN=${LIVEFRONT_BIN:-$ROOT/target/release/livefront}
# This script's knob, not the server's: every LIVEFRONT_ variable the server sees is config.
export -n LIVEFRONT_BIN
DESCRIBE_BIN=${DESCRIBE_BIN:-$ROOT/target/release/examples/pipeline_description}
FPS=30
# HLS segment length for both (livefront: LIVEFRONT_HLS_SEGMENT; its built-in default is 2 s).
SEG_S=${SEG_S:-2}
STARTUP_DEADLINE_S=30
END_DEADLINE_S=120
HEALTH_POLL_S=2

log() { printf '[ladder %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for tool in ffmpeg ffprobe curl jq timeout; do
  command -v "$tool" >/dev/null || die "$tool is missing: run make bench (scripts/install-deps.sh, bench/install-deps.sh)"
done
[ -x "$LIVEFRONT_BIN" ] || die "$LIVEFRONT_BIN is missing: cargo build --release --locked"
[ -x "$DESCRIBE_BIN" ] || die "$DESCRIBE_BIN is missing: cargo build --release --locked --example pipeline_description"

# As in passthrough.sh: names without "livefront" or "ffmpeg" in them (temp dir, server copy, publisher
# and peer links), so that a `pkill livefront` / `pkill ffmpeg` elsewhere on the box does not stop the
# processes under test; a signal from outside is still detected (server_ok) and fails the run.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lfladder.XXXXXX")
PIDS=()
SERVER_BIN=$TMP/lfladder-server
PUB_BIN=$TMP/lfladder-pub
PEER_BIN=$TMP/lfladder-peer
cp "$LIVEFRONT_BIN" "$SERVER_BIN"
ln -s "$(command -v ffmpeg)" "$PUB_BIN"
ln -s "$(command -v ffmpeg)" "$PEER_BIN"

cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM ERR
  # Newest first: peers and publishers before servers. TERM lets livefront finalise, then KILL.
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
trap 'log "interrupted (SIGINT)"; exit 130' INT
# Our own timeout(1) sends TERM at BENCH_TIMEOUT; anything else is someone else's kill/pkill.
trap 'log "received SIGTERM (BENCH_TIMEOUT=${BENCH_TIMEOUT}s reached, or a kill/pkill from elsewhere)"; exit 143' TERM
# A command that fails under `set -e` says where, instead of ending the run silently.
set -E
trap 'log "ERROR: line $LINENO: \"$BASH_COMMAND\" failed (exit $?)"' ERR

forget_pid() { # stop tracking a pid that has been waited for
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

now_ms() { local t=${EPOCHREALTIME/./}; echo $((10#$t / 1000)); }

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of a process (all threads, exited ones included) + its reaped children
  local s f
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  read -r -a f <<<"$s"
  echo $((f[11] + f[12] + f[13] + f[14]))
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fdiv() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b > 0) printf f "\n", a / b; else print "n/a" }'; }
running() { # pid: alive and not a zombie waiting to be reaped
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

# Other work on the box (the lead's builds and tests), counted like passthrough.sh does.
others() {
  ps -eo args= | awk '
    $1 ~ /(^|\/)(rustc|cargo)$/ { c["cargo/rustc"]++; next }
    $1 ~ /\/target\/debug\// { c["target/debug binaries"]++; next }
    $1 ~ /(^|\/)(ffmpeg|gst-launch-1\.0)$/ { c["ffmpeg/gst-launch"]++; next }
    END { s = ""; for (k in c) s = s (s ? ", " : "") c[k] " " k; print (s ? s : "none") }'
}

# ---------------------------------------------------------------------------------------------
# The ladder livefront builds, read from its generated pipeline description (the same `describe()`
# the server runs; the example prints it for a 1080p30 publisher). For each x264 rung: name, size,
# frame-rate cap, segment length and the x264enc properties, turned into the equivalent ffmpeg
# libx264 options. Unknown x264enc properties stop the run instead of being silently left out.
DESC=$("$DESCRIBE_BIN" "$LADDER" av "$TMP/describe") || die "$DESCRIBE_BIN $LADDER failed"
RUNGS=()
declare -A RW RH RFPS RX264 RFF
prop() { grep -oE "(^| )$1=(\"[^\"]*\"|[^ ]*)" <<<"$2" | head -1 | sed -E "s/^ ?$1=//; s/^\"//; s/\"$//"; }
parse_ladder() {
  local r line enc caps kbps vbv tune psy preset
  for r in $(grep -oE 'x264enc name=enc-[A-Za-z0-9_-]+' <<<"$DESC" | sed 's/.*name=enc-//'); do
    line=$(grep -E "x264enc name=enc-$r( |$)" <<<"$DESC")
    enc=$(sed -E "s/.*(x264enc name=enc-$r [^!]*)!.*/\1/" <<<"$line")
    caps=$(grep -oE "(caps|sized)-$r caps=\"[^\"]*\"" <<<"$DESC" | head -1)
    RW[$r]=$(grep -oE 'width=[0-9]+' <<<"$caps" | cut -d= -f2)
    RH[$r]=$(grep -oE 'height=[0-9]+' <<<"$caps" | cut -d= -f2)
    RFPS[$r]=$(grep -oE "videorate name=rate-$r [^!]*" <<<"$DESC" | grep -oE 'max-rate=[0-9]+' | cut -d= -f2 || true)
    [ -n "${RW[$r]}" ] && [ -n "${RH[$r]}" ] || die "cannot read rung $r's size from the description: $line"
    local ff=() xp=() kv k v
    kbps="" vbv=600 tune="" psy="" preset=""
    for kv in $(sed -E "s/^x264enc name=enc-$r //" <<<"$enc"); do
      k=${kv%%=*} v=${kv#*=}
      v=${v#\"} v=${v%\"}
      case $k in
        speed-preset) preset=$v ;;
        tune) tune=${v//+/,} ;;
        psy-tune) psy=$v ;;
        bitrate) kbps=$v ;;
        vbv-buf-capacity) vbv=$v ;;
        key-int-max) ff+=(-g "$v") ;;
        threads) ff+=(-threads "$v") ;;
        sliced-threads) [ "$v" = true ] && xp+=(sliced-threads=1) || xp+=(sliced-threads=0) ;;
        option-string) xp+=("$v") ;;
        pass) [ "$v" = cbr ] || die "x264enc pass=$v on rung $r: only cbr is mapped to ffmpeg" ;;
        *) die "x264enc property $k on rung $r has no ffmpeg mapping in bench/ladder.sh: add one" ;;
      esac
    done
    [ -n "$kbps" ] || die "rung $r: no bitrate in the description"
    [ -z "$preset" ] || ff+=(-preset "$preset")
    [ "$psy" = "" ] || [ "$psy" = none ] || tune=${tune:+$tune,}$psy
    [ -z "$tune" ] || ff+=(-tune "$tune")
    # x264enc pass=cbr: ABR with vbv-maxrate = bitrate and a vbv buffer of vbv-buf-capacity ms.
    ff+=(-b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "$((kbps * vbv / 1000))k")
    local profile
    profile=$(grep -oE "profile-$r caps=\"[^\"]*\"" <<<"$DESC" | grep -oE 'profile=[a-z0-9-]+' | cut -d= -f2 || true)
    [ -z "$profile" ] || ff+=(-profile:v "$profile")
    # livefront forces a keyframe in every encoder at each segment boundary (force_keyframes_on_grid).
    ff+=(-force_key_frames "expr:gte(t,n_forced*$SEG_S)")
    if ((${#xp[@]})); then local IFS=:; ff+=(-x264-params "${xp[*]}"); unset IFS; fi
    RX264[$r]=$enc${profile:+ ! profile=$profile}
    RFF[$r]="${ff[*]}"
    RUNGS+=("$r")
  done
  ((${#RUNGS[@]})) || die "the $LADDER description has no x264 rungs: nothing to compare with ffmpeg"
}
parse_ladder

# ---------------------------------------------------------------------------------------------
# Media: DURATION s of testsrc2 + temporal noise (so the encoders cannot coast), H.264 High, 3 B-frames,
# fixed GOP_S GOP, plus AAC 48 kHz stereo, in FLV. Encoded once per run.
encode_source() { # out size bitrate colour
  log "pre-encoding ${DURATION}s of $2 30 fps H.264 High at $3 (noise $NOISE, GOP ${GOP_S}s, colour $4) + AAC to $1"
  local vf="testsrc2=size=$2:rate=$FPS" color=()
  [ "$NOISE" = 0 ] || vf="$vf,noise=alls=$NOISE:allf=t+u"
  [ "$4" = untagged ] || color=(-colorspace "$4" -color_primaries "$4" -color_trc "$4" -color_range tv)
  "$PUB_BIN" -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i "$vf" -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -t "$DURATION" -map 0:v -map 1:a \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf 3 \
    -g $((GOP_S * FPS)) -keyint_min $((GOP_S * FPS)) -sc_threshold 0 -b:v "$3" -maxrate "$3" -bufsize "$(( ${3%M} * 2 ))M" \
    ${color[@]+"${color[@]}"} -c:a aac -b:a 128k -ar 48000 -ac 2 -f flv "$1"
}
describe_media() {
  echo "$(ffprobe -v error -select_streams v:0 -show_entries stream=profile,width,height,r_frame_rate,has_b_frames,color_space \
    -of compact=p=0:nk=0 "$1"); $(fdiv "$(ffprobe -v error -show_entries format=bit_rate -of csv=p=0 "$1")" 1000 %.0f) kb/s; GOP ${GOP_S}s; noise $NOISE; $(du -k "$1" | cut -f1) KiB"
}

# Publisher: `ffmpeg -re -i FILE -c copy -f flv URL` under timeout(1); sets PUB_PID.
publish() { # src url logfile
  timeout --kill-after=10 $((DURATION + 60)) \
    "$PUB_BIN" -hide_banner -nostats -loglevel warning -nostdin -re -i "$1" -c copy -f flv "$2" >"$3" 2>&1 &
  PUB_PID=$!
  PIDS+=("$PUB_PID")
}
wait_publisher() { # pid logfile
  local rc=0
  wait "$1" || rc=$?
  forget_pid "$1"
  [ "$rc" -eq 0 ] || die "publisher failed (exit $rc): $(tail -5 "$2")"
}

# Video packets in a rendition's segments (concatenated MPEG-TS): frames actually encoded.
frames_in() { # dir
  local segs=("$1"/seg*.ts)
  [ -e "${segs[0]}" ] || { echo 0; return; }
  # Through a file, not a pipe: ffprobe may stop reading a pipe early, and `cat` then dies of
  # SIGPIPE, which pipefail turns into a failed run.
  cat "${segs[@]}" >"$1/.all.ts"
  ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$1/.all.ts" 2>/dev/null | sed -n 1p
  rm -f "$1/.all.ts"
}
segments_in() { find "$1" -maxdepth 1 -name 'seg*.ts' | wc -l; }
# The x264 settings string x264 writes into its first SEI, from a rendition's first segment.
x264_opts() { # dir
  local first
  first=$(find "$1" -maxdepth 1 -name 'seg*.ts' | sort | head -1)
  [ -n "$first" ] || return 0
  "$PUB_BIN" -hide_banner -loglevel error -nostdin -i "$first" -map 0:v -c copy -f h264 - 2>/dev/null \
    | LC_ALL=C grep -a -o -m1 'options: [ -~]*' | head -1 || true
}

# ---------------------------------------------------------------------------------------------
# livefront (helpers as in passthrough.sh)
LF_PID="" LF_HTTP="" LF_TOKEN="" LF_DIR=""
server_ok() {
  running "$LF_PID" || die "livefront exited during the run: $(tail -5 "$LF_DIR/stderr" 2>/dev/null)"
  if grep -q 'shutting down' "$LF_DIR/stderr"; then
    die "livefront received SIGTERM/SIGINT from outside this script during the run"
  fi
}

start_livefront() { # name
  LF_DIR=$(mktemp -d "$TMP/$1.XXXX")
  mkdir -p "$LF_DIR/data"
  # Built-in defaults but the ladder and segment length, from the temp dir so that no
  # config/livefront.toml is read.
  (cd "$LF_DIR" && exec env LIVEFRONT_LADDER="$LADDER" LIVEFRONT_HLS_SEGMENT="${SEG_S}s" RUST_LOG="${RUST_LOG:-info}" LIVEFRONT_DATA_DIR="$LF_DIR/data" \
    LIVEFRONT_HTTP_ADDR=127.0.0.1:0 LIVEFRONT_RTMP_ADDR=127.0.0.1:0 LIVEFRONT_RTSP_ADDR=127.0.0.1:0 \
    "$SERVER_BIN" serve) \
    >"$LF_DIR/stdout" 2>"$LF_DIR/stderr" &
  LF_PID=$!
  PIDS+=("$LF_PID")
  local deadline=$(($(now_ms) + STARTUP_DEADLINE_S * 1000))
  until grep -q 'demo API token' "$LF_DIR/stdout" 2>/dev/null; do
    kill -0 "$LF_PID" 2>/dev/null || die "livefront exited: $(tail -5 "$LF_DIR/stderr")"
    (($(now_ms) < deadline)) || die "livefront did not start in ${STARTUP_DEADLINE_S}s"
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
  local deadline=$(($(now_ms) + 60000))
  while kill -0 "$LF_PID" 2>/dev/null && (($(now_ms) < deadline)); do sleep 0.1; done
  kill -KILL "$LF_PID" 2>/dev/null || true
  wait "$LF_PID" 2>/dev/null || true
  forget_pid "$LF_PID"
}

lf_create_stream() { # sets LF_ID, LF_INGEST
  local json
  json=$(curl -fsS --max-time 10 -X POST -H "Authorization: Bearer $LF_TOKEN" \
    -H 'Content-Type: application/json' -d '{"title":"ladder bench"}' "$LF_HTTP/api/v1/streams") \
    || { server_ok; die "POST /api/v1/streams failed"; }
  LF_ID=$(jq -r .id <<<"$json")
  LF_INGEST=$(jq -r .ingest.rtmp <<<"$json" | sed 's#://localhost:#://127.0.0.1:#')
}
lf_get() { curl -fsS --max-time 5 -H "Authorization: Bearer $LF_TOKEN" "$LF_HTTP/api/v1/streams/$1"; }
lf_wait_ended() { # id
  local deadline=$(($(now_ms) + END_DEADLINE_S * 1000))
  until [ "$(lf_get "$1" | jq -r .state || true)" = ended ]; do
    server_ok
    (($(now_ms) < deadline)) || die "livefront stream $1 did not end in ${END_DEADLINE_S}s"
    sleep 0.1
  done
}
lf_hls() { echo "$LF_DIR/data/streams/$1/hls"; } # id -> dir with one sub-dir per rendition

# Publishes src to every stream in ids (all at once); polls each stream's health warnings every
# HEALTH_POLL_S while publishing (health is only reported while live) into $LF_DIR/warnings-ID;
# waits until every stream has ended. Sets R_CPU (s), R_PUB_MS (publish wall time), R_LAG_MS (last
# publisher gone -> last stream ended: the backlog livefront still had), R_HWM (KiB).
lf_run() { # src id...
  local src=$1 c0 c1 t0 t1 t2 id i p any last_poll=0 ids pids=()
  shift
  ids=("$@")
  c0=$(cpu_ticks "$LF_PID")
  t0=$(now_ms)
  for id in "${ids[@]}"; do
    : >"$LF_DIR/warnings-$id"
    publish "$src" "$(cat "$LF_DIR/ingest-$id")" "$LF_DIR/pub-$id.log"
    pids+=("$PUB_PID")
  done
  while :; do
    server_ok
    any=""
    for p in "${pids[@]}"; do if running "$p"; then any=1; fi; done
    [ -n "$any" ] || break
    if (($(now_ms) - last_poll >= HEALTH_POLL_S * 1000)); then
      last_poll=$(now_ms)
      for id in "${ids[@]}"; do
        { lf_get "$id" | jq -r '.health.warnings[]?' >>"$LF_DIR/warnings-$id"; } 2>/dev/null || true
      done
    fi
    sleep 0.2
  done
  t1=$(now_ms)
  for ((i = 0; i < ${#pids[@]}; i++)); do wait_publisher "${pids[i]}" "$LF_DIR/pub-${ids[i]}.log"; done
  for id in "${ids[@]}"; do lf_wait_ended "$id"; done
  t2=$(now_ms)
  server_ok
  c1=$(cpu_ticks "$LF_PID")
  R_HWM=$(status_kb "$LF_PID" VmHWM)
  R_CPU=$(fdiv $((c1 - c0)) "$CLK_TCK")
  R_PUB_MS=$((t1 - t0))
  R_LAG_MS=$((t2 - t1))
}

# ---------------------------------------------------------------------------------------------
# Part 1: one 1080p30 stream, livefront vs ffmpeg, interleaved.
bench_livefront() { # run
  start_livefront "livefront-$1"
  lf_create_stream
  echo "$LF_INGEST" >"$LF_DIR/ingest-$LF_ID"
  local id=$LF_ID
  R_LOAD0=$(loadavg)
  lf_run "$SRC" "$id"
  R_LOAD1=$(loadavg)
  local hls r
  hls=$(lf_hls "$id")
  R_SEGS="" R_FRAMES=""
  for r in source "${RUNGS[@]}"; do
    R_SEGS+="$r $(segments_in "$hls/$r"), "
    [ "$r" = source ] || R_FRAMES+="$r $(frames_in "$hls/$r"), "
  done
  R_SEGS=${R_SEGS%, } R_FRAMES=${R_FRAMES%, }
  R_WARN=$(sort -u "$LF_DIR/warnings-$id" | paste -sd ';' -)
  R_DROPS=$(grep -c 'dropping a rung' "$LF_DIR/stderr" || true)
  R_X264=$(x264_opts "$hls/${RUNGS[0]}")
  stop_livefront
}

# Runs a command (under timeout(1)) from a subshell that waits for it, so that the subshell's `times`
# gives the command's user+sys CPU, all threads and children included. Output in $dir/log.
# Sets R_CPU (s), R_PUB_MS (wall), R_RC.
run_timed() { # dir timeout_s cmd...
  local dir=$1 limit=$2 sub fpid t0 t1
  shift 2
  rm -f "$dir/pid" "$dir/times"
  t0=$(now_ms)
  (
    timeout --kill-after=10 "$limit" "$@" >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    rc=0
    wait $! || rc=$?
    times >"$dir/times"
    exit $rc
  ) &
  sub=$!
  PIDS+=("$sub")
  for _ in $(seq 50); do [ -s "$dir/pid" ] && break; sleep 0.1; done
  fpid=$(cat "$dir/pid")
  PIDS+=("$fpid")
  R_RC=0
  wait "$sub" || R_RC=$?
  forget_pid "$sub"
  forget_pid "$fpid"
  t1=$(now_ms)
  R_PUB_MS=$((t1 - t0))
  # times: line 1 the subshell, line 2 its waited children (timeout + the command): "0m12.340s 0m0.560s"
  R_CPU=$(sed -n 2p "$dir/times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } printf "%.2f\n", s }')
  return "$R_RC"
}

# ffmpeg: one process, `-re` from the same file, split + scale per rung, libx264 with the options
# parse_ladder derived, audio copied, HLS (MPEG-TS segments) per rung. CPU: run_timed.
bench_ffmpeg() { # run
  local dir=$TMP/ffmpeg-$1 r i=0 fc split="" args=() opts
  mkdir -p "$dir"
  for r in "${RUNGS[@]}"; do split+="[s$i]"; i=$((i + 1)); done
  fc="[0:v]split=${#RUNGS[@]}$split"
  i=0
  for r in "${RUNGS[@]}"; do
    mkdir -p "$dir/$r"
    # livefront's videorate only caps the rate: a cap below the source's rate becomes an fps filter.
    local fps=""
    [ -z "${RFPS[$r]}" ] || ((RFPS[$r] >= FPS)) || fps=",fps=fps=${RFPS[$r]}"
    fc+=";[s$i]scale=${RW[$r]}:${RH[$r]},setsar=1$fps[v$i]"
    read -r -a opts <<<"${RFF[$r]}"
    args+=(-map "[v$i]" -map 0:a -c:v libx264 "${opts[@]}" -c:a copy
      -f hls -hls_time "$SEG_S" -hls_list_size 0 -hls_playlist_type event
      -hls_segment_filename "$dir/$r/seg%05d.ts" "$dir/$r/index.m3u8")
    i=$((i + 1))
  done
  printf '%q ' ffmpeg -hide_banner -nostats -loglevel warning -nostdin -re -i "$SRC" -filter_complex "$fc" "${args[@]}" >"$dir/command"
  R_LOAD0=$(loadavg)
  run_timed "$dir" $((DURATION + 120)) "$PEER_BIN" -hide_banner -nostats -loglevel warning -nostdin -re -i "$SRC" \
    -filter_complex "$fc" "${args[@]}" || die "ffmpeg peer failed (exit $R_RC): $(tail -5 "$dir/log")"
  R_LOAD1=$(loadavg)
  R_SEGS="" R_FRAMES=""
  for r in "${RUNGS[@]}"; do
    R_SEGS+="$r $(segments_in "$dir/$r"), "
    R_FRAMES+="$r $(frames_in "$dir/$r"), "
  done
  R_SEGS=${R_SEGS%, } R_FRAMES=${R_FRAMES%, }
  R_X264=$(x264_opts "$dir/${RUNGS[0]}")
}

# Part 3 (GST_VARIANTS=1): where the ladder's CPU goes, with gst-launch-1.0. The transcode branch of the
# generated description (decode once, then per rung queue → videorate → scaler → capsfilter → x264enc with
# the description's properties → profile caps → h264parse → fakesink), fed from the pre-encoded file at
# real time (`identity sync=true` before the decoder) instead of appsrc, and variants of it. Differences
# from livefront, the same for every variant: no source rendition, recording, poster or muxers; avdec_h264
# gets thread-type=slice because that is what it picks behind livefront's live appsrc (gst-libav: slice
# threads when upstream is live); keyframes come from key-int-max = SEG_S × fps instead of livefront's
# force-key-unit events on the segment grid; queues are not leaky (all work is done; a variant that
# cannot keep real time shows as wall time above DURATION).
# Each variant: "label|settings", settings are assignments to the knobs of gst_ladder.
GST_VARIANT_LIST=(
  "as generated (parallel videoconvertscale, default bilinear)|"
  "videoscale instead of videoconvertscale|SCALER=videoscale"
  "scaler method=nearest-neighbour|SP=method=nearest-neighbour"
  "scaler method=4-tap|SP=method=4-tap"
  "scaler n-threads=2|SP=n-threads=2"
  "videorate after the scaler|RATE=after"
  "cascaded scaling 1080→720→480→360|TOPO=cascade"
  "tree: 720p from the decoder, 480p and 360p from the 720p frames|TOPO=tree"
  "scaler method=bilinear2 (multi-tap)|SP=method=bilinear2"
  "x264enc threads=1|X264=threads=1"
  "x264enc sliced-threads=false (frame threads)|X264=sliced-threads=false"
  "avdec_h264 max-threads=1|DEC='thread-type=slice max-threads=1'"
  "avdec_h264 thread-type=frame|DEC=thread-type=frame"
  "rung caps colorimetry=bt709 (the source's)|CAPSX=,colorimetry=bt709"
  "colorimetry=bt709 + cascaded scaling|CAPSX=,colorimetry=bt709 TOPO=cascade"
  "colorimetry=bt709 + x264enc threads=1|CAPSX=,colorimetry=bt709 X264=threads=1"
  "colorimetry=bt709 + cascaded + x264enc threads=1|CAPSX=,colorimetry=bt709 TOPO=cascade X264=threads=1"
  "colorimetry=bt709 + tree|CAPSX=,colorimetry=bt709 TOPO=tree"
  "colorimetry=bt709 + tree + x264enc threads=1|CAPSX=,colorimetry=bt709 TOPO=tree X264=threads=1"
  "colorimetry=bt709 + method=bilinear2|CAPSX=,colorimetry=bt709 SP=method=bilinear2"
)
gst_ladder() { # settings -> pipeline description on stdout
  local SCALER=videoconvertscale SP="" CAPSX="" TOPO=parallel X264="" DEC=thread-type=slice RATE=before
  eval "$1"
  local p r i prev enc q="queue max-size-buffers=15 max-size-time=0 max-size-bytes=0"
  p="filesrc location=\"$SRC\" ! flvdemux name=demux demux.video ! queue max-size-buffers=0 max-size-time=0 max-size-bytes=0"
  p+=" ! h264parse ! identity sync=true ! queue max-size-buffers=0 max-size-time=2000000000 max-size-bytes=0"
  p+=" ! avdec_h264 $DEC ! tee name=raw"
  prev=raw
  for ((i = 0; i < ${#RUNGS[@]}; i++)); do
    r=${RUNGS[i]}
    enc=$(sed -E "s/^x264enc name=enc-$r //; s/key-int-max=[0-9]+/key-int-max=$((SEG_S * FPS))/" <<<"${RX264[$r]% ! profile=*}")
    local rate="videorate max-rate=${RFPS[$r]:-$FPS} skip-to-first=true"
    local caps="video/x-raw,format=I420,width=${RW[$r]},height=${RH[$r]},pixel-aspect-ratio=1/1$CAPSX"
    local profile=""
    [[ ${RX264[$r]} != *" ! profile="* ]] || profile=" ! video/x-h264,profile=${RX264[$r]##*profile=}"
    local tail="x264enc $enc $X264$profile ! h264parse config-interval=-1 ! fakesink sync=false async=false"
    if [ "$TOPO" = cascade ] || [ "$TOPO" = tree ]; then
      # cascade: each rung scaled from the previous rung's frames; tree: from the first rung's frames.
      # The first rung from the decoder's.
      if ((i == 0)); then p+=" raw. ! $q ! $rate ! $SCALER $SP ! $caps ! tee name=t$i"
      else p+=" $prev. ! $q ! $SCALER $SP ! $caps ! tee name=t$i"; fi
      p+=" t$i. ! $q ! $tail"
      [ "$TOPO" = tree ] && prev=t0 || prev=t$i
    elif [ "$RATE" = after ]; then
      p+=" raw. ! $q ! $SCALER $SP ! $caps ! $rate ! $tail"
    else
      p+=" raw. ! $q ! $rate ! $SCALER $SP ! $caps ! $tail"
    fi
  done
  echo "$p"
}
bench_gst_variants() {
  local gst_bin=$TMP/lfladder-gst v label settings round dir desc
  ln -sf "$(command -v gst-launch-1.0)" "$gst_bin"
  declare -gA GV_CPU GV_WALL
  for ((round = 1; round <= GST_RUNS; round++)); do
    for ((v = 0; v < ${#GST_VARIANT_LIST[@]}; v++)); do
      label=${GST_VARIANT_LIST[v]%%|*} settings=${GST_VARIANT_LIST[v]#*|}
      # GST_FILTER: only labels matching this regex (and always the first, the baseline).
      ((v == 0)) || [ -z "${GST_FILTER:-}" ] || grep -qE "$GST_FILTER" <<<"$label" || continue
      dir=$TMP/gst-$v-$round
      mkdir -p "$dir"
      desc=$(gst_ladder "$settings")
      echo "$desc" >"$dir/description"
      # shellcheck disable=SC2086 # gst-launch takes the description as separate words
      run_timed "$dir" $((DURATION * 3 + 60)) "$gst_bin" -q $desc || die "gst-launch variant '$label' failed: $(tail -3 "$dir/log")"
      GV_CPU[$v]+="$R_CPU " GV_WALL[$v]+="$(fdiv "$R_PUB_MS" 1000 %.1f) "
      log "  gst round $round/$GST_RUNS: $label: $R_CPU CPU-s, wall $(fdiv "$R_PUB_MS" 1000 %.1f) s"
    done
  done
}

# Part 2: N concurrent 720p30 publishers into one livefront.
bench_capacity() { # n
  local n=$1 i ids=() id hls r s f exp_frames ok=yes min_segs=() min_frames=() drops warn
  start_livefront "capacity-$n"
  for ((i = 1; i <= n; i++)); do
    lf_create_stream
    echo "$LF_INGEST" >"$LF_DIR/ingest-$LF_ID"
    ids+=("$LF_ID")
  done
  C_LOAD0=$(loadavg)
  C_OTHERS=$(others)
  lf_run "$SRC720" "${ids[@]}"
  C_LOAD1=$(loadavg)
  exp_frames=$((DURATION * FPS))
  declare -A mins minf
  # The renditions' directories (not the low-latency `ll/` tree nor files such as public-media.json).
  C_RENDS=$(find "$(lf_hls "${ids[0]}")" -mindepth 1 -maxdepth 1 -type d ! -name ll -printf '%f\n' | sort -r | paste -sd ' ' -)
  for id in "${ids[@]}"; do
    hls=$(lf_hls "$id")
    for r in $C_RENDS; do
      s=$(segments_in "$hls/$r")
      [ -z "${mins[$r]:-}" ] || ((s >= mins[$r])) || mins[$r]=$s
      [ -n "${mins[$r]:-}" ] || mins[$r]=$s
      f=$(frames_in "$hls/$r")
      [ -z "${minf[$r]:-}" ] || ((f >= minf[$r])) || minf[$r]=$f
      [ -n "${minf[$r]:-}" ] || minf[$r]=$f
    done
  done
  C_SEGS="" C_FRAMES=""
  for r in $C_RENDS; do
    C_SEGS+="$r ${mins[$r]}, "
    C_FRAMES+="$r ${minf[$r]}, "
    # Real time: every rendition of every stream has its segments and (almost) every frame; the
    # leaky queues drop frames (and then rungs) rather than falling behind.
    ((mins[$r] >= DURATION / ${SEG_S%.*})) || ok=no
    ((minf[$r] * 100 >= exp_frames * 98)) || ok=no
  done
  C_SEGS=${C_SEGS%, } C_FRAMES=${C_FRAMES%, }
  drops=$(grep -c 'dropping a rung' "$LF_DIR/stderr" || true)
  warn=$(cat "$LF_DIR"/warnings-* | sort -u | paste -sd ';' -)
  ((drops == 0)) || ok=no
  C_DROPS=$drops
  C_WARN=${warn:-none}
  C_OK=$ok
  C_CPU=$R_CPU
  C_CORES=$(fdiv "$R_CPU" "$(fdiv "$R_PUB_MS" 1000 %.3f)")
  C_LAG=$R_LAG_MS
  C_HWM=$(fdiv "$R_HWM" 1024 %.1f)
  stop_livefront
}

# ---------------------------------------------------------------------------------------------
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_START=$(loadavg)
OTHERS_START=$(others)
log "temp dir $TMP; ladder $LADDER: rungs ${RUNGS[*]}; load average $LOAD_START; other build/test processes: $OTHERS_START"
for r in "${RUNGS[@]}"; do log "  $r ${RW[$r]}x${RH[$r]}: ${RX264[$r]}  =>  ffmpeg ${RFF[$r]}"; done

declare -A SRCS SRC_DESCS LFC FFC
for c in "${COLORS[@]}"; do
  SRCS[$c]=$TMP/src-1080p30-$c.flv
  encode_source "${SRCS[$c]}" 1920x1080 6M "$c"
  SRC_DESCS[$c]=$(describe_media "${SRCS[$c]}")
  log "source ($c): ${SRC_DESCS[$c]}"
done
SRC=${SRCS[${COLORS[0]}]}

LF_HWM=() RUN_NOTES=() CAP_NOTES=()
for ((run = 1; run <= RUNS; run++)); do # RUNS=0 skips part 1
  for c in "${COLORS[@]}"; do
    SRC=${SRCS[$c]}
    O=$(others)
    log "run $run/$RUNS ($c source): livefront (ladder $LADDER), 1 x ${DURATION}s 1080p30; other processes: $O"
    bench_livefront "$run-$c"
    LFC[$c]+="$R_CPU " LF_HWM+=("$(fdiv "$R_HWM" 1024 %.1f)")
    log "  livefront: ${R_CPU} CPU-s; segments: $R_SEGS; frames: $R_FRAMES; lag after publisher ${R_LAG_MS} ms; rungs dropped: $R_DROPS; warnings: ${R_WARN:-none}; load $R_LOAD0 -> $R_LOAD1"
    RUN_NOTES+=("run $run ($c source) livefront: ${R_CPU} CPU-s, peak RSS ${LF_HWM[-1]} MiB, segments $R_SEGS; frames $R_FRAMES; rungs dropped $R_DROPS; warnings ${R_WARN:-none}; load $R_LOAD0 -> $R_LOAD1; other processes at start: $O")
    [ "$c" != "${COLORS[0]}" ] || LF_X264=$R_X264
    ((R_DROPS == 0)) || RUN_NOTES+=("WARNING: run $run ($c source): livefront dropped a rung, so it did less work than ffmpeg")
    O=$(others)
    log "run $run/$RUNS ($c source): ffmpeg, same rungs from the same file; other processes: $O"
    bench_ffmpeg "$run-$c"
    FFC[$c]+="$R_CPU "
    log "  ffmpeg: ${R_CPU} CPU-s in ${R_PUB_MS} ms; segments: $R_SEGS; frames: $R_FRAMES; load $R_LOAD0 -> $R_LOAD1"
    RUN_NOTES+=("run $run ($c source) ffmpeg: ${R_CPU} CPU-s, segments $R_SEGS; frames $R_FRAMES; load $R_LOAD0 -> $R_LOAD1; other processes at start: $O")
    [ "$c" != "${COLORS[0]}" ] || FF_X264=$R_X264
  done
done
SRC=${SRCS[${COLORS[0]}]}
TABLE="" TARGET="not measured (RUNS=0)"
if ((RUNS > 0)); then
  TARGET=""
  declare -A RATIOS
  for c in "${COLORS[@]}"; do
    lf=$(printf '%s\n' ${LFC[$c]} | median) ff=$(printf '%s\n' ${FFC[$c]} | median)
    RATIOS[$c]="$lf $ff $(fdiv "$lf" "$ff")"
    t=$(awk -v r="$(fdiv "$lf" "$ff")" 'BEGIN { print (r != "n/a" && r <= 0.9) ? "met" : "NOT met" }')
    TARGET+="${TARGET:+; }$t${COLORS[1]+ ($c source)}"
    log "$c source: livefront $lf CPU-s, ffmpeg $ff CPU-s (medians of $RUNS), ratio $(fdiv "$lf" "$ff") (target <= 0.9: $t)"
  done
  if [ -n "$LF_X264" ] && [ "$LF_X264" = "$FF_X264" ]; then
    X264_SAME="identical (${RUNGS[0]}: $LF_X264)"
  else
    X264_SAME="DIFFERENT: livefront ${RUNGS[0]}: ${LF_X264:-?}; ffmpeg: ${FF_X264:-?}"
  fi
  log "x264 settings $X264_SAME"
  FF_CMD=$(sed "s#$TMP#\$TMP#g" "$TMP/ffmpeg-1-${COLORS[0]}/command")
  TABLE=$(
    printf '| measurement | livefront | ffmpeg | livefront / ffmpeg |\n'
    printf '|---|---:|---:|---:|\n'
    for c in "${COLORS[@]}"; do
      read -r lf ff ratio <<<"${RATIOS[$c]}"
      printf '| %s source: CPU s for %d s of 1080p30, median of %d | %s | %s | **%s** |\n' "$c" "$DURATION" "$RUNS" "$lf" "$ff" "$ratio"
      printf '| %s source: CPU s, each run (interleaved) | %s | %s | |\n' "$c" "${LFC[$c]% }" "${FFC[$c]% }"
      printf '| %s source: cores while publishing (median CPU s / %d s) | %s | %s | |\n' "$c" "$DURATION" "$(fdiv "$lf" "$DURATION")" "$(fdiv "$ff" "$DURATION")"
    done
    printf '| livefront peak RSS, each run (MiB) | %s | | |\n' "${LF_HWM[*]}"
  )
fi

CAP_ROWS=()
if [ -n "$CAPACITY" ]; then
  SRC720=$TMP/src-720p30.flv
  encode_source "$SRC720" 1280x720 3M "${COLORS[0]}"
  SRC720_DESC=$(describe_media "$SRC720")
  log "capacity source: $SRC720_DESC"
  for n in $CAPACITY; do
    log "capacity: $n concurrent 720p30 publisher(s) into one livefront (ladder $LADDER)"
    bench_capacity "$n"
    log "  real time: $C_OK; $C_CPU CPU-s (${C_CORES} cores); min segments per stream: $C_SEGS; min frames: $C_FRAMES; rungs dropped: $C_DROPS; lag ${C_LAG} ms; warnings: $C_WARN"
    CAP_ROWS+=("| $n | $C_OK | $C_CPU | $C_CORES | $C_SEGS | $C_FRAMES | $C_DROPS | $C_LAG | $C_HWM | $C_WARN |")
    CAP_NOTES+=("$n-stream run: load average $C_LOAD0 -> $C_LOAD1; other processes at start: $C_OTHERS")
  done
fi
GST_TABLE=""
if [ "${GST_VARIANTS:-0}" = 1 ]; then
  command -v gst-launch-1.0 >/dev/null || die "gst-launch-1.0 is missing (apt-get install gstreamer1.0-tools)"
  log "gst-launch variants of the transcode branch, ${#GST_VARIANT_LIST[@]} variants x $GST_RUNS rounds (interleaved), ${DURATION}s each"
  bench_gst_variants
  GST_TABLE=$(
    printf '| gst-launch variant (transcode branch only, paced at real time) | CPU s, median of %d | each round | vs as generated | wall s (each round) |\n' "$GST_RUNS"
    printf '|---|---:|---|---:|---|\n'
    base=$(printf '%s\n' ${GV_CPU[0]} | median)
    for ((v = 0; v < ${#GST_VARIANT_LIST[@]}; v++)); do
      [ -n "${GV_CPU[$v]:-}" ] || continue
      med=$(printf '%s\n' ${GV_CPU[$v]} | median)
      printf '%s|| %s | %s | %s | %s | %s |\n' "$med" "${GST_VARIANT_LIST[v]%%|*}" "$med" "${GV_CPU[$v]% }" \
        "$(awk -v a="$med" -v b="$base" 'BEGIN { printf "%+.0f %%", (a / b - 1) * 100 }')" "${GV_WALL[$v]% }"
    done | sort -t'|' -k1,1g | cut -d'|' -f2-
  )
  printf '%s\n' "$GST_TABLE" >&2
fi
LOAD_END=$(loadavg)

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain -- src pipelines Cargo.toml Cargo.lock 2>/dev/null)" ]; then COMMIT="$COMMIT + uncommitted changes in src/"; fi
BIN_DATE=$(date -r "$LIVEFRONT_BIN" '+%Y-%m-%d %H:%M')
MACHINE="$(lscpu | sed -nE 's/^Model name: +//p' | head -1), $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM; $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
VERSIONS="$(ffmpeg -version | head -1 | cut -d' ' -f1-3) (libx264 $(ffmpeg -hide_banner -h encoder=libx264 >/dev/null 2>&1 && echo present)), $(gst-launch-1.0 --version 2>/dev/null | sed -n 2p)"
CAP_TABLE=""
if ((${#CAP_ROWS[@]})); then
  CAP_TABLE=$(
    printf '| 720p30 publishers | real time | CPU s | cores | segments, min per stream | video frames, min per stream (of %d) | rungs dropped | backlog after publishers (ms) | peak RSS (MiB) | health warnings |\n' $((DURATION * FPS))
    printf '|---:|---|---:|---:|---|---|---:|---:|---:|---|\n'
    printf '%s\n' "${CAP_ROWS[@]}"
  )
fi

echo
echo "livefront ladder benchmark, $START_DATE; ladder $LADDER; target livefront <= 0.9 x ffmpeg: $TARGET"
[ -z "$TABLE" ] || { echo "$TABLE"; echo; }
[ -z "$CAP_TABLE" ] || { echo "$CAP_TABLE"; echo; }
[ -z "$GST_TABLE" ] || { echo "$GST_TABLE"; echo; }

if [ -z "${BENCH_NO_README:-}" ]; then
  README=$ROOT/bench/README.md
  {
    echo
    echo "### ladder.sh, $START_DATE"
    echo
    echo "- livefront $COMMIT (binary built $BIN_DATE), ladder $LADDER; RUNS=$RUNS GST_RUNS=$GST_RUNS DURATION=$DURATION GOP_S=$GOP_S SEG_S=$SEG_S NOISE=$NOISE SRC_COLOR=\"$SRC_COLOR\" GST_VARIANTS=${GST_VARIANTS:-0}${GST_FILTER:+ GST_FILTER=\"$GST_FILTER\"} CAPACITY=\"$CAPACITY\""
    echo "- machine: $MACHINE"
    echo "- $VERSIONS"
    for c in "${COLORS[@]}"; do echo "- source ($c): ${SRC_DESCS[$c]}"; done
    [ -z "${SRC720_DESC:-}" ] || echo "- capacity source: $SRC720_DESC"
    echo "- rungs (from the generated description): $(for r in "${RUNGS[@]}"; do printf '%s %sx%s; ' "$r" "${RW[$r]}" "${RH[$r]}"; done | sed 's/; $//')"
    if ((RUNS > 0)); then
      echo "- ffmpeg command (run 1): \`$FF_CMD\`"
      echo "- x264 settings (SEI of the first segment, livefront vs ffmpeg): $X264_SAME"
    fi
    echo "- target livefront ≤ 0.9 × ffmpeg: **$TARGET**"
    echo "- load average at start $LOAD_START, at end $LOAD_END; other build/test processes at start: $OTHERS_START"
    for note in "${RUN_NOTES[@]}"; do echo "- $note"; done
    for note in "${CAP_NOTES[@]}"; do echo "- capacity $note"; done
    echo "- note: other work (the lead's builds and tests) may have been running on the same 2 cores${BENCH_NOTE:+; $BENCH_NOTE}"
    if [ -n "$TABLE" ]; then
      echo
      echo "$TABLE"
    fi
    if [ -n "$CAP_TABLE" ]; then
      echo
      echo "$CAP_TABLE"
    fi
    if [ -n "$GST_TABLE" ]; then
      echo
      echo "$GST_TABLE"
    fi
  } >>"$README"
  log "appended results to $README"
fi
