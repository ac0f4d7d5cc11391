"""Issue 4, point 2: isolation between application users under load, and tickets that must be
refused.

50 sessions (threads, one psycopg connection each, login role `app`) act for 50 users at
once: thousands of mixed operations (list, store, update, issue and redeem a ticket, a broker
call through the sidecar, delete, and attempts on other users' credentials). Every row a
session gets back must belong to its user; every broker answer must be the user's own Alpaca
account (each user's key has its own stand-in account with a unique account number).

Then forged, tampered, expired, replayed, wrong-purpose, cross-user, deactivated and deleted
tickets are redeemed through the sidecar's login role: none may be accepted.
"""
import base64
import json
import os
import random
import threading
import time
import unittest
import uuid

import psycopg

import hardening_lib as H
import pga_stack as S

USERS = 50
OPS_PER_SESSION = 70
PURPOSES = ("validate", "account", "positions", "orders", "clock")


class Isolation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tag = H.rand_text(6).lower()
        cls.users = [f"iso-{cls.tag}-{i:02d}" for i in range(USERS)]
        cls.main = {}       # user -> (account id, main credential id, key, account number)
        cls.fixtures = []
        with S.connect(role="app") as c:
            for i, u in enumerate(cls.users):
                key, secret = H.canary_key_pair("iso")
                number = f"PAISO{cls.tag.upper()}{i:02d}"
                H.add_standin_fixture(key, secret)
                cls.set_account_number(key, number)
                cls.fixtures.append(key)
                acct = S.as_user(c, u, "SELECT alpaca_create_account(%s)", (f"{u} main",))[0][0]
                cred = S.as_user(c, u, "SELECT alpaca_store_credential(%s, %s, %s)",
                                 (acct, key, secret))[0][0]
                cls.main[u] = (acct, cred, key, number)
        H.standin_reload()
        # The sidecar's pooled connections may predate a server restart made by another test:
        # let it find that out before the load starts (test_faults.py measures this case).
        H.warm_sidecar(cls.users[0], cls.main[cls.users[0]][1])

    @classmethod
    def tearDownClass(cls):
        for k in cls.fixtures:
            H.remove_standin_fixture(k)
        H.standin_reload()

    @staticmethod
    def set_account_number(key, number):
        path = os.path.join(S.FIXTURES, key, "account.json")
        with open(path) as f:
            doc = json.load(f)
        doc["account_number"] = number
        doc["id"] = str(uuid.uuid4())
        with open(path, "w") as f:
            json.dump(doc, f)

    # -------------------------------------------------------------------------------------------
    def test_50_users_under_load(self):
        stats = {"ops": 0, "cross": [], "errors": [], "calls": 0, "redeemed": 0, "foreign_tries": 0}
        lock = threading.Lock()
        barrier = threading.Barrier(USERS)
        owner_of_main = {cred: u for u, (_a, cred, _k, _n) in self.main.items()}

        def session(idx):
            user = self.users[idx]
            acct, main_cred, main_key, number = self.main[user]
            rnd = random.Random(idx)
            mine = {main_cred: main_key}     # credential id -> key id
            labels = {}
            cross, errors = [], []
            ops = calls = redeemed = foreign = 0
            try:
                with S.connect(role="app") as c, S.connect(role="alpaca_sidecar_login") as sc:
                    def tx(sql, params=()):
                        return S.as_user(c, user, sql, params)
                    barrier.wait(60)
                    for _ in range(OPS_PER_SESSION):
                        r = rnd.random()
                        ops += 1
                        if r < 0.25:  # list, and the tables under RLS
                            rows = tx("SELECT id, account_id, label FROM alpaca_list_credentials()")
                            ids = {row[0] for row in rows}
                            if ids != set(mine):
                                cross += [f"list: {i}" for i in ids - set(mine)]
                                if set(mine) - ids:
                                    errors.append(f"{user}: own credentials missing from list")
                            for cid, _acc, label in rows:
                                if cid in labels and labels[cid] != label:
                                    errors.append(f"{user}: label of {cid} is {label!r}")
                            owners = tx("SELECT DISTINCT owner_id FROM alpaca.credentials "
                                        "UNION SELECT DISTINCT owner_id FROM alpaca.accounts "
                                        "UNION SELECT DISTINCT app_user FROM alpaca.audit_log")
                            cross += [f"table row of {o}" for (o,) in owners if o != user]
                        elif r < 0.40:  # store
                            key, secret = H.canary_key_pair("iso")
                            cid = tx("SELECT alpaca_store_credential(%s, %s, %s, 'paper', %s)",
                                     (acct, key, secret, f"{user} extra"))[0][0]
                            mine[cid] = key
                        elif r < 0.52:  # update a label (and sometimes the secret)
                            cid = rnd.choice(list(mine))
                            label = f"{user} #{ops}"
                            tx("SELECT alpaca_update_credential(%s, label => %s)", (cid, label))
                            labels[cid] = label
                        elif r < 0.67:  # issue a ticket, redeem it as the sidecar would
                            cid = rnd.choice(list(mine))
                            purpose = rnd.choice(PURPOSES)
                            t = tx("SELECT alpaca_issue_ticket(%s, %s)", (cid, purpose))[0][0]
                            got = [r[::2] for r in sc.execute("CALL alpaca.redeem_ticket(%s, %s, NULL, NULL, NULL, NULL)",
                                                          (t, purpose)).fetchall()]
                            redeemed += 1
                            if got != [(cid, mine[cid])]:
                                cross.append(f"redeem gave {got[0][0] if got else None} for {cid}")
                        elif r < 0.74:  # a broker call through the sidecar
                            row = tx("SELECT account_number FROM alpaca_account(%s)", (main_cred,))
                            calls += 1
                            if row != [(number,)]:
                                cross.append(f"alpaca_account answered {row} instead of {number}")
                        elif r < 0.84:  # delete one of the extra credentials
                            extra = [cid for cid in mine if cid != main_cred]
                            if extra:
                                cid = rnd.choice(extra)
                                if tx("SELECT alpaca_delete_credential(%s)", (cid,)) != [(True,)]:
                                    errors.append(f"{user}: delete did not return true")
                                del mine[cid]
                                labels.pop(cid, None)
                        else:  # an attempt on another user's credential or account
                            other = self.users[(idx + rnd.randrange(1, USERS)) % USERS]
                            o_acct, o_cred, _k, _n = self.main[other]
                            foreign += 1
                            attempt = rnd.randrange(7)
                            sql, params = [
                                ("SELECT alpaca_update_credential(%s, label => 'stolen')", (o_cred,)),
                                ("SELECT alpaca_delete_credential(%s)", (o_cred,)),
                                ("SELECT alpaca_issue_ticket(%s, 'account')", (o_cred,)),
                                ("SELECT account_number FROM alpaca_account(%s)", (o_cred,)),
                                ("SELECT alpaca_validate_credential(%s)", (o_cred,)),
                                ("SELECT alpaca_store_credential(%s, 'PKSTOLEN00000000000', 'x')", (o_acct,)),
                                ("SELECT * FROM alpaca_list_credentials(%s)", (o_acct,)),
                            ][attempt]
                            try:
                                rows = tx(sql, params)
                                if attempt != 6 or rows:
                                    cross.append(f"{user} on {other}'s: {sql} -> {rows}")
                            except psycopg.Error as e:
                                if e.sqlstate != "42501":
                                    errors.append(f"{sql}: {e.sqlstate} {e.diag.message_primary}")
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(f"{user}: {type(e).__name__}: {e}")
            with lock:
                stats["ops"] += ops
                stats["cross"] += cross
                stats["errors"] += errors
                stats["calls"] += calls
                stats["redeemed"] += redeemed
                stats["foreign_tries"] += foreign

        t0 = time.monotonic()
        threads = [threading.Thread(target=session, args=(i,)) for i in range(USERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        elapsed = time.monotonic() - t0

        # Afterwards, as the superuser: every credential and account row is owned by the user
        # whose session made it, and the main credentials are untouched by their neighbours.
        with S.connect() as su:
            bad_owner = su.execute(
                "SELECT count(*) FROM alpaca.credentials c JOIN alpaca.accounts a ON a.id = c.account_id "
                "WHERE c.owner_id <> a.owner_id").fetchone()[0]
            stolen = su.execute("SELECT count(*) FROM alpaca.credentials WHERE (label = 'stolen' "
                                "OR key_hint = '0000') AND owner_id LIKE %s", (f"iso-{self.tag}-%",)).fetchone()[0]
            mains = su.execute("SELECT id, owner_id FROM alpaca.credentials WHERE id = ANY(%s)",
                               (list(owner_of_main),)).fetchall()
        stats["cross"] += [f"{bad_owner} credentials in another user's account"] * (bad_owner > 0)
        stats["cross"] += [f"{stolen} credentials changed or stored by another user"] * (stolen > 0)
        if sorted(mains) != sorted(owner_of_main.items()):
            stats["cross"].append(f"only {len(mains)} of {USERS} main credentials remain with their owner")

        H.count(f"isolation: {USERS} sessions for {USERS} users, {stats['ops']} operations in "
              f"{elapsed:.1f} s ({stats['ops'] / elapsed:.0f}/s): {stats['calls']} broker calls, "
              f"{stats['redeemed']} tickets redeemed, {stats['foreign_tries']} attempts on other users' data")
        H.count(f"cross-tenant reads: {len(stats['cross'])}")
        self.assertEqual(stats["errors"], [])
        self.assertEqual(stats["cross"], [])
        self.assertGreaterEqual(stats["ops"], 3000)
        self.assertGreater(stats["calls"], 50)
        self.assertGreater(stats["foreign_tries"], 200)

    # -------------------------------------------------------------------------------------------
    def issue(self, user, cred, purpose="account", ttl="30 seconds"):
        with S.connect(role="app") as c:
            return S.as_user(c, user, "SELECT alpaca_issue_ticket(%s, %s, %s::interval)",
                             (cred, purpose, ttl))[0][0]

    def test_bad_tickets_refused(self):
        a, b = self.users[0], self.users[1]
        _acct_a, cred_a, key_a, _ = self.main[a]
        acct_b, cred_b, _key_b, _ = self.main[b]
        bad = []      # (description, ticket, purpose)
        good = []     # (description, ticket, purpose, expected credential)

        # Forged: not a ticket at all, or the right shape with random content.
        b64 = lambda n: base64.urlsafe_b64encode(os.urandom(n)).rstrip(b"=").decode()  # noqa: E731
        for t in ("", "garbage", "pgat1.", "pgat1..", "pgat1.x.y", "pgat2." + b64(60) + "." + b64(32),
                  "pgat1." + b64(60) + "." + b64(32), "pgat1." + b64(60) + "." + b64(32) + ".x",
                  "pgat1." + "A" * 100000 + "." + b64(32), "pgat1.é✓." + b64(32), "pgat1.\x01." + b64(32)):
            bad.append(("forged", t, "account"))

        # Tampered: a real ticket with one character changed anywhere, cut short, extended, or
        # with the MAC of another ticket.
        real = self.issue(a, cred_a)
        other = self.issue(a, cred_a)
        rnd = random.Random(4)
        positions = sorted(set(rnd.randrange(6, len(real)) for _ in range(40)) | {6, len(real) - 1})
        for pos in positions:
            ch = real[pos]
            repl = "A" if ch != "A" else "B"
            bad.append((f"tampered at {pos}", real[:pos] + repl + real[pos + 1:], "account"))
        head, _dot, mac = real.rpartition(".")
        bad += [("tampered: truncated", real[:-1], "account"),
                ("tampered: extended", real + "A", "account"),
                ("tampered: mac of another ticket", head + "." + other.rpartition(".")[2], "account"),
                ("tampered: no mac", head + ".", "account"),
                ("tampered: upper case", real.upper(), "account")]
        good.append(("the untampered ticket", real, "account", cred_a))

        # Expired: ttl of one second, then wait; and minted already expired.
        expiring = [self.issue(a, cred_a, p, "1 second") for p in PURPOSES]
        with S.connect() as su:
            for who, cred in ((a, cred_a), (b, cred_b)):
                t = su.execute("SELECT alpaca._mint_ticket(%s, %s, 'account', clock_timestamp() - "
                               "interval '1 second')", (cred, who)).fetchone()[0]
                bad.append(("minted expired", t, "account"))
            # Cross-user: a correctly signed ticket naming a user who does not own the credential.
            for cred, who in ((cred_a, b), (cred_b, a), (cred_a, "nobody"), (cred_a, a.upper()),
                              (cred_a, a + " "), (str(uuid.uuid4()), a)):
                t = su.execute("SELECT alpaca._mint_ticket(%s, %s, 'account', clock_timestamp() + "
                               "interval '30 seconds')", (cred, who)).fetchone()[0]
                bad.append((f"cross-user ({who!r})", t, "account"))

        # Wrong purpose: every other purpose, and near misses.
        for p in PURPOSES:
            t = self.issue(a, cred_a, p)
            for wrong in [q for q in PURPOSES if q != p] + [p.upper(), p + " ", "", "*"]:
                bad.append((f"{p} ticket used for {wrong!r}", t, wrong))
            good.append((f"{p} ticket after the wrong tries", t, p, cred_a))

        # Deactivated and deleted credentials.
        with S.connect(role="app") as c:
            key, secret = H.canary_key_pair("iso")
            tmp = S.as_user(c, b, "SELECT alpaca_store_credential(%s, %s, %s)", (acct_b, key, secret))[0][0]
            t_deact = self.issue(b, tmp)
            S.as_user(c, b, "SELECT alpaca_update_credential(%s, is_active => false)", (tmp,))
            bad.append(("deactivated credential", t_deact, "account"))
            key2, secret2 = H.canary_key_pair("iso")
            tmp2 = S.as_user(c, b, "SELECT alpaca_store_credential(%s, %s, %s)", (acct_b, key2, secret2))[0][0]
            t_del = self.issue(b, tmp2)
            S.as_user(c, b, "SELECT alpaca_delete_credential(%s)", (tmp2,))
            bad.append(("deleted credential", t_del, "account"))
            # B cannot even get a ticket for A's credential.
            try:
                S.as_user(c, b, "SELECT alpaca_issue_ticket(%s, 'account')", (cred_a,))
                refused_issue = False
            except psycopg.Error as e:
                refused_issue = e.sqlstate == "42501"
            self.assertTrue(refused_issue, "a user was given a ticket for another user's credential")

        time.sleep(1.2)
        bad += [("expired (ttl 1 s)", t, p) for t, p in zip(expiring, PURPOSES)]

        accepted, tried, wrong_state = [], 0, []

        def redeem(conn, t, p):
            try:
                return [r[:1] for r in conn.execute("CALL alpaca.redeem_ticket(%s, %s, NULL, NULL, NULL, NULL)", (t, p)).fetchall()]
            except psycopg.Error as e:
                return e

        with S.connect(role="alpaca_sidecar_login") as sc:
            for what, t, p in bad:
                tried += 1
                r = redeem(sc, t, p)
                if not isinstance(r, Exception):
                    accepted.append(f"{what}: {r}")
                elif r.sqlstate not in ("42501", "22023"):
                    wrong_state.append(f"{what}: {r.sqlstate} {r.diag.message_primary}")
            # The genuine tickets still work once, and only once (replay).
            good_ok = 0
            for what, t, p, cred in good:
                r = redeem(sc, t, p)
                good_ok += r == [(cred,)]
                for _ in range(3):
                    tried += 1
                    r2 = redeem(sc, t, p)
                    if not isinstance(r2, Exception):
                        accepted.append(f"replay of {what}")
        # The application role cannot redeem at all.
        with S.connect(role="app") as c:
            t = self.issue(a, cred_a)
            tried += 1
            r = redeem(c, t, "account")
            if not isinstance(r, Exception):
                accepted.append("redeemed by the application role")
        # Concurrent replay: 20 sessions redeem the same ticket at once; exactly one wins.
        t = self.issue(a, cred_a)
        results, start = [], threading.Barrier(20)

        def racer():
            with S.connect(role="alpaca_sidecar_login") as conn:
                start.wait(30)
                results.append(redeem(conn, t, "account"))
        racers = [threading.Thread(target=racer) for _ in range(20)]
        for th in racers:
            th.start()
        for th in racers:
            th.join(60)
        wins = sum(1 for r in results if not isinstance(r, Exception))
        tried += len(results) - 1

        H.count(f"bad tickets tried: {tried}, accepted: {len(accepted) + max(0, wins - 1)}")
        H.count(f"genuine tickets accepted: {good_ok} of {len(good)}; concurrent redeems of one "
              f"ticket: {len(results)}, accepted: {wins}")
        self.assertEqual(accepted, [])
        self.assertEqual(wrong_state, [])
        self.assertEqual(good_ok, len(good))
        self.assertEqual(wins, 1)
        self.assertGreater(tried, 100)


if __name__ == "__main__":
    unittest.main()
