//! Isolation tests with real sessions, no sidecar: the guarantees the outbox protocol and the
//! capture trigger give concurrent transactions, checked in every order that matters.
//! (The coalesce race — an edit during a claim — is `sync_concurrent_edits`.)
//!
//! - Two workers claiming at once (`erp_sync.claim`, SKIP LOCKED) take disjoint rows, never wait
//!   for each other's open transaction, and a third one finds nothing left.
//! - The capture trigger's wake-up NOTIFY reaches a listener only when the writing transaction
//!   commits; a rolled-back write wakes nobody.

mod sync_util;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use postgres::fallible_iterator::FallibleIterator;
use sync_util::{mobile, World};

const CLAIM: &str =
    "SELECT id, contact_id::bigint FROM erp_sync.claim($1, 60000, $2, 50, '{}', 8, true)";

fn connect(w: &World) -> Result<postgres::Client> {
    Ok(postgres::Client::connect(&w.pg.url(), postgres::NoTls)?)
}

fn insert_contact(db: &mut impl postgres::GenericClient, name: &str, phone: &str) -> Result<i64> {
    Ok(db
        .query_one(
            "INSERT INTO mp.contacts (type, name, phone, phone_verified, score, list_status, wechat_id)
             VALUES ('personal', $1, $2, true, 75, 'white', 'wx_' || $2) RETURNING id",
            &[&name, &phone],
        )?
        .try_get(0)?)
}

#[test]
fn two_workers_claim_disjoint_rows_without_waiting() -> Result<()> {
    let w = World::start()?;
    let mut ids = HashSet::new();
    {
        let mut db = connect(&w)?;
        for i in 0..20 {
            ids.insert(insert_contact(
                &mut db,
                &format!("并发领取{i:02}"),
                &mobile(3000 + i),
            )?);
        }
    }
    let (mut a, mut b, mut c) = (connect(&w)?, connect(&w)?, connect(&w)?);
    // A claim that had to wait for another transaction's lock would fail here instead.
    for db in [&mut b, &mut c] {
        db.batch_execute("SET lock_timeout = '2s'")?;
    }
    let mut ta = a.transaction()?;
    let got_a: Vec<(i64, i64)> = ta
        .query(CLAIM, &[&"worker-a", &12i64])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // A's transaction is still open: its rows are locked and (for B) still pending.
    let mut tb = b.transaction()?;
    let started = Instant::now();
    let got_b: Vec<(i64, i64)> = tb
        .query(CLAIM, &[&"worker-b", &12i64])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let waited = started.elapsed();
    let mut tc = c.transaction()?;
    let got_c = tc.query(CLAIM, &[&"worker-c", &12i64])?.len();
    println!(
        "ISOLATION claims: a={} b={} c={got_c} b_took_ms={}",
        got_a.len(),
        got_b.len(),
        waited.as_millis()
    );
    assert_eq!(got_a.len(), 12, "A takes the 12 heads it asked for");
    assert_eq!(
        got_b.len(),
        8,
        "B takes the other 8, skipping A's locked rows"
    );
    assert_eq!(got_c, 0, "nothing is left for a third worker");
    let rows_a: HashSet<i64> = got_a.iter().map(|r| r.0).collect();
    let rows_b: HashSet<i64> = got_b.iter().map(|r| r.0).collect();
    assert!(rows_a.is_disjoint(&rows_b), "no row claimed twice");
    let contacts: HashSet<i64> = got_a.iter().chain(got_b.iter()).map(|r| r.1).collect();
    assert_eq!(contacts, ids, "every contact claimed by exactly one worker");
    ta.commit()?;
    tb.commit()?;
    tc.commit()?;
    let owners = w.count(
        "SELECT count(DISTINCT lease_owner) FROM erp_sync.outbox WHERE status = 'running'",
    )?;
    assert_eq!(owners, 2);
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status = 'running' AND attempts = 1")?,
        20,
        "each head counted once, by its claim"
    );
    Ok(())
}

/// Notifications `listener` receives within `wait`.
fn notifications(listener: &mut postgres::Client, wait: Duration) -> Result<usize> {
    let mut n = 0;
    let mut notes = listener.notifications();
    let mut it = notes.timeout_iter(wait);
    while let Some(note) = it.next()? {
        assert_eq!(note.channel(), "erp_sync");
        n += 1;
    }
    Ok(n)
}

#[test]
fn the_wake_up_notify_is_sent_only_at_commit() -> Result<()> {
    let w = World::start()?;
    // A fresh idle worker: the trigger wakes it (once per idle period per backend).
    w.exec(
        "INSERT INTO erp_sync.workers (worker_id, idle, idle_since, heartbeat_at)
         VALUES ('sleeper', true, now(), now())",
    )?;
    let mut listener = connect(&w)?;
    listener.batch_execute("LISTEN erp_sync")?;

    // Committed: nothing while the transaction is open, one notification at COMMIT.
    let mut writer = connect(&w)?;
    let mut tx = writer.transaction()?;
    insert_contact(&mut tx, "通知提交", &mobile(3100))?;
    let before_commit = notifications(&mut listener, Duration::from_millis(700))?;
    tx.commit()?;
    let after_commit = notifications(&mut listener, Duration::from_secs(3))?;

    // Rolled back (another backend, so it has not notified for this idle period yet): none.
    let mut other = connect(&w)?;
    let mut tx = other.transaction()?;
    insert_contact(&mut tx, "通知回滚", &mobile(3101))?;
    tx.rollback()?;
    let after_rollback = notifications(&mut listener, Duration::from_millis(1500))?;

    // A third backend that commits still wakes the worker: the rollback consumed nothing.
    let mut third = connect(&w)?;
    insert_contact(&mut third, "通知再提交", &mobile(3102))?;
    let after_third = notifications(&mut listener, Duration::from_secs(3))?;
    println!(
        "ISOLATION notify: open={before_commit} commit={after_commit} rollback={after_rollback} third={after_third}"
    );
    assert_eq!(before_commit, 0, "no NOTIFY before COMMIT");
    assert_eq!(after_commit, 1, "one NOTIFY at COMMIT");
    assert_eq!(after_rollback, 0, "a rolled-back write wakes nobody");
    assert_eq!(after_third, 1);
    Ok(())
}
