-- pg_alpaca 0.2.0: encrypted Alpaca credentials with row-level security, and live Alpaca data.
\echo Use "CREATE EXTENSION pg_alpaca" to load this file. \quit

--------------------------------------------------------------------------------------------
-- Roles. Group roles are cluster-wide: created when missing, never dropped by the extension.
--   alpaca_app      applications: the credential API and broker data, never a secret column
--   alpaca_sidecar  the daemon: may only redeem tickets
--   alpaca_admin    key status, rotation, the whole audit log
--   alpaca_owner    owns the tables and the application functions; NOT a superuser and without
--                   BYPASSRLS, so the FORCEd row-level security applies inside those functions
--   alpaca_maintainer owns the administrators' functions (key status, rotation); NOT a
--                   superuser, sees every credential row through a policy of its own
-- alpaca_owner and alpaca_maintainer are NOLOGIN roles without members: only the extension's
-- SECURITY DEFINER functions ever run as them.
--------------------------------------------------------------------------------------------
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

CREATE SCHEMA alpaca;
COMMENT ON SCHEMA alpaca IS 'pg_alpaca: accounts, encrypted credentials and the audit log';
REVOKE ALL ON SCHEMA alpaca FROM PUBLIC;
GRANT USAGE ON SCHEMA alpaca TO alpaca_app, alpaca_admin, alpaca_owner, alpaca_maintainer,
    alpaca_sidecar;

--------------------------------------------------------------------------------------------
-- The alpaca_secret type: an AES-256-GCM envelope, text form pgak1:<key id>:<base64>.
--------------------------------------------------------------------------------------------
CREATE TYPE alpaca_secret;
CREATE FUNCTION alpaca_secret_in(cstring) RETURNS alpaca_secret
    AS 'MODULE_PATHNAME', 'pga_secret_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION alpaca_secret_out(alpaca_secret) RETURNS cstring
    AS 'MODULE_PATHNAME', 'pga_secret_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION alpaca_secret_recv(internal) RETURNS alpaca_secret
    AS 'MODULE_PATHNAME', 'pga_secret_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION alpaca_secret_send(alpaca_secret) RETURNS bytea
    AS 'MODULE_PATHNAME', 'pga_secret_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE alpaca_secret (
    INPUT = alpaca_secret_in, OUTPUT = alpaca_secret_out,
    RECEIVE = alpaca_secret_recv, SEND = alpaca_secret_send,
    INTERNALLENGTH = VARIABLE, STORAGE = main, ALIGNMENT = int4
);
COMMENT ON TYPE alpaca_secret IS 'AES-256-GCM envelope of a credential secret (never plaintext)';

--------------------------------------------------------------------------------------------
-- C primitives. Internal ones live in schema alpaca with EXECUTE revoked from PUBLIC.
--------------------------------------------------------------------------------------------
CREATE FUNCTION alpaca_current_user() RETURNS text
    AS 'MODULE_PATHNAME', 'pga_current_user' LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION alpaca_current_user() IS 'The application user of this transaction, NULL when unset';

