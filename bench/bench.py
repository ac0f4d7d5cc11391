#!/usr/bin/python3
"""pg_alpaca benchmarks B1..B7, each figure against its baseline in the same run.

Called by scripts/bench.sh with a running stack (stack.env in the environment). Not meant to be
run by hand except for development:

    bench.py --stack DIR --crypto-bench BUILD/crypto_bench [--smoke] [--only B2,B3] [--out FILE]

Every figure is measured several times, ours and its baseline alternating, and reported as
median [min-max]; the verdict is carried by the ratio (median of the per-run ratios, with its
own min-max), never by a bare time.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import psycopg

PG_BIN = os.environ.get("PGA_PG_BIN", "/usr/lib/postgresql/15/bin")
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = os.environ
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts"))
import stackctl  # noqa: E402  (the one stack controller)

STACK = stackctl.Stack(ENV["PGA_STACK_DIR"])

SECRET40 = "Zq8vT3mB1nX6cR0pL5kW9hJ2gF7dS4aE1y"  # + 5 digits: 40 bytes, like an Alpaca secret
PASSPHRASE = "bench-passphrase-0123456789"
CBC_KEY = r"\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
CBC_IV = r"\x0f0e0d0c0b0a09080706050403020100"

# Sizes: (full, smoke). Every size can be overridden by an environment variable of its name.
SIZES = {
    "B1_REPS": (9, 2),
    "B1_MIN_TIME": (0.3, 0.05),
    "B2_ROWS": (10000, 500),
    "B2_RUNS": (5, 1),
    "B3_TICKETS": (20000, 500),  # per client and run
    "B3_ROWS": (10000, 500),     # baseline table size
    "B3_BASE_SECONDS": (5, 1),
    "B3_RUNS": (3, 1),
    "B4_CALLS": (1000, 50),
    "B4_RUNS": (3, 1),
    "B8_CALLS": (300, 20),
    "B8_RUNS": (3, 1),
    "B5_SECONDS": (10, 1),
    "B5_RUNS": (3, 1),
    "B5_DELAY_MS": (20, 20),
    "B6_SMALL": (10000, 500),
    "B6_LARGE": (1000000, 5000),
    "B6_PER_USER": (10, 10),
    "B6_SECONDS": (10, 1),
    "B6_RUNS": (3, 1),
    "B7_RUNS": (2, 1),
    "B7_BATCH": (1000, 1000),
}


def size(name, smoke):
    full, small = SIZES[name]
    default = small if smoke else full
    v = ENV.get("PGA_BENCH_" + name)
    return type(default)(v) if v else default


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# Statistics and the table
# ------------------------------------------------------------------------------------------
def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_num(x):
    if x != x:  # NaN
        return "–"
    ax = abs(x)
    if ax >= 100000:
        return f"{x:,.0f}".replace(",", " ")
    if ax >= 100:
        return f"{x:,.0f}".replace(",", " ")
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def spread(xs, unit=""):
    if not xs:
        return "–"
    u = f" {unit}" if unit else ""
    if len(xs) == 1:
        return f"{fmt_num(xs[0])}{u}"
    return f"{fmt_num(med(xs))}{u} [{fmt_num(min(xs))}–{fmt_num(max(xs))}]"


class Figure:
    """One line of the table. ratios: per-run ratios (or overheads); target(ratio) -> bool."""

    def __init__(self, fid, what, ours, base, unit, ratios, ratio_label, target_text, target):
        self.fid, self.what, self.ours, self.base, self.unit = fid, what, ours, base, unit
        self.ratios, self.ratio_label = ratios, ratio_label
        self.target_text, self.target = target_text, target

    def verdict(self):
        if not self.ratios or self.target is None:
            return "report"
        return "yes" if self.target(med(self.ratios)) else "**NO**"

    def cells(self):
        return [self.fid, self.what, spread(self.ours, self.unit), spread(self.base, self.unit),
                f"{self.ratio_label}{spread(self.ratios)}" if self.ratios else "–",
                self.target_text, self.verdict()]


def render(figures, meta):
    head = ["id", "what", "ours: median [min–max]", "baseline: median [min–max]",
            "ratio: median [min–max]", "target", "holds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in f.cells()) + " |")
    out = [f"# pg_alpaca benchmark results ({meta['mode']} run)", "",
           f"Run {meta['started']} → {meta['finished']} ({meta['duration']}), "
           f"`scripts/bench.sh{' --smoke' if meta['mode'] == 'smoke' else ''}`.", "",
           "Machine: " + meta["machine"], "", "\n".join(lines), ""]
    if meta.get("before"):
        out += before_table([f.cells() for f in figures], meta["before"])
    if meta.get("notes"):
        out += ["Notes on this run:", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    out += ["How each figure is measured, and what the baselines are: `bench/README.md`.", ""]
    return "\n".join(out)


# The figures the performance issue asks for "before and after on the same machine": (label, id,
# a phrase of the row's "what", column: 2 ours, 3 baseline, 4 ratio). The phrases are in the
# earlier code's rows too, so `bench.sh --before REV` can set that code's run beside this one.
BEFORE_ROWS = [
    ("B3 redeems/s, 1 client", "B3", "1 client vs two `pgp_sym_decrypt`", 2),
    ("B4 p50 overhead, 10 positions (ms)", "B4", "latency p50, 10 positions", 4),
    ("B4 p50 overhead, 100 positions (ms; target ≤ 1)", "B4", "latency p50, 100 positions", 4),
    ("B4 p50 overhead, 1 000 positions (ms)", "B4", "latency p50, 1000 positions", 4),
    ("B5 at 32 clients, calls/s", "B5 direct", "from 32 keep-alive", 2),
    ("B5 at 32 clients, direct (curl) calls/s", "B5 direct", "from 32 keep-alive", 3),
    ("B5 at 32 clients ÷ direct (target ≥ 0.9)", "B5 direct", "from 32 keep-alive", 4),
    ("B10 ÷ `jsonb_to_recordset`, 100 positions (target ≥ 1.5)", "B10", "per call, 100 positions", 4),
    ("B10 µs per position, 1 000 positions (target ≤ 3)", "B10", "per position, 1000 positions", 2),
]


def table_cells(lines):
    """The cells of a results.md table's rows (a "|" inside a cell is written "\\|")."""
    rows = []
    for line in lines:
        if line.startswith("| ") and not line.startswith("| id "):
            rows.append([c.strip().replace("\\|", "|")
                         for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def pick(rows, fid, phrase, col):
    for r in rows:
        if len(r) > col and r[0] == fid and phrase in r[1]:
            return r[col]
    return "–"


def before_table(now, before):
    """Markdown lines: the BEFORE_ROWS figures of the earlier code's run (before["files"], its
    results.md files) beside this run's (now: its figures' cells)."""
    rows = []
    for path in before["files"]:
        with open(path) as f:
            rows += table_cells(f.read().splitlines())
    out = [f"Before and after on this machine: the same figures from the code of "
           f"`{before['rev']}`, measured just before this run by `scripts/bench.sh --before` "
           f"(that code's own `bench.sh --only B3,B4,B5`, and B10 from this `bench.py`; run "
           f"{before['when']}).", "",
           "| figure | before: median [min–max] | after: median [min–max] |", "|---|---|---|"]
    for label, fid, phrase, col in BEFORE_ROWS:
        out.append(f"| {label} | {pick(rows, fid, phrase, col)} | {pick(now, fid, phrase, col)} |")
    return out + [""]


# ------------------------------------------------------------------------------------------
# Helpers: connections, pgbench, the stack
# ------------------------------------------------------------------------------------------
def connect(dbname, user="postgres", autocommit=True):
    return psycopg.connect(host=ENV["PGHOST"], port=ENV["PGPORT"], dbname=dbname, user=user,
                           autocommit=autocommit)


def sql(dbname, text, params=None, user="postgres"):
    with connect(dbname, user) as conn:
        cur = conn.execute(text, params)
        return cur.fetchall() if cur.description else []


def pgbench(dbname, script, clients=1, seconds=None, transactions=None, defines=None, user="bench",
            latency_log=None, options=None):
    """Runs pgbench; returns (tps, latencies_ms or None). Failed transactions are an error."""
    cmd = [f"{PG_BIN}/pgbench", "-n", "-M", "prepared", "-h", ENV["PGHOST"], "-p", ENV["PGPORT"],
           "-U", user, "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
           "-f", os.path.join(HERE, script)]
    cmd += ["-T", str(seconds)] if seconds else ["-t", str(transactions)]
    for k, v in (defines or {}).items():
        cmd += ["-D", f"{k}={v}"]
    logdir = None
    if latency_log:
        logdir = tempfile.mkdtemp(prefix="pga-bench-")
        cmd += ["-l", "--log-prefix", os.path.join(logdir, "lat")]
    cmd.append(dbname)
    env = dict(ENV)
    if options:
        env["PGOPTIONS"] = options
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = p.stdout + p.stderr
    tps = None
    for line in out.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
    failed = [l for l in out.splitlines() if l.startswith("number of failed transactions")]
    if p.returncode != 0 or tps is None or (failed and not failed[0].split(":")[1].strip().startswith("0 ")):
        raise RuntimeError(f"pgbench {script} failed:\n{out[-3000:]}")
    lat = None
    if logdir:
        lat = []
        for name in os.listdir(logdir):
            with open(os.path.join(logdir, name)) as f:
                for line in f:
                    parts = line.split()
                    lat.append(int(parts[2]) / 1000.0)  # µs -> ms
        shutil.rmtree(logdir, ignore_errors=True)
    return tps, lat


def pct(xs, p):
    s = sorted(xs)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def control(method, path, body=None):
    url = ENV["PGA_STANDIN_CONTROL_URL"] + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def create_db(name):
    sql("postgres", f"DROP DATABASE IF EXISTS {name}")
    sql("postgres", f"CREATE DATABASE {name}")
    prepare_db(name)


def prepare_db(name):
    with connect(name) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_alpaca")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
        conn.execute("GRANT USAGE, CREATE ON SCHEMA bench TO bench")


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except OSError:
        mem_kb = 0
    pg = sql("postgres", "SHOW server_version")[0][0]
    sb = sql("postgres", "SHOW shared_buffers")[0][0]
    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1048576:.1f} GiB RAM, "
            f"{platform.system()} {platform.release()}, PostgreSQL {pg} (shared_buffers {sb}), {ossl}; "
            f"idle CPUs: {idle_states()}; load average at start {os.getloadavg()[0]:.2f}")


