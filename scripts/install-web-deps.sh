#!/usr/bin/env bash
# The web pages' npm dependencies (web/package.json: hls.js, uPlot) at the versions in web/package-lock.json.
# build.rs embeds web/node_modules/hls.js/dist/hls.min.js and uplot/dist/uPlot.iife.min.js (+ css) into the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v npm >/dev/null 2>&1 || scripts/install-deps.sh nodejs npm

web=web
if [ ! -d "$web/node_modules" ] || [ "$web/package-lock.json" -nt "$web/node_modules" ]; then
  npm ci --prefix "$web" --no-audit --no-fund
  touch "$web/node_modules"
fi
