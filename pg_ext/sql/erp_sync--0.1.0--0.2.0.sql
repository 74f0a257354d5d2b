-- erp_sync 0.1.0 → 0.2.0 (ALTER EXTENSION erp_sync UPDATE TO '0.2.0').
-- 0.2.0 adds erp_sync.erp_session (sql/erp_session.sql, the same DDL) and follow-ups in doubt
-- (outbox.send_started_at, status in_doubt, erp_sync.resolve_in_doubt, the in_doubt_followups
-- alert, contact_status sync_state in_doubt) and signals for people (alert erp_login_failed,
-- workers.erp_login_*, sync_log outcome retry) and text contact keys (uuid and text ids; the
-- first section). The new outbox status is allowed by the Rust function behind outbox_row_check
-- (same symbol, new library).
\echo Use "ALTER EXTENSION erp_sync UPDATE TO '0.2.0'" to load this file. \quit

-- ==== issue 15: contact keys are text (begin) ===============================================
-- The platform's key of a contact may be a bigint, an integer, a uuid or a text id: the outbox,
-- rejections, customer_link, sync_log and reconcile_items carry it as text (a bigint 42 as '42',
-- which is what the capture trigger of this library writes). Pending rows keep their id and
-- order (per-contact order is by outbox id, never by the key). The views over these columns are
-- dropped here and created again, with their grants, by the sections below (their final
-- definitions); the functions taking a key are dropped and created with a text key.
DROP VIEW erp_sync.erp_only_customers;   -- reads contact_status
DROP VIEW erp_sync.contact_status;
DROP VIEW erp_sync.recent_failures;
DROP VIEW erp_sync.reconcile_report;
DROP FUNCTION erp_sync.contact_payload(bigint);
DROP FUNCTION erp_sync.request_sync(bigint);
DROP FUNCTION erp_sync.retry_failed(bigint, text);
DROP FUNCTION erp_sync.khid(bigint);

-- Keys are compared bytewise (COLLATE "C"); outbox_contact_active_idx is gone: the history
-- index has the same key and serves every plan (bootstrap.sql).
DROP INDEX erp_sync.outbox_contact_active_idx;
ALTER TABLE erp_sync.outbox ALTER COLUMN contact_id TYPE text COLLATE "C" USING contact_id::text;
ALTER TABLE erp_sync.rejections ALTER COLUMN contact_id TYPE text COLLATE "C" USING contact_id::text;
ALTER TABLE erp_sync.customer_link ALTER COLUMN contact_id TYPE text COLLATE "C" USING contact_id::text;
ALTER TABLE erp_sync.sync_log ALTER COLUMN contact_id TYPE text COLLATE "C" USING contact_id::text;
ALTER TABLE erp_sync.reconcile_items ALTER COLUMN contact_id TYPE text COLLATE "C" USING contact_id::text;

-- The generated schema's text (src/rules/sql.rs, src/capture/payload.rs, src/capture/track.rs).
-- The 0.1.0 symbols (khid_wrapper, contact_payload_wrapper, request_sync_wrapper) stay in the
-- library for databases not updated yet.
CREATE FUNCTION erp_sync."khid"(
	"contact_id" TEXT /* & str */
) RETURNS TEXT /* Option < String > */
STRICT STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'khid_text_wrapper';

CREATE FUNCTION erp_sync."contact_payload"(
	"contact_id" TEXT /* & str */
) RETURNS jsonb /* Option < JsonB > */
STRICT STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'contact_payload_text_wrapper';

