"""The README's by-hand install, run as written (operations issue, item 5).

Extracts the fenced blocks between `<!-- by-hand:begin -->` and `<!-- by-hand:end -->` (and the
Quick start's between `<!-- quick-start:begin -->` and `<!-- quick-start:end -->`) and runs them
as root, in order, against a throwaway Debian-style cluster (config in
etc/postgresql/15/main, peer authentication, Debian's default pg_hba.conf) in a temporary
folder, with the bundled Alpaca stand-in. The only changes to the text are moves of system
paths into that folder (and of the stand-in's ports to free ones); `apt-get` only checks that
the listed packages are installed and `systemctl restart postgresql` restarts the throwaway
cluster. Then: the sidecar answers, the Quick start stores a credential and a broker call
returns the stand-in's positions; --check-config refuses a conninfo that cannot log in; and
without shared_preload_libraries CREATE EXTENSION warns and storing a credential is refused.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG_BIN = os.environ.get("PGA_PG_BIN", "/usr/lib/postgresql/15/bin")
README = os.path.join(ROOT, "README.md")
FIXTURES = os.path.join(ROOT, "test", "standin", "fixtures")


def blocks(marker):
    """[(info string, text)] of the fenced blocks between the marker comments."""
    with open(README) as f:
        text = f.read()
    m = re.search(rf"<!-- {marker}:begin -->(.*?)<!-- {marker}:end -->", text, re.S)
    assert m, f"README.md has no {marker} markers"
    return re.findall(r"^```([^\n]*)\n(.*?)^```", m.group(1), re.S | re.M)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(os.geteuid() == 0, "the by-hand install is for root")
class ByHandInstall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = tempfile.mkdtemp(prefix="pga_byhand.")
        os.chmod(cls.t, 0o755)
        t = cls.t
        cls.conf_dir = f"{t}/etc/postgresql/15/main"
        cls.data = f"{t}/data"
        cls.sock = f"{t}/run/postgresql"
        cls.port = free_port()
        cls.bg = []
        cls.conf_moved = False
        for d in (cls.conf_dir, f"{t}/run", f"{t}/usr/local/bin", f"{t}/var/log"):
            os.makedirs(d, exist_ok=True)
        for d in (cls.data, cls.sock, f"{t}/log"):
            os.makedirs(d, mode=0o700 if d == cls.data else 0o2775, exist_ok=True)
            shutil.chown(d, "postgres", "postgres")
        shutil.chown(cls.conf_dir, "postgres", "postgres")
        cls.run_as_postgres([f"{PG_BIN}/initdb", "-D", cls.data, "-A", "peer", "--no-instructions"])
        # Debian's layout: configuration files beside each other in /etc/postgresql/15/main.
        for f in ("pg_hba.conf", "pg_ident.conf"):
            shutil.move(f"{cls.data}/{f}", f"{cls.conf_dir}/{f}")
        with open(f"{cls.conf_dir}/pg_hba.conf", "w") as f:
            f.write("local   all   postgres   peer\nlocal   all   all   peer\n"
                    "host    all   all   127.0.0.1/32   scram-sha-256\n")
        os.rename(f"{cls.data}/postgresql.conf", f"{cls.conf_dir}/postgresql.conf")
        with open(f"{cls.conf_dir}/postgresql.conf", "a") as f:
            f.write(f"data_directory = '{cls.data}'\nhba_file = '{cls.conf_dir}/pg_hba.conf'\n"
                    f"ident_file = '{cls.conf_dir}/pg_ident.conf'\nport = {cls.port}\n"
                    f"listen_addresses = ''\nunix_socket_directories = '{cls.sock}'\n"
                    "log_statement = 'all'\n")
        for f in os.listdir(cls.conf_dir):
            shutil.chown(f"{cls.conf_dir}/{f}", "postgres", "postgres")
        cls.pg_ctl("start")
        cls.ports = {"18443": str(free_port()), "18444": str(free_port())}

    @classmethod
    def tearDownClass(cls):
        for pid in cls.bg:
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            for p in [*map(int, kids), pid]:
                try:
                    os.kill(p, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        cls.pg_ctl("stop", check=False)
        shutil.rmtree(cls.t, ignore_errors=True)

    @classmethod
    def run_as_postgres(cls, argv, check=True):
        return subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=check, cwd="/",
                              capture_output=True, text=True, timeout=120)

    @classmethod
    def pg_ctl(cls, action, check=True):
        return cls.run_as_postgres([f"{PG_BIN}/pg_ctl", "-D", cls.data, "-w", "-t", "60",
                                    "-o", f"-c config_file={cls.conf_dir}/postgresql.conf",
                                    "-l", f"{cls.t}/log/postgresql.log", action], check=check)

    def moved(self, text):
        t = self.t
        for a, b in (("/etc/postgresql/15/main", self.conf_dir),
                     ("host=/var/run/postgresql", f"host={self.sock} port={self.port}"),
                     ("/var/run/postgresql", self.sock),
                     ("/run/alpaca-sidecar", f"{t}/run/alpaca-sidecar"),
                     ("/etc/pg_alpaca", f"{t}/etc/pg_alpaca"),
                     ("/var/log/pg_alpaca", f"{t}/var/log/pg_alpaca"),
                     ("/usr/local/bin", f"{t}/usr/local/bin"),
                     ("cmake --install build", f"cmake --install {t}/build --prefix {t}/usr/local"),
                     ("-B build", f"-B {t}/build"), ("--build build", f"--build {t}/build"),
                     *self.ports.items()):
            text = text.replace(a, b)
        return text

    def prelude(self):
        return f"""set -eo pipefail
