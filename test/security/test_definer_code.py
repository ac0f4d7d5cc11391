"""Attacks on "no function of the extension runs code the caller chose with privileges the
caller lacks", and the catalog rules that keep it true: no SECURITY DEFINER function owned by
a superuser, every function with a pinned search_path or shown safe without one, nobody but
the extension able to create objects in schema alpaca.
"""
import re
import unittest
import uuid

import psycopg

import attack_lib  # noqa: F401
import pga_stack as S

FERNET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

# Functions allowed without a pinned search_path, and why each is safe (checked below).
#  - the public wrappers: one call, by schema-qualified name into schema alpaca, of $n arguments
#  - _audit, _key_in_account, _session_for_token, _gateway_route, _ticket_purpose,
#    _clean_outcome: executable by alpaca_owner alone (no members, no login), reached only from
#    SECURITY DEFINER functions that pin search_path (the last two also have SQL-standard
#    bodies, whose names were resolved when they were created)
#  - alpaca_rotate_keys: a procedure (a SET clause would forbid its COMMIT) whose body holds no
#    operator and no unqualified name
WRAPPERS = {"alpaca_store_credential", "alpaca_issue_ticket", "alpaca_import_fernet_credential"}
OWNER_ONLY = {"_audit", "_key_in_account", "_session_for_token", "_gateway_route",
              "_ticket_purpose", "_clean_outcome"}
PROCEDURES = {"alpaca_rotate_keys"}


def ext_functions(conn):
    return conn.execute("""
        SELECT p.oid::regprocedure::text, p.proname, l.lanname, p.prosecdef, p.proconfig,
               pg_get_userbyid(p.proowner), r.rolsuper, p.prosrc, p.prokind
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang JOIN pg_roles r ON r.oid = p.proowner
        JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
        JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_alpaca'""").fetchall()


