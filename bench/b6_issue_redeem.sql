-- B6: an application session mints a ticket for a random credential of its user and commits;
-- then the ticket is redeemed (as the sidecar would, on its own connection). Run with -D ncreds=N.
\set k random(1, :ncreds)
SELECT owner, cred FROM bench.creds WHERE n = :k \gset
BEGIN;
SELECT alpaca_set_user(:owner);
SELECT alpaca_issue_ticket(:cred, 'positions') AS ticket \gset
COMMIT;
CALL alpaca.redeem_ticket(:ticket, 'positions', NULL, NULL, NULL, NULL);
