"""Attacks on the MCP server at /mcp (issue 11, part 3): each asserts that nothing reached
Alpaca (the stand-in's request count is unchanged) unless said otherwise.

  * no token, a malformed one, a random one of the right shape, the token as APCA-API-KEY-ID
    (the REST front's header, not MCP's): 401 with WWW-Authenticate: Bearer;
  * a read session calling place_order and the other trading tools: not listed, and refused
    as unknown tools when called anyway;
  * schema-violating arguments for every tool: tool errors, nothing sent;
  * a foreign Origin and a foreign Host (DNS rebinding): 403 before any MCP processing;
  * hostile bodies (deep nesting, huge numbers, invalid UTF-8, control characters, batches
    where the protocol version has none, oversized): clean JSON-RPC errors, and the sidecar
    still answers;
  * a revoked session: refused at the very next request;
  * a trade session cancelling another credential's order: Alpaca's 404 as a tool error, the
    other account untouched;
  * no answer ever carries the token.
"""
import json
import unittest

import attack_lib  # noqa: F401
import gateway_lib as G
import hardening_lib as H
import pga_stack as S

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}


def rpc(method, params=None, id_=1):
    m = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        m["params"] = params
    return json.dumps(m).encode()


class McpAttacks(G.NothingReaches, unittest.TestCase):
    TAG = "mcpa"

    def post(self, raw, token, headers=None, bearer=True):
        h = dict(MCP_HEADERS, **{"Content-Type": "application/json"})
        h.update(headers or {})
        status, hdrs, body = G.request("POST", "/mcp", token, headers=h, bearer=bearer, raw_body=raw)
        for tok in (self.read, self.trade):
            self.assertNotIn(tok.encode(), body, "the answer carries a token")
            self.assertNotIn(tok, json.dumps(hdrs))
        return status, hdrs, body

    def call(self, token, name, arguments):
        status, _, body = self.post(rpc("tools/call", {"name": name, "arguments": arguments}), token)
        self.assertEqual(status, 200, body[:300])
        return json.loads(body)

    def test_no_or_bad_token_is_401_with_www_authenticate(self):
        cases = [(None, True, 'Bearer realm="pg_alpaca"'),
                 ("not-a-token", True, 'error="invalid_token"'),
                 ("pgas_" + H.rand_text(38), True, 'error="invalid_token"'),
                 (self.read, False, 'Bearer realm="pg_alpaca"')]  # as APCA-API-KEY-ID
        for token, bearer, www in cases:
            status, hdrs, body = self.post(rpc("tools/list"), token, bearer=bearer)
            self.assertEqual(status, 401, body)
            self.assertIn(www, hdrs.get("www-authenticate", ""), token)
            self.assertTrue(hdrs["www-authenticate"].startswith('Bearer realm="pg_alpaca"'))
        self.nothing_reached()
        H.count(f"mcp: {len(cases)} requests without a valid bearer token: 401, 0 reached Alpaca")

    def test_read_session_cannot_trade(self):
        _, _, body = self.post(rpc("tools/list"), self.read)
        names = {t["name"] for t in json.loads(body)["result"]["tools"]}
        self.assertFalse(names & {"place_order", "replace_order", "cancel_order", "close_position"})
        order_id = "61e69015-8549-4bfd-b9c3-01e75843f47d"
        for name, args in (("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1"}),
                           ("replace_order", {"order_id": order_id, "qty": "2"}),
                           ("cancel_order", {"order_id": order_id}),
                           ("close_position", {"symbol": "AAPL"})):
            doc = self.call(self.read, name, args)
            self.assertEqual(doc["error"]["code"], -32602, doc)
            self.assertIn("Unknown tool", doc["error"]["message"])
        self.nothing_reached()
        H.count("mcp: read session calling 4 trading tools: refused, 0 reached Alpaca")

    def test_schema_violations_send_nothing(self):
        uuid_ = "61e69015-8549-4bfd-b9c3-01e75843f47d"
        cases = [
            ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1", "extra": 1}),
            ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1e9"}),
            ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "NaN"}),
            ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "-5"}),
            ("place_order", {"symbol": "AAPL", "side": "buy", "qty": {"$gt": 0}}),
            ("place_order", {"symbol": "AAPL", "side": "buy", "qty": ["1"]}),
            ("place_order", {"symbol": "AAPL", "side": "buy", "notional": "1", "qty": "1"}),
            ("place_order", {"symbol": "AAPL\r\nX-Evil: 1", "side": "buy", "qty": "1"}),
            ("place_order", {"symbol": "A" * 5000, "side": "buy", "qty": "1"}),
            ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1", "client_order_id": "x" * 129}),
            ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1", "type": "market\"}"}),
            ("replace_order", {"order_id": uuid_}),
            ("replace_order", {"order_id": "../../v2/account", "qty": "1"}),
            ("cancel_order", {"order_id": uuid_ + "?x=1"}),
            ("close_position", {"symbol": "AAPL/../../account"}),
            ("close_position", {"symbol": "AAPL", "percentage": "1000"}),
            ("get_order", {"order_id": "%2e%2e"}),
            ("get_orders", {"status": "open&limit=10000"}),
            ("get_latest_quote", {"symbol": "AAPL", "feed": "sip&x=1"}),
            ("get_account", {"anything": True}),
        ]
        for name, args in cases:
            doc = self.call(self.trade, name, args)
            res = doc.get("result")
            self.assertIsNotNone(res, doc)
            self.assertIs(res.get("isError"), True, (name, args))
            self.assertIn("nothing was sent to Alpaca", res["content"][0]["text"])
        self.nothing_reached()
        H.count(f"mcp: {len(cases)} schema-violating tool calls: refused, 0 reached Alpaca")

    def test_foreign_origin_and_host(self):
        port = G.port()
        for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                        {"Host": f"evil.example:{port}"}, {"Host": "rebind.attacker.example"}):
            status, _, body = self.post(rpc("tools/call", {"name": "get_account"}), self.trade,
                                        headers=headers)
            self.assertEqual(status, 403, (headers, body))
            self.assertNotIn(b"jsonrpc", body)  # refused before the MCP server saw it
        self.nothing_reached()

    def test_hostile_bodies(self):
        bodies = [b"[" * 100000 + b"]" * 100000,
                  b'{"jsonrpc":"2.0","id":1,"method":"ping","params":' + b'{"a":' * 1000 + b"1" + b"}" * 1001,
                  b'{"jsonrpc":"2.0","id":1e400,"method":"ping"}',
                  b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_account\xff"}}',
                  b'{"jsonrpc":"2.0","id":1,"method":"ping\x01"}',
                  b'{"jsonrpc":"2.0","id":1,"method":"ping","id":2}',
                  b'{"jsonrpc":"2.0","id":"' + b"9" * 100000 + b'","method":"ping"}',
                  b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',  # no batches in 2025-11-25
                  b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_order",'
                  b'"arguments":{"order_id":"\\ud800"}}}',
                  b"\xef\xbb\xbf{}", b"", b"null"]
        for raw in bodies:
            status, _, body = self.post(raw, self.trade)
            self.assertIn(status, (400, 413), raw[:60])
            if status == 400:
                self.assertIn(json.loads(body)["error"]["code"], (-32700, -32600), raw[:60])
        # An unsupported protocol version, a wrong media type.
        status, _, _ = self.post(rpc("ping"), self.trade, headers={"MCP-Protocol-Version": "1999-01-01"})
        self.assertEqual(status, 400)
        status, _, _ = self.post(rpc("ping"), self.trade, headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        self.nothing_reached()
        # Still answering.
        status, _, body = self.post(rpc("ping"), self.trade)
        self.assertEqual((status, json.loads(body)["result"]), (200, {}))

    def test_revoked_session_is_refused_at_the_next_request(self):
        token = G.open_session(self.app, self.user, self.cred, "trade", label="mcp-atk-revoked")
        sid = G.session_id(self.app, self.user, "mcp-atk-revoked")
        status, _, _ = self.post(rpc("tools/list"), token)
        self.assertEqual(status, 200)
        S.as_user(self.app, self.user, "SELECT alpaca_revoke_session(%s)", (sid,))
        self.seen = G.standin_requests()
        status, hdrs, _ = self.post(rpc("tools/call", {"name": "place_order", "arguments": {
            "symbol": "AAPL", "side": "buy", "qty": "1", "type": "limit", "limit_price": "1"}}),
            token)
        self.assertEqual(status, 401)
        self.assertIn('error="invalid_token"', hdrs["www-authenticate"])
        self.nothing_reached()

    def test_another_credentials_order(self):
        other = G.direct("GET", "/v2/orders?status=open&limit=1", S.BOB, S.fixture_secret(S.BOB))[0]
        by_key = S.standin_stats()["by_key"].get(S.BOB, 0)
        doc = self.call(self.trade, "cancel_order", {"order_id": other["id"]})
        self.assertIs(doc["result"]["isError"], True)
        self.assertIn("HTTP 404", doc["result"]["content"][0]["text"])
        self.assertEqual(S.standin_stats()["by_key"].get(S.BOB, 0), by_key)
        after = G.direct("GET", f"/v2/orders/{other['id']}", S.BOB, S.fixture_secret(S.BOB))
        self.assertEqual(after["status"], other["status"])


if __name__ == "__main__":
    unittest.main()
