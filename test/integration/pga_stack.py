"""Shared helpers for the integration tests (run with /usr/bin/python3 against a stack started
by scripts/stack.sh; its stack.env must be in the environment).

    import pga_stack as S
    with S.connect() as conn:                     # superuser (postgres)
        ...
    with S.connect(role="app") as conn:            # login role in alpaca_app
        cred = S.store(conn, "alice", "PKTESTALICE000000001", S.fixture_secret("PKTESTALICE000000001"))
        rows = S.as_user(conn, "alice", "SELECT * FROM alpaca_positions(%s)", (cred,))
    S.standin_fault({"mode": "delay", "delay_ms": 500})   # stand-in control port
    S.standin_clear()
    S.STACK.sidecar.restart(); S.STACK.cluster.restart()  # scripts/stackctl.py
"""
import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import urllib.request

import psycopg

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import stackctl  # noqa: E402  (the one stack controller: processes, settings, OS users)

ENV = os.environ
STACK_DIR = ENV["PGA_STACK_DIR"]
STACK = stackctl.Stack(STACK_DIR)
FIXTURES = os.path.join(STACK_DIR, "standin", "fixtures")
ALICE, BOB, LIVE = "PKTESTALICE000000001", "PKTESTBOB00000000002", "AKTESTLIVE0000000003"


def connect(role="postgres", dbname=None, autocommit=True, **kw):
    """A psycopg 3 connection (server-side bind parameters) as a login role of the stack:
    postgres (superuser), app (alpaca_app), admin (alpaca_admin), alpaca_sidecar_login."""
    return psycopg.connect(host=ENV["PGHOST"], port=ENV["PGPORT"],
                           dbname=dbname or ENV.get("PGDATABASE", "alpaca"), user=role,
                           autocommit=autocommit, **kw)


def fixture_secret(key_id):
    with open(os.path.join(FIXTURES, key_id, "secret")) as f:
        return f.read().strip()


def fixture_json(key_id, name):
    with open(os.path.join(FIXTURES, key_id, name)) as f:
        return json.load(f)


def as_user(conn, user, sql, params=()):
    """Runs one statement in its own transaction as application user `user`; returns rows."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.execute("SELECT alpaca_set_user(%s)", (user,))
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []


def store(conn, user, api_key, secret_key, environment="paper", account_name=None):
    """Creates an account for `user` and stores a credential in it; returns the credential id."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.execute("SELECT alpaca_set_user(%s)", (user,))
            cur.execute("SELECT alpaca_create_account(%s)", (account_name or f"{user} account",))
            account = cur.fetchone()[0]
            cur.execute("SELECT alpaca_store_credential(%s, %s, %s, %s)",
                        (account, api_key, secret_key, environment))
            return cur.fetchone()[0]


def _control(method, path, body=None):
    url = ENV["PGA_STANDIN_CONTROL_URL"] + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def standin_fault(fault):
    return _control("POST", "/faults", fault)


def standin_clear():
    _control("DELETE", "/faults")


def standin_stats(settled=False):
    """The stand-in's /stats. settled: the stand-in first waits (at most 2 s) until every
    request it has answered is in `counts` and `recent` (it records one just after its answer)."""
    return _control("GET", "/stats?settled=1" if settled else "/stats")


def standin_reset_stats():
    _control("DELETE", "/stats")


def read_log(path_env):
    with open(ENV[path_env], errors="replace") as f:
        return f.read()


wait_until = stackctl.wait_until


def fake_sidecar_socket(prefix):
    """A listening unix socket in a folder of its own that the server's OS user may connect to
    (a fake sidecar's); returns (folder, socket path, socket). remove_fake_socket undoes it."""
    folder = tempfile.mkdtemp(prefix=prefix)
    os.chmod(folder, 0o755)
    path = os.path.join(folder, "s.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o777)
    sock.listen(8)
    return folder, path, sock


def remove_fake_socket(folder, sock):
    sock.close()
    shutil.rmtree(folder, ignore_errors=True)


def sidecar_frame(header, body=b""):
    """A request frame for the sidecar's socket (common/wire.hpp): u32 length | u32 header
    length | header JSON (a dict, or bytes as they are) | body."""
    h = json.dumps(header).encode() if isinstance(header, dict) else header
    payload = struct.pack(">I", len(h)) + h + body
    return struct.pack(">I", len(payload)) + payload


def read_sidecar_answer(s, timeout):
    """The next answer frame on socket s as its header dict, or None (closed, timed out). Reads
    exactly one frame, so a second answer on the same socket is left for the next call."""
    s.settimeout(timeout)

    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf
    try:
        payload = exactly(struct.unpack(">I", exactly(4))[0])
    except (OSError, EOFError):
        return None
    hlen = struct.unpack(">I", payload[:4])[0]
    return json.loads(payload[4:4 + hlen])
