#!/usr/bin/env bash
# Installs the S3-compatible server the tests run (tests/storage.rs): moto's server mode from
# PyPI, with only its S3 dependencies, in a virtualenv of its own (Debian's system pip refuses
# global installs). About 15 s and 140 MB on a fresh machine; nothing when it is there.
# The tests find it at $LIVEFRONT_MOTO_SERVER, else at the path below.
set -euo pipefail

MOTO_VERSION=5.2.5
venv="${LIVEFRONT_MOTO_VENV:-$HOME/.cache/livefront/moto-$MOTO_VERSION}"

if [ -x "$venv/bin/moto_server" ]; then
  exit 0
fi
echo "installing moto $MOTO_VERSION (S3 test server) into $venv"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "moto[s3]==$MOTO_VERSION" flask flask-cors
"$venv/bin/moto_server" --help >/dev/null
