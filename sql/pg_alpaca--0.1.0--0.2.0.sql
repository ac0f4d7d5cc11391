-- pg_alpaca 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_alpaca UPDATE). Every change made to
-- pg_alpaca--0.2.0.sql since 0.1.0 is made here too; test/integration/test_upgrade.py checks
-- that an updated installation's catalog is identical to a fresh 0.2.0 installation's.
\echo Use "ALTER EXTENSION pg_alpaca UPDATE" to load this file. \quit

-- Roles: alpaca_maintainer owns the administrators' functions instead of a superuser.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['alpaca_app', 'alpaca_sidecar', 'alpaca_admin', 'alpaca_owner',
                             'alpaca_maintainer'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    FOREACH r IN ARRAY ARRAY['alpaca_owner', 'alpaca_maintainer'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                   WHERE rolname = r AND (rolsuper OR rolbypassrls OR rolcanlogin)) THEN
            RAISE EXCEPTION 'role % exists with SUPERUSER, BYPASSRLS or LOGIN', r
                USING ERRCODE = '42501',
                      HINT = 'It must be a plain NOLOGIN role so that row-level security applies to it.';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles o ON o.oid = m.roleid
                   WHERE o.rolname = r) THEN
            RAISE EXCEPTION 'role % has members', r
                USING ERRCODE = '42501',
                      HINT = 'Its members could read encrypted columns and mint tickets; revoke the membership first.';
        END IF;
    END LOOP;
END
$roles$;
GRANT USAGE ON SCHEMA alpaca TO alpaca_maintainer, alpaca_sidecar;

