#!/usr/bin/env bash
# What the browser tests need (tests/hlsjs.rs): Debian's chromium (its H.264 decoder; Playwright's
# own browser builds have none and are not downloaded), Node.js + npm, and tests/web's packages
# (playwright-core, hls.js) at the versions in its package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

extra=(chromium)
command -v node >/dev/null 2>&1 || extra+=(nodejs)
command -v npm >/dev/null 2>&1 || extra+=(npm)
scripts/install-deps.sh "${extra[@]}"

web=tests/web
if [ ! -d "$web/node_modules" ] || [ "$web/package-lock.json" -nt "$web/node_modules" ]; then
  npm ci --prefix "$web" --no-audit --no-fund
  touch "$web/node_modules"
fi
