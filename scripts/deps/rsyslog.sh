#!/usr/bin/env bash
# rsyslog for the SIEM sink tests (warrant-testkit's RsyslogFixture): Debian `rsyslog` and
# `rsyslog-openssl` (its TLS driver, RFC 5425). Idempotent. The fixture runs its own rsyslogd
# on a free loopback port with its own config; a system rsyslog started by the install is
# left alone (it listens on no network port by default).
set -euo pipefail

need=()
[ -x /usr/sbin/rsyslogd ] || need+=(rsyslog)
ls /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1 || need+=(rsyslog-openssl)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "the SIEM sink tests need: ${need[*]} — install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi

echo "installing: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
