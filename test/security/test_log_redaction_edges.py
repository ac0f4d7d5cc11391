"""Two edges of the README's log promise ("anyone reading logs ... cannot see a key, secret or
ticket"), each an attack that must fail under log_statement = all:

- a Unicode-escaped identifier: the application stores a key through
  U&"alpaca_\\0073tore_credential"(...), a name whose letters never appear in the text; the log
  redaction fails closed on any U&"..." identifier and masks the statement's literals;
- request headers (README, "Verified users", PostgREST): with `set_config` in
  pg_alpaca.redact_functions, a bearer token handed over as the request.headers setting (as a
  bind parameter, PostgREST's way, or as a literal) never reaches the server log.
"""
import os
import secrets
import time
import unittest

import hardening_lib as H
import pga_stack as S

MASK = "[redacted by pg_alpaca]"


def server_log():
    with open(os.environ["PGA_POSTGRES_LOG"], errors="replace") as f:
        return f.read()


def masked_lines(text):
    """How many log lines hold text and a redaction mark."""
    return sum(1 for line in server_log().splitlines() if text in line and MASK in line)


def wait_for_count(text, at_least, timeout=5):
    deadline = time.monotonic() + timeout
    while server_log().count(text) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return server_log().count(text)


class LogRedactionEdges(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        H.alter_system({"log_statement": "all", "pg_alpaca.redact_functions": "set_config"})

    @classmethod
    def tearDownClass(cls):
        H.alter_system({"log_statement": None, "pg_alpaca.redact_functions": None})

    def test_unicode_escaped_function_name(self):
        key = "PKUNI" + secrets.token_hex(8).upper()
        secret = "SECUNI" + secrets.token_hex(16)
        user = H.random_user("uni")
        call = 'U&"alpaca_\\0073tore_credential"('
        before = masked_lines(call)
        with S.connect(role="app") as c:
            with c.transaction():
                c.execute("SELECT alpaca_set_user(%s)", (user,))
                account = c.execute("SELECT alpaca_create_account('uni')").fetchone()[0]
                # Literals in the text (not bind parameters): what a hand-written statement does.
                cred = c.execute(
                    'SELECT U&"alpaca_\\0073tore_credential"('
                    f"'{account}'::uuid, '{key}', '{secret}', 'paper')").fetchone()[0]
        self.assertIsNotNone(cred)  # the escaped name did reach the function
        deadline = time.monotonic() + 5
        while masked_lines(call) < before + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(masked_lines(call), before + 1, "the statement was not logged masked")
        log = server_log()
        self.assertNotIn(key, log)
        self.assertNotIn(secret, log)
        H.count("unicode-escaped function name: statement logged masked, keys in the log: 0")

    def test_bearer_header_as_parameter_and_literal(self):
        bound = "eyJCANARY" + secrets.token_hex(16)
        literal = "eyJCANARY" + secrets.token_hex(16)
        masked = "set_config(" + MASK + ")"
        before = server_log().count(masked)
        with S.connect(role="app") as c:
            c.execute("SELECT set_config('request.headers', %s, true)",
                      ('{"authorization":"Bearer ' + bound + '"}',))
            c.execute("SELECT set_config('request.headers', "
                      "'{\"authorization\":\"Bearer " + literal + "\"}', true)")
        # The statements were logged, masked (so the search below means something) ...
        self.assertGreaterEqual(wait_for_count(masked, before + 2), before + 2,
                                "log_statement = all did not log the two statements masked")
        # ... and neither token is in the log.
        log = server_log()
        self.assertNotIn(bound, log)
        self.assertNotIn(literal, log)
        H.count("request headers: 2 statements logged, bearer tokens in the log: 0")


if __name__ == "__main__":
    unittest.main()
