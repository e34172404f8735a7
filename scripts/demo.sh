#!/usr/bin/env bash
# README command 1: the main job of KeyProv Station on a fresh machine, on emulated tokens.
# Builds the release binary, creates 8 emulated YubiKeys and 4 emulated Nitrokeys in a fresh
# demo directory, provisions each with a key obtained over local 4-pass DSKPP, verifies it on
# the token, exports the batch as a password-protected PSKC file, and prints where it all went.
#   scripts/demo.sh [DEMO_DIR]      (default: a new directory under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-$PWD/target}"
echo "== building keyprov (release)"
cargo build --release --locked --bin keyprov
keyprov="$target/release/keyprov"

demo="${1:-$(mktemp -d "${TMPDIR:-/tmp}/keyprov-demo.XXXXXX")}"
mkdir -p "$demo"
if [ -e "$demo/station" ] || [ -e "$demo/tokens" ]; then
  echo "demo: $demo already holds a demo; give a new directory" >&2
  exit 2
fi
tokens="$demo/tokens"
db="$demo/station/station.db"
export_file="$demo/demo-batch.pskcxml"
password="demo-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
batch="demo-$(date -u +%Y%m%dT%H%M%SZ)"

echo "== creating emulated tokens in $tokens"
"$keyprov" emulator add yubikey --count 8 --dir "$tokens" >/dev/null
"$keyprov" emulator add nitrokey-pro --count 4 --dir "$tokens" >/dev/null
"$keyprov" emulator list --dir "$tokens"

echo "== provisioning batch $batch (local 4-pass DSKPP, write, verify, export)"
"$keyprov" provision --batch "$batch" --emulator "$tokens" --db "$db" \
  --export "$export_file" --export-password "$password"

echo "== checking the audit chain"
"$keyprov" audit verify --db "$db"

first_yubikey=$("$keyprov" emulator list --dir "$tokens" --json |
  python3 -c 'import json,sys; print(next(t["serial"] for t in json.load(sys.stdin) if t["family"]=="yubikey"))')
cat <<EOT

== where everything went
  emulated tokens   $tokens   (one JSON state file per token)
  station database  $db
  master key        $(dirname "$db")/master.key   (back it up with the database; see README)
  PSKC export       $export_file
  export password   $password

Try it:
  $keyprov batch show $batch --db $db
  $keyprov emulator touch $first_yubikey --slot 1 --dir $tokens
      (the OTP the token types; oathtool over the exported secret and counter gives the same)
  $keyprov batch export $batch -o other.pskcxml --password '...' --db $db
EOT
