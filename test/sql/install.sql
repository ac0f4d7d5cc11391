-- Install, drop and reinstall; what the extension creates; who may execute what.
CREATE EXTENSION pg_alpaca;
DROP EXTENSION pg_alpaca;
CREATE EXTENSION pg_alpaca;
SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'pg_alpaca';

-- Helper for the tests: runs a statement and reports SQLSTATE and message instead of failing.
CREATE FUNCTION pga_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION pga_try(text) TO PUBLIC;

-- Group roles exist, none can log in, none bypasses RLS.
SELECT rolname, rolcanlogin, rolsuper, rolbypassrls
FROM pg_roles WHERE rolname IN ('alpaca_app', 'alpaca_sidecar', 'alpaca_admin', 'alpaca_owner')
ORDER BY 1;

-- Every table: RLS enabled and forced, owned by alpaca_owner.
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner) AS owner
FROM pg_class c WHERE c.relnamespace = 'alpaca'::regnamespace AND c.relkind = 'r' ORDER BY 1;

-- Functions any role may execute (everything else is granted to a group role).
SELECT p.oid::regprocedure AS public_function
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_alpaca'
WHERE has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY p.oid::regprocedure::text;

-- What each group role may execute.
SELECT r.rolname, p.oid::regprocedure AS granted
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_alpaca'
CROSS JOIN (VALUES ('alpaca_app'), ('alpaca_sidecar'), ('alpaca_admin')) AS r(rolname)
WHERE has_function_privilege(r.rolname, p.oid, 'EXECUTE')
  AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY 1, p.oid::regprocedure::text;

-- No group role but alpaca_owner may read a secret column.
SELECT r AS role, has_column_privilege(r, 'alpaca.credentials', 'api_key', 'SELECT') AS api_key,
       has_column_privilege(r, 'alpaca.credentials', 'secret_key', 'SELECT') AS secret_key,
       has_column_privilege(r, 'alpaca.credentials', 'key_hint', 'SELECT') AS key_hint
FROM unnest(ARRAY['alpaca_app', 'alpaca_sidecar', 'alpaca_admin', 'public']) AS r ORDER BY 1;

-- GUCs are reserved under the pg_alpaca prefix.
SELECT pga_try($$SET pg_alpaca.no_such_setting = 1$$);
SELECT name, context FROM pg_settings WHERE name LIKE 'pg\_alpaca.%' ORDER BY 1;
