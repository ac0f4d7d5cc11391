-- The alpaca_secret type: only well-formed envelopes get in; plaintext never does.
SELECT alpaca._seal('PKTEST0000000000AAAA', '00000000-0000-4000-8000-000000000001', 'api_key') AS env \gset
SELECT :'env' ~ '^pgak1:1:[A-Za-z0-9+/]+=*$' AS envelope_form,
       :'env'::alpaca_secret::text = :'env' AS text_round_trip,
       alpaca._secret_key_id(:'env') AS key_id;

-- Every malformed input: 22P02 with a message saying what is wrong.
SELECT left(input, 48) AS input, pga_try(format('SELECT %L::alpaca_secret', input)) AS result
FROM (VALUES
    ('PKTEST0000000000AAAA'),                 -- plaintext
    (''),                                      -- empty
    ('pgak2:1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='), -- wrong version
    ('pgak1:0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='), -- key id 0
    ('pgak1:01:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='), -- leading zero
    ('pgak1:99999999999:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='), -- id overflow
    ('pgak1:1:not base64!'),                  -- bad base64
    ('pgak1:1:AAAA'),                          -- payload too short
    ('pgak1:1:' || repeat('A', 1000)),         -- payload too long
    ('pgak1:1:' || repeat('A', 1200))          -- envelope too long
) AS t(input);

-- The hint points at the store function.
DO $$
DECLARE s text; m text; h text;
BEGIN
    PERFORM 'sk_live_plaintext'::alpaca_secret;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, h = PG_EXCEPTION_HINT;
    RAISE NOTICE '% | % | hint: %', s, m, h;
END $$;

-- Binary send/receive and COPY round-trip the envelope unchanged.
CREATE TEMP TABLE secrets_copy (s alpaca_secret);
INSERT INTO secrets_copy VALUES (:'env');
COPY secrets_copy TO '/tmp/pg_alpaca_regress_copy.txt';
COPY secrets_copy FROM '/tmp/pg_alpaca_regress_copy.txt';
SELECT count(*) AS rows, count(DISTINCT s::text) AS distinct_envelopes, bool_and(s::text = :'env') AS unchanged
FROM secrets_copy;
SELECT alpaca_secret_recv IS NOT NULL FROM (SELECT alpaca_secret_send(:'env') AS alpaca_secret_recv) s;

-- The envelope is bound to its credential id and column: moved anywhere else it does not open.
SELECT alpaca._seal('SECRETSECRETSECRETSECRETSECRETSECRETSECR', '00000000-0000-4000-8000-000000000001', 'secret_key') AS env_secret \gset
SELECT length(fingerprint) > 10 AS reseals_in_place
FROM alpaca._reseal_credential(:'env', :'env_secret', '00000000-0000-4000-8000-000000000001');
SELECT pga_try(format('SELECT alpaca._reseal_credential(%L, %L, %L)', :'env', :'env_secret',
               '00000000-0000-4000-8000-000000000002')) AS other_row;
SELECT pga_try(format('SELECT alpaca._reseal_credential(%L, %L, %L)', :'env_secret', :'env',
               '00000000-0000-4000-8000-000000000001')) AS swapped_columns;
-- A single flipped byte is detected, never decrypted to garbage.
SELECT pga_try(format('SELECT alpaca._reseal_credential(%L, %L, %L)',
               overlay(:'env' placing (CASE WHEN substr(:'env', 20, 1) = 'A' THEN 'B' ELSE 'A' END) from 20 for 1),
               :'env_secret', '00000000-0000-4000-8000-000000000001')) AS tampered;
-- Seal refuses empty and over-long plaintext.
SELECT pga_try($$SELECT alpaca._seal('', gen_random_uuid(), 'api_key')$$) AS empty_plaintext;
SELECT pga_try($$SELECT alpaca._seal(repeat('x', 513), gen_random_uuid(), 'api_key')$$) AS long_plaintext;
