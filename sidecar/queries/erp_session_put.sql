-- Store the session of a login just made: the next generation of the account.
INSERT INTO erp_sync.erp_session AS s (account, token, generation, obtained_at)
VALUES ($1, $2, 1, now())
ON CONFLICT (account) DO UPDATE
    SET token = EXCLUDED.token, generation = s.generation + 1, obtained_at = now()
RETURNING generation
