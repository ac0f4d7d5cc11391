"""Helpers for the hardening tests (test_log_canaries.py, test_isolation.py, test_faults.py):
server settings and restarts, the sidecar's process, psql subprocesses, samplers of `ps` and
pg_stat_activity, canary keys with stand-in fixtures, and audit-log bookkeeping.

Everything acts on the stack named by stack.env (PGA_STACK_DIR, PGHOST, ...). The cluster,
the sidecar and the stand-in run as the runner user (PGA_RUNNER; postgres when we are root).
"""
import base64
import getpass
import hashlib
import hmac
import os
import random
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time

import psycopg

import pga_stack as S

ENV = os.environ
DIR = S.STACK_DIR
PG_BIN = os.environ.get("PGA_PG_BIN", "/usr/lib/postgresql/15/bin")
PGDATA = os.path.join(DIR, "pgdata")
RUNNER = ENV.get("PGA_RUNNER") or ("postgres" if os.geteuid() == 0 else getpass.getuser())
SIDECAR_BIN = os.path.join(DIR, "bin", "alpaca-sidecar")
SIDECAR_CONF = ENV.get("PGA_SIDECAR_CONFIG", os.path.join(DIR, "sidecar.conf"))
SIDECAR_PID = os.path.join(DIR, "run", "sidecar.pid")
SIDECAR_OUT = os.path.join(DIR, "log", "sidecar.out")


def count(message):
    """Prints `[count] message` at the start of a line (unittest -v may have left one open),
    as scripts/test.sh collects them."""
    sys.stdout.write(f"\n[count] {message}\n")
    sys.stdout.flush()


def as_runner(cmd):
    return ["runuser", "-u", RUNNER, "--"] + cmd if os.geteuid() == 0 else cmd


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
def pg_restart(mode="fast"):
    """pg_ctl restart as the runner user, appending to the stack's server log."""
    r = run(as_runner([f"{PG_BIN}/pg_ctl", "-D", PGDATA, "-l", ENV["PGA_POSTGRES_LOG"],
                       "-w", "-t", "60", "restart", "-m", mode]))
    if r.returncode != 0:
        raise RuntimeError(f"pg_ctl restart failed: {r.stdout} {r.stderr}")
    wait_pg()


def wait_pg(timeout=30):
    def ok():
        try:
            with S.connect() as c:
                c.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False
    if not S.wait_until(ok, timeout, 0.1):
        raise RuntimeError("PostgreSQL does not accept connections")


def alter_system(settings):
    """ALTER SYSTEM SET each name = value (None: RESET; a list or tuple: a list setting such
    as shared_preload_libraries) and reload."""
    with S.connect() as c:
        for name, value in settings.items():
            if value is None:
                c.execute(f"ALTER SYSTEM RESET {name}")
            elif isinstance(value, (list, tuple)):
                c.execute(f"ALTER SYSTEM SET {name} = " + ", ".join(f"'{v}'" for v in value))
            else:
                c.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        c.execute("SELECT pg_reload_conf()")


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
def sidecar_pid():
    try:
        with open(SIDECAR_PID) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid):
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def sidecar_socket_answers():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(ENV["PGA_SIDECAR_SOCKET"])
        return True
    except OSError:
        return False
    finally:
        s.close()


def sidecar_start(timeout=20):
    """Starts the sidecar as the runner user (as scripts/stack.sh does) and waits for its socket."""
    cmd = (f"exec '{SIDECAR_BIN}' --config '{SIDECAR_CONF}' >>'{SIDECAR_OUT}' 2>&1 & "
           f"echo $! > '{SIDECAR_PID}'")
    r = run(as_runner(["bash", "-c", cmd]))
    if r.returncode != 0:
        raise RuntimeError(f"could not start the sidecar: {r.stderr}")
    if not S.wait_until(sidecar_socket_answers, timeout, 0.05):
        raise RuntimeError("the sidecar did not open its socket; see " + SIDECAR_OUT)
    return sidecar_pid()


def sidecar_kill9():
    pid = sidecar_pid()
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        S.wait_until(lambda: not pid_alive(pid), 10)
    return pid


def sidecar_ensure_running():
    if not pid_alive(sidecar_pid()) or not sidecar_socket_answers():
        sidecar_kill9()
        sidecar_start()


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


def sidecar_config_get(name):
    with open(SIDECAR_CONF) as f:
        for line in f:
            if "=" in line and line.split("=", 1)[0].strip() == name:
                return line.split("=", 1)[1].strip()
    return None


def sidecar_config_set(name, value):
    """Edits one `key = value` line of the sidecar's config in place (keeps owner and mode)."""
    with open(SIDECAR_CONF) as f:
        lines = f.read().splitlines()
    out, done = [], False
    for line in lines:
        if "=" in line and line.split("=", 1)[0].strip() == name:
            if value is not None:
                out.append(f"{name} = {value}")
            done = True
        else:
            out.append(line)
    if not done and value is not None:
        out.append(f"{name} = {value}")
    with open(SIDECAR_CONF, "w") as f:
        f.write("\n".join(out) + "\n")


def sidecar_reload():
    pid = sidecar_pid()
    if not pid_alive(pid):
        raise RuntimeError("the sidecar is not running")
    os.kill(pid, signal.SIGHUP)


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