export PATH={PG_BIN}:$PATH PGHOST={self.sock} PGPORT={self.port}
apt-get() {{ local p; for p in "$@"; do case $p in -*|install) ;; *)
    dpkg-query -W -f='${{Status}}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    {{ echo "package $p is not installed" >&2; return 1; }};; esac; done; }}
systemctl() {{ [ "$*" = "restart postgresql" ] || return 1
    runuser -u postgres -- pg_ctl -D {self.data} -w -t 60 -o "-c config_file={self.conf_dir}/postgresql.conf" \\
        -l {self.t}/log/postgresql.log restart >/dev/null; }}
"""

    def run_sh(self, text):
        script = self.prelude() + self.moved(text) + '\n[ -z "${!:-}" ] || echo "$!" >> ' + \
            f"{self.t}/bgpids\n"
        # Output to a file, not a pipe: a block may leave a daemon running that keeps it open.
        out_path = f"{self.t}/log/block-{len(os.listdir(self.t + '/log'))}.out"
        with open(out_path, "w") as out:
            rc = subprocess.run(["bash", "-c", script], cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, timeout=900).returncode
        with open(out_path) as f:
            r = subprocess.CompletedProcess([], rc, f.read(), "")
        r.stderr = r.stdout
        # The example configuration it installed names the system paths: move them too.
        conf = f"{self.t}/etc/pg_alpaca/alpaca-sidecar.conf"
        if os.path.exists(conf) and not self.conf_moved:
            type(self).conf_moved = True
            with open(conf) as f:
                text_now = f.read()
            if self.moved(text_now) != text_now:
                with open(conf, "w") as f:
                    f.write(self.moved(text_now))
        if os.path.exists(f"{self.t}/bgpids"):
            with open(f"{self.t}/bgpids") as f:
                self.bg[:] = sorted({int(p) for p in f.read().split()})
        self.assertEqual(r.returncode, 0, f"block failed:\n{text}\n--- stderr:\n{r.stderr[-3000:]}")
        return r

    def conf_block(self, info, text):
        name = info.split()[1]
        path = f"{self.conf_dir}/{name}"
        body = self.moved(text)
        with open(path) as f:
            old = f.read()
        new = body + old if info.split()[2:] == ["first"] else old + body
        with open(path, "w") as f:
            f.write(new)

    def psql(self, sql, user="postgres", db="app", extra=()):
        return subprocess.run(["runuser", "-u", "postgres", "--", f"{PG_BIN}/psql", "-X", "-h",
                               self.sock, "-p", str(self.port), "-U", user, "-d", db, *extra],
                              input=sql, capture_output=True, text=True, timeout=120, cwd="/")

    def test_readme_by_hand_then_quick_start(self):
        infos = []
        for info, text in blocks("by-hand"):
            infos.append(info)
            if info == "sh":
                self.run_sh(text)
                if "alpaca_standin.py" in text:
                    ready = f"{self.t}/etc/pg_alpaca/standin.ready"
                    deadline = time.time() + 30
                    while not os.path.exists(ready) and time.time() < deadline:
                        time.sleep(0.1)
                    self.assertTrue(os.path.exists(ready), "the stand-in did not start")
            elif info.startswith("conf "):
                self.conf_block(info, text)
            else:
                self.fail(f"unexpected block kind {info!r}")
        self.assertGreaterEqual(infos.count("sh"), 5)
        # The sidecar answers on the socket the README configured.
        sock = f"{self.t}/run/alpaca-sidecar/alpaca-sidecar.sock"
        deadline = time.time() + 30
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.1)
        r = self.psql("SELECT answering, version FROM alpaca_sidecar_status();", extra=("-At",))
        if r.stdout.strip() != "t|0.2.0":
            why = self.psql("SELECT last_error FROM alpaca_sidecar_status();", extra=("-At",))
            logs = ""
            for name in sorted(os.listdir(f"{self.t}/log")):
                with open(f"{self.t}/log/{name}") as f:
                    logs += f"--- {name}\n" + f.read()[-1500:]
            self.fail(f"the sidecar does not answer: {why.stdout} {why.stderr}\n{logs}")

        # The Quick start, as the application's role (here allowed in by a trust line of the
        # test's own: how the application logs in is the reader's choice), in one session.
        with open(f"{self.conf_dir}/pg_hba.conf") as f:
            hba = f.read()
        with open(f"{self.conf_dir}/pg_hba.conf", "w") as f:
            f.write(f"local app myapp trust\n{hba}")
        self.run_as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "reload"])
        (info, quick), = blocks("quick-start")
        with open(f"{FIXTURES}/PKTESTALICE000000001/secret") as f:
            secret = f.read().strip()
        self.assertIn("'your-alpaca-secret-key'", quick)
        quick = quick.replace("your-alpaca-secret-key", secret)
        r = self.psql(quick + "BEGIN;\nSELECT alpaca_set_user('alice');\n"
                      "SELECT 'positions=' || count(*) FROM alpaca_positions(:'cred');\nCOMMIT;\n",
                      user="myapp", extra=("-v", "ON_ERROR_STOP=1", "-At"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("positions=7", r.stdout)
        # The secret never reached the server log (preloaded: redacted from the first statement).
        with open(f"{self.t}/log/postgresql.log") as f:
            self.assertNotIn(secret, f.read())

        # --check-config logs in: a conninfo that cannot log in is refused.
        conf = f"{self.t}/etc/pg_alpaca/alpaca-sidecar.conf"
        bad = f"{self.t}/etc/pg_alpaca/bad.conf"
        with open(conf) as f:
            text = f.read()
        with open(bad, "w") as f:
            f.write(text.replace("user=alpaca_sidecar_login", "user=postgres"))
        os.chmod(bad, 0o644)
        r = subprocess.run(["runuser", "-u", "alpaca-sidecar", "--",
                            f"{self.t}/usr/local/bin/alpaca-sidecar", "--config", bad,
                            "--check-config"], capture_output=True, text=True, timeout=60, cwd="/")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("cannot log in to PostgreSQL", r.stderr)

        # Without shared_preload_libraries: CREATE EXTENSION warns, storing secrets is refused.
        with open(f"{self.conf_dir}/postgresql.conf", "a") as f:
            f.write("shared_preload_libraries = ''\n")
        self.pg_ctl("restart")
        r = self.psql("CREATE DATABASE nopreload;", db="postgres")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.psql("CREATE EXTENSION pg_alpaca;", db="nopreload")
        self.assertIn("WARNING:  pg_alpaca is not in shared_preload_libraries", r.stderr)
        r = self.psql("BEGIN; SELECT alpaca_set_user('bob');\n"
                      "SELECT alpaca_store_credential(alpaca_create_account('b'), "
                      "'PKTESTBOB00000000002', 'no-preload-secret');\nCOMMIT;",
                      user="myapp", extra=("-v", "ON_ERROR_STOP=1"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("pg_alpaca takes no secrets: it is not in shared_preload_libraries", r.stderr)
        self.assertIn("HINT:  Add pg_alpaca to shared_preload_libraries", r.stderr)


if __name__ == "__main__":
    unittest.main()
