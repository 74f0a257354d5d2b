-- Register / heartbeat this worker; $2 = idle. idle_since marks the start of the current idle
-- period: now() on a busy -> idle transition, kept on idle -> idle heartbeats, NULL while busy.
-- The capture trigger NOTIFYs only if some fresh worker is idle, and each backend only once per
-- idle period (a newer idle_since).
INSERT INTO erp_sync.workers AS w (worker_id, idle, idle_since, heartbeat_at, started_at)
VALUES ($1, $2, CASE WHEN $2 THEN now() END, now(), now())
ON CONFLICT (worker_id) DO UPDATE SET
    idle = EXCLUDED.idle,
    idle_since = CASE WHEN NOT EXCLUDED.idle THEN NULL
                      WHEN w.idle AND w.idle_since IS NOT NULL THEN w.idle_since
                      ELSE now() END,
    heartbeat_at = now()
