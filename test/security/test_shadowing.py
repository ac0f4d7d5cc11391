"""Attacks on "overloads of the extension's function names do not break or hijack anyone's
call": with a public schema writable by everyone (a cluster upgraded from PostgreSQL <= 14), an
unprivileged role plants, in that schema, an overload of every function name the extension
calls internally. The review's one overload, public.alpaca_current_user(integer DEFAULT 0),
made every RLS check of every user fail with "function ... is not unique".
"""
import unittest
import uuid

import psycopg

import attack_lib  # noqa: F401
import hardening_lib as H
import pga_stack as S

# Every public name that the extension's own SQL used to call, with its argument list.
PLANTED = {
    "alpaca_current_user": "",
    "alpaca_set_user": "text",
    "alpaca_store_credential": "uuid, text, text, text, text",
    "alpaca_issue_ticket": "uuid, text, interval",
    "alpaca_import_fernet_credential": "uuid, text, text, text, text, text",
    "alpaca_parse_account": "text",
    "alpaca_parse_positions": "text",
    "alpaca_parse_orders": "text",
    "alpaca_redeem_ticket": "text, text",
}


class PlantedOverloads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.su = S.connect()
        cls.mallory = f"mallory_{uuid.uuid4().hex[:8]}"
        cls.user = f"shadow-{uuid.uuid4().hex[:6]}"
        cls.app = S.connect(role="app")
        cls.cred = S.store(cls.app, cls.user, S.ALICE, S.fixture_secret(S.ALICE), account_name="shadow")
        cls.su.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        cls.su.execute(f"CREATE ROLE {cls.mallory} LOGIN")
        with S.connect(role=cls.mallory) as m:
            m.execute("CREATE TABLE public.hijacked (fn text)")
            m.execute("GRANT INSERT, SELECT ON public.hijacked TO PUBLIC")
            for name, args in PLANTED.items():
                params = (args + ", " if args else "") + "extra integer DEFAULT 0"
                m.execute(f"CREATE FUNCTION public.{name}({params}) RETURNS text LANGUAGE sql AS "
                          f"$$ INSERT INTO public.hijacked VALUES ('{name}') RETURNING 'hijacked' $$")

    @classmethod
    def tearDownClass(cls):
        cls.su.execute(f"DROP OWNED BY {cls.mallory} CASCADE")
        cls.su.execute(f"DROP ROLE {cls.mallory}")
        cls.su.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        cls.app.close()
        cls.su.close()

    def tearDown(self):
        self.assertEqual(self.su.execute("SELECT count(*) FROM public.hijacked").fetchone()[0], 0,
                         "a planted overload ran")

    def as_user(self, sql, params=()):
        """One transaction as the application user, set without calling alpaca_set_user (whose
        own name is planted, so an application's unqualified call of it is ambiguous)."""
        with self.app.transaction():
            self.app.execute("SELECT set_config('app.current_user_id', %s, true)", (self.user,))
            return self.app.execute(sql, params).fetchall()

    def test_rls_checks_and_metadata(self):
        """The review's attack: every RLS check failed with 'not unique'."""
        listed = [r[0] for r in self.as_user("SELECT id FROM alpaca_list_credentials()")]
        self.assertIn(self.cred, listed)
        self.assertEqual(sorted(r[0] for r in self.as_user("SELECT id FROM alpaca.credentials")), sorted(listed))
        self.as_user("SELECT alpaca_create_account('shadow 2')")
        self.as_user("SELECT alpaca_update_credential(%s, label => 'relabelled')", (self.cred,))

    def test_broker_calls(self):
        """Ticket minting and the parsers are called internally by every broker call."""
        self.assertEqual(self.as_user("SELECT account_number FROM alpaca_account(%s)", (self.cred,)),
                         [(S.fixture_json(S.ALICE, "account.json")["account_number"],)])
        self.assertEqual(len(self.as_user("SELECT * FROM alpaca_positions(%s)", (self.cred,))),
                         len(S.fixture_json(S.ALICE, "positions.json")))
        self.as_user("SELECT * FROM alpaca_orders(%s, 'all')", (self.cred,))
        self.assertEqual(self.as_user("SELECT alpaca_validate_credential(%s)", (self.cred,)), [(True,)])

    def test_planted_operator_and_a_changing_search_path(self):
        """The calls are C functions without a SET search_path clause, whose credential
        look-up is a plan kept for the session; PostgreSQL re-analyses a kept plan under the
        caller's search_path when that changes. A planted public.=(uuid, uuid), first on the
        path, must not be what the look-up compares with, before or after the path changes."""
        with S.connect(role=self.mallory) as m:
            m.execute("CREATE FUNCTION public.uuid_eq_planted(uuid, uuid) RETURNS boolean "
                      "LANGUAGE sql AS $$ INSERT INTO public.hijacked VALUES ('=') RETURNING true $$")
            m.execute("CREATE OPERATOR public.= (LEFTARG = uuid, RIGHTARG = uuid, "
                      "FUNCTION = public.uuid_eq_planted)")
        try:
            n = len(S.fixture_json(S.ALICE, "positions.json"))
            # The plan is made under the default path, then used under paths that put public
            # (and its operator) before pg_catalog.
            for path in ("DEFAULT", "public, pg_catalog", "pg_temp, public, pg_catalog", "DEFAULT"):
                with self.subTest(path=path):
                    self.app.execute(f"SET search_path = {path}")
                    self.assertEqual(len(self.as_user("SELECT * FROM alpaca_positions(%s)", (self.cred,))), n)
                    self.assertEqual(self.as_user("SELECT alpaca_validate_credential(%s)", (self.cred,)),
                                     [(True,)])
                    # A credential that is not there is still not found (the planted operator
                    # answers true for any pair).
                    with self.assertRaises(psycopg.Error) as cm:
                        self.as_user("SELECT * FROM alpaca_account(%s)", (str(uuid.uuid4()),))
                    self.assertEqual(cm.exception.sqlstate, "42501")
                    self.assertIn("does not exist or does not belong", cm.exception.diag.message_primary)
        finally:
            self.app.execute("RESET search_path")
            with S.connect(role=self.mallory) as m:
                m.execute("DROP OPERATOR public.= (uuid, uuid)")
                m.execute("DROP FUNCTION public.uuid_eq_planted(uuid, uuid)")

    def test_sidecar_redeem(self):
        """The sidecar's call goes to schema alpaca, untouched by public's overloads."""
        t = self.as_user("SELECT alpaca._issue_ticket(%s, 'account', interval '30 seconds')", (self.cred,))[0][0]
        with S.connect(role="alpaca_sidecar_login") as sc:
            row = sc.execute("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)", (t,)).fetchone()
        self.assertEqual(row[2], S.ALICE)

    def test_sidecar_redeem_under_planted_operators(self):
        """The redeem's statements are kept plans that PostgreSQL re-parses under the caller's
        search_path: with mallory's `=` for uuid and `<` for timestamptz in public, put before
        pg_catalog on the sidecar's path (before the first redeem of the session and again
        after it, which re-parses the kept plans), neither runs and the redeem works."""
        with S.connect(role=self.mallory) as m:
            for op, typ in (("=", "uuid"), ("<", "timestamptz")):
                fn = "hj_eq" if op == "=" else "hj_lt"
                m.execute(f"CREATE FUNCTION public.{fn}(a {typ}, b {typ}) RETURNS boolean LANGUAGE sql AS "
                          f"$$ INSERT INTO public.hijacked VALUES ('{op} {typ}'); SELECT true $$")
                m.execute(f"CREATE OPERATOR public.{op} (LEFTARG = {typ}, RIGHTARG = {typ}, FUNCTION = public.{fn})")
            # Positive control: on such a path an unqualified operator is mallory's.
            m.execute("SET search_path = public, pg_catalog")
            m.execute("SELECT gen_random_uuid() = gen_random_uuid(), now() < now()")
            self.assertEqual(m.execute("SELECT count(*) FROM public.hijacked").fetchone()[0], 2)
            m.execute("DELETE FROM public.hijacked")
        with S.connect(role="alpaca_sidecar_login") as sc:
            for path in ("public, pg_catalog", "pg_catalog", "public, pg_catalog, pg_temp"):
                with self.subTest(search_path=path):
                    t = self.as_user("SELECT alpaca._issue_ticket(%s, 'account', interval '30 seconds')",
                                     (self.cred,))[0][0]
                    sc.execute(f"SET search_path = {path}")
                    row = sc.execute("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)",
                                     (t,)).fetchone()
                    self.assertEqual((str(row[0]), row[2]), (str(self.cred), S.ALICE))
                    self.assertEqual(self.su.execute("SELECT count(*) FROM public.hijacked").fetchone()[0], 0)

    def test_batch_import(self):
        """The batch import calls set_user, import and store internally."""
        key = H.fernet_key()
        table = f"src_{uuid.uuid4().hex[:8]}"
        account = str(uuid.uuid4())
        self.su.execute(f"CREATE TABLE public.{table} (app_user text, account_id uuid, api_key_token text,"
                        " secret_key_token text, environment text, label text)")
        try:
            self.su.execute(f"INSERT INTO public.{table} VALUES (%s, %s, %s, %s, 'paper', 'imported')",
                            (self.user, account, H.fernet_encrypt(key, "PKSHADOWIMPORT000001"),
                             H.fernet_encrypt(key, "shadow-secret")))
            self.su.execute(f"GRANT SELECT ON public.{table} TO admin")
            with S.connect(role="admin") as adm:
                rows = adm.execute("SELECT credential_id FROM alpaca_import_fernet_credentials(%s, %s)",
                                   (f"public.{table}", key)).fetchall()
            self.assertEqual(len(rows), 1)
        finally:
            self.su.execute(f"DROP TABLE public.{table}")

    def test_admin_functions(self):
        """Key status and a rotation pass."""
        with S.connect(role="admin") as adm:
            self.assertGreater(len(adm.execute("SELECT * FROM alpaca_key_status()").fetchall()), 0)
            adm.execute("CALL alpaca_rotate_keys()")

    def test_create_extension_warns_about_writable_schema(self):
        """Installing into a schema everyone can create in is said out loud."""
        db = f"pga_shadow_{uuid.uuid4().hex[:6]}"
        self.su.execute(f"CREATE DATABASE {db}")
        try:
            with S.connect(dbname=db) as c:
                c.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
                notices = []
                c.add_notice_handler(lambda d: notices.append((d.severity, d.message_primary)))
                c.execute("CREATE EXTENSION pg_alpaca")
            self.assertTrue(any(sev == "WARNING" and "every role may create objects" in msg
                                for sev, msg in notices), notices)
        finally:
            self.su.execute(f"DROP DATABASE {db} WITH (FORCE)")


if __name__ == "__main__":
    unittest.main()
