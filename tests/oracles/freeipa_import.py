#!/usr/bin/env python3
"""Test oracle: what FreeIPA's `ipa-otptoken-import` would add from a PSKC file.

Source behaviour reproduced (re-implemented here, not copied): FreeIPA
`ipaserver/install/ipa_otptoken_import.py` (github.com/freeipa/freeipa, read at commit
084ea861), together with the two hardening changes described in ../shared/spec/pskc.md §1a:
entities are never resolved (PR #8515) and a MACMethod with a secret lacking its ValueMAC is
rejected (PR #8522). What it does, step by step:

* lxml parse; every lookup is an XPath with the exact namespaces pskc, ds, xenc, xenc11 and
  pkcs5 (any prefix in the file, but the right namespace URI).
* The decryption key is only set up when the container names one: `EncryptionKey/ds:KeyName`
  or `EncryptionKey/xenc11:DerivedKey/xenc11:MasterKeyName`. Otherwise nothing is decrypted
  and an encrypted secret ends as "Key not found in token!".
* `--keyfile` content is used as raw bytes: the AES key itself for a pre-shared key, or the
  password that goes into PBKDF2 for a derived key.
* PBKDF2 needs `xenc11:DerivedKey/xenc11:KeyDerivationMethod` with Algorithm
  `...pkcs-5v2-0#pbkdf2` and `pkcs5:PBKDF2-params` with UNQUALIFIED `Salt/Specified`,
  `IterationCount`, `KeyLength` children; `PRF/@Algorithm` selects the HMAC hash (unknown or
  absent: SHA-1).
* MAC: `MACMethod/@Algorithm` (hmac-sha1/224/256/384/512, unknown: SHA-1) with `MACMethod/
  MACKey` decrypted by the same decryptor; every `ValueMAC` is HMAC(IV || ciphertext).
* Ciphers: aes128/192/256-cbc, tripledes-cbc and xmldsig-more#camellia128/192/256 (no `-cbc`);
  the key length must match; IV = first block of CipherValue; PKCS#7 unpadding.
* Per KeyPackage (first Key only): type from Key/@Algorithm (`pskc:hotp`, `pskc#hotp`,
  `pskc:totp`, `pskc#totp`, case-insensitive; else "Unsupported token type!"); rejected:
  no secret, KeyReference, ResponseFormat/@CheckDigit (singular) other than FALSE,
  NumberOfTransactions, PINPolicy, Time other than 0, Encoding other than DECIMAL, first
  KeyUsage other than OTP. Encrypted Counter/Time/TimeInterval/TimeDrift must decrypt to ASCII
  decimal (int(bytes)).
* Output attributes: ipatokenotpkey = base32(secret), ipatokenotpdigits = Length,
  ipatokenotpalgorithm from Suite (`sha1`, `sha-256`, `hmac-sha256`, ... else sha1),
  ipatokenhotpcounter, ipatokentotptimestep, ipatokentotpclockoffset = TimeDrift x step,
  ipatokenserial = SerialNo (+ "-" IssueNo), vendor, model, description = FriendlyName.
  The token id is Key/@Id.

Usage: freeipa_import.py FILE [--keyfile PATH]
Prints JSON: {"ok": true, "tokens": [{"id":..., "error": null | "...", "options": {...}}]} or
{"ok": false, "error": "..."} when the whole file is refused. A token with an "error" would
be skipped (logged as a warning) by ipa-otptoken-import.
"""

import base64
import datetime
import json
import sys

import dateutil.parser
import dateutil.tz
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.padding import PKCS7
from lxml import etree

try:  # cryptography >= 43 keeps the old ciphers apart; the importer still offers them
    from cryptography.hazmat.decrepit.ciphers.algorithms import Camellia, TripleDES
except ImportError:  # older cryptography
    Camellia, TripleDES = algorithms.Camellia, algorithms.TripleDES

