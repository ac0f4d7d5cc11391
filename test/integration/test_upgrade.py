"""ALTER EXTENSION pg_alpaca UPDATE from 0.1.0 loses nothing and lands exactly on 0.2.0.

Two databases of the stack's cluster: one gets a fresh 0.2.0, the other 0.1.0 with data (two
users' accounts and credentials, tickets, audit rows) and then the update. Their catalogs
(every function with signature, owner, SECURITY DEFINER, pinned settings, ACL and body; every
type, table, column, index, constraint, policy, grant, comment and dump setting of the
extension) must be identical, and every credential stored under 0.1.0 must still decrypt.
"""
import sys
import unittest

import pga_stack as S

SNAPSHOT = r"""
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_alpaca'),
members AS (SELECT classid, objid FROM pg_depend, ext
            WHERE refclassid = 'pg_extension'::regclass AND refobjid = ext.oid AND deptype = 'e'),
acl(a) AS (SELECT NULL::aclitem[])
SELECT 'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       concat_ws(' | ', pg_get_function_result(p.oid), p.prokind, l.lanname, p.prosecdef, p.provolatile,
                 p.proisstrict, p.proparallel, p.proconfig::text, pg_get_userbyid(p.proowner),
                 (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(p.proacl) x),
                 md5(p.prosrc), p.probin, obj_description(p.oid, 'pg_proc'),
                 pg_get_expr(p.proargdefaults, 0))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid IN (SELECT objid FROM members WHERE classid = 'pg_proc'::regclass)
UNION ALL
SELECT 'type ' || t.typnamespace::regnamespace || '.' || t.typname,
       concat_ws(' | ', t.typtype, pg_get_userbyid(t.typowner), t.typinput::text, t.typoutput::text,
                 t.typreceive::text, t.typsend::text, t.typstorage, t.typalign, t.typlen,
                 (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
                 obj_description(t.oid, 'pg_type'))
FROM pg_type t
WHERE t.oid IN (SELECT objid FROM members WHERE classid = 'pg_type'::regclass)
UNION ALL
SELECT 'relation ' || c.oid::regclass::text,
       concat_ws(' | ', c.relkind, pg_get_userbyid(c.relowner), c.relrowsecurity, c.relforcerowsecurity,
                 (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(c.relacl) x),
                 obj_description(c.oid, 'pg_class'))
FROM pg_class c
WHERE c.oid IN (SELECT objid FROM members WHERE classid = 'pg_class'::regclass)
   OR c.relnamespace = 'alpaca'::regnamespace
UNION ALL
SELECT 'column ' || a.attrelid::regclass::text || '.' || a.attname,
       concat_ws(' | ', format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated, a.attidentity,
                 pg_get_expr(d.adbin, d.adrelid),
                 (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.attacl) x))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'alpaca'::regnamespace AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index ' || i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'alpaca'::regnamespace
UNION ALL
SELECT 'constraint ' || co.conrelid::regclass::text || '.' || co.conname, pg_get_constraintdef(co.oid)
FROM pg_constraint co WHERE co.connamespace = 'alpaca'::regnamespace
UNION ALL
SELECT 'policy ' || po.polrelid::regclass::text || '.' || po.polname,
       concat_ws(' | ', po.polcmd, po.polpermissive,
                 (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END, ',' ORDER BY 1)
                  FROM unnest(po.polroles) r),
                 pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid))
FROM pg_policy po JOIN pg_class c ON c.oid = po.polrelid WHERE c.relnamespace = 'alpaca'::regnamespace
UNION ALL
SELECT 'schema ' || n.nspname,
       concat_ws(' | ', pg_get_userbyid(n.nspowner),
                 (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(n.nspacl) x),
                 obj_description(n.oid, 'pg_namespace'))
FROM pg_namespace n WHERE n.oid IN (SELECT objid FROM members WHERE classid = 'pg_namespace'::regclass)
UNION ALL
SELECT 'extension pg_alpaca',
       concat_ws(' | ', e.extversion, e.extrelocatable, e.extnamespace::regnamespace::text,
                 (SELECT string_agg(x::regclass::text, ',' ORDER BY x::regclass::text) FROM unnest(e.extconfig) x),
                 array_to_string(e.extcondition, ','))
FROM pg_extension e WHERE e.extname = 'pg_alpaca'
"""

