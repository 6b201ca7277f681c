#!/usr/bin/env bash
# Installs the OpenID provider the OIDC tests run against: PyPI `oidc-provider-mock`, in a venv at
# ${WARRANT_TOOLS_DIR:-$HOME/.cache/warrant-tools}/oidc-venv (idempotent: skips what is there).
# The fixture (warrant-testkit's OidcProviderFixture) finds it there, or through
# $WARRANT_TEST_OIDC_PROVIDER.
set -euo pipefail

VERSION="${WARRANT_OIDC_MOCK_VERSION:-0.3.4}"
TOOLS="${WARRANT_TOOLS_DIR:-$HOME/.cache/warrant-tools}"
VENV="$TOOLS/oidc-venv"
EXE="$VENV/bin/oidc-provider-mock"

if [ -x "$EXE" ] && "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('oidc-provider-mock') != '$VERSION')" 2>/dev/null; then
  exit 0
fi

PY=""
for candidate in python3 python; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import venv, ensurepip" >/dev/null 2>&1; then
    PY="$candidate"
    break
  fi
done
if [ -z "$PY" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the OIDC tests need Python 3 with venv — install it with: sudo apt-get install -y --no-install-recommends python3 python3-venv" >&2
    exit 1
  fi
  echo "installing: python3 python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv
  PY=python3
fi

echo "installing oidc-provider-mock $VERSION into $VENV"
mkdir -p "$TOOLS"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "oidc-provider-mock==$VERSION"
"$EXE" --help >/dev/null
