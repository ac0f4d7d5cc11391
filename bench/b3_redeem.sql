-- B3 ours: redeem one pre-minted ticket (each ticket works once: client c takes c*1000000+1, +2, ...).
-- Run with: pgbench -M prepared -D i=0 -t N (the variable i persists across a client's transactions)
\set i :i + 1
-- (CALL takes no subquery argument: the ticket is fetched first, one indexed read.)
SELECT ticket FROM bench.tickets WHERE id = :client_id * 1000000 + :i \gset
CALL alpaca.redeem_ticket(:ticket, 'positions', NULL, NULL, NULL, NULL);
