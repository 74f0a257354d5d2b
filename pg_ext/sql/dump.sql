-- erp_sync and pg_dump / pg_restore (since 0.2.0). Runs after every file that creates a table
-- and before roles.sql. The same DDL is the last section of erp_sync--0.1.0--0.2.0.sql.
--
-- pg_dump writes an extension as one CREATE EXTENSION: its objects and rows are not dumped, except
-- the rows of tables marked with pg_extension_config_dump (and the value of marked sequences).
-- pg_restore runs CREATE EXTENSION (which creates the tables and seed rows again) and then COPYs
-- the marked tables' rows in, with every trigger of the extension in place. What each table is:
--
--   table                       dumped   why
--   settings                    all      operator configuration
--   tracked_tables              all      which platform table is which entity; its arrival
--                                        rebuilds contact_status (below)
--   followup_templates          all      operator configuration; seeds replaced on restore (below)
--   followup_templates_deleted  all      the default templates the operator deleted (below)
--   sales_reps                  all      operator configuration + assignment fairness state
--   outbox (+ outbox_id_seq)    all      pending work, history; ids continue after the restore
--   rejections, customer_link   all      admission verdicts; platform contact <-> ERP customer
--   sync_log (+ sequence)       all      audit trail, rollback() source
--   erp_customers               all      last pull (change detection)
--   reconcile_runs/_items (+ sequences), schedule_runs, alert_state
--                               all      reports, once-per-period claims, what the webhook was told
--   workers                     no       heartbeats of running sidecars: a restored row would be a
--                                        sidecar that is not running; each sidecar registers itself
--   erp_session                 no       the ERP session token is a credential (a dump file must
--                                        not carry a live login) and stale after a restore; the
--                                        first sidecar on the restored database logs in again
--   capture_log (_0, _1), capture_cursor
--                               no       capture.mode = log only: transaction ids and a snapshot
--                                        of this cluster, meaningless in another; statements
--                                        captured and not expanded when the dump is taken are not
--                                        in it (README "Known limits": let erp_sync.captured
--                                        empty first, or dump in capture.mode = direct)
-- (bootstrap.sql, reconcile.sql and monitoring.sql mark their tables; this file marks the rest.)

