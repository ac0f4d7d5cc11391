"""The backend keeps its connection to the sidecar for its next look-up
(extension/sidecar_transport.cpp, sidecar/server.cpp): look-ups in one session share one
connection; a sidecar restart or hang-up in between costs nothing but a fresh connection; an
order never goes on a kept connection and never goes twice, even when the kept one is dead.

A fake sidecar on a socket of its own records which connection each request came on; the real
stack checks that the real sidecar keeps the connection open and survives a restart, and that
whichever way a kept connection's next frame arrives (at once, in pieces, malformed, with a bad
length), the real sidecar answers it as it answers a new connection's: a worker that answered
lingers for the next frame and serves it when it is whole, and leaves every other case to the
poll thread (sidecar/server.hpp); a request sent before the previous answer was read closes the
connection (a backend never pipelines).
"""
import json
import os
import socket
import struct
import threading
import unittest

import hardening_lib as H
import pga_stack as S

CRED = "00000000-0000-0000-0000-0000000000f2"


class RecordingSidecar:
    """Answers every request frame on every connection with a 200 and '{}' and records
    (connection number, operation); close_after: connection numbers to hang up on after their
    first answer (as a sidecar that restarts between two calls)."""

    def __init__(self, close_after=()):
        self.dir, self.path, self.sock = S.fake_sidecar_socket("pga-kept-")
        self.close_after = set(close_after)
        self.seen = []
        self.lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(c, self.accepted), daemon=True).start()

    def _serve(self, c, number):
        with c, c.makefile("rb") as f:
            while True:
                head = f.read(4)
                if len(head) < 4:
                    return
                payload = f.read(struct.unpack(">I", head)[0])
                hlen = struct.unpack(">I", payload[:4])[0]
                req = json.loads(payload[4:4 + hlen])
                with self.lock:
                    self.seen.append((number, req["op"]))
                h = json.dumps({"v": 1, "id": req["id"], "outcome": "ok", "http_status": 200,
                                "attempts": 1, "message": ""}).encode()
                body = b"{}"
                p = struct.pack(">I", len(h)) + h + body
                c.sendall(struct.pack(">I", len(p)) + p)
                if number in self.close_after:
                    return

    def close(self):
        S.remove_fake_socket(self.dir, self.sock)


