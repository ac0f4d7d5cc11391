"""Runs the official Alpaca SDKs that scripts/lib.sh's ensure_test_clients installed, pinned,
from test/clients/: alpaca-py in its venv ($PGA_BUILD_DIR/test-clients/python) and the JS SDK
(@alpacahq/alpaca-trade-api, test/clients/alpaca-js/node_modules). Each runs a small script
given as text, with the environment given, and returns the JSON object it prints last.
"""
import json
import os
import subprocess

import pga_stack as S

BUILD = os.environ.get("PGA_BUILD_DIR") or os.path.join(S.ROOT, "build")
PYTHON = os.path.join(BUILD, "test-clients", "python", "bin", "python")
JS_DIR = os.path.join(S.ROOT, "test", "clients", "alpaca-js")


def missing():
    """Why the clients cannot run here (empty when they can)."""
    if not os.access(PYTHON, os.X_OK):
        return f"{PYTHON} is missing: run scripts/lib.sh's ensure_test_clients (scripts/test.sh does)"
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "@alpacahq", "alpaca-trade-api")):
        return f"{JS_DIR}/node_modules is missing: run ensure_test_clients"
    return ""


def _run(cmd, script, env, cwd, timeout):
    full = dict(os.environ)
    full.update(env)
    r = subprocess.run(cmd, input=script, capture_output=True, text=True, env=full, cwd=cwd,
                       timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"{cmd[0]} failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_python(script, env, timeout=120):
    return _run([PYTHON, "-"], script, env, S.ROOT, timeout)


def run_node(script, env, timeout=120):
    return _run(["node", "-"], script, env, JS_DIR, timeout)
