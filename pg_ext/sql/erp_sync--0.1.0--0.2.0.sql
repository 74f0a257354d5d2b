-- erp_sync 0.1.0 → 0.2.0 (ALTER EXTENSION erp_sync UPDATE TO '0.2.0').
-- 0.2.0 adds erp_sync.erp_session (sql/erp_session.sql, the same DDL) and follow-ups in doubt
-- (outbox.send_started_at, status in_doubt, erp_sync.resolve_in_doubt, the in_doubt_followups
-- alert, contact_status sync_state in_doubt). The new outbox status is allowed by the Rust
-- function behind outbox_row_check (same symbol, new library).
\echo Use "ALTER EXTENSION erp_sync UPDATE TO '0.2.0'" to load this file. \quit

-- The ERP session shared by every sidecar of this database (since 0.2.0).
--
-- A Zhibang server keeps one online session per user (its UniqueLogin table): a second login ends
-- the first. Sidecars with one ERP account therefore share one session: each takes the session
-- stored here, and logs in only under a transaction-scoped advisory lock of the account, after
-- reading this table again (sidecar/src/engine/erp_session.rs). The token is a credential: only
-- erp_sync_worker (and superusers) may read it; it is not dumped as configuration (a restored
-- session would be stale anyway).
CREATE TABLE erp_sync.erp_session (
    account     text PRIMARY KEY,                  -- "<erp user>@<erp base url>"
    token       text NOT NULL,
    generation  bigint NOT NULL DEFAULT 1,         -- +1 at every stored login
    obtained_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE erp_sync.erp_session IS
    'erp_sync: the ERP session shared by the sidecars (one login at a time across the fleet); erp_sync_worker only';
REVOKE ALL ON erp_sync.erp_session FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON erp_sync.erp_session TO erp_sync_worker;

-- Follow-ups in doubt (bootstrap.sql, monitoring.sql, views.sql, ops.sql, roles.sql).
ALTER TABLE erp_sync.outbox ADD COLUMN send_started_at timestamptz;
CREATE INDEX outbox_in_doubt_idx ON erp_sync.outbox (contact_id, id) WHERE status = 'in_doubt';

CREATE OR REPLACE FUNCTION erp_sync.rebuild_contact_status() RETURNS text
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
        src := format('SELECT (c.%I)::bigint AS contact_id, %s AS phone FROM %s c',
                      t.columns->>'id',
                      CASE WHEN t.columns ? 'phone' THEN format('(c.%I)::text', t.columns->>'phone')
                           ELSE 'NULL::text' END,
                      t.qual);
    ELSE
        src := 'SELECT u.contact_id, NULL::text AS phone FROM ('
            || 'SELECT contact_id FROM erp_sync.outbox UNION SELECT contact_id FROM erp_sync.rejections '
            || 'UNION SELECT contact_id FROM erp_sync.customer_link) u';
    END IF;
    EXECUTE format($view$
        CREATE OR REPLACE VIEW erp_sync.contact_status AS
        SELECT s.contact_id,
               erp_sync.khid(s.contact_id) AS khid,
               CASE WHEN s.phone IS NULL THEN NULL
                    WHEN pg_catalog.pg_has_role(current_user, 'erp_sync_worker', 'MEMBER')
                        THEN coalesce(erp_sync.normalize_mobile(s.phone), s.phone)
                    ELSE erp_sync.mask_mobile(s.phone) END AS mobile,
               r.contact_id IS NULL AS admission_passed,
               coalesce(r.reasons, '[]'::jsonb) AS admission_reasons,
               CASE WHEN r.contact_id IS NOT NULL THEN 'rejected'
                    WHEN doubt.error IS NOT NULL THEN 'in_doubt'
                    WHEN act.active THEN 'pending'
                    WHEN lo.status = 'dead' THEN 'failed'
                    WHEN lo.status = 'skipped' THEN 'skipped'
                    WHEN l.synced_at IS NOT NULL OR lo.status = 'done' THEN 'synced'
                    ELSE 'not_queued' END AS sync_state,
               l.erp_ord,
               coalesce(doubt.error, lo.last_error) AS last_error,
               l.synced_at AS last_synced_at
        FROM (%s) s
        LEFT JOIN erp_sync.rejections r ON r.contact_id = s.contact_id
        LEFT JOIN erp_sync.customer_link l ON l.contact_id = s.contact_id
        LEFT JOIN LATERAL (
            SELECT o.status, o.last_error FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id ORDER BY o.id DESC LIMIT 1) lo ON true
        LEFT JOIN LATERAL (
            SELECT true AS active FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id AND o.status IN ('pending', 'running') LIMIT 1) act ON true
        LEFT JOIN LATERAL (
            SELECT o.last_error AS error FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id AND o.status = 'in_doubt' ORDER BY o.id LIMIT 1) doubt ON true
        $view$, src);
    RETURN CASE WHEN t.qual IS NULL THEN 'erp_sync.contact_status: no contact table tracked'
                ELSE 'erp_sync.contact_status: over ' || t.qual END;
END
$$;
SELECT erp_sync.rebuild_contact_status();

CREATE OR REPLACE VIEW erp_sync.alerts AS
WITH cfg AS (
    SELECT max(effective) FILTER (WHERE key = 'alerts.window')::interval            AS win,
           max(effective) FILTER (WHERE key = 'alerts.window')                      AS win_text,
           max(effective) FILTER (WHERE key = 'alerts.min_success_rate')::numeric   AS min_rate,
           max(effective) FILTER (WHERE key = 'alerts.max_failures')::bigint        AS max_failures,
           max(effective) FILTER (WHERE key = 'alerts.no_success_after')::interval  AS quiet,
           max(effective) FILTER (WHERE key = 'alerts.max_dead')::bigint            AS max_dead,
           max(effective) FILTER (WHERE key = 'alerts.stuck_after')::interval       AS stuck
    FROM erp_sync.settings_effective
    WHERE key LIKE 'alerts.%'
), s AS (
    SELECT st.* FROM cfg, LATERAL erp_sync.stats(cfg.win) st
), dead AS (
    SELECT count(*) AS n FROM erp_sync.outbox WHERE status = 'dead'
), doubt AS (
    SELECT count(*) AS n FROM erp_sync.outbox WHERE status = 'in_doubt'
), oldest AS (
    SELECT (SELECT o.created_at FROM erp_sync.outbox o
            WHERE o.status IN ('pending', 'running') ORDER BY o.id LIMIT 1) AS at
), quiet AS (
    SELECT NOT EXISTS (SELECT 1 FROM erp_sync.sync_log l
                       WHERE l.outcome = 'success' AND l.created_at >= now() - cfg.quiet) AS no_success,
           EXISTS (SELECT 1 FROM erp_sync.outbox o WHERE o.status IN ('pending', 'running'))
             OR EXISTS (SELECT 1 FROM erp_sync.outbox o WHERE o.status = 'dead')
             OR EXISTS (SELECT 1 FROM erp_sync.sync_log) AS has_work
    FROM cfg
)
SELECT 'low_success_rate'::text AS code, 'critical'::text AS level,
       format('同步成功率过低: %s%%', to_char(s.success_rate, 'FM990.0')) AS message,
       format('sync success rate too low: %s%% in the last %s', to_char(s.success_rate, 'FM990.0'), cfg.win_text) AS message_en,
       s.success_rate AS value, cfg.min_rate AS threshold, 'percent'::text AS unit
FROM s, cfg
WHERE s.success_rate < cfg.min_rate
UNION ALL
SELECT 'too_many_failures', 'warning',
       format('同步失败数量过多: %s', s.failed),
       format('too many failed syncs: %s in the last %s', s.failed, cfg.win_text),
       s.failed::numeric, cfg.max_failures::numeric, 'count'
FROM s, cfg
WHERE s.failed > cfg.max_failures
UNION ALL
SELECT 'no_recent_success', 'info',
       format('已 %s 小时未同步', floor(extract(epoch FROM now() - ls.at) / 3600)::bigint),
       CASE WHEN ls.at IS NULL THEN format('no successful sync yet (none in the last %s)', cfg.quiet)
            ELSE format('no successful sync for %s hours', round(extract(epoch FROM now() - ls.at) / 3600, 1)) END,
       round(extract(epoch FROM now() - ls.at) / 3600, 2), round(extract(epoch FROM cfg.quiet) / 3600, 2), 'hours'
FROM cfg, quiet,
     LATERAL (SELECT max(l.created_at) AS at FROM erp_sync.sync_log l WHERE l.outcome = 'success') ls
WHERE quiet.no_success AND quiet.has_work
UNION ALL
SELECT 'dead_rows', 'warning',
       format('死信任务: %s 条同步任务已放弃 (erp_sync.retry_failed() 可重试)', dead.n),
       format('%s outbox rows are dead (erp_sync.retry_failed() retries them)', dead.n),
       dead.n::numeric, cfg.max_dead::numeric, 'count'
FROM dead, cfg
WHERE dead.n > cfg.max_dead
UNION ALL
SELECT 'stuck_queue', 'critical',
       format('同步队列阻塞: 最早的待同步任务已等待 %s 分钟', floor(extract(epoch FROM now() - oldest.at) / 60)::bigint),
       format('sync queue stuck: the oldest pending row has waited %s minutes', floor(extract(epoch FROM now() - oldest.at) / 60)::bigint),
       round(extract(epoch FROM now() - oldest.at) / 60, 1), round(extract(epoch FROM cfg.stuck) / 60, 1), 'minutes'
FROM oldest, cfg
WHERE oldest.at < now() - cfg.stuck
UNION ALL
SELECT 'in_doubt_followups', 'warning',
       format('跟进记录待确认: %s 条跟进记录可能已写入ERP，请在ERP中核对后调用 erp_sync.resolve_in_doubt(outbox_id, 是否已发送)', doubt.n),
       format('%s follow-ups were perhaps sent (the sidecar stopped or lost the reply mid-send): check the ERP, then erp_sync.resolve_in_doubt(outbox_id, sent)', doubt.n),
       doubt.n::numeric, 0::numeric, 'count'
FROM doubt
WHERE doubt.n > 0;

-- A follow-up in doubt (since 0.2.0): the sidecar had begun sending it (outbox.send_started_at)
-- when it died, hung past its lease, or lost the ERP's reply, so it may or may not be in the ERP.
-- With engine.in_doubt_followups = "hold" (the default) such a row waits, status in_doubt, for a
-- person who checked the ERP: sent = true ends it done, false queues it again (pending, due now,
-- attempts 0). Each decision is written to sync_log with the operator (current_user).
CREATE FUNCTION erp_sync.resolve_in_doubt(outbox_id bigint, sent boolean) RETURNS text
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    SELECT o.id, o.contact_id, o.status, o.last_error INTO r
    FROM erp_sync.outbox o WHERE o.id = resolve_in_doubt.outbox_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'erp_sync: outbox row % does not exist', outbox_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT id, contact_id FROM erp_sync.outbox WHERE status = ''in_doubt'' lists the rows in doubt';
    END IF;
    IF r.status <> 'in_doubt' THEN
        RAISE EXCEPTION 'erp_sync: outbox row % is %, not in_doubt', outbox_id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'only rows in status in_doubt wait for this decision';
    END IF;
    UPDATE erp_sync.outbox o
    SET status = CASE WHEN sent THEN 'done' ELSE 'pending' END,
        attempts = CASE WHEN sent THEN o.attempts ELSE 0 END,
        next_attempt_at = now(),
        send_started_at = NULL,
        finished_at = CASE WHEN sent THEN now() END,
        last_error = format('resolved by %s: %s (was: %s)', current_user,
                            CASE WHEN sent THEN 'it is in the ERP' ELSE 'not in the ERP, queued again' END,
                            r.last_error),
        updated_at = now()
    WHERE o.id = r.id;
    INSERT INTO erp_sync.sync_log (outbox_id, contact_id, action, outcome, error)
    VALUES (r.id, r.contact_id, 'followup', CASE WHEN sent THEN 'success' ELSE 'skipped' END,
            format('in doubt, resolved by %s: %s', current_user,
                   CASE WHEN sent THEN 'sent' ELSE 'not sent, queued again' END));
    IF NOT sent THEN
        PERFORM pg_notify(erp_sync.setting('notify.channel'), '');
    END IF;
    RETURN CASE WHEN sent THEN 'done' ELSE 'pending' END;
END
$$;
COMMENT ON FUNCTION erp_sync.resolve_in_doubt(bigint, boolean) IS
    'erp_sync: end a follow-up in doubt after checking the ERP: sent = true → done, false → queued again';

REVOKE EXECUTE ON FUNCTION erp_sync.resolve_in_doubt(bigint, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erp_sync.resolve_in_doubt(bigint, boolean) TO erp_sync_worker;

-- ==== issue 13 fix 5: masking of everything a reader sees (begin) ============================
-- One masking rule (erp_sync_rules::mask, shared with the sidecar): a mobile in any notation
-- (+86 139-0000-0779, 0086 13900000779, full-width digits, next to CJK text, ...) shows as
-- 139****0779. mask_mobile keeps its symbol (new rule, same signature); mask_text and mask_jsonb
-- are new. Every free text a non-worker role can read is masked: contact_status.last_error and
-- admission_reasons, recent_failures.error, reconcile_report values, erp_only_customers texts,
-- and, on write, alert_state.message and schedule_runs.summary (the reader reads those tables).
-- Same text as views.sql / monitoring.sql / reconcile.sql and the generated schema.
CREATE FUNCTION erp_sync."mask_text"(
	"value" TEXT /* & str */
) RETURNS TEXT /* String */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'mask_text_wrapper';

CREATE FUNCTION erp_sync."mask_jsonb"(
	"value" jsonb /* JsonB */
) RETURNS jsonb /* JsonB */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'mask_jsonb_wrapper';

CREATE OR REPLACE FUNCTION erp_sync.rebuild_contact_status() RETURNS text
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
        src := format('SELECT (c.%I)::bigint AS contact_id, %s AS phone FROM %s c',
                      t.columns->>'id',
                      CASE WHEN t.columns ? 'phone' THEN format('(c.%I)::text', t.columns->>'phone')
                           ELSE 'NULL::text' END,
                      t.qual);
    ELSE
        src := 'SELECT u.contact_id, NULL::text AS phone FROM ('
            || 'SELECT contact_id FROM erp_sync.outbox UNION SELECT contact_id FROM erp_sync.rejections '
            || 'UNION SELECT contact_id FROM erp_sync.customer_link) u';
    END IF;
    EXECUTE format($view$
        CREATE OR REPLACE VIEW erp_sync.contact_status AS
        SELECT s.contact_id,
               erp_sync.khid(s.contact_id) AS khid,
               CASE WHEN s.phone IS NULL THEN NULL
                    WHEN pg_catalog.pg_has_role(current_user, 'erp_sync_worker', 'MEMBER')
                        THEN coalesce(erp_sync.normalize_mobile(s.phone), s.phone)
                    ELSE erp_sync.mask_mobile(s.phone) END AS mobile,
               r.contact_id IS NULL AS admission_passed,
               erp_sync.mask_jsonb(coalesce(r.reasons, '[]'::jsonb)) AS admission_reasons,
               CASE WHEN r.contact_id IS NOT NULL THEN 'rejected'
                    WHEN doubt.error IS NOT NULL THEN 'in_doubt'
                    WHEN act.active THEN 'pending'
                    WHEN lo.status = 'dead' THEN 'failed'
                    WHEN lo.status = 'skipped' THEN 'skipped'
                    WHEN l.synced_at IS NOT NULL OR lo.status = 'done' THEN 'synced'
                    ELSE 'not_queued' END AS sync_state,
               l.erp_ord,
               erp_sync.mask_text(coalesce(doubt.error, lo.last_error)) AS last_error,
               l.synced_at AS last_synced_at
        FROM (%s) s
        LEFT JOIN erp_sync.rejections r ON r.contact_id = s.contact_id
        LEFT JOIN erp_sync.customer_link l ON l.contact_id = s.contact_id
        LEFT JOIN LATERAL (
            SELECT o.status, o.last_error FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id ORDER BY o.id DESC LIMIT 1) lo ON true
        LEFT JOIN LATERAL (
            SELECT true AS active FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id AND o.status IN ('pending', 'running') LIMIT 1) act ON true
        LEFT JOIN LATERAL (
            SELECT o.last_error AS error FROM erp_sync.outbox o
            WHERE o.contact_id = s.contact_id AND o.status = 'in_doubt' ORDER BY o.id LIMIT 1) doubt ON true
        $view$, src);
    RETURN CASE WHEN t.qual IS NULL THEN 'erp_sync.contact_status: no contact table tracked'
                ELSE 'erp_sync.contact_status: over ' || t.qual END;
END
$$;

SELECT erp_sync.rebuild_contact_status();

CREATE OR REPLACE VIEW erp_sync.recent_failures AS
SELECT l.id, l.created_at, l.contact_id, l.action, l.erp_ord, l.outbox_id,
       erp_sync.mask_text(coalesce(l.error, '')) AS error,
       l.worker
FROM erp_sync.sync_log l
WHERE l.outcome = 'failed'
ORDER BY l.id DESC
LIMIT 50;

CREATE OR REPLACE VIEW erp_sync.reconcile_report AS
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

CREATE OR REPLACE VIEW erp_sync.erp_only_customers AS
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

CREATE FUNCTION erp_sync.alert_state_mask() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.message := erp_sync.mask_text(NEW.message);
    RETURN NEW;
END
$$;
CREATE TRIGGER erp_sync_mask BEFORE INSERT OR UPDATE OF message ON erp_sync.alert_state
    FOR EACH ROW EXECUTE FUNCTION erp_sync.alert_state_mask();

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

-- rows written before the upgrade go through the new triggers once
UPDATE erp_sync.alert_state SET message = message;
UPDATE erp_sync.schedule_runs SET summary = summary WHERE summary IS NOT NULL;
-- ==== issue 13 fix 5: masking of everything a reader sees (end) ==============================
