-- B5: each pgbench client calls with its own credential (bench.b5_creds, one row per client).
SELECT count(*) FROM alpaca_positions((SELECT cred FROM bench.b5_creds WHERE client = :client_id));
