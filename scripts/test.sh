#!/usr/bin/env bash
# Runs every test of Warrant: installs what the tests need (PostgreSQL), then the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# A fixed target dir outside the checkout, so later runs on this machine reuse the build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/warrant-target}"
cargo test --workspace --locked "$@"
