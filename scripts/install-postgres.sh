#!/usr/bin/env bash
# Installs the PostgreSQL server that the store tests start throwaway clusters of
# (tests/common/postgres.rs: initdb + postgres from /usr/lib/postgresql/*/bin on a free loopback
# port): Debian's `postgresql` package, PostgreSQL 15 on Debian 12. On a machine without it, no
# system cluster is created (so nothing is left running on port 5432): postgresql-common goes in
# first, then its createcluster.conf says create_main_cluster = false, then the server package.
# Nothing when the server is there. Uses sudo when not root.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
has_server() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; }

if installed postgresql && has_server && getent passwd postgres >/dev/null; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
apt_install() {
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

echo "installing PostgreSQL (Debian's postgresql package) for the store tests"
$sudo apt-get update -qq
if ! installed postgresql-common; then
  # Fresh machine: postgresql-common writes /etc/postgresql-common/createcluster.conf (through
  # ucf, so it must exist before we change it), then the server package reads it. A machine that
  # already had postgresql-common keeps its own policy.
  apt_install postgresql-common
  conf=/etc/postgresql-common/createcluster.conf
  if grep -Eq '^[#[:space:]]*create_main_cluster[[:space:]]*=' "$conf"; then
    $sudo sed -E -i 's/^[#[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' "$conf"
  else
    echo "create_main_cluster = false" | $sudo tee -a "$conf" >/dev/null
  fi
fi
apt_install postgresql

if ! has_server || ! getent passwd postgres >/dev/null; then
  echo "the postgresql package did not install /usr/lib/postgresql/*/bin/postgres and a postgres user" >&2
  exit 1
fi
