#!/usr/bin/env bash
# The full test command of KeyProv Station (README, CI): installs what the tests need, then
# checks formatting and lints and runs every test, including the interop tests against
# python-pskc, pskctool and oathtool, and the GUI's unit and end-to-end tests.
#   scripts/test.sh            everything
#   scripts/test.sh --no-gui   skip the Tauri build and the GUI tests (faster)
set -euo pipefail
cd "$(dirname "$0")/.."

gui=1
for arg in "$@"; do
  case "$arg" in
    --no-gui) gui=0 ;;
    *) echo "usage: scripts/test.sh [--no-gui]" >&2; exit 2 ;;
  esac
done
[ -d src-tauri ] || gui=0

if [ "$gui" = 1 ]; then bash scripts/setup.sh --gui; else bash scripts/setup.sh; fi

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (CLI and libraries)"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test (CLI and libraries)"
cargo test --locked

if [ "$gui" = 1 ]; then
  step "ui: unit tests (vitest)"
  (cd ui && npm test --silent)
  step "src-tauri: clippy, command tests and end-to-end test under Xvfb"
  cargo clippy --locked -p keyprov-station --no-deps --all-targets -- -D warnings
  xvfb-run -a --server-args="-screen 0 1280x800x24" cargo test --locked -p keyprov-station
fi
step "all tests passed"
