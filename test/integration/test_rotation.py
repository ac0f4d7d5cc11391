"""Online key rotation against the real stack (issue 4, item 2).

A new key is added to the stack's key file while applications keep storing and updating
credentials; `CALL alpaca_rotate_keys()` runs concurrently. Afterwards every secret is under the
primary key, every credential still decrypts to the last value its writer committed (no lost
update), and an interrupted rotation resumes where it stopped.
"""
import random
import threading
import time
import unittest

import psycopg

import pga_stack as S

USERS = [f"rot-user-{u:02d}" for u in range(10)]
PER_USER = 60
WRITERS = 4


def add_key():
    """Appends the next key to the stack's key file, as the file's owner, and reloads."""
    S.STACK.add_key()


def key_status():
    with S.connect(role="admin") as conn:
        return {r[0]: (r[1], r[3]) for r in
                conn.execute("SELECT key_id, is_primary, in_key_ring, secrets FROM alpaca_key_status()")}


def primary_id():
    return max(k for k, (is_primary, _) in key_status().items() if is_primary)


def redeem_all(expected):
    """Issues a ticket for each credential as its user and redeems it as the sidecar role;
    returns the credential ids whose plaintext differs from `expected` or does not decrypt."""
    bad = []
    with S.connect(role="app") as app, S.connect(role="alpaca_sidecar_login") as sidecar:
        for cred, (user, api_key, secret) in expected.items():
            try:
                ticket = S.as_user(app, user, "SELECT alpaca_issue_ticket(%s, 'account')", (cred,))[0][0]
                row = sidecar.execute("CALL alpaca.redeem_ticket(%s, 'account', NULL, NULL, NULL, NULL)",
                                      (ticket,)).fetchone()[2:]
                if row != (api_key, secret):
                    bad.append(cred)
            except psycopg.Error:
                bad.append(cred)
    return bad


class OnlineRotation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.expected = {}  # cred -> (user, api_key, committed secret)
        cls.accounts = {}  # user -> account id
        with S.connect(role="app") as conn:
            for u, user in enumerate(USERS):
                with conn.transaction():
                    conn.execute("SELECT alpaca_set_user(%s)", (user,))
                    acct = conn.execute("SELECT alpaca_create_account('rotation')").fetchone()[0]
                    for i in range(PER_USER):
                        api_key, secret = f"PKROT{u:02d}{i:05d}", f"rot-secret-{u}-{i}-v0"
                        cred = conn.execute("SELECT alpaca_store_credential(%s, %s, %s)",
                                            (acct, api_key, secret)).fetchone()[0]
                        cls.expected[cred] = (user, api_key, secret)
                cls.accounts[user] = acct

    def rotate(self, batch, on_connect=None):
        with S.connect(role="admin", application_name="pga-rotation-test") as conn:
            if on_connect:
                on_connect(conn)
            conn.execute(f"CALL alpaca_rotate_keys({int(batch)})")

    def test_rotation_under_concurrent_writes_loses_nothing(self):
        old_primary = primary_id()
        add_key()
        self.assertTrue(S.wait_until(lambda: primary_id() > old_primary, timeout=10),
                        "the new key did not become primary after reload")
        new_primary = primary_id()

        lock = threading.Lock()
        stop = threading.Event()
        writes = [0]
        errors = []

        def writer(seed):
            rng = random.Random(seed)
            # Each writer updates only its own share of the credentials: two writers updating
            # one credential would commit in one order and record their expected values in
            # maybe the other. The race under test is the rotation's against the writers.
            creds = [c for i, c in enumerate(sorted(self.expected)) if i % WRITERS == seed]
            try:
                with S.connect(role="app") as conn:
                    n = 0
                    while not stop.is_set():
                        n += 1
                        if rng.random() < 0.8:
                            cred = rng.choice(creds)
                            user, api_key, _ = self.expected[cred]
                            secret = f"rot-secret-updated-{seed}-{n}"
                            S.as_user(conn, user, "SELECT alpaca_update_credential(%s, NULL, %s)",
                                      (cred, secret))
                            with lock:
                                self.expected[cred] = (user, api_key, secret)
                        else:
                            user = rng.choice(USERS)
                            api_key, secret = f"PKNEW{seed}x{n:06d}", f"rot-new-{seed}-{n}"
                            cred = S.as_user(conn, user, "SELECT alpaca_store_credential(%s, %s, %s)",
                                             (self.accounts[user], api_key, secret))[0][0]
                            with lock:
                                self.expected[cred] = (user, api_key, secret)
                        with lock:
                            writes[0] += 1
            except Exception as e:  # reported by the main thread
                errors.append(repr(e))

        threads = [threading.Thread(target=writer, args=(s,)) for s in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        started = time.monotonic()
        self.rotate(batch=5)
        rotate_seconds = time.monotonic() - started
        stop.set()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertGreater(writes[0], 0, "the writers did nothing while the rotation ran")

        status = key_status()
        leftover = {k: n for k, (_, n) in status.items() if k != new_primary and n}
        self.assertEqual(leftover, {}, f"secrets left under older keys: {status}")
        bad = redeem_all(self.expected)
        print(f"[count] rotation: {len(self.expected)} credentials, {writes[0]} concurrent writes "
              f"during {rotate_seconds:.1f}s, lost updates or undecryptable: {len(bad)}")
        self.assertEqual(bad, [])
        with S.connect(role="admin") as conn:
            msg = conn.execute("SELECT alpaca_retire_key(%s)", (old_primary,)).fetchone()[0]
        self.assertIn(str(old_primary), msg)

    def test_interrupted_rotation_resumes(self):
        add_key()
        target = primary_id()
        # One credential a batch and a statement_timeout: the CALL is cancelled after some
        # batches have committed, as if the session had been killed.
        with self.assertRaises(psycopg.errors.QueryCanceled):
            self.rotate(batch=1, on_connect=lambda c: c.execute("SET statement_timeout = 150"))
        status = key_status()
        partial, total = status[target][1], sum(n for _, n in status.values())
        self.assertGreater(partial, 0, "no batch committed before the interruption")
        self.assertLess(partial, total, "the rotation finished before it could be interrupted")
        self.rotate(batch=1000)
        status = key_status()
        self.assertEqual({k: n for k, (_, n) in status.items() if k != target and n}, {})
        self.assertEqual(redeem_all(self.expected), [])
        print(f"[count] interrupted rotation: {partial} of {total} secrets done when cancelled, "
              f"resumed to 100%, every credential decrypts")


if __name__ == "__main__":
    unittest.main()
