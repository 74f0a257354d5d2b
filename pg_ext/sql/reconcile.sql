-- erp_sync ERP -> platform: pulled ERP customers and reconciliation runs. The sidecar fills
-- these (sidecar/src/ops/{pull,reconcile}.rs). Schedules: schedules.sql; rollback: rollback.sql.

-- ---- pulled ERP customers: change detection columns ----
-- The ERP's list has no "modified since" filter, so every pull is a full pass over the list and a
-- row is written only when its content changed: raw_hash = md5 of the canonical jsonb text of
-- the row as received. Rows not seen by a complete pass get gone_at (and lose it when seen again).
ALTER TABLE erp_sync.erp_customers
    ADD COLUMN ly            text,
    ADD COLUMN jz            text,
    ADD COLUMN raw_hash      text GENERATED ALWAYS AS (md5(raw::text)) STORED,
    ADD COLUMN first_seen_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN changed_at    timestamptz,
    ADD COLUMN gone_at       timestamptz;
COMMENT ON COLUMN erp_sync.erp_customers.pulled_at IS 'last time the row was written (inserted or changed)';
COMMENT ON COLUMN erp_sync.erp_customers.raw_hash IS 'md5 of the raw row: a pull rewrites a row only when this changes';
COMMENT ON COLUMN erp_sync.erp_customers.changed_at IS 'last pull that found the row changed (NULL: never changed since first seen)';
COMMENT ON COLUMN erp_sync.erp_customers.gone_at IS 'a complete pull did not list the row (deleted in the ERP, or moved out of the pulled source)';
CREATE INDEX erp_customers_mobile_idx ON erp_sync.erp_customers (mobile) WHERE gone_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('erp_sync.erp_customers', '');

-- ---- reconciliation ----
CREATE TABLE erp_sync.reconcile_runs (
    id          bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    trigger     text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    worker      text,
    counts      jsonb NOT NULL DEFAULT '{}'::jsonb
);
COMMENT ON TABLE erp_sync.reconcile_runs IS 'one row per reconciliation (platform links/contacts vs pulled ERP customers); counts by item kind';

CREATE TABLE erp_sync.reconcile_items (
    id             bigserial PRIMARY KEY,
    run_id         bigint NOT NULL REFERENCES erp_sync.reconcile_runs (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('missing_in_erp', 'missing_in_platform',
                                                 'field_mismatch', 'duplicate_mobile')),
    contact_id     text COLLATE "C",
    erp_ord        bigint,
    field          text,
    platform_value text,
    erp_value      text
);
CREATE INDEX reconcile_items_run_idx ON erp_sync.reconcile_items (run_id, kind);
COMMENT ON TABLE erp_sync.reconcile_items IS 'differences found by a reconciliation run (values unmasked; the reconcile_report view masks mobiles)';

SELECT pg_catalog.pg_extension_config_dump('erp_sync.reconcile_runs', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.reconcile_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.reconcile_items', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.reconcile_items_id_seq', '');

-- The items of the latest finished run. Mobiles (field mobile, duplicate_mobile items) are shown
-- in full to erp_sync_worker members (and superusers) only; everyone else, erp_sync_reader
-- included, sees them masked. Every other value has the mobiles inside it masked, for everyone.
CREATE VIEW erp_sync.reconcile_report AS
SELECT i.run_id,
       r.started_at AS run_started_at,
       r.finished_at AS run_finished_at,
       r.trigger,
       i.kind,
       i.contact_id,
       i.erp_ord,
       i.field,
       CASE WHEN i.field = 'mobile' AND i.platform_value IS NOT NULL
                 AND NOT pg_catalog.pg_has_role(current_user, 'erp_sync_worker', 'MEMBER')
            THEN erp_sync.mask_mobile(i.platform_value)
            WHEN i.field = 'mobile' THEN i.platform_value
            ELSE erp_sync.mask_text(i.platform_value) END AS platform_value,
       CASE WHEN i.field = 'mobile' AND i.erp_value IS NOT NULL
                 AND NOT pg_catalog.pg_has_role(current_user, 'erp_sync_worker', 'MEMBER')
            THEN erp_sync.mask_mobile(i.erp_value)
            WHEN i.field = 'mobile' THEN i.erp_value
            ELSE erp_sync.mask_text(i.erp_value) END AS erp_value
FROM erp_sync.reconcile_items i
JOIN erp_sync.reconcile_runs r ON r.id = i.run_id
WHERE i.run_id = (SELECT max(id) FROM erp_sync.reconcile_runs WHERE finished_at IS NOT NULL);

