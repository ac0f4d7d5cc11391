"""The backend's side of the sidecar protocol (extension/sidecar_transport.cpp) against a fake
sidecar on a socket of its own: answer frames are read from the socket straight into the text
value alpaca._alpaca_get returns, whatever pieces they arrive in, and every malformed frame ends
the call with its SQLSTATE (08P01 malformed, 08006 connection lost, 22021 not UTF-8), never
with a crash, a hang or bytes that were not the answer's body.

The superuser points its own session at the fake socket (pg_alpaca.sidecar_socket); the real
stack is not touched.
"""
import json
import os
import socket
import struct
import threading
import unittest

import psycopg

import pga_stack as S

CRED = "00000000-0000-0000-0000-0000000000f1"


def frame(header, body=b"", header_len=None, frame_len=None):
    """An answer frame: u32 length | u32 header length | header JSON | body."""
    h = json.dumps(header).encode() if isinstance(header, dict) else header
    payload = struct.pack(">I", len(h) if header_len is None else header_len) + h + body
    return struct.pack(">I", len(payload) if frame_len is None else frame_len) + payload


def ok_header(request_id, status=200):
    return {"v": 1, "id": request_id, "outcome": "ok", "http_status": status, "attempts": 1,
            "message": ""}


class FakeSidecar:
    """Accepts one connection, reads the request frame, and answers with answer(request_id)
    (a list of byte strings, each sent with its own send call); then closes."""

    def __init__(self, answer):
        self.dir, self.path, self.sock = S.fake_sidecar_socket("pga-frames-")
        self.answer = answer
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            c, _ = self.sock.accept()
            with c, c.makefile("rb") as f:
                n = struct.unpack(">I", f.read(4))[0]
                payload = f.read(n)
                hlen = struct.unpack(">I", payload[:4])[0]
                request_id = json.loads(payload[4:4 + hlen])["id"]
                for piece in self.answer(request_id):
                    c.sendall(piece)
        except Exception as e:  # reported by close()
            self.error = e

    def close(self):
        self.thread.join(timeout=30)
        S.remove_fake_socket(self.dir, self.sock)
        if self.error is not None:
            raise self.error


