-- The C++/PostgreSQL error border (extension/pg_guard.hpp). A PostgreSQL error raised inside a
-- guarded call comes back whole: its SQLSTATE, a long multi-byte message, DETAIL, HINT and the
-- CONTEXT of the frames it was raised in. The session keeps working afterwards, repeatedly and
-- inside savepoints (a guard that left PG_exception_stack or error_context_stack pointing into
-- a dead frame would crash the backend or garble the next error's context).

-- The guarded call: alpaca.redeem_ticket runs its SPI query inside pga::pg::call. It must be
-- called on its own (it commits), so the function that query calls is replaced for the length
-- of this test and put back from its own definition afterwards.
SELECT pg_get_functiondef('alpaca._redeem_prepare(text, text)'::regprocedure) AS original_prepare \gset
CREATE OR REPLACE FUNCTION alpaca._redeem_prepare(ticket text, purpose text)
RETURNS TABLE(credential_id uuid, environment text, api_key alpaca_secret, secret_key alpaca_secret)
LANGUAGE plpgsql AS $$
BEGIN
    IF purpose = 'long' THEN
        RAISE EXCEPTION USING ERRCODE = 'PGA42',
            MESSAGE = 'Schlüssel abgelehnt: ' || repeat('€ü', 300) || ' ✓',
            DETAIL = 'Détail ' || repeat('ß', 700),
            HINT = 'Hinweis: prüfe ' || repeat('ø', 400);
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'PGA42', MESSAGE = 'Schlüssel für ' || purpose || ' abgelehnt',
        DETAIL = 'Détail ✓', HINT = 'Hinweis ✓';
END $$;

-- Several times in a row; the long message, detail and hint come back whole, with the
-- SQLSTATE and the CONTEXT of the frames they were raised in.
CALL alpaca.redeem_ticket('not-a-ticket', 'long', NULL, NULL, NULL, NULL);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate, octet_length(:'LAST_ERROR_MESSAGE') AS message_bytes,
       :'LAST_ERROR_MESSAGE' = 'Schlüssel abgelehnt: ' || repeat('€ü', 300) || ' ✓' AS message_intact;
CALL alpaca.redeem_ticket('not-a-ticket', 'kürzer', NULL, NULL, NULL, NULL);
CALL alpaca.redeem_ticket('not-a-ticket', 'long', NULL, NULL, NULL, NULL);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate, octet_length(:'LAST_ERROR_MESSAGE') AS message_bytes,
       :'LAST_ERROR_MESSAGE' = 'Schlüssel abgelehnt: ' || repeat('€ü', 300) || ' ✓' AS message_intact;
CALL alpaca.redeem_ticket('not-a-ticket', 'noch einmal', NULL, NULL, NULL, NULL);
SELECT :'original_prepare' \gexec

-- A PostgreSQL error from another guarded call (set_config_option in alpaca_set_user), with
-- multi-byte text in message and detail, twice, then an error of pg_alpaca's own.
DO $$ BEGIN END $$;  -- loads PL/pgSQL, which defines plpgsql.extra_warnings
SET pg_alpaca.user_setting = 'plpgsql.extra_warnings';
SELECT alpaca_set_user('schlüssel_✓');
SELECT alpaca_set_user('ключ');
RESET pg_alpaca.user_setting;
SELECT alpaca_set_user(repeat('ü', 200));

-- The session works: the real _redeem_prepare is back (the cached plan was re-planned), and
-- guarded calls succeed and fail as before.
CALL alpaca.redeem_ticket('not-a-ticket', 'account', NULL, NULL, NULL, NULL);
SELECT p.prosecdef AS prepare_restored_as_definer, pg_get_userbyid(p.proowner) AS owner, p.proconfig
FROM pg_proc p WHERE p.oid = 'alpaca._redeem_prepare(text, text)'::regprocedure;
SELECT alpaca._seal('PKTEST0000000000AAAA', '00000000-0000-4000-8000-000000000001', 'api_key')::text ~ '^pgak1:' AS seals;
SELECT alpaca_set_user('user-1'), alpaca_current_user();
