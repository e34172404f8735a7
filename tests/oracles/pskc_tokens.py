#!/usr/bin/env python3
"""Test oracle: the keys of a PSKC file as python-pskc (the reference implementation, 1.4)
reads them, for checking what `keyprov import` registers.

Source behaviour reproduced: none re-implemented; this calls python-pskc's own API
(`pskc.PSKC(file)`, `encryption.key` / `encryption.derive_key(password)`, `Key` properties)
and prints each key's fields. Which keys the station registers (HOTP/TOTP with a secret and
an understood policy) is decided by the Rust test from these fields.

Usage: pskc_tokens.py FILE [--key HEX | --password PW]
Prints JSON {"ok": true, "keys": [...]} or {"ok": false, "error": "..."}.
"""

import json
import sys

import pskc


def main():
    args = sys.argv[1:]
    key = password = None
    if "--key" in args:
        at = args.index("--key")
        key = bytes.fromhex(args[at + 1])
        del args[at:at + 2]
    if "--password" in args:
        at = args.index("--password")
        password = args[at + 1]
        del args[at:at + 2]
    try:
        container = pskc.PSKC(args[0])
        if key is not None:
            container.encryption.key = key
        if password is not None:
            container.encryption.derive_key(password)
        keys = []
        for k in container.keys:
            keys.append({
                "id": k.id,
                "serial": k.serial,
                "manufacturer": k.manufacturer,
                "model": k.model,
                "algorithm": k.algorithm,
                "suite": k.algorithm_suite,
                "secret": k.secret.hex() if k.secret is not None else None,
                "counter": k.counter,
                "time_offset": k.time_offset,
                "time_interval": k.time_interval,
                "response_length": k.response_length,
                "response_encoding": k.response_encoding,
                "unknown_policy": bool(k.policy.unknown_policy_elements),
            })
    except Exception as err:  # every failure is an answer for the test
        print(json.dumps({"ok": False, "error": f"{type(err).__name__}: {err}"}))
        return
    print(json.dumps({"ok": True, "keys": keys}))


if __name__ == "__main__":
    main()
