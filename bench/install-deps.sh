#!/usr/bin/env bash
# Extra Debian packages the benchmarks need: nginx with the RTMP module (the peer livefront is
# compared with), curl and jq (API calls, playlist polling), wrk (HTTP load, serve.sh). Services are
# not started here: the benches run their own nginx on 127.0.0.1 ports from a temp dir.
exec "$(dirname "$0")/../scripts/install-deps.sh" nginx libnginx-mod-rtmp curl jq coreutils wrk
