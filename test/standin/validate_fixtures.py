#!/usr/bin/python3
"""Validate Alpaca stand-in fixtures (and the stand-in's own bodies) against Alpaca's official
OpenAPI spec, test/vectors/alpaca/trading-api.json.

    validate_fixtures.py [FIXTURES_DIR ...] [--spec FILE] [-q]

Default FIXTURES_DIR: the fixtures/ folder beside this script.  For every key folder it checks
secret (one non-empty line), environment (paper|live), account.json against Account,
positions.json against an array of Position, orders.json against an array of Order.  It also
checks the error bodies and the clock body the stand-in sends (Error, ErrorResponse,
legacy_clock), and, as a check of the rules below, the spec's own examples.  Exit status 1 on
any violation, each printed as FILE: JSON.PATH: message.  Needs python3-jsonschema (Debian).

How the OpenAPI 3.0 schema is read, and the known differences from the live service
(vectors/alpaca/README.md), each applied as a narrow patch:
  * $ref resolved; `nullable: true` allows null; unknown fields are allowed (the spec's own
    examples carry fields the schemas do not list);
  * Account: only id, account_number and status are required (Alpaca removed
    pattern_day_trader, daytrade_count and daytrading_buying_power on 2026-07-06);
  * format date-time checked as RFC 3339, format uuid as a UUID, and an extra format
    "decimal" (the spec's own marker) plus DECIMAL_FIELDS below as decimal strings;
  * the live service sends exchange "CRYPTO" for crypto positions (ExchangeForPosition);
  * multi-leg (mleg) orders as in the spec's own MultilegOptionsOrderResponse example: the
    parent has asset_class, asset_id, side and symbol "" and its legs have type "".
"""

import argparse
import copy
import json
import os
import re
import sys

try:
    import jsonschema
except ImportError:  # pragma: no cover
    sys.exit("validate_fixtures.py needs python3-jsonschema: apt-get install -y python3-jsonschema")

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SPEC = os.path.normpath(os.path.join(HERE, "..", "vectors", "alpaca", "trading-api.json"))

