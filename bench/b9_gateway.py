"""B9: the gateway (issue 11). The official SDKs' positions call through the gateway (token
where the key id goes) against the same call straight to the stand-in with the real keys, in
the same process, alternating call by call; and requests per second at 32 concurrent clients
(curl on keep-alive connections), gateway against direct.

Called by bench/bench.py (`--only B9`), which hands in its own helpers; needs the stack's
gateway on (scripts/bench.sh: `stack.sh gateway DIR on`) and the pinned clients of
test/clients (scripts/lib.sh ensure_test_clients, into $PGA_BUILD_DIR/test-clients).
"""
import json
import os
import subprocess
import tempfile
import time

SIZES = {"B9_CALLS": (500, 30), "B9_RUNS": (3, 1), "B9_SECONDS": (10, 1), "B9_CLIENTS": (32, 32)}

PY = r"""
import json, os, time
from alpaca.trading.client import TradingClient
n = int(os.environ["CALLS"])
gw = TradingClient(api_key=os.environ["TOKEN"], secret_key="unused", paper=True,
                   url_override=os.environ["GW"])
direct = TradingClient(api_key=os.environ["KEY"], secret_key=os.environ["SECRET"], paper=True,
                       url_override=os.environ["DIRECT"])
for c in (gw, direct):
    for _ in range(max(5, n // 10)):
        c.get_all_positions()
out = {"gateway": [], "direct": []}
for _ in range(n):
    for name, c in (("gateway", gw), ("direct", direct)):
        t = time.perf_counter()
        c.get_all_positions()
        out[name].append((time.perf_counter() - t) * 1000.0)
print(json.dumps(out))
"""

