"""README, "Verified users" (PostgREST): with `set_config` in pg_alpaca.redact_functions, a
bearer token that a pooler or PostgREST hands PostgreSQL as the request.headers setting never
reaches the server log, even under log_statement = all, whether it travels as a bind parameter
(PostgREST's way) or as a literal.

The attack: an application role logs the statement that carries the Authorization header, then
the log is searched for the token.
"""
import os
import secrets
import time
import unittest

import hardening_lib as H
import pga_stack as S


def server_log():
    with open(os.environ["PGA_POSTGRES_LOG"], errors="replace") as f:
        return f.read()


class RequestHeadersStayOutOfTheLog(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        H.alter_system({"log_statement": "all", "pg_alpaca.redact_functions": "set_config"})

    @classmethod
    def tearDownClass(cls):
        H.alter_system({"log_statement": None, "pg_alpaca.redact_functions": None})

    def test_bearer_header_as_parameter_and_literal(self):
        bound = "eyJCANARY" + secrets.token_hex(16)
        literal = "eyJCANARY" + secrets.token_hex(16)
        masked = "set_config([redacted by pg_alpaca])"
        before = server_log().count(masked)
        with S.connect(role="app") as c:
            c.execute("SELECT set_config('request.headers', %s, true)",
                      ('{"authorization":"Bearer ' + bound + '"}',))
            c.execute("SELECT set_config('request.headers', "
                      "'{\"authorization\":\"Bearer " + literal + "\"}', true)")
        # The statements were logged, masked (so the search below means something) ...
        deadline = time.monotonic() + 5
        while server_log().count(masked) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server_log()
        self.assertGreaterEqual(log.count(masked), before + 2,
                                "log_statement = all did not log the two statements masked")
        # ... and neither token is in the log.
        self.assertNotIn(bound, log)
        self.assertNotIn(literal, log)
        H.count("request headers: 2 statements logged, bearer tokens in the log: 0")


if __name__ == "__main__":
    unittest.main()
