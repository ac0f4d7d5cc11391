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

-- COPY round-trips envelopes unchanged, row for row, in text and in binary format (binary goes
-- through alpaca_secret_send and alpaca_secret_recv). The files are written into the data
-- directory of the throwaway test cluster.
SELECT current_setting('data_directory') || '/pga_regress_secrets.bin' AS copy_bin,
       current_setting('data_directory') || '/pga_regress_secrets.txt' AS copy_txt,
       current_setting('data_directory') || '/pga_regress_corrupt.bin' AS copy_bad \gset
CREATE TEMP TABLE secrets_src (n int, s alpaca_secret);
INSERT INTO secrets_src
SELECT n, alpaca._seal(format('PKTEST%s%s', n, repeat('K', n * 7)), '00000000-0000-4000-8000-000000000001', 'api_key')
FROM generate_series(1, 5) n;
INSERT INTO secrets_src VALUES (6, NULL);
-- The binary form of an envelope is its text, byte for byte.
SELECT bool_and(alpaca_secret_send(s) = convert_to(s::text, 'UTF8')) AS send_is_the_envelope
FROM secrets_src WHERE s IS NOT NULL;
COPY secrets_src TO :'copy_bin' (FORMAT binary);
COPY secrets_src TO :'copy_txt';
SELECT position(convert_to(s::text, 'UTF8') IN pg_read_binary_file(:'copy_bin')) > 0 AS in_binary_file
FROM secrets_src WHERE n = 3;
CREATE TEMP TABLE secrets_bin (LIKE secrets_src);
CREATE TEMP TABLE secrets_txt (LIKE secrets_src);
COPY secrets_bin FROM :'copy_bin' (FORMAT binary);
COPY secrets_txt FROM :'copy_txt';
SELECT n, src.s IS NULL AS is_null, b.s::text IS NOT DISTINCT FROM src.s::text AS binary_same,
       t.s::text IS NOT DISTINCT FROM src.s::text AS text_same
FROM secrets_src src FULL JOIN secrets_bin b USING (n) FULL JOIN secrets_txt t USING (n)
ORDER BY n;
-- Corrupted binary input is refused by alpaca_secret_recv with 22P02, like the text form. The
-- file is a valid binary COPY of (int, bytea) whose bytea is the bad field.
CREATE FUNCTION pg_temp.copy_in_binary_field(bad bytea, file text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('COPY (SELECT 7, %L::bytea) TO %L (FORMAT binary)', bad, file);
    RETURN pga_try(format('COPY secrets_bin FROM %L (FORMAT binary)', file));
END $$;
SELECT left(encode(bad, 'escape'), 40) AS binary_field,
       pg_temp.copy_in_binary_field(bad, :'copy_bad') AS result
FROM (VALUES (convert_to('sk_live_plaintext', 'UTF8')),
             (convert_to('pgak1:1:not base64!', 'UTF8')),
             (convert_to('pgak2:1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', 'UTF8')),
             ('\x7067616b313a313a00414141'::bytea),
             ('\xff'::bytea),
             (''::bytea)) AS t(bad);
SELECT count(*) AS rows_after_refused_copies FROM secrets_bin;

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
