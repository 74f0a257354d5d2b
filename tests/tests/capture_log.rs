//! The capture log (`capture.mode = log`) across real sessions, no sidecar: the expansion's batch
//! rule (PgQ's: committed in this snapshot, not in the last one) in the orders that matter.
//! Each signal becomes exactly one follow-up row, so a row skipped or expanded twice shows as 0
//! or 2 follow-ups for its signal.
//!
//! - A transaction that started first and commits last is expanded by the later batch, once;
//!   the one committed meanwhile is not held back by it.
//! - Two expansions at once: the second skips (SKIP LOCKED on the cursor) without waiting.
//! - Many writers and two expanders concurrently, with the log rotating every 16 transaction ids:
//!   every signal expanded exactly once, and the expanded log tables truncated.
//! - A batch bounded by `max_statements` stops at a transaction boundary.

mod sync_util;

use anyhow::{bail, Result};
use e2e::wait_until;
use std::time::{Duration, Instant};
use sync_util::{mobile, World};

fn connect(w: &World) -> Result<postgres::Client> {
    Ok(postgres::Client::connect(&w.pg.url(), postgres::NoTls)?)
}

/// A world in log mode with `contacts` admitted contacts (ids 1..), their customer rows expanded.
fn log_world(contacts: i64) -> Result<World> {
    let w = World::start()?;
    w.exec(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('capture.mode', 'log'), ('capture.log_rotate_xids', '16') \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    )?;
    for n in 1..=contacts {
        w.exec(&format!(
            "INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             VALUES ({n}, 'personal', '客户{n}', '{}', true, 80, 'white')",
            mobile(n)
        ))?;
    }
    expand(&mut connect(&w)?, 1000)?;
    if w.count("SELECT count(*) FROM erp_sync.outbox WHERE kind = 'customer'")? != contacts {
        bail!("the contacts' customer rows were not expanded");
    }
    Ok(w)
}

fn expand(db: &mut postgres::Client, max: i32) -> Result<i64> {
    Ok(db.query_one("SELECT erp_sync.expand($1)", &[&max])?.get(0))
}

fn signal(db: &mut impl postgres::GenericClient, contact: i64, text: &str) -> Result<i64> {
    Ok(db
        .query_one(
            "INSERT INTO mp.signals (contact_id, content) VALUES ($1, $2) RETURNING id",
            &[&contact, &text],
        )?
        .get(0))
}

