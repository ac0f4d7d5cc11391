"""Helpers for the gateway tests: turn the stack's gateway on, open sessions, make raw HTTP
requests to it (over TCP with any Host/Origin, or over its unix socket), and ask the stand-in
what it saw.

    import gateway_lib as G
    url = G.gateway()                                   # restarts the sidecar once
    token = G.open_session(conn, "alice", cred, "trade")
    status, headers, body = G.request("GET", "/v2/account", token)
"""
import http.client
import json
import os
import socket
import urllib.parse
import urllib.request
import ssl
import time
import unittest

import hardening_lib as H
import pga_stack as S


def gateway():
    """The gateway's URL (http://127.0.0.1:PORT); turns it on first when it is off."""
    return S.STACK.gateway_on()


def port():
    return urllib.parse.urlsplit(gateway()).port


def open_session(conn, user, cred, scope="read", ttl="1 hour", label=None):
    return S.as_user(conn, user, "SELECT alpaca_open_session(%s, %s, %s::interval, %s)",
                     (cred, scope, ttl, label))[0][0]


def session_id(conn, user, label):
    return S.as_user(conn, user, "SELECT id FROM alpaca_list_sessions() WHERE label = %s",
                     (label,))[0][0]


def _headers(token, headers, body, bearer):
    h = {}
    if token is not None:
        if bearer:
            h["Authorization"] = "Bearer " + token
        else:
            h["APCA-API-KEY-ID"] = token
            h["APCA-API-SECRET-KEY"] = "anything"
    if body is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    return h


def request(method, path, token=None, body=None, headers=None, bearer=False, raw_body=None):
    """One request to the gateway over TCP. headers may override Host. Returns (status,
    {lower-case header: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port(), timeout=30)
    data = raw_body if raw_body is not None else (
        json.dumps(body).encode() if body is not None else None)
    h = _headers(token, headers, body if raw_body is None else raw_body, bearer)
    skip_host = "Host" in h
    try:
        conn.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.unix_path)


def unix_request(method, path, token=None):
    gateway()
    conn = _UnixConnection(S.STACK.gateway_socket)
    try:
        conn.request(method, path, headers=_headers(token, None, None, False))
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def direct(method, path, key_id, secret, env="paper"):
    """The same call straight to the stand-in with the real keys (what it holds)."""
    base = S.ENV["PGA_STANDIN_PAPER_URL" if env == "paper" else "PGA_STANDIN_LIVE_URL"]
    ctx = ssl.create_default_context(cafile=S.ENV["PGA_CA_FILE"])
    req = urllib.request.Request(base + path, method=method, headers={
        "APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return json.loads(r.read())


def standin_requests():
    """How many requests the stand-in has answered so far (all listeners)."""
    return S.standin_stats()["total"]


def warm(token, in_a_row=6, attempts=40):
    """Requests until `in_a_row` answers in a row are not 503: after a PostgreSQL restart (an
    earlier test's) each stale pooled connection of the sidecar fails one request with 503."""
    ok = 0
    for _ in range(attempts):
        ok = ok + 1 if request("GET", "/v2/clock", token)[0] != 503 else 0
        if ok >= in_a_row:
            return
        time.sleep(0.05)
    raise AssertionError("the gateway keeps answering 503")


class OwnAccount:
    """A test-class mixin: a stand-in account of the class's own (a copy of Alice's fixture
    under a fresh canary key, so its orders are the class's alone), a user who stores it, and a
    read and a trade session of it. Set TAG, and REQUIRES to a function that says why the
    class cannot run here ("" when it can: the class is skipped otherwise); held() reads the
    account straight from the stand-in with the real keys."""
    TAG = "gw"
    REQUIRES = None

    @classmethod
    def setUpClass(cls):
        why = cls.REQUIRES() if cls.REQUIRES else ""
        if why:
            raise unittest.SkipTest(why)
        gateway()
        cls.key, cls.secret = H.canary_key_pair(cls.TAG)
        H.add_standin_fixture(cls.key, cls.secret, template=S.ALICE)
        H.standin_reload()
        cls.user = H.random_user(cls.TAG)
        with S.connect(role="app") as c:
            cls.cred = S.store(c, cls.user, cls.key, cls.secret)
            cls.read = open_session(c, cls.user, cls.cred, "read")
            cls.trade = open_session(c, cls.user, cls.cred, "trade")
        warm(cls.read)

    @classmethod
    def tearDownClass(cls):
        H.remove_standin_fixture(cls.key)
        H.standin_reload()

    def held(self, path):
        return direct("GET", path, self.key, self.secret)

    def order_ids(self, status):
        return sorted(o["id"] for o in self.held(f"/v2/orders?status={status}&limit=500"))


class NothingReaches:
    """A test-class mixin for attacks: Alice's credential stored by a fresh user (TAG) with a
    read and a trade session, an open `app` connection, and nothing_reached(), which fails when
    the stand-in answered a request since setUp."""
    TAG = "gwa"

    @classmethod
    def setUpClass(cls):
        gateway()
        cls.app = S.connect(role="app")
        cls.user = H.random_user(cls.TAG)
        cls.cred = S.store(cls.app, cls.user, S.ALICE, S.fixture_secret(S.ALICE))
        cls.read = open_session(cls.app, cls.user, cls.cred, "read")
        cls.trade = open_session(cls.app, cls.user, cls.cred, "trade")
        warm(cls.read)

    @classmethod
    def tearDownClass(cls):
        cls.app.close()

    def setUp(self):
        self.seen = standin_requests()

    def nothing_reached(self):
        self.assertEqual(standin_requests(), self.seen, "a request reached the stand-in")
