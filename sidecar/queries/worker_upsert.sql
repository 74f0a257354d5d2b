-- Register / heartbeat this worker; $2 = idle (the capture trigger NOTIFYs only if some fresh worker is idle).
INSERT INTO erp_sync.workers (worker_id, idle, heartbeat_at, started_at)
VALUES ($1, $2, now(), now())
ON CONFLICT (worker_id) DO UPDATE SET idle = EXCLUDED.idle, heartbeat_at = now()
