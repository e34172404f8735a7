# Prints python-pskc's view of a PSKC file as JSON, for the keyprov interop tests.
# Dates are normalised to UTC "YYYY-MM-DDTHH:MM:SSZ"; a field python-pskc cannot read
# (no key, wrong key) becomes {"error": "..."}; a file it cannot load gives {"load_error": ...}.
import json, sys, datetime
import pskc
from dateutil import tz

def date(d):
    if d is None: return None
    if d.tzinfo is None: d = d.replace(tzinfo=tz.tzutc())
    return d.astimezone(tz.tzutc()).strftime('%Y-%m-%dT%H:%M:%SZ')

def get(fn):
    try:
        return fn()
    except Exception as e:
        return {'error': '%s: %s' % (type(e).__name__, e)}

# Arguments: file, hex key (or empty), password (or empty).
path, key, password = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    p = pskc.PSKC(path)
    if key: p.encryption.key = bytes.fromhex(key)
    if password: p.encryption.derive_key(password)
except Exception as e:
    print(json.dumps({'load_error': '%s: %s' % (type(e).__name__, e)})); sys.exit(0)
keys = []
for k in p.keys:
    secret = get(lambda: k.secret)
    if isinstance(secret, bytes): secret = secret.hex()
    pol = k.policy
    keys.append({
        'id': k.id, 'algorithm': k.algorithm, 'issuer': k.issuer,
        'manufacturer': k.manufacturer, 'serial': k.serial, 'model': k.model,
        'issue_no': k.issue_no, 'crypto_module_id': k.crypto_module,
        'device_user_id': k.device_userid, 'user_id': k.key_userid,
        'friendly_name': k.friendly_name, 'key_profile_id': k.key_profile,
        'key_reference': k.key_reference,
        'response_format': {'encoding': k.response_encoding, 'length': k.response_length, 'check_digits': k.response_check},
        'challenge_format': {'encoding': k.challenge_encoding, 'min': k.challenge_min_length, 'max': k.challenge_max_length, 'check_digits': k.challenge_check},
        'secret': secret, 'counter': get(lambda: k.counter), 'time': get(lambda: k.time_offset),
        'time_interval': get(lambda: k.time_interval), 'time_drift': get(lambda: k.time_drift),
        'policy': {'start_date': date(pol.start_date), 'expiry_date': date(pol.expiry_date),
                   'key_usage': pol.key_usage or None, 'number_of_transactions': pol.number_of_transactions,
                   'pin_key_id': pol.pin_key_id, 'pin_usage_mode': pol.pin_usage, 'pin_max_failed_attempts': pol.pin_max_failed_attempts,
                   'pin_min_length': pol.pin_min_length, 'pin_max_length': pol.pin_max_length, 'pin_encoding': pol.pin_encoding,
                   'usable': pol.may_use()},
    })
print(json.dumps({'version': p.version, 'id': p.id, 'keys': keys}))
