-- Migration from the earlier Python system: Fernet tokens (made by pyca/cryptography, an
-- independent implementation) are verified, decrypted and stored as normal credentials.
CREATE ROLE regress_mig_app IN ROLE alpaca_app;
CREATE ROLE regress_mig_sidecar IN ROLE alpaca_sidecar;
\set fkey 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8='
\set other_key 'AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA='
\set k1 'gAAAAABrBA2g5nkwzU44I4l_x1Z1-elhucpaPTZMgF2z_myGWpX4hHX79N0QU0XXjO9fAyMN9Et_Ralz8caEHr-7cLNxSkFrqm-gGo46fWqg_p_b81woaeM='
\set s1 'gAAAAABrBA2gwl-hLYF9J4vbzNWaUfGHCX6xiOvb2DbUEvDsaDIYtFGiKi5cy41KpJIvQQ_D6nD0U9B8nsHg7jqPrItaIPCaB2LCqLOpm3bVhL_io8_YMfjuqCbW28luAnB8XgS0Esvb'
\set k2 'gAAAAABrBA2geURb8le65sFiyfXxLId0PbnTpt8Zh17m-UZiaJgTa4O5T3RhOGhlV8SZcSv7CgqhhsD7reDGvMRe_bb2KK3iJ-w2Umcz-M6oBS3Sd0lMLJM='
\set s2 'gAAAAABrBA2gi0GBpmqaz7Db_JsSsUcowNb4GoSxwt_m9ry3PktFZfAv7-p_Z-ytQ5Y7ERJhb6vLCmcbI0UeetB7viqmzjBmERxly29XZj5U1lUhf1eXTd-Rq36sKVbeY6PxTvF5_Chw'
\set k3 'gAAAAABrBA2gkprvAb7HxQRIiomL5OrGiAT_W-ktlsmoNpPly2Cqv1UP4hi5PctcXHxOvQ4gPMmXf7ZkYZq53Xma55Xx_o2TzrjQ-DCDAfxOQIlGsc6jGe8='
\set s3 'gAAAAABrBA2gWqQ8twD9MOsGK2nsu7cRypGpo_kaYvQfmZmnNHYArItmV7o9VUEITwGjSHR1eeCE03dJ_VMsTDcGOfKFCYEtWhIzndYb-9G6BepcTEv8HXmC81Dqa4MtEkXw5y1_PJIo'

SET ROLE regress_mig_app;
BEGIN;
SELECT alpaca_set_user('dave');
SELECT alpaca_create_account('Dave imported') AS acct \gset
SELECT alpaca_import_fernet_credential(:'acct', :'k1', :'s1', :'fkey', 'paper', 'from python') AS cred \gset
SELECT label, environment, key_hint FROM alpaca_list_credentials() WHERE id = :'cred';
-- Wrong key, tampered token, garbage, a token as key: refused with 22023 naming the field.
SELECT pga_try(format('SELECT alpaca_import_fernet_credential(%L, %L, %L, %L)', :'acct', :'k2', :'s2', :'other_key')) AS wrong_key;
SELECT pga_try(format('SELECT alpaca_import_fernet_credential(%L, %L, %L, %L)', :'acct', :'k2',
       overlay(:'s2' placing (CASE WHEN substr(:'s2', 60, 1) = 'A' THEN 'B' ELSE 'A' END) from 60 for 1), :'fkey')) AS tampered;
SELECT pga_try(format('SELECT alpaca_import_fernet_credential(%L, %L, %L, %L)', :'acct', 'not a token', :'s2', :'fkey')) AS garbage;
SELECT pga_try(format('SELECT alpaca_import_fernet_credential(%L, %L, %L, %L)', :'acct', :'k2', :'s2', 'short')) AS bad_key;
SELECT replace(pga_try(format('SELECT alpaca_import_fernet_credential(%L, %L, %L, %L)', :'acct', :'k1', :'s1', :'fkey')), :'acct', '<id>') AS duplicate;
SELECT alpaca_issue_ticket(:'cred', 'account') AS t \gset
COMMIT;
SET ROLE regress_mig_sidecar;
CALL alpaca.redeem_ticket(:'t', 'account', NULL, NULL, NULL, NULL) \gset r_
SELECT :'r_api_key' AS api_key, :'r_secret_key' AS secret_key;
RESET ROLE;

-- Batch import of a table shaped like the earlier system's, by an administrator.
CREATE TEMP TABLE old_credentials (app_user text, account_id uuid, api_key_token text,
                                   secret_key_token text, environment text, label text);
INSERT INTO old_credentials VALUES
    ('erin', '11111111-1111-4111-8111-111111111111', :'k2', :'s2', 'paper', 'erin paper'),
    ('frank', '22222222-2222-4222-8222-222222222222', :'k3', :'s3', 'live', NULL);
SELECT app_user, account_id, credential_id IS NOT NULL AS imported
FROM alpaca_import_fernet_credentials('old_credentials', :'fkey');
SELECT a.owner_id, a.name, c.environment, c.key_hint FROM alpaca.accounts a
JOIN alpaca.credentials c ON c.account_id = a.id
WHERE a.owner_id IN ('erin', 'frank') ORDER BY 1;
-- An account id that belongs to someone else is refused.
DELETE FROM old_credentials;
INSERT INTO old_credentials VALUES ('mallory', '11111111-1111-4111-8111-111111111111', :'k1', :'s1', 'paper', NULL);
SELECT pga_try($$SELECT * FROM alpaca_import_fernet_credentials('old_credentials', 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=')$$) AS foreign_account;
SELECT count(*) AS mallory_rows FROM alpaca.credentials WHERE owner_id = 'mallory';

DROP OWNED BY regress_mig_app, regress_mig_sidecar;
DROP ROLE regress_mig_app, regress_mig_sidecar;
