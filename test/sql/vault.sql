-- Credential API, row-level security between two application users, tickets and redeem,
-- role privileges and the audit log.
CREATE ROLE regress_app IN ROLE alpaca_app;
CREATE ROLE regress_sidecar IN ROLE alpaca_sidecar;
CREATE ROLE regress_admin IN ROLE alpaca_admin;
CREATE ROLE regress_nobody;
SET ROLE regress_app;

-- Fail closed: no application user, no rows and no writes.
SELECT alpaca_current_user() IS NULL AS no_user;
SELECT pga_try($$SELECT alpaca_create_account('nobody''s')$$) AS create_without_user;
SELECT count(*) AS visible_without_user FROM alpaca.accounts;
SELECT count(*) AS listed_without_user FROM alpaca_list_credentials();

-- alpaca_set_user is transaction scoped and takes its argument as a value (no injection).
BEGIN;
SELECT alpaca_set_user('alice');
SELECT alpaca_current_user() AS inside_transaction;
COMMIT;
SELECT alpaca_current_user() IS NULL AS gone_after_commit;
BEGIN;
SELECT alpaca_set_user($$x'; RESET ROLE; SELECT '$$);
SELECT alpaca_current_user() = $$x'; RESET ROLE; SELECT '$$ AS stored_verbatim, current_user;
ROLLBACK;
SELECT pga_try($$SELECT alpaca_set_user('')$$) AS empty_user,
       pga_try($$SELECT alpaca_set_user(NULL)$$) AS null_user,
       pga_try($$SELECT alpaca_set_user(repeat('u', 257))$$) AS long_user,
       pga_try($$SELECT alpaca_set_user(E'a\nb')$$) AS control_char;

-- Alice and Bob each get an account and credentials.
BEGIN;
SELECT alpaca_set_user('alice');
SELECT alpaca_create_account('Alice main') AS alice_account \gset
SELECT alpaca_store_credential(:'alice_account', 'PKALICE0000000000001', 'alice-secret-0000000000000000000000000001') AS alice_cred \gset
SELECT alpaca_store_credential(:'alice_account', 'AKALICELIVE000000002', 'alice-secret-0000000000000000000000000002', 'live', 'live one') AS alice_live \gset
COMMIT;
BEGIN;
SELECT alpaca_set_user('bob');
SELECT alpaca_create_account('Bob main') AS bob_account \gset
SELECT alpaca_store_credential(:'bob_account', 'PKBOB000000000000003', 'bob-secret-00000000000000000000000000003') AS bob_cred \gset
COMMIT;

-- What each sees: metadata only, own rows only.
BEGIN;
SELECT alpaca_set_user('alice');
SELECT label, environment, key_hint, is_active, last_used_at IS NULL AS never_used
FROM alpaca_list_credentials() ORDER BY environment;
SELECT count(*) AS alice_sees_accounts FROM alpaca.accounts;
SELECT count(*) AS alice_sees_bob FROM alpaca.credentials WHERE id = :'bob_cred';
SELECT count(*) AS listed_for_bobs_account FROM alpaca_list_credentials(:'bob_account');
COMMIT;

-- Bob cannot change, delete, ticket or store into Alice's things; missing ids give the same error.
BEGIN;
SELECT alpaca_set_user('bob');
SELECT replace(pga_try(format('SELECT alpaca_update_credential(%L, label => %L)', :'alice_cred', 'mine')), :'alice_cred', '<id>') AS update_foreign;
SELECT pga_try(format('SELECT alpaca_update_credential(%L, label => %L)', '00000000-0000-4000-8000-00000000dead', 'mine')) AS update_missing;
SELECT replace(pga_try(format('SELECT alpaca_delete_credential(%L)', :'alice_cred')), :'alice_cred', '<id>') AS delete_foreign,
       replace(pga_try(format('SELECT alpaca_delete_credential(%L)', '00000000-0000-4000-8000-00000000dead')), '00000000-0000-4000-8000-00000000dead', '<id>') AS delete_missing;