/// Follow-up rows per signal id, for the signals that do not have exactly one.
fn not_once(w: &World) -> Result<Vec<(i64, i64)>> {
    Ok(w.query(
        "SELECT s.id, count(o.id) FROM mp.signals s
             LEFT JOIN erp_sync.outbox o ON o.kind = 'followup' AND o.ref_id = s.id
             GROUP BY s.id HAVING count(o.id) <> 1 ORDER BY s.id",
        &[],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

fn followups_of(w: &World, signal: i64) -> Result<i64> {
    w.count(&format!(
        "SELECT count(*) FROM erp_sync.outbox WHERE kind = 'followup' AND ref_id = {signal}"
    ))
}

#[test]
fn a_transaction_committing_after_a_later_one_is_expanded_once_by_the_next_batch() -> Result<()> {
    let w = log_world(2)?;
    let mut expander = connect(&w)?;
    let mut s1 = connect(&w)?;
    let mut t1 = s1.transaction()?;
    let a = signal(&mut t1, 1, "发合同")?; // the older transaction id
    let mut s2 = connect(&w)?;
    let b = signal(&mut s2, 2, "面谈")?; // younger, committed first (autocommit)
    assert_eq!(
        expand(&mut expander, 1000)?,
        1,
        "b's statement, not held back by t1"
    );
    assert_eq!((followups_of(&w, a)?, followups_of(&w, b)?), (0, 1));
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.captured")?,
        0,
        "t1's row is not visible yet to anyone else"
    );
    t1.commit()?;
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.captured")?,
        1,
        "now it waits, visibly"
    );
    assert_eq!(
        w.count("SELECT rows FROM erp_sync.queue WHERE kind = 'followup' AND status = 'pending'")?,
        2,
        "b's follow-up row and a's captured statement"
    );
    assert_eq!(
        expand(&mut expander, 1000)?,
        1,
        "t1's statement, in the next batch"
    );
    assert_eq!(expand(&mut expander, 1000)?, 0, "and nothing twice");
    assert_eq!((followups_of(&w, a)?, followups_of(&w, b)?), (1, 1));
    // a rolled-back write leaves nothing to expand
    let mut t3 = s1.transaction()?;
    signal(&mut t3, 1, "x")?;
    t3.rollback()?;
    assert_eq!(expand(&mut expander, 1000)?, 0);
    assert!(not_once(&w)?.is_empty());
    Ok(())
}

#[test]
fn a_second_expansion_at_the_same_moment_skips_without_waiting() -> Result<()> {
    let w = log_world(1)?;
    let mut db = connect(&w)?;
    let s = signal(&mut db, 1, "签约")?;
    let mut e1 = connect(&w)?;
    let mut t = e1.transaction()?;
    assert_eq!(
        t.query_one("SELECT erp_sync.expand(1000)", &[])?
            .get::<_, i64>(0),
        1
    );
    let mut e2 = connect(&w)?;
    e2.batch_execute("SET lock_timeout = '2s'")?;
    let started = Instant::now();
    assert_eq!(
        expand(&mut e2, 1000)?,
        0,
        "the cursor is held: skip, never wait"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "it did not wait for the lock"
    );
    t.commit()?;
    assert_eq!(expand(&mut e2, 1000)?, 0, "expanded by e1, once");
    assert_eq!(followups_of(&w, s)?, 1);
    Ok(())
}

#[test]
fn concurrent_writers_and_expanders_expand_every_statement_once_and_rotate_the_log() -> Result<()> {
    const WRITERS: i64 = 4;
    const PER_WRITER: i64 = 40;
    let w = log_world(WRITERS)?;
    let url = w.pg.url();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for n in 1..=WRITERS {
        let url = url.clone();
        writers.push(std::thread::spawn(move || -> Result<()> {
            let mut db = postgres::Client::connect(&url, postgres::NoTls)?;
            for i in 0..PER_WRITER {
                let mut t = db.transaction()?;
                signal(&mut t, n, &format!("消息{i}"))?;
                // commit orders differ from id orders: some transactions stay open a while
                if (i + n) % 5 == 0 {
                    std::thread::sleep(Duration::from_millis(15));
                }
                t.commit()?;
            }
            Ok(())
        }));
    }
    let mut expanders = Vec::new();
    for _ in 0..2 {
        let (url, done) = (url.clone(), done.clone());
        expanders.push(std::thread::spawn(move || -> Result<i64> {
            let mut db = postgres::Client::connect(&url, postgres::NoTls)?;
            let (mut total, deadline) = (0, Instant::now() + Duration::from_secs(60));
            while !done.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                total += expand(&mut db, 7)?;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(total)
        }));
    }
    for h in writers {
        h.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    }
    let mut db = connect(&w)?;
    assert!(
        wait_until(Duration::from_secs(30), || {
            w.count("SELECT count(*) FROM erp_sync.captured")
                .is_ok_and(|n| n == 0)
        }),
        "the expanders did not catch up"
    );
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut expanded = 0;
    for h in expanders {
        expanded += h
            .join()
            .map_err(|_| anyhow::anyhow!("expander panicked"))??;
    }
    expanded += expand(&mut db, 1000)?;
    assert_eq!(
        expanded,
        WRITERS * PER_WRITER,
        "one log row per statement, each expanded once"
    );
    assert_eq!(
        not_once(&w)?,
        vec![],
        "signals without exactly one follow-up (id, rows)"
    );
    // rotation: every 16 ids writers move to the other table; a table all expanded and no longer
    // written is truncated. Two turns on (ids used up by autocommit statements), both are empty.
    let truncated_during_run =
        w.count("SELECT count(*) FROM erp_sync.capture_log")? < WRITERS * PER_WRITER;
    for _ in 0..2 {
        for _ in 0..20 {
            db.query_one("SELECT pg_current_xact_id()", &[])?;
        }
        assert_eq!(expand(&mut db, 1000)?, 0);
    }
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.capture_log")?,
        0,
        "the log was not truncated"
    );
    assert!(
        truncated_during_run,
        "no table was truncated while the writers ran"
    );
    assert_eq!(not_once(&w)?, vec![], "after the truncations");
    Ok(())
}