class CallerCodeRunsAsCaller(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.su = S.connect()
        cls.role = f"adm_{uuid.uuid4().hex[:8]}"
        cls.su.execute(f"CREATE ROLE {cls.role} LOGIN IN ROLE alpaca_admin")

    @classmethod
    def tearDownClass(cls):
        cls.su.execute(f"DROP OWNED BY {cls.role}")
        cls.su.execute(f"DROP ROLE {cls.role}")
        cls.su.close()

    def is_superuser(self):
        return self.su.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s",
                               (self.role,)).fetchone()[0]

    def import_from(self, setup_sql):
        """As the alpaca_admin member: runs setup_sql (temp objects only), then imports from
        pg_temp.src. Returns the error, if any."""
        with S.connect(role=self.role) as c:
            for stmt in setup_sql:
                c.execute(stmt)
            try:
                c.execute("SELECT * FROM alpaca_import_fernet_credentials('pg_temp.src', %s)",
                          (FERNET_KEY,)).fetchall()
            except psycopg.Error as e:
                return e
        return None

    EVIL = ("CREATE FUNCTION pg_temp.evil() RETURNS text LANGUAGE plpgsql AS "
            "$$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' SUPERUSER'; RETURN 'x'; END$$")

    def test_view_calling_function_cannot_make_admin_superuser(self):
        """The review's attack: a temp view whose WHERE clause runs caller code."""
        err = self.import_from([
            self.EVIL.replace("current_user", f"'{self.role}'"),
            "CREATE TEMP VIEW src AS SELECT 'u'::text app_user, NULL::uuid account_id, 'a'::text api_key_token,"
            " 'b'::text secret_key_token, 'paper'::text environment, NULL::text label"
            " WHERE pg_temp.evil() IS NULL"])
        self.assertFalse(self.is_superuser())
        self.assertIsNotNone(err)
        self.assertEqual(err.sqlstate, "42501")  # the evil function ran as the admin and was refused

    def test_view_column_function_cannot_escalate(self):
        """Caller code in a selected column instead of the WHERE clause."""
        self.import_from([
            self.EVIL.replace("current_user", f"'{self.role}'"),
            "CREATE TEMP VIEW src AS SELECT pg_temp.evil() app_user, NULL::uuid account_id,"
            " 'a'::text api_key_token, 'b'::text secret_key_token, 'paper'::text environment,"
            " NULL::text label"])
        self.assertFalse(self.is_superuser())

    def test_set_returning_function_source_cannot_escalate(self):
        """A view over a set-returning temp function that grants itself pg_read_server_files."""
        self.import_from([
            "CREATE FUNCTION pg_temp.rows() RETURNS TABLE(app_user text, account_id uuid,"
            " api_key_token text, secret_key_token text, environment text, label text)"
            " LANGUAGE plpgsql AS $$BEGIN EXECUTE 'GRANT pg_read_server_files TO "
            + self.role + "'; RETURN; END$$",
            "CREATE TEMP VIEW src AS SELECT * FROM pg_temp.rows()"])
        granted = self.su.execute("SELECT pg_has_role(%s, 'pg_read_server_files', 'MEMBER')",
                                  (self.role,)).fetchone()[0]
        self.assertFalse(granted)

    def test_source_the_admin_cannot_read(self):
        """Naming a table the admin has no SELECT on: the import reads it as the admin."""
        t = f"secret_src_{uuid.uuid4().hex[:8]}"
        self.su.execute(f"CREATE TABLE public.{t} (app_user text, account_id uuid, api_key_token text,"
                        " secret_key_token text, environment text, label text)")
        self.su.execute(f"REVOKE ALL ON public.{t} FROM PUBLIC")
        try:
            with S.connect(role=self.role) as c:
                with self.assertRaises(psycopg.Error) as cm:
                    c.execute("SELECT * FROM alpaca_import_fernet_credentials(%s, %s)",
                              (f"public.{t}", FERNET_KEY)).fetchall()
                self.assertEqual(cm.exception.sqlstate, "42501")
        finally:
            self.su.execute(f"DROP TABLE public.{t}")

    # ---- catalog rules ----------------------------------------------------------------------
    def test_no_security_definer_function_owned_by_a_superuser(self):
        """Every SECURITY DEFINER function runs as alpaca_owner or alpaca_maintainer."""
        bad = [(sig, owner) for sig, _, _, secdef, _, owner, rolsuper, _, _ in ext_functions(self.su)
               if secdef and (rolsuper or owner not in ("alpaca_owner", "alpaca_maintainer"))]
        self.assertEqual(bad, [])

    def test_definer_roles_are_plain_and_memberless(self):
        """alpaca_owner and alpaca_maintainer: NOLOGIN, not superuser, no BYPASSRLS, no members."""
        rows = self.su.execute("""
            SELECT r.rolname, r.rolsuper, r.rolbypassrls, r.rolcanlogin,
                   (SELECT count(*) FROM pg_auth_members m WHERE m.roleid = r.oid)
            FROM pg_roles r WHERE r.rolname IN ('alpaca_owner', 'alpaca_maintainer') ORDER BY 1""").fetchall()
        self.assertEqual(rows, [("alpaca_maintainer", False, False, False, 0),
                                ("alpaca_owner", False, False, False, 0)])

    def test_every_function_pins_search_path_or_is_shown_safe(self):
        """No body of the extension resolves a name through the caller's search_path."""
        acl = {}
        for sig, execs in self.su.execute("""
                SELECT p.oid::regprocedure::text,
                       array(SELECT r.rolname FROM pg_roles r WHERE has_function_privilege(r.oid, p.oid, 'EXECUTE')
                             AND NOT r.rolsuper ORDER BY 1)
                FROM pg_proc p WHERE p.pronamespace IN ('alpaca'::regnamespace, 'public'::regnamespace)"""):
            acl[sig] = execs
        problems = []
        for sig, name, lang, secdef, config, owner, _, src, kind in ext_functions(self.su):
            if lang in ("c", "internal"):
                continue
            pinned = any(c == "search_path=pg_catalog, pg_temp" for c in (config or []))
            if pinned:
                continue
            if name in WRAPPERS:
                # one SELECT of one alpaca.* function of $1..$n
                if not re.fullmatch(r"\s*SELECT alpaca\._\w+\((\$\d(, )?)+\)\s*", src):
                    problems.append(f"{sig}: wrapper body is not a single qualified call")
            elif name in OWNER_ONLY:
                others = [r for r in acl[sig] if r != "alpaca_owner"]
                if others:
                    problems.append(f"{sig}: executable by {others}")
            elif name in PROCEDURES:
                body = re.sub(r"--[^\n]*", "", src)
                body = re.sub(r"'[^']*'", "", body)
                ops = re.findall(r"[-+*/<>=!~|&^%@#]+", body.replace(":=", ""))
                unqualified = [w for w in re.findall(r"\b([a-z_][a-z0-9_]*)\s*\(", body)
                               if w not in ("alpaca",)]
                calls = re.findall(r"\b(\w+)\.(\w+)\s*\(", body)
                if ops or any(schema != "alpaca" for schema, _ in calls) or \
                        len(unqualified) != len(calls):
                    problems.append(f"{sig}: procedure body has operators {ops} or unqualified calls")
            else:
                problems.append(f"{sig}: no pinned search_path and not on the safe list")
        self.assertEqual(problems, [])

    def test_nobody_else_creates_in_schema_alpaca(self):
        """An overload planted in schema alpaca would reach the extension's own calls."""
        rows = self.su.execute("""
            SELECT r.rolname FROM pg_roles r
            WHERE NOT r.rolsuper AND has_schema_privilege(r.oid, 'alpaca', 'CREATE')""").fetchall()
        self.assertEqual(rows, [])


if __name__ == "__main__":
    unittest.main()
