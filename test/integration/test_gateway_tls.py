"""The gateway over TLS (gateway_tls_cert / gateway_tls_key, GnuTLS through libmicrohttpd):
its TCP address then speaks only TLS (a plain request gets no answer; the server offers TLS
1.3 and 1.2 only), with the same checks and answers as over plain HTTP; the unix socket stays plain. A
configuration with one of the two files, or a non-loopback address without TLS, is refused by
alpaca-sidecar --check-config (and unit-tested in sidecar_config_test.cpp).
"""
import http.client
import os
import shutil
import socket
import ssl
import unittest

import gateway_lib as G
import hardening_lib as H
import pga_stack as S


class GatewayTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        G.gateway()
        sc = S.STACK.sidecar
        st = S.STACK.state
        tls = os.path.join(S.STACK_DIR, "tls")
        cls.cert = os.path.join(S.STACK.sidecar_dir, "gateway-tls.crt")
        cls.key = os.path.join(S.STACK.sidecar_dir, "gateway-tls.key")
        for src, dst, mode in (("server.crt", cls.cert, 0o644), ("server.key", cls.key, 0o600)):
            shutil.copyfile(os.path.join(tls, src), dst)
            os.chmod(dst, mode)
            shutil.chown(dst, st["sidecar_user"])
        sc.set("gateway_tls_cert", cls.cert)
        sc.set("gateway_tls_key", cls.key)
        sc.restart()
        cls.app = S.connect(role="app")
        cls.user = H.random_user("tls")
        cls.cred = S.store(cls.app, cls.user, S.ALICE, S.fixture_secret(S.ALICE))
        cls.token = G.open_session(cls.app, cls.user, cls.cred, "read")

    @classmethod
    def tearDownClass(cls):
        sc = S.STACK.sidecar
        sc.set("gateway_tls_cert", None)
        sc.set("gateway_tls_key", None)
        sc.restart()
        for p in (cls.cert, cls.key):
            os.remove(p)
        cls.app.close()

    def https(self, method, path, headers=None, ctx=None):
        ctx = ctx or ssl.create_default_context(cafile=S.ENV["PGA_CA_FILE"])
        c = http.client.HTTPSConnection("127.0.0.1", G.port(), context=ctx, timeout=10)
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def test_tls_answers_like_plain(self):
        self.assertEqual(self.https("GET", "/v2/account", {"APCA-API-KEY-ID": self.token})[0], 200)
        self.assertEqual(self.https("GET", "/v2/account"),
                         (401, b'{"code":40110000,"message":"request is not authorized"}'))
        self.assertEqual(self.https("GET", "/v2/account", {"APCA-API-KEY-ID": self.token,
                                                           "Origin": "https://evil.example"})[0], 403)

    def test_plain_http_gets_nothing(self):
        with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
            G.request("GET", "/v2/account", self.token)

    def test_tls_versions(self):
        """TLS 1.3 by default; a client that stops at TLS 1.2 is served too."""
        ctx = ssl.create_default_context(cafile=S.ENV["PGA_CA_FILE"])
        with socket.create_connection(("127.0.0.1", G.port()), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                self.assertEqual(tls.version(), "TLSv1.3")
        ctx12 = ssl.create_default_context(cafile=S.ENV["PGA_CA_FILE"])
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        self.assertEqual(self.https("GET", "/v2/clock", {"APCA-API-KEY-ID": self.token}, ctx=ctx12)[0],
                         200)

    def test_unix_socket_stays_plain(self):
        self.assertEqual(G.unix_request("GET", "/v2/account", self.token)[0], 200)

    def test_check_config_refusals(self):
        sc = S.STACK.sidecar
        for key, value, says in (("gateway_tls_key", None, "go together"),
                                 ("gateway_listen", "0.0.0.0:1", None)):
            old = sc.get(key)
            sc.set(key, value)
            try:
                if says is None:  # with TLS configured a non-loopback address is accepted
                    sc.check_config()
                    continue
                with self.assertRaises(Exception) as cm:
                    sc.check_config()
                self.assertIn(says, str(cm.exception))
            finally:
                sc.set(key, old)
        sc.set("gateway_tls_cert", None)
        sc.set("gateway_tls_key", None)
        old = sc.get("gateway_listen")
        sc.set("gateway_listen", "0.0.0.0:1")
        try:
            with self.assertRaises(Exception) as cm:
                sc.check_config()
            self.assertIn("not a loopback address", str(cm.exception))
        finally:
            sc.set("gateway_listen", old)
            sc.set("gateway_tls_cert", self.cert)
            sc.set("gateway_tls_key", self.key)


if __name__ == "__main__":
    unittest.main()
