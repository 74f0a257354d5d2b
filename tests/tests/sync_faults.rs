//! ERP faults end to end: every transient fault is retried until the data is in the ERP exactly once;
//! a business refusal is dead at once with the ERP's text; a session expiry is not counted.

mod sync_util;

use anyhow::Result;
use serde_json::json;
use std::time::Duration;
use sync_util::{mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(45);

/// N personal contacts; returns their ids.
fn contacts(w: &World, n: i64, base: i64) -> Result<Vec<i64>> {
    (0..n)
        .map(|i| {
            w.contact(&NewContact::personal(
                &format!("客户{i:03}"),
                &mobile(base + i),
            ))
        })
        .collect()
}

fn assert_each_once(w: &World, ids: &[i64]) -> Result<()> {
    for id in ids {
        let n = w.erp_by_khid(&format!("WX{id}"))?.len();
        assert_eq!(n, 1, "contact {id}: {n} ERP customers");
    }
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status <> 'done'")?,
        0
    );
    Ok(())
}

#[test]
fn transient_faults_are_retried_to_exactly_once() -> Result<()> {
    let w = World::start()?;
    // 5xx burst, hangs past the client timeout, truncated JSON, server exceptions.
    w.faults(json!({"error_next": 4, "hang_next": 2, "hang_ms": 5000, "malformed_next": 3, "server_exception_next": 3}))?;
    let ids = contacts(&w, 8, 100)?;
    let s = w.sidecar("w1", &[])?;
    w.settle(SETTLE, &[&s])?;
    assert_each_once(&w, &ids)?;
    assert!(
        w.count("SELECT coalesce(sum(attempts), 0) FROM erp_sync.outbox")? > 0,
        "some attempts failed"
    );
    // Each failed attempt is in the audit log, as a retry; no sync failed, so the success-rate
    // rules see 8 syncs that all succeeded, not a burst of failures.
    assert!(w.count("SELECT count(*) FROM erp_sync.sync_log WHERE outcome = 'retry'")? > 0);
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.sync_log WHERE outcome = 'failed'")?,
        0
    );
    let r = w.query(
        "SELECT failed, success_rate::float8 FROM erp_sync.stats('1 hour')",
        &[],
    )?;
    assert_eq!(r[0].get::<_, i64>(0), 0);
    assert_eq!(r[0].get::<_, Option<f64>>(1), Some(100.0));
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.alerts WHERE code IN ('low_success_rate', 'too_many_failures')")?,
        0
    );
    assert!(
        w.count("SELECT count(*) FROM erp_sync.recent_failures WHERE outcome = 'retry'")? > 0,
        "the status page still lists the retried attempts"
    );
    Ok(())
}

/// An ERP outage (every call answered 503 for a few seconds while contacts arrive) is a run of
/// retried attempts, not of failed syncs: once the ERP is back every contact is synced once, and
/// the success-rate rules see syncs that all succeeded — `low_success_rate` and
/// `too_many_failures` stay quiet, where counting each attempt fired both for an hour.
#[test]
fn an_erp_outage_is_not_a_burst_of_failed_syncs() -> Result<()> {
    let w = World::start()?;
    w.exec(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('alerts.max_failures', '3'), ('alerts.min_success_rate', '90')",
    )?;
    w.faults(json!({"error_rate": 1.0, "error_status": 503}))?;
    let s = w.sidecar(
        "w1",
        &[
            ("ERP_SYNC_ENGINE_BACKOFF_BASE_MS", "200"),
            ("ERP_SYNC_ENGINE_BACKOFF_MAX_MS", "1000"),
        ],
    )?;
    let ids = contacts(&w, 12, 700)?;
    assert!(
        e2e::wait_until(Duration::from_secs(20), || w
            .count("SELECT count(*) FROM erp_sync.sync_log WHERE outcome = 'retry'")
            .is_ok_and(|n| n >= 12)),
        "the outage makes attempts fail"
    );
    std::thread::sleep(Duration::from_secs(3));
    w.faults(json!({"error_rate": 0.0}))?;
    w.settle(SETTLE, &[&s])?;
    assert_each_once(&w, &ids)?;
    let retries = w.count("SELECT count(*) FROM erp_sync.sync_log WHERE outcome = 'retry'")?;
    let r = w.query(
        "SELECT total, success, failed, success_rate::float8 FROM erp_sync.stats('1 hour')",
        &[],
    )?;
    let (total, success, failed): (i64, i64, i64) = (r[0].get(0), r[0].get(1), r[0].get(2));
    println!("OUTAGE retried_attempts={retries} syncs={total} success={success} failed={failed}");
    assert!(retries > 3, "{retries}");
    assert_eq!(failed, 0);
    assert_eq!(total, success, "every sync counted once");
    assert_eq!(r[0].get::<_, Option<f64>>(3), Some(100.0));
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.alerts WHERE code IN ('low_success_rate', 'too_many_failures')")?,
        0
    );
    Ok(())
}

