//! Operations monitoring end to end: `erp_sync.stats()` / `erp_sync.alerts` after real syncs, the
//! alert webhook (once per state change), `/metrics`, `/healthz` (200, then 503 with the database
//! stopped), the retention job, and the status page rendered by headless Chromium (Debian's
//! `chromium`, installed by scripts/setup.sh; the test fails when it is missing).

mod sync_util;

use anyhow::{Context, Result};
use e2e::{free_port, wait_until, workspace_root};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use sync_util::{metric, mobile, scrape, NewContact, World};

const SETTLE: Duration = Duration::from_secs(60);

/// A tiny HTTP receiver on a loopback port that records every POSTed JSON body.
struct Webhook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    fn start() -> Result<Webhook> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let store = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = match stream.try_clone() {
                    Ok(s) => BufReader::new(s),
                    Err(_) => continue,
                };
                let mut len = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_ok() {
                    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                        store.lock().expect("webhook store").push(v);
                    }
                }
                let reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                if stream.write_all(reply.as_bytes()).is_err() {
                    continue;
                }
            }
        });
        Ok(Webhook { url, bodies })
    }

    fn events(&self, code: &str, event: &str) -> usize {
        self.bodies
            .lock()
            .expect("webhook store")
            .iter()
            .filter(|b| b["code"] == code && b["event"] == event)
            .count()
    }

    fn all(&self) -> Vec<Value> {
        self.bodies.lock().expect("webhook store").clone()
    }
}

fn http_get(url: &str) -> Result<(u16, String)> {
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(url)
        .send()?;
    let status = resp.status().as_u16();
    Ok((status, resp.text()?))
}

fn chromium_cmd(profile: &std::path::Path) -> Result<Command> {
    let mut cmd = Command::new(e2e::browser::chromium()?);
    cmd.args(e2e::browser::HEADLESS_ARGS)
        .arg("--virtual-time-budget=5000")
        .arg(format!("--user-data-dir={}", profile.display()));
    Ok(cmd)
}

/// Text content of the element with `id` in a dumped DOM (simple: the page's value elements hold
/// plain text).
fn by_id(dom: &str, id: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let open_end = start + dom[start..].find('>')? + 1;
    let close = open_end + dom[open_end..].find('<')?;
    Some(dom[open_end..close].trim().to_string())
}

fn sql_rate(w: &World, since: &str) -> Result<Option<f64>> {
    let rows = w.query(
        &format!("SELECT success_rate::float8 FROM erp_sync.stats('{since}')"),
        &[],
    )?;
    Ok(rows[0].get(0))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |r| format!("{r:.1}%"))
}

