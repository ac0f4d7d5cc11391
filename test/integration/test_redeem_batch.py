"""The sidecar's batched redeem (sidecar/redeemer.hpp) against the real stack: with one pooled
database connection held busy, the requests that wait for it are redeemed together in one
CALL alpaca.redeem_tickets, each still answered with its own credential's data, audited once and
single-use; and when one of them is refused (a replayed ticket, a forged one), the procedure
names it, it is answered with its refusal and the others are redeemed again without it: the
good ones answered, the bad ones refused, nothing spent twice. Half the credentials hold Alice's
key and half Bob's, so a waiter given another's result would show.

How the batch is made certain: a superuser transaction holds alpaca.audit_log in SHARE mode, so
the first redeem (which inserts its decrypt row) waits on the pool's only connection; the other
requests queue behind it; the lock goes, the first finishes, and the next leader takes every
queued ticket.
"""
import json
import os
import threading
import time
import unittest
import urllib.request

import hardening_lib as H
import pga_stack as S
from test_broker_calls import sidecar_request
from test_metrics import free_port, parse, plain

SOCK = os.environ["PGA_SIDECAR_SOCKET"]
N = 6


class SidecarBatchesRedeems(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        H.STACK.sidecar.set("metrics_listen", f"127.0.0.1:{cls.port}")
        H.STACK.sidecar.set("pool_size", "1")
        H.STACK.sidecar.restart()
        cls.user = H.random_user("batch")
        cls.app = S.connect(role="app")
        cls.keys = [S.ALICE if i % 2 == 0 else S.BOB for i in range(N)]
        cls.creds = [str(S.store(cls.app, cls.user, k, S.fixture_secret(k),
                                 account_name=f"batch {i}")) for i, k in enumerate(cls.keys)]
        H.warm_sidecar(cls.user, cls.creds[0])
        cls.su = S.connect()

    @classmethod
    def tearDownClass(cls):
        cls.su.close()
        cls.app.close()
        H.STACK.sidecar.set("metrics_listen", None)
        H.STACK.sidecar.set("pool_size", None)
        H.STACK.sidecar.restart()

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            m = parse(r.read().decode())
        return {k: plain(m, f"pga_sidecar_redeem_{k}_total")
                for k in ("batches", "batched_tickets", "batches_refused")}

    def issue(self, cred):
        return S.as_user(self.app, self.user, "SELECT alpaca_issue_ticket(%s, 'positions')",
                         (cred,))[0][0]

    def decrypt_rows(self):
        """{credential: decrypt rows} of the test's credentials."""
        rows = dict(self.su.execute(
            "SELECT credential_id::text, count(*) FROM alpaca.audit_log WHERE action = 'decrypt'"
            " AND credential_id = ANY(%s::uuid[]) GROUP BY 1", (self.creds,)).fetchall())
        return {c: rows.get(c, 0) for c in self.creds}

    def held(self, tickets):
        """Sends tickets[0] while the audit log is held, then the rest, then lets go: the
        answers' (outcome, body) in the order of tickets."""
        answers = [None] * len(tickets)

        def ask(i):
            try:
                hdr, body = sidecar_request(SOCK, "positions", tickets[i])
                answers[i] = (hdr["outcome"], body)
            except Exception as e:  # noqa: BLE001 -- reported by the assertion below
                answers[i] = ("error", repr(e).encode())

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(tickets))]
        with S.connect(autocommit=False) as lock:
            lock.execute("LOCK TABLE alpaca.audit_log IN SHARE MODE")
            threads[0].start()
            deadline = time.monotonic() + 10
            while not self.su.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE usename = 'alpaca_sidecar_login'"
                    " AND wait_event_type = 'Lock' AND query LIKE 'CALL alpaca.redeem_ticket(%'"
                    ).fetchone():  # (the outcome writer may wait on the lock too)
                self.assertLess(time.monotonic(), deadline, "the first redeem never waited")
                time.sleep(0.02)
            for t in threads[1:]:
                t.start()
            time.sleep(0.5)  # every other request is queued behind the busy connection by now
            lock.rollback()
        for t in threads:
            t.join(30)
        return answers

    def test_waiting_redeems_go_in_one_batch(self):
        tickets = [self.issue(c) for c in self.creds]
        before, rows = self.metrics(), self.decrypt_rows()
        answers = self.held(tickets)
        for i, (outcome, body) in enumerate(answers):
            self.assertEqual(outcome, "ok", f"request {i}: {body[:200]!r}")
            self.assertEqual(json.loads(body), S.fixture_json(self.keys[i], "positions.json"),
                             f"request {i} got another credential's answer")
        after = self.metrics()
        self.assertEqual(after["batches"] - before["batches"], 1)
        self.assertEqual(after["batched_tickets"] - before["batched_tickets"], N - 1)
        self.assertEqual(after["batches_refused"], before["batches_refused"])
        self.assertEqual(self.decrypt_rows(), {c: n + 1 for c, n in rows.items()},
                         "one decrypt row a ticket")
        # Each is spent.
        for t in tickets[:2]:
            self.assertEqual(sidecar_request(SOCK, "positions", t)[0]["outcome"],
                             "ticket_rejected")

    def test_a_refused_ticket_is_answered_and_the_others_redeemed_without_it(self):
        spent = self.issue(self.creds[0])
        self.assertEqual(sidecar_request(SOCK, "positions", spent)[0]["outcome"], "ok")
        good = [self.issue(c) for c in self.creds[1:]]
        forged = good[0][:-4] + ("AAAA" if not good[0].endswith("AAAA") else "BBBB")
        # The first (alone, while the audit log is held), then a batch with a replay in the
        # middle and a forged ticket at its end.
        tickets = [self.issue(self.creds[0])] + good[:2] + [spent] + good[2:] + [forged]
        owners = [0, 1, 2, None, 3, 4, 5, None]
        before, rows = self.metrics(), self.decrypt_rows()
        answers = self.held(tickets)
        for i, ((outcome, body), owner) in enumerate(zip(answers, owners)):
            if owner is None:
                self.assertEqual((outcome, body), ("ticket_rejected", b""), f"request {i}")
            else:
                self.assertEqual(outcome, "ok", f"request {i}: {body[:200]!r}")
                self.assertEqual(json.loads(body),
                                 S.fixture_json(self.keys[owner], "positions.json"))
        after = self.metrics()
        # 7 tickets refused at the replay, 6 refused at the forged one, then 5 redeemed.
        self.assertEqual(after["batches"] - before["batches"], 3)
        self.assertEqual(after["batched_tickets"] - before["batched_tickets"], 7 + 6 + 5)
        self.assertEqual(after["batches_refused"] - before["batches_refused"], 2)
        self.assertEqual(self.decrypt_rows(), {c: n + 1 for c, n in rows.items()},
                         "one decrypt row for each good ticket, none for the refused")

if __name__ == "__main__":
    unittest.main()
