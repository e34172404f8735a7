#!/usr/bin/env bash
# Installs what KeyProv Station's build and tests need on a fresh Debian 12 machine.
# Idempotent: a second run only checks. Parts:
#   (default)  CLI build + test oracles: pskctool, oathtool, python-pskc and privacyIDEA in
#              virtualenvs
#   --gui      additionally WebKitGTK, Xvfb, tauri-driver and the ui/ npm modules
set -euo pipefail
cd "$(dirname "$0")/.."

want_gui=0
for arg in "$@"; do
  case "$arg" in
    --gui) want_gui=1 ;;
    *) echo "usage: scripts/setup.sh [--gui]" >&2; exit 2 ;;
  esac
done

export DEBIAN_FRONTEND=noninteractive
VENV="${KEYPROV_VENV:-$HOME/.cache/keyprov/venv}"

apt_packages=(build-essential pkg-config pskctool oathtool libxml2-utils)
if [ "$want_gui" = 1 ]; then
  apt_packages+=(libwebkit2gtk-4.1-dev libssl-dev webkit2gtk-driver xvfb xauth
                 fonts-dejavu-core dbus-x11)
fi

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# python-pskc (the reference PSKC implementation) is the oracle of the interop tests.
if ! "$VENV/bin/python" -c 'import pskc, cryptography' 2>/dev/null; then
  echo "setup: creating $VENV with python-pskc"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r scripts/requirements-test.txt
fi

# privacyIDEA, the validation server the seed-export tests import into.
bash scripts/setup-privacyidea.sh

if [ "$want_gui" = 1 ]; then
  command -v tauri-driver >/dev/null || cargo install tauri-driver --version '^2' --locked
  (cd ui && { [ -d node_modules ] || npm ci --no-audit --no-fund; })
fi
echo "setup: ok"