#[test]
fn a_bounded_batch_stops_at_a_transaction_boundary() -> Result<()> {
    let w = log_world(1)?;
    let mut db = connect(&w)?;
    let ids: Vec<i64> = (0..10)
        .map(|i| signal(&mut db, 1, &format!("第{i}条")))
        .collect::<Result<_>>()?;
    let mut batches = Vec::new();
    for _ in 0..6 {
        batches.push(expand(&mut db, 3)?);
    }
    assert_eq!(batches, vec![3, 3, 3, 1, 0, 0]);
    for id in ids {
        assert_eq!(followups_of(&w, id)?, 1, "signal {id}");
    }
    Ok(())
}

/// A log table that is locked (an expansion truncating it holds ACCESS EXCLUSIVE until it
/// commits): the writer's capture cannot go straight into the heap and is written through SPI in
/// a subtransaction instead, waiting for the lock; under a `lock_timeout` that wait fails inside
/// the subtransaction, and the platform's write still succeeds with the signal recorded `skipped`
/// and the reason. Nothing is lost silently, and no platform write fails.
#[test]
fn a_locked_log_table_waits_or_records_the_failure_and_never_fails_the_write() -> Result<()> {
    let w = log_world(1)?;
    let mut holder = connect(&w)?;
    let mut writer = connect(&w)?;
    let lock = |db: &mut postgres::Client| -> Result<()> {
        db.batch_execute(
            "BEGIN; LOCK TABLE erp_sync.capture_log_0, erp_sync.capture_log_1 IN ACCESS EXCLUSIVE MODE",
        )?;
        Ok(())
    };

    // 1. the write waits for the lock, then its capture is logged
    lock(&mut holder)?;
    let url = w.pg.url();
    let waiting = std::thread::spawn(move || -> Result<i64> {
        let mut db = postgres::Client::connect(&url, postgres::NoTls)?;
        signal(&mut db, 1, "在吗")
    });
    let waits_for_a_lock = || {
        w.count(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO mp.signals%'",
        )
        .is_ok_and(|n| n == 1)
    };
    assert!(
        wait_until(Duration::from_secs(10), waits_for_a_lock),
        "the capture waits for the locked log table"
    );
    assert!(!waiting.is_finished());
    holder.batch_execute("COMMIT")?;
    let first = match waiting.join() {
        Ok(r) => r?,
        Err(_) => bail!("the writer thread panicked"),
    };
    expand(&mut connect(&w)?, 1000)?;
    assert_eq!(followups_of(&w, first)?, 1, "logged once the lock was free");

    // 2. under a lock_timeout the wait fails inside the capture's subtransaction
    lock(&mut holder)?;
    writer.batch_execute("SET lock_timeout = '200ms'")?;
    let second = signal(&mut writer, 1, "考虑一下")?;
    holder.batch_execute("COMMIT")?;
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM mp.signals WHERE id = {second}"
        ))?,
        1,
        "the platform's write succeeded"
    );
    let recorded = w.query(
        "SELECT status, coalesce(last_error, '') FROM erp_sync.outbox
         WHERE kind = 'followup' AND ref_id = $1",
        &[&second],
    )?;
    assert_eq!(recorded.len(), 1, "the failed capture is recorded once");
    let (status, error): (String, String) = (recorded[0].get(0), recorded[0].get(1));
    assert_eq!(status, "skipped");
    assert!(
        error.contains("capture failed") && error.contains("lock timeout"),
        "{error}"
    );
    expand(&mut connect(&w)?, 1000)?;
    assert_eq!(
        followups_of(&w, second)?,
        1,
        "and nothing else was logged for it"
    );
    Ok(())
}
