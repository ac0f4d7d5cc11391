"""The MCP server at /mcp, driven by the official MCP TypeScript SDK (Client +
StreamableHTTPClientTransport, test/clients/mcp/client.mjs) with a gateway session token as
its bearer token, against the real sidecar, the real cluster and the stand-in over HTTPS.

What it shows:
  * initialize: serverInfo pg_alpaca and the release version, the tools capability, protocol
    2025-11-25, no Mcp-Session-Id (stateless: the token is the session);
  * tools/list follows the scope: 6 read tools for a read session, 10 with trade, trading
    tools annotated destructiveHint;
  * every tool's result equals what the stand-in holds for the account (account, positions
    with option fields and the by-underlying totals, orders by status, one order, clock,
    latest quote), and a trade session places, replaces and cancels an order and closes part
    of a position, each exactly once at the stand-in;
  * Alpaca's refusals come back as tool errors with Alpaca's message;
  * bad arguments are refused before anything reaches the stand-in;
  * a revoked session: the next call fails (401), the one before it worked.

Run: cd test/integration && /usr/bin/python3 -m unittest -v test_mcp
"""
import decimal
import re
import unittest

import gateway_lib as G
import hardening_lib as H
import mcp_lib as M
import pga_stack as S

READ_TOOLS = {"get_account", "get_positions", "get_orders", "get_order", "get_clock",
              "get_latest_quote"}
TRADE_TOOLS = {"place_order", "replace_order", "cancel_order", "close_position"}
OCC = re.compile(r"^([A-Z0-9.]{1,6})(\d\d)(\d\d)(\d\d)([CP])(\d{8})$")


def control_version():
    with open(S.ROOT + "/pg_alpaca.control") as f:
        return re.search(r"default_version\s*=\s*'([^']+)'", f.read()).group(1)