CREATE FUNCTION alpaca_set_user(user_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'pga_set_user' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION alpaca_set_user(text) IS 'Sets the application user for the rest of the transaction';

CREATE FUNCTION alpaca_set_user_jwt(token text) RETURNS text
    AS 'MODULE_PATHNAME', 'pga_set_user_jwt' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION alpaca_set_user_jwt(text) IS 'Verifies a signed JWT with the key set of pg_alpaca.jwt_keys_file and makes its user the application user for the rest of the transaction; returns the user';

-- Twins of the public functions above for the extension's own calls. Nobody but the extension
-- can create objects in schema alpaca, so an overload planted in a schema anyone can write
-- (public on clusters upgraded from PostgreSQL <= 14) cannot make these calls ambiguous.
CREATE FUNCTION alpaca._current_user() RETURNS text
    AS 'MODULE_PATHNAME', 'pga_current_user' LANGUAGE C STABLE PARALLEL RESTRICTED;
CREATE FUNCTION alpaca._set_user(user_id text) RETURNS void
    AS 'MODULE_PATHNAME', 'pga_set_user' LANGUAGE C VOLATILE;

CREATE FUNCTION alpaca._user_setting_name() RETURNS text
    AS 'MODULE_PATHNAME', 'pga_user_setting_name' LANGUAGE C STABLE;
CREATE FUNCTION alpaca._secret_key_id(alpaca_secret) RETURNS bigint
    AS 'MODULE_PATHNAME', 'pga_secret_key_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION alpaca._seal(plaintext text, cred uuid, column_name text) RETURNS alpaca_secret
    AS 'MODULE_PATHNAME', 'pga_seal' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION alpaca._reseal_credential(api_key alpaca_secret, secret_key alpaca_secret, cred uuid,
        OUT api_key alpaca_secret, OUT secret_key alpaca_secret, OUT fingerprint text)
    AS 'MODULE_PATHNAME', 'pga_reseal_credential' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION alpaca._fingerprints(api_key text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'pga_fingerprints' LANGUAGE C STABLE STRICT;
CREATE FUNCTION alpaca._mint_ticket(cred uuid, app_user text, purpose text, expires_at timestamptz) RETURNS text
    AS 'MODULE_PATHNAME', 'pga_mint_ticket' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION alpaca._verify_ticket(ticket text, OUT credential_id uuid, OUT app_user text,
        OUT purpose text, OUT expires_at timestamptz, OUT nonce bytea, OUT key_id bigint)
    AS 'MODULE_PATHNAME', 'pga_verify_ticket' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION alpaca._key_ring() RETURNS TABLE(key_id bigint, is_primary boolean)
    AS 'MODULE_PATHNAME', 'pga_key_ring' LANGUAGE C VOLATILE;
CREATE FUNCTION alpaca._alpaca_get(cred uuid, op text, ticket text, query text[] DEFAULT '{}',
        accept_unauthorized boolean DEFAULT false) RETURNS text
    AS 'MODULE_PATHNAME', 'pga_alpaca_get' LANGUAGE C VOLATILE;

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

--------------------------------------------------------------------------------------------
-- Tables
--------------------------------------------------------------------------------------------
CREATE TABLE alpaca.accounts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    text NOT NULL CHECK (owner_id <> ''),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_owner_idx ON alpaca.accounts (owner_id);

CREATE TABLE alpaca.credentials (
    id                  uuid PRIMARY KEY,
    account_id          uuid NOT NULL REFERENCES alpaca.accounts (id) ON DELETE CASCADE,
    owner_id            text NOT NULL CHECK (owner_id <> ''),
    label               text CHECK (length(label) <= 200),
    environment         text NOT NULL DEFAULT 'paper' CHECK (environment IN ('paper', 'live')),
    api_key             alpaca_secret NOT NULL,
    secret_key          alpaca_secret NOT NULL,
    api_key_key_id      bigint GENERATED ALWAYS AS (alpaca._secret_key_id(api_key)) STORED,
    secret_key_key_id   bigint GENERATED ALWAYS AS (alpaca._secret_key_id(secret_key)) STORED,
    api_key_fingerprint text NOT NULL,
    key_hint            text NOT NULL,
    is_active           boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    last_validated_at   timestamptz,
    last_used_at        timestamptz,
    CONSTRAINT credentials_account_key_unique UNIQUE (account_id, api_key_fingerprint)
);
CREATE INDEX credentials_owner_idx ON alpaca.credentials (owner_id);
CREATE INDEX credentials_api_key_key_id_idx ON alpaca.credentials (api_key_key_id);
CREATE INDEX credentials_secret_key_key_id_idx ON alpaca.credentials (secret_key_key_id);

CREATE TABLE alpaca.audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    db_role       text NOT NULL DEFAULT session_user,
    app_user      text,
    credential_id uuid,
    action        text NOT NULL,
    purpose       text,
    outcome       text NOT NULL DEFAULT 'ok'
);
CREATE INDEX audit_log_app_user_idx ON alpaca.audit_log (app_user, at);
CREATE INDEX audit_log_credential_idx ON alpaca.audit_log (credential_id, at);

-- Nonces of redeemed tickets: a ticket is good once. Rows are purged after expiry.
CREATE TABLE alpaca.redeemed_tickets (
    nonce      bytea PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX redeemed_tickets_expires_idx ON alpaca.redeemed_tickets (expires_at);

-- pg_dump dumps the data of these extension tables (tickets are ephemeral and are not dumped).
SELECT pg_catalog.pg_extension_config_dump('alpaca.accounts', '');
SELECT pg_catalog.pg_extension_config_dump('alpaca.credentials', '');
SELECT pg_catalog.pg_extension_config_dump('alpaca.audit_log', '');
-- ...and the audit log's identity sequence, or a restored database would reuse its ids.
SELECT pg_catalog.pg_extension_config_dump('alpaca.audit_log_id_seq', '');

--------------------------------------------------------------------------------------------
-- Row-level security, enabled and forced (the owner alpaca_owner is subject to it too).
-- No application user set -> alpaca_current_user() is NULL -> no row matches (fail closed).
--------------------------------------------------------------------------------------------
ALTER TABLE alpaca.accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE alpaca.accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY accounts_owner ON alpaca.accounts
    USING (owner_id = @extschema@.alpaca_current_user())
    WITH CHECK (owner_id = @extschema@.alpaca_current_user());

ALTER TABLE alpaca.credentials ENABLE ROW LEVEL SECURITY;
ALTER TABLE alpaca.credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY credentials_owner ON alpaca.credentials
    USING (owner_id = @extschema@.alpaca_current_user())
    WITH CHECK (owner_id = @extschema@.alpaca_current_user());

ALTER TABLE alpaca.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE alpaca.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_log_own_user ON alpaca.audit_log FOR SELECT
    USING (app_user = @extschema@.alpaca_current_user());
CREATE POLICY audit_log_admin ON alpaca.audit_log FOR SELECT TO alpaca_admin USING (true);
CREATE POLICY audit_log_append ON alpaca.audit_log FOR INSERT TO alpaca_owner WITH CHECK (true);

ALTER TABLE alpaca.accounts OWNER TO alpaca_owner;
ALTER TABLE alpaca.credentials OWNER TO alpaca_owner;
ALTER TABLE alpaca.audit_log OWNER TO alpaca_owner;
ALTER TABLE alpaca.redeemed_tickets OWNER TO alpaca_owner;

-- Applications read metadata through RLS; the secret columns are not granted to anyone.
GRANT SELECT ON alpaca.accounts TO alpaca_app;
GRANT SELECT (id, account_id, owner_id, label, environment, key_hint, is_active, created_at,
              updated_at, last_validated_at, last_used_at)
    ON alpaca.credentials TO alpaca_app;
GRANT SELECT ON alpaca.audit_log TO alpaca_app, alpaca_admin;

--------------------------------------------------------------------------------------------
-- Internal helpers (owned by alpaca_owner, run under RLS)
--------------------------------------------------------------------------------------------
CREATE FUNCTION alpaca._require_user() RETURNS text
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

CREATE FUNCTION alpaca._audit(action text, cred uuid, purpose text DEFAULT NULL,
                              outcome text DEFAULT 'ok', app_user text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
-- plpgsql keeps the INSERT's plan for the session (a SQL function with a SET clause is parsed
-- and planned on every call). Only the extension's SECURITY DEFINER functions call it, under
-- their search_path; every name here is schema-qualified.
BEGIN
    INSERT INTO alpaca.audit_log (app_user, credential_id, action, purpose, outcome)
    VALUES (coalesce(app_user, alpaca._current_user()), cred, action, purpose, outcome);
END $$;

-- Checks an API key id or secret without ever echoing it.
CREATE FUNCTION alpaca._check_key_text(value text, what text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value IS NULL OR length(value) = 0 THEN
        RAISE EXCEPTION '% must not be empty', what USING ERRCODE = '22023';
    END IF;
    IF octet_length(value) > 256 THEN
        RAISE EXCEPTION '% is longer than 256 bytes', what USING ERRCODE = '22023';
    END IF;
    IF value ~ '[[:space:][:cntrl:]]' THEN
        RAISE EXCEPTION '% must not contain spaces or control characters', what
            USING ERRCODE = '22023', HINT = 'Check for a trailing newline or a pasted space.';
    END IF;
END $$;

CREATE FUNCTION alpaca._not_found(cred uuid) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'credential % does not exist or does not belong to the current user', cred
        USING ERRCODE = '42501';
END $$;

--------------------------------------------------------------------------------------------
-- Application API (SECURITY DEFINER as alpaca_owner, so RLS decides what each call sees)
--------------------------------------------------------------------------------------------
CREATE FUNCTION alpaca_create_account(name text) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u text := alpaca._require_user();
    new_id uuid;
BEGIN
    IF name IS NULL OR length(name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'account name must be 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    INSERT INTO alpaca.accounts (owner_id, name) VALUES (u, name) RETURNING id INTO new_id;
    RETURN new_id;
END $$;

-- Whether an account already holds an API key with one of these fingerprints (one per key in
-- the ring), other than credential except_id. One probe of the unique index per fingerprint:
-- "= ANY (array)" let the planner scan the whole account when tables had no statistics yet,
-- which made storing N keys into one account quadratic. Called only by alpaca_store_credential
-- and alpaca_update_credential, under their search_path (no SET clause: it would cost a GUC
-- save and restore per call).
CREATE FUNCTION alpaca._key_in_account(account uuid, fps text[], except_id uuid) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    fp text;
BEGIN
    FOREACH fp IN ARRAY fps LOOP
        IF EXISTS (SELECT 1 FROM alpaca.credentials c
                   WHERE c.account_id = account AND c.api_key_fingerprint = fp
                     AND c.id IS DISTINCT FROM except_id) THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
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
CREATE FUNCTION alpaca_store_credential(account_id uuid, api_key text, secret_key text,
                                        environment text DEFAULT 'paper', label text DEFAULT NULL)
RETURNS uuid
LANGUAGE sql VOLATILE AS $$ SELECT alpaca._store_credential($1, $2, $3, $4, $5) $$;

CREATE FUNCTION alpaca_list_credentials(account_id uuid DEFAULT NULL)
RETURNS TABLE(id uuid, account_id uuid, label text, environment text, key_hint text,
              is_active boolean, created_at timestamptz, updated_at timestamptz,
              last_validated_at timestamptz, last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT c.id, c.account_id, c.label, c.environment, c.key_hint, c.is_active, c.created_at,
           c.updated_at, c.last_validated_at, c.last_used_at
    FROM alpaca.credentials c
    WHERE $1 IS NULL OR c.account_id = $1
    ORDER BY c.created_at, c.id;
$$;

CREATE FUNCTION alpaca_update_credential(id uuid, api_key text DEFAULT NULL,
                                         secret_key text DEFAULT NULL,
                                         is_active boolean DEFAULT NULL, label text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    u text := alpaca._require_user();
    cur alpaca.credentials%ROWTYPE;
    fps text[];
BEGIN
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
           updated_at = now()
     WHERE c.id = cur.id;
    PERFORM alpaca._audit('update', cur.id);
END $$;

CREATE FUNCTION alpaca_delete_credential(id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    u text := alpaca._require_user();
BEGIN
    DELETE FROM alpaca.credentials c WHERE c.id = alpaca_delete_credential.id;
    IF NOT FOUND THEN
        PERFORM alpaca._not_found(alpaca_delete_credential.id);
    END IF;
    PERFORM alpaca._audit('delete', alpaca_delete_credential.id);
    RETURN true;
END $$;

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

CREATE FUNCTION alpaca_issue_ticket(cred uuid, purpose text, ttl interval DEFAULT '30 seconds')
RETURNS text
LANGUAGE sql VOLATILE AS $$ SELECT alpaca._issue_ticket($1, $2, $3) $$;

-- Called (through alpaca.redeem_ticket) by the sidecar. Verifies the ticket, consumes it, and
-- looks the credential up under RLS *as the ticket's user*: a ticket for a credential that user
-- does not own finds nothing.
CREATE FUNCTION alpaca._redeem_prepare(ticket text, purpose text)
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

--------------------------------------------------------------------------------------------
-- Calls to Alpaca through the sidecar
--------------------------------------------------------------------------------------------
-- Mints a ticket (ownership checked under RLS), asks the sidecar, records use. Returns the
-- JSON body, or NULL when accept_unauthorized and Alpaca refused the keys.
CREATE FUNCTION alpaca._call(cred uuid, op text, query text[] DEFAULT '{}',
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

CREATE FUNCTION alpaca_validate_credential(id uuid) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT alpaca._call($1, 'validate', '{}', true) IS NOT NULL;
$$;

CREATE FUNCTION alpaca_account(cred uuid) RETURNS SETOF alpaca.account_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_account(alpaca._call($1, 'account'));
$$;

CREATE FUNCTION alpaca_positions(cred uuid) RETURNS SETOF alpaca.position_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_positions(alpaca._call($1, 'positions'));
$$;

-- Checks alpaca_orders' arguments and builds the query (a plpgsql body cannot have a parameter
-- and a result column both named status).
CREATE FUNCTION alpaca._orders_query(status text, max_rows int) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF status IS NULL OR status NOT IN ('open', 'closed', 'all') THEN
        RAISE EXCEPTION 'status must be open, closed or all' USING ERRCODE = '22023';
    END IF;
    IF max_rows IS NULL OR max_rows NOT BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 500' USING ERRCODE = '22023';
    END IF;
    RETURN ARRAY['status', status, 'limit', max_rows::text, 'nested', 'true'];
END $$;

CREATE FUNCTION alpaca_orders(cred uuid, status text DEFAULT 'open', max_rows int DEFAULT 50)
RETURNS SETOF alpaca.order_row
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM alpaca._parse_orders(
        alpaca._call($1, 'orders', alpaca._orders_query($2, $3)));
$$;

--------------------------------------------------------------------------------------------
-- Administration (SECURITY DEFINER as alpaca_maintainer, whose own policy shows every credential)
--------------------------------------------------------------------------------------------
CREATE FUNCTION alpaca_key_status()
RETURNS TABLE(key_id bigint, is_primary boolean, in_key_ring boolean, secrets bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH used AS (
        SELECT k AS key_id, count(*) AS secrets
        FROM (SELECT api_key_key_id AS k FROM alpaca.credentials
              UNION ALL SELECT secret_key_key_id FROM alpaca.credentials) s
        GROUP BY k
    )
    SELECT coalesce(r.key_id, u.key_id), coalesce(r.is_primary, false), r.key_id IS NOT NULL,
           coalesce(u.secrets, 0)
    FROM alpaca._key_ring() r FULL JOIN used u ON u.key_id = r.key_id
    ORDER BY 1;
$$;

-- Re-encrypts one batch of credentials still under an older key with the primary key, and
-- recomputes their fingerprints. Rows locked by applications are skipped (SKIP LOCKED) and
-- picked up by a later batch, so nothing an application writes is lost. A row that does not
-- decrypt (altered, or its key is gone) is left as it is and reported in `failed`, so one bad
-- row never blocks the rotation of the others.
CREATE FUNCTION alpaca._rotate_batch(batch_size int, skip uuid[], OUT rotated int, OUT failed uuid[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    primary_id bigint;
    r record;
BEGIN
    failed := '{}';
    SELECT k.key_id INTO primary_id FROM alpaca._key_ring() k WHERE k.is_primary;
    BEGIN
        WITH batch AS (
            SELECT c.id, c.api_key, c.secret_key FROM alpaca.credentials c
            WHERE (c.api_key_key_id <> primary_id OR c.secret_key_key_id <> primary_id)
              AND c.id <> ALL (skip)
            LIMIT batch_size FOR UPDATE SKIP LOCKED
        )
        UPDATE alpaca.credentials c
           SET api_key = n.api_key, secret_key = n.secret_key, api_key_fingerprint = n.fingerprint
          FROM batch b, LATERAL alpaca._reseal_credential(b.api_key, b.secret_key, b.id) n
         WHERE c.id = b.id;
        GET DIAGNOSTICS rotated = ROW_COUNT;
    EXCEPTION WHEN data_corrupted OR object_not_in_prerequisite_state THEN
        -- Some row in the batch does not open: redo the batch row by row.
        rotated := 0;
        FOR r IN SELECT c.id, c.api_key, c.secret_key FROM alpaca.credentials c
                 WHERE (c.api_key_key_id <> primary_id OR c.secret_key_key_id <> primary_id)
                   AND c.id <> ALL (skip)
                 LIMIT batch_size FOR UPDATE SKIP LOCKED LOOP
            BEGIN
                UPDATE alpaca.credentials c
                   SET api_key = n.api_key, secret_key = n.secret_key, api_key_fingerprint = n.fingerprint
                  FROM alpaca._reseal_credential(r.api_key, r.secret_key, r.id) n
                 WHERE c.id = r.id;
                rotated := rotated + 1;
            EXCEPTION WHEN data_corrupted OR object_not_in_prerequisite_state THEN
                failed := failed || r.id;
            END;
        END LOOP;
    END;
    IF rotated > 0 THEN
        INSERT INTO alpaca.audit_log (action, purpose, outcome)
        VALUES ('rotate', 'key ' || primary_id, rotated || ' credentials');
    END IF;
END $$;

CREATE FUNCTION alpaca._rotation_remaining(skip uuid[]) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*) FROM alpaca.credentials c, alpaca._key_ring() r
    WHERE r.is_primary AND (c.api_key_key_id <> r.key_id OR c.secret_key_key_id <> r.key_id)
      AND c.id <> ALL (skip);
$$;

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
CREATE PROCEDURE alpaca_rotate_keys(batch_size int DEFAULT 1000)
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

-- Before a key id is removed from the key file: refuses while any secret still needs it.
CREATE FUNCTION alpaca_retire_key(key_id bigint) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
    is_primary boolean;
BEGIN
    SELECT r.is_primary INTO is_primary FROM alpaca._key_ring() r WHERE r.key_id = $1;
    IF is_primary THEN
        RAISE EXCEPTION 'key id % is the primary key', $1
            USING ERRCODE = '55000', HINT = 'Add a new key with alpaca-keygen add first.';
    END IF;
    SELECT count(*) INTO n FROM alpaca.credentials c WHERE c.api_key_key_id = $1 OR c.secret_key_key_id = $1;
    IF n > 0 THEN
        RAISE EXCEPTION 'key id % still protects % credentials', $1, n
            USING ERRCODE = '55000', HINT = 'Run CALL alpaca_rotate_keys() first, then check alpaca_key_status().';
    END IF;
    RETURN format('no credential uses key id %s: its line can be removed from the key file', $1);
END $$;

--------------------------------------------------------------------------------------------
-- Migration from the earlier Python system (Fernet tokens)
--------------------------------------------------------------------------------------------
CREATE FUNCTION alpaca._fernet_decrypt(token text, fernet_key text, what text) RETURNS text
    AS 'MODULE_PATHNAME', 'pga_fernet_decrypt' LANGUAGE C VOLATILE STRICT;

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

CREATE FUNCTION alpaca_import_fernet_credential(account_id uuid, api_key_token text,
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
CREATE FUNCTION alpaca_import_fernet_credentials(source regclass, fernet_key text)
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

--------------------------------------------------------------------------------------------
-- Ownership and privileges
--------------------------------------------------------------------------------------------
-- Every SECURITY DEFINER function is owned by alpaca_owner (application API, under RLS) or
-- alpaca_maintainer (administration); none by a superuser. Functions owned by the installing
-- superuser are all SECURITY INVOKER: the C primitives, the type I/O, the pure parsers,
-- alpaca_set_user/alpaca_current_user, alpaca.redeem_ticket, alpaca_rotate_keys and
-- alpaca_import_fernet_credentials.
ALTER FUNCTION alpaca._require_user() OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._audit(text, uuid, text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._check_key_text(text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._not_found(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_create_account(text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._store_credential(uuid, text, text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_store_credential(uuid, text, text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_list_credentials(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_update_credential(uuid, text, text, boolean, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_delete_credential(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._issue_ticket(uuid, text, interval) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_issue_ticket(uuid, text, interval) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._redeem_prepare(text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._call(uuid, text, text[], boolean) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_validate_credential(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_account(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_positions(uuid) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_orders(uuid, text, int) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca._import_fernet_credential(uuid, text, text, text, text, text) OWNER TO alpaca_owner;
ALTER FUNCTION alpaca_import_fernet_credential(uuid, text, text, text, text, text) OWNER TO alpaca_owner;
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

-- Nothing is executable by PUBLIC except the user getter, the type I/O and the pure parsers.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA alpaca FROM PUBLIC;
REVOKE ALL ON FUNCTION alpaca_set_user(text), alpaca_set_user_jwt(text), alpaca_create_account(text),
    alpaca_store_credential(uuid, text, text, text, text), alpaca_list_credentials(uuid),
    alpaca_update_credential(uuid, text, text, boolean, text), alpaca_delete_credential(uuid),
    alpaca_issue_ticket(uuid, text, interval),
    alpaca_validate_credential(uuid), alpaca_account(uuid), alpaca_positions(uuid),
    alpaca_orders(uuid, text, int), alpaca_key_status(), alpaca_retire_key(bigint),
    alpaca_import_fernet_credential(uuid, text, text, text, text, text),
    alpaca_import_fernet_credentials(regclass, text)
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE alpaca_rotate_keys(int),
    alpaca.redeem_ticket(text, text, uuid, text, text, text) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION alpaca._secret_key_id(alpaca_secret) TO PUBLIC;
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

GRANT EXECUTE ON FUNCTION alpaca_set_user(text), alpaca_set_user_jwt(text), alpaca_create_account(text),
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
GRANT EXECUTE ON PROCEDURE alpaca_rotate_keys(int) TO alpaca_admin;

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
