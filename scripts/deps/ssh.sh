#!/usr/bin/env bash
# OpenSSH for the SSH certificate tests (warrant-testkit's SshdFixture): Debian
# `openssh-server openssh-client`, and `sudo` (warrant-hostssh's tests log in as a non-root
# admin that runs its commands through `sudo -n`). Idempotent: does nothing when sshd, ssh and ssh-keygen are
# already installed. The fixture runs its own sshd on a free loopback port, so a system sshd
# started by the install is stopped again; /run/sshd (sshd's privilege separation directory)
# is created either way.
set -euo pipefail

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
{ command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1; } || need+=(openssh-client)
command -v sudo >/dev/null 2>&1 || need+=(sudo)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the SSH tests need: ${need[*]} — install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}" >&2
    exit 1
  fi

  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"

  # The package's postinst may start the system sshd (on port 22); ours runs its own.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ssh 2>/dev/null; then
    systemctl stop ssh || true
  fi
  if [ -x /etc/init.d/ssh ] && /etc/init.d/ssh status >/dev/null 2>&1; then
    /etc/init.d/ssh stop >/dev/null 2>&1 || true
  fi
  if [ -r /run/sshd.pid ]; then
    pid=$(cat /run/sshd.pid)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
  fi
fi

if [ "$(id -u)" -eq 0 ]; then
  mkdir -p /run/sshd
  chmod 0755 /run/sshd
fi