DECIMAL_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
RFC3339_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Money and quantity fields that Alpaca sends as decimal strings (the JSON models parse them
# as decimals; a float or a non-numeric string here would be a fixture bug).
DECIMAL_FIELDS = {
    "Account": ["cash", "buying_power", "regt_buying_power", "daytrading_buying_power",
                "non_marginable_buying_power", "options_buying_power", "equity", "last_equity",
                "portfolio_value", "long_market_value", "short_market_value", "initial_margin",
                "maintenance_margin", "last_maintenance_margin", "sma", "multiplier",
                "accrued_fees", "pending_transfer_in", "pending_transfer_out",
                "effective_buying_power", "intraday_adjustments", "pending_reg_taf_fees",
                "position_market_value"],
    "Position": ["qty", "qty_available", "avg_entry_price", "market_value", "cost_basis",
                 "unrealized_pl", "unrealized_plpc", "unrealized_intraday_pl",
                 "unrealized_intraday_plpc", "current_price", "lastday_price", "change_today"],
    "Order": ["qty", "notional", "filled_qty", "filled_avg_price", "limit_price", "stop_price",
              "trail_price", "trail_percent", "hwm", "ratio_qty"],
}
DECIMAL_FIELDS["OrderLeg"] = DECIMAL_FIELDS["Order"]

OPENAPI_ONLY = {"example", "examples", "x-examples", "deprecated", "x-deprecation", "xml",
                "externalDocs", "discriminator", "readOnly", "writeOnly", "title", "description"}


class Spec:
    def __init__(self, path):
        with open(path, "r", encoding="utf-8") as f:
            self.doc = json.load(f)
        self.raw = copy.deepcopy(self.doc["components"]["schemas"])
        self._patch()
        self.cache = {}

    def _patch(self):
        s = self.raw
        s["Account"]["required"] = ["id", "account_number", "status"]
        s["ExchangeForPosition"]["enum"] = s["ExchangeForPosition"]["enum"] + ["CRYPTO"]
        for name in ("AssetClass", "OrderSide", "OrderType"):
            if "" not in s[name]["enum"]:
                s[name]["enum"] = s[name]["enum"] + [""]
        for name in ("Order", "OrderLeg"):
            s[name]["properties"]["symbol"].pop("minLength", None)
            s[name]["properties"]["asset_id"]["format"] = "uuid-or-empty"
        for name, fields in DECIMAL_FIELDS.items():
            props = s[name]["properties"]
            for field in fields:
                if field in props and props[field].get("type") == "string":
                    props[field]["format"] = "decimal"

    def schema(self, name):
        if name not in self.cache:
            self.cache[name] = self._conv(self.raw[name], set())
        return self.cache[name]

    def _conv(self, node, seen):
        if isinstance(node, list):
            return [self._conv(x, seen) for x in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/components/schemas/"):
                raise ValueError("unsupported $ref %s" % ref)
            name = ref.rsplit("/", 1)[1]
            if name in seen:
                return {}  # recursion: accept (the spec avoids it for legs)
            target = self._conv(self.raw[name], seen | {name})
            if node.get("nullable"):
                return {"anyOf": [target, {"type": "null"}]}
            return target
        out = {}
        for k, v in node.items():
            if k in OPENAPI_ONLY or k.startswith("x-"):
                continue
            if k == "properties":
                out[k] = {p: self._conv(sub, seen) for p, sub in v.items()}
            elif k in ("items", "additionalProperties", "not"):
                out[k] = self._conv(v, seen)
            elif k in ("allOf", "anyOf", "oneOf"):
                out[k] = [self._conv(x, seen) for x in v]
            elif k == "nullable":
                continue
            else:
                out[k] = copy.deepcopy(v)
        if node.get("nullable"):
            if "type" in out:
                out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
            if "type" not in out and "enum" not in out:
                pass  # no constraint to relax
        return out


def format_checker():
    fc = jsonschema.FormatChecker(formats=())

    @fc.checks("date-time")
    def _dt(value):
        return not isinstance(value, str) or bool(RFC3339_RE.match(value))

    @fc.checks("uuid")
    def _uuid(value):
        return not isinstance(value, str) or bool(UUID_RE.match(value))

    @fc.checks("uuid-or-empty")
    def _uuid_or_empty(value):
        return not isinstance(value, str) or value == "" or bool(UUID_RE.match(value))

    @fc.checks("decimal")
    def _decimal(value):
        return not isinstance(value, str) or bool(DECIMAL_RE.match(value))

    return fc


class Checker:
    def __init__(self, spec_path, quiet=False):
        self.spec = Spec(spec_path)
        self.fc = format_checker()
        self.errors = 0
        self.checked = 0
        self.quiet = quiet

    def fail(self, where, path, message):
        self.errors += 1
        if self.errors <= 200:
            print("%s: %s: %s" % (where, path or "$", message))
        elif self.errors == 201:
            print("... (further violations not printed)")

    def check(self, where, instance, schema_name, array=False):
        schema = self.spec.schema(schema_name)
        if array:
            schema = {"type": "array", "items": schema}
        v = jsonschema.Draft4Validator(schema, format_checker=self.fc)
        self.checked += 1
        for err in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
            path = "$" + "".join("[%d]" % p if isinstance(p, int) else ".%s" % p
                                 for p in err.absolute_path)
            self.fail(where, path, err.message)

    def problems(self, instance, schema_name, array=False):
        """-> list of "PATH: message" strings (empty when instance is valid); counts nothing."""
        schema = self.spec.schema(schema_name)
        if array:
            schema = {"type": "array", "items": schema}
        v = jsonschema.Draft4Validator(schema, format_checker=self.fc)
        out = []
        for err in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
            path = "$" + "".join("[%d]" % p if isinstance(p, int) else ".%s" % p for p in err.absolute_path)
            out.append("%s: %s" % (path, err.message))
        return out

    def load(self, path):
        try:
            with open(path, "r", encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            self.fail(path, None, "cannot read JSON: %s" % e)
            return None

    def key_folder(self, folder):
        secret_path = os.path.join(folder, "secret")
        with open(secret_path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
        if len(lines) != 1 or not lines[0].strip():
            self.fail(secret_path, None, "must hold exactly one non-empty line")
        env_path = os.path.join(folder, "environment")
        if os.path.exists(env_path):
            with open(env_path, "r", encoding="utf-8") as f:
                if f.read().strip() not in ("paper", "live"):
                    self.fail(env_path, None, "must be paper or live")
        for name, schema, array in (("account.json", "Account", False),
                                    ("positions.json", "Position", True),
                                    ("orders.json", "Order", True)):
            path = os.path.join(folder, name)
            if not os.path.exists(path):
                if name == "account.json":
                    self.fail(path, None, "missing")
                continue
            doc = self.load(path)
            if doc is not None:
                self.check(path, doc, schema, array)
        self._order_ids(folder)

    def _order_ids(self, folder):
        path = os.path.join(folder, "orders.json")
        if not os.path.exists(path):
            return
        doc = self.load(path)
        if not isinstance(doc, list):
            return
        seen = set()
        for i, o in enumerate(doc):
            for j, x in enumerate([o] + list((o or {}).get("legs") or [])):
                oid = x.get("id") if isinstance(x, dict) else None
                where = "$[%d]" % i + (".legs[%d]" % (j - 1) if j else "")
                if not oid:
                    self.fail(path, where + ".id", "missing order id")
                elif oid in seen:
                    self.fail(path, where + ".id", "duplicate order id")
                seen.add(oid)

    def fixtures(self, root):
        n = 0
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if os.path.isdir(folder) and os.path.exists(os.path.join(folder, "secret")):
                self.key_folder(folder)
                n += 1
        if n == 0:
            self.fail(root, None, "no key folders (subfolders with a secret file)")
        return n

    def standin_bodies(self):
        sys.path.insert(0, HERE)
        import alpaca_standin as s
        for name in ("ERR_UNAUTHORIZED", "ERR_ENDPOINT", "ERR_POSITION", "ERR_ORDER", "ERR_METHOD",
                     "ERR_RATELIMIT", "ERR_INTERNAL"):
            self.check("alpaca_standin.%s" % name, json.loads(getattr(s, name)), "Error")
        self.check("alpaca_standin.ERR_FORBIDDEN", json.loads(s.ERR_FORBIDDEN), "ErrorResponse")
        self.check("alpaca_standin 422 body", json.loads(s._err422("invalid status")[1]), "Error")
        for args, extra in (((40310000, "insufficient buying power", 403), {"buying_power": "1", "cost_basis": "2"}),
                            ((42210000, 'order is already in "filled" state'), {})):
            try:
                s._refuse(*args, **extra)
            except s.Refusal as r:
                self.check("alpaca_standin refusal %s" % args[1], json.loads(r.body), "Error")
        self.check("alpaca_standin clock body", json.loads(s._clock_body()), "legacy_clock")

    def standin_reference(self, fixtures_dir):
        """The gateway's other read endpoints, answered in process: calendar, assets (all and
        one), account activities, portfolio history."""
        sys.path.insert(0, HERE)
        import alpaca_standin as s
        app = s.App(fixtures_dir, 200, None)
        acct = next((a for a in app.accounts.values() if a.positions), None)
        if acct is None:
            return
        for path, query, schema, array in (
                ("/v2/calendar", {"start": ["2026-11-27"], "end": ["2026-12-08"]},
                 "legacy_public_calendar_resp", False),
                ("/v2/assets", {}, "Assets", True), ("/v2/assets/AAPL", {}, "Assets", False),
                ("/v2/account/activities", {}, "TradingActivities", True),
                ("/v2/account/activities/FILL", {}, "TradingActivities", True),
                ("/v2/account/portfolio/history", {}, "PortfolioHistory", False)):
            st, body = s.alpaca_answer(app, acct, "GET", s._route_kind(path), path, query)
            if st != 200:
                self.fail("alpaca_standin GET %s" % path, None, "status %d" % st)
                continue
            self.check("alpaca_standin GET %s" % path, json.loads(body), schema, array=array)

    def standin_trading(self, fixtures_dir):
        """Run a scripted trading session against the stand-in's engine in process (no sockets)
        and check every answer: orders, order lists, cancel-all and close-all lists, the account
        and positions after the trades, and each refusal's error body."""
        sys.path.insert(0, HERE)
        import alpaca_standin as s
        app = s.App(fixtures_dir, 200, None)
        acct = next((a for a in app.accounts.values() if a.positions), None)
        if acct is None:
            return
        sym = next(p for p in (json.loads(r) for _, _, r in acct.positions)
                   if p.get("asset_class") == "us_equity" and not p["qty"].startswith("-"))["symbol"]
        legs = [{"symbol": "AAPL241213C00250000", "ratio_qty": "3", "side": "buy"},
                {"symbol": "AAPL241213C00260000", "ratio_qty": "1", "side": "sell"}]
        script = [
            ("POST", "/v2/orders", {}, dict(symbol=sym, qty="1", side="buy", type="market", time_in_force="day"), "Order"),
            ("POST", "/v2/orders", {}, dict(symbol=sym, notional="50", side="buy", type="market", time_in_force="day"), "Order"),
            ("POST", "/v2/orders", {}, dict(symbol=sym, qty="1", side="buy", type="limit", limit_price="1",
                                             time_in_force="gtc", client_order_id="v-1"), "Order"),
            ("POST", "/v2/orders", {}, dict(symbol="NVDA", qty="1", side="buy", type="market", time_in_force="gtc",
                                             order_class="bracket", take_profit={"limit_price": "200"},
                                             stop_loss={"stop_price": "50"}), "Order"),
            ("POST", "/v2/orders", {}, dict(symbol="ETH/USD", qty="0.01", side="buy", type="limit",
                                             limit_price="2000", time_in_force="gtc"), "Order"),
            ("POST", "/v2/orders", {}, dict(order_class="mleg", qty="1", type="market", time_in_force="day",
                                             legs=legs), "Order"),
            ("POST", "/v2/orders", {}, dict(order_class="mleg", qty="1", type="limit", limit_price="1",
                                             time_in_force="day", legs=legs), "Order"),
            ("POST", "/v2/orders", {}, dict(symbol=sym, qty="1", side="buy", type="trailing_stop",
                                             trail_price="2", time_in_force="gtc"), "Order"),
            ("POST", "/v2/orders", {}, dict(symbol=sym, qty="1", side="buy", type="limit", time_in_force="gtc"), "Error"),
            ("POST", "/v2/orders", {}, dict(symbol=sym, qty="100000", side="buy", type="market",
                                             time_in_force="day"), "Error"),
            ("GET", "/v2/orders:by_client_order_id", {"client_order_id": ["v-1"]}, None, "Order"),
            ("GET", "/v2/orders", {"status": ["all"], "nested": ["true"], "limit": ["500"]}, None, "[Order]"),
            ("GET", "/v2/orders", {"status": ["all"], "limit": ["500"]}, None, "[Order]"),
            ("GET", "/v2/account", {}, None, "Account"),
            ("GET", "/v2/positions", {}, None, "[Position]"),
            ("DELETE", "/v2/positions/{symbol}", {"percentage": ["50"]}, sym, "Order"),
            ("DELETE", "/v2/orders", {}, None, "[CanceledOrderResponse]"),
            ("DELETE", "/v2/positions", {}, None, "[PositionClosedReponse]"),
            ("GET", "/v2/account", {}, None, "Account"),
        ]
        last_id = None
        for method, kind, q, body, schema in script:
            path = kind
            if kind == "/v2/positions/{symbol}":
                path, body = "/v2/positions/" + body, None
            raw = json.dumps(body).encode() if body is not None and method == "POST" else b""
            st, out = s.alpaca_answer(app, acct, method, kind, path, q, raw)
            where = "stand-in %s %s %s" % (method, path, json.dumps(body)[:60] if body else "")
            want_ok = schema != "Error"
            if (200 <= st < 300) != want_ok:
                self.fail(where, None, "status %d: %s" % (st, out[:200]))
                continue
            doc = json.loads(out)
            if schema.startswith("["):
                self.check(where, doc, schema[1:-1], array=True)
            else:
                self.check(where, doc, schema)
            if kind == "/v2/orders" and method == "POST" and want_ok:
                last_id = doc["id"]
        if last_id:  # replace and cancel
            st, out = s.alpaca_answer(app, acct, "GET", "/v2/orders/{id}", "/v2/orders/" + last_id, {}, b"")
            self.check("stand-in GET /v2/orders/{id}", json.loads(out), "Order")

    def spec_examples(self):
        doc = self.spec.doc
        acct = doc["paths"]["/v2/account"]["get"]["responses"]["200"]["content"]["application/json"]
        self.check("spec example getAccount", acct["example"], "Account")
        for k, ex in self.spec.raw["Account"].get("x-examples", {}).items():
            self.check("spec Account x-examples %s" % k, ex, "Account")
        for k, ex in doc["components"]["schemas"]["Position"].get("x-examples", {}).items():
            if k == "example-1" and "asset_marginable" not in ex:
                continue  # the spec's older example predates its own required asset_marginable
            self.check("spec Position x-examples %s" % k, ex, "Position")
        for k, ex in doc["components"]["examples"].items():
            if k.endswith("OrderResponse"):
                self.check("spec example %s" % k, ex["value"], "Order")
        clock = doc["components"]["schemas"]["legacy_clock"].get("example")
        if clock:
            self.check("spec legacy_clock example", clock, "legacy_clock")


def main(argv=None):
    ap = argparse.ArgumentParser(description="validate stand-in fixtures against Alpaca's spec")
    ap.add_argument("dirs", nargs="*", default=[os.path.join(HERE, "fixtures")])
    ap.add_argument("--spec", default=DEFAULT_SPEC)
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("--no-standin", action="store_true", help="skip the stand-in's own bodies")
    a = ap.parse_args(argv)
    c = Checker(a.spec, a.quiet)
    folders = 0
    for d in a.dirs:
        folders += c.fixtures(d)
    if not a.no_standin:
        c.standin_bodies()
        c.standin_trading(a.dirs[0])
        c.standin_reference(a.dirs[0])
    c.spec_examples()
    if c.errors:
        print("FAILED: %d violation(s) in %d document(s) checked" % (c.errors, c.checked))
        return 1
    if not a.quiet:
        print("OK: %d key folder(s), %d document(s) valid against %s"
              % (folders, c.checked, os.path.basename(a.spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
