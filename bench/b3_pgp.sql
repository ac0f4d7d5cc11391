-- B3 baseline: two pgp_sym_decrypt values (pgcrypto, default OpenPGP options) by id.
\set n random(1, :rows)
SELECT id, pgp_sym_decrypt(api_key, 'bench-passphrase-0123456789'), pgp_sym_decrypt(secret_key, 'bench-passphrase-0123456789')
  FROM bench.b3_pgp WHERE id = :n;
