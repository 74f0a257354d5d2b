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
            .filter_map(|f| field(f, "@intro2"))
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
    w.settle_resolving(SETTLE, &[&s2])?;
    no_duplicates(&w, &ids)?;
    followups_in_order(&w, &ids, false)?;
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
    w.settle_resolving(SETTLE, &[&s])?;
    no_duplicates(&w, &ids)?;
    followups_in_order(&w, &ids, false)?;
    Ok(())
}

#[test]
fn three_sidecars_at_once() -> Result<()> {
    three_sidecars("direct")
}

/// The same with the capture log: three sidecars expand (each claim first) while they drain; no
/// statement is expanded twice (a second follow-up would show) or skipped (a contact lost).
#[test]
fn three_sidecars_at_once_with_the_capture_log() -> Result<()> {
    three_sidecars("log")
}

fn three_sidecars(mode: &str) -> Result<()> {
    let w = World::start()?;
    w.exec(&format!(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('capture.mode', '{mode}') \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    ))?;
    w.faults(json!({"latency_ms": 10, "jitter_ms": 20}))?;
    let ids = load(&w, 40, 3000)?;
    // Small batches: one claim of the first sidecar must not take all 40 contacts at once.
    let small = [("ERP_SYNC_ENGINE_BATCH_SIZE", "4")];
    let a = w.sidecar("a", &small)?;
    let b = w.sidecar("b", &small)?;
    let c = w.sidecar("c", &small)?;
    w.settle_resolving(SETTLE, &[&a, &b, &c])?;
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
    w.settle_resolving(SETTLE, &[&s2])?;
    no_duplicates(&w, &ids)?;
    Ok(())
}