SELECT replace(pga_try(format('SELECT alpaca_issue_ticket(%L, %L)', :'alice_cred', 'positions')), :'alice_cred', '<id>') AS ticket_foreign;
SELECT replace(pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'alice_account', 'PKBOBSNEAKY000000009', 'x')), :'alice_account', '<id>') AS store_into_foreign;
COMMIT;
-- Alice's credential is untouched.
BEGIN;
SELECT alpaca_set_user('alice');
SELECT label IS NULL AS label_unchanged FROM alpaca_list_credentials() WHERE id = :'alice_cred';
COMMIT;

-- Bad input, each with its SQLSTATE; no value is echoed.
BEGIN;
SELECT alpaca_set_user('alice');
SELECT replace(pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'alice_account', 'PKALICE0000000000001', 'other-secret')), :'alice_account', '<id>') AS duplicate_key;
SELECT pga_try(format('SELECT alpaca_store_credential(%L, %L, %L, %L)', :'alice_account', 'PKNEW', 's', 'sandbox')) AS bad_environment;
SELECT pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'alice_account', '', 's')) AS empty_key;
SELECT pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'alice_account', 'PK WITH SPACE', 's')) AS key_with_space;
SELECT pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'alice_account', 'PKNEW', E'secret\n')) AS secret_with_newline;
SELECT pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'alice_account', repeat('K', 300), 's')) AS long_key;
SELECT pga_try(format('SELECT alpaca_store_credential(%L, NULL, %L)', :'alice_account', 's')) AS null_key;
SELECT pga_try($$SELECT alpaca_store_credential(NULL, 'PKX', 's')$$) AS null_account;
SELECT pga_try($$SELECT alpaca_create_account('')$$) AS empty_account_name;
SELECT pga_try(format('SELECT alpaca_issue_ticket(%L, %L)', :'alice_cred', 'withdraw')) AS bad_purpose;
SELECT pga_try(format('SELECT alpaca_issue_ticket(%L, %L, %L)', :'alice_cred', 'positions', '6 minutes')) AS long_ttl;
SELECT pga_try(format('SELECT alpaca_issue_ticket(%L, %L, %L)', :'alice_cred', 'positions', '-1 second')) AS negative_ttl;
SELECT pga_try($$SELECT alpaca_issue_ticket('not-a-uuid', 'positions')$$) AS bad_uuid;
COMMIT;

-- The same key in another account is fine; updating into a duplicate is not.
BEGIN;
SELECT alpaca_set_user('alice');
SELECT alpaca_create_account('Alice second') AS alice_account2 \gset
SELECT alpaca_store_credential(:'alice_account2', 'PKALICE0000000000001', 'alice-secret-0000000000000000000000000001') IS NOT NULL AS same_key_other_account;
SELECT replace(pga_try(format('SELECT alpaca_update_credential(%L, api_key => %L)', :'alice_live', 'PKALICE0000000000001')), :'alice_account', '<id>') AS update_into_duplicate;
-- Partial update: only the label changes; the key hint follows a new key.
SELECT alpaca_update_credential(:'alice_live', label => 'renamed');
SELECT alpaca_update_credential(:'alice_live', api_key => 'AKALICELIVE00000NEW2');
SELECT label, key_hint, updated_at > created_at AS updated FROM alpaca_list_credentials() WHERE id = :'alice_live';
COMMIT;

-- Tickets: issued by the application, redeemed once by the sidecar role.
BEGIN;
SELECT alpaca_set_user('alice');
SELECT alpaca_issue_ticket(:'alice_cred', 'positions') AS t1 \gset
SELECT alpaca_issue_ticket(:'alice_cred', 'positions') AS t2 \gset
SELECT alpaca_issue_ticket(:'alice_cred', 'account', '1 millisecond') AS t_expiring \gset
SELECT alpaca_issue_ticket(:'alice_live', 'orders') AS t_live \gset
COMMIT;
SELECT :'t1' ~ '^pgat1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' AS ticket_form,
       position('PKALICE' IN :'t1') = 0 AS no_key_inside;
