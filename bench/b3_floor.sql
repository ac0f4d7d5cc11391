-- B3 floor (information): the least any single-use, audited redeem must do, in plain SQL with
-- no plpgsql, no checks and no decryption: insert the ticket's nonce, insert the audit row, read
-- the credential row, commit. Run as a superuser with -D cred=<uuid>.
WITH n AS (INSERT INTO alpaca.redeemed_tickets (nonce, expires_at)
           VALUES (gen_random_bytes(16), now() + interval '30 seconds') RETURNING 1),
     a AS (INSERT INTO alpaca.audit_log (app_user, credential_id, action, purpose, outcome)
           VALUES ('b2', :cred, 'decrypt', 'positions', 'ok') RETURNING 1)
SELECT c.id, c.environment, c.api_key::text, c.secret_key::text
  FROM alpaca.credentials c, n, a WHERE c.id = :cred;