#[test]
fn stats_alert_webhook_metrics_and_status_page() -> Result<()> {
    let w = World::start()?;
    let hook = Webhook::start()?;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    w.faults(json!({"refuse": [{"field": "name", "value": "禁止客户", "text": "保存失败：客户名称不允许"}]}))?;
    let s = w.sidecar(
        "mon1",
        &[
            ("ERP_SYNC_HTTP_LISTEN_ADDR", listen.as_str()),
            ("ERP_SYNC_ALERTS_WEBHOOK_URL", hook.url.as_str()),
            ("ERP_SYNC_ALERTS_CHECK_INTERVAL_MS", "300"),
        ],
    )?;
    // A second sidecar checks the same alerts: the webhook must still get each change once.
    let listen2 = format!("127.0.0.1:{}", free_port());
    let s2 = w.sidecar(
        "mon2",
        &[
            ("ERP_SYNC_HTTP_LISTEN_ADDR", listen2.as_str()),
            ("ERP_SYNC_ALERTS_WEBHOOK_URL", hook.url.as_str()),
            ("ERP_SYNC_ALERTS_CHECK_INTERVAL_MS", "300"),
        ],
    )?;
    let base = format!("http://{listen}");
    assert!(
        wait_until(Duration::from_secs(15), || http_get(&format!(
            "{base}/healthz"
        ))
        .is_ok_and(|(c, _)| c == 200)),
        "healthz never 200: {}",
        s.proc.output()
    );

    // 4 good contacts, 2 refused by the ERP (business refusal: dead at once).
    let mut good = Vec::new();
    for i in 0..4 {
        good.push(w.contact(&NewContact::personal(
            &format!("监控客户{i}"),
            &mobile(600 + i),
        ))?);
    }
    let bad1 = w.contact(&NewContact::personal("禁止客户", &mobile(610)))?;
    let bad2 = w.contact(&NewContact::personal("禁止客户", &mobile(611)))?;
    w.settle(SETTLE, &[&s, &s2])?;

    // ---- stats: the numbers the log holds ----
    let row = &w.query(
        "SELECT total, success, failed, success_rate::float8 FROM erp_sync.stats('1 hour')",
        &[],
    )?[0];
    let (total, success, failed, rate): (i64, i64, i64, Option<f64>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let direct = w.count("SELECT count(*) FROM erp_sync.sync_log WHERE outcome = 'failed'")?;
    let direct_ok = w.count("SELECT count(*) FROM erp_sync.sync_log WHERE outcome = 'success'")?;
    let direct_total =
        w.count("SELECT count(*) FROM erp_sync.sync_log WHERE outcome <> 'dry_run'")?;
    eprintln!("stats: total={total} success={success} failed={failed} rate={rate:?}");
    assert_eq!((total, success, failed), (direct_total, direct_ok, direct));
    assert!(failed >= 2, "both refused creates are logged as failed");
    assert!(success >= 4, "each good contact has at least its create");
    let expect = (1000.0 * success as f64 / (success + failed) as f64).round() / 10.0;
    assert_eq!(rate, Some(expect));
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status = 'dead'")?,
        2
    );
    // reader role: the aggregate and the alerts, no raw log
    w.exec("CREATE ROLE mon_reader LOGIN IN ROLE erp_sync_reader")?;
    {
        let mut rc =
            postgres::Client::connect(&w.pg.url_for("erp", "mon_reader"), postgres::NoTls)?;
        let n: i64 = rc
            .query_one("SELECT total FROM erp_sync.stats('1 hour')", &[])?
            .get(0);
        assert_eq!(n, total);
        rc.query("SELECT * FROM erp_sync.alerts", &[])?;
        let e = rc
            .query("SELECT * FROM erp_sync.sync_log", &[])
            .err()
            .context("reader must not read sync_log")?;
        assert_eq!(
            e.code(),
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
        );
        let e = rc
            .query("SELECT erp_sync.cleanup(1)", &[])
            .err()
            .context("reader must not run cleanup")?;
        assert_eq!(
            e.code(),
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
        );
    }

    // ---- alert fires once ----
    assert!(
        wait_until(Duration::from_secs(10), || hook
            .events("dead_rows", "fired")
            == 1),
        "dead_rows alert not sent: {:?}\n{}",
        hook.all(),
        s.proc.output()
    );
    std::thread::sleep(Duration::from_millis(1500)); // ~5 more checks: no repeat
    assert_eq!(
        hook.events("dead_rows", "fired"),
        1,
        "sent again: {:?}",
        hook.all()
    );
    let fired = hook
        .all()
        .into_iter()
        .find(|b| b["code"] == "dead_rows")
        .context("body")?;
    assert_eq!(fired["level"], "warning");
    // Fired when the first refused row died (1) or both had (2); a change of value alone is not
    // a state change, so no second POST either way.
    assert!(
        matches!(fired["value"].as_f64(), Some(v) if v == 1.0 || v == 2.0),
        "{fired}"
    );
    assert!(
        fired["message"]
            .as_str()
            .is_some_and(|m| m.contains("死信任务")),
        "{fired}"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.alert_state WHERE code = 'dead_rows'")?,
        1
    );

    // ---- /metrics (OpenMetrics, checked by scrape: Content-Type and one final # EOF) ----
    let text = scrape(&listen)?;
    let done_rows = w.count("SELECT coalesce(sum(rows), 0)::bigint FROM erp_sync.queue WHERE kind = 'customer' AND status = 'done'")?;
    assert_eq!(
        metric(
            &text,
            "erp_sync_queue_rows{kind=\"customer\",status=\"done\"}"
        ),
        Some(done_rows as f64),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "erp_sync_queue_rows{kind=\"customer\",status=\"dead\"}"
        ),
        Some(2.0),
        "{text}"
    );
    // Counters are per process: the two sidecars' shares add up to what happened.
    let text2 = scrape(&listen2)?;
    let both =
        |series: &str| metric(&text, series).unwrap_or(0.0) + metric(&text2, series).unwrap_or(0.0);
    assert_eq!(
        both("erp_sync_rows_total{kind=\"customer\",status=\"done\"}"),
        4.0,
        "{text}\n{text2}"
    );
    assert_eq!(
        both("erp_sync_rows_total{kind=\"customer\",status=\"dead\"}"),
        2.0,
        "{text}\n{text2}"
    );
    let mine_done = metric(
        &text,
        "erp_sync_rows_total{kind=\"customer\",status=\"done\"}",
    )
    .unwrap_or(0.0);
    let mine_dead = metric(
        &text,
        "erp_sync_rows_total{kind=\"customer\",status=\"dead\"}",
    )
    .unwrap_or(0.0);
    let calls = metric(&text, "erp_sync_erp_call_duration_seconds_count").unwrap_or(0.0);
    assert!(calls >= mine_done + mine_dead, "ERP calls {calls}: {text}");
    assert!(
        both("erp_sync_erp_call_duration_seconds_count") >= 6.0,
        "{text}\n{text2}"
    );
    assert_eq!(
        metric(
            &text,
            "erp_sync_erp_call_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        Some(calls)
    );
    let sum = metric(&text, "erp_sync_erp_call_duration_seconds_sum").unwrap_or(0.0);
    assert!(
        (calls == 0.0 || sum > 0.0) && sum < calls * 5.0 + 1.0,
        "latency sum {sum} for {calls} calls"
    );
    assert!(
        metric(&text, "erp_sync_erp_logins_total").is_some(),
        "{text}"
    );
    assert!(both("erp_sync_erp_logins_total") >= 1.0, "{text}\n{text2}");
    assert_eq!(metric(&text, "erp_sync_listener_up"), Some(1.0));
    assert_eq!(
        metric(&text, "erp_sync_listener_connects_total"),
        Some(1.0),
        "one LISTEN, never lost: {text}"
    );
    assert!(
        metric(&text, "erp_sync_notifications_total").is_some(),
        "{text}"
    );
    assert_eq!(metric(&text, "erp_sync_db_up"), Some(1.0));
    assert!(text.contains("# TYPE erp_sync_erp_call_duration_seconds histogram"));
    assert!(text.contains("# TYPE erp_sync_rows counter"));

    // ---- status page in headless Chromium: same numbers as the SQL views ----
    let profile = tempfile::tempdir()?;
    let out = chromium_cmd(profile.path())?
        .arg("--dump-dom")
        .arg(format!("{base}/"))
        .output()
        .context("running chromium")?;
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        dom.contains("data-loaded=\"1\""),
        "status page did not load its data: {}\n{}",
        &dom[..dom.len().min(3000)],
        String::from_utf8_lossy(&out.stderr)
    );
    let totals = |status: &str| {
        w.count(&format!(
            "SELECT coalesce(sum(rows), 0)::bigint FROM erp_sync.queue WHERE status = '{status}'"
        ))
    };
    for st in ["pending", "running", "done", "dead", "skipped"] {
        assert_eq!(
            by_id(&dom, &format!("total-{st}")),
            Some(totals(st)?.to_string()),
            "total-{st}"
        );
    }
    assert_eq!(by_id(&dom, "rate-1h"), Some(pct(sql_rate(&w, "1 hour")?)));
    assert_eq!(
        by_id(&dom, "rate-24h"),
        Some(pct(sql_rate(&w, "24 hours")?))
    );
    assert!(dom.contains("data-code=\"dead_rows\""), "alert row missing");
    assert!(
        dom.contains("保存失败：客户名称不允许"),
        "failure error missing"
    );
    assert!(
        dom.contains("失败 failed"),
        "the failure's outcome (failed, not retry) missing"
    );
    assert!(dom.contains("<rect"), "chart has no bar");
    assert!(
        !dom.contains(&mobile(610)),
        "an unmasked mobile on the status page"
    );
    let shot = "/tmp/erp_sync_status.png";
    let out = chromium_cmd(profile.path())?
        .arg(format!("--screenshot={shot}"))
        .arg("--window-size=1200,900")
        .arg(format!("{base}/"))
        .output()
        .context("chromium screenshot")?;
    assert!(
        std::fs::metadata(shot).is_ok_and(|m| m.len() > 10_000),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ---- the alert clears once ----
    w.faults(json!({"refuse": []}))?;
    w.exec(&format!(
        "SELECT erp_sync.retry_failed('{bad1}'); SELECT erp_sync.retry_failed('{bad2}')"
    ))?;
    w.settle(SETTLE, &[&s, &s2])?;
    assert!(
        wait_until(Duration::from_secs(10), || hook
            .events("dead_rows", "resolved")
            == 1),
        "dead_rows resolution not sent: {:?}",
        hook.all()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(hook.events("dead_rows", "resolved"), 1);
    assert_eq!(hook.events("dead_rows", "fired"), 1);
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.alert_state WHERE code = 'dead_rows'")?,
        0
    );
    for id in &good {
        assert!(w.erp_ord(*id)?.is_some(), "contact {id} not in the ERP");
    }
    Ok(())
}

