"""Attacks on the sidecar's unix socket by a local process that may connect to it: hold it with
idle connections, with slowloris clients that send a frame one byte a second, with a burst of
1000 connections (descriptor exhaustion), with clients that send a request and hang up, that
dawdle after an answer, and that send requests without ever reading the answers.

Each attack must fail: real calls (SQL through PostgreSQL, as an application does) keep their
normal latency and none fails, the accept loop keeps answering new connections at once, and the
sidecar closes the dawdlers itself within its read_timeout_ms.

Latency bound under attack: p50 <= 2 x the baseline p50 (measured right before, same
connection) + 5 ms. A real call is a handful of round trips through PostgreSQL and the sidecar;
anything that queues it behind an attacker's connection costs whole seconds (a read timeout),
so the margin tells "no effect" from "stalled" with room for the noise of a shared machine.

Run against a stack from scripts/stack.sh (stack.env sourced), test/integration on PYTHONPATH:
    cd test/security && PYTHONPATH=../integration python3 -m unittest -v test_sidecar_socket_dos
"""
import attack_lib  # noqa: F401
import hardening_lib as H
import pga_stack as S

import json
import multiprocessing
import os
import resource
import select
import socket
import statistics
import struct
import sys
import time
import unittest

ENV = os.environ
SOCK = ENV["PGA_SIDECAR_SOCKET"]
# The sidecar's default when the stack's file does not set it.
READ_TIMEOUT_S = int(H.sidecar_config_get("read_timeout_ms") or 2000) / 1000.0
MAX_PENDING = int(H.sidecar_config_get("max_pending_connections") or 256)
SLACK_S = 1.5           # poll wake-up and scheduling on a loaded machine
CALL_TIMEOUT_MS = 5000  # pg_alpaca.request_timeout_ms of the measured calls
MEASURE_BUDGET_S = 10   # a stalled sidecar must not make this file run for minutes
CALLS = 30
CANARY = "DOSCANARY7Q2X"  # in the slow clients' bytes; must never reach the log


frame = S.sidecar_frame
read_answer = S.read_sidecar_answer


def sidecar_fd_count():
    pid = H.sidecar_pid()
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class Holders:
    """Keeps n connections to the sidecar open, idle or (slow=True) having sent half a frame
    and then one more byte a second; opens a new one whenever the sidecar closes one, so the
    pressure lasts for the whole measurement. Records how long the first n lived.

    Runs in a child process, so that its loop never competes with the measured calls for the
    interpreter lock (that would be noise of the test, not of the sidecar)."""

    def __init__(self, n, slow=False):
        ctx = multiprocessing.get_context("fork")
        self.n, self.slow = n, slow
        self.halt, self.ready, self.first_done = ctx.Event(), ctx.Event(), ctx.Event()
        self._rx, self._tx = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=self._run, daemon=True)
        self.result = {"first_lifetimes": [], "first_open": n, "closed_total": 0,
                       "connect_failures": 0}
        header = ('{"v":1,"id":"%s","op":"account","ticket":"%s' % (CANARY, CANARY * 40)).encode()
        self.stream = (struct.pack(">I", 4 + len(header) + 64) +
                       struct.pack(">I", len(header) + 64) + header)

    def start(self):
        self.proc.start()

    def stop(self):
        self.halt.set()
        if self._rx.poll(15):
            self.result = self._rx.recv()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)

    # -- in the child ------------------------------------------------------------------------
    def _run(self):
        conns = {}  # fileno -> [sock, opened_at, last_send, first_generation, bytes_sent]
        res = {"first_lifetimes": [], "first_open": 0, "closed_total": 0, "connect_failures": 0}

        def open_one(first):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(SOCK)
            except OSError:
                res["connect_failures"] += 1
                s.close()
                return
            now = time.monotonic()
            sent = 0
            if self.slow:
                s.sendall(self.stream[:6])  # the length prefix and a little: a started frame
                sent = 6
            s.setblocking(False)
            conns[s.fileno()] = [s, now, now, first, sent]

        def closed(fd):
            s, opened, _, first, _ = conns.pop(fd)
            s.close()
            res["closed_total"] += 1
            if first:
                res["first_lifetimes"].append(time.monotonic() - opened)
            if not self.halt.is_set():
                open_one(False)

        for _ in range(self.n):
            open_one(True)
        self.ready.set()
        while not self.halt.is_set():
            now = time.monotonic()
            if self.slow:
                for fd, c in list(conns.items()):
                    if now - c[2] >= 1.0 and c[4] < len(self.stream):
                        try:
                            c[0].send(self.stream[c[4]:c[4] + 1])
                            c[4] += 1
                            c[2] = now
                        except BlockingIOError:
                            pass
                        except OSError:
                            closed(fd)
            p = select.poll()
            for fd in conns:
                p.register(fd, select.POLLIN)
            for fd, _ in p.poll(50):
                if fd not in conns:
                    continue
                try:
                    while conns[fd][0].recv(65536):
                        pass  # the sidecar's parting answer; EOF follows
                    closed(fd)
                except BlockingIOError:
                    pass
                except OSError:  # ECONNRESET: closed as well
                    closed(fd)
            if not any(c[3] for c in conns.values()):
                self.first_done.set()
        res["first_open"] = sum(1 for c in conns.values() if c[3])
        for c in conns.values():
            c[0].close()
        self._tx.send(res)


