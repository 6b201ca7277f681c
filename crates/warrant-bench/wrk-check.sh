#!/usr/bin/env bash
# Loads POST /api/v1/check with wrk instead of the in-process load generator:
# starts `warrant-bench check --serve-only` (the same server and setup), waits for it,
# runs wrk with check.lua, and lets the server stop on its own.
#
#   THREADS=1 CONNS=32 SECS=10 crates/warrant-bench/wrk-check.sh
#
# BENCH names the warrant-bench binary (default: the release build in CARGO_TARGET_DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
threads=${THREADS:-1}
conns=${CONNS:-32}
secs=${SECS:-10}
bench=${BENCH:-${CARGO_TARGET_DIR:-$here/../../target}/release/warrant-bench}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
[ -x "$bench" ] || { echo "no $bench: cargo build --release -p warrant-bench" >&2; exit 1; }

env_file=$(mktemp)
trap 'rm -f "$env_file"' EXIT
"$bench" check --serve-only $((secs + 5)) --env-file "$env_file" >&2 &
server=$!
for _ in $(seq 1 300); do
  [ -s "$env_file" ] && break
  kill -0 "$server" 2>/dev/null || { echo "the server exited early" >&2; exit 1; }
  sleep 0.1
done
[ -s "$env_file" ] || { echo "the server did not start in 30 s" >&2; exit 1; }
# shellcheck disable=SC1090
. "$env_file"
export WARRANT_BENCH_TOKEN
echo "# wrk -t$threads -c$conns -d${secs}s against $WARRANT_BENCH_URL, load average $(cut -d' ' -f1-3 /proc/loadavg)"
wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$here/check.lua" "$WARRANT_BENCH_URL/api/v1/check"
wait "$server"
