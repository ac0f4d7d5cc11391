-- The C++/PostgreSQL error border (extension/pg_guard.hpp). A PostgreSQL error raised inside a
-- guarded call comes back whole: its SQLSTATE, a long multi-byte message, DETAIL, HINT and the
-- CONTEXT of the frames it was raised in. The session keeps working afterwards, repeatedly and
-- inside savepoints (a guard that left PG_exception_stack or error_context_stack pointing into
-- a dead frame would crash the backend or garble the next error's context).

-- The guarded call: alpaca_redeem_ticket runs its SPI query inside pga::pg::call. For this
-- transaction only, the function that query calls fails with every field set.
BEGIN;
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

CREATE FUNCTION border_probe(purpose text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; m text; d text; h text; c text;
BEGIN
    PERFORM * FROM alpaca_redeem_ticket('not-a-ticket', purpose);
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL,
        h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
    RETURN format(E'%s | message intact: %s (%s bytes) | detail intact: %s (%s bytes) | hint intact: %s\n%s',
        st, m = 'Schlüssel abgelehnt: ' || repeat('€ü', 300) || ' ✓', octet_length(m),
        d = 'Détail ' || repeat('ß', 700), octet_length(d),
        h = 'Hinweis: prüfe ' || repeat('ø', 400), c);
END $$;

-- Several times in a row (each EXCEPTION block is a subtransaction).
SELECT i, border_probe('long') FROM generate_series(1, 3) i;

-- As the client sees it. The statement names alpaca_redeem_ticket, so the log redaction hook
-- (extension/log_redaction.cpp) runs on this error: it masks on purpose quoted values and SQL
-- literals (these fields hold none) and the error position, and keeps CONTEXT out of the log.
SAVEPOINT s1;
SELECT * FROM alpaca_redeem_ticket('not-a-ticket', 'kürzer');
ROLLBACK TO SAVEPOINT s1;
SELECT * FROM alpaca_redeem_ticket('not-a-ticket', 'noch einmal');
ROLLBACK TO SAVEPOINT s1;
SELECT border_probe('long') LIKE 'PGA42 | message intact: t%' AS still_intact_after_savepoints;
ROLLBACK;

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
SELECT pga_try($$SELECT * FROM alpaca_redeem_ticket('not-a-ticket', 'account')$$) AS real_redeem;
SELECT alpaca._seal('PKTEST0000000000AAAA', '00000000-0000-4000-8000-000000000001', 'api_key')::text ~ '^pgak1:' AS seals;
SELECT alpaca_set_user('user-1'), alpaca_current_user();
SELECT count(*) AS border_probe_gone FROM pg_proc WHERE proname = 'border_probe';