class KeptConnectionTest(unittest.TestCase):
    def session(self, fake):
        conn = S.connect()
        conn.execute("SELECT set_config('pg_alpaca.sidecar_socket', %s, false)", (fake.path,))
        return conn

    def get(self, conn, op="clock"):
        return conn.execute("SELECT alpaca._alpaca_get(%s::uuid, %s, 'ticket')",
                            (CRED, op)).fetchone()[0]

    def order(self, conn):
        return conn.execute(
            "SELECT alpaca._alpaca_send(%s::uuid, 'submit_order', 'ticket', NULL, '{}', %s)",
            (CRED, json.dumps({"symbol": "AAPL", "qty": "1", "side": "buy", "type": "market",
                               "time_in_force": "day", "client_order_id": "kept-1"}))).fetchone()[0]

    def test_look_ups_share_one_connection(self):
        fake = RecordingSidecar()
        try:
            with self.session(fake) as conn:
                for op in ("clock", "account", "positions", "orders", "clock"):
                    self.assertEqual(self.get(conn, op), "{}")
            self.assertEqual([n for n, _ in fake.seen], [1] * 5, fake.seen)
        finally:
            fake.close()

    def test_an_order_goes_on_a_fresh_connection_and_once(self):
        fake = RecordingSidecar()
        try:
            with self.session(fake) as conn:
                self.get(conn)
                self.assertEqual(self.order(conn), "{}")
                self.get(conn)
                self.assertEqual(self.order(conn), "{}")
            # Look-ups on connection 1; each order on its own, once.
            self.assertEqual(fake.seen, [(1, "clock"), (2, "submit_order"), (1, "clock"),
                                         (3, "submit_order")])
        finally:
            fake.close()

    def test_a_hung_up_kept_connection_costs_a_fresh_one(self):
        """The fake hangs up after the first answer on connection 1 (a sidecar restart): the
        next look-up goes once, on connection 2, and succeeds."""
        fake = RecordingSidecar(close_after={1})
        try:
            with self.session(fake) as conn:
                self.get(conn)
                threading.Event().wait(0.2)  # the hang-up has arrived
                self.assertEqual(self.get(conn, "account"), "{}")
                self.assertEqual(self.get(conn, "positions"), "{}")
            self.assertEqual(fake.seen, [(1, "clock"), (2, "account"), (2, "positions")])
        finally:
            fake.close()

    def test_the_real_sidecar_keeps_it_and_survives_a_restart(self):
        """Against the stack's sidecar: three calls use one socket of the backend's; after the
        sidecar restarts, the next call works on a fresh one."""
        user = H.random_user("kept")
        with S.connect() as admin:
            cred = S.store(admin, user, S.ALICE, S.fixture_secret(S.ALICE))
        H.warm_sidecar(user, cred)

        def sockets(pid):
            links = [os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")]
            return {l for l in links if l.startswith("socket:")}

        with S.connect("app") as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            call = "SELECT count(*) FROM alpaca_positions(%s)"
            before = sockets(pid)
            S.as_user(conn, user, call, (cred,))
            kept = sockets(pid) - before
            self.assertEqual(len(kept), 1, "one socket to the sidecar after a call")
            for _ in range(2):
                S.as_user(conn, user, call, (cred,))
                self.assertEqual(sockets(pid) - before, kept, "the same socket for each call")
            H.STACK.sidecar.restart()
            self.assertEqual(S.as_user(conn, user, call, (cred,))[0][0],
                             len(S.fixture_json(S.ALICE, "positions.json")))
            now = sockets(pid) - before
            self.assertEqual(len(now), 1)
            self.assertNotEqual(now, kept, "a fresh connection to the restarted sidecar")

    def test_the_real_sidecar_answers_each_next_frame_however_it_comes(self):
        """One raw connection to the stack's sidecar, status requests (no ticket needed)."""
        frame, answer = S.sidecar_frame, S.read_sidecar_answer

        def closed(s):
            """The sidecar closed s: end of file, or a reset (it closed with our bytes unread)."""
            s.settimeout(5)
            try:
                return s.recv(1) == b""
            except ConnectionResetError:
                return True

        def status(n):
            return frame({"v": 1, "id": f"next-{n}", "op": "status", "ticket": ""})

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(os.environ["PGA_SIDECAR_SOCKET"])
            s.sendall(status(1))
            self.assertEqual(answer(s, 5)["id"], "next-1")
            for n in range(2, 12):  # at once: the lingering worker's (mostly)
                s.sendall(status(n))
                got = answer(s, 5)
                self.assertEqual((got["id"], got["outcome"]), (f"next-{n}", "ok"))
            whole = status(30)
            for cut in (2, 4, 9, len(whole) - 1):  # in two pieces, the second 30 ms later
                s.sendall(whole[:cut])
                threading.Event().wait(0.03)
                s.sendall(whole[cut:])
                got = answer(s, 5)
                self.assertEqual((got["id"], got["outcome"]), ("next-30", "ok"), f"cut at {cut}")
            log_start = os.path.getsize(os.environ["PGA_SIDECAR_LOG"])
            s.sendall(frame({"v": 1, "id": "bad-1", "op": "no_such_op", "ticket": ""}))  # refused, then closed
            self.assertEqual(answer(s, 5)["outcome"], "bad_request")
            self.assertTrue(closed(s), "a refused frame's connection is closed")
        with open(os.environ["PGA_SIDECAR_LOG"], errors="replace") as f:
            f.seek(log_start)
            self.assertIn("bad_request", f.read(), "the refusal is logged as any bad frame is")
        for prefix in (struct.pack(">I", 0), struct.pack(">I", 64 * 1024 + 1)):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:  # a bad length, kept
                s.connect(os.environ["PGA_SIDECAR_SOCKET"])
                s.sendall(status(40))
                self.assertEqual(answer(s, 5)["id"], "next-40")
                s.sendall(prefix + b"{}")
                self.assertEqual(answer(s, 5)["outcome"], "bad_request")
                self.assertTrue(closed(s), "a bad length's connection is closed")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:  # asks before reading
            s.connect(os.environ["PGA_SIDECAR_SOCKET"])
            s.sendall(status(50) + status(51))
            threading.Event().wait(0.2)  # both answered by now, were the second served
            self.assertEqual(answer(s, 5)["id"], "next-50")
            self.assertEqual(answer(s, 5)["outcome"], "bad_request", "the second was not served")
            self.assertTrue(closed(s), "a client asking before it read is closed")


if __name__ == "__main__":
    unittest.main()
