-- The C++/PostgreSQL error border (extension/pg_guard.hpp). A PostgreSQL error raised inside a
-- guarded call comes back whole: its SQLSTATE, a long multi-byte message, DETAIL, HINT and the
-- CONTEXT of the frames it was raised in. The session keeps working afterwards, repeatedly and
-- inside savepoints (a guard that left PG_exception_stack or error_context_stack pointing into
-- a dead frame would crash the backend or garble the next error's context).

-- The guarded call: alpaca.redeem_ticket runs its SPI statements inside pga::pg::call. It must
-- be called on its own (it commits), so for the length of this test a trigger on the nonce table
-- raises the error, with the text pga_test.purpose names (the tickets are valid, their nonce
-- insert is the first statement), and is dropped afterwards.
CREATE FUNCTION pga_test_refuse_nonce() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('pga_test.purpose') = 'long' THEN
        RAISE EXCEPTION USING ERRCODE = 'PGA42',
            MESSAGE = 'Schlüssel abgelehnt: ' || repeat('€ü', 300) || ' ✓',
            DETAIL = 'Détail ' || repeat('ß', 700),
            HINT = 'Hinweis: prüfe ' || repeat('ø', 400);
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'PGA42',
        MESSAGE = 'Schlüssel für ' || current_setting('pga_test.purpose') || ' abgelehnt',
        DETAIL = 'Détail ✓', HINT = 'Hinweis ✓';
END $$;
CREATE TRIGGER pga_test_refuse_nonce BEFORE INSERT ON alpaca.redeemed_tickets
    FOR EACH ROW EXECUTE FUNCTION pga_test_refuse_nonce();
SELECT alpaca._mint_ticket('00000000-0000-4000-8000-000000000001', 'user-1', 'long',
                           now() + interval '5 minutes') AS t_long \gset
SELECT alpaca._mint_ticket('00000000-0000-4000-8000-000000000001', 'user-1', 'kürzer',
                           now() + interval '5 minutes') AS t_short \gset

-- Several times in a row (the nonce insert fails, so a ticket stays unredeemed); the long
-- message, detail and hint come back whole, with the SQLSTATE and the CONTEXT of the frames
-- they were raised in.
SET pga_test.purpose = 'long';
CALL alpaca.redeem_ticket(:'t_long', 'long', NULL, NULL, NULL, NULL);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate, octet_length(:'LAST_ERROR_MESSAGE') AS message_bytes,
       :'LAST_ERROR_MESSAGE' = 'Schlüssel abgelehnt: ' || repeat('€ü', 300) || ' ✓' AS message_intact;
SET pga_test.purpose = 'kürzer';
CALL alpaca.redeem_ticket(:'t_short', 'kürzer', NULL, NULL, NULL, NULL);
SET pga_test.purpose = 'long';
CALL alpaca.redeem_ticket(:'t_long', 'long', NULL, NULL, NULL, NULL);
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate, octet_length(:'LAST_ERROR_MESSAGE') AS message_bytes,
       :'LAST_ERROR_MESSAGE' = 'Schlüssel abgelehnt: ' || repeat('€ü', 300) || ' ✓' AS message_intact;
SET pga_test.purpose = 'noch einmal';
CALL alpaca.redeem_ticket(:'t_short', 'kürzer', NULL, NULL, NULL, NULL);
RESET pga_test.purpose;
DROP TRIGGER pga_test_refuse_nonce ON alpaca.redeemed_tickets;
DROP FUNCTION pga_test_refuse_nonce();

-- A PostgreSQL error from another guarded call (set_config_option in alpaca_set_user), with
-- multi-byte text in message and detail, twice, then an error of pg_alpaca's own.
DO $$ BEGIN END $$;  -- loads PL/pgSQL, which defines plpgsql.extra_warnings
SET pg_alpaca.user_setting = 'plpgsql.extra_warnings';
SELECT alpaca_set_user('schlüssel_✓');
SELECT alpaca_set_user('ключ');
RESET pg_alpaca.user_setting;
SELECT alpaca_set_user(repeat('ü', 200));

-- The session works: the trigger is gone (the kept plan of the nonce insert was re-planned: the
-- ticket gets past it, to the credential that does not exist), and guarded calls succeed and
-- fail as before.
CALL alpaca.redeem_ticket('not-a-ticket', 'account', NULL, NULL, NULL, NULL);
CALL alpaca.redeem_ticket(:'t_long', 'long', NULL, NULL, NULL, NULL);
SELECT count(*) AS no_nonce_left FROM alpaca.redeemed_tickets;
SELECT alpaca._seal('PKTEST0000000000AAAA', '00000000-0000-4000-8000-000000000001', 'api_key')::text ~ '^pgak1:' AS seals;
SELECT alpaca_set_user('user-1'), alpaca_current_user();