-- ---- follow-up templates ----
-- The spec's defaults (select_template: first keyword match by priority; 120 also is the
-- template.default setting). A fresh install seeds followup_templates from here.
CREATE FUNCTION erp_sync.followup_template_defaults()
RETURNS TABLE (template_id int, keywords text[], priority int, label text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    VALUES (106, ARRAY['很好', '发合同', '签约'], 10, '意向强/发合同'),
           (107, ARRAY['无人接听', '未接'],       20, '无人接听'),
           (108, ARRAY['还没考虑', '再等等'],     30, '还没考虑'),
           (109, ARRAY['面谈', '见面'],           40, '约面谈'),
           (120, ARRAY['考虑中', '研究一下'],     50, '正在考虑中')
$$;
COMMENT ON FUNCTION erp_sync.followup_template_defaults() IS
    'erp_sync: the default follow-up templates a fresh install starts with';

-- Default templates the operator deleted (maintained by the triggers below; do not edit). A
-- restore's CREATE EXTENSION seeds every default again: this table's rows, restored, delete them.
CREATE TABLE erp_sync.followup_templates_deleted (
    template_id int PRIMARY KEY,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE erp_sync.followup_templates_deleted IS
    'erp_sync: default follow-up templates deleted by the operator (kept across pg_dump/pg_restore); maintained by triggers';

-- A row inserted with the id of a default template that is still as installed replaces it
-- (instead of a unique violation): this is how a restore's COPY puts an edited default back over
-- the seed that CREATE EXTENSION has just inserted. An edited row is never replaced.
CREATE FUNCTION erp_sync.followup_templates_replace_default() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM erp_sync.followup_templates t
    USING erp_sync.followup_template_defaults() d
    WHERE t.template_id = NEW.template_id
      AND d.template_id = t.template_id
      AND (t.keywords, t.priority, t.label) IS NOT DISTINCT FROM (d.keywords, d.priority, d.label);
    RETURN NEW;
END
$$;

-- followup_templates_deleted holds exactly the default ids that followup_templates lacks.
CREATE FUNCTION erp_sync.followup_templates_note_deleted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO erp_sync.followup_templates_deleted (template_id)
        SELECT d.template_id FROM erp_sync.followup_template_defaults() d
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO erp_sync.followup_templates_deleted (template_id)
        SELECT d.template_id FROM erp_sync.followup_template_defaults() d
        WHERE d.template_id = OLD.template_id
          AND NOT EXISTS (SELECT 1 FROM erp_sync.followup_templates t WHERE t.template_id = OLD.template_id)
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        DELETE FROM erp_sync.followup_templates_deleted WHERE template_id = NEW.template_id;
    END IF;
    RETURN NULL;
END
$$;

-- A row arriving in followup_templates_deleted (a restore's COPY) deletes that default.
CREATE FUNCTION erp_sync.followup_templates_apply_deleted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM erp_sync.followup_template_defaults() d WHERE d.template_id = NEW.template_id) THEN
        RAISE EXCEPTION 'erp_sync: template % is not a default template', NEW.template_id
            USING ERRCODE = 'check_violation',
                  HINT = 'delete the row from erp_sync.followup_templates instead';
    END IF;
    DELETE FROM erp_sync.followup_templates t
    USING erp_sync.followup_template_defaults() d
    WHERE t.template_id = NEW.template_id
      AND d.template_id = t.template_id
      AND (t.keywords, t.priority, t.label) IS NOT DISTINCT FROM (d.keywords, d.priority, d.label);
    IF EXISTS (SELECT 1 FROM erp_sync.followup_templates t WHERE t.template_id = NEW.template_id) THEN
        RAISE EXCEPTION 'erp_sync: template % exists (edited), it cannot be marked deleted', NEW.template_id
            USING ERRCODE = 'check_violation',
                  HINT = 'delete the row from erp_sync.followup_templates instead';
    END IF;
    RETURN NULL;
END
$$;

INSERT INTO erp_sync.followup_templates (template_id, keywords, priority, label)
SELECT d.template_id, d.keywords, d.priority, d.label FROM erp_sync.followup_template_defaults() d;

CREATE TRIGGER erp_sync_replace_default BEFORE INSERT ON erp_sync.followup_templates
    FOR EACH ROW EXECUTE FUNCTION erp_sync.followup_templates_replace_default();
CREATE TRIGGER erp_sync_note_deleted AFTER INSERT OR UPDATE OF template_id OR DELETE
    ON erp_sync.followup_templates FOR EACH ROW EXECUTE FUNCTION erp_sync.followup_templates_note_deleted();
CREATE TRIGGER erp_sync_note_truncated AFTER TRUNCATE ON erp_sync.followup_templates
    FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.followup_templates_note_deleted();
CREATE TRIGGER erp_sync_apply_deleted AFTER INSERT ON erp_sync.followup_templates_deleted
    FOR EACH ROW EXECUTE FUNCTION erp_sync.followup_templates_apply_deleted();

SELECT pg_catalog.pg_extension_config_dump('erp_sync.followup_templates', '');
SELECT pg_catalog.pg_extension_config_dump('erp_sync.followup_templates_deleted', '');

-- ---- contact_status ----
-- The view is a member of the extension, so pg_dump does not write it: a restore's CREATE
-- EXTENSION builds it over no table. A change of the contact row of tracked_tables rebuilds it,
-- whoever makes it: track() / untrack() (which also rebuild it themselves, for a 0.1.0 catalog
-- on this library), and the restore's COPY of tracked_tables (the platform tables exist by then).
CREATE FUNCTION erp_sync.tracked_tables_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' OR NEW.entity = 'contact' OR OLD.entity = 'contact' THEN
        PERFORM erp_sync.rebuild_contact_status();
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER erp_sync_rebuild_contact_status AFTER INSERT OR UPDATE OR DELETE
    ON erp_sync.tracked_tables FOR EACH ROW EXECUTE FUNCTION erp_sync.tracked_tables_changed();
CREATE TRIGGER erp_sync_rebuild_contact_status_truncate AFTER TRUNCATE
    ON erp_sync.tracked_tables FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.tracked_tables_changed();

-- Trigger functions: nobody attaches them elsewhere (EXECUTE is checked at CREATE TRIGGER only).
REVOKE EXECUTE ON FUNCTION erp_sync.followup_templates_replace_default() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.followup_templates_note_deleted() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.followup_templates_apply_deleted() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.tracked_tables_changed() FROM PUBLIC;
