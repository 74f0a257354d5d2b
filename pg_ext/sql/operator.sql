-- erp_sync operator actions: the audit of what a person did on the sidecar's operator page
-- (sidecar/src/ops/operator.rs): sync now, retry dead rows, resolve an in-doubt follow-up, roll
-- back a sync_log entry. The sidecar writes the row in the same transaction as the action.

CREATE TABLE erp_sync.operator_actions (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    operator    text NOT NULL CHECK (length(btrim(operator)) BETWEEN 1 AND 100),
    action      text NOT NULL CHECK (action IN ('sync_now', 'retry', 'resolve_in_doubt', 'rollback')),
    contact_id  text COLLATE "C",
    target      bigint,
    ok          boolean NOT NULL,
    result      text,
    worker      text
);
CREATE INDEX operator_actions_contact_idx ON erp_sync.operator_actions (contact_id, id);
-- The reader role reads the audit: a result (which may quote an error) is stored with its
-- mobiles masked, whoever writes it.
CREATE FUNCTION erp_sync.operator_actions_mask() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.result := erp_sync.mask_text(NEW.result);
    RETURN NEW;
END
$$;
CREATE TRIGGER erp_sync_mask BEFORE INSERT OR UPDATE OF result ON erp_sync.operator_actions
    FOR EACH ROW EXECUTE FUNCTION erp_sync.operator_actions_mask();
COMMENT ON TABLE erp_sync.operator_actions IS 'audit of the operator page: who did which action on which contact/row, and what came of it';
SELECT pg_catalog.pg_extension_config_dump('erp_sync.operator_actions', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.operator_actions_id_seq', '');

-- erp_sync_worker (the sidecar) appends; nobody updates or deletes through it. The reader sees it.
GRANT SELECT, INSERT ON erp_sync.operator_actions TO erp_sync_worker;
GRANT USAGE ON SEQUENCE erp_sync.operator_actions_id_seq TO erp_sync_worker;
GRANT SELECT ON erp_sync.operator_actions TO erp_sync_reader;

-- The page's actions run as the sidecar's role: "sync now" reads the platform's contact row and
-- writes the rejection, which that role may not do itself, so request_sync() runs as the
-- extension owner (like the capture trigger) with a pinned search_path.
ALTER FUNCTION erp_sync.request_sync(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
GRANT EXECUTE ON FUNCTION erp_sync.request_sync(text), erp_sync.rollback(bigint) TO erp_sync_worker;
