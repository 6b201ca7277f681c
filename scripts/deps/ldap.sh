#!/usr/bin/env bash
# OpenLDAP for the LDAP sync tests (warrant-testkit's SlapdFixture): Debian `slapd ldap-utils`.
# Idempotent: does nothing when slapd and the ldap-utils clients are already installed. The
# fixture runs its own slapd on a free loopback port, so a system slapd service started by the
# install is stopped again.
set -euo pipefail

need=()
[ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null 2>&1 || need+=(ldap-utils)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "the LDAP tests need: ${need[*]} — install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
  exit 1
fi

echo "installing: ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"

# The package's postinst may start the system slapd (on ldap:///, port 389); ours runs its own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet slapd 2>/dev/null; then
  systemctl stop slapd || true
fi
if [ -x /etc/init.d/slapd ] && /etc/init.d/slapd status >/dev/null 2>&1; then
  /etc/init.d/slapd stop >/dev/null 2>&1 || true
fi
if [ -r /run/slapd/slapd.pid ]; then
  pid=$(cat /run/slapd/slapd.pid)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
  fi
fi
