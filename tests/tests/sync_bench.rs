//! Throughput of the whole loop, measured by hand (`cargo test -p e2e --test sync_bench --
//! --ignored --nocapture`; `make bench` measures the same with the release binary in
//! bench/sync_sections.py). Contacts fully synced per second against the simulator, with zero added
//! latency and with 50 ms per ERP call, at the default concurrency of 5 and no rate limit.
//! `SYNC_BENCH_CONTACTS=N` runs both with N contacts (default 500 and 150).
//!
//! A figure counts only for a correct run, so it fails unless every contact was synced exactly once
//! (one ERP customer per `WX{id}`, a customer_link with an ord, one assignment per thread), every
//! outbox row is done (none dead), and the rate is positive.

mod sync_util;

use anyhow::{ensure, Result};
use serde_json::json;
use std::time::{Duration, Instant};
use sync_util::{mobile, World};

fn run(latency_ms: u64, n: i64) -> Result<f64> {
    let w = World::start()?;
    w.faults(json!({"latency_ms": latency_ms}))?;
    // Load first (one transaction), then start the sidecar: measures draining, not inserting.
    let mut sql = String::from("BEGIN;");
    for i in 0..n {
        sql.push_str(&format!(
            "WITH c AS (INSERT INTO mp.contacts (type, name, phone, phone_verified, score, list_status, wechat_id)
                 VALUES ('personal', '客户{i:05}', '{}', true, 70, 'white', 'wx{i}') RETURNING id)
             INSERT INTO mp.threads (contact_id, score, summary) SELECT id, 70, '摘要' FROM c;",
            mobile(10_000 + i)
        ));
    }
    sql.push_str("COMMIT;");
    w.exec(&sql)?;
    let rows = w.unfinished()?;
    let t = Instant::now();
    let s = w.sidecar("bench", &[("ERP_SYNC_ENGINE_POLL_INTERVAL_MS", "300")])?;
    w.settle(Duration::from_secs(600), &[&s])?;
    let secs = t.elapsed().as_secs_f64();
    let calls = w.sim.get("/_sim/stats")?["requests"]
        .as_f64()
        .unwrap_or(0.0);
    let rate = n as f64 / secs;
    eprintln!(
        "latency {latency_ms:>3} ms: {n} contacts ({rows} outbox rows, {calls} ERP requests) in {secs:.2} s = {rate:.1} contacts/s, {:.1} ERP calls/contact",
        calls / n as f64
    );

    // ---- what was measured is a correct run ----
    let contacts = w.count("SELECT count(*) FROM mp.contacts")?;
    ensure!(contacts == n, "{contacts} contacts loaded, expected {n}");
    ensure!(
        rows >= 2 * n,
        "{rows} outbox rows for {n} contacts with a thread each"
    );
    let dead = w.count("SELECT count(*) FROM erp_sync.outbox WHERE status = 'dead'")?;
    ensure!(dead == 0, "{dead} outbox rows dead");
    let linked = w.count(
        "SELECT count(*) FROM mp.contacts c
         JOIN erp_sync.customer_link l ON l.contact_id = c.id::text AND l.erp_ord IS NOT NULL",
    )?;
    ensure!(linked == n, "{linked} of {n} contacts have an ERP ord");
    let khids = w.erp_khid_counts()?;
    let dup: Vec<_> = khids.iter().filter(|(_, c)| **c != 1).collect();
    ensure!(dup.is_empty(), "khids not created exactly once: {dup:?}");
    for id in w.query("SELECT id FROM mp.contacts", &[])? {
        let khid = format!("WX{}", id.get::<_, i64>(0));
        ensure!(khids.get(&khid) == Some(&1), "no ERP customer {khid}");
    }
    ensure!(
        khids.len() as i64 == n,
        "{} ERP customers for {n} contacts",
        khids.len()
    );
    let not_done = w.count("SELECT count(*) FROM erp_sync.outbox WHERE status <> 'done'")?;
    ensure!(not_done == 0, "{not_done} outbox rows not done");
    let assignments = w.erp_assignments()?.len() as i64;
    ensure!(
        assignments == n,
        "{assignments} ERP assignments for {n} threads"
    );
    ensure!(
        rate.is_finite() && rate > 0.0 && calls >= n as f64,
        "rate {rate}, {calls} ERP requests"
    );
    Ok(rate)
}

fn contacts(default: i64) -> i64 {
    std::env::var("SYNC_BENCH_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

#[test]
#[ignore]
fn bench_sync_throughput() -> Result<()> {
    run(0, contacts(500))?;
    run(50, contacts(150))?;
    Ok(())
}
