#!/usr/bin/env bash
# Installs what livefront needs on Debian 12 / Ubuntu: GStreamer 1.22 (dev files + plugins, the RTSP
# server library for RTSP out), OpenSSL headers (webhooks over https), ffmpeg, srt-tools and
# GStreamer's RTSP server for Python (tests, benchmarks: publishers and cameras), curl (HTTP/2
# client) and openssl (test certificates) for the HTTPS tests, nginx with its RTMP and stream (TLS)
# modules (simulcast receivers in tests/simulcast.rs), libnice for webrtcbin (WHIP ingest) and
# GStreamer's WebRTC introspection data (the WHIP test publisher), python3-venv for the S3 test
# server (scripts/install-s3-test-server.sh, which `make test` runs), build tools, and any extra packages
# named as arguments.
# Installs only what is missing; uses sudo when not root.
set -euo pipefail

packages=(
  pkg-config build-essential ca-certificates libssl-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools
  ffmpeg srt-tools
  libgstrtspserver-1.0-dev gstreamer1.0-rtsp
  python3-gi gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-nice gir1.2-gst-plugins-bad-1.0
  curl openssl
  nginx libnginx-mod-rtmp libnginx-mod-stream
  python3 python3-venv
  "$@"
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust 1.95 or newer (https://rustup.rs), then run make again" >&2
  exit 1
fi

