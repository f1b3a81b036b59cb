#!/usr/bin/env bash
# Installs the NATS server that tests/bus.rs starts throwaway instances of
# (tests/common/nats.rs: `nats-server -a 127.0.0.1 -p PORT`): Debian's `nats-server` package
# (2.9 on Debian 12). The package ships a systemd unit; where it was started (or enabled), it is
# stopped and disabled, so that nothing is left listening on port 4222. Nothing when the server
# is there. Uses sudo when not root.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if ! (installed nats-server && command -v nats-server >/dev/null); then
  echo "installing nats-server (Debian's package) for the bus tests"
  $sudo apt-get update -qq
  # policy-rc.d 101: the package's postinst may not start its service (no daemon left running).
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    added_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nats-server \
    || { [ -n "$added_policy" ] && $sudo rm -f "$policy"; exit 1; }
  if [ -n "$added_policy" ]; then $sudo rm -f "$policy"; fi
fi

# The package's system service: not started at boot (systemctl disable works without a running
# systemd), and stopped where systemd runs it.
if command -v systemctl >/dev/null && [ -e /lib/systemd/system/nats-server.service ]; then
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now nats-server.service >/dev/null 2>&1 || true
  else
    $sudo systemctl disable nats-server.service >/dev/null 2>&1 || true
  fi
fi
# Without systemd, a postinst may have started it through its init script: stop that one too.
if pgrep -x nats-server >/dev/null && [ -x /etc/init.d/nats-server ]; then
  $sudo /etc/init.d/nats-server stop >/dev/null 2>&1 || true
fi

if ! command -v nats-server >/dev/null; then
  echo "the nats-server package did not install a nats-server binary" >&2
  exit 1
fi
