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

# The mock's dependencies as they were when the tests were written (Authlib, Flask, ... change
# behaviour between releases); pip still resolves them, so a missing pin only loosens this.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
cat >"$CONSTRAINTS" <<'PINS'
annotated-types==0.8.0
anyio==4.16.0
Authlib==1.9.10
blinker==1.9.0
certifi==2026.10.19.post1
cffi==2.1.1
click==8.5.1
cryptography==50.0.2
Flask==3.1.3
h11==0.16.0
htpy==26.5.1
httpcore==1.0.9
httpx==0.29.0
idna==3.20
itsdangerous==2.2.0
Jinja2==3.1.6
joserfc==1.8.0
MarkupSafe==3.0.4
pycparser==3.12
pydantic==2.14.4
pydantic_core==2.50.5
typing-inspection==0.4.5
typing_extensions==4.16.0
uvicorn==0.55.0
Werkzeug==3.1.9
PINS

echo "installing oidc-provider-mock $VERSION into $VENV"
mkdir -p "$TOOLS"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  --constraint "$CONSTRAINTS" "oidc-provider-mock==$VERSION"
"$EXE" --help >/dev/null 2>&1 || { echo "oidc-provider-mock was installed into $VENV but does not run: see $EXE --help" >&2; exit 1; }
