-- erp_sync status views (ordinary SQL, readable by erp_sync_reader) and config-change triggers.

-- contact_status: one row per contact of the tracked contact table.
--
-- The contact table is only known after erp_sync.track(..., 'contact'), so this view is
-- (re)built by erp_sync.rebuild_contact_status(), which track()/untrack() call. Before a contact
-- table is tracked it lists the contacts the extension knows of (outbox, rejections, links).
-- The columns never change, so grants survive a rebuild (CREATE OR REPLACE VIEW); a column
-- added in a later version goes last (name, since 0.2.0: the mapped name column, masked like
-- every free text, for the operator page's search).
--
-- mobile: the normalised phone for members of erp_sync_worker (and superusers); everyone else,
-- erp_sync_reader included, sees it masked (138****1234).
-- admission_reasons and last_error are masked for everyone (erp_sync.mask_jsonb / mask_text:
-- a mobile in any notation inside them shows as 138****1234).
-- admission_passed / admission_reasons: the verdict of the last capture (rejections table).
-- sync_state: rejected > in_doubt (a follow-up perhaps sent, waiting for a person:
-- erp_sync.resolve_in_doubt) > pending (an unfinished outbox row, or a change captured and not
-- expanded yet: capture.mode = log; a rejected contact with one is pending re-evaluation) > failed (latest row dead) >
-- skipped (latest row skipped) > synced (customer_link.synced_at set, or latest row done) >
-- not_queued (never captured, e.g. rows that existed before track()).
-- last_error: the in-doubt row's text; for a pending contact while every live sidecar (heartbeat
-- within notify.idle_fresh) has its ERP login refused, "waiting for a working ERP login: …";
-- else the latest row's error.
CREATE FUNCTION erp_sync.rebuild_contact_status() RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    src text;
BEGIN
    SELECT format('%I.%I', n.nspname, c.relname) AS qual, tt.columns INTO t
    FROM erp_sync.tracked_tables tt
    JOIN pg_class c ON c.oid = tt.relid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE tt.entity = 'contact';
    IF FOUND THEN
        src := format('SELECT (c.%I)::text COLLATE "C" AS contact_id, %s AS phone, %s AS name FROM %s c',
                      t.columns->>'id',
                      CASE WHEN t.columns ? 'phone' THEN format('(c.%I)::text', t.columns->>'phone')
                           ELSE 'NULL::text' END,
                      -- through the whole row: no dependency on the column, which may be dropped
                      CASE WHEN t.columns ? 'name' THEN format('(pg_catalog.to_jsonb(c) ->> %L)', t.columns->>'name')
                           ELSE 'NULL::text' END,
                      t.qual);
    ELSE
        src := 'SELECT u.contact_id, NULL::text AS phone, NULL::text AS name FROM ('
            || 'SELECT contact_id FROM erp_sync.outbox UNION SELECT contact_id FROM erp_sync.rejections '
            || 'UNION SELECT contact_id FROM erp_sync.customer_link) u';
    END IF;
    EXECUTE format($view$
        CREATE OR REPLACE VIEW erp_sync.contact_status AS
        SELECT s.contact_id,
               coalesce(l.khid, erp_sync.khid(s.contact_id)) AS khid,
               CASE WHEN s.phone IS NULL THEN NULL
                    WHEN pg_catalog.pg_has_role(current_user, 'erp_sync_worker', 'MEMBER')
                        THEN coalesce(erp_sync.normalize_mobile(s.phone), s.phone)
                    ELSE erp_sync.mask_mobile(s.phone) END AS mobile,
               r.contact_id IS NULL AS admission_passed,
               erp_sync.mask_jsonb(coalesce(r.reasons, '[]'::jsonb)) AS admission_reasons,
               CASE WHEN r.contact_id IS NOT NULL AND cap.captured IS NULL THEN 'rejected'
                    WHEN doubt.error IS NOT NULL THEN 'in_doubt'
                    WHEN act.active OR cap.captured THEN 'pending'
                    WHEN lo.status = 'dead' THEN 'failed'
                    WHEN lo.status = 'skipped' THEN 'skipped'
                    WHEN l.synced_at IS NOT NULL OR lo.status = 'done' THEN 'synced'
                    ELSE 'not_queued' END AS sync_state,
               l.erp_ord,
               erp_sync.mask_text(coalesce(doubt.error, login.error, lo.last_error)) AS last_error,
               l.synced_at AS last_synced_at,
               erp_sync.mask_text(s.name) AS name
        FROM (%s) s
        LEFT JOIN erp_sync.rejections r ON r.contact_id = s.contact_id
        LEFT JOIN erp_sync.customer_link l ON l.contact_id = s.contact_id
        LEFT JOIN LATERAL (
            SELECT o.status, o.last_error FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id ORDER BY o.id DESC LIMIT 1) lo ON true
        LEFT JOIN LATERAL (
            SELECT true AS active FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id AND o.status IN ('pending', 'running') LIMIT 1) act ON true
        LEFT JOIN (SELECT DISTINCT c.contact_id, true AS captured FROM erp_sync.captured c) cap
            ON cap.contact_id = s.contact_id
        LEFT JOIN LATERAL (
            SELECT o.last_error AS error FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id AND o.status = 'in_doubt' ORDER BY o.id LIMIT 1) doubt ON true
        LEFT JOIN (
            SELECT 'waiting for a working ERP login: the ERP refuses it since '
                   || to_char(g.since, 'YYYY-MM-DD HH24:MI:SS TZ') || ': ' || g.error AS error
            FROM erp_sync.erp_login_state g
            WHERE g.all_refused) login ON act.active
        $view$, src);
    RETURN CASE WHEN t.qual IS NULL THEN 'erp_sync.contact_status: no contact table tracked'
                ELSE 'erp_sync.contact_status: over ' || t.qual END;
