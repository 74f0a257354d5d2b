//! Nothing lost under concurrent edits: platform sessions keep editing contacts while sidecars
//! drain, so edits land while their contact's outbox row is being claimed. Afterwards the ERP must
//! hold every contact's final state (`lost_updates = 0`).
//!
//! The race this guards against: an edit that coalesces onto a pending twin row which a claim
//! transaction has just taken (or takes before the edit commits) would be read by nobody — the
//! claim read the payload before the edit committed, and the edit wrote no row of its own.

mod sync_util;

use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_util::{field, mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(600);

/// `make chaos` runs this large (scripts/chaos.sh: CHAOS_EDIT_CONTACTS, CHAOS_EDIT_SECS).
fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Contacts whose address in the ERP is not the platform's final address.
fn lost_updates(w: &World, ids: &[i64]) -> Result<Vec<(i64, String, Option<String>)>> {
    let mut lost = Vec::new();
    let customers = w.erp_customers()?;
    for id in ids {
        let want: String = w
            .query("SELECT address FROM mp.contacts WHERE id = $1", &[id])?
            .first()
            .context("contact row")?
            .get(0);
        let khid = format!("WX{id}");
        let got = customers
            .iter()
            .find(|c| field(c, "khid").as_deref() == Some(khid.as_str()))
            .and_then(|c| field(c, "address"));
        if got.as_deref() != Some(want.as_str()) {
            lost.push((*id, want, got));
        }
    }
    Ok(lost)
}

#[test]
fn chaos_concurrent_edits_while_three_sidecars_drain() -> Result<()> {
    let w = World::start()?;
    w.faults(serde_json::json!({"latency_ms": 1, "jitter_ms": 3}))?;
    let n = i64::try_from(env_u64("CHAOS_EDIT_CONTACTS", 400)).unwrap_or(400);
    let secs = env_u64("CHAOS_EDIT_SECS", 8);
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(w.contact(&NewContact::personal(
            &format!("并发{i:03}"),
            &mobile(9000 + i),
        ))?);
    }
    let small = [("ERP_SYNC_ENGINE_BATCH_SIZE", "8")];
    let sidecars = [
        w.sidecar("a", &small)?,
        w.sidecar("b", &small)?,
        w.sidecar("c", &small)?,
    ];
    // Four platform sessions, each editing random contacts' address for a few seconds.
    let stop = Arc::new(AtomicBool::new(false));
    let edits = Arc::new(AtomicU64::new(0));
    let mut editors = Vec::new();
    for s in 0..4u64 {
        let url = w.pg.url();
        let (stop, edits, ids) = (stop.clone(), edits.clone(), ids.clone());
        editors.push(std::thread::spawn(move || -> Result<()> {
            let mut db = postgres::Client::connect(&url, postgres::NoTls)?;
            let started = Instant::now();
            let mut k: u64 = s * 7919;
            for _ in 0..1_000_000 {
                if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(secs) {
                    break;
                }
                k = k
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = ids[(k >> 33) as usize % ids.len()];
                let n = edits.fetch_add(1, Ordering::Relaxed);
                db.execute(
                    "UPDATE mp.contacts SET address = $2 WHERE id = $1",
                    &[&id, &format!("上海市第{n}号")],
                )?;
            }
            Ok(())
        }));
    }
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for e in editors {
        e.join()
            .map_err(|_| anyhow::anyhow!("editor thread panicked"))??;
    }
    let refs: Vec<&e2e::Sidecar> = sidecars.iter().collect();
    w.settle(SETTLE, &refs)?;
    let lost = lost_updates(&w, &ids)?;
    println!(
        "CHAOS concurrent_edits: contacts={n} editors=4 sidecars=3 secs={secs} edits={} lost_updates={}",
        edits.load(Ordering::Relaxed),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "lost updates (contact, platform, ERP): {lost:?}"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status NOT IN ('done', 'skipped')")?,
        0
    );
    Ok(())
}

/// The sidecar's claim (the extension's `erp_sync.claim`), run by hand in a session of its own.
/// (contact_id is text since 0.2.0; the reference platform's keys are bigints)
const CLAIM: &str =
    "SELECT id, contact_id::bigint, kind, ref_id, template_id, attempts, head, payload
                     FROM erp_sync.claim($1, $2, $3, $4, $5, $6, $7)";

