"""The sidecar's batched redeem (sidecar/redeemer.hpp) against the real stack: with one pooled
database connection held busy, the requests that wait for it are redeemed together in one
CALL alpaca.redeem_tickets, each still answered with its own credential's data, audited once and
single-use; and when one of them is refused (a replayed ticket, a forged one), the batch is
refused as a whole and each ticket is redeemed alone: the good ones answered, the bad ones
refused, nothing spent twice.

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
        cls.creds = [str(S.store(cls.app, cls.user, S.ALICE, S.fixture_secret(S.ALICE),
                                 account_name=f"batch {i}")) for i in range(N)]
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
        return self.su.execute("SELECT count(*) FROM alpaca.audit_log WHERE action = 'decrypt'"
                               " AND credential_id = ANY(%s::uuid[])", (self.creds,)).fetchone()[0]

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
        fixture = S.fixture_json(S.ALICE, "positions.json")
        for i, (outcome, body) in enumerate(answers):
            self.assertEqual(outcome, "ok", f"request {i}: {body[:200]!r}")
            self.assertEqual(json.loads(body), fixture)
        after = self.metrics()
        self.assertEqual(after["batches"] - before["batches"], 1)
        self.assertEqual(after["batched_tickets"] - before["batched_tickets"], N - 1)
        self.assertEqual(after["batches_refused"], before["batches_refused"])
        self.assertEqual(self.decrypt_rows(), rows + N, "one decrypt row a ticket")
        # Each is spent.
        for t in tickets[:2]:
            self.assertEqual(sidecar_request(SOCK, "positions", t)[0]["outcome"],
                             "ticket_rejected")

    def test_a_refused_ticket_refuses_the_batch_and_each_is_redeemed_alone(self):
        spent = self.issue(self.creds[0])
        self.assertEqual(sidecar_request(SOCK, "positions", spent)[0]["outcome"], "ok")
        good = [self.issue(c) for c in self.creds[1:]]
        forged = good[0][:-4] + ("AAAA" if not good[0].endswith("AAAA") else "BBBB")
        tickets = [self.issue(self.creds[0])] + good[:2] + [spent] + good[2:] + [forged]
        before, rows = self.metrics(), self.decrypt_rows()
        answers = self.held(tickets)
        outcomes = [a[0] for a in answers]
        expect = ["ok"] * 3 + ["ticket_rejected"] + ["ok"] * (len(good) - 2) + ["ticket_rejected"]
        self.assertEqual(outcomes, expect)
        after = self.metrics()
        self.assertEqual(after["batches"] - before["batches"], 1)
        self.assertEqual(after["batches_refused"] - before["batches_refused"], 1)
        self.assertEqual(self.decrypt_rows(), rows + len(good) + 1,
                         "one decrypt row for each good ticket, none for the refused")


if __name__ == "__main__":
    unittest.main()
