-- erp_sync schedules: the claims that make a scheduled job (pull, sweep, reconcile) run once per
-- period across sidecars (sidecar/src/ops/schedule.rs).

-- One row per (schedule, period): a sidecar claims a period with INSERT ... ON CONFLICT DO
-- NOTHING, so a schedule fires once per period however many sidecars run.
CREATE TABLE erp_sync.schedule_runs (
    name        text NOT NULL,
    period_key  text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    worker      text,
    ok          bool,
    summary     jsonb,
    CONSTRAINT schedule_runs_once UNIQUE (name, period_key)
);
CREATE INDEX schedule_runs_latest_idx ON erp_sync.schedule_runs (name, started_at DESC);
-- The reader role reads schedule_runs directly: a summary (which may quote an ERP error) is
-- stored with its mobiles masked, whoever writes it.
CREATE FUNCTION erp_sync.schedule_runs_mask() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.summary := erp_sync.mask_jsonb(NEW.summary);
    RETURN NEW;
END
$$;
CREATE TRIGGER erp_sync_mask BEFORE INSERT OR UPDATE OF summary ON erp_sync.schedule_runs
    FOR EACH ROW EXECUTE FUNCTION erp_sync.schedule_runs_mask();
COMMENT ON TABLE erp_sync.schedule_runs IS 'claims of scheduled jobs (pull, sweep, reconcile): one row per schedule and period';
SELECT pg_catalog.pg_extension_config_dump('erp_sync.schedule_runs', '');

-- erp_sync_worker (the sidecar) claims and finishes periods; never deletes. The reader sees the
-- summaries (masked on write).
GRANT SELECT, INSERT, UPDATE ON erp_sync.schedule_runs TO erp_sync_worker;
GRANT SELECT ON erp_sync.schedule_runs TO erp_sync_reader;