-- Twins of public functions for the extension's own calls (immune to planted overloads).
-- Twins of the public functions above for the extension's own calls. Nobody but the extension
-- can create objects in schema alpaca, so an overload planted in a schema anyone can write
-- (public on clusters upgraded from PostgreSQL <= 14) cannot make these calls ambiguous.
CREATE FUNCTION alpaca._current_user() RETURNS text
    AS 'MODULE_PATHNAME', 'pga_current_user' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE FUNCTION alpaca._set_user(user_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'pga_set_user' LANGUAGE C VOLATILE;

-- Row shapes declared once.
-- The row shapes of Alpaca's answers, declared once: the parsers and the fetching functions
-- return them. Adding a column = ALTER TYPE ... ADD ATTRIBUTE (in an update script) plus one
-- line in extension/alpaca_rows.cpp.
CREATE TYPE alpaca.account_row AS (
        id uuid, account_number text, status text, crypto_status text, currency text,
        cash numeric, buying_power numeric, regt_buying_power numeric,
        daytrading_buying_power numeric, non_marginable_buying_power numeric,
        options_buying_power numeric, equity numeric, last_equity numeric,
        long_market_value numeric, short_market_value numeric, portfolio_value numeric,
        initial_margin numeric, maintenance_margin numeric, last_maintenance_margin numeric,
        sma numeric, multiplier numeric, pattern_day_trader boolean, daytrade_count integer,
        options_approved_level integer, options_trading_level integer, shorting_enabled boolean,
        trading_blocked boolean, transfers_blocked boolean, account_blocked boolean,
        trade_suspended_by_user boolean, created_at timestamptz);
CREATE TYPE alpaca.position_row AS (
        symbol text, asset_class text, side text, qty numeric, avg_entry_price numeric,
        market_value numeric, cost_basis numeric, unrealized_pl numeric, unrealized_plpc numeric,
        current_price numeric, change_today numeric, underlying text, expiration date,
        option_type text, strike numeric);
CREATE TYPE alpaca.order_row AS (
        id uuid, client_order_id text, symbol text, asset_class text, side text, type text,
        time_in_force text, qty numeric, filled_qty numeric, filled_avg_price numeric,
        limit_price numeric, stop_price numeric, status text, order_class text,
        submitted_at timestamptz, filled_at timestamptz, canceled_at timestamptz, legs jsonb);
COMMENT ON TYPE alpaca.account_row IS 'One Alpaca account, as alpaca_account() returns it';
COMMENT ON TYPE alpaca.position_row IS 'One Alpaca position, as alpaca_positions() returns it';
COMMENT ON TYPE alpaca.order_row IS 'One Alpaca order, as alpaca_orders() returns it';

DROP FUNCTION alpaca_parse_account(text), alpaca_parse_positions(text), alpaca_parse_orders(text);
-- Pure parsers of Alpaca's JSON (no secrets): public, so anyone can replay recorded answers.
CREATE FUNCTION alpaca_parse_account(body text) RETURNS SETOF alpaca.account_row
    AS 'MODULE_PATHNAME', 'pga_parse_account' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION alpaca_parse_positions(body text) RETURNS SETOF alpaca.position_row
    AS 'MODULE_PATHNAME', 'pga_parse_positions' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION alpaca_parse_orders(body text) RETURNS SETOF alpaca.order_row
    AS 'MODULE_PATHNAME', 'pga_parse_orders' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
-- ...and their twins for the extension's own calls (see alpaca._current_user).
CREATE FUNCTION alpaca._parse_account(body text) RETURNS SETOF alpaca.account_row
    AS 'MODULE_PATHNAME', 'pga_parse_account' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION alpaca._parse_positions(body text) RETURNS SETOF alpaca.position_row
    AS 'MODULE_PATHNAME', 'pga_parse_positions' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION alpaca._parse_orders(body text) RETURNS SETOF alpaca.order_row
    AS 'MODULE_PATHNAME', 'pga_parse_orders' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Internal calls by schema-qualified name only.
CREATE OR REPLACE FUNCTION alpaca._require_user() RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u text := alpaca._current_user();
BEGIN
    IF u IS NULL THEN
        RAISE EXCEPTION 'no application user is set for this transaction'
            USING ERRCODE = '42501',
                  HINT = 'Call alpaca_set_user(user_id) inside the same transaction first.';
    END IF;
    RETURN u;
END $$;
CREATE OR REPLACE FUNCTION alpaca._audit(action text, cred uuid, purpose text DEFAULT NULL,
                              outcome text DEFAULT 'ok', app_user text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
-- plpgsql keeps the INSERT's plan for the session (a SQL function with a SET clause is parsed
-- and planned on every call). Only the extension's SECURITY DEFINER functions call it, under
-- their search_path; every name here is schema-qualified.
BEGIN
    INSERT INTO alpaca.audit_log (app_user, credential_id, action, purpose, outcome)
    VALUES (coalesce(app_user, alpaca._current_user()), cred, action, purpose, outcome);
END $$;
CREATE FUNCTION alpaca._store_credential(account_id uuid, api_key text, secret_key text,
                                         environment text, label text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    u text := alpaca._require_user();
    fps text[];
    new_id uuid := gen_random_uuid();
BEGIN
    IF account_id IS NULL THEN
        RAISE EXCEPTION 'account_id must not be null' USING ERRCODE = '22023';
    END IF;
    PERFORM alpaca._check_key_text(api_key, 'api_key');
    PERFORM alpaca._check_key_text(secret_key, 'secret_key');
    IF environment IS NULL OR environment NOT IN ('paper', 'live') THEN
        RAISE EXCEPTION 'environment must be ''paper'' or ''live''' USING ERRCODE = '22023';
    END IF;
    IF length(label) > 200 THEN
        RAISE EXCEPTION 'label is longer than 200 characters' USING ERRCODE = '22023';
    END IF;
    PERFORM 1 FROM alpaca.accounts a WHERE a.id = account_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist or does not belong to the current user', account_id
            USING ERRCODE = '42501';
    END IF;
    -- One writer per account at a time, so the duplicate check below cannot race.
    PERFORM pg_advisory_xact_lock(hashtext('pg_alpaca.account'), hashtext(account_id::text));
    fps := alpaca._fingerprints(api_key);
    IF alpaca._key_in_account(account_id, fps, NULL) THEN
        RAISE EXCEPTION 'this API key is already stored in account %', account_id
            USING ERRCODE = '23505', HINT = 'Use alpaca_update_credential() to change it.';
    END IF;
    INSERT INTO alpaca.credentials (id, account_id, owner_id, label, environment, api_key,
                                    secret_key, api_key_fingerprint, key_hint)
    VALUES (new_id, account_id, u, label, environment,
            alpaca._seal(api_key, new_id, 'api_key'), alpaca._seal(secret_key, new_id, 'secret_key'),
            fps[1], right(api_key, 4));
    PERFORM alpaca._audit('store', new_id);
    RETURN new_id;
END $$;
-- The public API is a wrapper (inlined by the planner) around the internal function, which the
-- extension's own code calls by its schema-qualified name.
CREATE OR REPLACE FUNCTION alpaca_store_credential(account_id uuid, api_key text, secret_key text,
                                        environment text DEFAULT 'paper', label text DEFAULT NULL)
RETURNS uuid
LANGUAGE sql VOLATILE AS $$ SELECT alpaca._store_credential($1, $2, $3, $4, $5) $$;
CREATE FUNCTION alpaca._issue_ticket(cred uuid, purpose text, ttl interval)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u text := alpaca._require_user();
    active boolean;
    t text;
BEGIN
    IF purpose IS NULL OR purpose NOT IN ('validate', 'account', 'positions', 'orders', 'clock') THEN
        RAISE EXCEPTION 'unknown ticket purpose'
            USING ERRCODE = '22023', HINT = 'Use validate, account, positions, orders or clock.';
    END IF;
    IF ttl IS NULL OR ttl <= interval '0' OR ttl > interval '5 minutes' THEN
        RAISE EXCEPTION 'ticket ttl must be more than 0 and at most 5 minutes' USING ERRCODE = '22023';
    END IF;
    SELECT c.is_active INTO active FROM alpaca.credentials c WHERE c.id = cred;
    IF NOT FOUND THEN
        PERFORM alpaca._not_found(cred);
    END IF;
    IF NOT active THEN
        RAISE EXCEPTION 'credential % is deactivated', cred
            USING ERRCODE = '55000', HINT = 'Reactivate it with alpaca_update_credential(id, is_active => true).';
    END IF;
    t := alpaca._mint_ticket(cred, u, purpose, clock_timestamp() + ttl);
    PERFORM alpaca._audit('ticket', cred, purpose);
    RETURN t;
END $$;
CREATE OR REPLACE FUNCTION alpaca_issue_ticket(cred uuid, purpose text, ttl interval DEFAULT '30 seconds')
RETURNS text
LANGUAGE sql VOLATILE AS $$ SELECT alpaca._issue_ticket($1, $2, $3) $$;
-- Mints a ticket (ownership checked under RLS), asks the sidecar, records use. Returns the
-- JSON body, or NULL when accept_unauthorized and Alpaca refused the keys.
CREATE OR REPLACE FUNCTION alpaca._call(cred uuid, op text, query text[] DEFAULT '{}',
                             accept_unauthorized boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    body text;
BEGIN
    body := alpaca._alpaca_get(cred, op, alpaca._issue_ticket(cred, op, interval '30 seconds'), query,
                               accept_unauthorized);
    UPDATE alpaca.credentials c
       SET last_used_at = now(),
           last_validated_at = CASE WHEN op = 'validate' THEN now() ELSE c.last_validated_at END
     WHERE c.id = cred;
    PERFORM alpaca._audit('call', cred, op, CASE WHEN body IS NULL THEN 'rejected' ELSE 'ok' END);
    RETURN body;
END $$;

-- The redeem commits its single-use mark and audit row before the keys leave.
DROP FUNCTION alpaca_redeem_ticket(text, text);
-- CALL alpaca.redeem_ticket(ticket, purpose, NULL, NULL, NULL, NULL), in autocommit mode only:
-- the procedure commits the single-use mark and the decrypt audit row before the keys leave
-- (extension/redeem.cpp). Not SECURITY DEFINER and without a SET clause (either would forbid
-- the commit): it runs alpaca._redeem_prepare as alpaca_owner itself and names every object
-- it uses with its schema. It lives in schema alpaca, where nobody but the extension creates
-- objects, so an overload planted elsewhere cannot make the sidecar's call ambiguous.
CREATE PROCEDURE alpaca.redeem_ticket(ticket text, purpose text, OUT credential_id uuid,
        OUT environment text, OUT api_key text, OUT secret_key text)
    AS 'MODULE_PATHNAME', 'pga_redeem_ticket' LANGUAGE C;
COMMENT ON PROCEDURE alpaca.redeem_ticket(text, text, uuid, text, text, text) IS 'alpaca_sidecar only: trade a ticket for the plaintext keys once, committed before they leave';

-- The fetching functions return the row types (a new return type: drop and create).
DROP FUNCTION alpaca_account(uuid), alpaca_positions(uuid), alpaca_orders(uuid, text, int);
CREATE FUNCTION alpaca_account(cred uuid) RETURNS SETOF alpaca.account_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_account(alpaca._call($1, 'account'));
$$;
CREATE FUNCTION alpaca_positions(cred uuid) RETURNS SETOF alpaca.position_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_positions(alpaca._call($1, 'positions'));
$$;
CREATE FUNCTION alpaca_orders(cred uuid, status text DEFAULT 'open', max_rows int DEFAULT 50)
RETURNS SETOF alpaca.order_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_orders(
        alpaca._call($1, 'orders', alpaca._orders_query($2, $3)));
$$;

-- Rotation: a procedure without operators or unqualified names, steps in pinned functions.
-- The state of one CALL alpaca_rotate_keys(), carried from batch to batch.
CREATE TYPE alpaca.rotation_state AS (batch_size int, total bigint, skip uuid[], waits int,
                                      done boolean);
CREATE FUNCTION alpaca._rotate_start(batch_size int) RETURNS alpaca.rotation_state
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'batch_size must be between 1 and 100000' USING ERRCODE = '22023';
    END IF;
    RETURN ROW(batch_size, 0, '{}'::uuid[], 0, false)::alpaca.rotation_state;
END $$;
-- One batch: re-encrypts it, or, when what is left is locked by applications right now,
-- waits a little (giving up after 30 s of that).
CREATE FUNCTION alpaca._rotate_step(state alpaca.rotation_state) RETURNS alpaca.rotation_state
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    b record;
    s alpaca.rotation_state := state;
BEGIN
    SELECT * INTO b FROM alpaca._rotate_batch(s.batch_size, s.skip);
    s.total := s.total + b.rotated;
    s.skip := s.skip || b.failed;
    IF b.rotated = 0 AND cardinality(b.failed) = 0 THEN
        IF alpaca._rotation_remaining(s.skip) = 0 THEN
            s.done := true;
            RETURN s;
        END IF;
        s.waits := s.waits + 1;
        IF s.waits > 300 THEN
            RAISE WARNING 'alpaca_rotate_keys: % credentials stayed locked; run it again later',
                alpaca._rotation_remaining(s.skip);
            s.done := true;
            RETURN s;
        END IF;
        PERFORM pg_sleep(0.1);
    END IF;
    RETURN s;
END $$;
CREATE FUNCTION alpaca._rotate_finish(state alpaca.rotation_state) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF cardinality(state.skip) > 0 THEN
        RAISE WARNING 'alpaca_rotate_keys: % credentials do not decrypt and were left as they are', cardinality(state.skip)
            USING DETAIL = 'credential ids: ' || array_to_string(state.skip, ', '),
                  HINT = 'Store those credentials again; alpaca_key_status() still counts them.';
    END IF;
    RAISE NOTICE 'alpaca_rotate_keys: re-encrypted % credentials', state.total;
END $$;
-- CALL alpaca_rotate_keys(): batches commit as they go, so an interrupted rotation resumes
-- where it stopped. A procedure (functions cannot commit) without a SET clause (that would
-- forbid the COMMIT): so its body holds no operator and no unqualified name, and every step
-- runs in functions that pin their search_path.
CREATE OR REPLACE PROCEDURE alpaca_rotate_keys(batch_size int DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
    state alpaca.rotation_state := alpaca._rotate_start(batch_size);
BEGIN
    LOOP
        state := alpaca._rotate_step(state);
        COMMIT;
        EXIT WHEN state.done;
    END LOOP;
    PERFORM alpaca._rotate_finish(state);
END $$;

-- Migration: the batch import runs as its caller; rows go by value to alpaca._import_row.
CREATE FUNCTION alpaca._import_fernet_credential(account_id uuid, api_key_token text,
        secret_key_token text, fernet_key text, environment text, label text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id uuid;
BEGIN
    IF api_key_token IS NULL OR secret_key_token IS NULL OR fernet_key IS NULL THEN
        RAISE EXCEPTION 'tokens and Fernet key must not be null' USING ERRCODE = '22023';
    END IF;
    new_id := alpaca._store_credential(account_id,
        alpaca._fernet_decrypt(api_key_token, fernet_key, 'api_key_token'),
        alpaca._fernet_decrypt(secret_key_token, fernet_key, 'secret_key_token'),
        environment, label);
    PERFORM alpaca._audit('import', new_id);
    RETURN new_id;
END $$;
CREATE OR REPLACE FUNCTION alpaca_import_fernet_credential(account_id uuid, api_key_token text,
        secret_key_token text, fernet_key text, environment text DEFAULT 'paper',
        label text DEFAULT NULL) RETURNS uuid
LANGUAGE sql VOLATILE AS $$ SELECT alpaca._import_fernet_credential($1, $2, $3, $4, $5, $6) $$;
-- One row of a batch import, for its user: creates the account when it does not exist yet
-- (keeping its id; an id owned by another user is refused), stores the credential, and leaves
-- no application user set. Takes values only, so it runs no code of the caller's.
CREATE FUNCTION alpaca._import_row(app_user text, account_id uuid, api_key_token text,
        secret_key_token text, fernet_key text, environment text, label text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    new_id uuid;
BEGIN
    PERFORM alpaca._set_user(app_user);
    -- An id that exists for another user is invisible here (RLS) and skipped by ON CONFLICT;
    -- the store below then refuses it like any account the user does not own.
    INSERT INTO alpaca.accounts (id, owner_id, name) VALUES (account_id, app_user, 'imported')
    ON CONFLICT (id) DO NOTHING;
    new_id := alpaca._import_fernet_credential(account_id, api_key_token, secret_key_token,
        fernet_key, coalesce(environment, 'paper'), label);
    PERFORM set_config(alpaca._user_setting_name(), '', true);
    RETURN new_id;
END $$;
-- Batch import of a whole table of the earlier system, by an administrator. `source` must have
-- the columns app_user text, account_id uuid, api_key_token text, secret_key_token text,
-- environment text, label text. SECURITY INVOKER: whatever `source` drags in (a view, its
-- functions, operators) runs with the caller's own privileges, never the extension's; each
-- row is handed by value to alpaca._import_row.
CREATE OR REPLACE FUNCTION alpaca_import_fernet_credentials(source regclass, fernet_key text)
RETURNS TABLE(app_user text, account_id uuid, credential_id uuid)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    FOR r IN EXECUTE format('SELECT s.app_user, s.account_id, s.api_key_token, s.secret_key_token,
                                    s.environment, s.label
                             FROM %s s ORDER BY s.app_user, s.account_id', source) LOOP
        app_user := r.app_user;
        account_id := r.account_id;
        credential_id := alpaca._import_row(r.app_user::text, r.account_id::uuid,
            r.api_key_token::text, r.secret_key_token::text, fernet_key, r.environment::text,
            r.label::text);
        RETURN NEXT;
    END LOOP;
END $$;

-- Ownership and privileges of what changed.
ALTER FUNCTION alpaca._store_credential(uuid, text, text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._issue_ticket(uuid, text, interval) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_account(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_positions(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_orders(uuid, text, int) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._import_fernet_credential(uuid, text, text, text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._import_row(text, uuid, text, text, text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_key_status() OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca._rotate_batch(int, uuid[]) OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca._rotation_remaining(uuid[]) OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca_retire_key(bigint) OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca._rotate_step(alpaca.rotation_state) OWNER TO alpaca_maintainer;

-- alpaca_maintainer sees and re-encrypts every credential (rotation), and records it.
CREATE POLICY credentials_maintainer ON alpaca.credentials TO alpaca_maintainer
    USING (true) WITH CHECK (true);
CREATE POLICY audit_log_maintainer_append ON alpaca.audit_log FOR INSERT TO alpaca_maintainer
    WITH CHECK (true);
GRANT SELECT, UPDATE (api_key, secret_key, api_key_fingerprint) ON alpaca.credentials TO alpaca_maintainer;
GRANT INSERT ON alpaca.audit_log TO alpaca_maintainer;

-- New functions start executable by PUBLIC: take that back, then grant as a fresh install does.
-- Nothing is executable by PUBLIC except the user getter, the type I/O and the pure parsers.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA alpaca FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._secret_key_id(alpaca_secret) TO PUBLIC;
REVOKE ALL ON FUNCTION alpaca_account(uuid), alpaca_positions(uuid), alpaca_orders(uuid, text, int) FROM PUBLIC;
REVOKE ALL ON PROCEDURE alpaca.redeem_ticket(text, text, uuid, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._user_setting_name(), alpaca._seal(text, uuid, text),
    alpaca._fingerprints(text), alpaca._mint_ticket(uuid, text, text, timestamptz),
    alpaca._verify_ticket(text), alpaca._alpaca_get(uuid, text, text, text[], boolean),
    alpaca._require_user(), alpaca._audit(text, uuid, text, text, text),
    alpaca._check_key_text(text, text), alpaca._not_found(uuid), alpaca._call(uuid, text, text[], boolean),
    alpaca._fernet_decrypt(text, text, text), alpaca._orders_query(text, int),
    alpaca._key_in_account(uuid, text[], uuid), alpaca._current_user(), alpaca._set_user(text),
    alpaca._parse_account(text), alpaca._parse_positions(text), alpaca._parse_orders(text)
    TO alpaca_owner;
GRANT EXECUTE ON FUNCTION alpaca._key_ring(), alpaca._reseal_credential(alpaca_secret, alpaca_secret, uuid)
    TO alpaca_maintainer;
GRANT EXECUTE ON FUNCTION alpaca_set_user(text), alpaca_create_account(text),
    alpaca_store_credential(uuid, text, text, text, text), alpaca_list_credentials(uuid),
    alpaca_update_credential(uuid, text, text, boolean, text), alpaca_delete_credential(uuid),
    alpaca_issue_ticket(uuid, text, interval), alpaca_validate_credential(uuid),
    alpaca_account(uuid), alpaca_positions(uuid), alpaca_orders(uuid, text, int),
    alpaca_import_fernet_credential(uuid, text, text, text, text, text),
    alpaca._store_credential(uuid, text, text, text, text), alpaca._issue_ticket(uuid, text, interval),
    alpaca._import_fernet_credential(uuid, text, text, text, text, text)
    TO alpaca_app;
GRANT EXECUTE ON PROCEDURE alpaca.redeem_ticket(text, text, uuid, text, text, text) TO alpaca_sidecar;
GRANT EXECUTE ON FUNCTION alpaca_key_status(), alpaca_retire_key(bigint), alpaca._rotate_batch(int, uuid[]),
    alpaca._rotation_remaining(uuid[]), alpaca_import_fernet_credentials(regclass, text),
    alpaca._rotate_start(int), alpaca._rotate_step(alpaca.rotation_state),
    alpaca._rotate_finish(alpaca.rotation_state),
    alpaca._import_row(text, uuid, text, text, text, text, text) TO alpaca_admin;

-- A schema that everyone may create objects in lets anyone plant overloads of these
-- functions' names, which makes an application's unqualified calls ambiguous or hijacks them
-- (the extension's own calls are immune: they go to schema alpaca).
DO $schema_check$
BEGIN
    IF pg_catalog.has_schema_privilege('public', '@extschema@', 'CREATE') THEN
        RAISE WARNING 'pg_alpaca is installed in schema @extschema@, where every role may create objects'
            USING DETAIL = 'A role could create overloads of pg_alpaca''s function names there and break or hijack applications'' calls.',
                  HINT = 'REVOKE CREATE ON SCHEMA @extschema@ FROM PUBLIC (the default since PostgreSQL 15).';
    END IF;
END
$schema_check$;

-- Verified users (alpaca_set_user_jwt, pg_alpaca.user_source = jwt).
CREATE FUNCTION alpaca_set_user_jwt(token text) RETURNS text
    AS 'MODULE_PATHNAME', 'pga_set_user_jwt' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION alpaca_set_user_jwt(text) IS 'Verifies a signed JWT with the key set of pg_alpaca.jwt_keys_file and makes its user the application user for the rest of the transaction; returns the user';
REVOKE ALL ON FUNCTION alpaca_set_user_jwt(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca_set_user_jwt(text) TO alpaca_app;
-- The verified user lives in the leader's memory: a parallel worker must not evaluate it.
ALTER FUNCTION alpaca_current_user() PARALLEL RESTRICTED;
-- The ticket's user is set through alpaca._set_user, which user_source = jwt trusts from
-- alpaca_owner only (a bare set_config would name nobody then).
CREATE OR REPLACE FUNCTION alpaca._redeem_prepare(ticket text, purpose text)
RETURNS TABLE(credential_id uuid, environment text, api_key alpaca_secret, secret_key alpaca_secret)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    claims record;
    cur record;
BEGIN
    SELECT * INTO claims FROM alpaca._verify_ticket(ticket);
    IF claims.purpose <> purpose THEN
        RAISE EXCEPTION 'ticket was issued for another purpose' USING ERRCODE = '42501';
    END IF;
    INSERT INTO alpaca.redeemed_tickets (nonce, expires_at) VALUES (claims.nonce, claims.expires_at)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ticket was already redeemed' USING ERRCODE = '42501';
    END IF;
    IF random() < 0.01 THEN
        DELETE FROM alpaca.redeemed_tickets r WHERE r.expires_at < clock_timestamp() - interval '1 minute';
    END IF;
    PERFORM alpaca._set_user(claims.app_user);
    SELECT c.id, c.environment, c.api_key, c.secret_key, c.is_active INTO cur
      FROM alpaca.credentials c WHERE c.id = claims.credential_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ticket names a credential that does not exist, is not committed yet, or is not owned by its user'
            USING ERRCODE = '42501';
    END IF;
    IF NOT cur.is_active THEN
        RAISE EXCEPTION 'ticket names a deactivated credential' USING ERRCODE = '42501';
    END IF;
    PERFORM alpaca._audit('decrypt', cur.id, purpose, 'ok', claims.app_user);
    PERFORM set_config(alpaca._user_setting_name(), '', true);
    RETURN QUERY SELECT cur.id, cur.environment, cur.api_key, cur.secret_key;
END $$;
