//! Crashes and concurrency end to end: SIGKILL mid-batch, PostgreSQL restarted under the sidecar,
//! three sidecars on one database. Nothing lost, no ERP customer created twice, per-contact order kept.

mod sync_util;

use anyhow::Result;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;
use sync_util::{field, mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(90);

fn no_duplicates(w: &World, ids: &[i64]) -> Result<()> {
    let mut by_khid: HashMap<String, usize> = HashMap::new();
    for c in w.erp_customers()? {
        if let Some(k) = field(&c, "khid") {
            *by_khid.entry(k).or_default() += 1;
        }
    }
    for id in ids {
        assert_eq!(
            by_khid.get(&format!("WX{id}")).copied().unwrap_or(0),
            1,
            "contact {id}"
        );
    }
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status <> 'done'")?,
        0
    );
    Ok(())
}

/// Follow-ups of each contact arrived in signal order. With `allow_repeat`, an immediate repeat of
/// one follow-up is tolerated: a crash between the ERP's reply and the write-back resends it (the
/// follow-up call has no idempotency key; customers do, through the khid lookup).
fn followups_in_order(w: &World, ids: &[i64], allow_repeat: bool) -> Result<()> {
    let fu = w.erp_followups()?;
    for id in ids {
        let ord = w.erp_ord(*id)?.expect("linked").to_string();
        let mut got: Vec<String> = fu
            .iter()
            .filter(|f| field(f, "ord").as_deref() == Some(ord.as_str()))
            .filter_map(|f| field(f, "c1"))
            .collect();
        if allow_repeat {
            let before = got.len();
            got.dedup();
            if got.len() != before {
                eprintln!(
                    "contact {id}: {} follow-up(s) resent after the crash",
                    before - got.len()
                );
            }
        }
        let want: Vec<String> = (0..3).map(|k| format!("c{id}-{k} 考虑中")).collect();
        assert_eq!(got, want, "contact {id}");
    }
    Ok(())
}

fn load(w: &World, n: i64, base: i64) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = w.contact(&NewContact::personal(
            &format!("客户{i:03}"),
            &mobile(base + i),
        ))?;
        for k in 0..3 {
            w.signal(id, &format!("c{id}-{k} 考虑中"))?;
        }
        ids.push(id);
    }
    Ok(ids)
}

#[test]
fn sigkill_mid_batch_then_restart() -> Result<()> {
    let w = World::start()?;
    w.faults(json!({"latency_ms": 40}))?;
    let ids = load(&w, 30, 1000)?;
    let mut s = w.sidecar("w1", &[])?;
    assert!(e2e::wait_until(Duration::from_secs(30), || {
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status = 'done'")
            .is_ok_and(|n| n >= 20)
    }));
    s.proc.kill()?;
    let held = w.count("SELECT count(*) FROM erp_sync.outbox WHERE status = 'running'")?;
    eprintln!("killed with {held} rows running");
    // A different worker id: the dead worker's rows come back only by lease expiry.
    let s2 = w.sidecar("w2", &[])?;
    w.settle(SETTLE, &[&s2])?;
    no_duplicates(&w, &ids)?;
    followups_in_order(&w, &ids, true)?;
    Ok(())
}

#[test]
fn postgres_restart_under_the_sidecar() -> Result<()> {
    let w = World::start()?;
    w.faults(json!({"latency_ms": 20}))?;
    let mut ids = load(&w, 10, 2000)?;
    let s = w.sidecar("w1", &[])?;
    std::thread::sleep(Duration::from_millis(500));
    w.pg.restart("immediate")?;
    ids.extend(load(&w, 10, 2100)?);
    w.settle(SETTLE, &[&s])?;
    no_duplicates(&w, &ids)?;
    followups_in_order(&w, &ids, false)?;
    Ok(())
}

#[test]
fn three_sidecars_at_once() -> Result<()> {
    let w = World::start()?;
    w.faults(json!({"latency_ms": 10, "jitter_ms": 20}))?;
    let ids = load(&w, 40, 3000)?;
    let a = w.sidecar("a", &[])?;
    let b = w.sidecar("b", &[])?;
    let c = w.sidecar("c", &[])?;
    w.settle(SETTLE, &[&a, &b, &c])?;
    no_duplicates(&w, &ids)?;
    followups_in_order(&w, &ids, false)?;
    let workers = w.count("SELECT count(DISTINCT worker) FROM erp_sync.sync_log")?;
    assert!(workers >= 2, "work was shared ({workers} workers)");
    Ok(())
}

#[test]
fn sigterm_is_graceful() -> Result<()> {
    let w = World::start()?;
    w.faults(json!({"latency_ms": 50}))?;
    let ids = load(&w, 10, 4000)?;
    let mut s = w.sidecar("w1", &[])?;
    std::thread::sleep(Duration::from_millis(700));
    let code = s.proc.terminate(Duration::from_secs(10))?;
    assert_eq!(code, Some(0), "{}", s.proc.output());
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status = 'running'")?,
        0,
        "nothing left leased"
    );
    assert_eq!(w.count("SELECT count(*) FROM erp_sync.workers")?, 0);
    let s2 = w.sidecar("w2", &[])?;
    w.settle(SETTLE, &[&s2])?;
    no_duplicates(&w, &ids)?;
    Ok(())
}

#[test]
fn heartbeats_keep_leases_through_calls_longer_than_the_lease() -> Result<()> {
    let w = World::start()?;
    // Every ERP call takes longer than the 2 s lease; only heartbeats keep the rows ours.
    w.faults(json!({"latency_ms": 2500}))?;
    let ids: Vec<i64> = (0..3)
        .map(|i| w.contact(&NewContact::personal(&format!("慢客户{i}"), &mobile(5000 + i))))
        .collect::<Result<_>>()?;
    let slow = [("ERP_SYNC_ERP_TIMEOUT_MS", "10000")];
    let a = w.sidecar("a", &slow)?;
    let b = w.sidecar("b", &slow)?;
    w.settle(SETTLE, &[&a, &b])?;
    no_duplicates(&w, &ids)?;
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.sync_log WHERE action = 'create'")?,
        3,
        "each create ran once"
    );
    for s in [&a, &b] {
        assert!(!s.proc.output().contains("lease lost"), "{}", s.proc.output());
    }
    Ok(())
}
