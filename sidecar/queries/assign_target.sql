-- The assignment of a score: its tier (erp_sync.assignment_for, 'public' when none) and, when the
-- tier differs from the current one ($2), the rep picked for it (erp_sync.pick_rep: least recently
-- assigned active rep of the tier; NULL for 'public' or when the tier has no active rep).
SELECT t.tier,
       CASE WHEN t.tier IS DISTINCT FROM $2::text THEN erp_sync.pick_rep(t.tier) END AS rep
FROM (SELECT coalesce(erp_sync.assignment_for(floor($1::float8)::int)::text, 'public') AS tier) AS t