USERS = [("upgrade-alice", S.ALICE), ("upgrade-bob", S.BOB)]


def snapshot(dbname):
    with S.connect(dbname=dbname) as c:
        return dict(c.execute(SNAPSHOT).fetchall())


class UpgradeFrom010(unittest.TestCase):
    FRESH, UPDATED = "pga_upgrade_fresh", "pga_upgrade_updated"

    @classmethod
    def setUpClass(cls):
        with S.connect() as c:
            for db in (cls.FRESH, cls.UPDATED):
                c.execute(f"DROP DATABASE IF EXISTS {db}")
                c.execute(f"CREATE DATABASE {db}")
        with S.connect(dbname=cls.FRESH) as c:
            c.execute("CREATE EXTENSION pg_alpaca")
        with S.connect(dbname=cls.UPDATED) as c:
            c.execute("CREATE EXTENSION pg_alpaca VERSION '0.1.0'")
        # Data written by 0.1.0: accounts, credentials, tickets, audit rows.
        cls.creds = {}
        with S.connect(role="app", dbname=cls.UPDATED) as app:
            for user, key in USERS:
                cred = S.store(app, user, key, S.fixture_secret(key))
                S.as_user(app, user, "SELECT alpaca_issue_ticket(%s, 'positions')", (cred,))
                cls.creds[cred] = (user, key)
        with S.connect(dbname=cls.UPDATED) as c:
            cls.audit_before = c.execute("SELECT count(*) FROM alpaca.audit_log").fetchone()[0]
            c.execute("ALTER EXTENSION pg_alpaca UPDATE")

    @classmethod
    def tearDownClass(cls):
        with S.connect() as c:
            for db in (cls.FRESH, cls.UPDATED):
                c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")

    def test_catalog_identical_to_fresh_install(self):
        fresh, updated = snapshot(self.FRESH), snapshot(self.UPDATED)
        differing = sorted(k for k in fresh.keys() | updated.keys() if fresh.get(k) != updated.get(k))
        for k in differing:
            print(f"\n  {k}\n    fresh:   {fresh.get(k)}\n    updated: {updated.get(k)}", file=sys.stderr)
        sys.stdout.write(f"\n[count] upgrade 0.1.0 -> 0.2.0: {len(fresh)} catalog objects compared, "
                         f"{len(differing)} differ\n")
        self.assertGreater(len(fresh), 100)  # the snapshot really sees the extension
        self.assertEqual(differing, [])

    def test_version_is_020(self):
        with S.connect(dbname=self.UPDATED) as c:
            self.assertEqual(c.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_alpaca'")
                             .fetchone()[0], "0.2.0")

    def test_credentials_still_decrypt_and_audit_kept(self):
        with S.connect(dbname=self.UPDATED) as c:
            self.assertGreaterEqual(c.execute("SELECT count(*) FROM alpaca.audit_log").fetchone()[0],
                                    self.audit_before)
        with S.connect(role="app", dbname=self.UPDATED) as app, \
                S.connect(role="alpaca_sidecar_login", dbname=self.UPDATED) as sc:
            for cred, (user, key) in self.creds.items():
                t = S.as_user(app, user, "SELECT alpaca_issue_ticket(%s, 'account')", (cred,))[0][0]
                row = sc.execute("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)",
                                 (t,)).fetchone()
                self.assertEqual((str(row[0]), row[2], row[3]), (str(cred), key, S.fixture_secret(key)))
            # ...and the other user's credential stays invisible.
            (a, _), (b, _) = list(self.creds.items())[:2]
            rows = S.as_user(app, self.creds[a][0], "SELECT id FROM alpaca_list_credentials()")
            self.assertEqual([str(r[0]) for r in rows], [str(a)])


if __name__ == "__main__":
    unittest.main()
