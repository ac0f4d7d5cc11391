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