-- The application cannot redeem its own ticket.
-- app_redeems
CALL alpaca.redeem_ticket(:'t1', 'positions', NULL, NULL, NULL, NULL);
SET ROLE regress_sidecar;
CALL alpaca.redeem_ticket(:'t1', 'positions', NULL, NULL, NULL, NULL) \gset r_
SELECT :'r_credential_id' = :'alice_cred' AS right_credential, :'r_environment' AS environment,
       :'r_api_key' AS api_key, :'r_secret_key' AS secret_key;
-- Only with CALL, and only outside a transaction block: the single-use mark and the decrypt
-- audit row are committed before the keys leave.
BEGIN;
CALL alpaca.redeem_ticket(:'t_live', 'orders', NULL, NULL, NULL, NULL);
ROLLBACK;
SELECT pga_try(format('SELECT * FROM alpaca_redeem_ticket(%L, %L)', :'t_live', 'orders')) AS select_form;
CALL alpaca.redeem_ticket(:'t_live', 'orders', NULL, NULL, NULL, NULL) \gset r_
SELECT :'r_environment' AS environment, :'r_api_key' AS api_key;
-- Replay, wrong purpose, expiry, tampering, garbage: all refused with 42501.
-- replayed
CALL alpaca.redeem_ticket(:'t1', 'positions', NULL, NULL, NULL, NULL);
-- wrong_purpose
CALL alpaca.redeem_ticket(:'t2', 'orders', NULL, NULL, NULL, NULL);
SELECT pg_sleep(0.01);
-- expired
CALL alpaca.redeem_ticket(:'t_expiring', 'account', NULL, NULL, NULL, NULL);
-- tampered key id, tampered payload
CALL alpaca.redeem_ticket(overlay(:'t2' placing (CASE WHEN substr(:'t2', 12, 1) = 'A' THEN 'B' ELSE 'A' END) from 12 for 1), 'positions', NULL, NULL, NULL, NULL);
CALL alpaca.redeem_ticket(overlay(:'t2' placing (CASE WHEN substr(:'t2', 40, 1) = 'A' THEN 'B' ELSE 'A' END) from 40 for 1), 'positions', NULL, NULL, NULL, NULL);
-- garbage
CALL alpaca.redeem_ticket('pgat1.AAAA.BBBB', 'positions', NULL, NULL, NULL, NULL);
-- null_ticket
CALL alpaca.redeem_ticket(NULL, 'positions', NULL, NULL, NULL, NULL);
-- A wrong-purpose attempt did not consume t2.
CALL alpaca.redeem_ticket(:'t2', 'positions', NULL, NULL, NULL, NULL) \gset r_
SELECT :'r_api_key' AS api_key;
-- The sidecar role can do nothing else.
SELECT pga_try('SELECT count(*) FROM alpaca.credentials') AS sidecar_reads_table;
SELECT pga_try(format('SELECT alpaca_issue_ticket(%L, %L)', :'alice_cred', 'positions')) AS sidecar_issues;
SELECT pga_try($$SELECT alpaca._seal('x', gen_random_uuid(), 'api_key')$$) AS sidecar_internal;
RESET ROLE;

-- A ticket minted for Bob naming Alice's credential (as if the MAC key leaked to Bob) finds nothing.
SELECT alpaca._mint_ticket(:'alice_cred', 'bob', 'positions', clock_timestamp() + interval '30 seconds') AS t_cross \gset
SET ROLE regress_sidecar;
-- cross_user
CALL alpaca.redeem_ticket(:'t_cross', 'positions', NULL, NULL, NULL, NULL);
RESET ROLE;

-- Deactivated credentials: no new tickets, and outstanding tickets are refused.
SET ROLE regress_app;
BEGIN;
SELECT alpaca_set_user('bob');
SELECT alpaca_issue_ticket(:'bob_cred', 'account') AS t_bob \gset
SELECT alpaca_update_credential(:'bob_cred', is_active => false);
SELECT replace(pga_try(format('SELECT alpaca_issue_ticket(%L, %L)', :'bob_cred', 'account')), :'bob_cred', '<id>') AS ticket_for_inactive;
COMMIT;
SET ROLE regress_sidecar;
-- redeem_inactive
CALL alpaca.redeem_ticket(:'t_bob', 'account', NULL, NULL, NULL, NULL);
SET ROLE regress_app;

