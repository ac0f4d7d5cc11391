"""Helpers for the hardening tests (test_log_canaries.py, test_isolation.py, test_faults.py):
server settings and restarts, the sidecar's process, psql subprocesses, samplers of `ps` and
pg_stat_activity, canary keys with stand-in fixtures, and audit-log bookkeeping.

Everything acts on the stack named by stack.env (PGA_STACK_DIR, PGHOST, ...) through
scripts/stackctl.py, which also decides who runs what (S.STACK).
"""
import base64
import hashlib
import hmac
import os
import random
import secrets
import shutil
import string
import subprocess
import sys
import threading
import time

import psycopg

import pga_stack as S
from pga_stack import stackctl

ENV = os.environ
DIR = S.STACK_DIR
PG_BIN = os.environ.get("PGA_PG_BIN", "/usr/lib/postgresql/15/bin")


def count(message):
    """Prints `[count] message` at the start of a line (unittest -v may have left one open),
    as scripts/test.sh collects them."""
    sys.stdout.write(f"\n[count] {message}\n")
    sys.stdout.flush()


# The stack's processes and settings: scripts/stackctl.py (one controller for all of them).
STACK = S.STACK
pg_restart = STACK.cluster.restart          # pg_restart(mode="fast")
alter_system = STACK.cluster.set            # {name: value | None | [list]}, then reload


def server_log_crash_lines():
    return [l for l in S.read_log("PGA_POSTGRES_LOG").splitlines() if "terminated by signal" in l]


def psql(sql, role="app", timeout=60, extra=()):
    """Runs a psql script given on stdin (never on the command line, so `ps` shows no value).
    Returns (returncode, stdout, stderr)."""
    cmd = [f"{PG_BIN}/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", ENV["PGHOST"],
           "-p", ENV["PGPORT"], "-U", role, "-d", ENV.get("PGDATABASE", "alpaca"), *extra]
    r = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


# ---------------------------------------------------------------------------------------------
# The sidecar
# ---------------------------------------------------------------------------------------------
pid_alive = stackctl.pid_alive
sidecar_socket_answers = STACK.sidecar.answers
sidecar_kill9 = STACK.sidecar.kill
sidecar_ensure_running = STACK.sidecar.ensure_running
sidecar_reload = STACK.sidecar.reload
sidecar_config_get = STACK.sidecar.get
sidecar_config_set = STACK.sidecar.set   # (name, value | None)


def sidecar_pid():
    return STACK.sidecar.pid


def sidecar_start():
    """Starts the stack's sidecar (as the sidecar's OS user) and waits for its socket."""
    return STACK.sidecar.start().pid


def broker_call(user, cred, sql="SELECT account_number FROM alpaca_account(%s)", timeout_ms=None):
    """One broker call in its own connection; returns (rows or None, error or None, seconds)."""
    t0 = time.monotonic()
    try:
        with S.connect(role="app") as c:
            if timeout_ms:
                c.execute(f"SET pg_alpaca.request_timeout_ms = {int(timeout_ms)}")
            return S.as_user(c, user, sql, (cred,)), None, time.monotonic() - t0
    except psycopg.Error as e:
        return None, e, time.monotonic() - t0


def warm_sidecar(user=None, cred=None, attempts=12):
    """Makes calls until one succeeds (each stale pooled connection may fail one call);
    returns the number of failed calls before that. Without a credential, stores the stand-in's
    Alice key for a user of its own."""
    if cred is None:
        user = random_user("warm")
        with S.connect(role="app") as c:
            cred = S.store(c, user, S.ALICE, S.fixture_secret(S.ALICE))
    for i in range(attempts):
        rows, err, _ = broker_call(user, cred)
        if err is None:
            return i
        time.sleep(0.1)
    raise RuntimeError(f"no broker call succeeds: {err}")


# ---------------------------------------------------------------------------------------------
# Canaries
# ---------------------------------------------------------------------------------------------
_ALNUM = string.ascii_uppercase + string.digits


def rand_text(n, alphabet=_ALNUM):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def canary_key_pair(tag):
    """An Alpaca-like key id (PK + 18) and secret (40), both unique to this run."""
    return "PK" + tag[:4].upper() + rand_text(14), rand_text(40, string.ascii_letters + string.digits)


def search_cores(value, hint_len=4):
    """The substrings to search for: the value without its last `hint_len` characters (the
    key hint shown by alpaca_list_credentials is the last 4 of a key id) and, for long
    values, a 16-character window from the middle (catches a truncated log line)."""
    v = value.lower()
    cores = {v[:-hint_len] if hint_len else v}
    if len(v) >= 32:
        mid = len(v) // 2
        cores.add(v[mid - 8:mid + 8])
    return cores