CREATE FUNCTION erp_sync."request_sync"(
	"contact_id" TEXT /* & str */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'request_sync_text_wrapper';

-- ops.sql
-- Dead rows back to pending (attempts 0, due now), optionally for one contact and/or kind.
-- A dead customer/assign row is left dead when a pending row of the same contact and kind
-- exists already (that one will carry the current state). Wakes the sidecar. Returns the count.
CREATE FUNCTION erp_sync.retry_failed(contact_id text DEFAULT NULL, kind text DEFAULT NULL) RETURNS int
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    revived int := 0;
    n int;
BEGIN
    IF kind IS NOT NULL AND kind NOT IN ('customer', 'followup', 'assign', 'rollback') THEN
        RAISE EXCEPTION 'erp_sync: unknown outbox kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'kind must be one of: customer, followup, assign, rollback (or NULL for all)';
    END IF;
    FOR r IN
        SELECT o.id, o.contact_id, o.kind
        FROM erp_sync.outbox o
        WHERE o.status = 'dead'
          AND (retry_failed.contact_id IS NULL OR o.contact_id = retry_failed.contact_id)
          AND (retry_failed.kind IS NULL OR o.kind = retry_failed.kind)
        ORDER BY o.id DESC  -- newest first: it wins the coalescing slot
    LOOP
        UPDATE erp_sync.outbox o
        SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_owner = NULL,
            lease_expires_at = NULL, finished_at = NULL, updated_at = now()
        WHERE o.id = r.id
          AND NOT (r.kind IN ('customer', 'assign') AND EXISTS (
                SELECT 1 FROM erp_sync.outbox p
                WHERE p.contact_id = r.contact_id AND p.kind = r.kind AND p.status = 'pending'));
        GET DIAGNOSTICS n = ROW_COUNT;
        revived := revived + n;
    END LOOP;
    IF revived > 0 THEN
        PERFORM pg_notify(erp_sync.setting('notify.channel'), '');
    END IF;
    RETURN revived;
END
$$;

-- reconcile.sql
-- Enqueue fixes for a finished run: a 'customer' outbox row for every contact that is missing in
-- the ERP or whose ERP fields differ (the link's payload hash is cleared so the engine does not
-- skip it as unchanged). Coalesces with a pending customer row of the same contact. Returns how
-- many contacts were (re)queued.
CREATE OR REPLACE FUNCTION erp_sync.reconcile_fix(run_id bigint) RETURNS int
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

-- roles.sql
REVOKE EXECUTE ON FUNCTION erp_sync.contact_payload(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.request_sync(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.retry_failed(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erp_sync.contact_payload(text), erp_sync.retry_failed(text, text) TO erp_sync_worker;
-- ==== issue 15: contact keys are text (end; the views follow in the masking section) ==========

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

-- contact_status (sync_state in_doubt, the login wait, masked texts) is rebuilt once, in the
-- masking section below, after erp_sync.mask_text exists.

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
), login AS (
    SELECT g.refused AS n, g.since, g.error, g.workers FROM erp_sync.erp_login_state g
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
-- alert erp_login_failed above, contact_status in the masking section), and a failed attempt that is retried is
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
-- recent_failures (with its outcome column) is replaced once, in the masking section below.

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

-- ==== capture log (sql/capture_log.sql, src/capture/log.rs): before contact_status and queue read it ====
CREATE FUNCTION erp_sync."expand"(
	"max_statements" INT /* i32 */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path TO pg_catalog, pg_temp
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'expand_wrapper';
REVOKE EXECUTE ON FUNCTION erp_sync.expand(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erp_sync.expand(int) TO erp_sync_worker;
-- erp_sync capture log (since 0.2.0; used with the setting capture.mode = 'log', see
-- src/capture/log.rs): the capture trigger writes one narrow row per statement and kind of work,
-- erp_sync.expand() (called by erp_sync.claim()) turns committed rows into outbox rows.
--
-- Rows go to capture_log_0 or capture_log_1 by their transaction id (capture.log_rotate_xids ids
-- per turn); reading capture_log reads both. A table whose rows are all expanded and that no
-- writer holds is truncated by expand(): append-only, no DELETE, no dead rows. The only index is
-- the one expansion reads by (txid).
CREATE TABLE erp_sync.capture_log (
    txid      xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    source    oid NOT NULL,                 -- the captured table (regclass)
    op        "char" NOT NULL,              -- c: resync, a: resync + assign, f: follow-up
    keys      text[] NOT NULL,              -- contact keys
    refs      bigint[],                     -- a: thread ids, f: signal ids (per key)
    templates int[],                        -- f: follow-up templates (per key)
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE erp_sync.capture_log_0 () INHERITS (erp_sync.capture_log);
CREATE TABLE erp_sync.capture_log_1 () INHERITS (erp_sync.capture_log);
CREATE INDEX capture_log_0_txid_idx ON erp_sync.capture_log_0 (txid);
CREATE INDEX capture_log_1_txid_idx ON erp_sync.capture_log_1 (txid);
COMMENT ON TABLE erp_sync.capture_log IS 'captured statements waiting for expansion into the outbox (capture.mode = log)';

-- The snapshot of the last expansion: a log row is expanded once its transaction is visible in
-- it. One row; expand() locks it SKIP LOCKED (one expansion at a time across sidecars).
CREATE TABLE erp_sync.capture_cursor (
    id          int PRIMARY KEY CHECK (id = 1),
    last        pg_snapshot NOT NULL,
    expanded_at timestamptz
);
INSERT INTO erp_sync.capture_cursor (id, last) VALUES (1, pg_catalog.pg_current_snapshot());

-- What is captured and not expanded yet, one row per key (the queue view and contact_status
-- count it as pending).
CREATE VIEW erp_sync.captured AS
SELECT k.key AS contact_id,
       CASE l.op WHEN 'f' THEN 'followup' ELSE 'customer' END AS kind,
       l.at AS captured_at
FROM erp_sync.capture_log l
CROSS JOIN erp_sync.capture_cursor c
CROSS JOIN LATERAL unnest(l.keys) AS k(key)
WHERE l.txid >= pg_catalog.pg_snapshot_xmin(c.last)
  AND NOT pg_catalog.pg_visible_in_snapshot(l.txid, c.last);

-- queue: outbox counts by kind and status; age of the oldest pending row. Changes captured and
-- not expanded yet (capture.mode = log) count as pending, one per contact key; `captured` says
-- how many of the pending rows they are.
CREATE OR REPLACE VIEW erp_sync.queue AS
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

-- ==== end of the capture log ====

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

SELECT erp_sync.rebuild_contact_status();
GRANT SELECT ON erp_sync.contact_status TO erp_sync_worker, erp_sync_reader;  -- dropped above (issue 15)

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
-- the views were dropped above (issue 15): their grants again
GRANT SELECT ON erp_sync.recent_failures, erp_sync.reconcile_report, erp_sync.erp_only_customers
    TO erp_sync_worker, erp_sync_reader;

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

-- ==== the outbox protocol as the extension's SQL API (sql/outbox.sql, the same DDL) ====
-- erp_sync outbox protocol: every state transition of an outbox row after the capture trigger
-- wrote it, in one place. The sidecar calls these functions and holds no state-transition SQL of
-- its own (sidecar/src/db/mod.rs); operators' transitions (retry_failed, resolve_in_doubt) are in
-- ops.sql, retention in monitoring.sql. The row rules every transition keeps are
-- outbox_row_check (ops.sql).
--
--   pending ──claim──▶ running ──ack──▶ done | skipped | dead | in_doubt
--      ▲                  │  └─retry─▶ pending (attempt counted unless not the row's fault) | dead
--      └──────release─────┘     (a lease that expires: the next claim takes the row again)
--
-- Functions run as the caller (erp_sync_worker has the table privileges); EXECUTE is granted
-- to erp_sync_worker only. Parameters are referenced as $n: their names are documentation.

-- Claim work for one worker: up to $3 contact "heads" plus, per head, the contiguous run of due
-- rows of the same contact behind it (at most $4 rows per contact), all leased to $1 for $2 ms.
-- Each head comes with its row context (the columns of row_context.sql).
--
-- A row is a head when it is due (pending and next_attempt_at reached, or running with an expired
-- lease, except the rows this worker still has in hand ($5: e.g. a write-back waiting for the
-- database to come back, whose lease the heartbeat could not extend meanwhile) and no lower-id row
-- of the same contact is pending, running or in_doubt (a follow-up in doubt holds its contact's
-- later rows until a person resolves it: per-contact order). Heads are locked with
-- SKIP LOCKED, so concurrent workers never wait on each other and never take the same row; rows of
-- a chain are never heads for anyone else (their head is lower and pending/running); they are
-- locked SKIP LOCKED too, for the platform's edits (below). The chain stops at the first row of
-- the contact that is not due (e.g. waiting for a retry) or not free, which keeps per-contact order.
--
-- Plans must not depend on statistics: a queue table's are nearly always stale (a burst of
-- inserts after an ANALYZE that saw none pending, or 1,000,000 finished rows and a few thousand
-- new ones). So (with the planner settings of `db::claim`) the only scan over many rows is the
-- walk of `outbox_claim_idx` in id order that stops after $3 heads; every per-contact probe is a
-- LATERAL or correlated lookup by contact id. In those probes the status test is written
-- `lower(status) IN (...)` on purpose: it cannot use the partial indexes on
-- `status IN ('pending', 'running')`, which stale statistics make look empty (so the planner would
-- scan all of them once per head), and goes through `outbox_contact_history_idx` (contact_id, id)
-- instead, reading only the contact's own rows.
--
-- Returns the claimed rows, with status 'dead' / 'in_doubt' for heads the claim ended (the caller
-- logs them and does not process them); heads carry their row context (as row_context.sql).
-- The planner settings make the walk of outbox_claim_idx in id order the only plan (statistics
-- of a queue table are nearly always stale: with them the planner reads every unfinished row
-- through a bitmap scan and sorts it, 45 ms per claim at 16,000 pending rows instead of 1-4 ms).
CREATE FUNCTION erp_sync.claim(worker text, lease_ms bigint, heads bigint, chain_max bigint,
                               in_hand bigint[], max_attempts int, hold_in_doubt boolean)
RETURNS TABLE (id bigint, contact_id text, kind text, ref_id bigint, template_id int,
               attempts int, head boolean, payload jsonb, signal jsonb, linked boolean,
               khid text, erp_ord bigint, customer_type text, person_synced boolean,
               assigned_tier text, assigned_to text, last_payload_hash text, status text,
               last_error text)
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    SET enable_bitmapscan = off
    SET enable_seqscan = off
AS $claim$
#variable_conflict use_column
BEGIN
    -- capture.mode = log: first the committed capture log rows become outbox rows (a no-op when
    -- the log is empty or another sidecar is expanding right now)
    PERFORM erp_sync.expand(1000);
    RETURN QUERY
    WITH heads AS (
        -- What the claim makes of a head (see the UPDATE below), computed on the row version it locks.
        SELECT o.id, o.contact_id,
               CASE WHEN $7 AND o.kind = 'followup' AND o.send_started_at IS NOT NULL THEN 'in_doubt'
                    WHEN o.attempts >= $6 THEN 'dead'
                    ELSE 'running' END AS status
        FROM erp_sync.outbox o
        WHERE o.status IN ('pending', 'running')
          AND ((o.status = 'pending' AND o.next_attempt_at <= now())
            OR (o.status = 'running' AND coalesce(o.lease_expires_at, '-infinity') < now()
                AND NOT (o.id = ANY($5::bigint[]))))
          AND NOT EXISTS (
              SELECT 1
              FROM erp_sync.outbox p
              WHERE p.contact_id = o.contact_id
                AND p.id < o.id
                AND pg_catalog.lower(p.status) IN ('pending', 'running', 'in_doubt'))
        ORDER BY o.id
        LIMIT $3
        FOR UPDATE OF o SKIP LOCKED
    ),
    behind AS (
        SELECT b.id, h.contact_id, b.all_due, b.rn
        FROM heads h
        CROSS JOIN LATERAL (
            SELECT c.id,
                   bool_and((c.status = 'pending' AND c.next_attempt_at <= now())
                         OR (c.status = 'running' AND coalesce(c.lease_expires_at, '-infinity') < now()
                             AND NOT (c.id = ANY($5::bigint[]))))
                       OVER (ORDER BY c.id) AS all_due,
                   row_number() OVER (ORDER BY c.id) AS rn
            FROM erp_sync.outbox c
            WHERE c.contact_id = h.contact_id
              AND c.id > h.id
              AND pg_catalog.lower(c.status) IN ('pending', 'running')
            ORDER BY c.id
            LIMIT $4
        ) b
    ),
    -- Rows of a chain are locked like heads, SKIP LOCKED. A row that an uncommitted platform edit
    -- holds (it coalesced onto it and locked it, see pg_ext/src/capture/direct.rs) ends its chain
    -- there: it is claimed, and the contact read, only after that edit commits — and the claim never
    -- waits for a platform transaction.
    chain_free AS (
        SELECT c.id
        FROM erp_sync.outbox c
        WHERE c.id IN (SELECT id FROM behind WHERE all_due AND rn < $4)
        FOR UPDATE OF c SKIP LOCKED
    ),
    chain AS (
        SELECT b.id
        FROM behind b
        WHERE b.all_due AND b.rn < $4
          AND NOT EXISTS (
              SELECT 1
              FROM behind x
              WHERE x.contact_id = b.contact_id
                AND x.rn <= b.rn
                AND NOT EXISTS (SELECT 1 FROM chain_free f WHERE f.id = x.id))
    ),
    picked AS (
        SELECT id, contact_id, true AS head, status FROM heads
        UNION ALL
        SELECT id, NULL::text, false, 'running' FROM chain
    ),
    -- A claim as the contact's head is an attempt: counted here, not when the row fails, because a
    -- row whose processing kills or hangs the worker never reports a failure. (A chain row is
    -- counted when it fails, or when it is claimed as a head after a crash.) A head claimed $6
    -- (engine.max_attempts) times without a result ends dead here instead: the last of those
    -- attempts ended by an expired lease. With $7 (engine.in_doubt_followups = "hold"), a follow-up
    -- head whose send had begun (send_started_at, set just before the ERP call) and has no result is
    -- in_doubt: perhaps in the ERP already, it waits for a person (erp_sync.resolve_in_doubt).
    claimed AS (
    UPDATE erp_sync.outbox o
    SET status = picked.status,
        attempts = CASE WHEN picked.head AND picked.status = 'running' THEN o.attempts + 1 ELSE o.attempts END,
        lease_owner = CASE WHEN picked.status = 'running' THEN $1 END,
        lease_expires_at = CASE WHEN picked.status = 'running'
                                THEN now() + $2::bigint * interval '1 millisecond' END,
        last_error = CASE picked.status
                         WHEN 'in_doubt' THEN
                             'in doubt: its send to the ERP began at ' || o.send_started_at
                             || ' and no result was recorded (the worker died or hung while sending it), so it may be in '
                             || 'the ERP already; check the ERP, then SELECT erp_sync.resolve_in_doubt(' || o.id || ', sent)'
                             || coalesce('; last error: ' || o.last_error, '')
                         WHEN 'dead' THEN
                             'no attempts left: ' || o.attempts || ' of ' || $6::int || ' attempts ended without a result '
                             || '(the last by an expired lease: the worker died or hung while processing this row)'
                             || coalesce('; last error: ' || o.last_error, '')
                         ELSE o.last_error END,
        finished_at = CASE WHEN picked.status = 'dead' THEN now() ELSE o.finished_at END,
        send_started_at = CASE WHEN picked.status = 'in_doubt' THEN o.send_started_at END,
        updated_at = now()
    FROM picked
    LEFT JOIN erp_sync.customer_link l ON l.contact_id = picked.contact_id
    WHERE o.id = picked.id
      -- Re-checked on the current row version if a concurrent transaction changed it meanwhile.
      AND ((pg_catalog.lower(o.status) = 'pending' AND o.next_attempt_at <= now())
        OR (pg_catalog.lower(o.status) = 'running' AND coalesce(o.lease_expires_at, '-infinity') < now()
            AND NOT (o.id = ANY($5::bigint[]))))
    RETURNING o.id, o.contact_id, o.kind, o.ref_id, o.template_id, o.attempts,
              -- the head's row context (see row_context.sql), saving its handler a round trip: a head
              -- has no lower unfinished row of its contact (not blocked), and nothing but this
              -- worker's handling of the chain changes its link until the chain is done
              picked.head,
              CASE WHEN picked.head AND o.kind IN ('customer', 'assign')
                   THEN erp_sync.contact_payload(o.contact_id) END,
              CASE WHEN picked.head AND o.kind = 'followup' AND o.ref_id IS NOT NULL
                   THEN erp_sync.signal_payload(o.ref_id) END,
              l.contact_id IS NOT NULL,
              l.khid, l.erp_ord, l.customer_type, coalesce(l.person_synced, false), l.assigned_tier,
              l.assigned_to, l.last_payload_hash,
              o.status, o.last_error
    ),
    -- A row that dies here failed as a sync: audited like any other failure (the success-rate
    -- alerts count it), in the same statement. The action is the one `worker::action_of_kind` gives
    -- a row that fails before any ERP call.
    died AS (
        INSERT INTO erp_sync.sync_log (outbox_id, contact_id, action, outcome, error, worker)
        SELECT c.id, c.contact_id,
               CASE c.kind WHEN 'followup' THEN 'followup' WHEN 'assign' THEN 'assign'
                           WHEN 'rollback' THEN 'restore' ELSE 'create' END,
               'failed', c.last_error, $1
        FROM claimed c
        WHERE c.status = 'dead'
    )
    SELECT * FROM claimed;
END
$claim$;
COMMENT ON FUNCTION erp_sync.claim(text, bigint, bigint, bigint, bigint[], int, boolean) IS
    'erp_sync outbox: claim up to heads contacts (their due chains) for worker, leased for lease_ms';

-- The acknowledgement of one processed row, with its effects, in the caller's transaction.
--   $1 outbox id, $2 worker,
--   $3 final status ('done' | 'skipped' | 'dead' | 'in_doubt'), or NULL to keep the row running (a
--      retry: the caller then calls erp_sync.retry in the same transaction), $4 reason / last error,
--   $5 link change: 'upsert' | 'assign' | 'unlink' | NULL,
--   upsert: $6 khid, $7 erp_ord, $8 customer_type, $9 person_synced, $10 payload hash;
--   assign: $11 tier, $12 assigned_to; unlink: $13 contact key, $7 erp_ord,
--   $14 sync_log id now rolled back (or NULL), $15 jsonb array of sync_log entries
--      ({action, erp_ord, request, response, outcome, error, duration_ms, old_data}), in order.
-- Nothing is written unless the row is still leased to $2 and running: then NULL (lease lost).
-- Returns the row's status. Only the statements a call needs run (each has its cached plan).
CREATE FUNCTION erp_sync.ack(outbox_id bigint, worker text, status text, reason text,
                             link_change text, khid text, erp_ord bigint, customer_type text,
                             person_synced boolean, payload_hash text, assigned_tier text,
                             assigned_to text, unlink_contact text, rolled_back_log bigint,
                             logs jsonb)
RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $ack$
#variable_conflict use_column
DECLARE
    c text;
    st text;
BEGIN
    UPDATE erp_sync.outbox o
    SET status = coalesce($3, o.status),
        last_error = CASE WHEN $3 IS NULL THEN o.last_error ELSE $4 END,
        lease_owner = CASE WHEN $3 IS NULL THEN o.lease_owner END,
        lease_expires_at = CASE WHEN $3 IS NULL THEN o.lease_expires_at END,
        finished_at = CASE WHEN $3 IS NULL OR $3 = 'in_doubt' THEN NULL ELSE now() END,
        updated_at = now()
    WHERE o.id = $1 AND o.lease_owner = $2 AND o.status = 'running'
    RETURNING o.contact_id, o.status INTO c, st;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF $5 = 'upsert' THEN
        INSERT INTO erp_sync.customer_link AS cl
            (contact_id, khid, erp_ord, customer_type, person_synced, last_payload_hash, synced_at)
        VALUES (c, $6, $7, $8, $9, $10, now())
        ON CONFLICT (contact_id) DO UPDATE
        SET khid = EXCLUDED.khid,
            erp_ord = EXCLUDED.erp_ord,
            customer_type = EXCLUDED.customer_type,
            person_synced = EXCLUDED.person_synced,
            last_payload_hash = coalesce(EXCLUDED.last_payload_hash, cl.last_payload_hash),
            synced_at = now();
        -- A customer with no assignment yet gets an `assign` row (its thread may have arrived
        -- while the contact was still rejected, so the trigger queued none).
        INSERT INTO erp_sync.outbox (contact_id, kind)
        SELECT c, 'assign'
        WHERE NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l
                          WHERE l.contact_id = c AND l.assigned_tier IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM erp_sync.outbox p  -- by contact id: see claim on lower()
                          WHERE p.contact_id = c AND p.kind = 'assign'
                            AND pg_catalog.lower(p.status) IN ('pending', 'running'))
        ON CONFLICT DO NOTHING;
    ELSIF $5 = 'assign' THEN
        UPDATE erp_sync.customer_link l
        SET assigned_tier = $11, assigned_to = $12, synced_at = now()
        WHERE l.contact_id = c;
    ELSIF $5 = 'unlink' THEN
        -- After a create was rolled back (the ERP customer deleted): the contact has no ERP
        -- customer any more. The row stays (the sidecar role may not delete); a later customer
        -- row recreates the link.
        UPDATE erp_sync.customer_link l
        SET erp_ord = NULL, person_synced = false, assigned_tier = NULL, assigned_to = NULL,
            last_payload_hash = NULL, synced_at = now()
        WHERE l.contact_id = $13 AND l.erp_ord = $7;
    END IF;
    IF $14 IS NOT NULL THEN
        UPDATE erp_sync.sync_log s
        SET rolled_back_at = now(), outcome = 'rolled_back'
        WHERE s.id = $14;
    END IF;
    IF $15 IS NOT NULL AND jsonb_array_length($15) > 0 THEN
        INSERT INTO erp_sync.sync_log
            (outbox_id, contact_id, action, erp_ord, request, response, outcome, error,
             duration_ms, old_data, worker)
        SELECT $1, c, x.e->>'action', (x.e->>'erp_ord')::bigint,
               nullif(x.e->'request', 'null'), nullif(x.e->'response', 'null'), x.e->>'outcome',
               x.e->>'error', (x.e->>'duration_ms')::int, nullif(x.e->'old_data', 'null'), $2
        FROM jsonb_array_elements($15) WITH ORDINALITY AS x(e, n)
        ORDER BY x.n;
    END IF;
    RETURN st;
END
$ack$;
COMMENT ON FUNCTION erp_sync.ack(bigint, text, text, text, text, text, bigint, text, boolean, text, text, text, text, bigint, jsonb) IS
    'erp_sync outbox: acknowledge a processed row (final status or NULL before a retry) with its link change and sync_log entries';

-- A retryable failure of row $1 (leased to $2; call after erp_sync.ack with status NULL, in the
-- same transaction): back to pending after $3 ms, or dead once its attempts reach $5.
-- $6 = whether it counts as an attempt (a session expiry, a refused login or a database outage
-- does not); $7 = whether the claim already counted it (the row was its contact's head): then a
-- failure that does not count gives that attempt back. A pending twin of a customer/assign row
-- (outbox_coalesce_key allows one) takes over instead: it gets the attempt count and backoff and
-- this row ends skipped as coalesced. The sync_log entries of this attempt (written by ack in
-- this transaction) become outcome 'retry' unless the row died: a sync counts as failed once,
-- when it ends. Returns 'pending' or 'dead', NULL when the lease was lost.
CREATE FUNCTION erp_sync.retry(outbox_id bigint, worker text, delay_ms bigint, error text,
                               max_attempts int, counts boolean, counted boolean)
RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $retry$
#variable_conflict use_column
DECLARE
    r record;
    twin bigint;
    after int;
    dies boolean;
BEGIN
    SELECT o.contact_id, o.kind, o.attempts INTO r
    FROM erp_sync.outbox o
    WHERE o.id = $1 AND o.lease_owner = $2 AND o.status = 'running'
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    after := greatest(r.attempts + CASE WHEN $6 AND NOT $7 THEN 1
                                        WHEN NOT $6 AND $7 THEN -1 ELSE 0 END, 0);
    dies := $6 AND after >= $5;
    IF NOT dies THEN
        UPDATE erp_sync.sync_log s SET outcome = 'retry'
        WHERE s.outbox_id = $1 AND s.outcome = 'failed' AND s.created_at = now();
    END IF;
    IF NOT dies AND r.kind IN ('customer', 'assign') THEN
        SELECT p.id INTO twin
        FROM erp_sync.outbox p
        WHERE p.contact_id = r.contact_id AND p.kind = r.kind AND p.status = 'pending' AND p.id <> $1
        LIMIT 1
        FOR UPDATE;
        IF twin IS NOT NULL THEN
            -- the newer row does this work with fresh data: it takes our attempts and backoff
            UPDATE erp_sync.outbox p
            SET attempts = greatest(p.attempts, after),
                next_attempt_at = greatest(p.next_attempt_at, now() + $3 * interval '1 millisecond'),
                last_error = $4,
                updated_at = now()
            WHERE p.id = twin;
            UPDATE erp_sync.outbox o
            SET status = 'skipped',
                last_error = 'coalesced into outbox row #' || twin || ' after: ' || $4,
                lease_owner = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
            WHERE o.id = $1;
            RETURN 'pending';
        END IF;
    END IF;
    UPDATE erp_sync.outbox o
    SET attempts = after,
        status = CASE WHEN dies THEN 'dead' ELSE 'pending' END,
        next_attempt_at = now() + $3 * interval '1 millisecond',
        last_error = $4,
        -- a failure that is retried was certainly not processed (or the operator chose resend)
        send_started_at = NULL,
        lease_owner = NULL,
        lease_expires_at = NULL,
        finished_at = CASE WHEN dies THEN now() END,
        updated_at = now()
    WHERE o.id = $1;
    RETURN CASE WHEN dies THEN 'dead' ELSE 'pending' END;
END
$retry$;
COMMENT ON FUNCTION erp_sync.retry(bigint, text, bigint, text, int, boolean, boolean) IS
    'erp_sync outbox: a retryable failure: pending again after delay_ms, or dead at max_attempts';

-- Give rows back without counting an attempt (shutdown, or the rest of a chain whose earlier row
-- must wait). $2 NULL = every row this worker holds. $3: rows whose attempt the claim counted
-- (heads) and that were never processed: the attempt is given back. (Rows released at start-up or
-- abandoned at the shutdown deadline keep theirs: they may have been mid-processing.)
--
-- The capture trigger keeps at most one PENDING customer/assign row per contact (unique index
-- outbox_coalesce_key). While ours ran, a newer one may have been enqueued, or we may hold two of
-- them: then only one goes back to pending (an existing pending row wins, else our lowest) and the
-- others end 'skipped' as coalesced into it — it reads the contact's current state anyway.
-- Returns how many rows were given back.
CREATE FUNCTION erp_sync.release(worker text, ids bigint[], unprocessed_counted bigint[])
RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $release$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    WITH mine AS (
        SELECT id, contact_id, kind
        FROM erp_sync.outbox
        WHERE lease_owner = $1 AND status = 'running' AND ($2::bigint[] IS NULL OR id = ANY($2))
        FOR UPDATE
    ),
    target AS (
        SELECT m.id,
               CASE WHEN m.kind IN ('customer', 'assign') THEN
                   coalesce(
                       (SELECT p.id FROM erp_sync.outbox p
                        WHERE p.contact_id = m.contact_id AND p.kind = m.kind AND p.status = 'pending'
                        LIMIT 1),
                       (SELECT min(m2.id) FROM mine m2
                        WHERE m2.contact_id = m.contact_id AND m2.kind = m.kind))
               ELSE m.id END AS into_id
        FROM mine m
    )
    UPDATE erp_sync.outbox o
    SET status = CASE WHEN t.into_id = o.id THEN 'pending' ELSE 'skipped' END,
        last_error = CASE WHEN t.into_id = o.id THEN o.last_error
                          ELSE 'coalesced into outbox row #' || t.into_id END,
        finished_at = CASE WHEN t.into_id = o.id THEN NULL ELSE now() END,
        attempts = CASE WHEN o.id = ANY($3::bigint[]) THEN greatest(o.attempts - 1, 0) ELSE o.attempts END,
        lease_owner = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM target t
    WHERE o.id = t.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$release$;
COMMENT ON FUNCTION erp_sync.release(text, bigint[], bigint[]) IS
    'erp_sync outbox: give rows of worker back (ids NULL: all), without counting an attempt';

-- Heartbeat: extend the lease of the rows worker has in hand ($3) by $2 ms. Rows it still owns
-- but no longer handles (a release that failed while the database was down) are left to expire
-- and be claimed again. Returns how many leases were extended.
CREATE FUNCTION erp_sync.extend_leases(worker text, lease_ms bigint, ids bigint[])
RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $extend$
#variable_conflict use_column
DECLARE
    n bigint;
BEGIN
    UPDATE erp_sync.outbox o
    SET lease_expires_at = now() + $2 * interval '1 millisecond'
    WHERE o.lease_owner = $1 AND o.status = 'running' AND o.id = ANY($3);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$extend$;

-- A follow-up's send begins now (call in its own transaction, just before the ERP call): a row
-- found so by a later claim, with no result, was perhaps sent (claim: in_doubt). False when the
-- row is no longer leased to worker.
CREATE FUNCTION erp_sync.mark_send_started(outbox_id bigint, worker text)
RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $mark$
#variable_conflict use_column
BEGIN
    UPDATE erp_sync.outbox o
    SET send_started_at = now(), updated_at = now()
    WHERE o.id = $1 AND o.lease_owner = $2 AND o.status = 'running';
    RETURN FOUND;
END
$mark$;

-- Only the sidecar (erp_sync_worker) moves rows through the protocol.
REVOKE EXECUTE ON FUNCTION erp_sync.claim(text, bigint, bigint, bigint, bigint[], int, boolean),
    erp_sync.ack(bigint, text, text, text, text, text, bigint, text, boolean, text, text, text, text, bigint, jsonb),
    erp_sync.retry(bigint, text, bigint, text, int, boolean, boolean),
    erp_sync.release(text, bigint[], bigint[]),
    erp_sync.extend_leases(text, bigint, bigint[]),
    erp_sync.mark_send_started(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erp_sync.claim(text, bigint, bigint, bigint, bigint[], int, boolean),
    erp_sync.ack(bigint, text, text, text, text, text, bigint, text, boolean, text, text, text, text, bigint, jsonb),
    erp_sync.retry(bigint, text, bigint, text, int, boolean, boolean),
    erp_sync.release(text, bigint[], bigint[]),
    erp_sync.extend_leases(text, bigint, bigint[]),
    erp_sync.mark_send_started(bigint, text) TO erp_sync_worker;
-- ==== end of the outbox protocol ====

-- ==== operator page (since 0.2.0): the audit of its actions, and the grants they need ====

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
-- ==== end of the operator page ====

-- ==== sync triggers (since 0.2.0): tables whose rows ask for a sync of their contact ====
CREATE TABLE erp_sync.sync_triggers (
    relid      regclass PRIMARY KEY,
    columns    jsonb NOT NULL CHECK (jsonb_typeof(columns) = 'object' AND columns ? 'contact_id'),
    tracked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE erp_sync.sync_triggers IS 'tables whose rows ask for a sync of their contact (erp_sync.track(tbl, ''trigger'', ...))';
SELECT pg_catalog.pg_extension_config_dump('erp_sync.sync_triggers', '');
GRANT SELECT ON erp_sync.sync_triggers TO erp_sync_worker, erp_sync_reader;
-- ==== end of the sync triggers ====

-- ==== issue 16 item 4: ERP-only customers brought home (sql/import.sql, the same DDL) ====
-- erp_sync.suppress_capture(tbl, suppress): the capture trigger ignores this backend's writes to
-- tbl until the end of the transaction (capture/quiet.rs); owner only. Same text as the
-- generated schema.
CREATE FUNCTION erp_sync.suppress_capture(tbl regclass, suppress boolean) RETURNS boolean VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'suppress_capture_wrapper';

-- contact_status.khid: the linked ERP customer's khid (customer_link.khid), else
-- erp_sync.khid(contact_id) (customer.khid_format): in rebuild_contact_status() of the masking
-- section above (its one definition in this script).

-- erp_sync.import_erp_customers(max_customers, dry_run): see sql/import.sql.
CREATE FUNCTION erp_sync.import_erp_customers(max_customers int DEFAULT NULL,
                                              dry_run boolean DEFAULT false)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dry constant boolean := coalesce(import_erp_customers.dry_run, false);
    lim constant int := import_erp_customers.max_customers;
    dry_marker constant text := 'erp_sync: dry run, rolled back';
    t record;
    key_col text;
    key_type text;
    phone_col text;
    fmt text;
    pre text;
    suf text;
    e record;
    k text;
    is_key boolean;
    key_exists boolean;
    kind text;
    person text;
    fields jsonb;
    vals jsonb;
    collist text;
    new_key text;
    owner text;
    taken jsonb;
    st text;
    msg text;
    n_candidates int := 0;
    n_imported int := 0;
    n_remaining int := 0;
    imported jsonb := '[]';
    skipped jsonb := '[]';
    failed jsonb := '[]';
BEGIN
    IF lim IS NOT NULL AND lim < 0 THEN
        RAISE EXCEPTION 'erp_sync: max_customers must not be negative (got %)', lim
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass NULL (the default) to import every ERP-only customer';
    END IF;
    SELECT tt.relid, tt.columns, format('%I.%I', n.nspname, c.relname) AS qual INTO t
    FROM erp_sync.tracked_tables tt
    JOIN pg_class c ON c.oid = tt.relid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE tt.entity = 'contact';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'erp_sync: no contact table is tracked, so there is nowhere to import the ERP customers to'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'track the platform''s contact table first: SELECT erp_sync.track(''schema.table'', ''contact'', ''{"phone": "mobile", ...}'')';
    END IF;
    key_col := t.columns->>'id';
    phone_col := t.columns->>'phone';
    SELECT format_type(a.atttypid, a.atttypmod) INTO key_type
    FROM pg_attribute a
    WHERE a.attrelid = t.relid AND a.attname = key_col AND NOT a.attisdropped;
    IF key_type IS NULL THEN
        RAISE EXCEPTION 'erp_sync: the key column "%" of % does not exist any more', key_col, t.qual
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'call erp_sync.track() again with the table''s current column map';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM erp_sync.erp_customers) THEN
        RAISE NOTICE 'erp_sync: no ERP customers have been pulled yet, nothing to import'
            USING HINT = 'run `erp-sync pull` (or wait for the scheduled pull), then call erp_sync.import_erp_customers() again';
        RETURN jsonb_build_object('dry_run', dry, 'contact_table', t.qual, 'pulled', false,
                                  'candidates', 0, 'imported', 0, 'skipped', 0, 'failed', 0,
                                  'remaining', 0, 'contacts', '[]'::jsonb,
                                  'skipped_customers', '[]'::jsonb, 'failures', '[]'::jsonb);
    END IF;
    -- one import at a time: two would both see the same customers as ERP-only
    PERFORM pg_advisory_xact_lock(hashtext('erp_sync.import_erp_customers'));

    -- the khid format's text around {key}, to recognise a khid that is (or would be) a contact's
    fmt := erp_sync.setting('customer.khid_format');
    IF strpos(fmt, '{key}') > 0 THEN
        pre := split_part(fmt, '{key}', 1);
        suf := substr(fmt, length(pre) + length('{key}') + 1);
    END IF;

    -- the platform's mobiles (comparison key: the normalised mobile, else the trimmed text) that
    -- some pulled customer has, and the contact holding each: one scan of the contact table
    taken := '{}';
    IF phone_col IS NOT NULL THEN
        EXECUTE format(
            'SELECT coalesce(jsonb_object_agg(m, k), ''{}'') FROM (
                 SELECT DISTINCT ON (m) m, k FROM (
                     SELECT coalesce(erp_sync.normalize_mobile((c.%1$I)::text),
                                     nullif(btrim((c.%1$I)::text), '''')) AS m,
                            (c.%2$I)::text AS k
                     FROM %3$s c) p
                 WHERE m IN (SELECT coalesce(erp_sync.normalize_mobile(x.mobile), nullif(btrim(x.mobile), ''''))
                             FROM erp_sync.erp_customers x WHERE x.gone_at IS NULL)
                 ORDER BY m, k) q',
            phone_col, key_col, t.qual)
        INTO taken;
    END IF;

    PERFORM erp_sync.suppress_capture(t.relid, true);
    FOR e IN
        SELECT x.erp_ord, x.name, x.khid, x.mobile, x.weixin_acc, x.address, x.raw,
               coalesce(erp_sync.normalize_mobile(x.mobile), nullif(btrim(x.mobile), '')) AS mobile_key
        FROM erp_sync.erp_customers x
        WHERE x.gone_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l WHERE l.erp_ord = x.erp_ord)
          AND NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l WHERE l.khid = x.khid)
        ORDER BY x.erp_ord
    LOOP
        -- a khid of the format's shape: the khid of the contact with that key, if the key column
        -- can hold it as written
        is_key := false;
        key_exists := false;
        IF pre IS NOT NULL AND e.khid IS NOT NULL
           AND length(e.khid) > length(pre) + length(suf)
           AND left(e.khid, length(pre)) = pre AND right(e.khid, length(suf)) = suf THEN
            k := substr(e.khid, length(pre) + 1, length(e.khid) - length(pre) - length(suf));
            BEGIN
                EXECUTE format('SELECT ($1::%1$s)::text = $1, EXISTS (SELECT 1 FROM %2$s c WHERE c.%3$I = $1::%1$s)',
                               key_type, t.qual, key_col)
                INTO is_key, key_exists USING k;
            EXCEPTION WHEN OTHERS THEN
                is_key := false; -- not a value of the key column: no contact can have that khid
                key_exists := false;
            END;
        END IF;
        IF key_exists THEN
            CONTINUE; -- not ERP-only: that contact's next sync updates this customer
        END IF;
        n_candidates := n_candidates + 1;
        IF lim IS NOT NULL AND n_imported >= lim THEN
            n_remaining := n_remaining + 1;
            CONTINUE;
        END IF;

        IF e.khid IS NULL OR e.khid = '' OR btrim(e.khid) <> e.khid OR length(e.khid) > 50 THEN
            skipped := skipped || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                'reason', 'the ERP customer has no usable khid (客户编号): give it one in the ERP and pull again');
            CONTINUE;
        END IF;
        IF is_key THEN
            skipped := skipped || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                'reason', format('khid %s is the khid customer.khid_format gives the key %s, which no contact has yet: '
                                 'a contact created with that key would take this ERP customer; give it another khid in the ERP and pull again',
                                 e.khid, k));
            CONTINUE;
        END IF;
        owner := CASE WHEN e.mobile_key IS NOT NULL THEN taken->>e.mobile_key END;
        IF owner IS NOT NULL THEN
            skipped := skipped || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                'reason', format('mobile already on platform contact %s: not imported (one person, one contact); '
                                 'that contact''s sync reports the ERP customer holding its mobile', owner));
            CONTINUE;
        END IF;

        -- what the ERP tells, in the spec's field names (intsort 1 单位客户 / 2 个人客户)
        kind := CASE WHEN btrim(e.raw->>'intsort') IN ('1', '单位客户', '单位') THEN 'company'
                     WHEN btrim(e.raw->>'intsort') IN ('2', '个人客户', '个人') THEN 'personal' END;
        person := nullif(btrim(e.raw->>'person_name'), '');
        fields := jsonb_strip_nulls(jsonb_build_object(
            'type', kind,
            'name', CASE WHEN kind = 'company' THEN coalesce(person, nullif(btrim(e.name), ''))
                         ELSE nullif(btrim(e.name), '') END,
            'company', CASE WHEN kind = 'company' THEN nullif(btrim(e.name), '') END,
            'contact_person', CASE WHEN kind = 'company' THEN person END,
            'contact_phone', CASE WHEN kind = 'company' THEN nullif(btrim(e.raw->>'phone'), '') END,
            'phone', e.mobile_key,
            'wechat_id', nullif(btrim(e.weixin_acc), ''),
            'address', nullif(btrim(e.address), ''),
            'email', nullif(btrim(e.raw->>'email'), '')));
        -- through the column map: column -> value, for the mapped fields only
        SELECT jsonb_object_agg(t.columns->>f.key, f.value), string_agg(quote_ident(t.columns->>f.key), ', ')
        INTO vals, collist
        FROM jsonb_each(fields) f
        WHERE t.columns ? f.key AND f.key <> 'id';
        IF collist IS NULL THEN
            skipped := skipped || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                'reason', 'nothing the ERP holds of it maps to a column of ' || t.qual);
            CONTINUE;
        END IF;

        BEGIN
            EXECUTE format('INSERT INTO %1$s (%2$s) SELECT %2$s FROM jsonb_populate_record(NULL::%1$s, $1) RETURNING (%3$I)::text',
                           t.qual, collist, key_col)
            INTO new_key USING vals;
            INSERT INTO erp_sync.customer_link (contact_id, khid, erp_ord, customer_type, person_synced, synced_at)
            VALUES (new_key, e.khid, e.erp_ord, kind, true, now());
            IF dry THEN
                RAISE EXCEPTION USING MESSAGE = dry_marker;
            END IF;
            imported := imported || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid, 'contact_id', new_key);
            n_imported := n_imported + 1;
            IF e.mobile_key IS NOT NULL THEN
                taken := taken || jsonb_build_object(e.mobile_key, new_key);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            IF dry AND msg = dry_marker THEN
                imported := imported || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid, 'contact_id', NULL);
                n_imported := n_imported + 1;
                IF e.mobile_key IS NOT NULL THEN
                    taken := taken || jsonb_build_object(e.mobile_key, '(this dry run)');
                END IF;
            ELSE
                failed := failed || jsonb_build_object('erp_ord', e.erp_ord, 'khid', e.khid,
                    'sqlstate', st, 'message', erp_sync.mask_text(msg));
            END IF;
        END;
    END LOOP;
    PERFORM erp_sync.suppress_capture(t.relid, false);

    RAISE NOTICE 'erp_sync: % % of % ERP-only customers into % (% skipped, % failed, % left by max_customers)',
        CASE WHEN dry THEN 'dry run: would import' ELSE 'imported' END, n_imported, n_candidates, t.qual,
        jsonb_array_length(skipped), jsonb_array_length(failed), n_remaining;
    RETURN jsonb_build_object('dry_run', dry, 'contact_table', t.qual, 'pulled', true,
                              'candidates', n_candidates, 'imported', n_imported,
                              'skipped', jsonb_array_length(skipped), 'failed', jsonb_array_length(failed),
                              'remaining', n_remaining, 'contacts', imported,
                              'skipped_customers', skipped, 'failures', failed);
END
$$;

REVOKE EXECUTE ON FUNCTION erp_sync.import_erp_customers(int, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.suppress_capture(regclass, boolean) FROM PUBLIC;

-- ==== end of the ERP-only customers' import ====

-- ==== payload views and change sources (sql/sources.sql, src/capture/source.rs) ====
CREATE FUNCTION erp_sync.track_source(tbl regclass, path jsonb) RETURNS jsonb VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'track_source_wrapper';
-- erp_sync payload views and change sources (since 0.2.0).
--
-- Payload views: what is sent may come from a view the operator writes in the spec's field names
-- (any joins, CASE value maps, casts) instead of one table through a column map:
--     SELECT erp_sync.track('hub.contact_source', 'contact');
-- A view is tracked like a table (erp_sync.tracked_tables), without capture triggers: the tables
-- behind it are change sources (below). erp_sync.check_source() validates it first.
--
-- Change sources: any table whose change should resync a contact, with the way from its row to
-- the contact key, e.g. a scoring row -> its thread -> the thread's contact:
--     SELECT erp_sync.track_source('hub.signals',
--         '{"via": [{"table": "hub.threads", "from": "thread_id", "to": "id"}], "key": "contact_id"}');
-- A change re-evaluates the contact's admission on the payload view (customer row queued, or the
-- rejection recorded) and queues its assignment; with "followup" each new row is a follow-up.
CREATE TABLE erp_sync.change_sources (
    relid      regclass PRIMARY KEY,
    path       jsonb NOT NULL CHECK (jsonb_typeof(path) = 'object' AND path ? 'key'),
    tracked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE erp_sync.change_sources IS 'tables whose changes resync a contact, with the path to its key (erp_sync.track_source)';
SELECT pg_catalog.pg_extension_config_dump('erp_sync.change_sources', '');
GRANT SELECT ON erp_sync.change_sources TO erp_sync_worker, erp_sync_reader;

-- What is wrong with `rel` as the source of `entity` ('contact', 'thread', 'signal'): one row per
-- problem, severity 'error' (track() refuses the source) or 'warning' (it works, but perhaps not
-- as meant). Checked: the key columns exist and have a key type (integer, uuid or text); the
-- typed fields have a type the rules read (phone_verified boolean, score a number or text,
-- type text or an integer 1/2 mapped in the view); columns that are no spec field (ignored);
-- one row per id (a view joining a second row per contact would send one of them at random).
CREATE FUNCTION erp_sync.check_source(entity text, rel regclass)
RETURNS TABLE (severity text, field text, problem text, hint text)
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fields text[] := CASE entity
        WHEN 'contact' THEN ARRAY['id', 'type', 'name', 'company', 'phone', 'phone_verified', 'score',
                                  'list_status', 'wechat_id', 'address', 'contact_person',
                                  'contact_phone', 'email', 'notes']
        WHEN 'thread' THEN ARRAY['id', 'contact_id', 'score', 'summary']
        WHEN 'signal' THEN ARRAY['id', 'contact_id', 'content', 'ts'] END;
    keys text[] := CASE entity WHEN 'contact' THEN ARRAY['id'] ELSE ARRAY['id', 'contact_id'] END;
    col record;
    dup text;
BEGIN
    IF fields IS NULL THEN
        RETURN QUERY SELECT 'error', NULL::text, format('unknown entity %L', entity),
                            'a source is for contact, thread or signal';
        RETURN;
    END IF;
    FOR col IN
        SELECT k.name, a.attname IS NOT NULL AS present,
               format_type(a.atttypid, a.atttypmod) AS type_name,
               coalesce(nullif(t.typbasetype, 0), t.oid) AS base
        FROM unnest(fields) AS k(name)
        LEFT JOIN pg_attribute a ON a.attrelid = rel AND a.attname = k.name
                                AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_type t ON t.oid = a.atttypid
    LOOP
        IF NOT col.present THEN
            IF col.name = ANY (keys) THEN
                RETURN QUERY SELECT 'error', col.name, format('%s has no column %I', rel, col.name),
                    format('a %s source needs the column %I (%s)', entity, col.name,
                           CASE WHEN col.name = 'id' AND entity = 'contact' THEN 'the contact key'
                                WHEN col.name = 'id' THEN 'the row''s own id'
                                ELSE 'the contact key of the row' END);
            END IF;
            CONTINUE;
        END IF;
        IF col.name = ANY (keys) AND NOT (entity <> 'contact' AND col.name = 'id') AND col.base NOT IN
               ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype,
                'uuid'::regtype, 'text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) THEN
            RETURN QUERY SELECT 'error', col.name, format('%s.%I is of type %s', rel, col.name, col.type_name),
                'a contact key is an integer, uuid or text column';
        ELSIF entity <> 'contact' AND col.name = 'id' AND col.base NOT IN
               ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN
            RETURN QUERY SELECT CASE WHEN entity = 'signal' THEN 'error' ELSE 'warning' END, col.name,
                format('%s.%I is of type %s', rel, col.name, col.type_name),
                CASE WHEN entity = 'signal'
                     THEN 'a signal id is an integer (a follow-up refers to it): cast it, or number the rows in the view'
                     ELSE 'the newest thread of a contact is the one with the highest id; an integer id makes that meaningful' END;
        ELSIF col.name = 'phone_verified' AND col.base <> 'bool'::regtype THEN
            RETURN QUERY SELECT 'error', col.name, format('%s.phone_verified is of type %s', rel, col.type_name),
                'phone_verified is a boolean: map it in the view, e.g. (verified = 1) AS phone_verified';
        ELSIF col.name = 'score' AND col.base NOT IN
               ('int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'numeric'::regtype,
                'float4'::regtype, 'float8'::regtype, 'text'::regtype, 'varchar'::regtype) THEN
            RETURN QUERY SELECT 'error', col.name, format('%s.score is of type %s', rel, col.type_name),
                'score is a number (0-100)';
        ELSIF col.name = 'type' AND col.base NOT IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype) THEN
            RETURN QUERY SELECT 'error', col.name, format('%s.type is of type %s', rel, col.type_name),
                'type is ''company'' or ''personal'': map it in the view, e.g. CASE customer_type WHEN 1 THEN ''company'' WHEN 2 THEN ''personal'' END AS type';
        END IF;
    END LOOP;
    RETURN QUERY
        SELECT 'warning', a.attname::text, format('%s.%I is no %s field and is not sent', rel, a.attname, entity),
               format('the %s fields: %s', entity, array_to_string(fields, ', '))
        FROM pg_attribute a
        WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> ALL (fields)
        ORDER BY a.attnum;
    -- a table's key is its own (track() checked the column map); a view's may repeat
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = rel) IN ('v', 'm') AND EXISTS (
           SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = 'id'
                                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
        EXECUTE format('SELECT string_agg(id, '', '') FROM (SELECT (id)::text AS id FROM %s '
                       'GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 5) d', rel) INTO dup;
        IF dup IS NOT NULL THEN
            RETURN QUERY SELECT 'error', 'id', format('%s has more than one row for id %s', rel, dup),
                'a source has one row per id: join the newest row only (DISTINCT ON, or a LATERAL ... LIMIT 1)';
        END IF;
    END IF;
END
$$;

-- check_source() of every tracked payload view: what the operator runs after editing one. (A
-- tracked table is read through its column map, which track() validated.)
CREATE FUNCTION erp_sync.check_sources()
RETURNS TABLE (entity text, source text, severity text, field text, problem text, hint text)
    LANGUAGE sql STABLE PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.entity, t.relid::text, c.severity, c.field, c.problem, c.hint
    FROM erp_sync.tracked_tables t
    JOIN pg_class k ON k.oid = t.relid AND k.relkind IN ('v', 'm'),
    LATERAL erp_sync.check_source(t.entity, t.relid) c
    ORDER BY t.entity, c.severity, c.field
$$;

REVOKE EXECUTE ON FUNCTION erp_sync.track_source(regclass, jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.check_source(text, regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.check_sources() FROM PUBLIC;
-- ==== end of payload views and change sources ====