#[test]
fn session_expiry_is_not_an_attempt() -> Result<()> {
    let w = World::start()?;
    let ids = contacts(&w, 2, 200)?;
    let s = w.sidecar("w1", &[])?;
    w.settle(SETTLE, &[&s])?;
    w.faults(json!({"expire_next": 2}))?;
    let more = contacts(&w, 3, 210)?;
    w.settle(SETTLE, &[&s])?;
    assert_each_once(&w, &ids)?;
    assert_each_once(&w, &more)?;
    // One attempt each: the claim's (an expired session is repeated inside the call, or given back).
    assert_eq!(
        w.count("SELECT coalesce(max(attempts), 0)::bigint FROM erp_sync.outbox WHERE kind = 'customer'")?,
        1
    );
    Ok(())
}

#[test]
fn business_refusal_is_dead_at_once() -> Result<()> {
    let w = World::start()?;
    w.faults(json!({"refuse": [{"field": "name", "value": "禁止客户", "text": "保存失败：客户名称不允许"}]}))?;
    let bad = w.contact(&NewContact::personal("禁止客户", &mobile(300)))?;
    w.signal(bad, "很好")?;
    let good = w.contact(&NewContact::personal("正常客户", &mobile(301)))?;
    let s = w.sidecar("w1", &[])?;
    w.settle(SETTLE, &[&s])?;
    let rows = w.rows_of(bad)?;
    assert_eq!(rows[0].1, "dead");
    // one attempt (its claim), no retry
    assert_eq!(
        w.count(&format!("SELECT attempts::bigint FROM erp_sync.outbox WHERE contact_id = '{bad}' AND kind = 'customer'"))?,
        1
    );
    assert!(
        rows[0]
            .2
            .as_deref()
            .unwrap_or("")
            .contains("客户名称不允许"),
        "{rows:?}"
    );
    assert_eq!(
        rows[1].1, "dead",
        "follow-up of a customer that is not in the ERP: {rows:?}"
    );
    assert_eq!(
        w.count(&format!("SELECT count(*) FROM erp_sync.sync_log WHERE contact_id = '{bad}' AND outcome = 'failed' AND action = 'create'"))?,
        1
    );
    assert_eq!(
        w.erp_by_khid(&format!("WX{good}"))?.len(),
        1,
        "other contacts are not blocked"
    );

    // retry_failed brings the dead rows back; with the refusal lifted they go through, in order.
    w.faults(json!({"refuse": []}))?;
    w.exec(&format!("SELECT erp_sync.retry_failed('{bad}')"))?;
    w.settle(SETTLE, &[&s])?;
    assert_eq!(w.erp_by_khid(&format!("WX{bad}"))?.len(), 1);
    assert!(
        w.rows_of(bad)?.iter().all(|r| r.1 == "done"),
        "{:?}",
        w.rows_of(bad)?
    );
    Ok(())
}

#[test]
fn ok_but_not_persisted_is_caught_by_read_back() -> Result<()> {
    let w = World::start()?;
    w.faults(json!({"not_persisted_next": 2}))?;
    let ids = contacts(&w, 3, 400)?;
    let s = w.sidecar("w1", &[])?;
    w.settle(SETTLE, &[&s])?;
    assert_each_once(&w, &ids)?;
    assert!(w.count("SELECT coalesce(sum(attempts), 0) FROM erp_sync.outbox")? >= 1);
    Ok(())
}

#[test]
fn retries_exhausted_is_dead_with_last_error() -> Result<()> {
    let w = World::start()?;
    w.faults(json!({"error_rate": 1.0}))?;
    let id = w.contact(&NewContact::personal("总失败", &mobile(500)))?;
    let s = w.sidecar("w1", &[("ERP_SYNC_ENGINE_MAX_ATTEMPTS", "3")])?;
    w.settle(SETTLE, &[&s])?;
    let r = w.query(
        "SELECT status, attempts, last_error FROM erp_sync.outbox WHERE contact_id = $1::bigint::text",
        &[&id],
    )?;
    assert_eq!(r[0].get::<_, String>(0), "dead");
    assert_eq!(r[0].get::<_, i32>(1), 3);
    assert!(r[0].get::<_, Option<String>>(2).is_some());
    Ok(())
}