-- ERP customers (as last pulled, still listed) that the platform does not know: no customer_link
-- by ord or khid, and no platform contact with that khid. The platform imports them from here.
-- mobile: in full for erp_sync_worker members (and superusers), masked for everyone else; the
-- texts typed into the ERP (name, khid, weixin_acc, address, sales_person) have the mobiles
-- inside them masked, for everyone.
CREATE VIEW erp_sync.erp_only_customers AS
SELECT e.erp_ord,
       erp_sync.mask_text(e.name) AS name,
       erp_sync.mask_text(e.khid) AS khid,
       CASE WHEN e.mobile IS NULL OR pg_catalog.pg_has_role(current_user, 'erp_sync_worker', 'MEMBER')
            THEN e.mobile ELSE erp_sync.mask_mobile(e.mobile) END AS mobile,
       erp_sync.mask_text(e.weixin_acc) AS weixin_acc,
       erp_sync.mask_text(e.address) AS address,
       e.ly,
       e.add_date,
       erp_sync.mask_text(e.sales_person) AS sales_person,
       e.first_seen_at,
       e.pulled_at
FROM erp_sync.erp_customers e
WHERE e.gone_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l WHERE l.erp_ord = e.erp_ord)
  AND NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l WHERE l.khid = e.khid)
  AND NOT EXISTS (SELECT 1 FROM erp_sync.contact_status s WHERE s.khid = e.khid);

-- Enqueue fixes for a finished run: a 'customer' outbox row for every contact that is missing in
-- the ERP or whose ERP fields differ (the link's payload hash is cleared so the engine does not
-- skip it as unchanged). Coalesces with a pending customer row of the same contact. Returns how
-- many contacts were (re)queued.
CREATE FUNCTION erp_sync.reconcile_fix(run_id bigint) RETURNS int
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run record;
    queued int := 0;
    n int;
    c text;
BEGIN
    SELECT r.id, r.finished_at INTO run FROM erp_sync.reconcile_runs r WHERE r.id = reconcile_fix.run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'erp_sync: reconcile run % does not exist', reconcile_fix.run_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'see erp_sync.reconcile_runs for run ids';
    END IF;
    IF run.finished_at IS NULL THEN
        RAISE EXCEPTION 'erp_sync: reconcile run % has not finished', reconcile_fix.run_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'wait for the run to finish (finished_at set)';
    END IF;
    FOR c IN
        SELECT DISTINCT i.contact_id
        FROM erp_sync.reconcile_items i
        WHERE i.run_id = reconcile_fix.run_id
          AND i.kind IN ('missing_in_erp', 'field_mismatch')
          AND i.contact_id IS NOT NULL
        ORDER BY 1
    LOOP
        UPDATE erp_sync.customer_link SET last_payload_hash = NULL WHERE contact_id = c;
        INSERT INTO erp_sync.outbox (contact_id, kind) VALUES (c, 'customer')
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n = 0 THEN
            -- a pending customer row exists already: it reads the current state when it runs
            n := 1;
        END IF;
        queued := queued + n;
    END LOOP;
    IF queued > 0 THEN
        PERFORM pg_notify(erp_sync.setting('notify.channel'), '');
    END IF;
    RETURN queued;
END
$$;

-- ---- privileges ----
-- Operators (the extension owner, or roles it grants) run reconcile_fix().
REVOKE EXECUTE ON FUNCTION erp_sync.reconcile_fix(bigint) FROM PUBLIC;

-- erp_sync_worker (the sidecar): writes pulls and runs; never deletes.
GRANT SELECT, INSERT, UPDATE ON erp_sync.reconcile_runs TO erp_sync_worker;
GRANT SELECT, INSERT ON erp_sync.reconcile_items TO erp_sync_worker;
GRANT USAGE ON SEQUENCE erp_sync.reconcile_runs_id_seq, erp_sync.reconcile_items_id_seq TO erp_sync_worker;
GRANT SELECT ON erp_sync.reconcile_report, erp_sync.erp_only_customers TO erp_sync_worker;

-- erp_sync_reader (monitoring): the views (mobiles masked) and the run summaries.
GRANT SELECT ON erp_sync.reconcile_report, erp_sync.erp_only_customers TO erp_sync_reader;
GRANT SELECT ON erp_sync.reconcile_runs TO erp_sync_reader;
