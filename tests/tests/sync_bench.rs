//! Throughput of the whole loop (not an assertion: `cargo test -p e2e --test sync_bench -- --ignored
//! --nocapture`). Contacts fully synced per second against the simulator, with zero added latency
//! and with 50 ms per ERP call, at the default concurrency of 5 and no rate limit.

mod sync_util;

use anyhow::Result;
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
    Ok(rate)
}

#[test]
#[ignore]
fn bench_sync_throughput() -> Result<()> {
    run(0, 500)?;
    run(50, 150)?;
    Ok(())
}