/// `(id, status)` of the contact's customer rows, by id.
fn customer_rows(db: &mut postgres::Client, id: i64) -> Result<Vec<(i64, String)>> {
    Ok(db
        .query(
            "SELECT id, status FROM erp_sync.outbox WHERE contact_id = $1::bigint::text AND kind = 'customer' ORDER BY id",
            &[&id],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Run the claim in `db`'s open transaction; returns `(id, contact_id, address in the payload)`.
fn claim(db: &mut postgres::Transaction<'_>) -> Result<Vec<(i64, i64, Option<String>)>> {
    let none: Vec<i64> = Vec::new();
    Ok(db
        .query(
            CLAIM,
            &[
                &"isolation",
                &60_000i64,
                &64i64,
                &50i64,
                &none,
                &8i32,
                &true,
            ],
        )?
        .iter()
        .map(|r| {
            let payload: Option<serde_json::Value> = r.get(7);
            (
                r.get(0),
                r.get(1),
                payload.and_then(|p| {
                    p.get("address")
                        .and_then(|a| a.as_str())
                        .map(str::to_string)
                }),
            )
        })
        .collect())
}

/// Two real sessions, every interleaving of "a claim takes the contact's pending customer row"
/// and "the platform edits the contact": whatever the order, some row that is claimed after the
/// edit commits reads the edit. No sidecar runs: the claim is the sidecar's own statement.
#[test]
fn an_edit_during_a_claim_is_never_coalesced_away() -> Result<()> {
    let w = World::start()?;
    // direct capture's coalescing, decided in the writing statement (the capture log decides at
    // the next claim: its edits are expanded into rows of their own there)
    w.exec(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('capture.mode', 'direct') \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )?;
    let url = w.pg.url();
    let id = w.contact(&NewContact::personal("隔离测试", &mobile(9901)))?;
    let mut platform = postgres::Client::connect(&url, postgres::NoTls)?;
    let mut sidecar = postgres::Client::connect(&url, postgres::NoTls)?;
    let pending =
        |db: &mut postgres::Client| -> Result<Vec<(i64, String)>> { customer_rows(db, id) };
    assert_eq!(pending(&mut platform)?.len(), 1);

    // 1. The claim takes the row (uncommitted) and reads the old address; the platform edits and
    //    commits meanwhile. The edit must get a row of its own (it may wait for the claim).
    let mut tx = sidecar.transaction()?;
    let got = claim(&mut tx)?;
    assert_eq!(got.iter().filter(|r| r.1 == id).count(), 1, "{got:?}");
    assert_eq!(got[0].2.as_deref(), Some("上海市浦东新区"));
    let editor = {
        let url = url.clone();
        std::thread::spawn(move || -> Result<u64> {
            let mut db = postgres::Client::connect(&url, postgres::NoTls)?;
            Ok(db.execute(
                "UPDATE mp.contacts SET address = '北京一' WHERE id = $1",
                &[&id],
            )?)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    tx.commit()?;
    assert_eq!(
        editor
            .join()
            .map_err(|_| anyhow::anyhow!("editor panicked"))??,
        1
    );
    let rows = pending(&mut platform)?;
    assert_eq!(
        rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["running", "pending"],
        "the edit made during the claim has a pending row of its own: {rows:?}"
    );
    // The claimed row is finished; the next claim reads the edit.
    platform.execute(
        "UPDATE erp_sync.outbox SET status = 'done', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL WHERE id = $1",
        &[&rows[0].0],
    )?;
    let mut tx = sidecar.transaction()?;
    let got = claim(&mut tx)?;
    assert_eq!(
        got.iter().find(|r| r.1 == id).and_then(|r| r.2.as_deref()),
        Some("北京一")
    );
    tx.commit()?;
    platform.execute(
        "UPDATE erp_sync.outbox SET status = 'done', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL WHERE contact_id = $1::bigint::text",
        &[&id],
    )?;

    // 2. The platform edits (a new pending row), edits again in an open transaction (coalesced
    //    onto that row), and a claim runs before it commits: the claim must not take the row the
    //    open edit relies on. After the commit, the claim takes it and reads the edit.
    platform.execute(
        "UPDATE mp.contacts SET address = '北京二' WHERE id = $1",
        &[&id],
    )?;
    let mut open = platform.transaction()?;
    open.execute(
        "UPDATE mp.contacts SET address = '北京三' WHERE id = $1",
        &[&id],
    )?;
    let mut tx = sidecar.transaction()?;
    let got = claim(&mut tx)?;
    assert!(
        got.iter().all(|r| r.1 != id),
        "a claim took the row an uncommitted edit coalesced onto: {got:?}"
    );
    tx.commit()?;
    open.commit()?;
    let mut tx = sidecar.transaction()?;
    let got = claim(&mut tx)?;
    assert_eq!(
        got.iter().find(|r| r.1 == id).and_then(|r| r.2.as_deref()),
        Some("北京三")
    );
    tx.commit()?;
    platform.execute(
        "UPDATE erp_sync.outbox SET status = 'done', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL WHERE contact_id = $1::bigint::text",
        &[&id],
    )?;

    // 3. The same with the pending row behind another row of the contact (a follow-up ahead of
    //    it): the claim takes the head but stops the chain before the row the open edit holds,
    //    without waiting for the platform's transaction.
    let signal = w.signal(id, "先来一条消息")?;
    platform.execute(
        "UPDATE mp.contacts SET address = '北京四' WHERE id = $1",
        &[&id],
    )?;
    let mut open = platform.transaction()?;
    open.execute(
        "UPDATE mp.contacts SET address = '北京五' WHERE id = $1",
        &[&id],
    )?;
    let mut tx = sidecar.transaction()?;
    tx.batch_execute("SET LOCAL lock_timeout = '5s'")?;
    let started = Instant::now();
    let got = claim(&mut tx)?;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the claim waited for the platform"
    );
    let kinds: Vec<i64> = got.iter().filter(|r| r.1 == id).map(|r| r.0).collect();
    assert_eq!(
        kinds.len(),
        1,
        "only the follow-up (signal {signal}) is claimed: {got:?}"
    );
    tx.commit()?;
    open.commit()?;
    platform.execute(
        "UPDATE erp_sync.outbox SET status = 'done', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL WHERE contact_id = $1::bigint::text AND status = 'running'",
        &[&id],
    )?;
    let mut tx = sidecar.transaction()?;
    let got = claim(&mut tx)?;
    assert_eq!(
        got.iter().find(|r| r.1 == id).and_then(|r| r.2.as_deref()),
        Some("北京五")
    );
    tx.commit()?;
    Ok(())
}