/// Data directory of the cluster (to stop it behind the sidecar's back).
fn cluster_dir(w: &World) -> Result<std::path::PathBuf> {
    let data: String = w.query("SHOW data_directory", &[])?[0].get(0);
    Ok(std::path::Path::new(&data)
        .parent()
        .context("data directory has no parent")?
        .to_path_buf())
}

#[test]
fn retention_in_batches_and_healthz_follows_the_database() -> Result<()> {
    let w = World::start()?;
    // 7 old finished rows (done / skipped), 1 recent done, 1 old dead, 1 pending (not due): only
    // the 7 go. sync_log: 5 old rows go, 1 recent stays.
    w.exec(
        "INSERT INTO erp_sync.outbox (contact_id, kind, status, last_error, created_at, updated_at, finished_at)
         SELECT g, 'customer', CASE WHEN g % 2 = 0 THEN 'skipped' ELSE 'done' END,
                CASE WHEN g % 2 = 0 THEN 'old skip' END,
                now() - interval '40 days', now() - interval '40 days', now() - interval '40 days'
         FROM generate_series(1, 7) g;
         INSERT INTO erp_sync.outbox (contact_id, kind, status, finished_at) VALUES (8, 'customer', 'done', now());
         INSERT INTO erp_sync.outbox (contact_id, kind, status, last_error, created_at, finished_at)
         VALUES (9, 'customer', 'dead', 'old death', now() - interval '40 days', now() - interval '40 days');
         INSERT INTO erp_sync.outbox (contact_id, kind, status, next_attempt_at, created_at)
         VALUES (10, 'customer', 'pending', now() + interval '1 day', now() - interval '40 days');
         INSERT INTO erp_sync.sync_log (contact_id, action, outcome, created_at)
         SELECT g, 'create', 'success', now() - interval '400 days' FROM generate_series(1, 5) g;
         INSERT INTO erp_sync.sync_log (contact_id, action, outcome) VALUES (6, 'create', 'success');",
    )?;
    // One SQL batch of 2 by hand: exactly 2 + 2 go, and it says there is more.
    let v: Value = w.query("SELECT erp_sync.cleanup(2)", &[])?[0].get(0);
    assert_eq!(v, json!({"outbox": 2, "sync_log": 2, "more": true}));

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let s = w.sidecar(
        "ret1",
        &[
            ("ERP_SYNC_HTTP_LISTEN_ADDR", listen.as_str()),
            ("ERP_SYNC_RETENTION_INTERVAL_MS", "500"),
            ("ERP_SYNC_RETENTION_BATCH_SIZE", "2"),
            ("ERP_SYNC_RETENTION_PAUSE_MS", "10"),
            ("RUST_LOG", "info,sidecar::ops=debug"),
        ],
    )?;
    assert!(
        wait_until(Duration::from_secs(15), || {
            w
            .count("SELECT count(*) FROM erp_sync.outbox WHERE finished_at < now() - interval '1 day' AND status IN ('done','skipped')")
            .is_ok_and(|n| n == 0)
            && w.count("SELECT count(*) FROM erp_sync.sync_log").is_ok_and(|n| n == 1)
        }),
        "retention did not prune: {}",
        s.proc.output()
    );
    let left: Vec<(i64, String)> = w
        .query(
            "SELECT contact_id::bigint, status FROM erp_sync.outbox ORDER BY contact_id::bigint",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        left,
        vec![
            (8, "done".into()),
            (9, "dead".into()),
            (10, "pending".into())
        ]
    );
    let out = s.proc.output();
    assert!(out.contains("retention batch"), "no batch log: {out}");
    assert!(out.contains("retention: pruned"), "no summary log: {out}");

    // ---- /healthz: 200, 503 with the database down, 200 again after it is back ----
    let health = format!("http://{listen}/healthz");
    let (code, body) = http_get(&health)?;
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["status"], "ok");
    assert_eq!(v["db"], true);
    assert_eq!(v["listener"], true);
    let dir = cluster_dir(&w)?;
    let st = Command::new(workspace_root().join("scripts/pgcluster.sh"))
        .args(["stop", &dir.display().to_string(), "immediate"])
        .output()?;
    assert!(
        st.status.success(),
        "pgcluster stop: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(15), || http_get(&health)
            .is_ok_and(|(c, _)| c == 503)),
        "healthz never 503 with the database down: {:?}",
        http_get(&health)
    );
    let (_, body) = http_get(&health)?;
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["status"], "unavailable");
    assert_eq!(v["db"], false);
    w.pg.restart("fast")?;
    assert!(
        wait_until(Duration::from_secs(30), || http_get(&health)
            .is_ok_and(|(c, _)| c == 200)),
        "healthz not back to 200: {:?}\n{}",
        http_get(&health),
        s.proc.output()
    );
    Ok(())
}