class SidecarFramesTest(unittest.TestCase):
    def call(self, answer, timeout_ms=5000):
        """alpaca._alpaca_get through a fake sidecar answering with answer(request_id)."""
        fake = FakeSidecar(answer)
        try:
            with S.connect() as conn:
                conn.execute("SELECT set_config('pg_alpaca.sidecar_socket', %s, false)",
                             (fake.path,))
                conn.execute("SELECT set_config('pg_alpaca.request_timeout_ms', %s, false)",
                             (str(timeout_ms),))
                return conn.execute("SELECT alpaca._alpaca_get(%s::uuid, 'clock', 'ticket')",
                                    (CRED,)).fetchone()[0]
        finally:
            fake.close()

    def assert_sqlstate(self, sqlstate, answer):
        with self.assertRaises(psycopg.Error) as cm:
            self.call(answer)
        self.assertEqual(cm.exception.sqlstate, sqlstate, str(cm.exception))
        return cm.exception

    def test_large_body_in_small_pieces(self):
        body = json.dumps({"blob": "0123456789abcdef" * 200000}).encode()  # 3.2 MB

        def answer(rid):
            data = frame(ok_header(rid), body)
            return [data[i:i + 997] for i in range(0, len(data), 997)]

        self.assertEqual(self.call(answer), body.decode())

    def test_prefix_and_header_split_between_sends(self):
        body = b'{"is_open": true}'

        def answer(rid):
            data = frame(ok_header(rid), body)
            return [data[:3], data[3:6], data[6:20], data[20:]]

        self.assertEqual(self.call(answer), body.decode())

    def test_short_answer_in_one_piece(self):
        self.assertEqual(self.call(lambda rid: [frame(ok_header(rid), b'[]')]), "[]")

    def test_empty_body(self):
        self.assertEqual(self.call(lambda rid: [frame(ok_header(rid), b"")]), "")

    def test_utf8_body_comes_back_whole(self):
        body = json.dumps({"name": "Société Générale ✓ 株式会社"}, ensure_ascii=False).encode()
        self.assertEqual(self.call(lambda rid: [frame(ok_header(rid), body)]), body.decode())

    def test_bytes_after_the_frame_are_not_part_of_the_body(self):
        got = self.call(lambda rid: [frame(ok_header(rid), b'{"a":1}') + b'{"b":2} trailing'])
        self.assertEqual(got, '{"a":1}')

    def test_header_length_beyond_the_payload_is_08p01(self):
        self.assert_sqlstate("08P01", lambda rid: [frame(ok_header(rid), b"{}", header_len=5000)])

    def test_zero_header_length_is_08p01(self):
        self.assert_sqlstate("08P01", lambda rid: [frame(ok_header(rid), b"{}", header_len=0)])

    def test_frame_shorter_than_its_header_length_field_is_08p01(self):
        # Frame length 2: not even room for the header length; the backend must not wait for it.
        self.assert_sqlstate("08P01", lambda rid: [struct.pack(">I", 2) + b"\x00\x00\x00\x00"])

    def test_empty_frame_is_08p01(self):
        self.assert_sqlstate("08P01", lambda rid: [struct.pack(">I", 0) + b"\x00" * 8])

    def test_frame_over_the_limit_is_08p01(self):
        self.assert_sqlstate("08P01", lambda rid: [struct.pack(">I", 16 * 1024 * 1024 + 1) +
                                                    b"\x00" * 8])

    def test_header_that_is_not_json_is_08p01(self):
        self.assert_sqlstate("08P01", lambda rid: [frame(b"{not json", b"{}")])

    def test_answer_for_another_request_is_08p01(self):
        e = self.assert_sqlstate("08P01", lambda rid: [frame(ok_header("someone-else"), b"{}")])
        self.assertIn("another request id", e.diag.message_detail or "")

    def test_closed_in_the_middle_of_the_body_is_08006(self):
        def answer(rid):
            data = frame(ok_header(rid), b"x" * 100000)
            return [data[:5000]]  # then the connection closes

        self.assert_sqlstate("08006", answer)

    def test_closed_before_the_lengths_arrived_is_08006(self):
        self.assert_sqlstate("08006", lambda rid: [b"\x00\x00"])

    def test_body_that_is_not_utf8_is_refused(self):
        self.assert_sqlstate("22021", lambda rid: [frame(ok_header(rid), b'{"a":"\xff\xfe"}')])

    def test_body_with_a_nul_byte_is_refused(self):
        self.assert_sqlstate("22021", lambda rid: [frame(ok_header(rid), b'{"a":"\x00"}')])

    def test_error_answer_keeps_alpacas_message(self):
        body = json.dumps({"code": 42210000, "message": "invalid status"}).encode()
        e = self.assert_sqlstate("22023", lambda rid: [frame(ok_header(rid, 422), body)])
        self.assertIn("invalid status", str(e))

    def test_no_descriptor_is_left_behind_on_any_way_out(self):
        """Each call opens a socket and a wait set (an epoll descriptor) that lives as long as
        the socket; both are freed on every way out: a malformed frame, a hang-up, a request
        timeout and a cancel (statement_timeout) while the call waits. An answer keeps its
        connection for the next look-up: one socket and one wait set, never more, however many
        answers came (each fake sidecar closes it, and the next call opens a fresh one)."""
        def slow(rid):
            threading.Event().wait(1.5)
            return []

        endings = [
            ("answer", lambda rid: [frame(ok_header(rid), b'{"a":1}')], None, None),
            ("malformed", lambda rid: [frame(ok_header(rid), header_len=0)], "08P01", None),
            ("hang-up", lambda rid: [b"\x00\x00"], "08006", None),
            ("request timeout", slow, "57014", None),
            ("cancel", slow, "57014", "200ms"),
        ]

        def fds(pid):
            links = [os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")]
            return len(links), sum("eventpoll" in l for l in links)

        with S.connect() as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

            def one(answer, timeout):
                fake = FakeSidecar(answer)
                try:
                    conn.execute("SELECT set_config('pg_alpaca.sidecar_socket', %s, false)",
                                 (fake.path,))
                    conn.execute("SELECT set_config('statement_timeout', %s, false)",
                                 (timeout or "0",))
                    conn.execute("SELECT set_config('pg_alpaca.request_timeout_ms', %s, false)",
                                 ("300" if answer is slow and not timeout else "5000",))
                    conn.execute("SELECT alpaca._alpaca_get(%s::uuid, 'clock', 'ticket')",
                                 (CRED,))
                    return None
                except psycopg.Error as e:
                    return e.sqlstate
                finally:
                    fake.close()

            one(endings[1][1], None)  # whatever a first call opens for good
            before = fds(pid)
            for _ in range(3):
                for name, answer, sqlstate, timeout in endings:
                    self.assertEqual(one(answer, timeout), sqlstate, name)
            self.assertEqual(fds(pid), before)  # the last way out was a cancel: nothing kept
            for _ in range(3):
                self.assertIsNone(one(endings[0][1], None))
                self.assertEqual(fds(pid), (before[0] + 2, before[1] + 1), "one kept connection")
            self.assertEqual(one(endings[1][1], None), "08P01")
            self.assertEqual(fds(pid), before)  # a malformed answer does not keep it


if __name__ == "__main__":
    unittest.main()