class SidecarSocketDos(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        H.sidecar_ensure_running()
        cls.pid = H.sidecar_pid()
        cls.conn = S.connect(role="app")
        cls.conn.execute(f"SET pg_alpaca.request_timeout_ms = {CALL_TIMEOUT_MS}")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 2048:  # 1000 sockets of our own
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))

    @classmethod
    def tearDownClass(cls):
        cls.conn.close()

    def setUp(self):
        # A key of its own per attack: Alpaca's (and the sidecar's) 200 calls a minute per
        # account must not be what slows the measured calls down.
        self.key, secret = H.canary_key_pair("dos")
        H.add_standin_fixture(self.key, secret)
        H.standin_reload()
        self.addCleanup(H.standin_reload)
        self.addCleanup(H.remove_standin_fixture, self.key)
        self.user = H.random_user("dos")
        with S.connect(role="app") as c:
            self.cred = S.store(c, self.user, self.key, secret)
        H.warm_sidecar(self.user, self.cred)
        self.log_start = os.path.getsize(ENV["PGA_SIDECAR_LOG"])
        self.t0 = time.monotonic()

    def tearDown(self):
        self.assertTrue(H.pid_alive(self.pid), "the sidecar died")
        self.assertEqual(H.sidecar_pid(), self.pid)
        with open(ENV["PGA_SIDECAR_LOG"], errors="replace") as f:
            f.seek(self.log_start)
            added = f.read()
        self.assertNotIn(CANARY, added, "frame bytes reached the sidecar log")
        # At most one connection_dropped line a second (plus the closing summary).
        drops = sum(1 for l in added.splitlines() if "connection_dropped" in l)
        elapsed = time.monotonic() - self.t0
        self.assertLessEqual(drops, int(elapsed) + 2, f"{drops} drop lines in {elapsed:.1f} s")

    # -- helpers -------------------------------------------------------------------------------
    def measure(self, n=CALLS):
        """n real calls one after the other; (latencies in ms, failures). Calls the budget does
        not leave time for count as failures."""
        lat, failed, start = [], 0, time.monotonic()
        for i in range(n):
            if time.monotonic() - start > MEASURE_BUDGET_S:
                failed += n - i
                break
            t = time.monotonic()
            try:
                rows = S.as_user(self.conn, self.user,
                                 "SELECT account_number FROM alpaca_account(%s)", (self.cred,))
                if len(rows) != 1:
                    failed += 1
            except Exception as e:  # noqa: BLE001 - any failure of a real call counts
                failed += 1
                self.last_error = e
            lat.append((time.monotonic() - t) * 1000)
        return lat, failed

    @staticmethod
    def summary(lat):
        return (statistics.median(lat), max(lat)) if lat else (float("inf"), float("inf"))

    def check_calls(self, name, base, under):
        (bp50, bmax), (up50, umax) = self.summary(base[0]), self.summary(under[0])
        bound = 2 * bp50 + 5
        print(f"\n[figures] {name}: baseline p50 {bp50:.1f} ms max {bmax:.1f} ms; under attack "
              f"p50 {up50:.1f} ms max {umax:.1f} ms, {under[1]} of {CALLS} failed "
              f"(bound p50 <= {bound:.1f} ms)", file=sys.stderr)
        self.assertEqual(base[1], 0, "baseline calls failed")
        self.assertEqual(under[1], 0, f"real calls failed under attack: {getattr(self, 'last_error', '')}")
        self.assertLessEqual(up50, bound, "real calls slowed down")

    def probe_accept(self, n=10):
        """Connect, send a malformed frame, time the answer: the accept loop's own latency."""
        times, unanswered = [], 0
        for _ in range(n):
            t = time.monotonic()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(2)
                s.connect(SOCK)
                s.sendall(frame({"v": 1}))
                ans = read_answer(s, 2)
                if not ans or ans.get("outcome") != "bad_request":
                    unanswered += 1
            except OSError:
                unanswered += 1
            finally:
                s.close()
            times.append((time.monotonic() - t) * 1000)
        return times, unanswered

    def check_probe(self, name, probe):
        times, unanswered = probe
        print(f"[figures] {name}: new connection answered in p50 {statistics.median(times):.1f} ms "
              f"max {max(times):.1f} ms, {unanswered} of {len(times)} unanswered", file=sys.stderr)
        self.assertEqual(unanswered, 0, "the accept loop did not answer new connections")
        self.assertLessEqual(max(times), 300, "the accept loop answered slowly")

    def holders_attack(self, name, slow):
        base = self.measure()
        h = Holders(100, slow=slow)
        h.start()
        try:
            self.assertTrue(h.ready.wait(10))
            time.sleep(0.3)  # let the sidecar accept them all
            under = self.measure()
            probe = self.probe_accept()
            # The first hundred are closed by the sidecar, none later than its read timeout.
            h.first_done.wait(READ_TIMEOUT_S + SLACK_S)
        finally:
            h.stop()
        r = h.result
        left, lives = r["first_open"], r["first_lifetimes"]
        life = max(lives) if lives else float("inf")
        print(f"\n[figures] {name}: {len(lives)} of 100 closed by the sidecar, longest lived "
              f"{life:.2f} s (bound {READ_TIMEOUT_S + SLACK_S:.1f} s), {r['closed_total']} "
              f"closed in all, {r['connect_failures']} connects failed", file=sys.stderr)
        self.check_calls(name, base, under)
        self.check_probe(name, probe)
        self.assertEqual(left, 0, f"{left} of the first 100 connections still open")
        self.assertLessEqual(life, READ_TIMEOUT_S + SLACK_S)

    # -- attacks -------------------------------------------------------------------------------
    def test_idle_connections_do_not_starve_real_calls(self):
        """README security model, "a local process that may connect to the
        sidecar's socket ... cannot starve real calls or the accept loop":
        100 connections that send nothing must not delay real calls or the accept loop, and
        are closed by the sidecar within read_timeout_ms."""
        self.holders_attack("100 idle connections", slow=False)

    def test_slowloris_clients_do_not_starve_real_calls(self):
        """README security model, "a local process that may connect to the
        sidecar's socket ... cannot starve real calls or the accept loop":
        100 clients sending a request frame one byte a second hold no worker and are closed
        within read_timeout_ms of connecting (the deadline covers the whole frame)."""
        self.holders_attack("100 slowloris clients", slow=True)

    def test_thousand_connections_do_not_exhaust_descriptors(self):
        """README security model, "a local process that may connect to the
        sidecar's socket ... cannot starve real calls or the accept loop":
        1000 connections opened as fast as possible and held must not exhaust the sidecar's
        descriptors or stall it; real calls work during and after."""
        base = self.measure(10)
        socks, failures, fds_peak = [], 0, 0
        start = time.monotonic()
        try:
            for _ in range(1000):
                if time.monotonic() - start > MEASURE_BUDGET_S:
                    failures += 1000 - len(socks) - failures
                    break
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(2)
                try:
                    s.connect(SOCK)
                    socks.append(s)
                except OSError:
                    failures += 1
                    s.close()
            opened_in = time.monotonic() - start
            time.sleep(0.3)
            fds_peak = sidecar_fd_count()
            under = self.measure(20)
            fds_peak = max(fds_peak, sidecar_fd_count())
        finally:
            for s in socks:
                s.close()
        after = self.measure(10)
        print(f"\n[figures] 1000 connections: {len(socks)} opened in {opened_in:.2f} s "
              f"({failures} refused), sidecar descriptors while held {fds_peak}; calls during "
              f"p50 {self.summary(under[0])[0]:.1f} ms ({under[1]} of 20 failed), after "
              f"p50 {self.summary(after[0])[0]:.1f} ms ({after[1]} of 10 failed); baseline "
              f"p50 {self.summary(base[0])[0]:.1f} ms", file=sys.stderr)
        self.assertEqual(under[1], 0, "real calls failed while 1000 connections were held")
        self.assertEqual(after[1], 0, "real calls failed after the burst")
        self.assertLessEqual(self.summary(under[0])[0], 2 * self.summary(base[0])[0] + 5)
        self.assertLess(fds_peak, MAX_PENDING + 128, "the sidecar holds every connection")
        self.check_probe("after 1000 connections", self.probe_accept())

    def test_clients_that_hang_up_hold_no_worker(self):
        """README security model, "a local process that may connect to the
        sidecar's socket ... cannot starve real calls or the accept loop":
        100 clients that send a whole request and hang up before the answer must not block a
        worker (no SIGPIPE, no wait for a reader that is gone)."""
        base = self.measure()
        for i in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(SOCK)
                s.sendall(frame({"v": 1, "id": f"hangup-{i}", "op": "account",
                                 "ticket": "pgat1.not-a-ticket"}))
            finally:
                s.close()
        under = self.measure()
        self.check_calls("100 requests then hang-up", base, under)
        self.check_probe("after hang-ups", self.probe_accept())

    def test_answered_clients_that_dawdle_on_their_next_frame_hold_no_worker(self):
        """README security model, "a local process that may connect to the
        sidecar's socket ... cannot starve real calls or the accept loop":
        a worker that sent an answer waits at most 2 ms on the connection for the client's next
        request. 40 clients (the stack has 16 workers), one after the other, take an answer and
        then either send nothing or at once the first bytes of a next frame and nothing more:
        each next client must still be answered at once (a worker held longer than its 2 ms
        would make the 17th wait for it), real calls keep their latency, new connections are
        answered at once, and the sidecar closes every partial dawdler within its read timeout
        (with a bad_request answer)."""
        base = self.measure()
        nxt = frame(('{"id": "' + CANARY + '", "v": 1, "op": "status", "ticket": ""}').encode())
        socks, answered, waits = [], 0, []
        try:
            for i in range(40):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(SOCK)
                t = time.monotonic()
                s.sendall(frame({"v": 1, "id": f"dawdle-{i}", "op": "status", "ticket": ""}))
                answered += (read_answer(s, 5) or {}).get("outcome") == "ok"
                waits.append((time.monotonic() - t) * 1000)
                if i % 2 == 0:
                    s.sendall(nxt[:24])  # the prefixes and the start of the header, canary in it
                socks.append((s, time.monotonic(), i % 2 == 0))
            under = self.measure()
            probe = self.probe_accept()
            lives, refused = [], 0
            for s, sent, partial in socks:
                if not partial:
                    continue
                ans = read_answer(s, READ_TIMEOUT_S + SLACK_S)
                refused += (ans or {}).get("outcome") == "bad_request"
                try:
                    s.settimeout(max(0.1, sent + READ_TIMEOUT_S + SLACK_S - time.monotonic()))
                    closed = s.recv(1) == b""
                except OSError:
                    closed = False
                lives.append(time.monotonic() - sent if closed else float("inf"))
        finally:
            for s, _, _ in socks:
                s.close()
        print(f"\n[figures] 40 answered clients, 20 silent and 20 dawdling on their next frame: "
              f"{answered} answered, the slowest in {max(waits):.1f} ms; {refused} of 20 refused "
              f"for the read timeout, longest lived {max(lives):.2f} s (bound "
              f"{READ_TIMEOUT_S + SLACK_S:.1f} s)", file=sys.stderr)
        self.assertEqual(answered, 40, "a status request was not answered")
        self.assertLess(max(waits), 300, "a client waited for a worker held by another")
        self.check_calls("answered clients dawdling on their next frame", base, under)
        self.check_probe("with answered clients dawdling", probe)
        self.assertEqual(refused, 20, "a dawdler was not refused for its read timeout")
        self.assertLessEqual(max(lives), READ_TIMEOUT_S + SLACK_S, "a dawdler was kept open")

    def test_clients_that_never_read_their_answers_hold_no_worker(self):
        """README security model, "a local process that may connect to the
        sidecar's socket ... cannot starve real calls or the accept loop":
        32 clients (twice the stack's workers) each send 400 requests in one go and never read
        an answer. Answered in turn, they would fill their sockets and hold every worker in a
        blocked write (5 s each); a client that asks again before it has read the previous
        answer is closed instead, so real calls keep their latency and every such connection is
        closed at once."""
        base = self.measure()
        burst = b"".join(frame({"v": 1, "id": f"pipe-{n}", "op": "status", "ticket": ""})
                         for n in range(400))
        socks = []
        try:
            for _ in range(32):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(SOCK)
                s.setblocking(False)
                try:
                    s.send(burst)  # as much as the socket takes; never a read
                except BlockingIOError:
                    pass
                socks.append(s)
            under = self.measure()
            probe = self.probe_accept()
            closed, answers = 0, []
            deadline = time.monotonic() + READ_TIMEOUT_S + SLACK_S
            for s in socks:
                s.setblocking(True)
                got = 0
                while True:
                    ans = read_answer(s, max(0.1, deadline - time.monotonic()))
                    if ans is None:
                        break
                    got += 1
                answers.append(got)
                try:
                    s.settimeout(0.1)
                    closed += s.recv(1) == b""
                except OSError:
                    pass
        finally:
            for s in socks:
                s.close()
        print(f"\n[figures] 32 clients sending 400 requests each and reading none: "
              f"{closed} closed by the sidecar, answers before the close at most {max(answers)}",
              file=sys.stderr)
        self.check_calls("clients that never read", base, under)
        self.check_probe("with clients that never read", probe)
        self.assertEqual(closed, 32, "a pipelining client's connection stayed open")
        self.assertLessEqual(max(answers), 3, "the sidecar kept answering a client that reads nothing")

    def test_answered_clients_that_stay_idle_are_bounded(self):
        """README security model, "a local process that may connect to the
        sidecar's socket ... cannot starve real calls or the accept loop":
        a connection whose request was answered stays open for its client's next request (a
        backend's kept connection), so an attacker can hold answered connections without the
        read timeout. 300 of them (each sent a request with a forged ticket and took the
        refusal) must not delay real calls or the accept loop, and the sidecar keeps at most
        max_pending_connections of them, closing the oldest idle ones first."""
        base = self.measure()
        socks, answered = [], 0
        try:
            for i in range(MAX_PENDING + 44):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(SOCK)
                s.sendall(frame({"v": 1, "id": f"idle-{i}", "op": "account",
                                 "ticket": "pgat1.not-a-ticket"}))
                answered += read_answer(s, 5) is not None
                socks.append(s)
            time.sleep(0.3)
            fds = sidecar_fd_count()
            under = self.measure()
            probe = self.probe_accept()
            p = select.poll()
            for s in socks:
                p.register(s.fileno(), select.POLLIN)
            closed = sum(1 for fd, ev in p.poll(100) if ev & (select.POLLIN | select.POLLHUP))
        finally:
            for s in socks:
                s.close()
        print(f"\n[figures] {len(socks)} answered idle connections: {answered} answered, "
              f"{closed} closed by the sidecar, its descriptors {fds}", file=sys.stderr)
        self.assertEqual(answered, len(socks), "a request was not answered")
        self.check_calls("answered idle connections", base, under)
        self.check_probe("with answered idle connections", probe)
        self.assertGreaterEqual(closed, len(socks) - MAX_PENDING, "more than max_pending kept")
        self.assertLess(fds, MAX_PENDING + 128, "the sidecar holds every connection")


if __name__ == "__main__":
    unittest.main()
