"""The MCP conformance suite (@modelcontextprotocol/conformance 0.1.16, pinned in
test/clients/mcp with the Node 22 it needs) against the gateway's /mcp: the server scenarios
that apply to a domain server must pass, every check of them; the others are listed below
with why they do not apply, and the list must name every scenario the suite has (a new
scenario in a new version of the suite fails this test until it is sorted in).

The suite cannot send a bearer token, so its requests go through a local forwarding proxy
(mcp_proxy.py) that adds "Authorization: Bearer <token>" and passes everything else as it came,
Host and Origin included: the DNS-rebinding scenario's evil Host and Origin reach the gateway
itself. The scenario's valid case sends Origin http://127.0.0.1:<proxy port>, which the test
lists in the sidecar's gateway_allowed_origins (as an operator would list a browser client's
origin); without it the gateway refuses that Origin too.

Run: cd test/integration && /usr/bin/python3 -m unittest -v test_mcp_conformance
"""
import json
import os
import subprocess
import tempfile
import unittest

import gateway_lib as G
import mcp_lib as M
import mcp_proxy
import pga_stack as S

APPLY = ["server-initialize", "ping", "tools-list", "dns-rebinding-protection"]

NOT_APPLICABLE = {
    "logging-set-level": "no logging capability: the server sends no log notifications "
                         "(the sidecar logs to its own file)",
    "completion-complete": "no prompts or resource templates, so nothing to complete",
    "tools-call-simple-text": "asks for the suite's own test tool test_simple_text; a domain "
                              "server has its own tools (all called by test_mcp.py)",
    "tools-call-image": "asks for the suite's test tool test_image_content",
    "tools-call-audio": "asks for the suite's test tool test_audio_content",
    "tools-call-embedded-resource": "asks for the suite's test tool test_embedded_resource",
    "tools-call-mixed-content": "asks for the suite's test tool test_multiple_content_types",
    "tools-call-with-logging": "asks for the suite's test tool test_tool_with_logging; no "
                               "logging capability",
    "tools-call-error": "asks for the suite's test tool test_error_handling (our tool errors: "
                        "test_mcp.py and the unit tests)",
    "tools-call-with-progress": "asks for test_tool_with_progress; tool calls answer in one "
                                "JSON response, no progress notifications",
    "tools-call-sampling": "server-to-client sampling requests need an SSE stream; the tools "
                           "never ask the client's model anything",
    "tools-call-elicitation": "server-to-client elicitation needs an SSE stream; the tools "
                              "never ask the user anything",
    "elicitation-sep1034-defaults": "elicitation (see tools-call-elicitation)",
    "elicitation-sep1330-enums": "elicitation (see tools-call-elicitation)",
    "server-sse-multiple-streams": "SSE streams: the server answers every POST with one "
                                   "application/json body (allowed by the transport) and GET "
                                   "with 405",
    "server-sse-polling": "SSE streams (see server-sse-multiple-streams)",
    "json-schema-2020-12": "asks for the suite's test tool json_schema_2020_12_tool",
    "resources-list": "no resources capability",
    "resources-read-text": "no resources capability",
    "resources-read-binary": "no resources capability",
    "resources-templates-read": "no resources capability",
    "resources-subscribe": "no resources capability",
    "resources-unsubscribe": "no resources capability",
    "prompts-list": "no prompts capability",
    "prompts-get-simple": "no prompts capability",
    "prompts-get-with-args": "no prompts capability",
    "prompts-get-embedded-resource": "no prompts capability",
    "prompts-get-with-image": "no prompts capability",
}


def conformance(*args, timeout=300):
    if not os.access(M.NODE22, os.X_OK):
        raise AssertionError(f"{M.NODE22} is missing (ensure_test_clients)")
    return subprocess.run([M.NODE22, M.CONFORMANCE, *args], capture_output=True, text=True,
                          cwd=M.DIR, timeout=timeout)


class McpConformance(G.OwnAccount, unittest.TestCase):
    TAG = "mcpconf"
    REQUIRES = staticmethod(M.missing)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.proxy = mcp_proxy.Proxy(G.port(), cls.read).__enter__()
        cls.url = f"http://127.0.0.1:{cls.proxy.port}/mcp"
        sc = S.STACK.sidecar
        cls.saved_origins = sc.read_config().get("gateway_allowed_origins")
        sc.set("gateway_allowed_origins", f"http://127.0.0.1:{cls.proxy.port}")
        sc.restart()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.__exit__(None, None, None)
        S.STACK.sidecar.set("gateway_allowed_origins", cls.saved_origins)
        S.STACK.sidecar.restart()
        super().tearDownClass()

    def run_scenario(self, name):
        with tempfile.TemporaryDirectory() as out:
            r = conformance("server", "--url", self.url, "--scenario", name, "-o", out)
            checks = []
            for root, _, files in os.walk(out):
                if "checks.json" in files:
                    with open(os.path.join(root, "checks.json")) as f:
                        checks += json.load(f)
        return r, checks

    def test_applicable_scenarios_pass(self):
        for name in APPLY:
            with self.subTest(scenario=name):
                r, checks = self.run_scenario(name)
                self.assertTrue(checks, f"{name}: no checks ({r.stdout[-1500:]} {r.stderr[-1500:]})")
                bad = [(c["id"], c.get("errorMessage")) for c in checks
                       if c["status"] not in ("SUCCESS", "INFO")]
                self.assertEqual(bad, [], name)
                self.assertEqual(r.returncode, 0, r.stdout[-1500:])

    def test_dns_rebinding_reached_the_gateways_own_check(self):
        _, checks = self.run_scenario("dns-rebinding-protection")
        evil = next(c for c in checks if c["id"] == "localhost-host-rebinding-rejected")
        self.assertEqual(evil["details"]["statusCode"], 403)
        self.assertEqual(evil["details"]["body"], {"code": 40310000, "message": "host not allowed"})

    def test_every_scenario_is_sorted(self):
        r = conformance("list")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed, server = set(), False
        for line in r.stdout.splitlines():
            if line.startswith("Server scenarios"):
                server = True
            elif line.startswith("Client scenarios"):
                server = False
            elif server and line.strip().startswith("- "):
                listed.add(line.strip()[2:].split(" ")[0])
        self.assertTrue(listed)
        self.assertEqual(listed - set(APPLY) - set(NOT_APPLICABLE), set(),
                         "new server scenarios: sort them into APPLY or NOT_APPLICABLE")
        self.assertEqual(set(APPLY) & set(NOT_APPLICABLE), set())


if __name__ == "__main__":
    unittest.main()
