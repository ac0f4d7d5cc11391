"""Issue 11: the official Alpaca SDKs, installed pinned by scripts/test.sh (test/clients/), work
unchanged against the gateway with a session token where the key id goes, and see exactly what
the stand-in holds for the session's credential (asked straight, with the real keys):

  * alpaca-py (the earlier system's client): TradingClient(api_key=<token>, secret_key=<any>,
    paper=True, url_override=<gateway>) - account, all positions, orders by status, and with a
    trade session an order submitted and cancelled; StockHistoricalDataClient's latest quote;
  * @alpacahq/alpaca-trade-api 4.x: trading and market-data Configurations with the gateway as
    basePath and the token as keyId - account, positions, orders, clock, latest quote, and an
    order created and cancelled.
"""
import json
import unittest

import clients_lib as C
import gateway_lib as G
import hardening_lib as H
import pga_stack as S

PY_READ = r"""
import json, os
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetOrdersRequest
from alpaca.trading.enums import QueryOrderStatus
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockLatestQuoteRequest
c = TradingClient(api_key=os.environ["TOKEN"], secret_key="not-a-secret", paper=True,
                  url_override=os.environ["GW"])
a = c.get_account()
out = {"account": {"id": str(a.id), "account_number": a.account_number, "equity": str(a.equity),
                   "cash": str(a.cash), "status": str(a.status.value)}}
out["positions"] = sorted([p.symbol, str(p.qty)] for p in c.get_all_positions())
out["orders"] = {s: sorted(str(o.id) for o in c.get_orders(GetOrdersRequest(status=q, limit=500)))
                 for s, q in (("open", QueryOrderStatus.OPEN), ("closed", QueryOrderStatus.CLOSED),
                              ("all", QueryOrderStatus.ALL))}
d = StockHistoricalDataClient(api_key=os.environ["TOKEN"], secret_key="not-a-secret",
                              url_override=os.environ["GW"])
q = d.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))["AAPL"]
out["quote"] = [q.ask_price, q.bid_price]
print(json.dumps(out))
"""

PY_TRADE = r"""
import json, os
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import LimitOrderRequest
from alpaca.trading.enums import OrderSide, TimeInForce
c = TradingClient(api_key=os.environ["TOKEN"], secret_key="not-a-secret", paper=True,
                  url_override=os.environ["GW"])
o = c.submit_order(LimitOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY,
                                     time_in_force=TimeInForce.DAY, limit_price=1.25,
                                     client_order_id=os.environ["COID"]))
out = {"id": str(o.id), "client_order_id": o.client_order_id, "status": str(o.status.value),
       "limit_price": str(o.limit_price)}
c.cancel_order_by_id(o.id)
out["after_cancel"] = str(c.get_order_by_id(o.id).status.value)
print(json.dumps(out))
"""

JS = r"""
const { trading, marketData } = require("@alpacahq/alpaca-trade-api");
(async () => {
  const opts = { keyId: process.env.TOKEN, secret: "not-a-secret", basePath: process.env.GW };
  const cfg = new trading.Configuration(opts);
  const md = new marketData.Configuration(opts);
  const orders = new trading.OrdersApi(cfg);
  const account = await new trading.AccountsApi(cfg).getAccount();
  const positions = await new trading.PositionsApi(cfg).getAllOpenPositions();
  const all = await orders.getAllOrders({ status: "all", limit: 500 });
  const clock = await new trading.ClockApi(cfg).legacyClock();
  const quote = await new marketData.StockApi(md).stockLatestQuoteSingle({ symbol: "AAPL" });
  const out = {
    account: { id: String(account.id), account_number: account.accountNumber },
    positions: positions.map((p) => [p.symbol, String(p.qty)]).sort(),
    orders: all.map((o) => String(o.id)).sort(),
    clock: { is_open: clock.isOpen, next_open: String(clock.nextOpen) },
    quote: { symbol: quote.symbol, ask: Number(quote.quote.ap), bid: Number(quote.quote.bp) },
  };
  if (process.env.TRADE) {
    const o = await orders.postOrder({ postOrderRequest: {
      symbol: "AAPL", qty: "2", side: "buy", type: "limit", timeInForce: "day",
      limitPrice: "1.5", clientOrderId: process.env.COID } });
    out.created = { id: String(o.id), client_order_id: o.clientOrderId, status: String(o.status) };
    await orders.deleteOrderByOrderID({ orderId: String(o.id) });
    const g = await orders.getOrderByOrderID({ orderId: String(o.id) });
    out.after_cancel = String(g.status);
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e && (e.stack || e)); process.exit(1); });
"""