class Mcp(G.OwnAccount, unittest.TestCase):
    TAG = "mcp"
    REQUIRES = staticmethod(M.missing)

    def test_initialize(self):
        out = M.agent(self.read, [{"op": "server"}, {"op": "ping"}])
        info = out[0]["result"]
        self.assertEqual(info["serverInfo"]["name"], "pg_alpaca")
        self.assertEqual(info["serverInfo"]["version"], control_version())
        self.assertEqual(info["capabilities"], {"tools": {"listChanged": False}})
        self.assertEqual(info["protocolVersion"], "2025-11-25")
        self.assertIsNone(info["sessionId"])
        self.assertIn("scope is 'read'", info["instructions"])
        self.assertEqual(out[1], {"ok": True, "result": {}})

    def test_tools_list_follows_the_scope(self):
        read = M.agent(self.read, [{"op": "list"}])[0]["result"]["tools"]
        trade = M.agent(self.trade, [{"op": "list"}])[0]["result"]["tools"]
        self.assertEqual({t["name"] for t in read}, READ_TOOLS)
        self.assertEqual({t["name"] for t in trade}, READ_TOOLS | TRADE_TOOLS)
        for t in trade:
            ann = t["annotations"]
            if t["name"] in TRADE_TOOLS:
                self.assertIs(ann["destructiveHint"], True, t["name"])
                self.assertIs(ann["readOnlyHint"], False, t["name"])
            else:
                self.assertIs(ann["readOnlyHint"], True, t["name"])
            self.assertIs(t["inputSchema"]["additionalProperties"], False, t["name"])

    def test_read_tools_equal_the_standin(self):
        some = self.order_ids("all")[0]
        steps = [{"op": "call", "name": "get_account"},
                 {"op": "call", "name": "get_positions"},
                 {"op": "call", "name": "get_orders", "arguments": {"status": "open", "limit": 500}},
                 {"op": "call", "name": "get_orders", "arguments": {"status": "closed", "limit": 500}},
                 {"op": "call", "name": "get_orders", "arguments": {"status": "all", "limit": 500}},
                 {"op": "call", "name": "get_order", "arguments": {"order_id": some}},
                 {"op": "call", "name": "get_clock"},
                 {"op": "call", "name": "get_latest_quote", "arguments": {"symbol": "AAPL"}}]
        out = [M.structured(e) for e in M.agent(self.read, steps)]
        acct = self.held("/v2/account")
        for k in ("id", "account_number", "cash", "equity", "buying_power", "status"):
            self.assertEqual(out[0][k], acct[k], k)
        # Positions: Alpaca's, plus the option fields of each OCC symbol.
        held = self.held("/v2/positions")
        got = out[1]["positions"]
        self.assertEqual([(p["symbol"], p["qty"], p["market_value"]) for p in got],
                         [(p["symbol"], p["qty"], p["market_value"]) for p in held])
        groups = {}
        for p in got:
            m = OCC.match(p["symbol"])
            if not m:
                self.assertIsNone(p["option"], p["symbol"])
                continue
            strike = decimal.Decimal(m.group(6)) / 1000
            self.assertEqual(p["option"], {
                "underlying": m.group(1), "expiration": f"20{m.group(2)}-{m.group(3)}-{m.group(4)}",
                "type": "call" if m.group(5) == "C" else "put",
                "strike": format(strike.normalize(), "f")})
            groups.setdefault(m.group(1), []).append(p)
        self.assertTrue(groups, "the fixture account holds option positions")
        by = {g["underlying"]: g for g in out[1]["options_by_underlying"]}
        self.assertEqual(set(by), set(groups))
        for u, ps in groups.items():
            self.assertEqual(by[u]["positions"], len(ps))
            self.assertEqual(by[u]["symbols"], [p["symbol"] for p in ps])
            for k in ("qty", "market_value", "unrealized_pl"):
                total = sum(decimal.Decimal(p[k]) for p in ps)
                self.assertEqual(decimal.Decimal(by[u][k]), total, (u, k))
        for i, status in ((2, "open"), (3, "closed"), (4, "all")):
            self.assertEqual(sorted(o["id"] for o in out[i]["orders"]), self.order_ids(status))
        self.assertEqual(out[5], self.held(f"/v2/orders/{some}"))
        self.assertEqual(out[6]["is_open"], self.held("/v2/clock")["is_open"])
        quote = G.direct("GET", "/v2/stocks/AAPL/quotes/latest", self.key, self.secret)
        self.assertEqual((out[7]["quote"]["ap"], out[7]["quote"]["bp"]),
                         (quote["quote"]["ap"], quote["quote"]["bp"]))

    def test_trade_session_places_replaces_cancels_and_closes(self):
        coid = "mcp-it-" + H.rand_text(12)
        before = set(self.order_ids("all"))
        placed = M.structured(M.call(self.trade, "place_order", {
            "symbol": "AAPL", "side": "buy", "type": "limit", "qty": "1",
            "limit_price": "1.25", "time_in_force": "day", "client_order_id": coid}))
        held = self.held(f"/v2/orders/{placed['id']}")
        self.assertEqual((held["client_order_id"], held["symbol"], held["qty"], held["limit_price"]),
                         (coid, "AAPL", "1", "1.25"))
        self.assertEqual(set(self.order_ids("all")) - before, {placed["id"]}, "exactly one order")
        new = M.structured(M.call(self.trade, "replace_order",
                                  {"order_id": placed["id"], "limit_price": "1.30"}))
        self.assertEqual(self.held(f"/v2/orders/{new['id']}")["limit_price"], "1.3")
        self.assertEqual(self.held(f"/v2/orders/{placed['id']}")["status"], "replaced")
        self.assertEqual(M.structured(M.call(self.trade, "cancel_order", {"order_id": new["id"]})),
                         {"order_id": new["id"], "cancel_requested": True})
        self.assertEqual(self.held(f"/v2/orders/{new['id']}")["status"], "canceled")
        self.assertEqual(set(self.order_ids("all")) - before, {placed["id"], new["id"]})
        # A placed order without a client_order_id gets one (the gateway's exactly-once rule).
        auto = M.structured(M.call(self.trade, "place_order", {
            "symbol": "AAPL", "side": "buy", "type": "limit", "qty": "1", "limit_price": "1"}))
        self.assertRegex(self.held(f"/v2/orders/{auto['id']}")["client_order_id"],
                         r"^mcp-[0-9a-f]{32}$")
        M.call(self.trade, "cancel_order", {"order_id": auto["id"]})
        # Part of a position, closed by a market order Alpaca holds.
        qty = next(decimal.Decimal(p["qty"]) for p in self.held("/v2/positions")
                   if p["symbol"] == "AAPL")
        closing = M.structured(M.call(self.trade, "close_position", {"symbol": "AAPL", "qty": "1"}))
        held = self.held(f"/v2/orders/{closing['id']}")
        self.assertEqual((held["symbol"], held["side"], held["qty"]), ("AAPL", "sell", "1"))
        after = next(decimal.Decimal(p["qty"]) for p in self.held("/v2/positions")
                     if p["symbol"] == "AAPL")
        self.assertEqual(after, qty - 1)

    def test_alpaca_errors_are_tool_errors(self):
        missing = "00000000-0000-4000-8000-000000000000"
        text = M.tool_error_text(M.call(self.read, "get_order", {"order_id": missing}))
        self.assertRegex(text, r"^Alpaca refused the request \(HTTP 404")
        text = M.tool_error_text(M.call(self.trade, "place_order", {
            "symbol": "AAPL", "side": "buy", "qty": "100000000", "type": "limit",
            "limit_price": "500"}))
        self.assertIn("HTTP 403", text)
        self.assertIn("insufficient buying power", text)

    def test_bad_arguments_reach_nothing(self):
        bad = [("place_order", {"symbol": "AAPL", "side": "buy", "qty": True}),
               ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "-1"}),
               ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1e3"}),
               ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1", "notional": "5"}),
               ("place_order", {"symbol": "AAPL", "side": "buy"}),
               ("place_order", {"symbol": "../v2/account", "side": "buy", "qty": "1"}),
               ("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1", "account": "x"}),
               ("get_order", {"order_id": "not-a-uuid"}),
               ("get_orders", {"limit": 100000}),
               ("close_position", {"symbol": "AAPL", "percentage": "150"}),
               ("get_latest_quote", {"symbol": "AAPL/../../v2/account"})]
        before = G.standin_requests()
        out = M.agent(self.trade, [{"op": "call", "name": n, "arguments": a} for n, a in bad])
        for (name, args), entry in zip(bad, out):
            self.assertIn("nothing was sent to Alpaca", M.tool_error_text(entry), (name, args))
        self.assertEqual(G.standin_requests(), before)

    def test_revoked_session_fails_at_the_next_call(self):
        label = "mcp-revoke-" + H.rand_text(6)
        with S.connect(role="app") as c:
            token = G.open_session(c, self.user, self.cred, "read", label=label)
            sid = G.session_id(c, self.user, label)
        self.assertEqual(M.structured(M.call(token, "get_clock"))["is_open"],
                         self.held("/v2/clock")["is_open"])
        with S.connect(role="app") as c:
            S.as_user(c, self.user, "SELECT alpaca_revoke_session(%s)", (sid,))
        out = M.agent(token, [{"op": "list"}])
        self.assertFalse(out[0]["ok"])
        self.assertIn("401", out[0]["error"]["message"])


if __name__ == "__main__":
    unittest.main()