-- Role privileges: the application role can never read a secret column.
SELECT pga_try('SELECT api_key FROM alpaca.credentials') AS app_reads_api_key;
SELECT pga_try('SELECT secret_key FROM alpaca.credentials') AS app_reads_secret_key;
SELECT pga_try('SELECT * FROM alpaca.credentials') AS app_reads_star;
SELECT pga_try($$UPDATE alpaca.credentials SET label = 'x'$$) AS app_writes_table;
SELECT pga_try($$INSERT INTO alpaca.audit_log (action) VALUES ('forged')$$) AS app_writes_audit;
SELECT pga_try($$SELECT alpaca._seal('x', gen_random_uuid(), 'api_key')$$) AS app_calls_seal;
SELECT pga_try($$SELECT alpaca._mint_ticket(gen_random_uuid(), 'alice', 'positions', now())$$) AS app_mints;
SELECT pga_try('SELECT * FROM alpaca_key_status()') AS app_key_status;
SELECT pga_try('SHOW pg_alpaca.key_file') AS app_shows_key_file;
SELECT pga_try($$SET pg_alpaca.key_file = '/tmp/evil'$$) AS app_sets_key_file;
SELECT pga_try($$SET pg_alpaca.user_setting = 'app.other'$$) AS app_sets_user_setting;
SET ROLE regress_nobody;
SELECT pga_try($$SELECT alpaca_create_account('x')$$) AS plain_role_api;
SELECT pga_try('SELECT count(*) FROM alpaca.accounts') AS plain_role_table;
RESET ROLE;

-- Delete: Alice removes her live credential; it is gone for good.
SET ROLE regress_app;
BEGIN;
SELECT alpaca_set_user('alice');
SELECT alpaca_delete_credential(:'alice_live') AS deleted;
SELECT count(*) AS remaining FROM alpaca_list_credentials() WHERE id = :'alice_live';
SELECT replace(pga_try(format('SELECT alpaca_delete_credential(%L)', :'alice_live')), :'alice_live', '<id>') AS delete_again;
COMMIT;

-- Audit: every store, update, delete and decrypt left a row (minting a ticket writes nothing);
-- each user sees only theirs.
BEGIN;
SELECT alpaca_set_user('alice');
SELECT action, purpose, outcome, count(*) FROM alpaca.audit_log GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
SELECT count(*) AS alice_sees_bob_audit FROM alpaca.audit_log WHERE app_user <> 'alice';
COMMIT;
RESET ROLE;
SET ROLE regress_admin;
SELECT app_user, action, count(*) FROM alpaca.audit_log GROUP BY 1, 2 ORDER BY 1, 2;
SELECT key_id, is_primary, in_key_ring, secrets FROM alpaca_key_status();
RESET ROLE;
-- No audit row holds a secret.
SELECT count(*) AS audit_rows_with_secrets FROM alpaca.audit_log a
WHERE a::text ~ '(PKALICE|AKALICE|PKBOB|secret-0)';

-- Stored envelopes are bound to their row: copying Alice's envelopes onto Bob's row breaks Bob's.
UPDATE alpaca.credentials b SET api_key = a.api_key, secret_key = a.secret_key, is_active = true
FROM alpaca.credentials a WHERE a.id = :'alice_cred' AND b.id = :'bob_cred';
SET ROLE regress_app;
BEGIN;
SELECT alpaca_set_user('bob');
SELECT alpaca_issue_ticket(:'bob_cred', 'account') AS t_moved \gset
COMMIT;
SET ROLE regress_sidecar;
-- moved_ciphertext
CALL alpaca.redeem_ticket(:'t_moved', 'account', NULL, NULL, NULL, NULL);
RESET ROLE;
-- (Bob's broken row stays: the key ring test shows rotation reporting it and going on.)

DROP OWNED BY regress_app, regress_sidecar, regress_admin, regress_nobody;
DROP ROLE regress_app, regress_sidecar, regress_admin, regress_nobody;