/// A refused ERP login (a wrong password) is not the rows' fault, and people are told: the rows
/// wait unspent, `erp_sync.alerts` fires `erp_login_failed` with the ERP's own text, every waiting
/// contact's `contact_status.last_error` says what it waits for, and the log says it once — not
/// once per row or per retry — however many rows and pause cycles go by. A sidecar with the right
/// password clears all of it and syncs each contact once.
#[test]
fn refused_login_is_signalled_and_keeps_rows_until_fixed() -> Result<()> {
    let w = World::start()?;
    let ids = contacts(&w, 20, 600)?;
    // Short pauses and login backoff: several pause cycles (each one claims and fails a row) and
    // every failed login the client allows happen within the test's window.
    let mut bad = w.sidecar(
        "w1",
        &[
            ("ERP_SYNC_ERP_PASSWORD", "wrong-pw-7391"),
            ("ERP_SYNC_ENGINE_BACKOFF_MAX_MS", "300"),
            ("ERP_SYNC_ERP_RELOGIN_BACKOFF_MS", "200"),
        ],
    )?;
    let alert = |w: &World| -> Result<Option<(String, String)>> {
        let r = w.query(
            "SELECT message, message_en FROM erp_sync.alerts WHERE code = 'erp_login_failed'",
            &[],
        )?;
        Ok(r.first().map(|r| (r.get(0), r.get(1))))
    };
    assert!(
        e2e::wait_until(Duration::from_secs(30), || matches!(alert(&w), Ok(Some(_)))),
        "no erp_login_failed alert; log:\n{}",
        bad.proc.output()
    );
    let (message, message_en) = alert(&w)?.unwrap_or_default();
    assert!(message.contains("用户名或密码错误"), "{message}");
    assert!(
        message_en.contains("用户名或密码错误") && message_en.contains("w1"),
        "{message_en}"
    );
    assert!(message_en.contains("20 outbox rows wait"), "{message_en}");
    let waiting = "SELECT count(*) FROM erp_sync.contact_status
                   WHERE sync_state = 'pending'
                     AND last_error LIKE 'waiting for a working ERP login: the ERP refuses it since %: 用户名或密码错误'";
    assert_eq!(w.count(waiting)?, 20, "every waiting contact says why");
    // Many pause cycles later, still one state: one line in the log.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status IN ('dead', 'done')")?,
        0
    );
    // (rows being claimed and given back right now carry their claim's attempt for a moment)
    assert_eq!(
        w.count(
            "SELECT coalesce(sum(attempts), 0) FROM erp_sync.outbox WHERE status <> 'running'"
        )?,
        0,
        "not spent"
    );
    let logins = w.sim.get("/_sim/stats")?["logins_failed"]
        .as_i64()
        .unwrap_or(0);
    assert!(logins <= 3, "no login hammering: {logins} failed logins");
    let out = bad.proc.output();
    let loud: Vec<&str> = out
        .lines()
        .filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && l.contains("login"))
        .collect();
    let rows_tried =
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE last_error IS NOT NULL")?;
    println!(
        "LOGIN_REFUSED waiting_rows=20 rows_tried={rows_tried} failed_logins={logins} log_lines={} warn_or_error_lines={}",
        out.lines().count(),
        loud.len()
    );
    assert_eq!(
        loud.len(),
        1,
        "one warning for one state change, got:\n{}",
        loud.join("\n")
    );
    assert!(loud[0].contains("ERP login refused"), "{}", loud[0]);
    assert!(
        !out.contains("wrong-pw-7391"),
        "the password is never logged"
    );
    assert_eq!(bad.proc.terminate(Duration::from_secs(10))?, Some(0));
    // stopped, it has given every row back unspent
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status <> 'pending' OR attempts <> 0")?,
        0,
        "every row pending with no attempt spent after the refused sidecar stopped"
    );

    let good = w.sidecar("w2", &[])?;
    w.settle(SETTLE, &[&good])?;
    assert_each_once(&w, &ids)?;
    assert_eq!(alert(&w)?, None, "the alert clears once a login works");
    assert_eq!(w.count(waiting)?, 0);
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.workers WHERE erp_login_error IS NOT NULL")?,
        0
    );
    Ok(())
}

