#!/usr/bin/env python3
"""A throw-away privacyIDEA 3.14 server on loopback, driven line by line over stdin/stdout.

Oracle for the seed-export tests: what matters is what the real privacyIDEA does with a PSKC
file, so this script runs the real program (installed by scripts/setup-privacyidea.sh) and
talks to it only through its public HTTP API, the way an administrator's tooling would:

  1. instance: pi.cfg + encryption key + audit keys + SQLite database in a fresh directory,
     made with `pi-manage setup create_enckey`, `create_audit_keys`, `create_tables` and
     `pi-manage admin add`;
  2. server: `pi-manage run -h 127.0.0.1 -p PORT`, polled until it answers;
  3. `POST /auth` as the admin, then for each request line:
       {"op": "load", "file": PATH, "psk": HEX32} or {"op": "load", "file": PATH, "password": PW}
           -> POST /token/load/<name> with type=pskc (multipart, field "file")
       {"op": "check", "serial": S, "pass": OTP}   -> POST /validate/check
       {"op": "token", "serial": S}                -> GET /token/?serial=S (all without S)
       {"op": "quit"}
     and answers each with one JSON line {"http": STATUS, "body": <parsed JSON or text>}.

The first line written is {"ready": true, "port": PORT} (or {"ready": false, "error": ...}).
The server is stopped and the directory removed when stdin closes or "quit" arrives.

Usage: privacyidea_harness.py [--keep DIR]   (python of the privacyIDEA venv)
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
PI_MANAGE = os.path.join(VENV_BIN, "pi-manage")
ADMIN = "keyprov-admin"


def write_config(work):
    """pi.cfg for an SQLite-backed instance whose files all live in `work`."""
    cfg = os.path.join(work, "pi.cfg")
    values = {
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + os.path.join(work, "pi.sqlite"),
        "SECRET_KEY": secrets.token_hex(32),
        "PI_PEPPER": secrets.token_hex(16),
        "PI_ENCFILE": os.path.join(work, "enckey"),
        "PI_AUDIT_KEY_PRIVATE": os.path.join(work, "private.pem"),
        "PI_AUDIT_KEY_PUBLIC": os.path.join(work, "public.pem"),
        "PI_LOGFILE": os.path.join(work, "privacyidea.log"),
        "PI_UUID_FILE": os.path.join(work, "uuid.txt"),
    }
    with open(cfg, "w") as out:
        for key, value in values.items():
            out.write(f"{key} = {value!r}\n")
        out.write("PI_LOGLEVEL = 20\n")
    return cfg


def pi_manage(env, work, *args):
    """Runs one pi-manage command; raises with its output when it fails."""
    done = subprocess.run([PI_MANAGE, *args], env=env, cwd=work, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pi-manage {' '.join(args[:2])} failed: {done.stderr[-2000:]}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env, work):
    """Starts `pi-manage run` and waits until /healthz (or /auth) answers; returns (proc, url)."""
    port = free_port()
    log = open(os.path.join(work, "run.log"), "w")
    proc = subprocess.Popen(
        [PI_MANAGE, "run", "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pi-manage run exited with {proc.returncode}")
        try:
            requests.get(url + "/", timeout=1)
            return proc, url, port
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError("pi-manage run did not answer within 60 s")


def answer(response):
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return {"http": response.status_code, "body": body}


def serve(url, password):
    session = requests.Session()
    auth = session.post(url + "/auth", data={"username": ADMIN, "password": password})
    auth.raise_for_status()
    token = auth.json()["result"]["value"]["token"]
    headers = {"Authorization": token}
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.get("op")
        if op == "quit":
            break
        if op == "load":
            path = request["file"]
            form = {"type": "pskc"}
            for field in ("psk", "password", "pskcValidateMAC"):
                if field in request:
                    form[field] = request[field]
            with open(path, "rb") as content:
                files = {"file": (os.path.basename(path), content, "application/pskc+xml")}
                reply = session.post(f"{url}/token/load/{os.path.basename(path)}",
                                     data=form, files=files, headers=headers)
        elif op == "check":
            reply = session.post(url + "/validate/check",
                                 data={"serial": request["serial"], "pass": request["pass"]})
        elif op == "token":
            params = {"serial": request["serial"]} if request.get("serial") else {}
            reply = session.get(url + "/token/", params=params, headers=headers)
        else:
            print(json.dumps({"http": 0, "body": f"unknown op {op!r}"}), flush=True)
            continue
        print(json.dumps(answer(reply)), flush=True)


def main():
    keep = None
    if len(sys.argv) == 3 and sys.argv[1] == "--keep":
        keep = sys.argv[2]
        os.makedirs(keep, exist_ok=True)
    work = keep or tempfile.mkdtemp(prefix="keyprov-pi-")
    proc = None
    try:
        env = dict(os.environ, PRIVACYIDEA_CONFIGFILE=write_config(work))
        password = secrets.token_urlsafe(16)
        pi_manage(env, work, "setup", "create_enckey")
        pi_manage(env, work, "setup", "create_audit_keys")
        pi_manage(env, work, "setup", "create_tables")
        pi_manage(env, work, "admin", "add", ADMIN, "-p", password)
        proc, url, port = start_server(env, work)
        print(json.dumps({"ready": True, "port": port}), flush=True)
        serve(url, password)
    except Exception as err:  # reported to the test, which fails with the message
        print(json.dumps({"ready": False, "error": str(err)}), flush=True)
        sys.exit(1)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
