-- One durable write per call (README, "The audit trail"): minting a ticket writes nothing, so
-- it works in a read-only transaction; the redeem writes the nonce and the decrypt row; the
-- sidecar's alpaca._record_outcomes writes one 'call' row per redeemed ticket (not for trades,
-- whose row alpaca._audit_trade writes) and the credential's last_used_at / last_validated_at.
DROP ROLE IF EXISTS regress_out_app;
DROP ROLE IF EXISTS regress_out_sidecar;
CREATE ROLE regress_out_app IN ROLE alpaca_app;
CREATE ROLE regress_out_sidecar IN ROLE alpaca_sidecar;
CREATE FUNCTION pg_temp.record(tickets text[], ops text[], outcomes text[], statuses int[],
                               ats timestamptz[]) RETURNS text LANGUAGE sql AS $$
    SELECT pga_try(format('SELECT alpaca._record_outcomes(%L, %L, %L, %L, %L)',
                          tickets, ops, outcomes, statuses, ats))
$$;
SET ROLE regress_out_app;
BEGIN;
SELECT alpaca_set_user('olivia');
SELECT alpaca_create_account('outcomes') AS acct \gset
SELECT alpaca_store_credential(:'acct', 'PKOUTCOME00000000001', 'outcome-secret-00000000000000000000001') AS cred \gset
COMMIT;

-- Tickets in a read-only transaction (and under default_transaction_read_only), which really is
-- read-only: storing there is refused.
BEGIN READ ONLY;
SELECT alpaca_set_user('olivia');
SELECT alpaca_issue_ticket(:'cred', 'positions') AS t_pos \gset
SELECT alpaca_issue_ticket(:'cred', 'validate') AS t_val \gset
SELECT alpaca_issue_ticket(:'cred', 'orders') AS t_ord \gset
SELECT alpaca_issue_ticket(:'cred', 'trade') AS t_trade \gset
SELECT alpaca_issue_ticket(:'cred', 'account') AS t_unredeemed \gset
SELECT pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'acct', 'PKOUTCOME00000000002', 'x')) AS store_read_only;
COMMIT;
SET default_transaction_read_only = on;
BEGIN;
SELECT alpaca_set_user('olivia');
SELECT length(alpaca_issue_ticket(:'cred', 'account')) > 100 AS ticket_with_default_read_only;
COMMIT;
RESET default_transaction_read_only;
-- Nothing was written by the six tickets.
BEGIN;
SELECT alpaca_set_user('olivia');
SELECT action FROM alpaca.audit_log WHERE credential_id = :'cred' ORDER BY id;
COMMIT;
RESET ROLE;

SET ROLE regress_out_sidecar;
CALL alpaca.redeem_ticket(:'t_pos', 'positions', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'t_val', 'validate', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'t_ord', 'orders', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'t_trade', 'trade', NULL, NULL, NULL, NULL) \gset r_
-- Refused: a ticket never redeemed, an operation the ticket was not minted for, arrays that
-- do not line up, a forged ticket. Each refusal writes nothing.
SELECT pg_temp.record(ARRAY[:'t_unredeemed'], '{account}', '{ok}', '{200}', ARRAY[now()]) AS unredeemed;
SELECT pg_temp.record(ARRAY[:'t_pos'], '{account}', '{ok}', '{200}', ARRAY[now()]) AS other_operation;
SELECT pg_temp.record(ARRAY[:'t_pos'], '{positions,account}', '{ok}', '{200}', ARRAY[now()]) AS lengths;
SELECT pg_temp.record('{}', '{}', '{}', '{}', '{}') AS empty;
SELECT pg_temp.record(ARRAY['pgat1.AAAA.BBBB'], '{positions}', '{ok}', '{200}', ARRAY[now()]) AS forged;
-- Recorded in one statement: three call rows, the trade only as a time of use.
SELECT pg_temp.record(ARRAY[:'t_pos', :'t_val', :'t_ord', :'t_trade'],
                      '{positions,validate,get_order,submit_order}', '{ok,rejected,"error;drop"}',
                      '{200,401,500,200}',
                      '{2026-01-01 10:00:00+00,2026-01-01 10:00:01+00,2026-01-01 10:00:02+00,2026-01-01 10:00:03+00}') AS outcome_missing;
SELECT alpaca._record_outcomes(ARRAY[:'t_pos', :'t_val', :'t_ord', :'t_trade'],
                               '{positions,validate,get_order,submit_order}',
                               '{ok,rejected,"error;drop",ok}', '{200,401,500,200}',
                               '{2026-01-01 10:00:00+00,2026-01-01 10:00:01+00,2026-01-01 10:00:02+00,2026-01-01 10:00:03+00}') AS recorded;
-- Once per ticket.
SELECT pg_temp.record(ARRAY[:'t_pos'], '{positions}', '{ok}', '{200}', ARRAY[now()]) AS twice;
RESET ROLE;
-- Only the sidecar may record.
SET ROLE regress_out_app;
SELECT pg_temp.record(ARRAY[:'t_pos'], '{positions}', '{ok}', '{200}', ARRAY[now()]) AS app_records;
BEGIN;
SELECT alpaca_set_user('olivia');
SELECT action, purpose, outcome, http_status, db_role,
       CASE WHEN action = 'call' THEN at::text ELSE 'now' END AS at
FROM alpaca.audit_log WHERE credential_id = :'cred' ORDER BY id;
SELECT last_used_at, last_validated_at FROM alpaca_list_credentials() WHERE id = :'cred';
COMMIT;
RESET ROLE;
DROP ROLE regress_out_app, regress_out_sidecar;