#[test]
fn heartbeats_keep_leases_through_calls_longer_than_the_lease() -> Result<()> {
    let w = World::start()?;
    // Every ERP call takes longer than the 2 s lease; only heartbeats keep the rows ours.
    w.faults(json!({"latency_ms": 2500}))?;
    let ids: Vec<i64> = (0..3)
        .map(|i| {
            w.contact(&NewContact::personal(
                &format!("慢客户{i}"),
                &mobile(5000 + i),
            ))
        })
        .collect::<Result<_>>()?;
    let slow = [("ERP_SYNC_ERP_TIMEOUT_MS", "10000")];
    let a = w.sidecar("a", &slow)?;
    let b = w.sidecar("b", &slow)?;
    w.settle_resolving(SETTLE, &[&a, &b])?;
    no_duplicates(&w, &ids)?;
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.sync_log WHERE action = 'create'")?,
        3,
        "each create ran once"
    );
    for s in [&a, &b] {
        assert!(
            !s.proc.output().contains("lease lost"),
            "{}",
            s.proc.output()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The reliability suite (issue 6): the same scenarios at scale. `make chaos` runs them with
// CHAOS_CONTACTS=10000 (scripts/chaos.sh); inside `make test` they run small. Each prints ONE
// line of figures and asserts the invariants: nothing lost, no ERP duplicate, order kept.

fn chaos_contacts() -> i64 {
    std::env::var("CHAOS_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

fn chaos_kills() -> u32 {
    std::env::var("CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// Settle time allowed for `n` contacts (each with a thread and three signals).
fn chaos_settle(n: i64) -> Duration {
    Duration::from_secs(120 + u64::try_from(n).unwrap_or(0) / 4)
}

/// A pseudo-random duration in [lo, hi) ms (no rand crate needed for this).
fn jitter_ms(lo: u64, hi: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Duration::from_millis(lo + u64::from(nanos) % (hi - lo).max(1))
}

/// `n` admissible contacts, each with a thread and three signals (signal k of every contact in
/// statement k, so each contact's signals are captured in order). Returns the contact ids.
fn chaos_load(w: &World, n: i64) -> Result<Vec<i64>> {
    w.exec(&format!(
        "WITH c AS (
           INSERT INTO mp.contacts (type, name, phone, phone_verified, score, list_status, wechat_id, address)
           SELECT 'personal', '混沌客户' || g, '136' || lpad(g::text, 8, '0'), true, 60 + g % 40, 'white',
                  'wxc' || g, '上海市'
           FROM generate_series(1, {n}) g RETURNING id)
         INSERT INTO mp.threads (contact_id, score, summary) SELECT id, 70, '摘要' FROM c"
    ))?;
    for k in 0..3 {
        w.exec(&format!(
            "INSERT INTO mp.signals (contact_id, content)
             SELECT id, 'c' || id || '-{k} 考虑中' FROM mp.contacts WHERE name LIKE '混沌客户%' ORDER BY id"
        ))?;
    }
    Ok(w.query(
        "SELECT id FROM mp.contacts WHERE name LIKE '混沌客户%' ORDER BY id",
        &[],
    )?
    .iter()
    .map(|r| r.get::<_, i64>(0))
    .collect())
}

/// The figures of one scenario.
#[derive(Debug, Default)]
struct Figures {
    written: usize,
    synced: usize,
    skipped: Vec<(String, i64)>,
    dead: i64,
    lost: usize,
    dup_khid: usize,
    dup_mobile: usize,
    order_violations: usize,
    followup_resends: usize,
    /// follow-ups in doubt, resolved from what the ERP held: (sent, not sent)
    in_doubt: (usize, usize),
}

fn figures(w: &World, ids: &[i64]) -> Result<Figures> {
    let mut f = Figures {
        written: ids.len(),
        ..Figures::default()
    };
    let customers = w.erp_customers()?;
    let mut by_khid: HashMap<String, Vec<String>> = HashMap::new();
    let mut by_mobile: HashMap<String, usize> = HashMap::new();
    for c in &customers {
        if let Some(k) = field(c, "khid") {
            by_khid
                .entry(k)
                .or_default()
                .push(field(c, "ord").unwrap_or_default());
        }
        if let Some(m) = field(c, "mobile").filter(|m| !m.is_empty()) {
            *by_mobile.entry(m).or_default() += 1;
        }
    }
    f.dup_khid = by_khid.values().filter(|v| v.len() > 1).count();
    f.dup_mobile = by_mobile.values().filter(|n| **n > 1).count();
    for r in w.query(
        "SELECT coalesce(last_error, '(no reason)'), count(*) FROM erp_sync.outbox
         WHERE status = 'skipped' GROUP BY 1 ORDER BY 2 DESC",
        &[],
    )? {
        f.skipped.push((r.get(0), r.get(1)));
    }
    f.dead = w.count("SELECT count(*) FROM erp_sync.outbox WHERE status = 'dead'")?;
    let skipped_contacts: std::collections::HashSet<i64> = w
        .query(
            "SELECT DISTINCT contact_id::bigint FROM erp_sync.outbox WHERE kind = 'customer' AND status = 'skipped'
             AND contact_id NOT IN (SELECT contact_id FROM erp_sync.outbox WHERE kind = 'customer' AND status = 'done')",
            &[],
        )?
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect();
    let mut fu_by_ord: HashMap<String, Vec<String>> = HashMap::new();
    for x in w.erp_followups()? {
        if let (Some(o), Some(c)) = (field(&x, "ord"), field(&x, "@intro2")) {
            fu_by_ord.entry(o).or_default().push(c);
        }
    }
    for id in ids {
        let found = by_khid.get(&format!("WX{id}"));
        let Some(ord) = found.and_then(|v| v.first()) else {
            if !skipped_contacts.contains(id) {
                f.lost += 1;
            }
            continue;
        };
        f.synced += 1;
        let mut got = fu_by_ord.get(ord).cloned().unwrap_or_default();
        let before = got.len();
        got.dedup();
        f.followup_resends += before - got.len();
        let want: Vec<String> = (0..3).map(|k| format!("c{id}-{k} 考虑中")).collect();
        if got != want {
            // Missing follow-ups are lost work; anything else is an order violation.
            let missing = want.iter().filter(|x| !got.contains(x)).count();
            if missing > 0 {
                f.lost += missing;
            } else {
                f.order_violations += 1;
            }
        }
    }
    Ok(f)
}

fn report(scenario: &str, f: &Figures) {
    let skipped: Vec<String> = f
        .skipped
        .iter()
        .map(|(r, n)| format!("{n}×{r:?}"))
        .collect();
    println!(
        "CHAOS {scenario}: written={} synced={} skipped=[{}] dead={} lost={} dup_khid={} dup_mobile={} order_violations={} followup_resends={} in_doubt_sent={} in_doubt_unsent={}",
        f.written,
        f.synced,
        skipped.join(", "),
        f.dead,
        f.lost,
        f.dup_khid,
        f.dup_mobile,
        f.order_violations,
        f.followup_resends,
        f.in_doubt.0,
        f.in_doubt.1
    );
}

fn check(f: &Figures) {
    assert_eq!(f.lost, 0, "lost work: {f:?}");
    assert_eq!(f.dead, 0, "dead rows: {f:?}");
    assert_eq!((f.dup_khid, f.dup_mobile), (0, 0), "ERP duplicates: {f:?}");
    assert_eq!(f.order_violations, 0, "order violations: {f:?}");
    // engine.in_doubt_followups = "hold": a follow-up that was perhaps sent waits for a person
    // (here: resolved from what the ERP holds) instead of being sent again
    assert_eq!(f.followup_resends, 0, "follow-ups sent twice: {f:?}");
}

/// Rows may need many attempts under heavy faults: no row should die of bad luck here.
const PATIENT: &[(&str, &str)] = &[("ERP_SYNC_ENGINE_MAX_ATTEMPTS", "1000")];

#[test]
fn chaos_sigkill_at_random_moments() -> Result<()> {
    let n = chaos_contacts();
    let w = World::start()?;
    w.faults(json!({"latency_ms": 2, "jitter_ms": 4}))?;
    let ids = chaos_load(&w, n)?;
    for _ in 0..chaos_kills() {
        let mut s = w.sidecar("k", PATIENT)?;
        std::thread::sleep(jitter_ms(300, 2500));
        s.proc.kill()?;
    }
    let s = w.sidecar("k", PATIENT)?;
    let in_doubt = w.settle_resolving(chaos_settle(n), &[&s])?;
    let mut f = figures(&w, &ids)?;
    f.in_doubt = in_doubt;
    report("sigkill", &f);
    check(&f);
    Ok(())
}

#[test]
fn chaos_mixed_erp_faults() -> Result<()> {
    let n = std::env::var("CHAOS_FAULT_CONTACTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(chaos_contacts);
    let w = World::start()?;
    // 20% 5xx, 5% hangs past the 1.5 s client timeout, 1% malformed JSON, 2% saves answered ok
    // but not stored (caught by the read-back verification), sessions expiring every 30 s.
    w.faults(json!({"error_rate": 0.2, "hang_rate": 0.05, "hang_ms": 2000, "malformed_rate": 0.01,
                    "not_persisted_rate": 0.02, "session_ttl_ms": 30000, "expire_sessions_now": true}))?;
    let ids = chaos_load(&w, n)?;
    let s = w.sidecar("f", PATIENT)?;
    let in_doubt = w.settle_resolving(chaos_settle(n) * 4, &[&s])?;
    let mut f = figures(&w, &ids)?;
    f.in_doubt = in_doubt;
    report("erp_faults", &f);
    check(&f);
    Ok(())
}

#[test]
fn chaos_postgres_restarts_fast_and_immediate() -> Result<()> {
    let n = chaos_contacts();
    let w = World::start()?;
    w.faults(json!({"latency_ms": 2, "jitter_ms": 4}))?;
    let ids = chaos_load(&w, n)?;
    let s = w.sidecar("p", PATIENT)?;
    for mode in ["fast", "immediate", "fast", "immediate"] {
        std::thread::sleep(jitter_ms(300, 2000));
        w.pg.restart(mode)?;
    }
    let in_doubt = w.settle_resolving(chaos_settle(n), &[&s])?;
    let mut f = figures(&w, &ids)?;
    f.in_doubt = in_doubt;
    report("pg_restarts", &f);
    check(&f);
    Ok(())
}

#[test]
fn chaos_three_sidecars_one_killed_repeatedly() -> Result<()> {
    let n = chaos_contacts();
    let w = World::start()?;
    w.faults(json!({"latency_ms": 2, "jitter_ms": 6}))?;
    let ids = chaos_load(&w, n)?;
    let a = w.sidecar("a", PATIENT)?;
    let b = w.sidecar("b", PATIENT)?;
    for _ in 0..chaos_kills() {
        let mut c = w.sidecar("c", PATIENT)?;
        std::thread::sleep(jitter_ms(300, 2500));
        c.proc.kill()?;
    }
    let in_doubt = w.settle_resolving(chaos_settle(n), &[&a, &b])?;
    let mut f = figures(&w, &ids)?;
    f.in_doubt = in_doubt;
    report("three_sidecars", &f);
    check(&f);
    Ok(())
}
