-- erp_sync monitoring (spec §监控与告警, §操作日志): stats, alerts, recent failures, retention
-- cleanup and the alert notification state shared by several sidecars. Runs after views.sql and
-- before roles.sql (grants for these objects are at the end of this file).
--
-- Thresholds are settings (erp_sync.settings_effective): alerts.window, alerts.min_success_rate,
-- alerts.max_failures, alerts.no_success_after, alerts.max_dead, alerts.stuck_after,
-- retention.done_days, retention.sync_log_days.

-- stats() / stats_hourly() filter on created_at; retention deletes the oldest sync_log rows first.
CREATE INDEX sync_log_created_idx ON erp_sync.sync_log (created_at);
-- dead_rows alert: count dead rows without scanning finished history (rows rarely die).
CREATE INDEX outbox_dead_idx ON erp_sync.outbox (id) WHERE status = 'dead';
-- in_doubt_followups alert, contact_status (since 0.2.0).
CREATE INDEX outbox_in_doubt_idx ON erp_sync.outbox (contact_id, id) WHERE status = 'in_doubt';

-- Spec get_sync_stats(): sync_log rows created since now() - since.
--   total   = every finished ERP operation of the window (dry_run rows are not operations; retry
--             rows are attempts that are tried again: a sync counts once, when it ends);
--   success = outcome success (or rolled_back: it succeeded, was undone later);
--   failed  = outcome failed (the sync failed: its row ended dead);
--   success_rate = round(100 * success / (success + failed), 1); skipped operations (e.g.
--   "already exists") count neither way. NULL when nothing succeeded or failed in the window (the
--   spec's 0 would raise a "success rate too low" alert on an idle system).
-- SECURITY DEFINER so erp_sync_reader gets the aggregate without reading sync_log itself.
CREATE FUNCTION erp_sync.stats(since interval DEFAULT '1 hour')
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
COMMENT ON FUNCTION erp_sync.stats(interval) IS
    'sync_log totals since now() - since; success_rate = 100*success/(success+failed), NULL when both are 0';

-- The same per hour (hour = start of the hour), oldest first, every hour of the window present
-- (zeros and NULL rate for hours without operations): the status page's chart.
CREATE FUNCTION erp_sync.stats_hourly(since interval DEFAULT '24 hours')
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
COMMENT ON FUNCTION erp_sync.stats_hourly(interval) IS
    'erp_sync.stats() per hour of the window (status page chart)';

-- The spec's check_sync_health() rules plus dead rows and a stuck queue. One row per active alert:
--   code               level     fires when
--   low_success_rate   critical  stats(alerts.window).success_rate < alerts.min_success_rate
--   too_many_failures  warning   stats(alerts.window).failed > alerts.max_failures
--   no_recent_success  info      no success for alerts.no_success_after, while there is work
--                                (unfinished/dead outbox rows) or history (any sync_log row)
--   dead_rows          warning   dead outbox rows > alerts.max_dead
--   stuck_queue        critical  oldest pending/running outbox row older than alerts.stuck_after
--   in_doubt_followups warning   follow-ups perhaps sent, waiting for erp_sync.resolve_in_doubt()
--   erp_login_failed   critical  a live sidecar (heartbeat within notify.idle_fresh) cannot log in
--                                to the ERP: its rows wait (value: such sidecars; the message
--                                quotes the ERP's text and the rows waiting)
-- value / threshold: percent, counts, or hours / minutes (see unit). message is the spec's Chinese
-- text, message_en the same in English. Thresholds come from settings_effective (not setting(),
-- which reads erp_sync.settings as the caller: the reader role may not).
CREATE VIEW erp_sync.alerts AS
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

-- Recent failed operations for the status page. error: every mobile in any notation masked,
-- for everyone (defence in depth: the sidecar stores ERP texts masked already). outcome: failed
-- (the sync failed) or retry (a failed attempt that is tried again).
CREATE VIEW erp_sync.recent_failures AS
SELECT l.id, l.created_at, l.contact_id, l.action, l.erp_ord, l.outbox_id,
       erp_sync.mask_text(coalesce(l.error, '')) AS error,
       l.worker, l.outcome
FROM erp_sync.sync_log l
WHERE l.outcome IN ('failed', 'retry')
ORDER BY l.id DESC
LIMIT 50;

-- Alert notification state: what the sidecars last told the webhook, per alert code. A sidecar
-- checks under pg_try_advisory_xact_lock(hashtext('erp_sync.alerts')), compares erp_sync.alerts
-- with this table, POSTs only the differences (fired / resolved) and records them in the same
-- transaction, so several sidecars send each state change once.
CREATE TABLE erp_sync.alert_state (
    code        text PRIMARY KEY,
    level       text NOT NULL,
    message     text NOT NULL,
    value       numeric,
    fired_at    timestamptz NOT NULL DEFAULT now(),
    notified_by text
);

-- The reader role reads alert_state directly: its message is stored masked, whoever writes it.
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

-- Retention (spec §操作日志 "kept for a configurable period"): deletes ONE batch per table and
-- returns {"outbox": n, "sync_log": m, "more": bool}; the caller loops while "more" (each call is
-- its own short transaction, so no long locks). Finished outbox rows (done/skipped) whose
-- finished_at (updated_at when unset) is older than retention.done_days; sync_log rows older than
-- retention.sync_log_days. Pending, running and dead rows are never deleted. Rows locked by
-- someone else are skipped (SKIP LOCKED). SECURITY DEFINER: the worker role has no DELETE.
CREATE FUNCTION erp_sync.cleanup(batch int DEFAULT 5000) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    done_days numeric;
    log_days numeric;
    n_outbox bigint;
    n_log bigint;
BEGIN
    IF batch < 1 OR batch > 100000 THEN
        RAISE EXCEPTION 'erp_sync: cleanup batch % out of range', batch
            USING ERRCODE = 'invalid_parameter_value', HINT = 'batch must be between 1 and 100000';
    END IF;
    BEGIN
        SELECT max(effective) FILTER (WHERE key = 'retention.done_days')::numeric,
               max(effective) FILTER (WHERE key = 'retention.sync_log_days')::numeric
          INTO done_days, log_days
        FROM erp_sync.settings_effective WHERE key LIKE 'retention.%';
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'erp_sync: retention.done_days / retention.sync_log_days must be numbers'
            USING ERRCODE = 'invalid_parameter_value';
    END;
    IF done_days IS NULL OR log_days IS NULL OR done_days < 0 OR log_days < 0 THEN
        RAISE EXCEPTION 'erp_sync: retention days must be >= 0 (done_days=%, sync_log_days=%)', done_days, log_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    WITH victims AS (
        SELECT o.id FROM erp_sync.outbox o
        WHERE o.status IN ('done', 'skipped')
          AND coalesce(o.finished_at, o.updated_at) < now() - done_days * interval '1 day'
        ORDER BY o.id
        LIMIT batch
        FOR UPDATE SKIP LOCKED)
    DELETE FROM erp_sync.outbox o USING victims v WHERE o.id = v.id;
    GET DIAGNOSTICS n_outbox = ROW_COUNT;

    WITH victims AS (
        SELECT l.id FROM erp_sync.sync_log l
        WHERE l.created_at < now() - log_days * interval '1 day'
        ORDER BY l.created_at
        LIMIT batch
        FOR UPDATE SKIP LOCKED)
    DELETE FROM erp_sync.sync_log l USING victims v WHERE l.id = v.id;
    GET DIAGNOSTICS n_log = ROW_COUNT;

    RETURN jsonb_build_object('outbox', n_outbox, 'sync_log', n_log,
                              'more', n_outbox >= batch OR n_log >= batch);
END
$$;
COMMENT ON FUNCTION erp_sync.cleanup(int) IS
    'retention: delete one batch of old finished outbox rows and old sync_log rows; loop while "more"';

SELECT pg_catalog.pg_extension_config_dump('erp_sync.alert_state', '');

-- Grants (the roles exist: bootstrap.sql creates them).
REVOKE EXECUTE ON FUNCTION erp_sync.stats(interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.stats_hourly(interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.cleanup(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION erp_sync.stats(interval), erp_sync.stats_hourly(interval)
    TO erp_sync_worker, erp_sync_reader;
GRANT EXECUTE ON FUNCTION erp_sync.cleanup(int) TO erp_sync_worker;
GRANT SELECT ON erp_sync.alerts, erp_sync.recent_failures TO erp_sync_worker, erp_sync_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON erp_sync.alert_state TO erp_sync_worker;
GRANT SELECT ON erp_sync.alert_state TO erp_sync_reader;