def add_standin_fixture(key_id, secret, template="PKTESTBOB00000000002"):
    """A stand-in account for a canary key (copies a fixture's JSON), then reloads."""
    src = os.path.join(S.FIXTURES, template)
    dst = os.path.join(S.FIXTURES, key_id)
    os.makedirs(dst, exist_ok=True)
    for name in ("account.json", "positions.json", "orders.json"):
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
    with open(os.path.join(dst, "secret"), "w") as f:
        f.write(secret + "\n")
    return dst


def remove_standin_fixture(key_id):
    shutil.rmtree(os.path.join(S.FIXTURES, key_id), ignore_errors=True)


def standin_reload():
    return S._control("POST", "/reload")


def fernet_key():
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def fernet_encrypt(key_b64, plaintext):
    """A Fernet token (spec: version 0x80, timestamp, IV, AES-128-CBC, HMAC-SHA256), made with
    pyca/cryptography when present, else with the openssl command (plaintext on stdin)."""
    try:
        from cryptography.fernet import Fernet
        return Fernet(key_b64.encode()).encrypt(plaintext.encode()).decode()
    except ImportError:
        pass
    raw = base64.urlsafe_b64decode(key_b64)
    signing, enc = raw[:16], raw[16:]
    iv = os.urandom(16)
    ct = subprocess.run(["openssl", "enc", "-aes-128-cbc", "-K", enc.hex(), "-iv", iv.hex()],
                        input=plaintext.encode(), capture_output=True, check=True).stdout
    body = b"\x80" + int(time.time()).to_bytes(8, "big") + iv + ct
    mac = hmac.new(signing, body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(body + mac).decode()


# ---------------------------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------------------------
class Sampler:
    """Collects `ps -eo args` listings and pg_stat_activity.query as seen by other roles,
    every `period` seconds, in a background thread, until stop()."""

    def __init__(self, roles=("admin", "alpaca_sidecar_login"), period=0.02):
        self.roles, self.period = roles, period
        self.ps_samples, self.activity_samples = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.errors = []

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def _run(self):
        conns = {}
        try:
            for role in self.roles:
                conns[role] = S.connect(role=role)
            while not self._stop.is_set():
                r = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True)
                self.ps_samples.append(r.stdout)
                for role, c in conns.items():
                    rows = c.execute("SELECT coalesce(query, '') FROM pg_stat_activity "
                                     "WHERE pid <> pg_backend_pid()").fetchall()
                    self.activity_samples.append((role, "\n".join(q for (q,) in rows)))
                self._stop.wait(self.period)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))
        finally:
            for c in conns.values():
                c.close()


# ---------------------------------------------------------------------------------------------
# Audit log and credentials
# ---------------------------------------------------------------------------------------------
def audit_snapshot():
    """(row count, max id) of the whole audit log, as the superuser."""
    with S.connect() as c:
        return c.execute("SELECT count(*), coalesce(max(id), 0) FROM alpaca.audit_log").fetchone()


def audit_ids():
    with S.connect() as c:
        return [i for (i,) in c.execute("SELECT id FROM alpaca.audit_log ORDER BY id")]


def all_credentials_decrypt():
    """Every active credential still decrypts: as the superuser, mints a ticket for each
    (credential, owner) and redeems it (one CALL each). Returns (count, failures)."""
    with S.connect() as su:
        tickets = su.execute(
            "SELECT c.id, alpaca._mint_ticket(c.id, c.owner_id, 'account', clock_timestamp() + interval '5 minutes')"
            " FROM alpaca.credentials c WHERE c.is_active").fetchall()
        ok, failures = 0, []
        for cred, t in tickets:
            try:
                row = su.execute("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)", (t,)).fetchone()
                ok += row[0] == cred and len(row[2]) > 0 and len(row[3]) > 0
            except psycopg.Error as e:
                if len(failures) < 5:
                    failures.append(f"{e.sqlstate}: {e.diag.message_primary}")
    active = len(tickets)
    return active, (failures or ([] if ok == active else [f"only {ok} of {active} decrypt"]))


def random_user(prefix="u"):
    return f"{prefix}-{rand_text(10).lower()}"


def shuffled(seq, seed=None):
    seq = list(seq)
    random.Random(seed).shuffle(seq)
    return seq
