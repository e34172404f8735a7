#!/usr/bin/env python3
"""Test oracle: the tokens LinOTP's PSKC import would create from a file.

Source behaviour reproduced (re-implemented here, not copied): LinOTP
`linotp/lib/ImportOTP/PSKC.py` `parsePSKCdata(xml, preshared_key_hex, password,
do_checkserial=True)` (github.com/LinOTP/LinOTP, read at commit 04372a24), with `getTagName`
from `linotp/lib/ImportOTP/__init__.py` and PBKDF2-HMAC-SHA1 from `linotp/lib/crypto/
pbkdf2.py`; summarised in ../shared/spec/pskc.md §4b. What it does, step by step:

* ElementTree parse; the root's local name must be KeyContainer (any case). Child elements
  are looked up in the ROOT's namespace only; grandchildren by local name.
* `EncryptionKey` (when it has children) decides the mode from its FIRST child:
  `KeyName` -> pre-shared AES key (hex given by the admin); `DerivedKey` -> password: its
  `KeyDerivationMethod/@Algorithm` after `#` must be `pbkdf2`, then `PBKDF2-params/Salt/
  Specified`, `IterationCount`, `KeyLength` (PRF ignored: always HMAC-SHA1). The password must
  be 6..64 characters (ASCII).
* With an EncryptionKey, `MACMethod/@Algorithm` after `#` must be `hmac-sha1`; `MACMethod/
  MACKey/CipherData/CipherValue` is decrypted with AES-CBC (IV = first 16 bytes) and
  `MACKey/EncryptionMethod/@Algorithm` after `#` must be `aes128-cbc`: THIS is the only place
  where the file's cipher is recorded. Without it no encrypted secret is ever decrypted.
* Per KeyPackage, first `Key`: serial = `Key/@Id`, replaced by `DeviceInfo/SerialNo` when
  DeviceInfo has children (a DeviceInfo without SerialNo crashes the import). Type = text after
  the last `:` of `@Algorithm`: hotp -> "hmac", totp -> "totp", ocra -> "ocra2" (`#totp`
  gives no type). With checkserial (the default), a serial not matching
  `[a-zA-Z0-9]{4}[a-fA-F0-9]{8}$` skips the key with only a warning.
* `AlgorithmParameters` is required (iterated): `ResponseFormat/@Length` -> otplen (default
  6), `Suite` text -> hashlib, mapping only `hmac-sha256`/`hmac-sha1` (any case) to
  sha256/sha1; any other text is kept as it is.
* `Data`: Secret PlainValue (base64) or EncryptedValue (its EncryptionMethod after `#` must be
  aes128-cbc) + ValueMAC; Counter, TimeInterval and Time are read from PlainValue only.
  The MAC is HMAC-SHA1(MAC key, IV || ciphertext), compared as base64 TEXT with the stripped
  ValueMAC text (a line-wrapped ValueMAC never matches); a mismatch aborts the whole import.
  Unpadding is tolerant (no or invalid padding: bytes kept).
* Tokens are a dict keyed by serial: a later package with the same serial replaces the earlier.

Usage: linotp_import.py FILE [--psk HEX | --password PW] [--no-checkserial]
(--no-checkserial is the `do_checkserial=False` argument of the upstream function.)
Prints JSON {"ok": true, "tokens": {serial: {...}}, "warnings": [...]} or
{"ok": false, "error": "..."} when the import raises.
"""

import base64
import hashlib
import hmac
import json
import re
import sys
import xml.etree.ElementTree as etree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class ImportException(Exception):
    pass


def tag_name(elem):
    match = re.match(r"^({.*?})(.*)$", elem.tag)
    return match.group(2) if match else elem.tag


def after_hash(uri):
    match = re.search(r"#(.*)$", uri)
    return match.group(1) if match else uri


def check_serial(serial):
    return re.match(r"[a-zA-Z0-9]{4}[a-fA-F0-9]{8}$", serial)


