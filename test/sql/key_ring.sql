-- The key ring: two keys (old id still decrypts, new writes use the highest id), a ring that
-- lacks a key in use, and every bad key file. scripts/test.sh prepares the files and passes
-- their paths in the environment; their contents never appear here.
\getenv keys_two PGA_TEST_KEYS_TWO
\getenv keys_only2 PGA_TEST_KEYS_ONLY2
\getenv keys_public PGA_TEST_KEYS_PUBLIC
\getenv keys_bad_line PGA_TEST_KEYS_BAD_LINE
\getenv keys_short PGA_TEST_KEYS_SHORT
\getenv keys_dup PGA_TEST_KEYS_DUP
\getenv keys_empty PGA_TEST_KEYS_EMPTY
CREATE ROLE regress_kr_app IN ROLE alpaca_app;
CREATE ROLE regress_kr_sidecar IN ROLE alpaca_sidecar;

-- One key (id 1) to start with.
SELECT * FROM alpaca._key_ring();
SET ROLE regress_kr_app;
BEGIN;
SELECT alpaca_set_user('carol');
SELECT alpaca_create_account('Carol') AS acct \gset
SELECT alpaca_store_credential(:'acct', 'PKCAROL0000000000001', 'carol-secret-000000000000000000000000001') AS old_cred \gset
COMMIT;
RESET ROLE;

-- Two keys: 2 becomes primary.
SET pg_alpaca.key_file = :'keys_two';
SELECT * FROM alpaca._key_ring();
SET ROLE regress_kr_app;
BEGIN;
SELECT alpaca_set_user('carol');
SELECT alpaca_store_credential(:'acct', 'PKCAROL0000000000002', 'carol-secret-000000000000000000000000002') AS new_cred \gset
-- The duplicate check still finds a key stored under the old key.
SELECT replace(pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'acct', 'PKCAROL0000000000001', 'x')), :'acct', '<id>') AS duplicate_across_keys;
SELECT alpaca_issue_ticket(:'old_cred', 'positions') AS t_old \gset
SELECT alpaca_issue_ticket(:'new_cred', 'positions') AS t_new \gset
COMMIT;
RESET ROLE;
SELECT id = :'old_cred' AS is_old, api_key_key_id, secret_key_key_id
FROM alpaca.credentials WHERE id IN (:'old_cred', :'new_cred') ORDER BY 1 DESC;
SELECT * FROM alpaca_key_status();
SET ROLE regress_kr_sidecar;
CALL alpaca.redeem_ticket(:'t_old', 'positions', NULL, NULL, NULL, NULL) \gset r_
SELECT :'r_api_key' AS old_id_still_decrypts;
CALL alpaca.redeem_ticket(:'t_new', 'positions', NULL, NULL, NULL, NULL) \gset r_
SELECT :'r_api_key' AS new_id_decrypts;
RESET ROLE;

-- A ring that lacks key 1: every use of a key-1 secret names the missing id.
SET pg_alpaca.key_file = :'keys_only2';
SELECT * FROM alpaca_key_status();
SET ROLE regress_kr_app;
BEGIN;
SELECT alpaca_set_user('carol');
SELECT alpaca_issue_ticket(:'old_cred', 'positions') AS t_old2 \gset
COMMIT;
SET ROLE regress_kr_sidecar;
-- missing_key
CALL alpaca.redeem_ticket(:'t_old2', 'positions', NULL, NULL, NULL, NULL);
RESET ROLE;
-- Tickets minted under key 1 are refused once key 1 is gone.
RESET pg_alpaca.key_file;
SET ROLE regress_kr_app;
BEGIN;
SELECT alpaca_set_user('carol');
SELECT alpaca_issue_ticket(:'old_cred', 'positions') AS t_key1 \gset
COMMIT;
RESET ROLE;
SET pg_alpaca.key_file = :'keys_only2';
SET ROLE regress_kr_sidecar;
-- ticket_key_missing
CALL alpaca.redeem_ticket(:'t_key1', 'positions', NULL, NULL, NULL, NULL);
RESET ROLE;

-- Bad key files: refused with F0000, naming the file (path masked here) and line, never a key.
SET pg_alpaca.key_file = :'keys_public';
SELECT regexp_replace(pga_try('SELECT * FROM alpaca._key_ring()'), '/[^:" ]+', 'FILE', 'g') AS public;
SET pg_alpaca.key_file = :'keys_bad_line';
SELECT regexp_replace(pga_try('SELECT * FROM alpaca._key_ring()'), '/[^:" ]+', 'FILE', 'g') AS bad_line;
SET pg_alpaca.key_file = :'keys_short';
SELECT regexp_replace(pga_try('SELECT * FROM alpaca._key_ring()'), '/[^:" ]+', 'FILE', 'g') AS short;
SET pg_alpaca.key_file = :'keys_dup';
SELECT regexp_replace(pga_try('SELECT * FROM alpaca._key_ring()'), '/[^:" ]+', 'FILE', 'g') AS dup;
SET pg_alpaca.key_file = :'keys_empty';
SELECT regexp_replace(pga_try('SELECT * FROM alpaca._key_ring()'), '/[^:" ]+', 'FILE', 'g') AS empty;
SET pg_alpaca.key_file = '/nonexistent/pg_alpaca.keys';
SELECT regexp_replace(pga_try('SELECT * FROM alpaca._key_ring()'), '/[^:" ]+', 'FILE', 'g') AS missing;
SELECT pga_try($$SET pg_alpaca.key_file = 'relative/path'$$) AS relative_path;
SET pg_alpaca.key_file = '';
SELECT pga_try('SELECT * FROM alpaca._key_ring()') AS unset;
RESET pg_alpaca.key_file;
SELECT count(*) AS keys_after_reset FROM alpaca._key_ring();

-- Online rotation: re-encrypt everything under key 2, then key 1 can be retired.
SET pg_alpaca.key_file = :'keys_two';
SELECT pga_try('SELECT alpaca_retire_key(1)') AS retire_in_use;
SELECT pga_try('SELECT alpaca_retire_key(2)') AS retire_primary;
SELECT pga_try('CALL alpaca_rotate_keys(0)') AS bad_batch;
-- Bob's row from the vault test was deliberately broken: rotation reports it and goes on.
\set VERBOSITY terse
CALL alpaca_rotate_keys(3);
SELECT * FROM alpaca_key_status();
SELECT pga_try('SELECT alpaca_retire_key(1)') AS retire_with_broken_row;
CALL alpaca_rotate_keys();
\set VERBOSITY default
-- Fingerprints follow the primary key: the duplicate check still works after rotation.
SET pg_alpaca.key_file = :'keys_only2';
SET ROLE regress_kr_app;
BEGIN;
SELECT alpaca_set_user('carol');
SELECT replace(pga_try(format('SELECT alpaca_store_credential(%L, %L, %L)', :'acct', 'PKCAROL0000000000001', 'x')), :'acct', '<id>') AS duplicate_after_rotation;
SELECT alpaca_issue_ticket(:'old_cred', 'positions') AS t_rotated \gset
COMMIT;
SET ROLE regress_kr_sidecar;
CALL alpaca.redeem_ticket(:'t_rotated', 'positions', NULL, NULL, NULL, NULL) \gset r_
SELECT :'r_api_key' AS decrypts_without_key_1;
RESET ROLE;
RESET pg_alpaca.key_file;

DROP OWNED BY regress_kr_app, regress_kr_sidecar;
DROP ROLE regress_kr_app, regress_kr_sidecar;