JS = r"""
const { trading } = require("@alpacahq/alpaca-trade-api");
(async () => {
  const n = Number(process.env.CALLS);
  const cfg = (keyId, secret, basePath) => new trading.PositionsApi(new trading.Configuration({ keyId, secret, basePath }));
  const gw = cfg(process.env.TOKEN, "unused", process.env.GW);
  const direct = cfg(process.env.KEY, process.env.SECRET, process.env.DIRECT);
  for (const c of [gw, direct]) for (let i = 0; i < Math.max(5, n / 10); i++) await c.getAllOpenPositions();
  const out = { gateway: [], direct: [] };
  for (let i = 0; i < n; i++) {
    for (const [name, c] of [["gateway", gw], ["direct", direct]]) {
      const t = process.hrtime.bigint();
      await c.getAllOpenPositions();
      out[name].push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def size(name, smoke):
    full, small = SIZES[name]
    v = os.environ.get("PGA_BENCH_" + name)
    return type(full)(v) if v else (small if smoke else full)


def run_client(cmd, script, env, cwd):
    full = dict(os.environ)
    full.update(env)
    p = subprocess.run(cmd, input=script, capture_output=True, text=True, env=full, cwd=cwd,
                       timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {p.stderr[-1500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def curl_config(url, headers, calls, cafile=None):
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as f:
        for k, v in headers.items():
            f.write(f'header = "{k}: {v}"\n')
        if cafile:
            f.write(f'cacert = "{cafile}"\n')
        for _ in range(calls):
            f.write(f'url = "{url}"\noutput = "/dev/null"\n')
        return f.name


def curl_rate(url, headers, clients, seconds, cafile=None):
    """Requests per second of `clients` curl processes, each on one keep-alive connection."""
    per = max(5, int(seconds * 1000 / 20))
    cfg = curl_config(url, headers, per, cafile)
    try:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(["curl", "-sS", "--http1.1", "--fail", "-K", cfg])
                 for _ in range(clients)]
        if any(p.wait() != 0 for p in procs):
            raise RuntimeError(f"curl against {url} failed")
        return clients * per / (time.perf_counter() - t0)
    finally:
        os.unlink(cfg)


def b9(args, h):
    """h: bench/bench.py's module (Figure, pct, spread, store_one, connect, control, log)."""
    env = os.environ
    calls, runs = size("B9_CALLS", args.smoke), size("B9_RUNS", args.smoke)
    seconds, clients = size("B9_SECONDS", args.smoke), size("B9_CLIENTS", args.smoke)
    build = env.get("PGA_BUILD_DIR") or os.path.join(h.HERE, "..", "build")
    python = os.path.join(build, "test-clients", "python", "bin", "python")
    js_dir = os.path.join(os.path.dirname(h.HERE), "test", "clients", "alpaca-js")
    gw = h.STACK.gateway_on()
    db = env.get("PGDATABASE", "alpaca")
    key = env.get("PGA_BENCH_B9_KEY", "PKBENCH10")  # a stand-in account with 10 positions
    secret = h.fixture_secret(key)
    h.control("POST", "/ratelimit", {"limit": 10000000})
    cred = h.store_one(db, "b9", key, "b9")
    with h.connect(db, "bench", autocommit=False) as conn:
        conn.execute("SELECT alpaca_set_user('b9')")
        token = conn.execute("SELECT alpaca_open_session(%s, 'read', '1 day')", (cred,)).fetchone()[0]
        conn.commit()
    direct = env["PGA_STANDIN_PAPER_URL"]
    cenv = {"TOKEN": token, "GW": gw, "KEY": key, "SECRET": secret, "DIRECT": direct,
            "CALLS": str(calls), "REQUESTS_CA_BUNDLE": env["PGA_CA_FILE"],
            "NODE_EXTRA_CA_CERTS": env["PGA_CA_FILE"]}
    figures = []
    for label, cmd, script, cwd, what in (
            ("alpaca-py", [python, "-"], PY, os.path.dirname(h.HERE),
             "alpaca-py `get_all_positions()`"),
            ("JS SDK", ["node", "-"], JS, js_dir, "JS SDK `getAllOpenPositions()`")):
        o50, o99, b50, b99, over = [], [], [], [], []
        for _ in range(runs):
            out = run_client(cmd, script, cenv, cwd)
            o50.append(h.pct(out["gateway"], 50)), o99.append(h.pct(out["gateway"], 99))
            b50.append(h.pct(out["direct"], 50)), b99.append(h.pct(out["direct"], 99))
            over.append(o50[-1] - b50[-1])
        h.log(f"B9 {label}: gateway p50 {h.spread(o50)} p99 {h.spread(o99)}; direct p50 "
              f"{h.spread(b50)} p99 {h.spread(b99)} (ms)")
        figures.append(h.Figure("B9", f"{what} through the gateway vs straight to the stand-in, "
                                "p50 (ms), 10 positions; ratio column = added ms", o50, b50, "ms",
                                over, "+", "≤ 1 ms added at p50", lambda x: x <= 1.0))
        figures.append(h.Figure("B9", f"the same, p99 (ms)", o99, b99, "ms",
                                [o - b for o, b in zip(o99, b99)], "+", "(report)", None))
    ours, base, ratio = [], [], []
    for _ in range(runs):
        ours.append(curl_rate(gw + "/v2/positions", {"APCA-API-KEY-ID": token,
                                                     "APCA-API-SECRET-KEY": "unused"},
                              clients, seconds))
        base.append(curl_rate(direct + "/v2/positions", {"APCA-API-KEY-ID": key,
                                                         "APCA-API-SECRET-KEY": secret},
                              clients, seconds, env["PGA_CA_FILE"]))
        ratio.append(ours[-1] / base[-1])
    h.log(f"B9 throughput, {clients} clients: gateway {h.spread(ours)} /s, direct {h.spread(base)} /s")
    figures.append(h.Figure("B9", f"GET /v2/positions requests/s, {clients} concurrent keep-alive "
                            "clients (curl), through the gateway (each a session check and redeem "
                            "by SQL) vs straight to the stand-in", ours, base, "/s", ratio, "",
                            "(report)", None))
    return figures
