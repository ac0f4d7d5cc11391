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

-- The set-based form (one statement for the whole batch) against the per-element loop it
-- stands for: the first bad element's error even when a later element is bad in another way,
-- nothing of a refused batch written, a ticket twice in one batch refused, two users each
-- updated under their own row-level security, trades mixed with look-ups.
SELECT max(id) AS last_id FROM alpaca.audit_log \gset
SET ROLE regress_out_app;
BEGIN;
SELECT alpaca_set_user('peter');
SELECT alpaca_create_account('outcomes 2') AS acct2 \gset
SELECT alpaca_store_credential(:'acct2', 'PKOUTCOME00000000003', 'outcome-secret-00000000000000000000003') AS cred2 \gset
SELECT alpaca_issue_ticket(:'cred2', 'account') AS p1 \gset
SELECT alpaca_issue_ticket(:'cred2', 'validate') AS p2 \gset
SELECT alpaca_issue_ticket(:'cred2', 'trade') AS p3 \gset
SELECT alpaca_issue_ticket(:'cred2', 'trade') AS p4 \gset
COMMIT;
BEGIN;
SELECT alpaca_set_user('olivia');
SELECT alpaca_issue_ticket(:'cred', 'positions') AS o1 \gset
SELECT alpaca_issue_ticket(:'cred', 'orders') AS o2 \gset
SELECT alpaca_issue_ticket(:'cred', 'trade') AS o4 \gset
SELECT alpaca_issue_ticket(:'cred', 'positions') AS o5 \gset
SELECT alpaca_issue_ticket(:'cred', 'positions') AS o6 \gset
SELECT alpaca_issue_ticket(:'cred', 'account') AS o7 \gset
COMMIT;
RESET ROLE;
SET ROLE regress_out_sidecar;
CALL alpaca.redeem_ticket(:'p1', 'account', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'p2', 'validate', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'p3', 'trade', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'o1', 'positions', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'o2', 'orders', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'o4', 'trade', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'o6', 'positions', NULL, NULL, NULL, NULL) \gset r_
CALL alpaca.redeem_ticket(:'o7', 'account', NULL, NULL, NULL, NULL) \gset r_
-- Refused, each as a whole (o5 and p4 were never redeemed):
-- a bad element after good ones;
SELECT pg_temp.record(ARRAY[:'o1', :'p1', :'o5', :'o2'], '{positions,account,positions,get_order}',
                      '{ok,ok,ok,ok}', '{200,200,200,200}', ARRAY[now(), now(), now(), now()]) AS bad_third;
-- a ticket twice in one batch, also when a later element is malformed (the second o1 is the
-- first bad element);
SELECT pg_temp.record(ARRAY[:'o1', :'o1'], '{positions,positions}', '{ok,ok}', '{200,200}',
                      ARRAY[now(), now()]) AS twice_in_batch;
SELECT pg_temp.record(ARRAY[:'o1', :'o1', 'pgat1.AAAA.BBBB'], '{positions,positions,positions}',
                      '{ok,ok,ok}', '{200,200,200}', ARRAY[now(), now(), now()]) AS twice_then_forged;
-- a wrong operation before a malformed ticket, and a malformed ticket before a wrong operation;
SELECT pg_temp.record(ARRAY[:'o1', :'o2', 'pgat1.AAAA.BBBB'], '{positions,account,positions}',
                      '{ok,ok,ok}', '{200,200,200}', ARRAY[now(), now(), now()]) AS wrong_op_then_forged;
SELECT pg_temp.record(ARRAY[:'o1', 'pgat1.AAAA.BBBB', :'o2'], '{positions,positions,account}',
                      '{ok,ok,ok}', '{200,200,200}', ARRAY[now(), now(), now()]) AS forged_then_wrong_op;
-- a missing ticket; a trade never redeemed after a redeemed one; a trade ticket for a look-up.
SELECT pg_temp.record(ARRAY[:'o1', NULL], '{positions,positions}', '{ok,ok}', '{200,200}',
                      ARRAY[now(), now()]) AS null_ticket;
SELECT pg_temp.record(ARRAY[:'p1', :'p3', :'p4'], '{account,submit_order,cancel_order}',
                      '{ok,ok,ok}', '{200,200,200}', ARRAY[now(), now(), now()]) AS trade_unredeemed;
SELECT pg_temp.record(ARRAY[:'o4'], '{get_order}', '{ok}', '{200}', ARRAY[now()]) AS trade_as_lookup;
-- None of them wrote anything, so the whole batch goes in now: two users, trades between the
-- look-ups (o4 twice: a trade's outcome only needs its nonce row), rows written in the
-- set-based statement (its subtransaction's id, not the transaction's).
BEGIN;
SELECT alpaca._record_outcomes(ARRAY[:'o1', :'p1', :'o4', :'o2', :'p2', :'p3', :'o4'],
                               '{positions,account,submit_order,get_order,validate,close_position,cancel_order}',
                               '{ok,ok,ok,"Error 5!",rejected,ok,ok}', '{200,200,201,500,401,200,200}',
                               '{2026-02-01 10:00:00+00,2026-02-01 10:00:01+00,2026-02-01 10:00:02+00,2026-02-01 10:00:03+00,2026-02-01 10:00:04+00,2026-02-01 10:00:05+00,2026-02-01 10:00:06+00}') AS mixed;
SELECT pg_current_xact_id()::text::bigint % 4294967296 AS top_xid \gset
COMMIT;
SELECT pg_temp.record(ARRAY[:'p1'], '{account}', '{ok}', '{200}', ARRAY[now()]) AS p1_again;
-- An older time does not move last_used_at back; a time to come is clamped to now.
SELECT alpaca._record_outcomes(ARRAY[:'o6'], '{positions}', '{ok}', '{200}', '{2025-01-01 00:00:00+00}') AS older;
RESET ROLE;
SET ROLE regress_out_app;
BEGIN;
SELECT alpaca_set_user('olivia');
SELECT last_used_at, last_validated_at FROM alpaca_list_credentials() WHERE id = :'cred';
COMMIT;
RESET ROLE;
SET ROLE regress_out_sidecar;
SELECT alpaca._record_outcomes(ARRAY[:'o7'], '{account}', '{ok}', '{200}', '{2100-01-01 00:00:00+00}') AS future;
RESET ROLE;
SELECT app_user, purpose, outcome, http_status,
       CASE WHEN at < '2100-01-01' AND at > '2026-02-02' THEN 'now' ELSE at::text END AS at
FROM alpaca.audit_log WHERE action = 'call' AND id > :last_id ORDER BY id;
SELECT count(*) AS mixed_rows, count(*) FILTER (WHERE xmin::text::bigint = :top_xid) AS at_top_level
FROM alpaca.audit_log WHERE id > :last_id AND at BETWEEN '2026-02-01 00:00+00' AND '2026-02-02 00:00+00';
SET ROLE regress_out_app;
BEGIN;
SELECT alpaca_set_user('olivia');
SELECT last_used_at > '2026-02-02' AND last_used_at <= now() AS olivia_used_now,
       last_validated_at FROM alpaca_list_credentials() WHERE id = :'cred';
COMMIT;
BEGIN;
SELECT alpaca_set_user('peter');
SELECT last_used_at, last_validated_at FROM alpaca_list_credentials() WHERE id = :'cred2';
COMMIT;
RESET ROLE;
DROP ROLE regress_out_app, regress_out_sidecar;
