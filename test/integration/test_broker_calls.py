"""Live Alpaca data in SQL, end to end: real cluster, real alpaca-sidecar, the Alpaca stand-in
over HTTPS (scripts/stack.sh; stack.env in the environment).

What it shows:
  * alpaca_account / alpaca_positions / alpaca_orders return exactly the fixture's data, typed
    (numeric digit for digit, timestamptz, date, jsonb legs); orders open|closed|all and
    max_rows 1..500; alpaca_validate_credential true/false; last_validated_at, last_used_at and
    the audit rows;
  * a credential's environment picks the stand-in's paper or live listener;
  * a stand-in whose certificate the sidecar does not trust is refused (08006);
  * every fault knob of the stand-in ends in its SQLSTATE, Alpaca's 401/403 in 42501 naming the
    credential (never the key), 404/422 in 22023 with Alpaca's message;
  * a stopped sidecar is 08001 within a second; pg_cancel_backend ends a hung call within a
    second and the backend keeps serving; 20 concurrent sessions see only their own data; a
    ticket is good once, for one purpose, and only the sidecar role may redeem it.

Fault tests run against extra sidecars (S.STACK.extra_sidecar: scripts/stackctl.py runs them
as the stack's sidecar user) with short timeouts and few retries (their own sockets, reached
through login roles whose pg_alpaca.sidecar_socket is set by ALTER ROLE, since that setting is
superuser-only), so the file stays well under two minutes.

Run: cd test/integration && /usr/bin/python3 -m unittest -v test_broker_calls
"""
import datetime
import decimal
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest
import uuid

import psycopg

import pga_stack as S