class GatewaySdks(G.OwnAccount, unittest.TestCase):
    TAG = "sdk"
    REQUIRES = staticmethod(C.missing)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gw = G.gateway()

    def test_alpaca_py_reads(self):
        out = C.run_python(PY_READ, {"TOKEN": self.read, "GW": self.gw})
        acct = self.held("/v2/account")
        self.assertEqual(out["account"], {"id": acct["id"], "account_number": acct["account_number"],
                                          "equity": str(float(acct["equity"])),
                                          "cash": str(float(acct["cash"])),
                                          "status": acct["status"]})
        self.assertEqual(out["positions"],
                         sorted([p["symbol"], p["qty"]] for p in self.held("/v2/positions")))
        self.assertTrue(out["positions"], "the fixture account holds positions")
        for status in ("open", "closed", "all"):
            self.assertEqual(out["orders"][status], self.order_ids(status), status)
        self.assertNotEqual(out["orders"]["open"], out["orders"]["closed"])
        held = G.direct("GET", "/v2/stocks/quotes/latest?symbols=AAPL", self.key, self.secret)
        self.assertEqual(out["quote"], [held["quotes"]["AAPL"]["ap"], held["quotes"]["AAPL"]["bp"]])

    def test_alpaca_py_trade_session_submits_and_cancels(self):
        coid = "sdk-py-" + H.rand_text(12)
        before = set(self.order_ids("all"))
        out = C.run_python(PY_TRADE, {"TOKEN": self.trade, "GW": self.gw, "COID": coid})
        self.assertEqual(out["client_order_id"], coid)
        self.assertEqual(out["after_cancel"], "canceled")
        self.assertEqual(set(self.order_ids("all")) - before, {out["id"]}, "exactly one new order")
        held = self.held(f"/v2/orders/{out['id']}")
        self.assertEqual((held["client_order_id"], held["status"], held["limit_price"], held["qty"]),
                         (coid, "canceled", "1.25", "1"))

    def test_alpaca_py_read_session_cannot_trade(self):
        before = set(self.order_ids("all"))
        with self.assertRaises(AssertionError) as cm:
            C.run_python(PY_TRADE, {"TOKEN": self.read, "GW": self.gw, "COID": "sdk-ro-" + H.rand_text(8)})
        self.assertIn("scope does not allow", str(cm.exception))
        self.assertEqual(set(self.order_ids("all")), before)

    def test_js_sdk(self):
        coid = "sdk-js-" + H.rand_text(12)
        before = set(self.order_ids("all"))
        out = C.run_node(JS, {"TOKEN": self.trade, "GW": self.gw, "TRADE": "1", "COID": coid})
        acct = self.held("/v2/account")
        self.assertEqual(out["account"], {"id": acct["id"], "account_number": acct["account_number"]})
        held_pos = sorted([p["symbol"], p["qty"]] for p in self.held("/v2/positions"))
        self.assertEqual([p[0] for p in out["positions"]], [p[0] for p in held_pos])
        self.assertEqual([float(p[1]) for p in out["positions"]], [float(p[1]) for p in held_pos])
        self.assertEqual(out["orders"], sorted(before))
        clock = self.held("/v2/clock")
        self.assertEqual(out["clock"]["is_open"], clock["is_open"])
        held = G.direct("GET", "/v2/stocks/AAPL/quotes/latest", self.key, self.secret)
        self.assertEqual(out["quote"], {"symbol": "AAPL", "ask": held["quote"]["ap"],
                                        "bid": held["quote"]["bp"]})
        self.assertEqual(out["created"]["client_order_id"], coid)
        self.assertEqual(out["after_cancel"], "canceled")
        self.assertEqual(set(self.order_ids("all")) - before, {out["created"]["id"]})

    def test_gateway_audits_each_request(self):
        """Every forwarded request has its 'gateway' audit row (method and path, never the
        token) and, soon after, its HTTP status."""
        C.run_node(JS, {"TOKEN": self.read, "GW": self.gw})
        def rows():
            with S.connect() as su:
                return su.execute("SELECT purpose, outcome FROM alpaca.audit_log "
                                  "WHERE credential_id = %s AND action = 'gateway' ORDER BY id",
                                  (self.cred,)).fetchall()
        S.wait_until(lambda: all(o != "pending" for _, o in rows()), 10)
        got = rows()
        self.assertIn(("GET /v2/account", "http 200"), got)
        self.assertIn(("GET /v2/stocks/AAPL/quotes/latest", "http 200"), got)
        with S.connect() as su:
            n = su.execute("SELECT count(*) FROM alpaca.audit_log WHERE purpose LIKE %s OR "
                           "outcome LIKE %s", ("%pgas_%", "%pgas_%")).fetchone()[0]
        self.assertEqual(n, 0, "a token reached the audit log")


if __name__ == "__main__":
    unittest.main()
