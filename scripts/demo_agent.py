#!/usr/bin/env python3
"""The agent part of scripts/demo.sh: runs test/clients/mcp/client.mjs (an MCP client made of
the official TypeScript SDK) with a step list and prints what an agent would see, briefly.

    MCP_URL=... MCP_TOKEN=pgas_... demo_agent.py read|trade|after-revoke

The token comes in the environment and is never printed.
"""
import json
import os
import subprocess
import sys

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "clients", "mcp",
                      "client.mjs")


def run(steps):
    r = subprocess.run(["node", CLIENT], input=json.dumps(steps), capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        sys.exit(f"the agent failed: {r.stderr[-800:]}")
    return json.loads(r.stdout)


def result(entry):
    if not entry["ok"]:
        return None, "refused: " + entry["error"]["message"]
    res = entry["result"]
    if res.get("isError"):
        return None, "tool error: " + res["content"][0]["text"]
    return res.get("structuredContent"), None


def show_call(name, args, entry, fmt):
    print(f"agent> tools/call {name} {json.dumps(args) if args else ''}".rstrip())
    value, err = result(entry)
    print("  " + (err if err else fmt(value)))


def order_line(o):
    return (f"order {o['id']} {o['side']} {o['qty']} {o['symbol']} {o['type']}"
            f"{' @ ' + o['limit_price'] if o.get('limit_price') else ''}: {o['status']}"
            f" (client_order_id {o['client_order_id']})")


def read_flow():
    out = run([{"op": "server"}, {"op": "list"}, {"op": "call", "name": "get_account"},
               {"op": "call", "name": "get_positions"},
               {"op": "call", "name": "place_order",
                "arguments": {"symbol": "AAPL", "side": "buy", "qty": "1"}}])
    info = out[0]["result"]
    print(f"agent> initialize: {info['serverInfo']['name']} {info['serverInfo']['version']}, "
          f"protocol {info['protocolVersion']}")
    print("agent> tools/list: " + ", ".join(t["name"] for t in out[1]["result"]["tools"]))
    show_call("get_account", None, out[2], lambda a: f"account {a['account_number']} "
              f"{a['status']}, cash {a['cash']} {a['currency']}, equity {a['equity']}")
    def positions(v):
        lines = [f"{p['symbol']:<20} {p['qty']:>12} {p['market_value']:>12}"
                 + (f"  {p['option']['underlying']} {p['option']['expiration']} "
                    f"{p['option']['type']} {p['option']['strike']}" if p["option"] else "")
                 for p in v["positions"]]
        lines.append("options by underlying:")
        lines += [f"  {g['underlying']}: {g['positions']} contracts, qty {g['qty']}, "
                  f"market value {g['market_value']}, unrealized P/L {g['unrealized_pl']}"
                  for g in v["options_by_underlying"]]
        return "\n  ".join(lines)
    show_call("get_positions", None, out[3], positions)
    show_call("place_order", {"symbol": "AAPL", "side": "buy", "qty": "1"}, out[4], str)


def trade_flow():
    args = {"symbol": "AAPL", "side": "buy", "type": "limit", "qty": "1", "limit_price": "100",
            "time_in_force": "gtc"}
    out = run([{"op": "call", "name": "place_order", "arguments": args}])
    show_call("place_order", args, out[0], order_line)
    placed, err = result(out[0])
    if err:
        sys.exit(1)
    steps = [{"op": "call", "name": "cancel_order", "arguments": {"order_id": placed["id"]}},
             {"op": "call", "name": "get_order", "arguments": {"order_id": placed["id"]}}]
    out = run(steps)
    show_call("cancel_order", steps[0]["arguments"], out[0],
              lambda v: f"cancel requested: {v['cancel_requested']}")
    show_call("get_order", steps[1]["arguments"], out[1], order_line)


def after_revoke():
    out = run([{"op": "call", "name": "get_clock"}])
    show_call("get_clock", None, out[0], lambda v: f"market open: {v['is_open']}")


if __name__ == "__main__":
    {"read": read_flow, "trade": trade_flow, "after-revoke": after_revoke}[sys.argv[1]]()
