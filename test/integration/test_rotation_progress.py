"""Watching a key rotation from another session (operations issue, item 3).

Stores thousands of credentials, adds a key, runs CALL alpaca_rotate_keys() with a small batch
size in one session and samples alpaca_rotation_progress() from another while it runs: the
samples must show the run in progress (some done, some left, batches committed, a rate), move
forward only, and end finished with everything done; the rotating session gets a NOTICE every
10 batches, and none when client_min_messages is above NOTICE.
"""
import threading
import time
import unittest

import psycopg

import pga_stack as S

CREDENTIALS = 3000
BATCH = 5


def primary_id():
    with S.connect(role="admin") as c:
        return c.execute("SELECT key_id FROM alpaca_key_status() WHERE is_primary").fetchone()[0]


def new_primary():
    old = primary_id()
    S.STACK.add_key()
    assert S.wait_until(lambda: primary_id() > old, timeout=10), "the new key never became primary"


class RotationProgress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with S.connect(role="app") as c:
            with c.transaction():
                c.execute("SELECT alpaca_set_user('progress-user')")
                acct = c.execute("SELECT alpaca_create_account('progress')").fetchone()[0]
                c.execute("SELECT count(alpaca_store_credential(%s, 'PKPROG' || lpad(i::text, 14, '0'),"
                          " 'progress-secret-' || i)) FROM generate_series(1, %s) i",
                          (acct, CREDENTIALS))

    def rotate(self, batch, min_messages="notice"):
        notices = []
        with S.connect(role="admin") as conn:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            conn.execute(f"SET client_min_messages = {min_messages}")
            conn.execute(f"CALL alpaca_rotate_keys({int(batch)})")
            pid = conn.info.backend_pid
        return pid, notices

    def test_progress_is_visible_while_it_runs(self):
        new_primary()
        result = {}
        t = threading.Thread(target=lambda: result.update(zip(("pid", "notices"), self.rotate(BATCH))))
        samples = []
        cols = None
        with S.connect(role="admin") as watcher:
            t.start()
            while t.is_alive():
                cur = watcher.execute("SELECT * FROM alpaca_rotation_progress()")
                cols = [d.name for d in cur.description]
                samples += [dict(zip(cols, r)) for r in cur.fetchall()]
                time.sleep(0.02)
            t.join()
            final = [dict(zip(cols, r)) for r in
                     watcher.execute("SELECT * FROM alpaca_rotation_progress()").fetchall()]
        mine = [s for s in samples if s["pid"] == result["pid"]]
        self.assertTrue(mine, "no sample of the rotation")
        running = [s for s in mine if s["running"] and 0 < s["credentials_done"] < s["credentials_total"]]
        self.assertGreaterEqual(len(running), 3, f"too few mid-run samples of {len(mine)}")
        for s in running:
            self.assertGreaterEqual(s["credentials_total"], CREDENTIALS)
            self.assertEqual(s["credentials_left"],
                             s["credentials_total"] - s["credentials_done"] - s["credentials_failed"])
            self.assertEqual(s["secrets_left"], 2 * s["credentials_left"])
            self.assertEqual(s["secrets_done"], 2 * s["credentials_done"])
            self.assertGreaterEqual(s["batches_committed"], s["credentials_done"] // BATCH)
            self.assertIsNone(s["finished_at"])
            self.assertEqual(s["batch_size"], BATCH)
        self.assertTrue(any(s["credentials_per_second"] and s["credentials_per_second"] > 0
                            for s in running))
        done = [s["credentials_done"] for s in mine]
        batches = [s["batches_committed"] for s in mine]
        self.assertEqual(done, sorted(done), "progress went backwards")
        self.assertEqual(batches, sorted(batches))
        end = [s for s in final if s["pid"] == result["pid"]][0]
        self.assertFalse(end["running"])
        self.assertIsNotNone(end["finished_at"])
        self.assertEqual(end["credentials_left"], 0)
        self.assertEqual(end["credentials_done"], end["credentials_total"])
        self.assertGreaterEqual(end["batches_committed"], CREDENTIALS // BATCH)
        progress_notices = [n for n in result["notices"] if " batches, " in n]
        self.assertGreaterEqual(len(progress_notices), end["batches_committed"] // 10 - 1)
        self.assertRegex(progress_notices[0],
                         r"^alpaca_rotate_keys: 50 of \d+ credentials re-encrypted in 10 batches, \d+ left$")

    def test_no_notice_above_client_min_messages(self):
        new_primary()
        pid, notices = self.rotate(50, min_messages="warning")
        self.assertEqual(notices, [])
        with S.connect(role="admin") as c:
            end = c.execute("SELECT credentials_done, credentials_left, finished_at IS NOT NULL "
                            "FROM alpaca_rotation_progress() WHERE pid = %s", (pid,)).fetchone()
        self.assertGreaterEqual(end[0], CREDENTIALS)
        self.assertEqual(end[1:], (0, True))

    def test_only_admins_see_it(self):
        with S.connect(role="app") as c, self.assertRaises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT * FROM alpaca_rotation_progress()")
        with S.connect(role="app") as c, self.assertRaises(psycopg.errors.InsufficientPrivilege):
            c.execute("SELECT * FROM alpaca.rotation_progress")


if __name__ == "__main__":
    unittest.main()