END
$$;

-- queue: outbox counts by kind and status; age of the oldest pending row. Changes captured and
-- not expanded yet (capture.mode = log) count as pending, one per contact key; `captured` says
-- how many of the pending rows they are.
CREATE VIEW erp_sync.queue AS
SELECT q.kind,
       q.status,
       sum(q.rows)::bigint AS rows,
       min(q.oldest) AS oldest_created_at,
       CASE WHEN q.status = 'pending' THEN now() - min(q.oldest) END AS oldest_pending_age,
       sum(q.captured)::bigint AS captured
FROM (SELECT o.kind, o.status, count(*) AS rows, min(o.created_at) AS oldest, 0::bigint AS captured
      FROM erp_sync.outbox o
      GROUP BY o.kind, o.status
      UNION ALL
      SELECT c.kind, 'pending', count(*), min(c.captured_at), count(*)
      FROM erp_sync.captured c
      GROUP BY c.kind) q
GROUP BY q.kind, q.status;

-- Every known setting: its documented default, the operator's value, and what is in effect.
CREATE VIEW erp_sync.settings_effective AS
SELECT d.key, d.default_value, s.value AS value, coalesce(s.value, d.default_value) AS effective,
       d.description
FROM erp_sync.setting_defaults() d
LEFT JOIN erp_sync.settings s ON s.key = d.key
UNION ALL
SELECT s.key, NULL, s.value, s.value, s.description
FROM erp_sync.settings s
WHERE NOT EXISTS (SELECT 1 FROM erp_sync.setting_defaults() d WHERE d.key = s.key);

-- The ERP login as the live sidecars (heartbeat within notify.idle_fresh) report it, one row:
-- live sidecars; refused = those whose login the ERP refuses, since when, the first refusal's
-- text and who; all_refused = every live sidecar is refused (then nothing can be sent). Read by
-- the alert erp_login_failed (any refused) and by contact_status (all refused, rows waiting).
CREATE VIEW erp_sync.erp_login_state AS
SELECT count(*) AS live,
       count(*) FILTER (WHERE w.erp_login_error IS NOT NULL) AS refused,
       min(w.erp_login_failed_since) FILTER (WHERE w.erp_login_error IS NOT NULL) AS since,
       (array_agg(w.erp_login_error ORDER BY w.erp_login_failed_since, w.worker_id)
            FILTER (WHERE w.erp_login_error IS NOT NULL))[1] AS error,
       string_agg(w.worker_id, ', ' ORDER BY w.worker_id)
            FILTER (WHERE w.erp_login_error IS NOT NULL) AS workers,
       count(*) > 0 AND bool_and(w.erp_login_error IS NOT NULL) AS all_refused
FROM erp_sync.workers w
WHERE w.heartbeat_at >= now() - (SELECT e.effective::interval FROM erp_sync.settings_effective e
                                 WHERE e.key = 'notify.idle_fresh');
GRANT SELECT ON erp_sync.erp_login_state TO erp_sync_worker, erp_sync_reader;

-- contact_status reads erp_login_state (over settings_effective): built once both exist.
SELECT erp_sync.rebuild_contact_status();

-- The capture trigger keeps these tables in a per-backend snapshot; a change drops it here at once
-- and, through a relcache invalidation, in every other backend when it commits.
CREATE TRIGGER erp_sync_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON erp_sync.settings FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.config_changed();
CREATE TRIGGER erp_sync_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON erp_sync.followup_templates FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.config_changed();
CREATE TRIGGER erp_sync_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON erp_sync.tracked_tables FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.config_changed();