/// A row whose processing kills the worker — here its ERP call hangs and the sidecar is SIGKILLed
/// each time, by the same worker id (its restart gives the row back) and by others (the row comes
/// back when its lease expires) — is attempted at most `engine.max_attempts` times: then it is
/// dead with a message that says what happened, and other contacts go on.
#[test]
fn a_row_that_kills_the_worker_ends_dead_after_max_attempts() -> Result<()> {
    let w = World::start()?;
    let id = w.contact(&NewContact::personal("致命客户", &mobile(800)))?;
    // The customer row's first ERP call is the khid lookup: it hangs for a minute.
    w.faults(json!({"hang_rate": 1.0, "hang_ms": 60000, "paths": ["custom/list.asp"]}))?;
    let env = [
        ("ERP_SYNC_ENGINE_MAX_ATTEMPTS", "3"),
        ("ERP_SYNC_ERP_TIMEOUT_MS", "60000"),
    ];
    let customer_row = |w: &World| -> Result<(String, i32)> {
        let r = w.query(
            "SELECT status, attempts FROM erp_sync.outbox WHERE contact_id = $1::bigint::text AND kind = 'customer'",
            &[&id],
        )?;
        Ok((r[0].get(0), r[0].get(1)))
    };
    for (round, worker) in [(1, "w1"), (2, "w1"), (3, "w2")] {
        let mut s = w.sidecar(worker, &env)?;
        assert!(
            e2e::wait_until(Duration::from_secs(20), || {
                customer_row(&w).is_ok_and(|r| r == ("running".to_string(), round))
            }),
            "round {round}: {:?}",
            customer_row(&w)
        );
        // in the hanging ERP call now
        std::thread::sleep(Duration::from_millis(300));
        s.proc.kill()?;
    }
    w.faults(json!({"hang_rate": 0.0, "paths": []}))?;
    let other = w.contact(&NewContact::personal("正常客户", &mobile(801)))?;
    let s = w.sidecar("w3", &env)?;
    w.settle(SETTLE, &[&s])?;
    let r = w.query(
        "SELECT status, attempts, coalesce(last_error, '') FROM erp_sync.outbox WHERE contact_id = $1::bigint::text AND kind = 'customer'",
        &[&id],
    )?;
    let (status, attempts, err): (String, i32, String) = (r[0].get(0), r[0].get(1), r[0].get(2));
    assert_eq!((status.as_str(), attempts), ("dead", 3), "{err}");
    assert!(
        err.contains("3 of 3 attempts") && err.contains("died or hung"),
        "{err}"
    );
    assert!(w.erp_by_khid(&format!("WX{id}"))?.is_empty());
    assert_eq!(
        w.erp_by_khid(&format!("WX{other}"))?.len(),
        1,
        "other contacts go on"
    );
    // A dead row is visible with its reason.
    let state: String = w.query(
        "SELECT sync_state FROM erp_sync.contact_status WHERE contact_id = $1::bigint::text",
        &[&id],
    )?[0]
        .get(0);
    assert_eq!(state, "failed");
    // ... and counted as one failed sync, with the same reason, by the worker whose claim ended it.
    let log = w.query(
        "SELECT action, coalesce(error, ''), worker FROM erp_sync.sync_log
         WHERE contact_id = $1::bigint::text AND outcome = 'failed'",
        &[&id],
    )?;
    assert_eq!(log.len(), 1, "one failed sync");
    assert_eq!(log[0].get::<_, String>(0), "create");
    assert_eq!(log[0].get::<_, String>(1), err);
    assert_eq!(log[0].get::<_, Option<String>>(2).as_deref(), Some("w3"));
    Ok(())
}

/// A sidecar started against a database whose extension is missing or of another version says so
/// and what to run, and changes nothing (it never claims with queries of another protocol).
#[test]
fn a_database_of_another_extension_version_is_refused_at_start() -> Result<()> {
    let w = World::start()?;
    let id = w.contact(&NewContact::personal("版本客户", &mobile(900)))?;
    assert_eq!(w.rows_of(id)?.len(), 1, "queued");
    // What ALTER EXTENSION would record for an older install (as superuser: the test's shortcut).
    w.exec("UPDATE pg_extension SET extversion = '0.1.0' WHERE extname = 'erp_sync'")?;
    let err = match w.erp_sync(&["run", "--once"], &[]) {
        Ok(out) => panic!("ran against erp_sync 0.1.0: {out}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("the database has the extension erp_sync 0.1.0")
            && err.contains("ALTER EXTENSION erp_sync UPDATE TO"),
        "{err}"
    );
    assert_eq!(
        w.count(&format!("SELECT count(*) FROM erp_sync.outbox WHERE contact_id = '{id}' AND (attempts > 0 OR status <> 'pending')"))?,
        0,
        "nothing claimed"
    );
    let err = match w.erp_sync(&["reconcile"], &[]) {
        Ok(out) => panic!("reconciled against erp_sync 0.1.0: {out}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("erp_sync 0.1.0"), "{err}");
    w.exec(&format!(
        "UPDATE pg_extension SET extversion = '{}' WHERE extname = 'erp_sync'",
        env!("CARGO_PKG_VERSION")
    ))?;
    let out = w.erp_sync(&["run", "--once"], &[])?;
    assert!(out.contains("done="), "{out}");
    assert!(w.erp_ord(id)?.is_some(), "{out} {:?}", w.rows_of(id)?);
    Ok(())
}
