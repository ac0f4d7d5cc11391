-- B4: one call, nothing else; the application user is a session setting (PGOPTIONS), so the
-- latency is that of this statement alone. Run with -D cred=<uuid>.
SELECT * FROM alpaca_positions(:cred);