def aes_decrypt(cipher_b64, key_hex):
    data = base64.b64decode(cipher_b64)
    key = bytes.fromhex(key_hex)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
    plain = decryptor.update(data[16:]) + decryptor.finalize()
    pad = plain[-1]
    if pad > 16 or plain[len(plain) - pad:] != bytes([pad]) * pad:
        return plain
    return plain[:-pad]


def parse(xml, psk_hex=None, password=None, checkserial=True):
    warnings = []
    tokens = {}
    root = etree.fromstring(xml)
    if tag_name(root).lower() != "keycontainer":
        raise ImportException("No toplevel element KeyContainer")
    match = re.match(r"^({.*?})Key[Cc]ontainer$", root.tag)
    ns = match.group(1) if match else ""

    key_hex = psk_hex
    mac_key = None
    enc_algo = None
    mac_method = None
    enc_key = root.find(ns + "EncryptionKey")
    if enc_key is not None and len(enc_key):
        first = list(enc_key)[0]
        if tag_name(first) == "DerivedKey":
            salt = rounds = length = None
            for method in list(first):
                if tag_name(method) != "KeyDerivationMethod":
                    continue
                algo = after_hash(method.get("Algorithm"))
                if algo != "pbkdf2":
                    raise ImportException(f"We do not support key derivation method {algo}")
                for params in list(method):
                    if tag_name(params) != "PBKDF2-params":
                        continue
                    for param in list(params):
                        name = tag_name(param)
                        if name == "Salt":
                            for given in list(param):
                                if tag_name(given) == "Specified":
                                    salt = given.text
                        elif name == "IterationCount":
                            rounds = param.text
                        elif name == "KeyLength":
                            length = param.text
            if not (password and 5 < len(password) <= 64):
                raise ImportException("You must provide a password that is longer than 5 "
                                      "characters and up to 64 characters long.")
            key_hex = hashlib.pbkdf2_hmac("sha1", password.encode("ascii"),
                                          base64.b64decode(salt), int(rounds),
                                          int(length)).hex()
        methods = root.find(ns + "MACMethod")
        if methods is None:
            raise ImportException("MACMethod missing")  # upstream: AttributeError on None
        mac_method = after_hash(methods.get("Algorithm"))
        if mac_method != "hmac-sha1":
            raise ImportException(f"The method {mac_method} is not supported")
        mac_key_elem = methods.find(ns + "MACKey")
        for child in list(mac_key_elem):
            name = tag_name(child)
            if name == "CipherData":
                for value in list(child):
                    if tag_name(value) != "CipherValue":
                        raise ImportException(f"Found unsupported child in CipherData: "
                                              f"{tag_name(value)}")
                    mac_key = aes_decrypt(value.text.strip(), key_hex)
            elif name == "EncryptionMethod":
                enc_algo = after_hash(child.get("Algorithm"))
                if enc_algo != "aes128-cbc":
                    raise ImportException(f"The algorithm {enc_algo} is not supported")

    packages = root.findall(ns + "KeyPackage")
    if not packages:
        raise ImportException("No element KeyPackage contained!")
    for package in packages:
        key = package.find(ns + "Key")
        serial = key.get("Id")
        device = package.find(ns + "DeviceInfo")
        if device is not None and len(device):
            serial_elem = device.find(ns + "SerialNo")
            if serial_elem is None:
                raise ImportException("DeviceInfo without SerialNo")  # upstream: AttributeError
            serial = serial_elem.text
        algorithm = key.get("Algorithm")
        algorithm = algorithm.split(":")[-1] if algorithm else None
        token_type = {"hotp": "hmac", "totp": "totp", "ocra": "ocra2"}.get(
            (algorithm or "").lower())

        if checkserial and not check_serial(serial or ""):
            warnings.append(f"serial {serial} is not a valid OATH serial")
            continue

        otplen, hashlib_name, suite = 6, None, None
        params = key.find(ns + "AlgorithmParameters")
        if params is None:
            raise ImportException("AlgorithmParameters missing")  # upstream: TypeError
        for param in list(params):
            name = tag_name(param)
            if name == "ResponseFormat":
                otplen = int(param.get("Length"))
            elif name == "Suite":
                if token_type == "ocra2":
                    suite = param.text
                else:
                    hashlib_name = param.text
                    if hashlib_name.lower() == "hmac-sha256":
                        hashlib_name = "sha256"
                    if hashlib_name.lower() == "hmac-sha1":
                        hashlib_name = "sha1"

        plain_b64 = cipher_b64 = mac_b64 = secret_algo = None
        counter = interval = None
        data = key.find(ns + "Data")
        for item in list(data):
            name = tag_name(item)
            plain = [c for c in list(item) if tag_name(c) == "PlainValue"]
            if name == "Secret":
                for part in list(item):
                    part_name = tag_name(part)
                    if part_name == "EncryptedValue":
                        for enc in list(part):
                            if tag_name(enc) == "EncryptionMethod":
                                secret_algo = after_hash(enc.get("Algorithm"))
                                if secret_algo != "aes128-cbc":
                                    raise ImportException(
                                        f"The algorithm {secret_algo} is not supported")
                            elif tag_name(enc) == "CipherData":
                                for value in list(enc):
                                    if tag_name(value) == "CipherValue":
                                        cipher_b64 = value.text.strip()
                    elif part_name == "PlainValue":
                        plain_b64 = part.text.strip()
                    elif part_name == "ValueMAC":
                        mac_b64 = part.text.strip()
            elif name == "Counter":
                counter = plain[0].text if plain else None
            elif name == "TimeInterval":
                interval = plain[0].text if plain else None
            elif name != "Time":
                warnings.append(f"Unparsed Tag in Key: {name}")

        record = {"counter": counter, "type": token_type, "timeStep": interval,
                  "otplen": otplen, "hashlib": hashlib_name, "ocrasuite": suite}
        if secret_algo and plain_b64:
            warnings.append(f"The key {serial} contained a secret with PlainValue and "
                            "EncryptedValue!")
        elif enc_algo == "aes128-cbc":
            digest = hmac.new(mac_key, base64.b64decode(cipher_b64), hashlib.sha1).digest()
            if base64.b64encode(digest).decode() != mac_b64:
                raise ImportException(f"The MAC value for {serial} does not fit. The HMAC "
                                      "secrets could be compromised!")
            tokens[serial] = dict(record, hmac_key=aes_decrypt(cipher_b64, key_hex).hex())
        elif plain_b64:
            tokens[serial] = dict(record, hmac_key=base64.b64decode(plain_b64).hex())
        else:
            warnings.append(f"neither a PlainValue nor an EncryptedValue was found for the "
                            f"secret of key {serial}")
    return tokens, warnings


def main():
    args = sys.argv[1:]
    options = {}
    checkserial = "--no-checkserial" not in args
    args = [a for a in args if a != "--no-checkserial"]
    for flag in ("--psk", "--password"):
        if flag in args:
            at = args.index(flag)
            options[flag[2:]] = args[at + 1]
            del args[at:at + 2]
    if len(args) != 1:
        print("usage: linotp_import.py FILE [--psk HEX | --password PW] [--no-checkserial]", file=sys.stderr)
        sys.exit(2)
    with open(args[0], "rb") as source:
        xml = source.read()
    try:
        tokens, warnings = parse(xml, options.get("psk"), options.get("password"), checkserial)
    except (ImportException, etree.ParseError, ValueError, TypeError, AttributeError) as err:
        print(json.dumps({"ok": False, "error": str(err)}))
        return
    print(json.dumps({"ok": True, "tokens": tokens, "warnings": warnings}))


if __name__ == "__main__":
    main()
