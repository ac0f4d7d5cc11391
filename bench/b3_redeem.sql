-- B3 ours: redeem one pre-minted ticket (each ticket works once: client c takes c*1000000+1, +2, ...).
-- Run with: pgbench -M prepared -D i=0 -t N (the variable i persists across a client's transactions)
\set i :i + 1
SELECT credential_id, api_key, secret_key
  FROM alpaca_redeem_ticket((SELECT ticket FROM bench.tickets WHERE id = :client_id * 1000000 + :i), 'positions');
