"""Attacks by code running inside the sidecar: each test is one thing an attacker who runs
code as the sidecar's OS user tries, and must fail (README, Security model: "a compromised
sidecar ... cannot read the key file or the data directory, nor log in as any role but its
own"). The attacks run as that OS user (runuser), against the stack of stack.env.

With neither root nor sudo the sidecar runs as the cluster's own user (scripts/stackctl.py says
so loudly): these attacks then cannot be tried and are reported as skipped, never as passed.
"""
import os
import pwd
import grp
import stat
import subprocess
import unittest

import attack_lib  # noqa: F401
import pga_stack as S

C = S.stackctl
ST = S.STACK
SIDECAR_USER = ST.state["sidecar_user"]
RUNNER = ST.state["runner"]
CONFINED = ST.state["confined"] and C.can_be_anyone()
PSQL = f"{C.PG_BIN}/psql"


def as_sidecar(cmd, env=None, user=None):
    """Runs cmd as the sidecar's OS user (or `user`), from /, with a minimal environment."""
    e = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    e.update(env or {})
    return subprocess.run(C.as_user(user or SIDECAR_USER, ["env", "-i"] +
                                    [f"{k}={v}" for k, v in e.items()] + cmd),
                          capture_output=True, text=True, timeout=60, cwd="/")


def sidecar_password():
    """The sidecar's own password (the attacker has it: it is in the sidecar's passfile)."""
    with open(os.path.join(ST.sidecar_dir, "pgpass")) as f:
        return f.read().strip().split(":", 4)[4]


def endpoints():
    """Every place the cluster listens on: each unix socket directory and each TCP address."""
    with S.connect() as c:
        dirs = c.execute("SHOW unix_socket_directories").fetchone()[0]
        addrs = c.execute("SHOW listen_addresses").fetchone()[0]
        port = c.execute("SHOW port").fetchone()[0]
    out = [d.strip() for d in dirs.split(",") if d.strip()]
    out += [a.strip() for a in addrs.split(",") if a.strip()]
    return out, port


def login(role, host, port, password=None, passfile=None):
    """psql as the sidecar's OS user: (returncode, output)."""
    env = {}
    if password is not None:
        env["PGPASSWORD"] = password
    env["PGPASSFILE"] = passfile or "/nonexistent"
    r = as_sidecar([PSQL, "-X", "-w", "-At", "-h", host, "-p", str(port), "-U", role,
                    "-d", "alpaca", "-c", "SELECT current_user"], env=env)
    return r.returncode, (r.stdout + r.stderr).strip()


@unittest.skipUnless(CONFINED, "cannot run: the sidecar is not confined here (no root or sudo, "
                     "so it runs as the cluster's OS user)")
