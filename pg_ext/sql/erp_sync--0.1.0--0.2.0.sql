-- erp_sync 0.1.0 → 0.2.0 (ALTER EXTENSION erp_sync UPDATE TO '0.2.0').
-- 0.2.0 adds erp_sync.erp_session (sql/erp_session.sql, the same DDL) and follow-ups in doubt
-- (outbox.send_started_at, status in_doubt, erp_sync.resolve_in_doubt, the in_doubt_followups
-- alert, contact_status sync_state in_doubt) and signals for people (alert erp_login_failed,
-- workers.erp_login_*, sync_log outcome retry). The new outbox status is allowed by the Rust
-- function behind outbox_row_check (same symbol, new library).
\echo Use "ALTER EXTENSION erp_sync UPDATE TO '0.2.0'" to load this file. \quit

-- The ERP session shared by every sidecar of this database (since 0.2.0).
--
-- A Zhibang server keeps one online session per user (its UniqueLogin table): a second login ends
-- the first. Sidecars with one ERP account therefore share one session: each takes the session
-- stored here, and logs in only under a transaction-scoped advisory lock of the account, after
-- reading this table again (sidecar/src/db/erp_session.rs). The token is a credential: only
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

-- Signals for people (see the section at the end): the ERP login state of each sidecar, and the
-- sync_log outcome retry.
ALTER TABLE erp_sync.workers
    ADD COLUMN erp_login_error text,
    ADD COLUMN erp_login_failed_since timestamptz;