fn alert_codes(w: &World) -> Result<Vec<String>> {
    Ok(
        w.query("SELECT code FROM erp_sync.alerts ORDER BY code", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    )
}

/// Every rule of `erp_sync.alerts`, its threshold setting, and `stats()` on an empty window.
#[test]
fn alert_rules_and_thresholds() -> Result<()> {
    let w = World::start()?;
    assert_eq!(w.count("SELECT total FROM erp_sync.stats()")?, 0);
    assert_eq!(sql_rate(&w, "1 hour")?, None, "no data: NULL rate, not 0");
    assert!(
        alert_codes(&w)?.is_empty(),
        "idle fresh install has no alerts"
    );

    // 12 failures, 8 successes in the last hour: rate 40% (< 80, critical), 12 > 10 (warning).
    w.exec(
        "INSERT INTO erp_sync.sync_log (contact_id, action, outcome, error)
         SELECT g, 'create', CASE WHEN g <= 12 THEN 'failed' ELSE 'success' END,
                CASE WHEN g <= 12 THEN 'boom' END
         FROM generate_series(1, 20) g",
    )?;
    assert_eq!(sql_rate(&w, "1 hour")?, Some(40.0));
    assert_eq!(
        alert_codes(&w)?,
        vec!["low_success_rate", "too_many_failures"]
    );
    let levels: Vec<(String, String, f64, f64)> = w
        .query("SELECT code, level, value::float8, threshold::float8 FROM erp_sync.alerts ORDER BY code", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        levels,
        vec![
            ("low_success_rate".into(), "critical".into(), 40.0, 80.0),
            ("too_many_failures".into(), "warning".into(), 12.0, 10.0)
        ]
    );
    // thresholds are settings
    w.exec("INSERT INTO erp_sync.settings (key, value) VALUES ('alerts.min_success_rate', '30'), ('alerts.max_failures', '12')")?;
    assert!(alert_codes(&w)?.is_empty());
    w.exec("DELETE FROM erp_sync.settings")?;

    // Everything older than the window: no rate rules, but no success for 2 h → info.
    w.exec("UPDATE erp_sync.sync_log SET created_at = now() - interval '3 hours'")?;
    assert_eq!(alert_codes(&w)?, vec!["no_recent_success"]);
    let msg: String = w.query("SELECT message FROM erp_sync.alerts", &[])?[0].get(0);
    assert_eq!(msg, "已 3 小时未同步");

    // dead rows and a stuck queue
    w.exec(
        "INSERT INTO erp_sync.outbox (contact_id, kind, status, last_error, finished_at)
         VALUES (900, 'customer', 'dead', 'refused', now());
         INSERT INTO erp_sync.outbox (contact_id, kind, status, next_attempt_at, created_at)
         VALUES (901, 'customer', 'pending', now() + interval '1 day', now() - interval '45 minutes')",
    )?;
    assert_eq!(
        alert_codes(&w)?,
        vec!["dead_rows", "no_recent_success", "stuck_queue"]
    );
    w.exec("INSERT INTO erp_sync.settings (key, value) VALUES ('alerts.stuck_after', '1 hour'), ('alerts.max_dead', '1')")?;
    assert_eq!(alert_codes(&w)?, vec!["no_recent_success"]);

    // a recent success clears the info alert
    w.exec("INSERT INTO erp_sync.sync_log (contact_id, action, outcome) VALUES (902, 'create', 'success')")?;
    assert!(alert_codes(&w)?.is_empty());

    // cleanup argument checking: a real SQLSTATE
    let e = w
        .query("SELECT erp_sync.cleanup(0)", &[])
        .err()
        .context("batch 0 must fail")?;
    let code = e
        .chain()
        .find_map(|c| c.downcast_ref::<postgres::Error>())
        .and_then(|p| p.code().cloned());
    assert_eq!(
        code,
        Some(postgres::error::SqlState::INVALID_PARAMETER_VALUE)
    );
    Ok(())
}
