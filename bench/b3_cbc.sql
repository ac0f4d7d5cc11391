-- B3 baseline: two decrypt_iv (pgcrypto raw AES-256-CBC, fixed key and IV, no MAC) by id.
\set n random(1, :rows)
SELECT id,
       convert_from(decrypt_iv(api_key, '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea, '\x0f0e0d0c0b0a09080706050403020100'::bytea, 'aes-cbc'), 'UTF8'),
       convert_from(decrypt_iv(secret_key, '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea, '\x0f0e0d0c0b0a09080706050403020100'::bytea, 'aes-cbc'), 'UTF8')
  FROM bench.b3_cbc WHERE id = :n;