D = decimal.Decimal
ENV = os.environ
CLOSED = {"filled", "canceled", "expired", "replaced", "rejected"}
WORK = os.path.join(S.STACK_DIR, "broker_calls")
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# Settings of the extra sidecars: answers within a few seconds, retries quickly.
FAST = {
    "connect_timeout_ms": "1000",
    "request_timeout_ms": "800",
    "request_deadline_ms": "2000",
    "max_attempts": "3",
    "retry_base_delay_ms": "50",
    "retry_max_delay_ms": "200",
    "max_response_bytes": "1048576",
    "workers": "8",
    "pool_size": "2",
}


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------
def user_name(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def login_role(name, socket_path=None):
    """A login role in alpaca_app, optionally routed to another sidecar socket."""
    with S.connect() as c:
        c.execute("DROP ROLE IF EXISTS %s" % name)
        c.execute("CREATE ROLE %s LOGIN IN ROLE alpaca_app" % name)
        if socket_path:
            c.execute("ALTER ROLE %s SET pg_alpaca.sidecar_socket = '%s'" % (name, socket_path))


def attempt(conn, user, sql, params=()):
    """(rows, error, seconds) of one statement run as application user `user`."""
    t0 = time.monotonic()
    try:
        rows = S.as_user(conn, user, sql, params)
        return rows, None, time.monotonic() - t0
    except psycopg.Error as e:
        return None, e, time.monotonic() - t0


def err_text(e):
    d = e.diag
    return " | ".join(x for x in (d.message_primary, d.message_detail, d.message_hint) if x)


def exact(value, text):
    """numeric `value` equals the decimal string `text` digit for digit (same scale too)."""
    return isinstance(value, D) and value.as_tuple() == D(text).as_tuple()


_TS = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z$")


def ts(text):
    """RFC 3339 UTC text -> datetime, rounded to microseconds half up as PostgreSQL does."""
    if text is None:
        return None
    m = _TS.match(text)
    frac = (m.group(7) or "0").ljust(9, "0")
    ns = int(frac[:9])
    base = datetime.datetime(*(int(g) for g in m.groups()[:6]), tzinfo=datetime.timezone.utc)
    return base + datetime.timedelta(microseconds=(ns + 500) // 1000)


def occ(symbol):
    m = re.match(r"^([A-Z0-9.]{1,6})(\d\d)(\d\d)(\d\d)([CP])(\d{8})$", symbol)
    strike = D(m.group(6)) / 1000
    return (m.group(1), datetime.date(2000 + int(m.group(2)), int(m.group(3)), int(m.group(4))),
            "call" if m.group(5) == "C" else "put", strike)


POSITION_DECIMALS = ["qty", "avg_entry_price", "market_value", "cost_basis", "unrealized_pl",
                     "unrealized_plpc", "current_price", "change_today"]
ORDER_DECIMALS = ["qty", "filled_qty", "filled_avg_price", "limit_price", "stop_price"]
ACCOUNT_TEXT = ["account_number", "status", "crypto_status", "currency"]
ACCOUNT_DECIMALS = ["cash", "buying_power", "regt_buying_power", "daytrading_buying_power",
                    "non_marginable_buying_power", "options_buying_power", "equity", "last_equity",
                    "long_market_value", "short_market_value", "portfolio_value", "initial_margin",
                    "maintenance_margin", "last_maintenance_margin", "sma", "multiplier"]
ACCOUNT_OTHER = ["pattern_day_trader", "daytrade_count", "options_approved_level",
                 "options_trading_level", "shorting_enabled", "trading_blocked",
                 "transfers_blocked", "account_blocked", "trade_suspended_by_user"]


def fetch_dicts(conn, user, sql, params=()):
    with conn.transaction():
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute("SELECT alpaca_set_user(%s)", (user,))
            cur.execute(sql, params)
            return cur.fetchall()


def sidecar_request(socket_path, op, ticket, query=None):
    """Speaks the backend<->sidecar protocol (common/wire.hpp) directly: returns (header, body)."""
    header = json.dumps({"v": 1, "id": uuid.uuid4().hex, "op": op, "ticket": ticket,
                         "query": query or {}}).encode()
    payload = struct.pack(">I", len(header)) + header
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    try:
        s.connect(socket_path)
        s.sendall(struct.pack(">I", len(payload)) + payload)

        def read(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("sidecar closed the connection")
                buf += chunk
            return buf

        (n,) = struct.unpack(">I", read(4))
        data = read(n)
    finally:
        s.close()
    (hlen,) = struct.unpack(">I", data[:4])
    return json.loads(data[4:4 + hlen]), data[4 + hlen:]


# ------------------------------------------------------------------------------------------
# Module setup: the stand-in's per-key limit raised for the run, extra sidecars, login roles.
# ------------------------------------------------------------------------------------------
FAST_SIDECAR = None
SAVED_RATE_LIMIT = None


def setUpModule():
    global FAST_SIDECAR, SAVED_RATE_LIMIT
    os.makedirs(WORK, exist_ok=True)
    SAVED_RATE_LIMIT = S._control("GET", "/ratelimit")["limit"]
    S._control("POST", "/ratelimit", {"limit": 100000})
    S.standin_clear()
    FAST_SIDECAR = S.STACK.extra_sidecar("fast", **FAST).start()
    login_role("brk_fast", FAST_SIDECAR.socket_path)


def tearDownModule():
    try:
        S.standin_clear()
    finally:
        if FAST_SIDECAR:
            FAST_SIDECAR.stop()
        S._control("POST", "/ratelimit", {"limit": SAVED_RATE_LIMIT or 200})
        with S.connect() as c:
            for r in ("brk_fast", "brk_down", "brk_badca"):
                c.execute("DROP ROLE IF EXISTS %s" % r)


class Base(unittest.TestCase):
    def setUp(self):
        S.standin_clear()
        self.conns = []

    def tearDown(self):
        S.standin_clear()
        for c in self.conns:
            c.close()

    def conn(self, role="app", **kw):
        c = S.connect(role=role, **kw)
        self.conns.append(c)
        return c

    def store(self, conn, prefix, key=S.ALICE, secret=None, environment="paper"):
        user = user_name(prefix)
        secret = S.fixture_secret(key) if secret is None else secret
        return user, S.store(conn, user, key, secret, environment)

    def assertSqlstate(self, err, sqlstate, msg=""):
        self.assertIsNotNone(err, "expected SQLSTATE %s, the call succeeded %s" % (sqlstate, msg))
        self.assertEqual(err.sqlstate, sqlstate, "%s: %s" % (msg, err_text(err)))

    def assertNoSecrets(self, text, key=S.ALICE):
        self.assertNotIn(key, text)
        self.assertNotIn(S.fixture_secret(key), text)


# ------------------------------------------------------------------------------------------
# Data: every SQL function's rows equal the fixture
# ------------------------------------------------------------------------------------------
class AliceBase(Base):
    """One connection as ROLE and one credential with Alice's fixture key, for the class."""
    ROLE = "app"

    @classmethod
    def setUpClass(cls):
        cls.c = S.connect(role=cls.ROLE)
        cls.user = user_name("alice")
        cls.cred = S.store(cls.c, cls.user, S.ALICE, S.fixture_secret(S.ALICE))

    @classmethod
    def tearDownClass(cls):
        cls.c.close()


class DataTest(AliceBase):

    def test_account_equals_fixture(self):
        want = S.fixture_json(S.ALICE, "account.json")
        rows = fetch_dicts(self.c, self.user, "SELECT * FROM alpaca_account(%s)", (self.cred,))
        self.assertEqual(len(rows), 1)
        got = rows[0]
        self.assertEqual(str(got["id"]), want["id"])
        for k in ACCOUNT_TEXT:
            self.assertEqual(got[k], want.get(k), k)
        for k in ACCOUNT_DECIMALS:
            if want.get(k) is None:
                self.assertIsNone(got[k], k)  # e.g. daytrading_buying_power, gone since 2026
            else:
                self.assertTrue(exact(got[k], want[k]), "%s: %r vs %r" % (k, got[k], want[k]))
        for k in ACCOUNT_OTHER:
            self.assertEqual(got[k], want.get(k), k)
        self.assertIsNone(got["pattern_day_trader"])
        self.assertEqual(got["created_at"], ts(want["created_at"]))

    def test_positions_equal_fixture(self):
        want = S.fixture_json(S.ALICE, "positions.json")
        rows = fetch_dicts(self.c, self.user, "SELECT * FROM alpaca_positions(%s)", (self.cred,))
        self.assertEqual([r["symbol"] for r in rows], [p["symbol"] for p in want])
        for got, p in zip(rows, want):
            for k in ("asset_class", "side"):
                self.assertEqual(got[k], p[k])
            for k in POSITION_DECIMALS:
                self.assertTrue(exact(got[k], p[k]), "%s %s: %r vs %r" % (p["symbol"], k, got[k], p[k]))
            if p["asset_class"] == "us_option":
                self.assertEqual((got["underlying"], got["expiration"], got["option_type"], got["strike"]),
                                 occ(p["symbol"]))
            else:
                self.assertEqual([got[k] for k in ("underlying", "expiration", "option_type", "strike")],
                                 [None] * 4)
        # The fixture's mix is really there: short, fractional, crypto pair, options.
        by = {r["symbol"]: r for r in rows}
        self.assertEqual(by["TSLA"]["qty"], D("-5"))
        self.assertEqual(by["VTI"]["qty"], D("0.123456789"))
        self.assertEqual(by["BTCUSD"]["asset_class"], "crypto")
        grouped = S.as_user(self.c, self.user, """
            SELECT underlying, count(*), sum(qty), sum(market_value) FROM alpaca_positions(%s)
            WHERE underlying IS NOT NULL GROUP BY 1 ORDER BY 1""", (self.cred,))
        self.assertEqual(grouped, [("AAPL", 2, D("3"), D("825")), ("SPY", 1, D("-1"), D("-435"))])

    def expected_orders(self, status, limit):
        orders = sorted(S.fixture_json(S.ALICE, "orders.json"), key=lambda o: o["submitted_at"],
                        reverse=True)
        if status == "open":
            orders = [o for o in orders if o["status"] not in CLOSED]
        elif status == "closed":
            orders = [o for o in orders if o["status"] in CLOSED]
        return orders[:limit]

    def check_orders(self, rows, want):
        self.assertEqual([str(r["id"]) for r in rows], [o["id"] for o in want])
        for got, o in zip(rows, want):
            for k in ("client_order_id", "symbol", "asset_class", "side", "type", "time_in_force",
                      "status", "order_class"):
                self.assertEqual(got[k], o[k], "%s %s" % (o["id"], k))
            for k in ORDER_DECIMALS:
                if o[k] is None:
                    self.assertIsNone(got[k], k)
                else:
                    self.assertTrue(exact(got[k], o[k]), "%s %s" % (o["id"], k))
            for k in ("submitted_at", "filled_at", "canceled_at"):
                self.assertEqual(got[k], ts(o[k]), "%s %s" % (o["id"], k))
            self.assertEqual(got["legs"], o["legs"])  # jsonb, the legs as Alpaca sent them

    def test_orders_by_status_and_limit(self):
        S.standin_reset_stats()
        for status in ("open", "closed", "all"):
            for limit in (1, 2, 500):
                with self.subTest(status=status, limit=limit):
                    rows = fetch_dicts(self.c, self.user, "SELECT * FROM alpaca_orders(%s, %s, %s)",
                                       (self.cred, status, limit))
                    self.check_orders(rows, self.expected_orders(status, limit))
        rows = fetch_dicts(self.c, self.user, "SELECT * FROM alpaca_orders(%s)", (self.cred,))
        self.check_orders(rows, self.expected_orders("open", 50))  # defaults: open, 50
        self.assertEqual(len(self.expected_orders("all", 500)), 9)
        self.assertEqual(len(self.expected_orders("open", 500)), 4)
        legs = [r for r in rows if r["legs"]]
        self.assertEqual(legs[0]["order_class"], "mleg")
        self.assertEqual([leg["symbol"] for leg in legs[0]["legs"]],
                         ["AAPL240119C00190000", "AAPL240119C00200000"])
        # What went over the wire: Alpaca's parameters, legs nested.
        queries = [r["query"] for r in S.standin_stats(settled=True)["recent"]
                   if r["path"] == "/v2/orders"]
        self.assertIn("status=closed&limit=500&nested=true", queries)
        self.assertIn("status=open&limit=50&nested=true", queries)

    def test_orders_argument_bounds(self):
        S.standin_reset_stats()
        for status, limit in (("open", 0), ("open", 501), ("open", None), ("bogus", 10),
                              (None, 10), ("OPEN", 10), ("open&x=1", 10)):
            with self.subTest(status=status, limit=limit):
                _, err, _ = attempt(self.c, self.user, "SELECT * FROM alpaca_orders(%s, %s, %s)",
                                    (self.cred, status, limit))
                self.assertSqlstate(err, "22023")
        # Refused before any call to Alpaca.
        self.assertEqual(S.standin_stats()["by_path"].get("/v2/orders", 0), 0)

    STAMPS = "SELECT last_validated_at, last_used_at FROM alpaca_list_credentials() WHERE id = %s"
    AUDIT = "SELECT action, purpose, outcome, app_user FROM alpaca.audit_log WHERE credential_id = %s ORDER BY id"
    # A call writes nothing in the caller's transaction: its decrypt row is committed by the
    # redeem before the keys leave (there when the call returns); its outcome row and
    # last_used_at follow from the sidecar's outcome writer, within this bound.
    OUTCOME_BOUND = 10.0

    def wait_rows(self, user, sql, params, count):
        """Polls (never sleeps blindly) until `sql` returns `count` rows; returns them."""
        rows = []

        def enough():
            rows[:] = S.as_user(self.c, user, sql, params)
            return len(rows) >= count
        self.assertTrue(S.wait_until(enough, timeout=self.OUTCOME_BOUND),
                        f"only {rows} after {self.OUTCOME_BOUND} s")
        return rows

    def decrypt_rows(self, user, cred):
        return S.as_user(self.c, user, "SELECT purpose FROM alpaca.audit_log WHERE credential_id = %s "
                         "AND action = 'decrypt' ORDER BY id", (cred,))

    def test_validate_records_and_audits(self):
        user, cred = self.store(self.c, "val")
        self.assertEqual(S.as_user(self.c, user, self.STAMPS, (cred,)), [(None, None)])
        t0 = S.as_user(self.c, user, "SELECT clock_timestamp()")[0][0]
        self.assertEqual(S.as_user(self.c, user, "SELECT alpaca_validate_credential(%s)", (cred,)), [(True,)])
        # The decrypt row is there as soon as the call returns; the outcome follows.
        self.assertEqual(self.decrypt_rows(user, cred), [("validate",)])
        self.wait_rows(user, self.STAMPS + " AND last_used_at IS NOT NULL", (cred,), 1)
        validated, used = S.as_user(self.c, user, self.STAMPS, (cred,))[0]
        self.assertIsNotNone(validated)
        self.assertGreaterEqual(validated, t0)
        self.assertEqual(validated, used)
        # A data call moves last_used_at, not last_validated_at.
        S.as_user(self.c, user, "SELECT count(*) FROM alpaca_positions(%s)", (cred,))
        self.assertEqual(self.decrypt_rows(user, cred), [("validate",), ("positions",)])
        self.wait_rows(user, self.STAMPS + " AND last_used_at > %s", (cred, used), 1)
        validated2, used2 = S.as_user(self.c, user, self.STAMPS, (cred,))[0]
        self.assertEqual(validated2, validated)
        self.assertGreater(used2, used)
        # No ticket row (minting writes nothing); one decrypt and one call row per call.
        self.wait_rows(user, self.AUDIT, (cred,), 5)
        self.assertEqual(S.as_user(self.c, user, self.AUDIT, (cred,)), [
                                 ("store", None, "ok", user),
                                 ("decrypt", "validate", "ok", user), ("call", "validate", "ok", user),
                                 ("decrypt", "positions", "ok", user), ("call", "positions", "ok", user)])
        # The sidecar's decrypt rows come from its own role; the call rows name the caller's
        # role (carried in the ticket), as does the store row.
        with S.connect() as su:
            roles = su.execute("SELECT action, db_role, http_status FROM alpaca.audit_log "
                               "WHERE credential_id = %s", (cred,)).fetchall()
        self.assertEqual({r for a, r, _ in roles if a == "decrypt"}, {"alpaca_sidecar_login"})
        self.assertEqual({r for a, r, _ in roles if a != "decrypt"}, {"app"})
        self.assertEqual([h for a, _, h in roles if a == "call"], [200, 200])

    def test_validate_false_for_bad_secret(self):
        good = S.fixture_secret(S.ALICE)
        user, cred = self.store(self.c, "badsecret", secret=good[:-1] + ("A" if good[-1] != "A" else "B"))
        self.assertEqual(S.as_user(self.c, user, "SELECT alpaca_validate_credential(%s)", (cred,)), [(False,)])
        self.assertEqual(self.decrypt_rows(user, cred), [("validate",)])
        self.assertIn(("call", "validate", "rejected", user),
                      self.wait_rows(user, self.AUDIT + "", (cred,), 3))
        self.wait_rows(user, self.STAMPS + " AND last_validated_at IS NOT NULL", (cred,), 1)
        # The same credential for data: 42501 naming the credential, never the key or secret.
        for fn in ("alpaca_account", "alpaca_positions", "alpaca_orders"):
            _, err, _ = attempt(self.c, user, "SELECT * FROM %s(%%s)" % fn, (cred,))
            self.assertSqlstate(err, "42501", fn)
            self.assertIn(str(cred), err.diag.message_primary)
            self.assertIn("request is not authorized", err_text(err))  # Alpaca's own words
            self.assertNoSecrets(err_text(err))
        # Those refused calls leave their trace too, though the caller's statement failed:
        # a decrypt row each, and a 'rejected' call row with Alpaca's 401 or 403.
        self.assertEqual(len(self.decrypt_rows(user, cred)), 4)
        rows = self.wait_rows(user, "SELECT purpose, outcome, http_status FROM alpaca.audit_log "
                              "WHERE credential_id = %s AND action = 'call' ORDER BY id", (cred,), 4)
        self.assertEqual([(p, o) for p, o, _ in rows], [("validate", "rejected"), ("account", "rejected"),
                                                       ("positions", "rejected"), ("orders", "rejected")])
        self.assertTrue(all(h in (401, 403) for _, _, h in rows), rows)

    def test_calls_in_read_only_transactions(self):
        """A call writes nothing in the caller's transaction: BEGIN READ ONLY and
        default_transaction_read_only = on both work, and the calls are still recorded."""
        user, cred = self.store(self.c, "readonly")
        with S.connect(role="app", autocommit=False) as c:
            c.execute("BEGIN READ ONLY")
            c.execute("SELECT alpaca_set_user(%s)", (user,))
            self.assertEqual(c.execute("SHOW transaction_read_only").fetchone(), ("on",))
            n = c.execute("SELECT count(*) FROM alpaca_positions(%s)", (cred,)).fetchone()[0]
            self.assertEqual(n, len(S.fixture_json(S.ALICE, "positions.json")))
            self.assertEqual(c.execute("SELECT alpaca_validate_credential(%s)", (cred,)).fetchone(), (True,))
            self.assertEqual(c.execute("SELECT status FROM alpaca_account(%s)", (cred,)).fetchone(), ("ACTIVE",))
            oid = c.execute("SELECT id FROM alpaca_orders(%s, 'all', 10) LIMIT 1", (cred,)).fetchone()[0]
            # The order look-ups (alpaca._trade) write nothing in the caller's transaction either.
            self.assertEqual(c.execute("SELECT id FROM alpaca_get_order(%s, %s)", (cred, oid)).fetchone(), (oid,))
            # Writing in that transaction is refused, so the transaction really is read-only.
            with self.assertRaises(psycopg.errors.ReadOnlySqlTransaction):
                c.execute("SELECT alpaca_create_account('x')")
            c.rollback()
        with S.connect(role="app", autocommit=False, options="-c default_transaction_read_only=on") as c:
            c.execute("SELECT alpaca_set_user(%s)", (user,))
            self.assertEqual(c.execute("SHOW transaction_read_only").fetchone(), ("on",))
            self.assertEqual(c.execute("SELECT count(*) FROM alpaca_account(%s)", (cred,)).fetchone(), (1,))
            c.commit()
        # Six calls: six decrypt rows at once, six call rows and last_used_at soon after.
        self.assertEqual([p for (p,) in self.decrypt_rows(user, cred)],
                         ["positions", "validate", "account", "orders", "orders", "account"])
        rows = self.wait_rows(user, "SELECT purpose, outcome FROM alpaca.audit_log WHERE "
                              "credential_id = %s AND action = 'call' ORDER BY id", (cred,), 6)
        self.assertEqual(rows, [("positions", "ok"), ("validate", "ok"), ("account", "ok"),
                                ("orders", "ok"), ("get_order", "ok"), ("account", "ok")])
        self.wait_rows(user, self.STAMPS + " AND last_used_at IS NOT NULL AND last_validated_at IS NOT NULL",
                       (cred,), 1)

    def test_other_users_credential_is_not_callable(self):
        other, _ = self.store(self.c, "mallory", key=S.BOB)
        S.standin_reset_stats()
        for fn in ("alpaca_account(%s)", "alpaca_positions(%s)", "alpaca_orders(%s)",
                   "alpaca_validate_credential(%s)"):
            _, err, _ = attempt(self.c, other, "SELECT * FROM " + fn, (self.cred,))
            self.assertSqlstate(err, "42501", fn)
            self.assertIn("does not exist or does not belong", err.diag.message_primary)
        _, err, _ = attempt(self.c, other, "SELECT * FROM alpaca_positions(%s)", (uuid.uuid4(),))
        self.assertSqlstate(err, "42501")
        self.assertEqual(S.standin_stats()["total"], 0)

    def test_deactivated_credential_is_not_called(self):
        user, cred = self.store(self.c, "inactive")
        S.as_user(self.c, user, "SELECT alpaca_update_credential(%s, is_active => false)", (cred,))
        _, err, _ = attempt(self.c, user, "SELECT * FROM alpaca_positions(%s)", (cred,))
        self.assertSqlstate(err, "55000")

    # The calls are C functions (extension/alpaca_calls.cpp); the plpgsql path they replaced,
    # alpaca._call through alpaca._issue_ticket, stays for other callers. Each with its SQL.
    CALLS = {
        "account": ("SELECT * FROM alpaca_account(%s)",
                    "SELECT * FROM alpaca._parse_account(alpaca._call(%s, 'account'))"),
        "positions": ("SELECT * FROM alpaca_positions(%s)",
                      "SELECT * FROM alpaca._parse_positions(alpaca._call(%s, 'positions'))"),
        "orders": ("SELECT * FROM alpaca_orders(%s, 'all', 5)",
                   "SELECT * FROM alpaca._parse_orders(alpaca._call(%s, 'orders', "
                   "alpaca._orders_query('all', 5)))"),
        "validate": ("SELECT alpaca_validate_credential(%s)",
                     "SELECT alpaca._call(%s, 'validate', '{}', true) IS NOT NULL"),
    }

    def test_refusals_equal_those_of_the_plpgsql_path(self):
        """No user, a NULL, unknown or foreign credential, a deactivated one: every call
        refuses with the SQLSTATE, message, detail and hint of alpaca._call, and asks Alpaca
        nothing."""
        def diag(conn, user, sql, cred):
            try:
                with conn.transaction():
                    if user is not None:
                        conn.execute("SELECT alpaca_set_user(%s)", (user,))
                    conn.execute(sql, (cred,)).fetchall()
            except psycopg.Error as e:
                d = e.diag
                return (e.sqlstate, d.message_primary, d.message_detail, d.message_hint)
            return None

        other, _ = self.store(self.c, "cmp-other", key=S.BOB)
        owner, inactive = self.store(self.c, "cmp-inactive")
        S.as_user(self.c, owner, "SELECT alpaca_update_credential(%s, is_active => false)", (inactive,))
        cases = {"no user": (None, self.cred), "foreign": (other, self.cred), "null": (other, None),
                 "unknown": (other, uuid.uuid4()), "deactivated": (owner, inactive)}
        expected_state = {"no user": "42501", "foreign": "42501", "null": "42501",
                          "unknown": "42501", "deactivated": "55000"}
        S.standin_reset_stats()
        with S.connect() as su:  # alpaca._call is alpaca_owner's; a superuser may call it
            for case, (user, cred) in cases.items():
                for op, (new_sql, old_sql) in self.CALLS.items():
                    with self.subTest(case=case, op=op):
                        new = diag(self.c, user, new_sql, cred)
                        old = diag(su, user, old_sql, cred)
                        self.assertIsNotNone(new)
                        self.assertEqual(new, old)
                        self.assertEqual(new[0], expected_state[case])
        self.assertEqual(S.standin_stats()["total"], 0)

    def test_orders_argument_errors_equal_those_of_the_plpgsql_path(self):
        """alpaca_orders' argument checks: alpaca._orders_query's words, checked before the
        user (as an argument of alpaca._call was)."""
        def diag(conn, sql, params):
            try:
                with conn.transaction():
                    conn.execute(sql, params).fetchall()
            except psycopg.Error as e:
                return (e.sqlstate, e.diag.message_primary, e.diag.message_hint)
            return None
        with S.connect() as su:
            for status, limit in (("open", 0), ("open", 501), ("open", None), ("bogus", 10),
                                  (None, 10), ("closed", -1)):
                with self.subTest(status=status, limit=limit):
                    new = diag(self.c, "SELECT * FROM alpaca_orders(%s, %s, %s)",
                               (self.cred, status, limit))
                    old = diag(su, "SELECT alpaca._orders_query(%s, %s)", (status, limit))
                    self.assertIsNotNone(new)
                    self.assertEqual(new, old)


# ------------------------------------------------------------------------------------------
# Paper vs live, and TLS trust
# ------------------------------------------------------------------------------------------
class RoutingTest(Base):
    def test_environment_picks_listener(self):
        c = self.conn()
        live_user, live = self.store(c, "live", key=S.LIVE, environment="live")
        paper_user, paper = self.store(c, "paper", key=S.ALICE)
        S.standin_reset_stats()
        acct = S.as_user(c, live_user, "SELECT id, account_number FROM alpaca_account(%s)", (live,))
        want = S.fixture_json(S.LIVE, "account.json")
        self.assertEqual([(str(a), n) for a, n in acct], [(want["id"], want["account_number"])])
        pos = S.as_user(c, live_user, "SELECT symbol, qty FROM alpaca_positions(%s)", (live,))
        self.assertEqual(pos, [("SPY", D("2"))])
        self.assertEqual(S.as_user(c, live_user, "SELECT count(*) FROM alpaca_orders(%s, 'all')", (live,)), [(0,)])
        S.as_user(c, paper_user, "SELECT count(*) FROM alpaca_positions(%s)", (paper,))
        st = S.standin_stats(settled=True)
        self.assertEqual(st["by_listener"], {"live": 3, "paper": 1})
        self.assertEqual({(r["listener"], r["key_id"]) for r in st["recent"]},
                         {("live", S.LIVE), ("paper", S.ALICE)})

    def test_environment_mismatch_is_rejected_by_alpaca(self):
        c = self.conn()
        u1, live_as_paper = self.store(c, "lap", key=S.LIVE, environment="paper")
        u2, paper_as_live = self.store(c, "pal", key=S.ALICE, environment="live")
        self.assertEqual(S.as_user(c, u1, "SELECT alpaca_validate_credential(%s)", (live_as_paper,)), [(False,)])
        self.assertEqual(S.as_user(c, u2, "SELECT alpaca_validate_credential(%s)", (paper_as_live,)), [(False,)])
        _, err, _ = attempt(c, u1, "SELECT * FROM alpaca_positions(%s)", (live_as_paper,))
        self.assertSqlstate(err, "42501")
        self.assertNoSecrets(err_text(err), key=S.LIVE)

    def test_untrusted_certificate_refused(self):
        other_ca = os.path.join(WORK, "other-ca")
        os.makedirs(other_ca, exist_ok=True)
        subprocess.run(["sh", os.path.join(ROOT, "scripts", "make_test_ca.sh"), other_ca],
                       check=True, capture_output=True)
        sc = S.STACK.extra_sidecar("badca", ca_file=os.path.join(other_ca, "ca.crt"), **FAST).start()
        try:
            login_role("brk_badca", sc.socket_path)
            c = self.conn("brk_badca")
            user, cred = self.store(c, "tls")
            S.standin_reset_stats()
            before = S.standin_stats()["tls_handshake_failures"]
            for sql in ("SELECT * FROM alpaca_positions(%s)", "SELECT alpaca_validate_credential(%s)"):
                _, err, secs = attempt(c, user, sql, (cred,))
                self.assertSqlstate(err, "08006", sql)
                self.assertRegex(err_text(err).lower(), "certificate|ssl|tls")
                self.assertLess(secs, 1.5)  # a certificate problem is not retried until the deadline
            st = S.standin_stats()
            self.assertGreater(st["tls_handshake_failures"], before)
            self.assertEqual(st["by_path"], {})  # no request reached Alpaca
        finally:
            sc.stop()


# ------------------------------------------------------------------------------------------
# Faults: each stand-in knob -> its SQLSTATE (fast sidecar: 800 ms per attempt, 3 attempts,
# 2 s deadline, 1 MiB body cap)
# ------------------------------------------------------------------------------------------
class FaultTest(AliceBase):
    ROLE = "brk_fast"

    def positions(self):
        return attempt(self.c, self.user, "SELECT * FROM alpaca_positions(%s)", (self.cred,))

    def fault(self, **spec):
        spec.setdefault("path", "/v2/positions")
        S.standin_fault(spec)
        S.standin_reset_stats()

    def answered(self, status):
        return S.standin_stats()["by_status"].get(str(status), 0)

    def test_baseline_through_fast_sidecar(self):
        rows, err, _ = self.positions()
        self.assertIsNone(err)
        self.assertEqual(len(rows), 7)

    def test_delay_is_only_slower(self):
        self.fault(mode="delay", delay_ms=400)
        rows, err, secs = self.positions()
        self.assertIsNone(err, err and err_text(err))
        self.assertEqual(len(rows), 7)
        self.assertGreaterEqual(secs, 0.4)

    def test_ratelimit_after_retries_is_53400(self):
        self.fault(mode="ratelimit", reset_in=1)
        _, err, secs = self.positions()
        self.assertSqlstate(err, "53400")
        self.assertIn(str(self.cred), err.diag.message_primary)
        self.assertEqual(self.answered(429), 3)  # max_attempts
        # Each retry waited for X-RateLimit-Reset (1 s, capped at retry_max_delay_ms 200), not
        # the 50-100 ms backoff of other failures.
        self.assertGreaterEqual(secs, 0.38)
        self.assertLess(secs, 2.5)

    def test_ratelimit_once_is_retried(self):
        self.fault(mode="ratelimit", reset_in=1, count=1)
        rows, err, _ = self.positions()
        self.assertIsNone(err, err and err_text(err))
        self.assertEqual(len(rows), 7)
        self.assertEqual((self.answered(429), self.answered(200)), (1, 1))

    def test_503_after_retries_is_08006(self):
        self.fault(mode="status", status=503)
        _, err, _ = self.positions()
        self.assertSqlstate(err, "08006")
        self.assertIn("503", err_text(err))
        self.assertEqual(self.answered(503), 3)

    def test_503_once_is_retried(self):
        self.fault(mode="status", status=503, count=1)
        rows, err, _ = self.positions()
        self.assertIsNone(err, err and err_text(err))
        self.assertEqual(len(rows), 7)

    def test_500_is_08006(self):
        self.fault(mode="status", status=500)
        _, err, _ = self.positions()
        self.assertSqlstate(err, "08006")
        self.assertIn("internal server error occurred", err_text(err))

    def test_truncated_is_08006(self):
        self.fault(mode="truncated")
        _, err, _ = self.positions()
        self.assertSqlstate(err, "08006")

    def test_reset_is_08006(self):
        self.fault(mode="reset")
        _, err, _ = self.positions()
        self.assertSqlstate(err, "08006")

    def test_malformed_is_xx000(self):
        for body in ('[{"symbol":"AAPL","qty":', "<html>gateway</html>", '{"not":"an array"}'):
            with self.subTest(body=body):
                S.standin_clear()
                self.fault(mode="malformed", body=body)
                _, err, _ = self.positions()
                self.assertSqlstate(err, "XX000")
                self.assertIn("malformed Alpaca answer", err.diag.message_primary)
        # The backend is fine afterwards.
        S.standin_clear()
        self.assertIsNone(self.positions()[1])

    def test_oversized_is_54000(self):
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                S.standin_clear()
                self.fault(mode="oversized", size_bytes=2 * 1024 * 1024, chunked=chunked)
                _, err, secs = self.positions()
                self.assertSqlstate(err, "54000")
                self.assertLess(secs, 2.0)

    def hung_call_with(self, setting):
        """(error, seconds) of a positions call against a hanging Alpaca under SET LOCAL setting."""
        self.fault(mode="hang")
        with self.c.transaction():
            self.c.execute("SET LOCAL " + setting)
            self.c.execute("SELECT alpaca_set_user(%s)", (self.user,))
            t0 = time.monotonic()
            with self.assertRaises(psycopg.Error) as cm:
                with self.c.transaction():
                    self.c.execute("SELECT * FROM alpaca_positions(%s)", (self.cred,))
            return cm.exception, time.monotonic() - t0

    def test_hang_ends_at_request_timeout_57014(self):
        err, secs = self.hung_call_with("pg_alpaca.request_timeout_ms = 700")
        self.assertSqlstate(err, "57014")
        self.assertIn("700 ms", err.diag.message_primary)
        self.assertGreaterEqual(secs, 0.65)
        self.assertLess(secs, 1.2)

    def test_hang_ends_at_statement_timeout(self):
        err, secs = self.hung_call_with("statement_timeout = 500")
        self.assertSqlstate(err, "57014")
        self.assertIn("statement timeout", err.diag.message_primary)
        self.assertLess(secs, 1.0)

    def test_hang_ends_at_sidecar_deadline_08006(self):
        self.fault(mode="hang")
        _, err, secs = self.positions()
        self.assertSqlstate(err, "08006")
        self.assertLess(secs, 3.0)  # the sidecar's 2 s deadline, not the backend's 15 s

    def test_401_403_are_42501_naming_the_credential(self):
        for status in (401, 403):
            with self.subTest(status=status):
                S.standin_clear()
                self.fault(mode="status", status=status)
                _, err, _ = self.positions()
                self.assertSqlstate(err, "42501")
                self.assertIn(str(self.cred), err.diag.message_primary)
                self.assertIn(str(status), err_text(err))
                self.assertNoSecrets(err_text(err))

    def test_404_422_are_22023_with_alpacas_message(self):
        cases = ((404, '{"code":40410000,"message":"position does not exist"}', "position does not exist"),
                 (422, '{"code":40010001,"message":"invalid status: sideways"}', "invalid status: sideways"))
        for status, body, words in cases:
            with self.subTest(status=status):
                S.standin_clear()
                self.fault(mode="status", status=status, body=body)
                _, err, _ = self.positions()
                self.assertSqlstate(err, "22023")
                self.assertIn(words, err.diag.message_primary)
                self.assertEqual(self.answered(status), 1)  # 4xx is not retried


# ------------------------------------------------------------------------------------------
# Sidecar down, cancel, concurrency, tickets
# ------------------------------------------------------------------------------------------
class LifecycleTest(Base):
    def test_stopped_sidecar_is_08001_within_a_second(self):
        sc = S.STACK.extra_sidecar("down", **FAST).start()
        try:
            login_role("brk_down", sc.socket_path)
            c = self.conn("brk_down")
            user, cred = self.store(c, "down")
            rows, err, _ = attempt(c, user, "SELECT * FROM alpaca_positions(%s)", (cred,))
            self.assertIsNone(err, err and err_text(err))  # routed to this sidecar, and it works
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with self.subTest(signal=sig.name):
                    if not sc.alive():
                        sc.start()
                        self.assertIsNone(attempt(c, user, "SELECT count(*) FROM alpaca_positions(%s)", (cred,))[1])
                    sc.stop(sig)
                    _, err, secs = attempt(c, user, "SELECT * FROM alpaca_positions(%s)", (cred,))
                    self.assertSqlstate(err, "08001", sig.name)
                    self.assertIn(sc.socket_path, err.diag.message_primary)
                    self.assertLess(secs, 1.0)
                    # The session is still usable.
                    self.assertEqual(c.execute("SELECT 1").fetchone(), (1,))
        finally:
            sc.stop()

    def call_in_thread(self, c, user, cred):
        result = {}

        def call():
            result["r"] = attempt(c, user, "SELECT * FROM alpaca_positions(%s)", (cred,))
            result["done"] = time.monotonic()

        t = threading.Thread(target=call)
        t.start()
        return t, result

    def test_sidecar_dying_mid_request_is_08006_and_sigterm_drains(self):
        sc = S.STACK.extra_sidecar("dying", **FAST).start()
        try:
            login_role("brk_down", sc.socket_path)
            c = self.conn("brk_down")
            user, cred = self.store(c, "dying")
            # SIGTERM while a (slow) request runs: it is finished and answered, then the socket goes.
            S.standin_fault({"mode": "delay", "delay_ms": 600, "path": "/v2/positions"})
            t, result = self.call_in_thread(c, user, cred)
            self.assertTrue(S.wait_until(lambda: S.standin_stats()["in_flight"] >= 1, 5))
            sc.stop(signal.SIGTERM)
            t.join(5)
            rows, err, _ = result["r"]
            self.assertIsNone(err, err and err_text(err))
            self.assertEqual(len(rows), 7)
            self.assertSqlstate(attempt(c, user, "SELECT * FROM alpaca_positions(%s)", (cred,))[1], "08001")
            # SIGKILL while a request hangs: the backend learns at once that the sidecar is gone.
            sc.start()
            S.standin_clear()
            S.standin_fault({"mode": "hang", "path": "/v2/positions"})
            t, result = self.call_in_thread(c, user, cred)
            self.assertTrue(S.wait_until(lambda: S.standin_stats()["hanging"] >= 1, 5))
            killed_at = time.monotonic()
            sc.stop(signal.SIGKILL)
            t.join(5)
            _, err, _ = result["r"]
            self.assertSqlstate(err, "08006")
            self.assertIn("alpaca-sidecar", err.diag.message_primary)
            self.assertLess(result["done"] - killed_at, 1.0)
            self.assertEqual(c.execute("SELECT 1").fetchone(), (1,))
        finally:
            sc.stop()

    def test_cancel_of_hung_call(self):
        c = self.conn()
        user, cred = self.store(c, "cancel")
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        S.standin_fault({"mode": "hang", "path": "/v2/positions"})
        t, result = self.call_in_thread(c, user, cred)
        self.assertTrue(S.wait_until(lambda: S.standin_stats()["hanging"] >= 1, 5), "the call never hung")
        with S.connect() as su:
            cancelled_at = time.monotonic()
            self.assertTrue(su.execute("SELECT pg_cancel_backend(%s)", (pid,)).fetchone()[0])
        t.join(5)
        self.assertFalse(t.is_alive())
        _, err, _ = result["r"]
        self.assertSqlstate(err, "57014")
        self.assertLess(result["done"] - cancelled_at, 1.0)
        # The sidecar notices the backend hung up and drops the upstream request.
        self.assertTrue(S.wait_until(lambda: S.standin_stats()["hanging"] == 0, 2.0),
                        "the sidecar kept the upstream request open after the cancel")
        S.standin_clear()
        # Same backend, next call: served.
        self.assertEqual(c.execute("SELECT pg_backend_pid()").fetchone()[0], pid)
        rows, err, _ = attempt(c, user, "SELECT * FROM alpaca_positions(%s)", (cred,))
        self.assertIsNone(err, err and err_text(err))
        self.assertEqual(len(rows), 7)

    def test_twenty_concurrent_users_see_only_their_own(self):
        setup = self.conn()
        users = []
        for i in range(20):
            key = S.ALICE if i % 2 == 0 else S.BOB
            user, cred = self.store(setup, "conc%02d" % i, key=key)
            users.append((user, cred, key))
        expected = {k: [(p["symbol"], D(p["qty"])) for p in S.fixture_json(k, "positions.json")]
                    for k in (S.ALICE, S.BOB)}
        expected_orders = {k: sorted(o["id"] for o in S.fixture_json(k, "orders.json")) for k in (S.ALICE, S.BOB)}
        conns = [self.conn() for _ in users]
        barrier = threading.Barrier(len(users))
        problems = []

        def work(i):
            user, cred, key = users[i]
            c = conns[i]
            foreign = users[(i + 1) % len(users)][1]
            try:
                barrier.wait(10)
                for _ in range(3):
                    rows = S.as_user(c, user, "SELECT symbol, qty FROM alpaca_positions(%s)", (cred,))
                    if rows != expected[key]:
                        problems.append("%s got %r" % (user, rows))
                ids = sorted(str(r[0]) for r in S.as_user(c, user, "SELECT id FROM alpaca_orders(%s, 'all', 500)", (cred,)))
                if ids != expected_orders[key]:
                    problems.append("%s orders %r" % (user, ids))
                _, err, _ = attempt(c, user, "SELECT * FROM alpaca_positions(%s)", (foreign,))
                if err is None or err.sqlstate != "42501":
                    problems.append("%s could call %s's credential" % (user, foreign))
                listed = S.as_user(c, user, "SELECT id FROM alpaca_list_credentials()")
                if listed != [(cred,)]:
                    problems.append("%s lists %r" % (user, listed))
                seen = S.as_user(c, user, "SELECT DISTINCT app_user FROM alpaca.audit_log")
                if seen != [(user,)]:
                    problems.append("%s sees audit rows of %r" % (user, seen))
            except Exception as e:  # noqa: BLE001 - reported below
                problems.append("%s: %r" % (user, e))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(users))]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        print("\n[count] 20 sessions x 4 calls in %.2f s" % (time.monotonic() - t0))
        self.assertEqual(problems, [])


class TicketTest(Base):
    def test_ticket_is_good_once_for_one_purpose_and_only_for_the_sidecar(self):
        c = self.conn()
        user, cred = self.store(c, "ticket")
        sock = ENV["PGA_SIDECAR_SOCKET"]

        def issue(purpose):
            return S.as_user(c, user, "SELECT alpaca_issue_ticket(%s, %s)", (cred, purpose))[0][0]

        # Used once through the sidecar: Alpaca's answer, exactly the fixture.
        t1 = issue("positions")
        hdr, body = sidecar_request(sock, "positions", t1)
        self.assertEqual((hdr["outcome"], hdr["http_status"]), ("ok", 200))
        self.assertEqual(json.loads(body), S.fixture_json(S.ALICE, "positions.json"))
        # Replayed: refused, and nothing about the ticket in the answer.
        hdr, body = sidecar_request(sock, "positions", t1)
        self.assertEqual(hdr["outcome"], "ticket_rejected")
        self.assertEqual(body, b"")
        self.assertNotIn(t1, json.dumps(hdr))

        # Other roles cannot redeem: not the application role, not the admin role.
        t2 = issue("positions")
        for role in ("app", "admin"):
            with self.subTest(role=role), S.connect(role=role) as other:
                with self.assertRaises(psycopg.Error) as cm:
                    other.execute("CALL alpaca.redeem_ticket(%s, 'positions', NULL, NULL, NULL, NULL)", (t2,))
                self.assertEqual(cm.exception.sqlstate, "42501")
        # Those attempts did not use it up; the sidecar role may, once.
        with S.connect(role="alpaca_sidecar_login") as sc:
            rows = [r[:2] for r in sc.execute("CALL alpaca.redeem_ticket(%s, 'positions', NULL, NULL, NULL, NULL)", (t2,)).fetchall()]
            self.assertEqual(rows, [(cred, "paper")])
            with self.assertRaises(psycopg.Error) as cm:
                sc.execute("CALL alpaca.redeem_ticket(%s, 'positions', NULL, NULL, NULL, NULL)", (t2,))
            self.assertEqual(cm.exception.sqlstate, "42501")
            self.assertIn("already redeemed", cm.exception.diag.message_primary)
        hdr, _ = sidecar_request(sock, "positions", t2)
        self.assertEqual(hdr["outcome"], "ticket_rejected")

        # A ticket for one purpose does not open another operation.
        t3 = issue("account")
        hdr, body = sidecar_request(sock, "positions", t3)
        self.assertEqual(hdr["outcome"], "ticket_rejected")
        # A forged ticket (one character changed) is refused too.
        t4 = issue("positions")
        forged = t4[:-2] + ("A" if t4[-2] != "A" else "B") + t4[-1]
        self.assertEqual(sidecar_request(sock, "positions", forged)[0]["outcome"], "ticket_rejected")
        self.assertEqual(sidecar_request(sock, "positions", t4)[0]["outcome"], "ok")


if __name__ == "__main__":
    unittest.main()
