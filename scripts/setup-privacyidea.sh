#!/usr/bin/env bash
# Installs privacyIDEA 3.14 from PyPI into its own virtualenv: the validation server that the
# seed-export tests (tests/seeds_privacyidea.rs) load PSKC files into and check OTPs against.
# Idempotent: a second run only checks the installed version.
#
# The venv lives in $KEYPROV_PI_VENV (default ~/.cache/keyprov/privacyidea-venv). This script
# installs the program only; each test run creates its own throw-away instance (pi.cfg, keys
# and SQLite database in a temporary directory) through tests/oracles/privacyidea_harness.py,
# which runs `pi-manage setup create_enckey|create_audit_keys|create_tables`, `admin add` and
# `pi-manage run -h 127.0.0.1 -p PORT`.
set -euo pipefail

PI_VERSION="3.14"
VENV="${KEYPROV_PI_VENV:-$HOME/.cache/keyprov/privacyidea-venv}"

installed_version() {
  "$VENV/bin/python" - <<'EOF' 2>/dev/null
from importlib.metadata import version
print(version("privacyIDEA"))
EOF
}

if [ -x "$VENV/bin/pi-manage" ] && [ "$(installed_version)" = "$PI_VERSION" ]; then
  echo "setup-privacyidea: privacyIDEA $PI_VERSION present in $VENV"
  exit 0
fi

command -v python3 >/dev/null || { echo "setup-privacyidea: python3 is required" >&2; exit 1; }
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "setup-privacyidea: installing python3-venv"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    python3-venv >/dev/null
fi

echo "setup-privacyidea: installing privacyIDEA $PI_VERSION into $VENV"
mkdir -p "$(dirname "$VENV")"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "privacyIDEA==$PI_VERSION"

got="$(installed_version || true)"
if [ "$got" != "$PI_VERSION" ]; then
  echo "setup-privacyidea: expected privacyIDEA $PI_VERSION in $VENV, found '${got:-none}'" >&2
  exit 1
fi
echo "setup-privacyidea: ok"
