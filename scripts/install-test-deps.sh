#!/usr/bin/env bash
# Installs what Warrant's tests need on a fresh Debian machine (idempotent: skips what is there).
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the tests need: ${need[*]} — install them with: sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Component-specific installers (slapd, the OpenID provider, ...), each idempotent.
for f in "$(dirname "$0")"/deps/*.sh; do
  [ -e "$f" ] || continue
  bash "$f"
done