ALTER TABLE erp_sync.sync_log DROP CONSTRAINT sync_log_outcome_check;
ALTER TABLE erp_sync.sync_log ADD CONSTRAINT sync_log_outcome_check
    CHECK (outcome IN ('success', 'failed', 'skipped', 'dry_run', 'rolled_back', 'retry'));

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
               coalesce(doubt.error, login.error, lo.last_error) AS last_error,
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
        LEFT JOIN (
            SELECT 'waiting for a working ERP login: the ERP refuses it since '
                   || to_char(min(w.erp_login_failed_since), 'YYYY-MM-DD HH24:MI:SS TZ') || ': '
                   || (array_agg(w.erp_login_error ORDER BY w.erp_login_failed_since, w.worker_id))[1] AS error
            FROM erp_sync.workers w
            WHERE w.heartbeat_at >= now() - (SELECT e.effective::interval FROM erp_sync.settings_effective e
                                             WHERE e.key = 'notify.idle_fresh')
            HAVING count(*) > 0 AND bool_and(w.erp_login_error IS NOT NULL)) login ON act.active
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
           max(effective) FILTER (WHERE key = 'alerts.stuck_after')::interval       AS stuck,
           max(effective) FILTER (WHERE key = 'notify.idle_fresh')::interval        AS fresh
    FROM erp_sync.settings_effective
    WHERE key LIKE 'alerts.%' OR key = 'notify.idle_fresh'
), s AS (
    SELECT st.* FROM cfg, LATERAL erp_sync.stats(cfg.win) st
), dead AS (
    SELECT count(*) AS n FROM erp_sync.outbox WHERE status = 'dead'
), doubt AS (
    SELECT count(*) AS n FROM erp_sync.outbox WHERE status = 'in_doubt'
), login AS (
    SELECT count(*) AS n, min(w.erp_login_failed_since) AS since,
           (array_agg(w.erp_login_error ORDER BY w.erp_login_failed_since, w.worker_id))[1] AS error,
           string_agg(w.worker_id, ', ' ORDER BY w.worker_id) AS workers
    FROM erp_sync.workers w, cfg
    WHERE w.erp_login_error IS NOT NULL AND w.heartbeat_at >= now() - cfg.fresh
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
WHERE doubt.n > 0
UNION ALL
SELECT 'erp_login_failed', 'critical',
       format('ERP登录失败: %s 个同步进程无法登录ERP (ERP返回: %s), 自 %s 起; 待同步任务 %s 条在等待; 请检查 erp.username / erp.password',
              login.n, login.error, to_char(login.since, 'YYYY-MM-DD HH24:MI:SS TZ'), pend.n),
       format('the ERP refuses the login of %s sidecar(s) (%s) since %s: "%s"; %s outbox rows wait; check erp.username / erp.password',
              login.n, login.workers, to_char(login.since, 'YYYY-MM-DD HH24:MI:SS TZ'), login.error, pend.n),
       login.n::numeric, 0::numeric, 'count'
FROM login,
     LATERAL (SELECT count(*) AS n FROM erp_sync.outbox o WHERE o.status IN ('pending', 'running')) pend
WHERE login.n > 0;

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

-- ---------------------------------------------------------------------------------------------
-- Signals for people (since 0.2.0): a refused ERP login shows in SQL (workers.erp_login_error,
-- alert erp_login_failed above, contact_status above), and a failed attempt that is retried is
-- logged as outcome retry: stats() and the success-rate alerts count a sync once, when it ends.
-- (The new columns and the outcome are added at the top: contact_status and alerts use them.)
CREATE OR REPLACE FUNCTION erp_sync.stats(since interval DEFAULT '1 hour')
RETURNS TABLE (total bigint, success bigint, failed bigint, success_rate numeric)
    LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FILTER (WHERE l.outcome NOT IN ('dry_run', 'retry')),
           count(*) FILTER (WHERE l.outcome IN ('success', 'rolled_back')),
           count(*) FILTER (WHERE l.outcome = 'failed'),
           CASE WHEN count(*) FILTER (WHERE l.outcome IN ('success', 'rolled_back', 'failed')) = 0 THEN NULL
                ELSE round(100.0 * count(*) FILTER (WHERE l.outcome IN ('success', 'rolled_back'))
                           / count(*) FILTER (WHERE l.outcome IN ('success', 'rolled_back', 'failed')), 1)
           END
    FROM erp_sync.sync_log l
    WHERE l.created_at >= now() - since
$$;
CREATE OR REPLACE FUNCTION erp_sync.stats_hourly(since interval DEFAULT '24 hours')
RETURNS TABLE (hour timestamptz, total bigint, success bigint, failed bigint, success_rate numeric)
    LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.hour,
           count(l.id) FILTER (WHERE l.outcome NOT IN ('dry_run', 'retry')),
           count(l.id) FILTER (WHERE l.outcome IN ('success', 'rolled_back')),
           count(l.id) FILTER (WHERE l.outcome = 'failed'),
           CASE WHEN count(l.id) FILTER (WHERE l.outcome IN ('success', 'rolled_back', 'failed')) = 0 THEN NULL
                ELSE round(100.0 * count(l.id) FILTER (WHERE l.outcome IN ('success', 'rolled_back'))
                           / count(l.id) FILTER (WHERE l.outcome IN ('success', 'rolled_back', 'failed')), 1)
           END
    FROM generate_series(date_trunc('hour', now() - since) + CASE WHEN date_trunc('hour', now() - since) < now() - since
                                                                  THEN interval '1 hour' ELSE interval '0' END,
                         date_trunc('hour', now()), interval '1 hour') AS h(hour)
    LEFT JOIN erp_sync.sync_log l
           ON l.created_at >= h.hour AND l.created_at < h.hour + interval '1 hour'
          AND l.created_at >= now() - since
    GROUP BY h.hour
    ORDER BY h.hour
$$;
CREATE OR REPLACE VIEW erp_sync.recent_failures AS
SELECT l.id, l.created_at, l.contact_id, l.action, l.erp_ord, l.outbox_id,
       regexp_replace(coalesce(l.error, ''), '(1[3-9][0-9])[0-9]{4}([0-9]{4})', '\1****\2', 'g') AS error,
       l.worker, l.outcome
FROM erp_sync.sync_log l
WHERE l.outcome IN ('failed', 'retry')
ORDER BY l.id DESC
LIMIT 50;

-- ==== pg_dump / pg_restore keep the configuration (sql/dump.sql, the same DDL; the defaults
-- are not seeded again: the table has them, or the operator's changes) ====
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

-- The defaults a 0.1.0 install has deleted already.
INSERT INTO erp_sync.followup_templates_deleted (template_id)
SELECT d.template_id FROM erp_sync.followup_template_defaults() d
WHERE NOT EXISTS (SELECT 1 FROM erp_sync.followup_templates t WHERE t.template_id = d.template_id);

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
-- ==== end of pg_dump / pg_restore ====

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
               erp_sync.mask_text(coalesce(doubt.error, login.error, lo.last_error)) AS last_error,
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
        LEFT JOIN (
            SELECT 'waiting for a working ERP login: the ERP refuses it since '
                   || to_char(min(w.erp_login_failed_since), 'YYYY-MM-DD HH24:MI:SS TZ') || ': '
                   || (array_agg(w.erp_login_error ORDER BY w.erp_login_failed_since, w.worker_id))[1] AS error
            FROM erp_sync.workers w
            WHERE w.heartbeat_at >= now() - (SELECT e.effective::interval FROM erp_sync.settings_effective e
                                             WHERE e.key = 'notify.idle_fresh')
            HAVING count(*) > 0 AND bool_and(w.erp_login_error IS NOT NULL)) login ON act.active
        $view$, src);
    RETURN CASE WHEN t.qual IS NULL THEN 'erp_sync.contact_status: no contact table tracked'
                ELSE 'erp_sync.contact_status: over ' || t.qual END;
END
$$;

SELECT erp_sync.rebuild_contact_status();

CREATE OR REPLACE VIEW erp_sync.recent_failures AS
SELECT l.id, l.created_at, l.contact_id, l.action, l.erp_ord, l.outbox_id,
       erp_sync.mask_text(coalesce(l.error, '')) AS error,
       l.worker, l.outcome
FROM erp_sync.sync_log l
WHERE l.outcome IN ('failed', 'retry')
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