NS = {
    "pkcs5": "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#",
    "pskc": "urn:ietf:params:xml:ns:keyprov:pskc",
    "xenc11": "http://www.w3.org/2009/xmlenc11#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}

TOKEN_TYPES = {
    "urn:ietf:params:xml:ns:keyprov:pskc:hotp": "hotp",
    "urn:ietf:params:xml:ns:keyprov:pskc#hotp": "hotp",
    "urn:ietf:params:xml:ns:keyprov:pskc:totp": "totp",
    "urn:ietf:params:xml:ns:keyprov:pskc#totp": "totp",
}

HASH_NAMES = {
    "sha1": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384",
    "sha512": "sha512", "sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256",
    "sha-384": "sha384", "sha-512": "sha512",
}

HMAC_TYPES = {
    "http://www.w3.org/2000/09/xmldsig#hmac-sha1": hashes.SHA1,
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha224": hashes.SHA224,
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384": hashes.SHA384,
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512": hashes.SHA512,
}

CIPHERS = {
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc": (algorithms.AES, 128),
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc": (algorithms.AES, 192),
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc": (algorithms.AES, 256),
    "http://www.w3.org/2001/04/xmlenc#tripledes-cbc": (TripleDES, 64),
    "http://www.w3.org/2001/04/xmldsig-more#camellia128": (Camellia, 128),
    "http://www.w3.org/2001/04/xmldsig-more#camellia192": (Camellia, 192),
    "http://www.w3.org/2001/04/xmldsig-more#camellia256": (Camellia, 256),
}

PBKDF2_URI = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2"


class Rejected(Exception):
    """The importer refuses this token (or, raised at file level, the whole file)."""


def fetch_all(element, path):
    return element.xpath(path, namespaces=NS)


def fetch(element, path, conv=lambda v: v, default=None):
    found = fetch_all(element, path)
    return conv(found[0]) if found else default


def hash_name(text):
    if text is None:
        return "sha1"
    lowered = text.lower()
    for candidate in (lowered, lowered[len("hmac-"):] if lowered.startswith("hmac-") else None):
        if candidate in HASH_NAMES:
            return HASH_NAMES[candidate]
    return "sha1"


def utc_date(text):
    value = dateutil.parser.parse(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dateutil.tz.tzlocal())
    return value.astimezone(dateutil.tz.tzutc())


class Decryptor:
    """XML Encryption as the importer does it: key-length check, MAC check, CBC, PKCS#7."""

    def __init__(self, key, mac=None):
        self.key = key
        self.mac = mac

    def __call__(self, encrypted, value_mac=None, mac_required=False):
        algo, bits = fetch(encrypted, "./xenc:EncryptionMethod/@Algorithm",
                           lambda v: CIPHERS.get(v.lower(), (None, None)), (None, None))
        data = fetch(encrypted, "./xenc:CipherData/xenc:CipherValue/text()", base64.b64decode)
        if algo is None:
            raise Rejected("Unsupported encryption algorithm!")
        if len(self.key) * 8 != bits:  # as upstream: 3DES (listed as 64 bits) always fails
            raise Rejected("Invalid key length!")
        if mac_required and self.mac is not None and value_mac is None:
            raise Rejected("Missing ValueMAC!")
        if value_mac is not None and self.mac is not None:
            check = self.mac.copy()
            check.update(data)
            try:
                check.verify(value_mac)
            except InvalidSignature:
                raise Rejected("MAC validation failed!")
        block = algo.block_size // 8
        iv, body = data[:block], data[block:]
        decryptor = Cipher(algo(self.key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(body) + decryptor.finalize()
        unpadder = PKCS7(algo.block_size).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise Rejected("Invalid padding!")


def value_of(element, decryptor, plain_conv, enc_conv):
    """PlainValue (plain_conv) or EncryptedValue decrypted then enc_conv; None if neither."""
    plain = fetch(element, "./pskc:PlainValue/text()")
    if plain is not None:
        return plain_conv(plain)
    mac = fetch(element, "./pskc:ValueMAC/text()", base64.b64decode)
    encrypted = fetch(element, "./pskc:EncryptedValue")
    if encrypted is not None and decryptor is not None:
        return enc_conv(decryptor(encrypted, mac, mac_required=True))
    return None


def derive(enckey, secret):
    method = fetch(enckey, "./xenc11:DerivedKey/xenc11:KeyDerivationMethod/@Algorithm")
    if method is None or method.lower() != PBKDF2_URI:
        return secret
    params = fetch(enckey, "./xenc11:DerivedKey/xenc11:KeyDerivationMethod/pkcs5:PBKDF2-params")
    if params is None:
        raise Rejected("XML file is missing PBKDF2 parameters!")
    salt = fetch(params, "./Salt/Specified/text()", base64.b64decode)
    rounds = fetch(params, "./IterationCount/text()", int)
    length = fetch(params, "./KeyLength/text()", int)
    prf = fetch(params, "./PRF/@Algorithm", lambda v: HMAC_TYPES.get(v.lower(), hashes.SHA1),
                hashes.SHA1)
    if salt is None:
        raise Rejected("XML file is missing PBKDF2 salt!")
    if rounds is None:
        raise Rejected("XML file is missing PBKDF2 iteration count!")
    if length is None:
        raise Rejected("XML file is missing PBKDF2 key length!")
    return PBKDF2HMAC(algorithm=prf(), length=length, salt=salt, iterations=rounds).derive(secret)


def document_decryptor(root, keyfile):
    enckey = fetch(root, "./pskc:EncryptionKey")
    if enckey is None:
        return None
    if fetch(enckey, "./ds:X509Data") is not None:
        raise Rejected("X.509 keys are not currently supported!")
    keyname = fetch(enckey, "./ds:KeyName/text()")
    if keyname is None:
        keyname = fetch(enckey, "./xenc11:DerivedKey/xenc11:MasterKeyName/text()")
    if keyname is None:
        return None  # the importer never asks for a key: encrypted secrets stay unreadable
    if keyfile is None:
        raise Rejected(f"Encryption key required: {keyname}!")
    with open(keyfile, "rb") as source:
        key = derive(enckey, source.read())
    decryptor = Decryptor(key)
    mac_key = fetch(root, "./pskc:MACMethod/pskc:MACKey")
    mac_algo = fetch(root, "./pskc:MACMethod/@Algorithm",
                     lambda v: HMAC_TYPES.get(v.lower(), hashes.SHA1))
    if mac_key is not None and mac_algo is not None:
        decryptor = Decryptor(key, hmac.HMAC(decryptor(mac_key), mac_algo()))
    return decryptor


def package_options(package, decryptor):
    key = fetch(package, "./pskc:Key")
    if key is None:
        raise Rejected("Unsupported token type!")
    device = lambda p: fetch(package, "./pskc:DeviceInfo/pskc:" + p + "/text()")
    params = lambda p: fetch(key, "./pskc:AlgorithmParameters/" + p)
    data = lambda p, conv: fetch(key, "./pskc:Data/pskc:" + p,
                                 lambda e: value_of(e, decryptor, conv, conv))
    policy = lambda p: fetch(key, "./pskc:Policy/pskc:" + p)

    token_type = fetch(key, "./@Algorithm", lambda v: TOKEN_TYPES.get(v.lower()))
    secret = fetch(key, "./pskc:Data/pskc:Secret",
                   lambda e: value_of(e, decryptor, base64.b64decode, lambda b: b))
    checkdigit = params("pskc:ResponseFormat/@CheckDigit")
    encoding = params("pskc:ResponseFormat/@Encoding")
    time_value = data("Time", int)
    usage = fetch(key, "./pskc:Policy/pskc:KeyUsage/text()")

    # Validation, in the importer's order.
    if token_type not in ("totp", "hotp"):
        raise Rejected("Unsupported token type!")
    if secret is None:
        if fetch(key, "./pskc:KeyReference/text()") is not None:
            raise Rejected("Referenced keys are not supported!")
        raise Rejected("Key not found in token!")
    if (checkdigit or "FALSE").upper() != "FALSE":
        raise Rejected("CheckDigit not supported!")
    if policy("NumberOfTransactions") is not None:
        raise Rejected("NumberOfTransactions policy not supported!")
    if policy("PINPolicy") is not None:
        raise Rejected("PINPolicy policy not supported!")
    if (time_value or 0) != 0:
        raise Rejected("Specified time is not supported!")
    if (encoding or "DECIMAL").upper() != "DECIMAL":
        raise Rejected(f"Unsupported encoding: {encoding.upper()}!")
    if (usage or "OTP") != "OTP":
        raise Rejected(f"Unsupported key usage: {usage}")

    options = {"type": token_type, "ipatokenotpkey": base64.b32encode(secret).decode("ascii")}
    text = lambda v: v.strip()
    for name, attr in (("Manufacturer", "ipatokenvendor"), ("Model", "ipatokenmodel"),
                       ("SerialNo", "ipatokenserial")):
        if device(name) is not None:
            options[attr] = text(device(name))
    if device("IssueNo") is not None:
        options["ipatokenserial"] = options.get("ipatokenserial", "") + "-" + text(device("IssueNo"))
    friendly = fetch(key, "./pskc:FriendlyName/text()")
    if friendly is not None:
        options["description"] = text(friendly)
    digits = params("pskc:ResponseFormat/@Length")
    if digits is not None:
        options["ipatokenotpdigits"] = int(digits)
    suite = params("pskc:Suite/text()")
    if params("pskc:Suite") is not None:
        options["ipatokenotpalgorithm"] = hash_name(suite)
    counter = data("Counter", int)
    if counter is not None:
        options["ipatokenhotpcounter"] = counter
    interval = data("TimeInterval", int)
    if interval is not None:
        options["ipatokentotptimestep"] = interval
    drift = data("TimeDrift", int)
    if drift is not None:
        options["ipatokentotpclockoffset"] = options.get("ipatokentotptimestep", 30) * drift
    for bound, pick in (("StartDate", max), ("ExpiryDate", min)):
        dates = [d for d in (fetch(key, f"./pskc:Policy/pskc:{bound}/text()", utc_date),
                             fetch(package, f"./pskc:DeviceInfo/pskc:{bound}/text()", utc_date))
                 if d is not None]
        if dates:
            attr = "ipatokennotbefore" if bound == "StartDate" else "ipatokennotafter"
            options[attr] = pick(dates).strftime("%Y%m%d%H%M%SZ")
    return fetch(key, "./@Id"), options


def main():
    args = sys.argv[1:]
    keyfile = None
    if "--keyfile" in args:
        at = args.index("--keyfile")
        keyfile = args[at + 1]
        del args[at:at + 2]
    if len(args) != 1:
        print("usage: freeipa_import.py FILE [--keyfile PATH]", file=sys.stderr)
        sys.exit(2)
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.parse(args[0], parser).getroot()
        packages = fetch_all(root, "./pskc:KeyPackage")
        if not packages:
            raise Rejected("PSKC file is invalid!")
        decryptor = document_decryptor(root, keyfile)
    except (Rejected, etree.XMLSyntaxError, ValueError) as err:
        print(json.dumps({"ok": False, "error": str(err)}))
        return
    tokens = []
    for package in packages:
        try:
            token_id, options = package_options(package, decryptor)
            tokens.append({"id": token_id, "error": None, "options": options})
        except (Rejected, ValueError) as err:
            tokens.append({"id": fetch(package, "./pskc:Key/@Id"), "error": str(err),
                           "options": None})
    print(json.dumps({"ok": True, "tokens": tokens}))


if __name__ == "__main__":
    main()
