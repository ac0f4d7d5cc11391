#!/usr/bin/python3
"""The one controller of a throwaway pg_alpaca stack: a PostgreSQL cluster with the extension,
the key file and the roles; the Alpaca stand-in over HTTPS with a CA made here; the sidecar.
scripts/stack.sh is its command line; the integration tests, scripts/bench.sh, bench/bench.py
and vault_disk_thief.sh use it (import stackctl, or scripts/stack.sh CMD DIR ...).

Who runs what (the one rule, here and nowhere else):
  * the cluster and the stand-in run as RUNNER: `postgres` when we are root (initdb refuses
    root), else the calling user;
  * the sidecar runs as SIDECAR_USER, a system user of its own (`alpaca-sidecar`, created here
    when missing, with root or sudo). Without root or sudo it runs as RUNNER, unconfined: said
    loudly, and test/security/test_sidecar_confinement.py then reports that it cannot run.

The layout (mirrors the README's install steps, see there):
  DIR/run        0700 RUNNER           the cluster's unix socket (trust: only RUNNER and root
                                       can enter it), the pid files
  DIR/keys       0700 RUNNER           the key file (0600)
  DIR/pgdata     0700 RUNNER
  DIR/sidecar    2750 SIDECAR_USER:<RUNNER's group>   the sidecar's socket (0660; the setgid
                                       bit gives it the server's group), its passfile (0600),
                                       its logs; the server can connect, nobody else
  DIR/sidecar.conf  0640 root:SIDECAR_USER's group   (the sidecar reads it, cannot change it)
  DIR/replica    0755 RUNNER           a hot standby (replica-up): pgdata, run (its socket),
                                       log; its sidecar is DIR/sidecar/replica.{sock,conf,log}
The sidecar logs in over TCP loopback (the cluster listens on 127.0.0.1) with SCRAM and a
passfile of its own; pg_hba.conf accepts TCP only for its role alpaca_sidecar_login. PostgreSQL
15's pg_ident cannot map root to every role the tests create, hence trust on a socket the
sidecar cannot reach rather than peer.
"""
import argparse
import base64
import grp
import hashlib
import hmac
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_BIN = os.environ.get("PGA_PG_BIN", "/usr/lib/postgresql/15/bin")
PY = "/usr/bin/python3"
IS_ROOT = os.geteuid() == 0
ME = pwd.getpwuid(os.getuid()).pw_name
RUNNER = "postgres" if IS_ROOT else ME
SIDECAR_ROLE = "alpaca_sidecar_login"
_SIDECAR_USER_DEFAULT = "alpaca-sidecar"


def log(msg):
    sys.stderr.write(f"\033[1m[pg_alpaca]\033[0m {msg}\n")


class StackError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# OS users
# ---------------------------------------------------------------------------------------------
_sudo = None


def have_sudo():
    global _sudo
    if _sudo is None:
        _sudo = (not IS_ROOT and shutil.which("sudo") is not None and
                 subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0)
    return _sudo


def can_be_anyone():
    return IS_ROOT or have_sudo()


def as_root(cmd):
    if IS_ROOT:
        return cmd
    if have_sudo():
        return ["sudo", "-n", "--"] + cmd
    raise StackError(f"need root or sudo for: {' '.join(cmd)}")


def as_user(user, cmd):
    """The command line that runs cmd as OS user `user` (runuser as root, sudo otherwise)."""
    if user == ME:
        return cmd
    if IS_ROOT:
        return ["runuser", "-u", user, "--"] + cmd
    if have_sudo():
        return ["sudo", "-n", "-u", user, "--"] + cmd
    raise StackError(f"cannot run as {user} without root or sudo")


def primary_group(user):
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


def sidecar_user():
    """The sidecar's OS user, created when missing (None: cannot, run unconfined)."""
    name = os.environ.get("PGA_SIDECAR_USER_NAME", _SIDECAR_USER_DEFAULT)
    if not can_be_anyone():
        return None  # we could not start it as another user anyway
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        pass
    log(f"creating the system user {name} (the sidecar's OS user)")
    subprocess.run(as_root(["useradd", "--system", "--user-group", "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]),
                   check=True, capture_output=True)
    return name


def ensure_users():
    """(runner, sidecar user, confined); checks the runner exists, creates the sidecar user."""
    try:
        pwd.getpwnam(RUNNER)
    except KeyError:
        raise StackError(f"user {RUNNER} does not exist (is PostgreSQL {PG_BIN} installed?)")
    sc = sidecar_user()
    if sc is None:
        log("WARNING: neither root nor sudo: the sidecar runs as " + RUNNER + ", UNCONFINED "
            "(it can read the key file and log in as a superuser); the confinement attacks "
            "cannot run")
        return RUNNER, RUNNER, False
    return RUNNER, sc, True


def _drop_kw(user):
    """Popen keyword arguments that run the child as `user` (we are root)."""
    pw = pwd.getpwnam(user)
    return dict(user=pw.pw_uid, group=pw.pw_gid,
                extra_groups=os.getgrouplist(user, pw.pw_gid))


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise StackError(f"{' '.join(map(str, cmd))} failed ({r.returncode}): "
                         f"{(r.stdout + r.stderr).strip()[-2000:]}")
    return r


def spawn(user, cmd, out_path, cwd):
    """Starts a long-running process as `user`, detached, output appended to out_path;
    returns its Popen (its pid is the process's own, also under sudo)."""
    out = open(out_path, "ab")
    try:
        if user == ME:
            return subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                    cwd=cwd, start_new_session=True)
        if IS_ROOT:
            return subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                    cwd=cwd, start_new_session=True, **_drop_kw(user))
        # sudo: exec in place of a shell that sudo runs, so the pid we report is the program's.
        p = subprocess.Popen(as_user(user, ["/bin/sh", "-c", 'exec "$@"', "sh"] + cmd),
                             stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=cwd,
                             start_new_session=True)
        child = None
        deadline = time.monotonic() + 5
        while child is None and time.monotonic() < deadline and p.poll() is None:
            try:
                with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                    kids = f.read().split()
                child = int(kids[0]) if kids else None
            except OSError:
                pass
            time.sleep(0.02)
        p.child_pid = child
        return p
    finally:
        out.close()


def pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # a zombie is not alive for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def send_signal(pid, sig):
    try:
        os.kill(pid, sig)
    except PermissionError:
        run(as_root(["kill", f"-{int(sig)}", str(pid)]))
    except ProcessLookupError:
        pass


def wait_until(predicate, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
# Files with an owner
# ---------------------------------------------------------------------------------------------
def make_dir(path, owner, group, mode):
    if IS_ROOT or (owner == ME and group in _my_groups()):
        os.makedirs(path, exist_ok=True)
        if IS_ROOT:
            shutil.chown(path, owner, group)
        os.chmod(path, mode)
    else:
        run(as_root(["install", "-d", "-o", owner, "-g", group, "-m", f"{mode:o}", path]))


def write_file(path, text, owner, group, mode):
    """Writes path with that owner, group and mode; the content never on a command line."""
    if IS_ROOT or owner == ME:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if IS_ROOT:
            shutil.chown(path, owner, group)
        elif group != primary_group(ME):
            run(as_root(["chgrp", group, path]))
        os.chmod(path, mode)
    else:
        q = shlex.quote(path)
        run(as_root(["sh", "-c", f"umask 077; cat > {q} && chown {owner}:{group} {q} && "
                                 f"chmod {mode:o} {q}"]), input=text)


def _my_groups():
    return {grp.getgrgid(g).gr_name for g in os.getgroups()} | {primary_group(ME)}


def scram_verifier(password, iterations=4096):
    """A SCRAM-SHA-256 verifier (RFC 7677, as PostgreSQL stores it): the password itself never
    reaches the server, its log or pg_stat_activity."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


# ---------------------------------------------------------------------------------------------
# A PostgreSQL cluster (the stack's, or a bare one such as vault_disk_thief.sh's restores)
# ---------------------------------------------------------------------------------------------
HBA = """# pg_hba.conf of a pg_alpaca throwaway cluster (scripts/stackctl.py)
# The unix socket lives in a directory only the cluster's OS user and root can enter: trust.
local   all     all                                 trust
{sidecar_line}host    all     all     0.0.0.0/0                   reject
host    all     all     ::/0                        reject
"""


class Cluster:
    def __init__(self, dir):
        self.dir = os.path.abspath(dir)
        self.pgdata = os.path.join(self.dir, "pgdata")
        self.sockdir = os.path.join(self.dir, "run")
        self.log = os.path.join(self.dir, "log", "postgresql.log")
        self.state_path = os.path.join(self.dir, "cluster.json")

    @property
    def port(self):
        with open(self.state_path) as f:
            return json.load(f)["port"]

    def pg(self, *args, check=True):
        return run(as_user(RUNNER, [f"{PG_BIN}/{args[0]}", *args[1:]]), check=check, cwd=self.dir)

    def bare(self, key_file_src):
        """A bare cluster in DIR (no sidecar, no stand-in; vault_disk_thief.sh's restores): the
        folders, a copy of key_file_src as the runner's 0600 key file; started. Returns the port."""
        rgroup = primary_group(RUNNER)
        make_dir(self.dir, RUNNER, rgroup, 0o755)
        for d, mode in (("run", 0o700), ("keys", 0o700), ("log", 0o755)):
            make_dir(os.path.join(self.dir, d), RUNNER, rgroup, mode)
        key_file = os.path.join(self.dir, "keys", "pg_alpaca.keys")
        with open(key_file_src) as f:
            write_file(key_file, f.read(), RUNNER, rgroup, 0o600)
        return self.create(key_file)

    def create(self, key_file, extra_conf="", tcp_role=None):
        """initdb, postgresql.conf, pg_hba.conf (trust on the unix socket, whose folder only
        the runner and root can enter; TCP only for tcp_role, with SCRAM); then start."""
        port = free_port()
        self.pg("initdb", "-D", self.pgdata, "-U", "postgres", "--auth-local=trust",
                "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8")
        conf = (f"port = {port}\n"
                f"listen_addresses = '{'127.0.0.1' if tcp_role else ''}'\n"
                f"unix_socket_directories = '{self.sockdir}'\n"
                "shared_preload_libraries = 'pg_alpaca'\n"
                f"pg_alpaca.key_file = '{key_file}'\n"
                "fsync = off\n" + extra_conf)
        sidecar_line = ""
        if tcp_role:
            sidecar_line = ("# The sidecar: TCP loopback, SCRAM (its passfile), its own role only.\n"
                            f"host    alpaca  {tcp_role}  127.0.0.1/32  scram-sha-256\n")
        # As the runner (it owns pgdata): append the settings, replace pg_hba.conf.
        run(as_user(RUNNER, ["tee", "-a", os.path.join(self.pgdata, "postgresql.conf")]),
            input=conf)
        run(as_user(RUNNER, ["tee", os.path.join(self.pgdata, "pg_hba.conf")]),
            input=HBA.format(sidecar_line=sidecar_line))
        with open(self.state_path + ".tmp", "w") as f:
            json.dump({"port": port, "key_file": key_file}, f)
        os.replace(self.state_path + ".tmp", self.state_path)
        self.start()
        return port

    def start(self):
        self.pg("pg_ctl", "-D", self.pgdata, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode="fast"):
        if os.path.exists(os.path.join(self.pgdata, "postmaster.pid")):
            self.pg("pg_ctl", "-D", self.pgdata, "-m", mode, "-w", "stop", check=False)

    def restart(self, mode="fast"):
        self.pg("pg_ctl", "-D", self.pgdata, "-l", self.log, "-w", "-t", "60", "restart",
                "-m", mode)
        if not wait_until(self.accepts, 30, 0.1):
            raise StackError("PostgreSQL does not accept connections after the restart")

    def running(self):
        return self.pg("pg_ctl", "-D", self.pgdata, "status", check=False).returncode == 0

    def connect(self, role="postgres", dbname="alpaca", **kw):
        import psycopg
        return psycopg.connect(host=self.sockdir, port=self.port, dbname=dbname, user=role,
                               autocommit=True, **kw)

    def accepts(self):
        try:
            with self.connect(dbname="postgres") as c:
                c.execute("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def set(self, settings):
        """ALTER SYSTEM SET each name = value (None: RESET; a list: a list setting such as
        shared_preload_libraries), then reload. Some settings need restart()."""
        with self.connect(dbname="postgres") as c:
            for name, value in settings.items():
                if value is None:
                    c.execute(f"ALTER SYSTEM RESET {name}")
                elif isinstance(value, (list, tuple)):
                    c.execute(f"ALTER SYSTEM SET {name} = " + ", ".join(f"'{v}'" for v in value))
                else:
                    c.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            c.execute("SELECT pg_reload_conf()")

    def reset_all(self):
        with self.connect(dbname="postgres") as c:
            c.execute("ALTER SYSTEM RESET ALL")
            c.execute("SELECT pg_reload_conf()")


# ---------------------------------------------------------------------------------------------
# A sidecar: the stack's own, or an extra one (own config overrides, socket, log)
# ---------------------------------------------------------------------------------------------
class Sidecar:
    def __init__(self, stack, name="sidecar"):
        self.stack, self.name = stack, name
        sdir = stack.sidecar_dir
        self.socket_path = os.path.join(sdir, name + ".sock")
        self.log_path = os.path.join(sdir, name + ".log")
        self.out_path = os.path.join(stack.dir, "log", name + ".out")
        self.pid_path = os.path.join(stack.dir, "run", name + ".pid")
        self.config_path = (os.path.join(stack.dir, "sidecar.conf") if name == "sidecar"
                            else os.path.join(sdir, name + ".conf"))
        self.proc = None

    # -- configuration ------------------------------------------------------------------------
    def read_config(self):
        settings = {}
        with open(self.config_path) as f:
            for line in f:
                if "=" in line and not line.lstrip().startswith("#"):
                    k, v = line.split("=", 1)
                    settings[k.strip()] = v.strip()
        return settings

    def write_config(self, settings):
        text = "".join(f"{k} = {v}\n" for k, v in settings.items())
        st = self.stack.state
        write_file(self.config_path, text, ME if not IS_ROOT else "root",
                   primary_group(st["sidecar_user"]), 0o640)

    def get(self, key):
        return self.read_config().get(key)

    def set(self, key, value):
        """One `key = value` of the configuration (None: remove it); takes effect at reload()
        or restart()."""
        settings = self.read_config()
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = str(value)
        self.write_config(settings)

    # -- process ------------------------------------------------------------------------------
    @property
    def pid(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            return False
        return pid_alive(self.pid)

    def answers(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(1)
        try:
            s.connect(self.socket_path)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def check_config(self):
        r = run(as_user(self.stack.state["sidecar_user"],
                        [self.stack.bin("alpaca-sidecar"), "--config", self.config_path,
                         "--check-config"]), check=False, cwd="/")
        if r.returncode != 0:
            raise StackError(f"sidecar {self.name}: bad configuration: {r.stderr.strip()}")

    def start(self, timeout=20):
        if self.alive():
            raise StackError(f"sidecar {self.name} already runs (pid {self.pid})")
        self.proc = spawn(self.stack.state["sidecar_user"],
                          [self.stack.bin("alpaca-sidecar"), "--config", self.config_path],
                          self.out_path, "/")
        pid = getattr(self.proc, "child_pid", None) or self.proc.pid
        with open(self.pid_path, "w") as f:
            f.write(f"{pid}\n")
        if not wait_until(lambda: self.answers() or self.proc.poll() is not None, timeout):
            self.kill()
            raise StackError(f"sidecar {self.name} did not open its socket: {self.tail()}")
        if not self.answers():
            raise StackError(f"sidecar {self.name} exited: {self.tail()}")
        return self

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signals the sidecar and waits for it to go (SIGKILL after timeout); returns its exit
        status when we started it in this process, else None."""
        pid = self.pid
        if self.alive():
            send_signal(pid, sig)
            if not wait_until(lambda: not self.alive(), timeout):
                send_signal(pid, signal.SIGKILL)
                wait_until(lambda: not self.alive(), 5)
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            return self.proc.returncode
        return None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def reload(self):
        if not self.alive():
            raise StackError(f"sidecar {self.name} is not running")
        send_signal(self.pid, signal.SIGHUP)

    def restart(self):
        self.stop()
        return self.start()

    def ensure_running(self):
        if not self.alive() or not self.answers():
            self.kill()
            self.start()

    def tail(self, n=2000):
        text = ""
        for p in (self.out_path, self.log_path):
            try:
                with open(p, errors="replace") as f:
                    text += f.read()[-n:]
            except OSError:
                pass
        return text


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------
class Stack:
    def __init__(self, dir):
        self.dir = os.path.abspath(dir)
        self.cluster = Cluster(self.dir)
        self.sidecar_dir = os.path.join(self.dir, "sidecar")
        self.state_path = os.path.join(self.dir, "stack.json")
        self.env_path = os.path.join(self.dir, "stack.env")
        self._state = None
        self.sidecar = Sidecar(self)

    @property
    def state(self):
        if self._state is None:
            with open(self.state_path) as f:
                self._state = json.load(f)
        return self._state

    def bin(self, name):
        return os.path.join(self.dir, "bin", name)

    def extra_sidecar(self, name, **overrides):
        """A second sidecar: the stack's configuration with its own socket, log and overrides
        (without the main one's gateway and metrics listeners), run as the sidecar user like
        the first (call start())."""
        sc = Sidecar(self, name)
        settings = self.sidecar.read_config()
        # TCP listeners are the main sidecar's: a copy would fail to bind them.
        for k in ("gateway_listen", "metrics_listen"):
            settings.pop(k, None)
        settings.update(socket_path=sc.socket_path, log_file=sc.log_path)
        # The first sidecar's listeners (gateway, metrics) stay its own: two cannot bind one
        # address. An extra sidecar gets a listener only when an override names one.
        for listener in ("gateway_listen", "metrics_listen"):
            settings.pop(listener, None)
        settings.update({k: str(v) for k, v in overrides.items()})
        sc.write_config(settings)
        return sc

    # -- up / down ----------------------------------------------------------------------------
    def up(self, fixtures=None, real_alpaca=False, build=None):
        build = build or os.environ.get("PGA_BUILD_DIR") or os.path.join(ROOT, "build")
        if os.path.exists(self.env_path):
            raise StackError(f"{self.dir} already holds a stack (scripts/stack.sh down {self.dir} first)")
        for b in ("alpaca-sidecar", "alpaca-keygen"):
            if not os.access(os.path.join(build, b), os.X_OK):
                raise StackError(f"build first: {build}/{b} is missing")
        runner, sc_user, confined = ensure_users()
        rgroup = primary_group(runner)
        os.makedirs(self.dir, exist_ok=True)
        make_dir(self.dir, runner, rgroup, 0o755)
        for d in ("bin", "tls", "standin", "log"):
            make_dir(os.path.join(self.dir, d), runner, rgroup, 0o755)
        make_dir(os.path.join(self.dir, "run"), runner, rgroup, 0o700)
        for b in ("alpaca-sidecar", "alpaca-keygen"):
            shutil.copy2(os.path.join(build, b), self.bin(b))
            os.chmod(self.bin(b), 0o755)
        standin = os.path.join(self.dir, "standin")
        shutil.copytree(os.path.join(ROOT, "test", "standin"), standin, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        if fixtures and os.path.abspath(fixtures) != os.path.join(ROOT, "test", "standin", "fixtures"):
            shutil.rmtree(os.path.join(standin, "fixtures"))
            shutil.copytree(fixtures, os.path.join(standin, "fixtures"))
        if IS_ROOT:
            run(["chown", "-R", f"{runner}:{rgroup}", standin, os.path.join(self.dir, "bin")])

        log("test CA and certificates")
        run(as_user(runner, ["bash", os.path.join(ROOT, "scripts", "make_test_ca.sh"),
                             os.path.join(self.dir, "tls")]), cwd=self.dir)
        log("key file")
        # alpaca-keygen writes the file itself (mode 0600), as the runner.
        make_dir(os.path.join(self.dir, "keys"), runner, rgroup, 0o700)
        key_file = os.path.join(self.dir, "keys", "pg_alpaca.keys")
        run(as_user(runner, [self.bin("alpaca-keygen"), "new", key_file]), cwd=self.dir)

        self._state = {"runner": runner, "sidecar_user": sc_user, "confined": confined,
                       "real_alpaca": bool(real_alpaca)}
        self._write_state()
        # The sidecar's folder: its user, the server's group through the setgid bit.
        make_dir(self.sidecar_dir, sc_user, rgroup, 0o2750)

        log("PostgreSQL cluster")
        port = self._init_cluster(key_file)
        self._state["port"] = port
        password = secrets.token_hex(24)
        with self.cluster.connect(dbname="postgres") as c:
            c.execute("CREATE DATABASE alpaca")
        with self.cluster.connect() as c:
            c.execute("CREATE EXTENSION pg_alpaca")
            c.execute(f"CREATE ROLE {SIDECAR_ROLE} LOGIN IN ROLE alpaca_sidecar")
            c.execute(f"ALTER ROLE {SIDECAR_ROLE} PASSWORD '{scram_verifier(password)}'")
            c.execute("CREATE ROLE app LOGIN IN ROLE alpaca_app")
            c.execute("CREATE ROLE admin LOGIN IN ROLE alpaca_admin")
        passfile = os.path.join(self.sidecar_dir, "pgpass")
        write_file(passfile, f"127.0.0.1:{port}:alpaca:{SIDECAR_ROLE}:{password}\n",
                   sc_user, primary_group(sc_user), 0o600)
        del password

        paper, live, ca_line = "https://paper-api.alpaca.markets", "https://api.alpaca.markets", {}
        if not real_alpaca:
            self._state.update(paper_port=free_port(), live_port=free_port(),
                               control_port=free_port())
            self._write_state()
            self.start_standin()
            paper = f"https://127.0.0.1:{self._state['paper_port']}"
            live = f"https://127.0.0.1:{self._state['live_port']}"
            ca_line = {"ca_file": os.path.join(self.dir, "tls", "ca.crt")}
        self._write_state()

        settings = {
            "socket_path": self.sidecar.socket_path,
            "socket_mode": "0660",
            "conninfo": (f"host=127.0.0.1 port={port} dbname=alpaca user={SIDECAR_ROLE} "
                         f"passfile={passfile}"),
            "pool_size": "4",
            "workers": "16",
            "paper_base_url": paper,
            "live_base_url": live,
            **ca_line,
            "log_level": "info",
            "log_file": self.sidecar.log_path,
        }
        self.sidecar.write_config(settings)
        self.sidecar.check_config()
        log(f"sidecar (as {sc_user})")
        self.sidecar.start()
        self._write_env(paper, live)
        log(f"stack is up: source {self.env_path}")

    def _init_cluster(self, key_file):
        return self.cluster.create(
            key_file, f"pg_alpaca.sidecar_socket = '{self.sidecar.socket_path}'\n"
            "max_connections = 200\nlog_line_prefix = '%m [%p] %q%u@%d '\n", SIDECAR_ROLE)

    def _write_state(self):
        with open(self.state_path + ".tmp", "w") as f:
            json.dump(self._state, f)
        os.replace(self.state_path + ".tmp", self.state_path)

    def _write_env(self, paper, live):
        st = self._state
        control = f"http://127.0.0.1:{st['control_port']}" if "control_port" in st else ""
        env = {
            "PGHOST": self.cluster.sockdir, "PGPORT": st["port"], "PGDATABASE": "alpaca",
            "PGUSER": "postgres", "PGA_STACK_DIR": self.dir,
            "PGA_RUNNER": st["runner"], "PGA_SIDECAR_USER": st["sidecar_user"],
            "PGA_SIDECAR_CONFINED": int(st["confined"]),
            "PGA_SIDECAR_SOCKET": self.sidecar.socket_path,
            "PGA_SIDECAR_CONFIG": self.sidecar.config_path,
            "PGA_STANDIN_PAPER_URL": paper, "PGA_STANDIN_LIVE_URL": live,
            "PGA_STANDIN_CONTROL_URL": control,
            "PGA_CA_FILE": os.path.join(self.dir, "tls", "ca.crt"),
            "PGA_KEY_FILE": os.path.join(self.dir, "keys", "pg_alpaca.keys"),
            "PGA_POSTGRES_LOG": self.cluster.log,
            "PGA_SIDECAR_LOG": self.sidecar.log_path,
            "PGA_STANDIN_LOG": os.path.join(self.dir, "log", "standin.log"),
        }
        with open(self.env_path, "w") as f:
            f.write(f"# Source this file to talk to the stack in {self.dir}\n")
            f.writelines(f"export {k}={shlex.quote(str(v))}\n" for k, v in env.items())

    def down(self):
        if not os.path.isdir(self.dir):
            return
        try:
            st = self.state
        except OSError:
            st = {}
        for sc in self.sidecars():
            sc.stop()
        self.stop_standin()
        if st:
            if self.replica.exists():
                self.replica.cluster.stop()
            self.cluster.stop()
        for p in (self.env_path,):
            if os.path.exists(p):
                os.remove(p)

    def sidecars(self):
        """Every sidecar of the stack (the main one and extras), by their pid files."""
        run_dir = os.path.join(self.dir, "run")
        names = ["sidecar"]
        try:
            names += [f[:-4] for f in sorted(os.listdir(run_dir))
                      if f.endswith(".pid") and f not in ("sidecar.pid", "standin.pid")]
        except OSError:
            pass
        return [self.sidecar] + [Sidecar(self, n) for n in names[1:]]

    def status(self):
        lines = []
        for sc in self.sidecars():
            lines.append(f"{sc.name}: " + (f"running (pid {sc.pid}, as {self.state['sidecar_user']})"
                                           if sc.alive() else "stopped"))
        pid = self._standin_pid()
        lines.append("standin: " + (f"running (pid {pid})" if pid_alive(pid) else "stopped"))
        lines.append("postgresql: " + ("running" if self.cluster.running() else "stopped"))
        if self.replica.exists():
            lines.append(self.replica.status())
        return "\n".join(lines)

    # -- the stand-in -------------------------------------------------------------------------
    def _standin_pid(self):
        try:
            with open(os.path.join(self.dir, "run", "standin.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start_standin(self):
        st = self._state if self._state is not None else self.state
        if "control_port" not in st:
            return
        ready = os.path.join(self.dir, "run", "standin.ready")
        if os.path.exists(ready):
            os.remove(ready)
        d = self.dir
        log(f"Alpaca stand-in: paper :{st['paper_port']}, live :{st['live_port']}, "
            f"control :{st['control_port']}")
        p = spawn(st["runner"], [PY, f"{d}/standin/alpaca_standin.py",
                                 "--fixtures", f"{d}/standin/fixtures",
                                 "--listen", f"paper=127.0.0.1:{st['paper_port']}",
                                 "--listen", f"live=127.0.0.1:{st['live_port']}",
                                 "--control", f"127.0.0.1:{st['control_port']}",
                                 "--cert", f"{d}/tls/server.crt", "--key", f"{d}/tls/server.key",
                                 "--log", f"{d}/log/standin.log", "--ready-file", ready],
                  os.path.join(d, "log", "standin.out"), d)
        with open(os.path.join(d, "run", "standin.pid"), "w") as f:
            f.write(f"{p.pid}\n")
        if not wait_until(lambda: os.path.exists(ready) or p.poll() is not None, 20):
            raise StackError(f"stand-in did not start: {d}/log/standin.out")
        if not os.path.exists(ready):
            raise StackError(f"stand-in exited: {d}/log/standin.out")

    def stop_standin(self):
        pid = self._standin_pid()
        if pid_alive(pid):
            send_signal(pid, signal.SIGTERM)
            if not wait_until(lambda: not pid_alive(pid), 10):
                send_signal(pid, signal.SIGKILL)
                wait_until(lambda: not pid_alive(pid), 5)
        p = os.path.join(self.dir, "run", "standin.pid")
        if os.path.exists(p):
            os.remove(p)

    def restart_standin(self):
        self.stop_standin()
        self.start_standin()

    # -- the gateway --------------------------------------------------------------------------
    @property
    def gateway_socket(self):
        return os.path.join(self.sidecar_dir, "gateway.sock")

    def gateway_on(self):
        """Turns the sidecar's gateway on: a loopback port of its own and a unix socket in the
        sidecar's folder, market data from the stand-in's paper listener. Restarts the sidecar
        when that changes its settings. Returns the gateway's URL (http://127.0.0.1:PORT)."""
        st = self.state
        port = st.get("gateway_port") or free_port()
        listen = f"127.0.0.1:{port}, {self.gateway_socket}"
        if self.sidecar.get("gateway_listen") != listen:
            self.sidecar.set("gateway_listen", listen)
            self.sidecar.set("data_base_url", self.sidecar.get("paper_base_url"))
            self.sidecar.restart()
            st["gateway_port"] = port
            self._state = st
            self._write_state()
        return f"http://127.0.0.1:{port}"

    def gateway_off(self):
        if self.sidecar.get("gateway_listen") is not None:
            self.sidecar.set("gateway_listen", None)
            self.sidecar.set("data_base_url", None)
            self.sidecar.restart()

    # -- keys ---------------------------------------------------------------------------------
    def add_key(self):
        """Appends the next key to the key file (as its owner, the runner) and reloads."""
        run(as_user(self.state["runner"], [self.bin("alpaca-keygen"), "add",
                                           os.path.join(self.dir, "keys", "pg_alpaca.keys")]),
            cwd=self.dir)
        with self.cluster.connect() as c:
            c.execute("SELECT pg_reload_conf()")

    # -- a hot standby and its own sidecar ----------------------------------------------------
    @property
    def replica(self):
        return Replica(self)


# ---------------------------------------------------------------------------------------------
# A streaming replica of the stack's cluster (hot standby), with a sidecar of its own
# ---------------------------------------------------------------------------------------------
class Replica:
    """DIR/replica: a hot standby made with `pg_basebackup -R` from the stack's primary (as the
    runner), its own port and socket folder, the same key file and settings; beside it the
    sidecar `replica` (DIR/sidecar/replica.sock, run as the sidecar user) whose conninfo lists
    the primary first, then the replica, with target_session_attrs=read-write: it redeems on
    whichever of the two accepts writes, so after a failover (primary gone, replica promoted) it
    redeems on the former replica by itself."""

    def __init__(self, stack):
        self.stack = stack
        self.dir = os.path.join(stack.dir, "replica")
        self.cluster = Cluster(self.dir)
        self.sidecar = Sidecar(stack, "replica")

    def exists(self):
        return os.path.exists(self.cluster.state_path)

    def up(self):
        if self.exists():
            raise StackError(f"{self.dir} already holds a replica (replica-down first)")
        st, primary = self.stack.state, self.stack.cluster
        runner, rgroup = st["runner"], primary_group(st["runner"])
        make_dir(self.dir, runner, rgroup, 0o755)
        for d, mode in (("run", 0o700), ("log", 0o755)):
            make_dir(os.path.join(self.dir, d), runner, rgroup, mode)
        # The primary lets its own OS user stream over its unix socket (trust, like all else
        # there: only the runner and root can enter that folder).
        hba = os.path.join(primary.pgdata, "pg_hba.conf")
        text = run(as_user(runner, ["cat", hba])).stdout
        if "replication" not in text:
            run(as_user(runner, ["tee", hba]),
                input="local   replication  postgres  trust\n" + text)
            with primary.connect(dbname="postgres") as c:
                c.execute("SELECT pg_reload_conf()")
        log("replica: pg_basebackup -R from the primary")
        run(as_user(runner, [f"{PG_BIN}/pg_basebackup", "-h", primary.sockdir, "-p",
                             str(primary.port), "-U", "postgres", "-D", self.cluster.pgdata,
                             "-R", "-X", "stream", "-c", "fast"]), cwd=self.dir)
        port = free_port()
        # Later lines win: the primary's settings (key file, preload, ...) stay, these change.
        conf = ("\n# The replica (scripts/stackctl.py replica-up)\n"
                f"port = {port}\n"
                f"unix_socket_directories = '{self.cluster.sockdir}'\n"
                "hot_standby = on\n"
                f"pg_alpaca.sidecar_socket = '{self.sidecar.socket_path}'\n")
        run(as_user(runner, ["tee", "-a", os.path.join(self.cluster.pgdata, "postgresql.conf")]),
            input=conf)
        with open(primary.state_path) as f:
            key_file = json.load(f)["key_file"]
        with open(self.cluster.state_path + ".tmp", "w") as f:
            json.dump({"port": port, "key_file": key_file}, f)
        os.replace(self.cluster.state_path + ".tmp", self.cluster.state_path)
        self.cluster.start()
        if not wait_until(self.cluster.accepts, 30, 0.1):
            raise StackError(f"the replica does not accept connections: {self.cluster.log}")
        log(f"replica: hot standby on port {port}, socket folder {self.cluster.sockdir}")
        # Its sidecar logs in like the stack's, to the primary or (after a promotion) to the
        # replica: one passfile line per port.
        main = self.stack.sidecar.read_config()
        passfile = os.path.join(self.stack.sidecar_dir, "pgpass")
        with open(passfile) as f:  # we are root (or its owner)
            lines = f.read().splitlines()
        line = lines[0].split(":", 2)
        extra = f"{line[0]}:{port}:{line[2]}"
        if extra not in lines:
            write_file(passfile, "\n".join(lines + [extra]) + "\n", st["sidecar_user"],
                       primary_group(st["sidecar_user"]), 0o600)
        self.stack.extra_sidecar(
            "replica", conninfo=self.conninfo(main["conninfo"], primary.port, port))
        log("replica: its sidecar (as " + st["sidecar_user"] + ")")
        self.sidecar.check_config()
        self.sidecar.start()
        return port

    @staticmethod
    def conninfo(main, primary_port, replica_port):
        """The main sidecar's conninfo with a host list: primary, then the replica."""
        words = [w for w in main.split() if not w.startswith(("host=", "port="))]
        return " ".join([f"host=127.0.0.1,127.0.0.1 port={primary_port},{replica_port}"] +
                        words + ["target_session_attrs=read-write"])

    def promote(self):
        self.cluster.pg("pg_ctl", "-D", self.cluster.pgdata, "-w", "-t", "60", "promote")

    def in_recovery(self):
        with self.cluster.connect(dbname="postgres") as c:
            return c.execute("SELECT pg_is_in_recovery()").fetchone()[0]

    def down(self):
        self.sidecar.stop()
        if self.exists():
            self.cluster.stop()
        if os.path.isdir(self.dir):
            run(as_root(["rm", "-rf", self.dir]))
        for p in (self.sidecar.pid_path, self.sidecar.config_path):
            if os.path.exists(p):
                run(as_root(["rm", "-f", p]))

    def status(self):
        if not self.exists():
            return "replica: none"
        up = self.cluster.running()
        role = ("standby" if self.in_recovery() else "promoted") if up else "stopped"
        return (f"replica: {role} (port {self.cluster.port}, socket folder "
                f"{self.cluster.sockdir}); its sidecar: "
                + (f"running (pid {self.sidecar.pid})" if self.sidecar.alive() else "stopped"))


# ---------------------------------------------------------------------------------------------
# Command line (scripts/stack.sh)
# ---------------------------------------------------------------------------------------------
USAGE = """scripts/stack.sh COMMAND DIR [ARGS]   (a throwaway pg_alpaca stack in DIR)

  up DIR [--fixtures FIXTURES] [--real-alpaca]   start; writes DIR/stack.env
                                                 (--real-alpaca: no stand-in, Alpaca itself)
  down DIR                      stop everything in DIR
  status DIR                    what runs
  restart-pg DIR [MODE]         pg_ctl restart (-m fast by default)
  set-pg DIR NAME VALUE         ALTER SYSTEM SET and reload (restart-pg for restart settings)
  reset-pg DIR [NAME]           ALTER SYSTEM RESET NAME (or ALL) and reload
  start-sidecar | stop-sidecar | kill-sidecar | restart-sidecar | reload-sidecar DIR
  set-sidecar DIR KEY [VALUE]   edit the sidecar's configuration (no VALUE: remove the key);
                                takes effect at reload-sidecar or restart-sidecar
  restart-standin DIR           restart the Alpaca stand-in
  gateway DIR on|off            the sidecar's REST gateway (and /mcp): on = gateway_listen on a
                                free loopback port plus DIR/sidecar/gateway.sock, data_base_url
                                = the stand-in; restarts the sidecar; prints the gateway's URL
  add-key DIR                   append a new key to the key file (it becomes primary), reload
  bare-up DIR KEYFILE           a bare cluster (no sidecar, no stand-in) with a copy of KEYFILE;
                                prints its port (its socket folder is DIR/run)
  bare-down DIR                 stop a bare cluster
  replica-up DIR                a hot standby of the cluster (pg_basebackup -R, as the runner;
                                own port, socket folder DIR/replica/run, the same key file and
                                settings) and its own sidecar "replica" (socket
                                DIR/sidecar/replica.sock; conninfo: the primary, then the
                                replica, target_session_attrs=read-write); the replica's
                                pg_alpaca.sidecar_socket names that socket. Prints its port
  replica-status DIR            standby or promoted, and its sidecar
  promote DIR                   pg_ctl promote the replica (its sidecar then redeems on it as
                                soon as the primary is gone: target_session_attrs=read-write)
  replica-down DIR              stop the replica and its sidecar, remove DIR/replica
  users                         create the sidecar's OS user if missing; print who runs what

Who runs what: the cluster and the stand-in as the runner (postgres when root, else you), the
sidecar as its own OS user alpaca-sidecar (created with root or sudo). Assumes the project is
built (scripts/test.sh or scripts/demo.sh build it first).
"""


def main(argv):
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 2
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "users":
            runner, sc, confined = ensure_users()
            print(f"runner={runner} sidecar_user={sc} confined={int(confined)}")
            return 0
        if not rest:
            sys.stdout.write(USAGE)
            return 2
        d, args = rest[0], rest[1:]
        if cmd == "bare-up":
            print(Cluster(d).bare(args[0]))
            return 0
        if cmd == "bare-down":
            Cluster(d).stop("immediate")
            return 0
        st = Stack(d)
        if cmd == "up":
            ap = argparse.ArgumentParser(prog="stack.sh up DIR")
            ap.add_argument("--fixtures")
            ap.add_argument("--real-alpaca", action="store_true")
            a = ap.parse_args(args)
            st.up(fixtures=a.fixtures, real_alpaca=a.real_alpaca)
        elif cmd == "down":
            st.down()
        elif cmd == "status":
            print(st.status())
        elif cmd == "restart-pg":
            st.cluster.restart(args[0] if args else "fast")
        elif cmd == "set-pg" and len(args) == 2:
            st.cluster.set({args[0]: args[1]})
        elif cmd == "reset-pg":
            st.cluster.set({args[0]: None}) if args else st.cluster.reset_all()
        elif cmd == "start-sidecar":
            st.sidecar.start()
        elif cmd == "stop-sidecar":
            st.sidecar.stop()
        elif cmd == "kill-sidecar":
            st.sidecar.kill()
        elif cmd == "restart-sidecar":
            st.sidecar.restart()
        elif cmd == "reload-sidecar":
            st.sidecar.reload()
        elif cmd == "set-sidecar" and len(args) in (1, 2):
            st.sidecar.set(args[0], args[1] if len(args) == 2 else None)
        elif cmd == "restart-standin":
            st.restart_standin()
        elif cmd == "gateway" and args == ["on"]:
            print(st.gateway_on())
        elif cmd == "gateway" and args == ["off"]:
            st.gateway_off()
        elif cmd == "add-key":
            st.add_key()
        elif cmd == "replica-up":
            print(st.replica.up())
        elif cmd == "replica-status":
            print(st.replica.status())
        elif cmd == "promote":
            st.replica.promote()
        elif cmd == "replica-down":
            st.replica.down()
        else:
            sys.stdout.write(USAGE)
            return 2
    except StackError as e:
        sys.stderr.write(f"[pg_alpaca] error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