def read_text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def idle_states():
    """How an idle CPU waits here (cpuidle driver, and the guest halt-polling window of the
    haltpoll driver of virtual machines): what a wake-up of an idle CPU costs depends on it."""
    driver = read_text("/sys/devices/system/cpu/cpuidle/current_driver") or "no cpuidle driver"
    poll = read_text("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
    return driver + (f" (guest_halt_poll_ns {poll})" if poll is not None else "")


class IdlePolling:
    """While open, idle CPUs poll instead of halting (/dev/cpu_dma_latency held at 0 µs, a PM QoS
    limit only the polling idle state meets; the halt state of a VM's haltpoll driver has an
    exit latency of 1 µs): a wake-up then costs no halt and no inter-processor interrupt. Needs
    root; `held` is false (and nothing changes) otherwise. Closing the file gives the machine
    its own setting back."""

    def __enter__(self):
        try:
            self.fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
        except OSError:
            self.fd = None
        else:
            os.write(self.fd, (0).to_bytes(4, sys.byteorder))
        self.held = self.fd is not None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
        return False


def note_no_idle_polling(args):
    """Says once in the run's notes that the idle-polling figures could not be measured."""
    text = ("/dev/cpu_dma_latency cannot be opened here (not root, or no such device): the "
            "figures with idle CPUs polling were not measured")
    if text not in args.notes:
        args.notes.append(text)


# ------------------------------------------------------------------------------------------
# B1: Google Benchmark
# ------------------------------------------------------------------------------------------
def b1(args):
    reps, min_time = size("B1_REPS", args.smoke), size("B1_MIN_TIME", args.smoke)
    log(f"B1: crypto_bench, {reps} interleaved repetitions")
    p = subprocess.run([args.crypto_bench, "--benchmark_filter=BM_B1_",
                        f"--benchmark_repetitions={reps}",
                        f"--benchmark_min_time={min_time}",
                        "--benchmark_enable_random_interleaving=true",
                        "--benchmark_format=json"], capture_output=True, text=True, check=True)
    data = json.loads(p.stdout)
    runs = {}
    for b in data["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        name = b["run_name"].split("/")[0]
        runs.setdefault(name, []).append(b["items_per_second"])
    ours, bare, norand = runs["BM_B1_Ours"], runs["BM_B1_Bare"], runs["BM_B1_BareNoRand"]
    args.b1_ours = med(ours)
    return [
        Figure("B1", "seal+open of a 40-byte secret, per second (envelope API, text form)",
               ours, bare, "/s", [o / b for o, b in zip(ours, bare)], "",
               "≥ 0.75 × bare", lambda r: r >= 0.75),
        Figure("B1'", "the same, baseline without a random nonce per seal (counter nonce)",
               ours, norand, "/s", [o / b for o, b in zip(ours, norand)], "", "(information)",
               None),
    ]


# ------------------------------------------------------------------------------------------
# B2: storing 10 000 credentials in one transaction
# ------------------------------------------------------------------------------------------
def b2_ours(db, n, tag):
    with connect(db, "bench", autocommit=False) as conn:
        conn.execute("SELECT alpaca_set_user(%s)", ("b2",))
        acct = conn.execute("SELECT alpaca_create_account(%s)", (f"b2 {tag}",)).fetchone()[0]
        conn.commit()
        t0 = time.perf_counter()
        conn.execute("SELECT alpaca_set_user(%s)", ("b2",))
        conn.execute(
            "SELECT count(alpaca_store_credential(%s, 'PK' || lpad(i::text, 18, '0'),"
            " %s || lpad(i::text, 5, '0'))) FROM generate_series(1, %s) i",
            (acct, SECRET40, n))
        conn.commit()
        return n / (time.perf_counter() - t0)


def b2_base(db, n):
    with connect(db, "bench", autocommit=False) as conn:
        t0 = time.perf_counter()
        conn.execute(
            "INSERT INTO bench.b2_pgp (api_key, secret_key)"
            " SELECT pgp_sym_encrypt('PK' || lpad(i::text, 18, '0'), %s),"
            "        pgp_sym_encrypt(%s || lpad(i::text, 5, '0'), %s)"
            " FROM generate_series(1, %s) i", (PASSPHRASE, SECRET40, PASSPHRASE, n))
        conn.commit()
        return n / (time.perf_counter() - t0)


def b2(args):
    n, runs = size("B2_ROWS", args.smoke), size("B2_RUNS", args.smoke)
    db = "bench_b2"
    create_db(db)
    sql(db, "CREATE TABLE bench.b2_pgp (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " api_key bytea NOT NULL, secret_key bytea NOT NULL)")
    sql(db, "GRANT INSERT, SELECT ON bench.b2_pgp TO bench")
    log(f"B2: {n} rows per transaction, first into empty tables, then {runs} runs")
    # A fresh installation: both tables empty and never analysed.
    first = [b2_ours(db, n, "first")], [b2_base(db, n)]
    ours, base = [], []
    for r in range(runs):
        sql(db, "VACUUM ANALYZE alpaca.credentials")
        sql(db, "VACUUM ANALYZE bench.b2_pgp")
        ours.append(b2_ours(db, n, f"run {r}"))
        base.append(b2_base(db, n))
    ratios = [o / b for o, b in zip(ours, base)]
    return [
        Figure("B2", f"`alpaca_store_credential`, {n} rows in one transaction, rows/s "
               "(tables analysed)", ours, base, "/s", ratios, "", "≥ 1 × pgcrypto",
               lambda r: r >= 1.0),
        Figure("B2a", f"the same, first {n} into a fresh installation (empty, never analysed)",
               first[0], first[1], "/s", [first[0][0] / first[1][0]], "", "≥ 1 × pgcrypto",
               lambda r: r >= 1.0),
    ]


# ------------------------------------------------------------------------------------------
# B3: redeeming tickets vs decrypting with pgcrypto
# ------------------------------------------------------------------------------------------
def b3(args):
    per_client, rows = size("B3_TICKETS", args.smoke), size("B3_ROWS", args.smoke)
    base_s, runs = size("B3_BASE_SECONDS", args.smoke), size("B3_RUNS", args.smoke)
    db = "bench_b2"  # reuses B2's credentials (user b2)
    if not sql("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", (db,)):
        create_db(db)
        b2_ours(db, rows, "for B3")
    log(f"B3: baseline tables of {rows} rows")
    with connect(db) as conn:
        conn.execute("DROP TABLE IF EXISTS bench.b3_pgp, bench.b3_cbc, bench.tickets")
        conn.execute(
            "CREATE TABLE bench.b3_pgp AS SELECT i AS id,"
            " pgp_sym_encrypt('PK' || lpad(i::text, 18, '0'), %s) AS api_key,"
            " pgp_sym_encrypt(%s || lpad(i::text, 5, '0'), %s) AS secret_key"
            " FROM generate_series(1, %s) i", (PASSPHRASE, SECRET40, PASSPHRASE, rows))
        conn.execute(
            "CREATE TABLE bench.b3_cbc AS SELECT i AS id,"
            " encrypt_iv(convert_to('PK' || lpad(i::text, 18, '0'), 'UTF8'), %s::bytea, %s::bytea, 'aes-cbc') AS api_key,"
            " encrypt_iv(convert_to(%s || lpad(i::text, 5, '0'), 'UTF8'), %s::bytea, %s::bytea, 'aes-cbc') AS secret_key"
            " FROM generate_series(1, %s) i", (CBC_KEY, CBC_IV, SECRET40, CBC_KEY, CBC_IV, rows))
        conn.execute("ALTER TABLE bench.b3_pgp ADD PRIMARY KEY (id)")
        conn.execute("ALTER TABLE bench.b3_cbc ADD PRIMARY KEY (id)")
        conn.execute("CREATE TABLE bench.tickets (id bigint PRIMARY KEY, ticket text NOT NULL)")
        conn.execute("GRANT SELECT ON bench.b3_pgp, bench.b3_cbc TO bench")
        conn.execute("GRANT SELECT, INSERT ON bench.tickets TO bench")
        conn.execute("VACUUM ANALYZE bench.b3_pgp")
        conn.execute("VACUUM ANALYZE bench.b3_cbc")
    floor_cred = sql(db, "SELECT id FROM alpaca.credentials LIMIT 1")[0][0]
    figures = []
    for clients in (1, 2):
        ours, pgp, cbc, floor = [], [], [], []
        for r in range(runs):
            sql(db, "TRUNCATE bench.tickets")
            with connect(db, "bench", autocommit=False) as conn:
                conn.execute("SELECT alpaca_set_user('b2')")
                conn.execute(
                    "WITH c AS (SELECT array_agg(id) AS ids FROM alpaca_list_credentials())"
                    " INSERT INTO bench.tickets"
                    " SELECT k * 1000000 + i, alpaca_issue_ticket("
                    "   c.ids[1 + floor(random() * cardinality(c.ids))::int], 'positions', '5 minutes')"
                    " FROM c, generate_series(1, %s) i, generate_series(0, %s) k",
                    (per_client, clients - 1))
                conn.commit()
            sql(db, "VACUUM ANALYZE bench.tickets")
            tps, _ = pgbench(db, "b3_redeem.sql", clients, transactions=per_client,
                             defines={"i": 0})
            ours.append(tps)
            pgp.append(pgbench(db, "b3_pgp.sql", clients, seconds=base_s,
                               defines={"rows": rows})[0])
            cbc.append(pgbench(db, "b3_cbc.sql", clients, seconds=base_s,
                               defines={"rows": rows})[0])
            floor.append(pgbench(db, "b3_floor.sql", clients, seconds=base_s, user="postgres",
                                 defines={"cred": floor_cred})[0])
        log(f"B3 {clients} client(s): ours {spread(ours)}, pgp {spread(pgp)}, cbc {spread(cbc)}")
        figures.append(Figure(
            "B3", f"`alpaca.redeem_ticket` calls/s, {clients} client{'s' if clients > 1 else ''}"
            " vs two `pgp_sym_decrypt` by id", ours, pgp, "/s",
            [o / b for o, b in zip(ours, pgp)], "", "≥ 5 × pgp_sym_decrypt", lambda r: r >= 5))
        figures.append(Figure(
            "B3", f"the same, {clients} client{'s' if clients > 1 else ''},"
            " vs two `decrypt_iv` (aes-cbc) by id", ours, cbc, "/s",
            [o / b for o, b in zip(ours, cbc)], "", "≥ 0.5 × decrypt_iv", lambda r: r >= 0.5))
        figures.append(Figure(
            "B3 floor", f"plain SQL doing only a redeem's writes (nonce row, audit row, commit) and "
            f"the row read, {clients} client{'s' if clients > 1 else ''}, vs `decrypt_iv`; "
            f"the same floor vs `pgp_sym_decrypt`: {spread([f / p for f, p in zip(floor, pgp)])}",
            floor, cbc, "/s", [f / b for f, b in zip(floor, cbc)], "", "(information)", None))
    return figures


# ------------------------------------------------------------------------------------------
# B4 and B5: calls through the sidecar to the stand-in
# ------------------------------------------------------------------------------------------
def fixture_secret(key_id):
    with open(os.path.join(ENV["PGA_STACK_DIR"], "standin", "fixtures", key_id, "secret")) as f:
        return f.read().strip()


def store_one(db, user, key_id, account_name):
    with connect(db, "bench", autocommit=False) as conn:
        conn.execute("SELECT alpaca_set_user(%s)", (user,))
        acct = conn.execute("SELECT alpaca_create_account(%s)", (account_name,)).fetchone()[0]
        cred = conn.execute("SELECT alpaca_store_credential(%s, %s, %s)",
                            (acct, key_id, fixture_secret(key_id))).fetchone()[0]
        conn.commit()
        return str(cred)


def curl_config(key_id, calls):
    """A curl -K file for `calls` GETs of /v2/positions with key_id's headers; returns its path."""
    url = ENV["PGA_STANDIN_PAPER_URL"] + "/v2/positions"
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as f:
        f.write(f'header = "APCA-API-KEY-ID: {key_id}"\n')
        f.write(f'header = "APCA-API-SECRET-KEY: {fixture_secret(key_id)}"\n')
        f.write(f'cacert = "{ENV["PGA_CA_FILE"]}"\n')
        for _ in range(calls):
            f.write(f'url = "{url}"\noutput = "/dev/null"\n')
        return f.name


def curl_timed(cfg, extra=()):
    """Runs curl on the -K file cfg (then removes it), whose requests each print
    "time_total num_connects"; checks they shared one keep-alive connection; per-request ms."""
    try:
        p = subprocess.run(["curl", "-sS", "--http1.1", "--fail", "-K", cfg, *extra],
                           capture_output=True, text=True, check=True)
    finally:
        os.unlink(cfg)
    rows = [line.split() for line in p.stdout.splitlines() if line.strip()]
    if sum(int(c) for _, c in rows) != 1:
        raise RuntimeError("curl did not keep its connection alive")
    return [float(t) * 1000.0 for t, _ in rows]


def curl_latencies(key_id, calls):
    """GET /v2/positions `calls` times on one keep-alive connection; per-request ms."""
    return curl_timed(curl_config(key_id, calls), ["-w", "%{time_total} %{num_connects}\\n"])


def curl_parallel(key_id, clients, seconds):
    """Requests per second of `clients` curl processes, each on one keep-alive connection."""
    per = max(5, int(seconds * 1000 / 20))
    cfg = curl_config(key_id, per)
    try:
        t0 = time.perf_counter()
        procs = [subprocess.Popen(["curl", "-sS", "--http1.1", "--fail", "-K", cfg])
                 for _ in range(clients)]
        if any(p.wait() != 0 for p in procs):
            raise RuntimeError("curl against the stand-in failed")
        return clients * per / (time.perf_counter() - t0)
    finally:
        os.unlink(cfg)


def b4(args):
    calls, runs = size("B4_CALLS", args.smoke), size("B4_RUNS", args.smoke)
    db = ENV.get("PGDATABASE", "alpaca")
    opts = "-c app.current_user_id=b4"
    control("POST", "/ratelimit", {"limit": 10000000})
    figures = []
    for n in (10, 100, 1000):
        key = f"PKBENCH{n}"
        cred = store_one(db, "b4", key, f"b4 {n}")
        # Warm up both paths: connections, TLS sessions, caches.
        pgbench(db, "b4_positions.sql", 1, transactions=max(20, calls // 10),
                defines={"cred": cred}, options=opts)
        curl_latencies(key, max(20, calls // 10))
        o50, o99, b50, b99, over = [], [], [], [], []
        for r in range(runs):
            lat, cl = b4_round(db, cred, key, calls, opts)
            o50.append(pct(lat, 50)), o99.append(pct(lat, 99))
            b50.append(pct(cl, 50)), b99.append(pct(cl, 99))
            over.append(o50[-1] - b50[-1])
        log(f"B4 {n}: ours p50 {spread(o50)} p99 {spread(o99)}; curl p50 {spread(b50)} p99 {spread(b99)}")
        target = (lambda x: x <= 1.0) if n == 100 else None
        figures.append(Figure(
            "B4", f"`alpaca_positions` latency p50, {n} positions (ms); ratio column = overhead ms",
            o50, b50, "ms", over, "+", "p50 overhead ≤ 1 ms at 100 positions" if n == 100 else "(report)",
            target))
        figures.append(Figure("B4", f"the same, p99, {n} positions (ms)", o99, b99, "ms",
                              [o - b for o, b in zip(o99, b99)], "+", "(report)", None))
        if n == 100:
            figures += b4_idle_polling(args, db, cred, key, calls, runs, opts)
    return figures


def b4_round(db, cred, key, calls, opts):
    """One B4 round: `calls` of ours (pgbench), then as many keep-alive curl GETs; the
    latencies (ms) of each."""
    _, lat = pgbench(db, "b4_positions.sql", 1, transactions=calls, defines={"cred": cred},
                     latency_log=True, options=opts)
    return lat, curl_latencies(key, calls)


def b4_idle_polling(args, db, cred, key, calls, runs, opts):
    """B4 at 100 positions again, ours and curl alternating as above, with idle CPUs polling
    (IdlePolling): how much of the overhead is the wake-ups of idle CPUs, of which a call through
    PostgreSQL, the sidecar and the redeem's database connection has eight and curl two."""
    o50, b50 = [], []
    with IdlePolling() as idle:
        if not idle.held:
            note_no_idle_polling(args)
            return []
        for r in range(runs):
            lat, cl = b4_round(db, cred, key, calls, opts)
            o50.append(pct(lat, 50)), b50.append(pct(cl, 50))
    log(f"B4 100, idle CPUs polling: ours p50 {spread(o50)}; curl p50 {spread(b50)}")
    return [Figure(
        "B4 idle polling", "the same p50 at 100 positions with the idle CPUs polling instead of "
        "halting (`/dev/cpu_dma_latency` held at 0 µs) for both sides; ratio column = overhead ms",
        o50, b50, "ms", [o - b for o, b in zip(o50, b50)], "+", "(information)", None)]


def curl_post_latencies(key_id, calls, tag):
    """POST /v2/orders `calls` times (the order B8 places, each with its own client_order_id) on
    one keep-alive connection; per-request ms."""
    url = ENV["PGA_STANDIN_PAPER_URL"] + "/v2/orders"
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as f:
        for i in range(calls):
            body = json.dumps({"symbol": "AAPL", "side": "buy", "qty": "1", "type": "limit",
                               "time_in_force": "day", "limit_price": "0.01",
                               "client_order_id": f"b8-curl-{tag}-{i}"})
            f.write(f'header = "APCA-API-KEY-ID: {key_id}"\n')
            f.write(f'header = "APCA-API-SECRET-KEY: {fixture_secret(key_id)}"\n')
            f.write('header = "Content-Type: application/json"\n')
            f.write(f'cacert = "{ENV["PGA_CA_FILE"]}"\n')
            f.write(f'data = {json.dumps(body)}\nurl = "{url}"\noutput = "/dev/null"\n')
            f.write('write-out = "%{time_total} %{num_connects}\\n"\n')
            if i + 1 < calls:
                f.write("next\n")
        cfg = f.name
    return curl_timed(cfg)  # write-out is per request in the file (after each `next`)


# B8: placing an order through the sidecar vs a keep-alive curl POST of the same order
def b8(args):
    calls, runs = size("B8_CALLS", args.smoke), size("B8_RUNS", args.smoke)
    db = ENV.get("PGDATABASE", "alpaca")
    opts = "-c app.current_user_id=b8"
    control("POST", "/ratelimit", {"limit": 10000000})
    order_cred = store_one(db, "b8", "PKBENCH10", "b8 orders")
    read_cred = store_one(db, "b8", "PKBENCH10", "b8 reads")
    pgbench(db, "b8_submit.sql", 1, transactions=max(10, calls // 10),
            defines={"cred": order_cred}, options=opts)
    curl_post_latencies("PKBENCH10", max(10, calls // 10), "warm")
    o50, o99, b50, b99, over, ratio = [], [], [], [], [], []
    for r in range(runs):
        _, lat = pgbench(db, "b8_submit.sql", 1, transactions=calls,
                         defines={"cred": order_cred}, latency_log=True, options=opts)
        cl = curl_post_latencies("PKBENCH10", calls, f"r{r}")
        # The read overhead of the same run (B4 at 10 positions) for the target's ratio.
        _, rl = pgbench(db, "b4_positions.sql", 1, transactions=calls,
                        defines={"cred": read_cred}, latency_log=True, options=opts)
        rc = curl_latencies("PKBENCH10", calls)
        o50.append(pct(lat, 50)), o99.append(pct(lat, 99))
        b50.append(pct(cl, 50)), b99.append(pct(cl, 99))
        over.append(o50[-1] - b50[-1])
        read_over = max(pct(rl, 50) - pct(rc, 50), 1e-3)
        ratio.append(over[-1] / read_over)
    log(f"B8: ours p50 {spread(o50)} p99 {spread(o99)}; curl POST p50 {spread(b50)} p99 {spread(b99)}; "
        f"overhead / B4 overhead {spread(ratio)}")
    return [
        Figure("B8", "`alpaca_submit_order` latency p50 (ms); ratio column = overhead ms", o50, b50, "ms",
               over, "+", "(report)", None),
        Figure("B8", "the same, p99 (ms)", o99, b99, "ms", [o - b for o, b in zip(o99, b99)], "+",
               "(report)", None),
        Figure("B8", "submit overhead / read overhead (B4, 10 positions) of the same run", over,
               over, "", ratio, "", "overhead ≤ 1.5 × the B4 overhead", lambda x: x <= 1.5),
    ]


def b5_snapshot():
    """What B5's note on where a call's time goes is computed from: the sidecar's duration sums
    and counts (GET /metrics) and the machine's CPU time by kind (/proc/stat)."""
    snap = {}
    where = ENV.get("PGA_BENCH_METRICS")
    if where:
        with urllib.request.urlopen(f"http://{where}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name.endswith(("_duration_seconds_sum", "_duration_seconds_count")):
                    snap[name] = float(value)
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:9]]
    snap["cpu_all"], snap["cpu_idle"], snap["cpu_steal"] = sum(cpu), cpu[3] + cpu[4], cpu[7]
    return snap


def b5_breakdown(before, after, tps, clients):
    """One run's figures for the note: ms a call in all and by part, idle and stolen CPU (%)."""
    d = {k: after[k] - before[k] for k in after if k in before}
    out = {"call": clients / tps * 1000 if tps else 0.0}
    for part in ("request", "redeem", "alpaca_call"):
        n = d.get(f"pga_sidecar_{part}_duration_seconds_count", 0)
        if n:
            out[part] = d[f"pga_sidecar_{part}_duration_seconds_sum"] / n * 1000
    out["idle"] = 100.0 * d["cpu_idle"] / d["cpu_all"] if d["cpu_all"] else 0.0
    out["steal"] = 100.0 * d["cpu_steal"] / d["cpu_all"] if d["cpu_all"] else 0.0
    return out


def wal_syncs(db):
    """PostgreSQL's WAL syncs so far and their total ms (pg_stat_wal; bench.sh turns
    track_wal_io_timing on)."""
    syncs, ms = sql(db, "SELECT wal_sync, wal_sync_time FROM pg_stat_wal")[0]
    return float(syncs), float(ms)


def b5_note(variant, parts, direct, delay, calls, syncs):
    """Where a call's time goes at 32 clients (medians over the runs): the measured reason when
    the target does not hold. syncs: (count, ms) of the WAL syncs during those runs."""
    med = lambda k: statistics.median(p[k] for p in parts)  # noqa: E731
    text = (f"B5 at 32 clients{variant}, where a call's time goes (medians of {len(parts)} runs): "
            f"{med('call'):.2f} ms a call (32 ÷ calls/s); straight from curl "
            f"{32000 / statistics.median(direct):.2f} ms. ")
    if all("request" in p for p in parts):
        text += (f"Of ours, the sidecar's upstream call {med('alpaca_call'):.2f} ms (the stand-in's "
                 f"{delay} ms included), the redeem {med('redeem'):.2f} ms (the wait for a pool "
                 f"connection, ticket check, nonce and audit rows, the WAL flush), the calling backend, pgbench and the hops between "
                 f"them {med('call') - med('request'):.2f} ms. ")
    if calls and syncs[0]:
        text += (f"PostgreSQL synced its WAL {syncs[0] / calls:.2f} times a call, "
                 f"{syncs[1] / syncs[0]:.3f} ms each. ")
    else:
        text += "PostgreSQL reported no WAL syncs. "
    text += f"CPU idle {med('idle'):.0f} %, stolen by the host {med('steal'):.1f} %."
    return text


def b5_runs(db, clients, seconds, runs, settle):
    """`runs` rounds of ours (pgbench) then direct (curl) at `clients`: (ours calls/s,
    direct calls/s, where each of ours spent its time, WAL syncs and their ms in all). settle:
    seconds to wait for the backends' WAL statistics after the load (0: some may be missing)."""
    tps, direct, parts = [], [], []
    syncs0 = wal_syncs(db)
    for r in range(runs):
        before = b5_snapshot()
        tps.append(pgbench(db, "b5_positions.sql", clients, seconds=seconds,
                           options="-c app.current_user_id=b5")[0])
        parts.append(b5_breakdown(before, b5_snapshot(), tps[-1], clients))
        direct.append(curl_parallel("PKBENCH10", clients, seconds))
    time.sleep(settle)
    syncs = [b - a for a, b in zip(syncs0, wal_syncs(db))]
    return tps, direct, parts, syncs


def b5(args):
    seconds, runs = size("B5_SECONDS", args.smoke), size("B5_RUNS", args.smoke)
    delay = size("B5_DELAY_MS", args.smoke)
    db = ENV.get("PGDATABASE", "alpaca")
    sql(db, "CREATE TABLE IF NOT EXISTS bench.b5_creds (client int PRIMARY KEY, cred uuid NOT NULL)")
    sql(db, "GRANT SELECT ON bench.b5_creds TO bench")
    have = sql(db, "SELECT count(*) FROM bench.b5_creds")[0][0]
    for c in range(have, 32):
        cred = store_one(db, "b5", "PKBENCH10", f"b5 client {c}")
        sql(db, "INSERT INTO bench.b5_creds VALUES (%s, %s)", (c, cred))
    control("POST", "/ratelimit", {"limit": 10000000})
    fault = control("POST", "/faults", {"mode": "delay", "delay_ms": delay, "path": "/v2/positions"})
    # Backends report their WAL syncs when idle, at most every 10 s (PostgreSQL 15); a smoke
    # run does not wait for them.
    settle = 0 if args.smoke else 11
    figures = []
    try:
        pgbench(db, "b5_positions.sql", 32, seconds=1, options="-c app.current_user_id=b5")
        for clients in (1, 8, 32):
            bound = clients / (delay / 1000.0)
            tps, direct, parts, syncs = b5_runs(db, clients, seconds, runs,
                                                settle if clients == 32 else 0)
            log(f"B5 {clients} clients: {spread(tps)} calls/s, bound {bound:.0f}, "
                f"curl straight to the stand-in {spread(direct)}/s")
            figures.append(Figure(
                "B5", f"calls/s, {clients} pgbench client{'s' if clients > 1 else ''}, stand-in "
                f"answers after {delay} ms; baseline = clients ÷ {delay} ms",
                tps, [bound], "/s", [t / bound for t in tps], "", "(report)", None))
            # The target is against what the stand-in delivers to bare clients on the same
            # cores (bench/README.md, "Why these baselines"), not against the 20 ms bound.
            figures.append(Figure(
                "B5 direct", f"the same load straight from {clients} keep-alive curl clients to "
                "the stand-in (what it can deliver here); ratio = ours ÷ this",
                tps, direct, "/s", [t / d for t, d in zip(tps, direct)], "",
                "≥ 0.9 × direct" if clients == 32 else "(information)",
                (lambda r: r >= 0.9) if clients == 32 else None))
            if clients == 32:
                args.notes.append(b5_note(" (fsync off)", parts, direct, delay, sum(tps) * seconds,
                                          syncs))
        # The stack runs with fsync off (bench/README.md): the redeem's flush then reaches the
        # kernel, not the disk. The same 32 clients with fsync on, as production runs.
        STACK.cluster.set({"fsync": "on"})
        try:
            tps, direct, parts, syncs = b5_runs(db, 32, seconds, runs, settle)
        finally:
            STACK.cluster.set({"fsync": None})
        log(f"B5 fsync on, 32 clients: {spread(tps)} calls/s, curl {spread(direct)}/s")
        figures.append(Figure(
            "B5 fsync on", "the 32 clients again with `fsync = on` (each redeem's commit synced to "
            "disk, as in production); ratio = ours ÷ direct", tps, direct, "/s",
            [t / d for t, d in zip(tps, direct)], "", "(information)", None))
        args.notes.append(b5_note(" with fsync on", parts, direct, delay, sum(tps) * seconds,
                                  syncs))
        # The 32 clients (fsync off) with the idle CPUs polling: the wake-ups' share.
        with IdlePolling() as idle:
            if idle.held:
                tps, direct, parts, syncs = b5_runs(db, 32, seconds, runs, 0)
        if idle.held:
            log(f"B5 idle polling, 32 clients: {spread(tps)} calls/s, curl {spread(direct)}/s")
            args.notes.append(b5_note(" with idle CPUs polling", parts, direct, delay,
                                      sum(tps) * seconds, syncs))
            figures.append(Figure(
                "B5 idle polling", "the 32 clients again (`fsync = off`) with the idle CPUs "
                "polling instead of halting (as B4 idle polling), ours and direct alike; ratio = "
                "ours ÷ direct", tps, direct, "/s", [t / d for t, d in zip(tps, direct)], "",
                "(information)", None))
        else:
            note_no_idle_polling(args)
    finally:
        control("DELETE", f"/faults/{fault['id']}")
    return figures


# ------------------------------------------------------------------------------------------
# B6: ticket issue + redeem at 10 000 and 1 000 000 credentials; B7: key rotation
# ------------------------------------------------------------------------------------------
FILL = """
DO $fill$
DECLARE
    acct uuid;
    n bigint;
BEGIN
    FOR u IN {lo}..{hi} LOOP
        PERFORM alpaca_set_user('u' || u);
        acct := alpaca_create_account('bench ' || u);
        FOR j IN 1..{per} LOOP
            n := (u - 1)::bigint * {per} + j;
            INSERT INTO bench.creds VALUES (n, 'u' || u, alpaca_store_credential(acct,
                'PK' || lpad(n::text, 18, '0'), '{secret}' || lpad((n % 100000)::text, 5, '0')));
        END LOOP;
        IF u % 200 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
$fill$;
"""


def fill(db, ncreds, per_user):
    """ncreds credentials, per_user each (one account per user); two connections in parallel."""
    users = ncreds // per_user
    sql(db, "CREATE TABLE bench.creds (n bigint PRIMARY KEY, owner text NOT NULL, cred uuid NOT NULL)")
    sql(db, "GRANT SELECT ON bench.creds TO bench")
    workers = max(1, min(2, os.cpu_count() or 1))
    bounds = [(1 + users * w // workers, users * (w + 1) // workers) for w in range(workers)]
    errors = []

    def work(lo, hi):
        try:
            sql(db, FILL.format(lo=lo, hi=hi, per=per_user, secret=SECRET40))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=b) for b in bounds if b[0] <= b[1]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    took = time.perf_counter() - t0
    sql(db, "VACUUM ANALYZE")
    return took


def b6_b7(args):
    small, large = size("B6_SMALL", args.smoke), size("B6_LARGE", args.smoke)
    per, seconds, runs = size("B6_PER_USER", args.smoke), size("B6_SECONDS", args.smoke), size("B6_RUNS", args.smoke)
    dbs = {small: "bench_b6_small", large: "bench_b6_large"}
    setup = {}
    for n, db in dbs.items():
        create_db(db)
        log(f"B6: filling {db} with {n} credentials over {n // per} users")
        setup[n] = fill(db, n, per)
        log(f"B6: {db} filled in {setup[n]:.0f} s ({n / setup[n]:.0f} credentials/s)")
        args.notes.append(f"B6 setup: {n} credentials over {n // per} users stored with "
                          f"`alpaca_store_credential` on 2 connections in {setup[n]:.0f} s "
                          f"({n / setup[n]:.0f}/s).")
    rates = {small: [], large: []}
    for n, db in dbs.items():  # warm-up
        pgbench(db, "b6_issue_redeem.sql", 2, seconds=1, defines={"ncreds": n})
    for r in range(runs):
        for n, db in dbs.items():
            rates[n].append(pgbench(db, "b6_issue_redeem.sql", 2, seconds=seconds,
                                    defines={"ncreds": n})[0])
    log(f"B6: {small}: {spread(rates[small])}/s, {large}: {spread(rates[large])}/s")
    figures = [Figure(
        "B6", f"ticket issue + redeem pairs/s, 2 clients, {large} credentials over {large // per} "
        f"users; baseline: {small} credentials; ratio = baseline ÷ ours (slowdown)",
        rates[large], rates[small], "/s", [s / l for s, l in zip(rates[small], rates[large])], "",
        "≤ 1.5", lambda r: r <= 1.5)]

    # B7 on the large database: a new primary key, then re-encrypt everything under it.
    db = dbs[large]
    secrets = 2 * large
    batch = size("B7_BATCH", args.smoke)
    rot = []
    for r in range(size("B7_RUNS", args.smoke)):
        STACK.add_key()
        sql(db, "SELECT pg_reload_conf()")
        time.sleep(0.5)
        primary = sql(db, "SELECT key_id FROM alpaca_key_status() WHERE is_primary")[0][0]
        with connect(db, "admin") as conn:
            t0 = time.perf_counter()
            conn.execute(f"CALL alpaca_rotate_keys({batch})")
            took = time.perf_counter() - t0
        left = sql(db, "SELECT coalesce(sum(secrets), 0) FROM alpaca_key_status() WHERE key_id <> %s",
                   (primary,))[0][0]
        if left != 0:
            raise RuntimeError(f"B7: {left} secrets still under older keys after rotation")
        rot.append(secrets / took)
        log(f"B7 run {r + 1}: {secrets} secrets in {took:.1f} s = {secrets / took:.0f}/s")
        sql(db, "VACUUM ANALYZE alpaca.credentials")
    b1 = getattr(args, "b1_ours", None)
    figures.append(Figure(
        "B7", f"`CALL alpaca_rotate_keys({batch})` over {secrets} secrets ({large} credentials), "
        "secrets/s; baseline: B1's open+seal rate; target ≥ 50 000/s", rot,
        [b1] if b1 else [], "/s", [x / b1 for x in rot] if b1 else [], "",
        "report; ≥ 50 000/s", None))
    figures[-1].verdict = lambda: "yes" if med(rot) >= 50000 else "**NO**"
    return figures


# ------------------------------------------------------------------------------------------
# B10: parsing Alpaca's JSON into typed rows vs PostgreSQL's own jsonb_to_recordset; B4's
# do-it-yourself peer (pgcrypto + an HTTPS GET + jsonb_to_recordset, same typed rows)
# ------------------------------------------------------------------------------------------
# The columns jsonb_to_recordset can fill straight from the JSON (alpaca.position_row less the
# four option columns, which ours derives from the OCC symbol on top).
POSITION_RECORD = ("symbol text, asset_class text, side text, qty numeric, avg_entry_price numeric,"
                   " market_value numeric, cost_basis numeric, unrealized_pl numeric,"
                   " unrealized_plpc numeric, current_price numeric, change_today numeric")
B10_SIZES = {"B10_POSITIONS": (30000, 2000), "B10_RUNS": (5, 1)}

B10_TIMER = """
CREATE OR REPLACE FUNCTION bench.b10_time(which text, n int, reps int) RETURNS float8
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $f$
DECLARE
    doc text;
    t0 timestamptz;
    c bigint;
BEGIN
    -- || '' detoasts (and decompresses) the document once, outside the timed loop.
    SELECT body || '' INTO STRICT doc FROM bench.b10_docs d WHERE d.n = b10_time.n;
    t0 := clock_timestamp();
    FOR i IN 1..reps LOOP
        IF which = 'ours' THEN
            SELECT count(*) INTO c FROM alpaca_parse_positions(doc);
        ELSE
            SELECT count(*) INTO c FROM jsonb_to_recordset(doc::jsonb) AS t({COLS});
        END IF;
        IF c <> n THEN
            RAISE EXCEPTION '% rows from %, expected %', c, which, n;
        END IF;
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / reps;
END
$f$;
""".replace("{COLS}", POSITION_RECORD)


def b10_size(name, smoke):
    full, small = B10_SIZES[name]
    v = ENV.get("PGA_BENCH_" + name)
    return type(full)(v) if v else (small if smoke else full)


def fixture_positions(key_id):
    with open(os.path.join(ENV["PGA_STACK_DIR"], "standin", "fixtures", key_id,
                           "positions.json")) as f:
        return f.read()


def b10(args):
    positions, runs = b10_size("B10_POSITIONS", args.smoke), b10_size("B10_RUNS", args.smoke)
    db = ENV.get("PGDATABASE", "alpaca")
    sql(db, "DROP TABLE IF EXISTS bench.b10_docs")
    sql(db, "CREATE TABLE bench.b10_docs (n int PRIMARY KEY, body text NOT NULL)")
    for n in (10, 100, 1000):
        sql(db, "INSERT INTO bench.b10_docs VALUES (%s, %s)", (n, fixture_positions(f"PKBENCH{n}")))
    sql(db, B10_TIMER)
    log(f"B10: {runs} runs of {positions} positions per size, ours and jsonb_to_recordset alternating")
    figures = []
    with connect(db) as conn:
        def timed(which, n, reps):
            return conn.execute("SELECT bench.b10_time(%s, %s, %s)", (which, n, reps)).fetchone()[0]
        for n in (10, 100, 1000):  # warm-up: plans, caches, the reader's buffer
            timed("ours", n, 3), timed("jsonb", n, 3)
        res = {}
        for r in range(runs):
            for n in (10, 100, 1000):
                reps = max(3, positions // n)
                res.setdefault(("ours", n), []).append(timed("ours", n, reps))
                res.setdefault(("jsonb", n), []).append(timed("jsonb", n, reps))
    for n in (10, 100, 1000):
        ours, base = res[("ours", n)], res[("jsonb", n)]
        log(f"B10 {n}: ours {spread(ours)} µs, jsonb_to_recordset {spread(base)} µs per call")
        figures.append(Figure(
            "B10", f"`alpaca_parse_positions(body)` µs per call, {n} positions, vs "
            "`jsonb_to_recordset(body::jsonb)` into the same 11 column types (ours also fills the "
            "4 OCC columns); ratio = theirs ÷ ours", ours, base, "µs",
            [b / o for o, b in zip(ours, base)], "", "≥ 1.5 × faster",
            lambda x: x >= 1.5))
    per = {n: [o / n for o in res[("ours", n)]] for n in (10, 100, 1000)}
    for n in (10, 100, 1000):
        figures.append(Figure(
            "B10", f"the same per position, {n} positions (µs); ratio column = ours µs per position",
            per[n], [b / n for b in res[("jsonb", n)]], "µs", per[n], "",
            "≤ 3 µs per position" if n == 1000 else "(report)",
            (lambda x: x <= 3.0) if n == 1000 else None))
    return figures


def https_get(conn_box, url, headers):
    """GET on one kept-alive HTTPS connection (re-opened if the server closed it)."""
    import http.client
    import ssl
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    for attempt in (0, 1):
        if conn_box.get("c") is None:
            ctx = ssl.create_default_context(cafile=ENV["PGA_CA_FILE"])
            conn_box["c"] = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
        c = conn_box["c"]
        try:
            c.request("GET", u.path, headers=headers)
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                raise RuntimeError(f"stand-in answered {r.status}")
            return body.decode()
        except (http.client.HTTPException, OSError):
            c.close()
            conn_box["c"] = None
            if attempt:
                raise


def b4_diy(args):
    calls, runs = size("B4_CALLS", args.smoke), size("B4_RUNS", args.smoke)
    db = ENV.get("PGDATABASE", "alpaca")
    control("POST", "/ratelimit", {"limit": 10000000})
    sql(db, "DROP TABLE IF EXISTS bench.b4_diy")
    sql(db, "CREATE TABLE bench.b4_diy (n int PRIMARY KEY, api_key bytea NOT NULL, secret_key bytea NOT NULL)")
    sql(db, "GRANT SELECT ON bench.b4_diy TO bench")
    url = ENV["PGA_STANDIN_PAPER_URL"] + "/v2/positions"
    diy_decrypt = "SELECT pgp_sym_decrypt(api_key, %s), pgp_sym_decrypt(secret_key, %s) FROM bench.b4_diy WHERE n = %s"
    # Both sides build every typed row in the server (a materialised set) and send the count:
    # what the client library would then spend decoding rows is the same for both and not ours.
    diy_rows = f"SELECT count(*) FROM jsonb_to_recordset(%s::jsonb) AS t({POSITION_RECORD})"
    figures = []
    for n in (10, 100, 1000):
        key = f"PKBENCH{n}"
        sql(db, "INSERT INTO bench.b4_diy VALUES (%s, pgp_sym_encrypt(%s, %s), pgp_sym_encrypt(%s, %s))",
            (n, key, PASSPHRASE, fixture_secret(key), PASSPHRASE))
        cred = store_one(db, "b4", key, f"b4 diy {n}")
        ours_conn = psycopg.connect(host=ENV["PGHOST"], port=ENV["PGPORT"], dbname=db, user="bench",
                                    autocommit=True, options="-c app.current_user_id=b4")
        diy_conn = connect(db, "bench")
        box = {}

        def ours_call():
            t0 = time.perf_counter()
            rows = ours_conn.execute("SELECT count(*) FROM alpaca_positions(%s)", (cred,),
                                     prepare=True).fetchone()[0]
            took = (time.perf_counter() - t0) * 1000.0
            if rows != n:
                raise RuntimeError(f"alpaca_positions gave {rows} rows, expected {n}")
            return took

        def diy_call():
            t0 = time.perf_counter()
            k, sec = diy_conn.execute(diy_decrypt, (PASSPHRASE, PASSPHRASE, n), prepare=True).fetchone()
            body = https_get(box, url, {"APCA-API-KEY-ID": k, "APCA-API-SECRET-KEY": sec})
            rows = diy_conn.execute(diy_rows, (body,), prepare=True).fetchone()[0]
            took = (time.perf_counter() - t0) * 1000.0
            if rows != n:
                raise RuntimeError(f"do-it-yourself gave {rows} rows, expected {n}")
            return took

        try:
            for _ in range(max(20, calls // 10)):  # warm-up: connections, TLS, plans
                ours_call(), diy_call()
            o50, o99, d50, d99 = [], [], [], []
            for r in range(runs):
                lat = [ours_call() for _ in range(calls)]
                o50.append(pct(lat, 50)), o99.append(pct(lat, 99))
                lat = [diy_call() for _ in range(calls)]
                d50.append(pct(lat, 50)), d99.append(pct(lat, 99))
        finally:
            ours_conn.close()
            diy_conn.close()
            if box.get("c") is not None:
                box["c"].close()
        log(f"B4 DIY {n}: ours p50 {spread(o50)} p99 {spread(o99)}; do-it-yourself p50 {spread(d50)} p99 {spread(d99)}")
        figures.append(Figure(
            "B4 DIY", f"`count(*)` of `alpaca_positions` latency p50 from psycopg, {n} positions (ms), "
            "vs doing it yourself: `pgp_sym_decrypt` of both keys, HTTPS GET (keep-alive, Python), "
            "`count(*)` of `jsonb_to_recordset` into the same column types; ratio = theirs ÷ ours",
            o50, d50, "ms",
            [d / o for o, d in zip(o50, d50)], "", "(report)", None))
        figures.append(Figure("B4 DIY", f"the same, p99, {n} positions (ms)", o99, d99, "ms",
                              [d / o for o, d in zip(o99, d99)], "", "(report)", None))
    return figures


def more_figures(args, only):
    """Figures dispatched after B1..B5: B4's do-it-yourself peer with B4, and B10 when asked
    for or in a full run (every one of B1..B7 selected)."""
    figures = []
    if "B4" in only:
        figures += b4_diy(args)
    if "B10" in only or {"B1", "B2", "B3", "B4", "B5", "B6", "B7"} <= only:
        figures += b10(args)
    return figures


# ------------------------------------------------------------------------------------------
# B11: one alpaca_set_user_jwt per algorithm, against alpaca_set_user
# ------------------------------------------------------------------------------------------
def b11(args):
    """Server-side cost of verifying one token (key set cached, stat of its file included):
    N calls in one statement, so no round trip is counted; the same for alpaca_set_user."""
    import base64, hashlib, hmac  # noqa: E401  (B11 only)
    n, runs = (200, 1) if args.smoke else (5000, 3)
    b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    tmp = tempfile.mkdtemp(prefix="pga-bench-jwt-")
    ossl = lambda *a, data=None: subprocess.run(["openssl", *a], input=data, capture_output=True,  # noqa: E731
                                                check=True).stdout
    keys, jwks, secret = {}, [], os.urandom(32)
    for alg, gen in (("RS256", ["RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                     ("PS256", ["RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                     ("ES256", ["EC", "-pkeyopt", "ec_paramgen_curve:P-256"]), ("EdDSA", ["ED25519"])):
        path = os.path.join(tmp, alg + ".pem")
        ossl("genpkey", "-algorithm", *gen, "-out", path)
        spki = ossl("pkey", "-in", path, "-pubout", "-outform", "DER")
        if alg in ("RS256", "PS256"):
            mod = ossl("rsa", "-in", path, "-noout", "-modulus").decode().strip().split("=", 1)[1]
            jwk = {"kty": "RSA", "alg": alg, "n": b64u(bytes.fromhex(mod)), "e": "AQAB"}
        elif alg == "ES256":
            jwk = {"kty": "EC", "crv": "P-256", "x": b64u(spki[-64:-32]), "y": b64u(spki[-32:])}
        else:
            jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(spki[-32:])}
        jwks.append(dict(jwk, kid=alg))
        keys[alg] = path
    jwks.append({"kty": "oct", "kid": "HS256", "k": b64u(secret)})
    now = int(time.time())
    tokens = {}
    for alg in ("RS256", "PS256", "ES256", "EdDSA", "HS256"):
        si = (b64u(json.dumps({"alg": alg, "typ": "JWT", "kid": alg}).encode()) + "." +
              b64u(json.dumps({"sub": "bench-user", "exp": now + 7200, "iat": now}).encode())).encode()
        if alg == "HS256":
            sig = hmac.new(secret, si, hashlib.sha256).digest()
        elif alg == "EdDSA":
            with open(os.path.join(tmp, "si"), "wb") as f:
                f.write(si)
            sig = ossl("pkeyutl", "-sign", "-inkey", keys[alg], "-rawin", "-in", os.path.join(tmp, "si"))
        else:
            pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"] if alg == "PS256" else []
            sig = ossl("dgst", "-sha256", *pss, "-sign", keys[alg], data=si)
            if alg == "ES256":  # DER -> r||s
                i, raw = (2 if sig[1] < 0x80 else 3), b""
                for _ in range(2):
                    ln = sig[i + 1]
                    raw += sig[i + 2:i + 2 + ln].lstrip(b"\0").rjust(32, b"\0")
                    i += 2 + ln
                sig = raw
        tokens[alg] = si.decode() + "." + b64u(sig)
    shutil.rmtree(tmp)
    path = os.path.join(STACK.dir, "keys", "bench.jwks")
    stackctl.write_file(path, json.dumps({"keys": jwks}), stackctl.RUNNER,
                        stackctl.primary_group(stackctl.RUNNER), 0o600)
    STACK.cluster.set({"pg_alpaca.jwt_keys_file": path})
    time.sleep(0.5)
    log(f"B11: {n} verifications per statement, {runs} runs per algorithm")

    def per_call_us(conn, fn, arg):
        with conn.transaction():
            conn.execute(f"SELECT count({fn}(%s)) FROM generate_series(1, 10)", (arg,))  # warm-up
            t = time.perf_counter()
            got = conn.execute(f"SELECT count({fn}(%s)) FROM generate_series(1, %s)", (arg, n)).fetchone()[0]
            took = time.perf_counter() - t
        assert got == n, got
        return took / n * 1e6

    figures = []
    with connect(ENV.get("PGDATABASE", "alpaca"), user="bench") as conn:
        base = {}
        for alg in tokens:
            ours, bl = [], []
            for _ in range(runs):
                bl.append(per_call_us(conn, "alpaca_set_user", "bench-user"))
                ours.append(per_call_us(conn, "alpaca_set_user_jwt", tokens[alg]))
            base[alg] = bl
            figures.append(Figure("B11", f"`alpaca_set_user_jwt` with {alg}, µs a call (baseline: "
                                  "`alpaca_set_user`)", ours, bl, "µs",
                                  [o / b for o, b in zip(ours, bl)], "", "(information)", None))
    STACK.cluster.set({"pg_alpaca.jwt_keys_file": None})
    os.unlink(path)
    return figures


# ------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crypto-bench", required=True)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--only", default="B1,B2,B3,B4,B5,B6,B7")
    ap.add_argument("--out", required=True)
    ap.add_argument("--before", action="append", default=[],
                    help="a results.md of earlier code measured on this machine (repeatable)")
    ap.add_argument("--before-rev", default="?", help="that code's commit")
    ap.add_argument("--before-when", default="?", help="when it was measured")
    args = ap.parse_args()
    args.notes = []
    only = set(args.only.upper().split(","))
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    meta = {"mode": "smoke" if args.smoke else "full", "machine": machine(),
            "started": started.strftime("%Y-%m-%d %H:%M UTC")}
    sql("postgres", "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench') THEN "
        "CREATE ROLE bench LOGIN IN ROLE alpaca_app, alpaca_sidecar; END IF; END $$")
    prepare_db(ENV.get("PGDATABASE", "alpaca"))
    figures = []
    steps = [("B1", b1), ("B2", b2), ("B3", b3), ("B4", b4), ("B5", b5), ("B8", b8), ("B11", b11)]
    for fid, fn in steps:
        if fid in only:
            figures += fn(args)
    figures += more_figures(args, only)
    if "B9" in only:  # the gateway (bench/b9_gateway.py), with this module's helpers
        sys.path.insert(0, HERE)
        import b9_gateway
        figures += b9_gateway.b9(args, sys.modules[__name__])
    if "B6" in only or "B7" in only:
        figures += b6_b7(args)
    finished = datetime.datetime.now(datetime.timezone.utc)
    meta["finished"] = finished.strftime("%H:%M UTC")
    meta["duration"] = f"{(time.perf_counter() - t0) / 60:.1f} min"
    args.notes.append(f"load average at the end: {os.getloadavg()[0]:.2f} "
                      "(the machine is shared; min–max show the noise)")
    meta["notes"] = args.notes
    if args.before:
        meta["before"] = {"files": args.before, "rev": args.before_rev, "when": args.before_when}
    text = render(figures, meta)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    return 0 if all(f.verdict() != "**NO**" for f in figures) else 3


if __name__ == "__main__":
    sys.exit(main())
