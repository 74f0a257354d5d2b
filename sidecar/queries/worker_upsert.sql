-- Register / heartbeat this worker; $2 = idle. idle_since marks the start of the current idle
-- period: now() on a busy -> idle transition, kept on idle -> idle heartbeats, NULL while busy.
-- The capture trigger NOTIFYs only if some fresh worker is idle, and each backend only once per
-- idle period (a newer idle_since).
-- $3 = the ERP's refusal of this worker's last login while no login has worked since (NULL when
-- logins work): erp_login_failed_since keeps the start of the refusal (alert erp_login_failed,
-- contact_status of the waiting rows).
INSERT INTO erp_sync.workers AS w (worker_id, idle, idle_since, heartbeat_at, started_at,
                                   erp_login_error, erp_login_failed_since)
VALUES ($1, $2, CASE WHEN $2 THEN now() END, now(), now(), $3::text, CASE WHEN $3::text IS NOT NULL THEN now() END)
ON CONFLICT (worker_id) DO UPDATE SET
    idle = EXCLUDED.idle,
    idle_since = CASE WHEN NOT EXCLUDED.idle THEN NULL
                      WHEN w.idle AND w.idle_since IS NOT NULL THEN w.idle_since
                      ELSE now() END,
    heartbeat_at = now(),
    erp_login_error = EXCLUDED.erp_login_error,
    erp_login_failed_since = CASE WHEN EXCLUDED.erp_login_error IS NULL THEN NULL
                                  ELSE coalesce(w.erp_login_failed_since, now()) END
