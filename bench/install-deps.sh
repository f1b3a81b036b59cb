#!/usr/bin/env bash
# Extra Debian packages the benchmarks need beside scripts/install-deps.sh: nginx with the RTMP
# module (the peer livefront is compared with), curl and jq (API calls, playlist polling).
# Installs only what is missing; uses sudo when not root. Packages' services are not started here:
# passthrough.sh runs its own nginx on 127.0.0.1 ports from a temp dir.
set -euo pipefail

packages=(nginx libnginx-mod-rtmp curl jq coreutils)

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
