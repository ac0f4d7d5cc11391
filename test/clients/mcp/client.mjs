// An MCP "agent" built only from the official TypeScript SDK: Client over
// StreamableHTTPClientTransport, the gateway session token as its bearer token.
//
//   MCP_URL=http://127.0.0.1:PORT/mcp MCP_TOKEN=pgas_... node client.mjs < steps.json
//
// The token comes from the environment, never from the command line (ps would show it).
// stdin: a JSON array of steps, run in order over one connection:
//   {"op":"server"}                          serverInfo, capabilities, instructions, version
//   {"op":"list"}                            tools/list
//   {"op":"ping"}
//   {"op":"call","name":"get_positions","arguments":{...}}
// stdout: one JSON array, one entry per step: {"ok":true,"result":...} or
// {"ok":false,"error":{"name","message","code"}}. A failed connect is an entry for step -1.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = process.env.MCP_URL;
const token = process.env.MCP_TOKEN;
if (!url) {
  console.error("MCP_URL is required");
  process.exit(2);
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const steps = JSON.parse(Buffer.concat(chunks).toString("utf8") || "[]");

const headers = token ? { Authorization: `Bearer ${token}` } : {};
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "pg-alpaca-test-agent", version: "1.0.0" });

const describe = (e) => ({
  name: e?.constructor?.name ?? "Error",
  message: String(e?.message ?? e),
  code: e?.code ?? null,
});

const out = [];
try {
  await client.connect(transport);
} catch (e) {
  out.push({ ok: false, step: -1, error: describe(e) });
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}

for (const step of steps) {
  try {
    let result;
    switch (step.op) {
      case "server":
        result = {
          serverInfo: client.getServerVersion(),
          capabilities: client.getServerCapabilities(),
          instructions: client.getInstructions(),
          protocolVersion: transport.protocolVersion ?? null,
          sessionId: transport.sessionId ?? null,
        };
        break;
      case "list":
        result = await client.listTools();
        break;
      case "ping":
        result = await client.ping();
        break;
      case "call":
        result = await client.callTool({ name: step.name, arguments: step.arguments ?? {} });
        break;
      default:
        throw new Error(`unknown step ${step.op}`);
    }
    out.push({ ok: true, result });
  } catch (e) {
    out.push({ ok: false, error: describe(e) });
  }
}
await client.close();
process.stdout.write(JSON.stringify(out));
