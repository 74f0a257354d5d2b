-- Has schedule $1 ever run, and has its period $2 been claimed?
SELECT EXISTS (SELECT 1 FROM erp_sync.schedule_runs WHERE name = $1) AS ran_before,
       EXISTS (SELECT 1 FROM erp_sync.schedule_runs WHERE name = $1 AND period_key = $2) AS claimed