class SidecarConfinement(unittest.TestCase):
    def assertLoginsFail(self, roles):
        hosts, port = endpoints()
        self.assertTrue(hosts)
        password = sidecar_password()
        passfile = os.path.join(ST.sidecar_dir, "pgpass")
        tried = 0
        for role in roles:
            for host in hosts:
                for kw in ({"passfile": passfile}, {"password": password}, {}):
                    with self.subTest(role=role, host=host, auth=list(kw)):
                        rc, out = login(role, host, port, **kw)
                        tried += 1
                        self.assertNotEqual(rc, 0, f"logged in as {role} via {host}: {out}")
                        self.assertNotIn(role + "\n", out + "\n")
        return tried

    def test_cannot_read_the_key_file(self):
        """README: a compromised sidecar cannot read the key file."""
        with S.connect() as c:
            key_file = c.execute("SHOW pg_alpaca.key_file").fetchone()[0]
        st = os.stat(key_file)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, RUNNER)
        r = as_sidecar(["cat", key_file])
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")
        self.assertIn("Permission denied", r.stderr)
        r = as_sidecar(["/usr/bin/python3", "-c", f"open({key_file!r}).read()"])
        self.assertIn("PermissionError", r.stderr)

    def test_cannot_list_the_data_directory(self):
        """README: a compromised sidecar cannot read the data directory."""
        with S.connect() as c:
            pgdata = c.execute("SHOW data_directory").fetchone()[0]
        self.assertEqual(stat.S_IMODE(os.stat(pgdata).st_mode), 0o700)
        r = as_sidecar(["ls", pgdata])
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")
        r = as_sidecar(["cat", os.path.join(pgdata, "global", "pg_control")])
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")

    def test_cannot_log_in_as_postgres(self):
        """README: a compromised sidecar cannot log in as any role but its own (here: the
        bootstrap superuser postgres, over every socket and port the cluster listens on, with
        the sidecar's passfile, its password, or none)."""
        self.assertGreater(self.assertLoginsFail(["postgres"]), 0)

    def test_cannot_log_in_as_any_superuser(self):
        """README: a compromised sidecar cannot log in as any role but its own (every
        superuser of the cluster)."""
        with S.connect() as c:
            supers = [r for (r,) in c.execute("SELECT rolname FROM pg_roles WHERE rolsuper AND rolcanlogin")]
            c.execute("DROP ROLE IF EXISTS attack_extra_super")
            c.execute("CREATE ROLE attack_extra_super LOGIN SUPERUSER")
        try:
            self.assertLoginsFail(sorted(set(supers) | {"attack_extra_super"}))
        finally:
            with S.connect() as c:
                c.execute("DROP ROLE IF EXISTS attack_extra_super")

    def test_cannot_log_in_as_app_or_admin(self):
        """README: a compromised sidecar cannot log in as any role but its own (the
        application's and the administrator's login roles)."""
        self.assertLoginsFail(["app", "admin"])

    def test_own_role_is_no_superuser_and_has_no_bypassrls(self):
        """README: a compromised sidecar (alpaca_sidecar) cannot read tables: its own login
        works (the control of the attacks above) and is neither superuser nor BYPASSRLS."""
        passfile = os.path.join(ST.sidecar_dir, "pgpass")
        r = as_sidecar([PSQL, "-X", "-w", "-At", "-F", "|", "-h", "127.0.0.1", "-p",
                        str(ST.state["port"]), "-U", C.SIDECAR_ROLE, "-d", "alpaca", "-c",
                        "SELECT current_user, rolsuper, rolbypassrls, rolcreaterole, "
                        "pg_has_role(current_user, 'alpaca_sidecar', 'MEMBER'), "
                        "pg_has_role(current_user, 'alpaca_admin', 'MEMBER') "
                        "FROM pg_roles WHERE rolname = current_user"],
                       env={"PGPASSFILE": passfile})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), f"{C.SIDECAR_ROLE}|f|f|f|t|f")
        # And it cannot read the credentials table with that login either.
        r = as_sidecar([PSQL, "-X", "-w", "-At", "-h", "127.0.0.1", "-p", str(ST.state["port"]),
                        "-U", C.SIDECAR_ROLE, "-d", "alpaca", "-c",
                        "SELECT count(*) FROM alpaca.credentials"], env={"PGPASSFILE": passfile})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("permission denied", r.stderr)

    def test_sidecar_process_runs_as_its_own_user(self):
        """README: the sidecar runs as its own OS user, not as the server's (whose files it
        would then own)."""
        pid = ST.sidecar.pid
        self.assertTrue(C.pid_alive(pid))
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        sc = pwd.getpwnam(SIDECAR_USER)
        runner = pwd.getpwnam(RUNNER)
        self.assertNotEqual(sc.pw_uid, runner.pw_uid)
        self.assertEqual(status["Uid"].split(), [str(sc.pw_uid)] * 4)
        self.assertEqual(status["Gid"].split(), [str(sc.pw_gid)] * 4)
        groups = {int(g) for g in status["Groups"].split()}
        self.assertNotIn(runner.pw_gid, groups, "the sidecar is in the server's group")
        self.assertNotIn(0, groups)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            self.assertIn(b"alpaca-sidecar", f.read())

    def test_socket_is_group_only_and_nobody_cannot_connect(self):
        """README: only the server reaches the sidecar's socket (mode 0660, the server's group,
        in a folder mode 2750): another unprivileged OS user cannot connect."""
        sock = ST.sidecar.socket_path
        st = os.lstat(sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, SIDECAR_USER)
        self.assertEqual(grp.getgrgid(st.st_gid).gr_name, C.primary_group(RUNNER))
        dst = os.stat(os.path.dirname(sock))
        self.assertEqual(stat.S_IMODE(dst.st_mode), 0o2750)
        self.assertEqual(dst.st_gid, st.st_gid)
        probe = ("import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(3)\n"
                 f"try:\n    s.connect({sock!r}); print('connected')\n"
                 "except OSError as e:\n    print(type(e).__name__)")
        # The control: the server's OS user can connect.
        r = as_sidecar(["/usr/bin/python3", "-c", probe], user=RUNNER)
        self.assertEqual(r.stdout.strip(), "connected", r.stderr)
        r = as_sidecar(["/usr/bin/python3", "-c", probe], user="nobody")
        self.assertEqual(r.stdout.strip(), "PermissionError", r.stderr)


if __name__ == "__main__":
    unittest.main()
