-- pg_alpaca 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_alpaca UPDATE). Every change made to
-- pg_alpaca--0.2.0.sql since 0.1.0 is made here too; test/upgrade checks that an updated
-- installation's catalog is identical to a fresh 0.2.0 installation's.
\echo Use "ALTER EXTENSION pg_alpaca UPDATE" to load this file. \quit
