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
-- After acting for a user it named (batch import, redeem): no user, and none remembered as
-- verified, for the rest of the transaction.
CREATE FUNCTION alpaca._end_user() RETURNS void
    AS 'MODULE_PATHNAME', 'pga_end_user' LANGUAGE C VOLATILE;

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
    PERFORM alpaca._require_primary('storing a credential');
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

-- A ticket for the application user's credential (extension/tickets.cpp, which the calls use
-- too): the user, the purpose, the ttl (more than 0, at most 5 minutes) and the credential
-- under row-level security are checked in that order. No write: a ticket costs nothing until
-- it is redeemed (the redeem's decrypt row is the record), so calls work in read-only
-- transactions and on hot standbys.
CREATE FUNCTION alpaca._issue_ticket(cred uuid, purpose text, ttl interval)
RETURNS text
AS 'MODULE_PATHNAME', 'pga_issue_ticket' LANGUAGE C VOLATILE SECURITY DEFINER;
CREATE OR REPLACE FUNCTION alpaca_issue_ticket(cred uuid, purpose text, ttl interval DEFAULT '30 seconds')
RETURNS text
LANGUAGE sql VOLATILE AS $$ SELECT alpaca._issue_ticket($1, $2, $3) $$;
-- Mints a ticket (ownership checked under RLS) and asks the sidecar. Returns the JSON body, or
-- NULL when accept_unauthorized and Alpaca refused the keys. Writes nothing in the caller's
-- transaction (it works READ ONLY and on a hot standby): the redeem commits the decrypt row on
-- the primary before the keys leave, and the sidecar records the call's outcome and
-- last_used_at afterwards (alpaca._record_outcomes).
CREATE OR REPLACE FUNCTION alpaca._call(cred uuid, op text, query text[] DEFAULT '{}',
                             accept_unauthorized boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN alpaca._alpaca_get(cred, op, alpaca._issue_ticket(cred, op, interval '30 seconds'),
                              query, accept_unauthorized);
END $$;

-- The redeem commits its single-use mark and audit row before the keys leave.
DROP FUNCTION alpaca_redeem_ticket(text, text);
-- CALL alpaca.redeem_ticket(ticket, purpose, NULL, NULL, NULL, NULL), in autocommit mode only:
-- the procedure commits the single-use mark and the decrypt audit row before the keys leave
-- (extension/redeem.cpp). Not SECURITY DEFINER and without a SET clause (either would forbid
-- the commit): it checks, marks and audits in C as alpaca_owner and names every object
-- it uses with its schema. It lives in schema alpaca, where nobody but the extension creates
-- objects, so an overload planted elsewhere cannot make the sidecar's call ambiguous.
CREATE PROCEDURE alpaca.redeem_ticket(ticket text, purpose text, OUT credential_id uuid,
        OUT environment text, OUT api_key text, OUT secret_key text)
    AS 'MODULE_PATHNAME', 'pga_redeem_ticket' LANGUAGE C;
COMMENT ON PROCEDURE alpaca.redeem_ticket(text, text, uuid, text, text, text) IS 'alpaca_sidecar only: trade a ticket for the plaintext keys once, committed before they leave';

-- The fetching functions return the row types (a new return type: drop and create).
DROP FUNCTION alpaca_account(uuid), alpaca_positions(uuid), alpaca_orders(uuid, text, int);
-- The calls themselves (extension/alpaca_calls.cpp): one C function each that checks the user,
-- reads the credential under RLS (a statement prepared once per backend), mints the ticket,
-- asks the sidecar and parses the answer straight into its result rows; the same errors as
-- alpaca._call. SECURITY DEFINER (as alpaca_owner) without a SET clause: no name in them
-- resolves through the caller's search_path (their one statement is fully schema-qualified,
-- operator included), and the GUC save/restore of a SET clause was a measurable part of a call.
-- COST 100, as they had in plpgsql and SQL (a C function's default is 1): the planner still
-- evaluates cheaper conditions first, e.g. before alpaca_validate_credential(id) in a WHERE.
CREATE OR REPLACE FUNCTION alpaca_validate_credential(id uuid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'pga_call_validate' LANGUAGE C VOLATILE SECURITY DEFINER COST 100;
CREATE FUNCTION alpaca_account(cred uuid) RETURNS SETOF alpaca.account_row
    AS 'MODULE_PATHNAME', 'pga_call_account' LANGUAGE C VOLATILE SECURITY DEFINER COST 100;
CREATE FUNCTION alpaca_positions(cred uuid) RETURNS SETOF alpaca.position_row
    AS 'MODULE_PATHNAME', 'pga_call_positions' LANGUAGE C VOLATILE SECURITY DEFINER COST 100;
CREATE FUNCTION alpaca_orders(cred uuid, status text DEFAULT 'open', max_rows int DEFAULT 50)
RETURNS SETOF alpaca.order_row
    AS 'MODULE_PATHNAME', 'pga_call_orders' LANGUAGE C VOLATILE SECURITY DEFINER COST 100;

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
    PERFORM alpaca._require_primary('rotating keys');
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
        PERFORM alpaca._rotation_note(state);
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
    PERFORM alpaca._end_user();
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

--------------------------------------------------------------------------------------------
-- Trading (0.2.0)
--------------------------------------------------------------------------------------------
ALTER TABLE alpaca.credentials ADD COLUMN live_trading boolean NOT NULL DEFAULT false;
ALTER TABLE alpaca.audit_log ADD COLUMN client_order_id text;
ALTER TABLE alpaca.redeemed_tickets ADD COLUMN audited boolean NOT NULL DEFAULT false;
GRANT SELECT (live_trading) ON alpaca.credentials TO alpaca_app;

-- A new parameter: drop and create (owner and grants below).
DROP FUNCTION alpaca_update_credential(uuid, text, text, boolean, text);
CREATE FUNCTION alpaca_update_credential(id uuid, api_key text DEFAULT NULL,
                                         secret_key text DEFAULT NULL,
                                         is_active boolean DEFAULT NULL, label text DEFAULT NULL,
                                         live_trading boolean DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    u text := alpaca._require_user();
    cur alpaca.credentials%ROWTYPE;
    fps text[];
BEGIN
    PERFORM alpaca._require_primary('updating a credential');
    SELECT * INTO cur FROM alpaca.credentials c WHERE c.id = alpaca_update_credential.id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM alpaca._not_found(alpaca_update_credential.id);
    END IF;
    IF length(label) > 200 THEN
        RAISE EXCEPTION 'label is longer than 200 characters' USING ERRCODE = '22023';
    END IF;
    IF api_key IS NOT NULL THEN
        PERFORM alpaca._check_key_text(api_key, 'api_key');
        PERFORM pg_advisory_xact_lock(hashtext('pg_alpaca.account'), hashtext(cur.account_id::text));
        fps := alpaca._fingerprints(api_key);
        IF alpaca._key_in_account(cur.account_id, fps, cur.id) THEN
            RAISE EXCEPTION 'this API key is already stored in account %', cur.account_id
                USING ERRCODE = '23505';
        END IF;
        UPDATE alpaca.credentials c
           SET api_key = alpaca._seal(api_key, cur.id, 'api_key'), api_key_fingerprint = fps[1],
               key_hint = right(api_key, 4)
         WHERE c.id = cur.id;
    END IF;
    IF secret_key IS NOT NULL THEN
        PERFORM alpaca._check_key_text(secret_key, 'secret_key');
        UPDATE alpaca.credentials c SET secret_key = alpaca._seal(secret_key, cur.id, 'secret_key')
         WHERE c.id = cur.id;
    END IF;
    UPDATE alpaca.credentials c
       SET is_active = coalesce(alpaca_update_credential.is_active, c.is_active),
           label = coalesce(alpaca_update_credential.label, c.label),
           live_trading = coalesce(alpaca_update_credential.live_trading, c.live_trading),
           updated_at = now()
     WHERE c.id = cur.id;
    PERFORM alpaca._audit('update', cur.id);
    -- The owner's key of live trading is an action of its own in the audit log.
    IF live_trading IS DISTINCT FROM cur.live_trading AND live_trading IS NOT NULL THEN
        PERFORM alpaca._audit(CASE WHEN live_trading THEN 'live_trading_on' ELSE 'live_trading_off' END,
                              cur.id);
    END IF;
END $$;

-- The redeem's checks and writes are in C now, in the procedure alpaca.redeem_ticket itself
-- (extension/redeem.cpp).
DROP FUNCTION alpaca._redeem_prepare(text, text);

--------------------------------------------------------------------------------------------
-- Operations: rotation progress, the sidecar's health, the preload check
--------------------------------------------------------------------------------------------
-- One row per CALL alpaca_rotate_keys() (the latest run of each session), written in the same
-- transaction as each batch: what another session reads is exactly what has been committed.
-- Not dumped (pg_dump skips extension tables not marked for dumping): it describes a run.
CREATE TABLE alpaca.rotation_progress (
    pid int PRIMARY KEY,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    finished_at timestamptz,
    batch_size int NOT NULL,
    credentials_total bigint NOT NULL,
    credentials_done bigint NOT NULL DEFAULT 0,
    credentials_failed bigint NOT NULL DEFAULT 0,
    batches_committed bigint NOT NULL DEFAULT 0,
    waits int NOT NULL DEFAULT 0
);
ALTER TABLE alpaca.rotation_progress OWNER TO alpaca_owner;
ALTER TABLE alpaca.rotation_progress ENABLE ROW LEVEL SECURITY;
ALTER TABLE alpaca.rotation_progress FORCE ROW LEVEL SECURITY;
-- Only the rotation's own functions (owned by alpaca_maintainer) read and write it.
CREATE POLICY rotation_progress_maintainer ON alpaca.rotation_progress TO alpaca_maintainer
    USING (true) WITH CHECK (true);

-- Called by alpaca_rotate_keys after each step, before that step's COMMIT. A run is known by
-- its backend and its CALL's statement_timestamp() (constant across the procedure's commits).
-- The rotating session holds a session-level advisory lock (1885823346, its pid) that others
-- see in pg_locks, so "running" needs no privilege to read other sessions' activity.
-- Raises a NOTICE every 10 batches (shown when client_min_messages allows).
CREATE FUNCTION alpaca._rotation_note(state alpaca.rotation_state) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p alpaca.rotation_progress;
    batch boolean;
    left_over bigint;
BEGIN
    SELECT * INTO p FROM alpaca.rotation_progress r WHERE r.pid = pg_backend_pid() FOR UPDATE;
    IF NOT FOUND OR p.started_at <> statement_timestamp() THEN
        DELETE FROM alpaca.rotation_progress r WHERE r.pid = pg_backend_pid();
        IF NOT EXISTS (SELECT 1 FROM pg_locks l
                       WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                         AND l.classid = 1885823346 AND l.objid = pg_backend_pid()
                         AND l.objsubid = 2) THEN
            PERFORM pg_advisory_lock(1885823346, pg_backend_pid());
        END IF;
        -- Finished runs of ended sessions are kept for a day.
        DELETE FROM alpaca.rotation_progress r
         WHERE r.finished_at < clock_timestamp() - interval '1 day';
        INSERT INTO alpaca.rotation_progress (pid, started_at, updated_at, batch_size,
                                              credentials_total)
        VALUES (pg_backend_pid(), statement_timestamp(), statement_timestamp(), state.batch_size,
                state.total + cardinality(state.skip) + alpaca._rotation_remaining(state.skip))
        RETURNING * INTO p;
        batch := state.total > 0 OR cardinality(state.skip) > 0;
    ELSE
        batch := state.total > p.credentials_done OR cardinality(state.skip) > p.credentials_failed;
    END IF;
    UPDATE alpaca.rotation_progress r
       SET updated_at = clock_timestamp(),
           finished_at = CASE WHEN state.done THEN clock_timestamp() END,
           credentials_done = state.total,
           credentials_failed = cardinality(state.skip),
           batches_committed = r.batches_committed + CASE WHEN batch THEN 1 ELSE 0 END,
           waits = state.waits
     WHERE r.pid = pg_backend_pid()
    RETURNING * INTO p;
    IF batch AND p.batches_committed % 10 = 0 AND NOT state.done THEN
        left_over := greatest(p.credentials_total - p.credentials_done - p.credentials_failed, 0);
        RAISE NOTICE 'alpaca_rotate_keys: % of % credentials re-encrypted in % batches, % left',
            p.credentials_done, p.credentials_total, p.batches_committed, left_over;
    END IF;
END $$;

-- What each rotation does or did, for alpaca_admin, from any session while it runs. A run
-- whose session ended without finishing (cancelled, crashed) shows running = false and no
-- finished_at; CALL alpaca_rotate_keys() again resumes it.
CREATE FUNCTION alpaca_rotation_progress()
RETURNS TABLE(pid int, running boolean, started_at timestamptz, updated_at timestamptz,
              finished_at timestamptz, batch_size int, credentials_total bigint,
              credentials_done bigint, credentials_left bigint, credentials_failed bigint,
              secrets_done bigint, secrets_left bigint, batches_committed bigint,
              credentials_per_second numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.pid,
           r.finished_at IS NULL AND EXISTS (SELECT 1 FROM pg_locks l
                                             WHERE l.locktype = 'advisory' AND l.pid = r.pid
                                               AND l.classid = 1885823346 AND l.objid = r.pid
                                               AND l.objsubid = 2 AND l.granted),
           r.started_at, r.updated_at, r.finished_at, r.batch_size, r.credentials_total,
           r.credentials_done,
           greatest(r.credentials_total - r.credentials_done - r.credentials_failed, 0),
           r.credentials_failed,
           2 * r.credentials_done,
           2 * greatest(r.credentials_total - r.credentials_done - r.credentials_failed, 0),
           r.batches_committed,
           round(r.credentials_done /
                 nullif(extract(epoch FROM r.updated_at - r.started_at), 0), 1)
    FROM alpaca.rotation_progress r
    ORDER BY r.started_at DESC;
$$;

-- The sidecar's own answer to the wire operation "status" (JSON text; no ticket, no Alpaca).
CREATE FUNCTION alpaca._sidecar_status_json() RETURNS text
    AS 'MODULE_PATHNAME', 'pga_sidecar_status_json' LANGUAGE C VOLATILE;

-- Health at a glance, for alpaca_admin: whether the sidecar answers on pg_alpaca.sidecar_socket,
-- and what it says about itself. Never raises for a sidecar that is down: answering = false
-- and last_error says why.
CREATE FUNCTION alpaca_sidecar_status()
RETURNS TABLE(answering boolean, socket text, version text, uptime interval, workers int,
              busy_workers int, queue_depth int, max_queue int, pool_connections int,
              requests bigint, failed_requests bigint, last_error text, last_error_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j jsonb;
BEGIN
    socket := current_setting('pg_alpaca.sidecar_socket');
    BEGIN
        j := alpaca._sidecar_status_json()::jsonb;
    EXCEPTION WHEN OTHERS THEN
        answering := false;
        last_error := SQLERRM;
        last_error_at := clock_timestamp();
        RETURN NEXT;
        RETURN;
    END;
    answering := true;
    version := j ->> 'version';
    uptime := make_interval(secs => (j ->> 'uptime_s')::double precision);
    workers := (j ->> 'workers')::int;
    busy_workers := (j ->> 'busy_workers')::int;
    queue_depth := (j ->> 'queue_depth')::int;
    max_queue := (j ->> 'max_queue')::int;
    pool_connections := (j ->> 'pool_connections')::int;
    requests := (j ->> 'requests')::bigint;
    failed_requests := (j ->> 'failed_requests')::bigint;
    last_error := j ->> 'last_error';
    last_error_at := CASE WHEN j ? 'last_error_age_s'
                          THEN clock_timestamp() - make_interval(secs => (j ->> 'last_error_age_s')::double precision) END;
    RETURN NEXT;
END $$;

-- Whether pg_alpaca was loaded through shared_preload_libraries (its log redaction then covers
-- every statement of every session, the first one included).
CREATE FUNCTION alpaca._preloaded() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pga_preloaded' LANGUAGE C STABLE;

DO $preload_check$
BEGIN
    IF NOT alpaca._preloaded() THEN
        RAISE WARNING 'pg_alpaca is not in shared_preload_libraries: statements that carry secrets may be logged unredacted'
            USING DETAIL = 'Without preloading, the log redaction starts only when a session first calls pg_alpaca, after that statement was logged; alpaca_store_credential and the other functions that take secrets refuse to run.',
                  HINT = 'Add pg_alpaca to shared_preload_libraries in postgresql.conf and restart PostgreSQL.';
    END IF;
END
$preload_check$;

ALTER FUNCTION alpaca._rotation_note(alpaca.rotation_state) OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca_rotation_progress() OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca_sidecar_status() OWNER TO alpaca_maintainer;
GRANT SELECT, INSERT, UPDATE, DELETE ON alpaca.rotation_progress TO alpaca_maintainer;
REVOKE ALL ON FUNCTION alpaca._rotation_note(alpaca.rotation_state), alpaca_rotation_progress(),
    alpaca._sidecar_status_json(), alpaca_sidecar_status(), alpaca._preloaded() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._sidecar_status_json() TO alpaca_maintainer;
GRANT EXECUTE ON FUNCTION alpaca._rotation_note(alpaca.rotation_state), alpaca_rotation_progress(),
    alpaca_sidecar_status() TO alpaca_admin;

-- Trading (README, "Trading"): orders are sent when the statement runs (a ROLLBACK does not
-- undo them); every order carries a client_order_id; the sidecar never repeats a POST
-- blindly; a live credential trades only with pg_alpaca.allow_live_trading AND its own
-- live_trading opt-in. Each trading call's audit row is committed by the sidecar
-- (alpaca._audit_trade), so it stays when the application rolls back.
--------------------------------------------------------------------------------------------
CREATE FUNCTION alpaca._live_trading_allowed() RETURNS boolean
    AS 'MODULE_PATHNAME', 'pga_live_trading_allowed' LANGUAGE C STABLE;
CREATE FUNCTION alpaca._alpaca_send(cred uuid, op text, ticket text, target text, query text[],
        body text) RETURNS text
    AS 'MODULE_PATHNAME', 'pga_alpaca_send' LANGUAGE C VOLATILE;

-- The two keys of live trading; paper credentials need neither. 42501 names what is missing.
CREATE FUNCTION alpaca._check_trading(cred uuid) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    c record;
    cluster_on boolean;
BEGIN
    SELECT x.environment, x.live_trading INTO c FROM alpaca.credentials x WHERE x.id = cred;
    IF NOT FOUND THEN
        PERFORM alpaca._not_found(cred);
    END IF;
    IF c.environment <> 'live' THEN
        RETURN;
    END IF;
    cluster_on := alpaca._live_trading_allowed();
    IF NOT cluster_on AND NOT c.live_trading THEN
        RAISE EXCEPTION 'live trading is off for credential %: pg_alpaca.allow_live_trading is off and its owner has not opted in', cred
            USING ERRCODE = '42501',
                  DETAIL = 'pg_alpaca.allow_live_trading is off and the credential''s owner has not opted in.',
                  HINT = 'A superuser sets pg_alpaca.allow_live_trading = on; the owner calls alpaca_update_credential(id, live_trading => true).';
    ELSIF NOT cluster_on THEN
        RAISE EXCEPTION 'live trading is off for this cluster (pg_alpaca.allow_live_trading)'
            USING ERRCODE = '42501',
                  HINT = 'Only a superuser can turn pg_alpaca.allow_live_trading on.';
    ELSIF NOT c.live_trading THEN
        RAISE EXCEPTION 'credential % is live and its owner has not opted in to live trading', cred
            USING ERRCODE = '42501',
                  HINT = 'Call alpaca_update_credential(id, live_trading => true).';
    END IF;
END $$;

-- Argument checks shared by the order functions: 22023 naming the argument.
CREATE FUNCTION alpaca._check_client_order_id(client_order_id text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF client_order_id IS NOT NULL AND client_order_id !~ '^[A-Za-z0-9._:-]{1,128}$' THEN
        RAISE EXCEPTION 'client_order_id must be 1 to 128 characters of A-Z a-z 0-9 . _ : -'
            USING ERRCODE = '22023';
    END IF;
END $$;

CREATE FUNCTION alpaca._check_amount(value numeric, what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL THEN
        RETURN NULL;
    END IF;
    IF value <= 0 OR value = 'NaN'::numeric THEN
        RAISE EXCEPTION '% must be greater than 0', what USING ERRCODE = '22023';
    END IF;
    IF value >= 1e15 OR scale(value) > 9 THEN
        RAISE EXCEPTION '% must be below 1e15 with at most 9 decimal places', what
            USING ERRCODE = '22023';
    END IF;
    RETURN value::text;
END $$;

CREATE FUNCTION alpaca._symbol_class(symbol text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF symbol IS NULL OR length(symbol) > 32 OR symbol !~ '^[A-Za-z0-9]+([./-][A-Za-z0-9]+)*$' THEN
        RAISE EXCEPTION 'symbol must be 1 to 32 characters of A-Z a-z 0-9, with single . / - between them'
            USING ERRCODE = '22023';
    END IF;
    IF symbol ~ '^[A-Za-z]{1,6}[0-9]{6}[CP][0-9]{8}$' THEN
        RETURN 'us_option';
    ELSIF symbol ~ '/' OR symbol ~ '^[A-Z]{2,6}(USD|USDT|USDC)$' THEN
        RETURN 'crypto';
    END IF;
    RETURN 'us_equity';
END $$;

-- Checks alpaca_submit_order's arguments and builds Alpaca's JSON body. A missing
-- client_order_id becomes 'pga-' || 32 hex digits of a random UUID.
CREATE FUNCTION alpaca._order_body(symbol text, side text, qty numeric, notional numeric,
        type text, time_in_force text, limit_price numeric, stop_price numeric,
        trail_price numeric, trail_percent numeric, extended_hours boolean,
        client_order_id text, order_class text, take_profit_limit_price numeric,
        stop_loss_stop_price numeric, stop_loss_limit_price numeric, position_intent text,
        legs jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cls text := coalesce(order_class, 'simple');
    asset text;
    leg jsonb;
    out_legs jsonb := '[]';
    coid text := coalesce(client_order_id, 'pga-' || replace(gen_random_uuid()::text, '-', ''));
BEGIN
    IF cls NOT IN ('simple', 'bracket', 'oco', 'oto', 'mleg') THEN
        RAISE EXCEPTION 'order_class must be simple, bracket, oco, oto or mleg' USING ERRCODE = '22023';
    END IF;
    IF cls = 'mleg' THEN
        IF symbol IS NOT NULL THEN
            RAISE EXCEPTION 'symbol must be NULL for an mleg order (the legs name the contracts)'
                USING ERRCODE = '22023';
        END IF;
        asset := 'us_option';
    ELSE
        asset := alpaca._symbol_class(symbol);
        IF side IS NULL OR side NOT IN ('buy', 'sell') THEN
            RAISE EXCEPTION 'side must be buy or sell' USING ERRCODE = '22023';
        END IF;
    END IF;
    IF side IS NOT NULL AND side NOT IN ('buy', 'sell') THEN
        RAISE EXCEPTION 'side must be buy or sell' USING ERRCODE = '22023';
    END IF;
    IF type IS NULL OR type NOT IN ('market', 'limit', 'stop', 'stop_limit', 'trailing_stop') THEN
        RAISE EXCEPTION 'type must be market, limit, stop, stop_limit or trailing_stop' USING ERRCODE = '22023';
    END IF;
    IF time_in_force IS NULL OR time_in_force NOT IN ('day', 'gtc', 'opg', 'cls', 'ioc', 'fok') THEN
        RAISE EXCEPTION 'time_in_force must be day, gtc, opg, cls, ioc or fok' USING ERRCODE = '22023';
    END IF;
    IF (qty IS NULL) = (notional IS NULL) THEN
        RAISE EXCEPTION 'give exactly one of qty and notional' USING ERRCODE = '22023';
    END IF;
    PERFORM alpaca._check_amount(qty, 'qty'), alpaca._check_amount(notional, 'notional'),
            alpaca._check_amount(limit_price, 'limit_price'),
            alpaca._check_amount(stop_price, 'stop_price'),
            alpaca._check_amount(trail_price, 'trail_price'),
            alpaca._check_amount(trail_percent, 'trail_percent'),
            alpaca._check_amount(take_profit_limit_price, 'take_profit_limit_price'),
            alpaca._check_amount(stop_loss_stop_price, 'stop_loss_stop_price'),
            alpaca._check_amount(stop_loss_limit_price, 'stop_loss_limit_price');
    IF trail_percent > 100 THEN
        RAISE EXCEPTION 'trail_percent must be at most 100' USING ERRCODE = '22023';
    END IF;
    IF notional IS NOT NULL AND type <> 'market' THEN
        RAISE EXCEPTION 'notional is only for market orders' USING ERRCODE = '22023';
    END IF;
    IF notional IS NOT NULL AND asset = 'us_equity' AND time_in_force <> 'day' THEN
        RAISE EXCEPTION 'notional is only for day orders (time_in_force day)' USING ERRCODE = '22023';
    END IF;
    -- Prices by type.
    IF type IN ('limit', 'stop_limit') AND limit_price IS NULL THEN
        RAISE EXCEPTION 'limit_price is required for % orders', type USING ERRCODE = '22023';
    END IF;
    IF type NOT IN ('limit', 'stop_limit') AND limit_price IS NOT NULL THEN
        RAISE EXCEPTION 'limit_price is not allowed for % orders', type USING ERRCODE = '22023';
    END IF;
    IF type IN ('stop', 'stop_limit') AND stop_price IS NULL THEN
        RAISE EXCEPTION 'stop_price is required for % orders', type USING ERRCODE = '22023';
    END IF;
    IF type NOT IN ('stop', 'stop_limit') AND stop_price IS NOT NULL THEN
        RAISE EXCEPTION 'stop_price is not allowed for % orders', type USING ERRCODE = '22023';
    END IF;
    IF type = 'trailing_stop' AND (trail_price IS NULL) = (trail_percent IS NULL) THEN
        RAISE EXCEPTION 'trailing_stop orders need exactly one of trail_price and trail_percent'
            USING ERRCODE = '22023';
    END IF;
    IF type <> 'trailing_stop' AND (trail_price IS NOT NULL OR trail_percent IS NOT NULL) THEN
        RAISE EXCEPTION 'trail_price and trail_percent are only for trailing_stop orders'
            USING ERRCODE = '22023';
    END IF;
    IF extended_hours AND (type <> 'limit' OR time_in_force NOT IN ('day', 'gtc')) THEN
        RAISE EXCEPTION 'extended_hours is only for limit orders with time_in_force day or gtc'
            USING ERRCODE = '22023';
    END IF;
    -- Asset class rules.
    IF asset = 'us_option' THEN
        IF time_in_force NOT IN ('day', 'gtc') THEN
            RAISE EXCEPTION 'time_in_force must be day or gtc for options' USING ERRCODE = '22023';
        END IF;
        IF type = 'trailing_stop' THEN
            RAISE EXCEPTION 'type trailing_stop is not available for options' USING ERRCODE = '22023';
        END IF;
        IF notional IS NOT NULL THEN
            RAISE EXCEPTION 'notional is not available for options: give qty' USING ERRCODE = '22023';
        END IF;
        IF qty <> trunc(qty) THEN
            RAISE EXCEPTION 'qty must be a whole number of contracts for options' USING ERRCODE = '22023';
        END IF;
        IF cls IN ('bracket', 'oco', 'oto') THEN
            RAISE EXCEPTION 'order_class % is not available for options', cls USING ERRCODE = '22023';
        END IF;
        IF extended_hours THEN
            RAISE EXCEPTION 'extended_hours is not available for options' USING ERRCODE = '22023';
        END IF;
    ELSIF asset = 'crypto' THEN
        IF time_in_force NOT IN ('gtc', 'ioc') THEN
            RAISE EXCEPTION 'time_in_force must be gtc or ioc for crypto' USING ERRCODE = '22023';
        END IF;
        IF type NOT IN ('market', 'limit', 'stop_limit') THEN
            RAISE EXCEPTION 'type must be market, limit or stop_limit for crypto' USING ERRCODE = '22023';
        END IF;
        IF cls <> 'simple' THEN
            RAISE EXCEPTION 'order_class must be simple for crypto' USING ERRCODE = '22023';
        END IF;
        IF extended_hours THEN
            RAISE EXCEPTION 'extended_hours is not available for crypto' USING ERRCODE = '22023';
        END IF;
    ELSIF qty <> trunc(qty) OR notional IS NOT NULL THEN
        IF time_in_force <> 'day' OR type <> 'market' OR cls <> 'simple' THEN
            RAISE EXCEPTION 'fractional and notional equity orders must be simple market day orders'
                USING ERRCODE = '22023';
        END IF;
    END IF;
    -- Order class rules.
    IF cls IN ('bracket', 'oco') AND (take_profit_limit_price IS NULL OR stop_loss_stop_price IS NULL) THEN
        RAISE EXCEPTION '% orders need take_profit_limit_price and stop_loss_stop_price', cls
            USING ERRCODE = '22023';
    END IF;
    IF cls = 'oto' AND take_profit_limit_price IS NULL AND stop_loss_stop_price IS NULL THEN
        RAISE EXCEPTION 'oto orders need take_profit_limit_price or stop_loss_stop_price'
            USING ERRCODE = '22023';
    END IF;
    IF cls = 'oco' AND type <> 'limit' THEN
        RAISE EXCEPTION 'oco orders must be limit orders' USING ERRCODE = '22023';
    END IF;
    IF cls IN ('simple', 'mleg') AND (take_profit_limit_price IS NOT NULL OR stop_loss_stop_price IS NOT NULL
                                      OR stop_loss_limit_price IS NOT NULL) THEN
        RAISE EXCEPTION 'take_profit_limit_price and stop_loss_* are only for bracket, oco and oto orders'
            USING ERRCODE = '22023';
    END IF;
    IF stop_loss_limit_price IS NOT NULL AND stop_loss_stop_price IS NULL THEN
        RAISE EXCEPTION 'stop_loss_limit_price needs stop_loss_stop_price' USING ERRCODE = '22023';
    END IF;
    IF position_intent IS NOT NULL
       AND position_intent NOT IN ('buy_to_open', 'buy_to_close', 'sell_to_open', 'sell_to_close') THEN
        RAISE EXCEPTION 'position_intent must be buy_to_open, buy_to_close, sell_to_open or sell_to_close'
            USING ERRCODE = '22023';
    END IF;
    IF cls = 'mleg' THEN
        IF legs IS NULL OR jsonb_typeof(legs) <> 'array' OR jsonb_array_length(legs) NOT BETWEEN 2 AND 4 THEN
            RAISE EXCEPTION 'legs must be a JSON array of 2 to 4 legs for an mleg order' USING ERRCODE = '22023';
        END IF;
        FOR leg IN SELECT e FROM jsonb_array_elements(legs) e LOOP
            IF jsonb_typeof(leg) <> 'object'
               OR EXISTS (SELECT 1 FROM jsonb_object_keys(leg) k
                          WHERE k NOT IN ('symbol', 'ratio_qty', 'side', 'position_intent')) THEN
                RAISE EXCEPTION 'each leg must be an object with symbol, ratio_qty, side and optionally position_intent'
                    USING ERRCODE = '22023';
            END IF;
            IF alpaca._symbol_class(leg->>'symbol') <> 'us_option' THEN
                RAISE EXCEPTION 'legs: symbol must be an OCC option symbol' USING ERRCODE = '22023';
            END IF;
            IF coalesce(leg->>'side', '') NOT IN ('buy', 'sell') THEN
                RAISE EXCEPTION 'legs: side must be buy or sell' USING ERRCODE = '22023';
            END IF;
            IF coalesce(leg->>'ratio_qty', '') !~ '^[1-9][0-9]{0,5}$' THEN
                RAISE EXCEPTION 'legs: ratio_qty must be a whole number from 1 to 999999' USING ERRCODE = '22023';
            END IF;
            IF leg->>'position_intent' IS NOT NULL AND leg->>'position_intent'
               NOT IN ('buy_to_open', 'buy_to_close', 'sell_to_open', 'sell_to_close') THEN
                RAISE EXCEPTION 'legs: position_intent must be buy_to_open, buy_to_close, sell_to_open or sell_to_close'
                    USING ERRCODE = '22023';
            END IF;
            out_legs := out_legs || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
                'symbol', leg->>'symbol', 'ratio_qty', leg->>'ratio_qty', 'side', leg->>'side',
                'position_intent', leg->>'position_intent')));
        END LOOP;
    ELSIF legs IS NOT NULL THEN
        RAISE EXCEPTION 'legs are only for mleg orders' USING ERRCODE = '22023';
    END IF;
    PERFORM alpaca._check_client_order_id(coid);
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'symbol', symbol, 'side', side, 'qty', qty::text, 'notional', notional::text,
        'type', type, 'time_in_force', time_in_force, 'limit_price', limit_price::text,
        'stop_price', stop_price::text, 'trail_price', trail_price::text,
        'trail_percent', trail_percent::text,
        'extended_hours', CASE WHEN extended_hours THEN true END,
        'client_order_id', coid, 'order_class', CASE WHEN order_class IS NOT NULL THEN cls END,
        'take_profit', CASE WHEN take_profit_limit_price IS NOT NULL
                            THEN jsonb_build_object('limit_price', take_profit_limit_price::text) END,
        'stop_loss', CASE WHEN stop_loss_stop_price IS NOT NULL
                          THEN jsonb_strip_nulls(jsonb_build_object('stop_price', stop_loss_stop_price::text,
                                                                    'limit_price', stop_loss_limit_price::text)) END,
        'position_intent', position_intent,
        'legs', CASE WHEN cls = 'mleg' THEN out_legs END));
END $$;

-- One call to Alpaca for an order function: the live check (trading operations), a ticket of
-- purpose trade (orders for the look-ups) and the request. Nothing is written in the caller's
-- transaction: the sidecar commits the trade's own row (alpaca._audit_trade) right after the
-- request, and records a look-up's 'call' row and last_used_at (alpaca._record_outcomes).
CREATE FUNCTION alpaca._trade(cred uuid, op text, target text, query text[], body jsonb)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    trading boolean := op IN ('submit_order', 'replace_order', 'cancel_order', 'cancel_all_orders',
                              'close_position');
    answer text;
BEGIN
    PERFORM alpaca._require_user();
    IF trading THEN
        PERFORM alpaca._check_trading(cred);
    END IF;
    answer := alpaca._alpaca_send(cred, op,
        alpaca._issue_ticket(cred, CASE WHEN trading THEN 'trade' ELSE 'orders' END, interval '60 seconds'),
        target, coalesce(query, '{}'), body::text);
    RETURN answer;
END $$;

CREATE FUNCTION alpaca_submit_order(cred uuid, symbol text, side text, qty numeric DEFAULT NULL,
        notional numeric DEFAULT NULL, type text DEFAULT 'market',
        time_in_force text DEFAULT 'day', limit_price numeric DEFAULT NULL,
        stop_price numeric DEFAULT NULL, trail_price numeric DEFAULT NULL,
        trail_percent numeric DEFAULT NULL, extended_hours boolean DEFAULT false,
        client_order_id text DEFAULT NULL, order_class text DEFAULT NULL,
        take_profit_limit_price numeric DEFAULT NULL, stop_loss_stop_price numeric DEFAULT NULL,
        stop_loss_limit_price numeric DEFAULT NULL, position_intent text DEFAULT NULL,
        legs jsonb DEFAULT NULL)
RETURNS SETOF alpaca.order_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_orders('[' || alpaca._trade($1, 'submit_order', NULL, NULL,
        alpaca._order_body($2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                           $17, $18, $19)) || ']');
$$;

-- VOLATILE: the planner must not fold it into an error when the argument is a constant.
CREATE FUNCTION alpaca._null_argument(what text) RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% must not be NULL', what USING ERRCODE = '22023';
END $$;

CREATE FUNCTION alpaca_get_order(cred uuid, order_id uuid) RETURNS SETOF alpaca.order_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_orders('[' || alpaca._trade($1, 'get_order',
        coalesce($2::text, alpaca._null_argument('order_id')), ARRAY['nested', 'true'], NULL) || ']');
$$;

CREATE FUNCTION alpaca._by_client_id_query(client_order_id text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF client_order_id IS NULL THEN
        RAISE EXCEPTION 'client_order_id must not be NULL' USING ERRCODE = '22023';
    END IF;
    PERFORM alpaca._check_client_order_id(client_order_id);
    RETURN ARRAY['client_order_id', client_order_id, 'nested', 'true'];
END $$;

CREATE FUNCTION alpaca_get_order_by_client_id(cred uuid, client_order_id text)
RETURNS SETOF alpaca.order_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_orders('[' || alpaca._trade($1, 'get_order_by_client_id', NULL,
        alpaca._by_client_id_query($2), NULL) || ']');
$$;

CREATE FUNCTION alpaca._replace_body(qty numeric, limit_price numeric, stop_price numeric,
        trail numeric, time_in_force text, client_order_id text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF qty IS NULL AND limit_price IS NULL AND stop_price IS NULL AND trail IS NULL
       AND time_in_force IS NULL THEN
        RAISE EXCEPTION 'give at least one of qty, limit_price, stop_price, trail and time_in_force'
            USING ERRCODE = '22023';
    END IF;
    PERFORM alpaca._check_amount(qty, 'qty'), alpaca._check_amount(limit_price, 'limit_price'),
            alpaca._check_amount(stop_price, 'stop_price'), alpaca._check_amount(trail, 'trail');
    IF time_in_force IS NOT NULL AND time_in_force NOT IN ('day', 'gtc', 'opg', 'cls', 'ioc', 'fok') THEN
        RAISE EXCEPTION 'time_in_force must be day, gtc, opg, cls, ioc or fok' USING ERRCODE = '22023';
    END IF;
    PERFORM alpaca._check_client_order_id(client_order_id);
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'qty', qty::text, 'limit_price', limit_price::text, 'stop_price', stop_price::text,
        'trail', trail::text, 'time_in_force', time_in_force,
        'client_order_id', coalesce(client_order_id, 'pga-' || replace(gen_random_uuid()::text, '-', ''))));
END $$;

CREATE FUNCTION alpaca_replace_order(cred uuid, order_id uuid, qty numeric DEFAULT NULL,
        limit_price numeric DEFAULT NULL, stop_price numeric DEFAULT NULL,
        trail numeric DEFAULT NULL, time_in_force text DEFAULT NULL,
        client_order_id text DEFAULT NULL)
RETURNS SETOF alpaca.order_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_orders('[' || alpaca._trade($1, 'replace_order',
        coalesce($2::text, alpaca._null_argument('order_id')), NULL,
        alpaca._replace_body($3, $4, $5, $6, $7, $8)) || ']');
$$;

CREATE FUNCTION alpaca_cancel_order(cred uuid, order_id uuid) RETURNS SETOF alpaca.order_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_orders('[' || alpaca._trade($1, 'cancel_order',
        coalesce($2::text, alpaca._null_argument('order_id')), NULL, NULL) || ']');
$$;

-- One row per order Alpaca cancelled (or tried to): its id, the HTTP status of its cancel,
-- and the order as it then was (NULL fields when that cancel failed).
CREATE FUNCTION alpaca_cancel_all_orders(cred uuid)
RETURNS TABLE(order_id uuid, http_status int, status text, client_order_id text, symbol text)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT (e->>'id')::uuid, (e->>'status')::int, e->'body'->>'status',
           e->'body'->>'client_order_id', e->'body'->>'symbol'
    FROM jsonb_array_elements(alpaca._trade($1, 'cancel_all_orders', NULL, NULL, NULL)::jsonb) e;
$$;

CREATE FUNCTION alpaca._close_query(symbol text, qty numeric, percentage numeric) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM alpaca._symbol_class(symbol);
    IF qty IS NOT NULL AND percentage IS NOT NULL THEN
        RAISE EXCEPTION 'give at most one of qty and percentage' USING ERRCODE = '22023';
    END IF;
    PERFORM alpaca._check_amount(qty, 'qty'), alpaca._check_amount(percentage, 'percentage');
    IF percentage > 100 THEN
        RAISE EXCEPTION 'percentage must be more than 0 and at most 100' USING ERRCODE = '22023';
    END IF;
    IF qty IS NOT NULL THEN
        RETURN ARRAY['qty', qty::text];
    ELSIF percentage IS NOT NULL THEN
        RETURN ARRAY['percentage', percentage::text];
    END IF;
    RETURN '{}';
END $$;

CREATE FUNCTION alpaca_close_position(cred uuid, symbol text, qty numeric DEFAULT NULL,
        percentage numeric DEFAULT NULL) RETURNS SETOF alpaca.order_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_orders('[' || alpaca._trade($1, 'close_position',
        replace($2, '/', ''), alpaca._close_query($2, $3, $4), NULL) || ']');
$$;

-- Called by the sidecar after a trading request (autocommit: the row is committed at once).
-- The ticket proves the redeem; one row per redeemed ticket.
-- What a ticket for operation op is for (common/wire.cpp's ticket_purpose, which the calls
-- mint with): a look-up's own name, 'orders' for the order look-ups, 'trade' for an order;
-- NULL for anything else.
CREATE FUNCTION alpaca._ticket_purpose(op text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN op IN ('validate', 'account', 'positions', 'orders', 'clock') THEN op
            WHEN op IN ('get_order', 'get_order_by_client_id') THEN 'orders'
            WHEN op IN ('submit_order', 'replace_order', 'cancel_order', 'cancel_all_orders',
                        'close_position') THEN 'trade' END;

-- An outcome as the audit log keeps what the sidecar reports: lower-case letters, digits,
-- spaces and underscores, at most 64 ('?' for none).
CREATE FUNCTION alpaca._clean_outcome(outcome text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN left(regexp_replace(coalesce(outcome, '?'), '[^a-z0-9 _]', '', 'g'), 64);

CREATE FUNCTION alpaca._audit_trade(ticket text, operation text, client_order_id text,
        outcome text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    claims record;
BEGIN
    SELECT * INTO claims FROM alpaca._verify_ticket(ticket);
    IF claims.purpose <> 'trade' THEN
        RAISE EXCEPTION 'ticket was not issued for trading' USING ERRCODE = '42501';
    END IF;
    UPDATE alpaca.redeemed_tickets r SET audited = true WHERE r.nonce = claims.nonce AND NOT r.audited;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ticket was not redeemed, or its trade is already recorded' USING ERRCODE = '42501';
    END IF;
    IF alpaca._ticket_purpose(operation) IS DISTINCT FROM 'trade' THEN
        RAISE EXCEPTION 'unknown trading operation' USING ERRCODE = '22023';
    END IF;
    IF client_order_id !~ '^[A-Za-z0-9._:-]{1,128}$' THEN
        client_order_id := NULL;
    END IF;
    INSERT INTO alpaca.audit_log (app_user, credential_id, action, purpose, outcome, client_order_id)
    VALUES (claims.app_user, claims.credential_id, operation, 'trade',
            alpaca._clean_outcome(outcome), client_order_id);
END $$;

-- Trading: ownership and privileges.
ALTER FUNCTION alpaca_update_credential(uuid, text, text, boolean, text, boolean) OWNER TO alpaca_owner;
REVOKE ALL ON FUNCTION alpaca_update_credential(uuid, text, text, boolean, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca_update_credential(uuid, text, text, boolean, text, boolean) TO alpaca_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA alpaca FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._secret_key_id(alpaca_secret) TO PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._ticket_purpose(text), alpaca._clean_outcome(text) TO alpaca_owner;
ALTER FUNCTION alpaca._check_trading(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._trade(uuid, text, text, text[], jsonb) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_submit_order(uuid, text, text, numeric, numeric, text, text, numeric, numeric, numeric, numeric, boolean, text, text, numeric, numeric, numeric, text, jsonb) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_get_order(uuid, uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_get_order_by_client_id(uuid, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_replace_order(uuid, uuid, numeric, numeric, numeric, numeric, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_cancel_order(uuid, uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_cancel_all_orders(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_close_position(uuid, text, numeric, numeric) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._audit_trade(text, text, text, text) OWNER TO alpaca_owner;
REVOKE ALL ON FUNCTION alpaca_submit_order(uuid, text, text, numeric, numeric, text, text, numeric, numeric, numeric, numeric, boolean, text, text, numeric, numeric, numeric, text, jsonb),
    alpaca_get_order(uuid, uuid), alpaca_get_order_by_client_id(uuid, text),
    alpaca_replace_order(uuid, uuid, numeric, numeric, numeric, numeric, text, text),
    alpaca_cancel_order(uuid, uuid), alpaca_cancel_all_orders(uuid),
    alpaca_close_position(uuid, text, numeric, numeric) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._live_trading_allowed(),
    alpaca._alpaca_send(uuid, text, text, text, text[], text), alpaca._check_trading(uuid),
    alpaca._check_client_order_id(text), alpaca._check_amount(numeric, text),
    alpaca._symbol_class(text),
    alpaca._order_body(text, text, numeric, numeric, text, text, numeric, numeric, numeric, numeric, boolean, text, text, numeric, numeric, numeric, text, jsonb),
    alpaca._null_argument(text), alpaca._by_client_id_query(text),
    alpaca._replace_body(numeric, numeric, numeric, numeric, text, text),
    alpaca._close_query(text, numeric, numeric), alpaca._verify_ticket(text) TO alpaca_owner;
GRANT EXECUTE ON FUNCTION alpaca_submit_order(uuid, text, text, numeric, numeric, text, text, numeric, numeric, numeric, numeric, boolean, text, text, numeric, numeric, numeric, text, jsonb),
    alpaca_get_order(uuid, uuid), alpaca_get_order_by_client_id(uuid, text),
    alpaca_replace_order(uuid, uuid, numeric, numeric, numeric, numeric, text, text),
    alpaca_cancel_order(uuid, uuid), alpaca_cancel_all_orders(uuid),
    alpaca_close_position(uuid, text, numeric, numeric) TO alpaca_app;
GRANT EXECUTE ON FUNCTION alpaca._audit_trade(text, text, text, text) TO alpaca_sidecar;

-- alpaca._end_user (created at the top) is the extension's own.
REVOKE ALL ON FUNCTION alpaca._end_user() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._end_user() TO alpaca_owner;

-- Tickets carry the caller's database role, and verify without expiry for a call's outcome.
DROP FUNCTION alpaca._verify_ticket(text);
-- any_time: skip the expiry check (a call's outcome, recorded after its ticket expired; the
-- nonce row proves the redeem). db_role: the caller's session user, NULL for older tickets.
CREATE FUNCTION alpaca._verify_ticket(ticket text, any_time boolean DEFAULT false,
        OUT credential_id uuid, OUT app_user text, OUT purpose text, OUT expires_at timestamptz,
        OUT nonce bytea, OUT key_id bigint, OUT db_role text)
    AS 'MODULE_PATHNAME', 'pga_verify_ticket' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION alpaca._verify_ticket(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._verify_ticket(text, boolean) TO alpaca_owner;
ALTER TABLE alpaca.audit_log ADD COLUMN http_status int;

--------------------------------------------------------------------------------------------
-- One durable write per call: the outcomes the sidecar records after its calls
--------------------------------------------------------------------------------------------
-- A call writes nothing in the caller's transaction. Its one durable write on the critical
-- path is the redeem (nonce row + decrypt row, committed and flushed before the keys leave).
-- After the call, the sidecar's outcome writer (sidecar/outcome_writer.cpp) hands its
-- outcomes over in batches, one transaction each with synchronous_commit off: one 'call' row
-- per redeemed ticket (not for trades, whose row alpaca._audit_trade commits at once), and one
-- UPDATE per application user over its credentials with the latest last_used_at (and
-- last_validated_at for validate calls Alpaca answered). The ticket proves the redeem; its
-- nonce row, marked audited, makes each ticket give at most one row. Returns the number of
-- outcomes recorded.
--
-- Set-based: one statement verifies every ticket, finds each nonce row by its index, marks
-- all the non-trade ones audited and inserts all the 'call' rows. It does what the
-- per-element loop below does whenever that loop would pass: every ticket verified, every
-- operation matching its ticket's purpose, every nonce row present, as many newly marked as
-- there are non-trade outcomes (a ticket twice in one batch marks one row: the loop refused
-- the second). Anything else, an error raised inside it included, rolls its writes back with
-- the block's subtransaction, and the loop runs from scratch, raising the first bad element's
-- error exactly as before. Generic plans: the statements' shapes do not depend on the
-- arrays, so planning them at every call is wasted.
--
-- Each nonce row is updated once (audited): half of each page left free keeps that update
-- heap-only (HOT), with no new entries in the table's two indexes.
ALTER TABLE alpaca.redeemed_tickets SET (fillfactor = 50);
CREATE FUNCTION alpaca._record_outcomes(tickets text[], operations text[], outcomes text[],
        http_statuses int[], finished_at timestamptz[]) RETURNS int
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n int := coalesce(array_length(tickets, 1), 0);
    set_based boolean;
    claims record;
    op text;
    purpose text;
    outcome text;
    at_ timestamptz;
    creds uuid[] := '{}';
    users text[] := '{}';
    used timestamptz[] := '{}';
    validated timestamptz[] := '{}';
    names text[];
    name_ text;
BEGIN
    IF n > 1000 OR coalesce(array_length(operations, 1), 0) <> n
       OR coalesce(array_length(outcomes, 1), 0) <> n
       OR coalesce(array_length(http_statuses, 1), 0) <> n
       OR coalesce(array_length(finished_at, 1), 0) <> n THEN
        RAISE EXCEPTION 'give at most 1000 outcomes, each with its operation, outcome, HTTP status and time'
            USING ERRCODE = '22023';
    END IF;
    IF n = 0 THEN
        PERFORM alpaca._end_user();
        RETURN 0;
    END IF;
    BEGIN
        WITH v AS MATERIALIZED (
            SELECT x.i, x.op, x.status, (x.c).credential_id, (x.c).app_user, (x.c).purpose,
                   coalesce((x.c).db_role, session_user) AS db_role,
                   alpaca._ticket_purpose(x.op) AS wanted, alpaca._clean_outcome(x.outcome) AS outcome,
                   least(coalesce(x.at, clock_timestamp()), clock_timestamp()) AS at, t.ctid AS row_id
              -- One verification per ticket, in the batch's order (OFFSET 0: not inlined).
              FROM (SELECT b.i, b.op, b.outcome, b.status, b.at,
                           alpaca._verify_ticket(b.ticket, true) AS c
                      FROM unnest(tickets, operations, outcomes, http_statuses, finished_at)
                               WITH ORDINALITY AS b(ticket, op, outcome, status, at, i)
                    OFFSET 0) AS x
              -- Each nonce's row by its index (OFFSET 0: a look-up per ticket, never a scan
              -- of the whole table), for the UPDATE below to take by its row id.
              LEFT JOIN LATERAL (SELECT r.ctid FROM alpaca.redeemed_tickets r
                                  WHERE r.nonce = (x.c).nonce OFFSET 0) AS t ON true
        ), marked AS (
            UPDATE alpaca.redeemed_tickets r SET audited = true
             WHERE r.ctid = ANY (ARRAY(SELECT v.row_id FROM v WHERE v.purpose <> 'trade'))
               AND NOT r.audited
            RETURNING 1
        ), logged AS (
            INSERT INTO alpaca.audit_log (at, db_role, app_user, credential_id, action, purpose,
                                          outcome, http_status)
            SELECT v.at, v.db_role, v.app_user, v.credential_id, 'call', v.op, v.outcome, v.status
              FROM v WHERE v.purpose <> 'trade' ORDER BY v.i
        )
        SELECT count(*) = n
               AND count(*) FILTER (WHERE v.row_id IS NULL OR v.purpose IS NULL OR v.wanted IS NULL
                                          OR v.wanted <> v.purpose) = 0
               AND count(*) FILTER (WHERE v.purpose <> 'trade') = (SELECT count(*) FROM marked),
               array_agg(v.credential_id), array_agg(v.app_user), array_agg(v.at),
               array_agg(CASE WHEN v.op = 'validate' AND v.outcome IN ('ok', 'rejected') THEN v.at END),
               array_agg(DISTINCT v.app_user COLLATE "C" ORDER BY v.app_user COLLATE "C")
          INTO set_based, creds, users, used, validated, names
          FROM v;
        IF set_based IS NOT TRUE THEN
            RAISE EXCEPTION 'an outcome the per-element loop refuses';  -- caught just below
        END IF;
    EXCEPTION WHEN OTHERS THEN
        set_based := false;
    END;
    IF NOT set_based THEN
        creds := '{}';
        users := '{}';
        used := '{}';
        validated := '{}';
        FOR i IN 1 .. n LOOP
            SELECT * INTO claims FROM alpaca._verify_ticket(tickets[i], true);
            op := operations[i];
            purpose := alpaca._ticket_purpose(op);
            IF purpose IS NULL OR purpose <> claims.purpose THEN
                RAISE EXCEPTION 'operation does not match the ticket''s purpose' USING ERRCODE = '22023';
            END IF;
            outcome := alpaca._clean_outcome(outcomes[i]);
            at_ := least(coalesce(finished_at[i], clock_timestamp()), clock_timestamp());
            IF claims.purpose = 'trade' THEN
                -- The trade's own row is alpaca._audit_trade's; here only its time of use.
                PERFORM 1 FROM alpaca.redeemed_tickets r WHERE r.nonce = claims.nonce;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'ticket was not redeemed' USING ERRCODE = '42501';
                END IF;
            ELSE
                UPDATE alpaca.redeemed_tickets r SET audited = true
                 WHERE r.nonce = claims.nonce AND NOT r.audited;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'ticket was not redeemed, or its outcome is already recorded'
                        USING ERRCODE = '42501';
                END IF;
                INSERT INTO alpaca.audit_log (at, db_role, app_user, credential_id, action, purpose,
                                              outcome, http_status)
                VALUES (at_, coalesce(claims.db_role, session_user), claims.app_user,
                        claims.credential_id, 'call', op, outcome, http_statuses[i]);
            END IF;
            creds := creds || claims.credential_id;
            users := users || claims.app_user;
            used := used || at_;
            validated := validated || CASE WHEN op = 'validate' AND outcome IN ('ok', 'rejected')
                                           THEN at_ END;
        END LOOP;
        names := ARRAY(SELECT DISTINCT x.app_user COLLATE "C" FROM unnest(users) AS x(app_user) ORDER BY 1);
    END IF;
    -- One UPDATE per application user (users in a fixed order), under row-level security as
    -- that user, over its credentials locked in id order first: two sidecars' batches lock rows
    -- in the same order.
    FOREACH name_ IN ARRAY names LOOP
        PERFORM alpaca._set_user(name_);
        WITH locked AS MATERIALIZED (
            SELECT c.id FROM alpaca.credentials c WHERE c.id = ANY(creds) ORDER BY c.id FOR UPDATE
        )
        UPDATE alpaca.credentials c
           SET last_used_at = greatest(c.last_used_at, x.used),
               last_validated_at = greatest(c.last_validated_at, x.validated)
          FROM (SELECT y.cred, max(y.used) AS used, max(y.validated) AS validated
                  FROM unnest(creds, users, used, validated) AS y(cred, app_user, used, validated)
                 WHERE y.app_user = name_ GROUP BY y.cred) AS x
         WHERE c.id = x.cred AND x.cred IN (SELECT l.id FROM locked l);
    END LOOP;
    PERFORM alpaca._end_user();
    RETURN n;
END $$;
ALTER FUNCTION alpaca._record_outcomes(text[], text[], text[], int[], timestamptz[]) OWNER TO alpaca_owner;
REVOKE ALL ON FUNCTION alpaca._record_outcomes(text[], text[], text[], int[], timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._record_outcomes(text[], text[], text[], int[], timestamptz[]) TO alpaca_sidecar;

--------------------------------------------------------------------------------------------
-- Hot standbys: calls work there (they write nothing in the caller's transaction, and the
-- sidecar beside the standby redeems on the primary); what must write says so.
--------------------------------------------------------------------------------------------
CREATE FUNCTION alpaca._require_primary(what text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION '% is not possible on a hot standby', what
            USING ERRCODE = '25006',
                  HINT = 'Do it on the primary. Calls (alpaca_account, alpaca_positions, alpaca_orders, alpaca_validate_credential, the order functions) work on standbys.';
    END IF;
END $$;
REVOKE ALL ON FUNCTION alpaca._require_primary(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._require_primary(text) TO alpaca_owner, alpaca_maintainer;
-- The account and delete functions refuse on a standby (the rest are redefined above).
CREATE OR REPLACE FUNCTION alpaca_create_account(name text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u text := alpaca._require_user();
    new_id uuid;
BEGIN
    PERFORM alpaca._require_primary('creating an account');
    IF name IS NULL OR length(name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'account name must be 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    INSERT INTO alpaca.accounts (owner_id, name) VALUES (u, name) RETURNING id INTO new_id;
    RETURN new_id;
END $$;

CREATE OR REPLACE FUNCTION alpaca_delete_credential(id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u text := alpaca._require_user();
BEGIN
    PERFORM alpaca._require_primary('deleting a credential');
    DELETE FROM alpaca.credentials c WHERE c.id = alpaca_delete_credential.id;
    IF NOT FOUND THEN
        PERFORM alpaca._not_found(alpaca_delete_credential.id);
    END IF;
    PERFORM alpaca._audit('delete', alpaca_delete_credential.id);
    RETURN true;
END $$;

--------------------------------------------------------------------------------------------
-- Gateway sessions (README, "The gateway"): a token for one credential and one scope that is
-- worth nothing outside the sidecar's gateway. The token (pgas_..., 192 random bits) is shown
-- once by alpaca_open_session; the table keeps only its keyed hash (HMAC under a key derived
-- from the key ring, extension/session_tokens.cpp). The sidecar checks a token on every
-- request, so a revoked or expired one stops at the next request.
--------------------------------------------------------------------------------------------
CREATE FUNCTION alpaca._mint_session_token(OUT token text, OUT token_hash bytea)
    AS 'MODULE_PATHNAME', 'pga_mint_session_token' LANGUAGE C VOLATILE;
CREATE FUNCTION alpaca._session_token_hash(token text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pga_session_token_hash' LANGUAGE C STABLE STRICT;
CREATE FUNCTION alpaca._max_session_ttl() RETURNS int
    AS 'MODULE_PATHNAME', 'pga_max_session_ttl' LANGUAGE C STABLE;

CREATE TABLE alpaca.sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id      text NOT NULL CHECK (owner_id <> ''),
    credential_id uuid NOT NULL REFERENCES alpaca.credentials (id) ON DELETE CASCADE,
    scope         text NOT NULL CHECK (scope IN ('read', 'trade')),
    label         text CHECK (length(label) <= 200),
    token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX sessions_owner_idx ON alpaca.sessions (owner_id);
CREATE INDEX sessions_credential_idx ON alpaca.sessions (credential_id);
ALTER TABLE alpaca.sessions OWNER TO alpaca_owner;
ALTER TABLE alpaca.sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE alpaca.sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY sessions_owner ON alpaca.sessions
    USING (owner_id = @extschema@.alpaca_current_user())
    WITH CHECK (owner_id = @extschema@.alpaca_current_user());
-- alpaca_maintainer finds the owner of a presented token (alpaca._session_owner), nothing else.
CREATE POLICY sessions_maintainer_lookup ON alpaca.sessions FOR SELECT TO alpaca_maintainer
    USING (true);
-- The gateway's audit row is written as 'pending' and gets the HTTP status afterwards
-- (alpaca._gateway_status; an UPDATE's new row must pass a SELECT policy too). The
-- maintainer's column grants show it only id, action and outcome.
CREATE POLICY audit_log_gateway_rows ON alpaca.audit_log FOR SELECT TO alpaca_maintainer
    USING (action = 'gateway');
CREATE POLICY audit_log_gateway_status ON alpaca.audit_log FOR UPDATE TO alpaca_maintainer
    USING (action = 'gateway' AND outcome = 'pending') WITH CHECK (action = 'gateway');
GRANT SELECT (id, owner_id, credential_id, scope, label, created_at, expires_at, last_used_at,
              revoked_at) ON alpaca.sessions TO alpaca_app;
GRANT SELECT (id, owner_id, token_hash) ON alpaca.sessions TO alpaca_maintainer;
GRANT SELECT (id, action, outcome), UPDATE (outcome) ON alpaca.audit_log TO alpaca_maintainer;

CREATE FUNCTION alpaca_open_session(cred uuid, scope text DEFAULT 'read',
        ttl interval DEFAULT '1 hour', label text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u text := alpaca._require_user();
    c record;
    t record;
    max_ttl interval := make_interval(secs => alpaca._max_session_ttl());
BEGIN
    PERFORM alpaca._require_primary('opening a gateway session');
    IF scope IS NULL OR scope NOT IN ('read', 'trade') THEN
        RAISE EXCEPTION 'scope must be read or trade' USING ERRCODE = '22023';
    END IF;
    IF ttl IS NULL OR ttl <= interval '0' OR ttl > max_ttl THEN
        RAISE EXCEPTION 'session ttl must be more than 0 and at most %', max_ttl
            USING ERRCODE = '22023', HINT = 'A superuser sets the longest with pg_alpaca.max_session_ttl.';
    END IF;
    IF length(label) > 200 THEN
        RAISE EXCEPTION 'label is longer than 200 characters' USING ERRCODE = '22023';
    END IF;
    SELECT x.is_active INTO c FROM alpaca.credentials x WHERE x.id = cred;
    IF NOT FOUND THEN
        PERFORM alpaca._not_found(cred);
    END IF;
    IF NOT c.is_active THEN
        RAISE EXCEPTION 'credential % is deactivated', cred
            USING ERRCODE = '55000', HINT = 'Reactivate it with alpaca_update_credential(id, is_active => true).';
    END IF;
    IF scope = 'trade' THEN
        PERFORM alpaca._check_trading(cred);
    END IF;
    SELECT * INTO t FROM alpaca._mint_session_token();
    INSERT INTO alpaca.sessions (owner_id, credential_id, scope, label, token_hash, expires_at)
    VALUES (u, cred, scope, label, t.token_hash, clock_timestamp() + ttl);
    PERFORM alpaca._audit('session_open', cred, scope);
    RETURN t.token;
END $$;

CREATE FUNCTION alpaca_list_sessions()
RETURNS TABLE(id uuid, credential_id uuid, scope text, label text, created_at timestamptz,
              expires_at timestamptz, last_used_at timestamptz, revoked_at timestamptz,
              active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.id, s.credential_id, s.scope, s.label, s.created_at, s.expires_at, s.last_used_at,
           s.revoked_at, s.revoked_at IS NULL AND s.expires_at > clock_timestamp()
    FROM alpaca.sessions s
    ORDER BY s.created_at, s.id;
$$;

CREATE FUNCTION alpaca_revoke_session(id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u text := alpaca._require_user();
    cred uuid;
BEGIN
    PERFORM alpaca._require_primary('revoking a gateway session');
    UPDATE alpaca.sessions s SET revoked_at = coalesce(s.revoked_at, clock_timestamp())
     WHERE s.id = alpaca_revoke_session.id
    RETURNING s.credential_id INTO cred;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'session % does not exist or does not belong to the current user',
            alpaca_revoke_session.id USING ERRCODE = '42501';
    END IF;
    PERFORM alpaca._audit('session_revoke', cred);
    RETURN true;
END $$;

-- Which scope a gateway request needs: 'read', 'trade', 'data' (market data: either scope), or
-- NULL (not allowed for any). path is as sent (not decoded); the sidecar has already refused
-- '%', '..', '//' and characters outside [A-Za-z0-9/._:-]. Executable by alpaca_owner alone and
-- called only by alpaca._session_redeem_prepare, under its pinned search_path (no SET clause of
-- its own: that would cost a search_path change on every gateway request).
CREATE FUNCTION alpaca._gateway_route(method text, path text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    sym constant text := '[A-Za-z0-9]+([.-][A-Za-z0-9]+)*';
    order_id constant text := '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
BEGIN
    IF method = 'GET' THEN
        IF path ~ ('^/v2/(account|positions|orders|clock|calendar|assets|account/activities|account/portfolio/history|orders:by_client_order_id)$')
           OR path ~ ('^/v2/orders/' || order_id || '$')
           OR path ~ ('^/v2/(positions|assets)/' || sym || '$')
           OR path ~ '^/v2/account/activities/[A-Z_]{1,32}$' THEN
            RETURN 'read';
        END IF;
        IF path ~ ('^/v2/stocks/' || sym || '/(quotes|trades)/latest$')
           OR path ~ ('^/v2/stocks/' || sym || '/(bars|quotes|trades|snapshot)$')
           OR path ~ '^/v2/stocks/(quotes|trades|bars)/latest$'
           OR path ~ '^/v2/stocks/(bars|quotes|trades|snapshots)$' THEN
            RETURN 'data';
        END IF;
    ELSIF method = 'POST' AND path = '/v2/orders' THEN
        RETURN 'trade';
    ELSIF method IN ('PATCH', 'DELETE') AND path ~ ('^/v2/orders/' || order_id || '$') THEN
        RETURN 'trade';
    ELSIF method = 'DELETE' AND (path = '/v2/orders' OR path ~ ('^/v2/positions/' || sym || '$')) THEN
        RETURN 'trade';
    END IF;
    RETURN NULL;
END $$;

-- The session a presented token stands for, found without an application user: owned by
-- alpaca_maintainer (its policy shows every session's owner and hash), executable by
-- alpaca_owner alone.
CREATE FUNCTION alpaca._session_owner(token_hash bytea) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
-- plpgsql keeps its plan for the session (a SQL function with a SET clause is planned anew
-- on every call, and this one runs on every gateway request).
BEGIN
    RETURN (SELECT s.owner_id FROM alpaca.sessions s WHERE s.token_hash = _session_owner.token_hash);
END $$;

-- The session of a token, under RLS as its owner: valid (not revoked, not expired) and its
-- credential active, else 28000 "session token is not valid" (the sidecar answers 401).
-- Leaves the owner set as the application user; callers end it. Executable by alpaca_owner
-- alone, called only by the SECURITY DEFINER functions below under their pinned search_path
-- (so neither SECURITY DEFINER nor a SET clause of its own, like alpaca._audit).
CREATE FUNCTION alpaca._session_for_token(token text)
RETURNS TABLE(session_id uuid, owner_id text, credential_id uuid, scope text, environment text,
              live_trading boolean)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    h bytea := alpaca._session_token_hash(token);
    owner text;
    r record;
    valid boolean := false;
BEGIN
    owner := CASE WHEN h IS NOT NULL THEN alpaca._session_owner(h) END;
    IF owner IS NOT NULL THEN
        PERFORM alpaca._set_user(owner);
        SELECT s.id, s.credential_id, s.scope, c.environment, c.live_trading INTO r
          FROM alpaca.sessions s JOIN alpaca.credentials c ON c.id = s.credential_id
         WHERE s.token_hash = h AND s.revoked_at IS NULL AND s.expires_at > clock_timestamp()
           AND c.is_active;
        valid := FOUND;
    END IF;
    IF NOT valid THEN
        PERFORM alpaca._end_user();
        RAISE EXCEPTION 'session token is not valid' USING ERRCODE = '28000';
    END IF;
    RETURN QUERY SELECT r.id, owner, r.credential_id, r.scope, r.environment, r.live_trading;
END $$;

-- For the sidecar (the MCP front's tool list): what a token stands for, no keys.
CREATE FUNCTION alpaca._gateway_session(token text)
RETURNS TABLE(session_id uuid, credential_id uuid, scope text, environment text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
BEGIN
    SELECT * INTO s FROM alpaca._session_for_token(token);
    PERFORM alpaca._end_user();
    RETURN QUERY SELECT s.session_id, s.credential_id, s.scope, s.environment;
END $$;

-- Called (through alpaca.redeem_session) by the sidecar for one gateway request: the token's
-- session, the scope for method + path, the live two-key rule for trading, and the 'gateway'
-- audit row (purpose = method and path, outcome pending until the sidecar records the status;
-- never the token). It updates no row: the session's and the credential's last_used_at are
-- set after the answer, coalesced (alpaca._gateway_used), so that concurrent requests on one
-- credential do not queue on its row lock.
CREATE FUNCTION alpaca._session_redeem_prepare(token text, method text, path text)
RETURNS TABLE(credential_id uuid, environment text, api_key alpaca_secret,
              secret_key alpaca_secret, session_id uuid, scope text, route text, audit_id bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
    c record;
    needed text := alpaca._gateway_route(method, path);
    aid bigint;
BEGIN
    SELECT * INTO s FROM alpaca._session_for_token(token);
    IF needed IS NULL OR (needed = 'trade' AND s.scope <> 'trade') THEN
        PERFORM alpaca._end_user();
        RAISE EXCEPTION 'this session''s scope does not allow this request' USING ERRCODE = '42501';
    END IF;
    IF needed = 'trade' AND s.environment = 'live'
       AND NOT (alpaca._live_trading_allowed() AND s.live_trading) THEN
        PERFORM alpaca._end_user();
        RAISE EXCEPTION 'live trading is not enabled for the credential of this session'
            USING ERRCODE = '42501';
    END IF;
    SELECT x.api_key, x.secret_key INTO c FROM alpaca.credentials x WHERE x.id = s.credential_id;
    INSERT INTO alpaca.audit_log (app_user, credential_id, action, purpose, outcome)
    VALUES (s.owner_id, s.credential_id, 'gateway', left(method || ' ' || path, 200), 'pending')
    RETURNING id INTO aid;
    PERFORM alpaca._end_user();
    RETURN QUERY SELECT s.credential_id, s.environment, c.api_key, c.secret_key, s.session_id,
                        s.scope, needed, aid;
END $$;

CREATE PROCEDURE alpaca.redeem_session(token text, method text, path text,
        OUT credential_id uuid, OUT environment text, OUT api_key text, OUT secret_key text,
        OUT session_id text, OUT scope text, OUT route text, OUT audit_id text)
    AS 'MODULE_PATHNAME', 'pga_redeem_session' LANGUAGE C;
COMMENT ON PROCEDURE alpaca.redeem_session(text, text, text, uuid, text, text, text, text, text, text, text) IS 'alpaca_sidecar only: trade a gateway session token for the keys of one request, committed before they leave';

-- A gateway request of a valid session that alpaca._session_redeem_prepare refused (scope,
-- allowlist, live rule): its raise rolled back, so the sidecar records the refusal here, on its
-- own statement. The token is checked again (28000 otherwise) and the refusal recomputed: a
-- request that would be allowed is not recorded as refused. Never the token in the row.
CREATE FUNCTION alpaca._gateway_refused(token text, method text, path text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s record;
    needed text := alpaca._gateway_route(method, path);
    aid bigint;
BEGIN
    SELECT * INTO s FROM alpaca._session_for_token(token);
    IF needed IS NOT NULL AND (needed <> 'trade' OR s.scope = 'trade')
       AND NOT (needed = 'trade' AND s.environment = 'live'
                AND NOT (alpaca._live_trading_allowed() AND s.live_trading)) THEN
        PERFORM alpaca._end_user();
        RETURN NULL;
    END IF;
    INSERT INTO alpaca.audit_log (app_user, credential_id, action, purpose, outcome)
    VALUES (s.owner_id, s.credential_id, 'gateway', left(method || ' ' || path, 200), 'refused 403')
    RETURNING id INTO aid;
    PERFORM alpaca._end_user();
    RETURN aid;
END $$;

-- The HTTP status of a gateway request, recorded by the sidecar after it answered.
CREATE FUNCTION alpaca._gateway_status(audit_id bigint, http_status int) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE alpaca.audit_log a
       SET outcome = 'http ' || least(greatest(coalesce($2, 0), 0), 999)::text
     WHERE a.id = $1 AND a.action = 'gateway' AND a.outcome = 'pending';
$$;

-- The owners of gateway sessions named by id (for alpaca._gateway_used): owned by
-- alpaca_maintainer (its policy shows every session's owner), executable by alpaca_owner alone.
CREATE FUNCTION alpaca._session_owners(ids uuid[]) RETURNS TABLE(id uuid, owner_id text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.id, s.owner_id FROM alpaca.sessions s WHERE s.id = ANY ($1);
$$;

-- When gateway sessions (and so their credentials) were last used, recorded by the sidecar's
-- audit queue after the answers, coalesced: one UPDATE per session and of its credential with
-- the latest time (never later than now, never moving back), in id order (two sidecars lock
-- rows in the same order), under row-level security as each session's owner. Returns the
-- number of sessions found.
CREATE FUNCTION alpaca._gateway_used(session_ids uuid[], used_at timestamptz[]) RETURNS int
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u record;
    cred uuid;
    n int := 0;
    creds uuid[] := '{}';
    owners text[] := '{}';
    useds timestamptz[] := '{}';
BEGIN
    IF coalesce(array_length(session_ids, 1), 0) > 10000
       OR coalesce(array_length(session_ids, 1), 0) <> coalesce(array_length(used_at, 1), 0) THEN
        RAISE EXCEPTION 'give at most 10000 sessions, each with its time' USING ERRCODE = '22023';
    END IF;
    -- The sessions in id order, then their credentials by owner and id: the order in which the
    -- outcome writer (alpaca._record_outcomes) locks credentials, so the two writers' batches
    -- cannot deadlock on two credentials.
    FOR u IN SELECT x.sid, o.owner_id, least(max(x.at_), clock_timestamp()) AS used
             FROM unnest(session_ids, used_at) AS x(sid, at_)
             JOIN alpaca._session_owners(session_ids) o ON o.id = x.sid
             WHERE x.at_ IS NOT NULL
             GROUP BY x.sid, o.owner_id ORDER BY x.sid LOOP
        PERFORM alpaca._set_user(u.owner_id);
        UPDATE alpaca.sessions s SET last_used_at = greatest(s.last_used_at, u.used)
         WHERE s.id = u.sid RETURNING s.credential_id INTO cred;
        IF FOUND THEN
            creds := creds || cred;
            owners := owners || u.owner_id;
            useds := useds || u.used;
            n := n + 1;
        END IF;
    END LOOP;
    FOR u IN SELECT x.cred, x.owner_id, max(x.used) AS used
             FROM unnest(creds, owners, useds) AS x(cred, owner_id, used)
             GROUP BY x.cred, x.owner_id ORDER BY x.owner_id COLLATE "C", x.cred LOOP
        PERFORM alpaca._set_user(u.owner_id);
        UPDATE alpaca.credentials c SET last_used_at = greatest(c.last_used_at, u.used)
         WHERE c.id = u.cred;
    END LOOP;
    PERFORM alpaca._end_user();
    RETURN n;
END $$;

ALTER FUNCTION alpaca_open_session(uuid, text, interval, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_list_sessions() OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_revoke_session(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._session_owner(bytea) OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca._session_for_token(text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._gateway_session(text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._session_redeem_prepare(text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._gateway_status(bigint, int) OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca._gateway_refused(text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._session_owners(uuid[]) OWNER TO alpaca_maintainer;
ALTER FUNCTION alpaca._gateway_used(uuid[], timestamptz[]) OWNER TO alpaca_owner;
REVOKE ALL ON FUNCTION alpaca_open_session(uuid, text, interval, text), alpaca_list_sessions(),
    alpaca_revoke_session(uuid), alpaca._mint_session_token(), alpaca._session_token_hash(text),
    alpaca._max_session_ttl(), alpaca._gateway_route(text, text), alpaca._session_owner(bytea),
    alpaca._session_for_token(text), alpaca._gateway_session(text),
    alpaca._session_redeem_prepare(text, text, text), alpaca._gateway_status(bigint, int),
    alpaca._gateway_refused(text, text, text), alpaca._session_owners(uuid[]),
    alpaca._gateway_used(uuid[], timestamptz[]) FROM PUBLIC;
REVOKE ALL ON PROCEDURE alpaca.redeem_session(text, text, text, uuid, text, text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION alpaca._mint_session_token(), alpaca._session_token_hash(text),
    alpaca._max_session_ttl(), alpaca._gateway_route(text, text), alpaca._session_owner(bytea),
    alpaca._session_for_token(text), alpaca._session_owners(uuid[]) TO alpaca_owner;
GRANT EXECUTE ON FUNCTION alpaca_open_session(uuid, text, interval, text), alpaca_list_sessions(),
    alpaca_revoke_session(uuid) TO alpaca_app;
GRANT EXECUTE ON FUNCTION alpaca._gateway_session(text), alpaca._gateway_status(bigint, int),
    alpaca._gateway_refused(text, text, text), alpaca._gateway_used(uuid[], timestamptz[])
    TO alpaca_sidecar;
GRANT EXECUTE ON PROCEDURE alpaca.redeem_session(text, text, text, uuid, text, text, text, text, text, text, text) TO alpaca_sidecar;

-- The sidecar's batched redeem.
-- CALL alpaca.redeem_tickets(tickets, purposes, NULL, NULL, NULL, NULL): the sidecar's redeem of
-- the tickets that waited for a database connection together, in one transaction with one
-- commit and one WAL flush (extension/redeem.cpp). Each ticket is checked, marked and audited
-- as alpaca.redeem_ticket does it; a refusal of any rolls back all of them and names the ticket
-- in DETAIL ("ticket 3 of 7": the sidecar answers that one and redeems the others again without
-- it). The OUT arrays follow the order of tickets.
CREATE PROCEDURE alpaca.redeem_tickets(tickets text[], purposes text[], OUT credential_ids uuid[],
        OUT environments text[], OUT api_keys text[], OUT secret_keys text[])
    AS 'MODULE_PATHNAME', 'pga_redeem_tickets' LANGUAGE C;
COMMENT ON PROCEDURE alpaca.redeem_tickets(text[], text[], uuid[], text[], text[], text[]) IS 'alpaca_sidecar only: trade up to 64 tickets for their plaintext keys once each, committed before they leave';
REVOKE ALL ON PROCEDURE alpaca.redeem_tickets(text[], text[], uuid[], text[], text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON PROCEDURE alpaca.redeem_tickets(text[], text[], uuid[], text[], text[], text[]) TO alpaca_sidecar;
