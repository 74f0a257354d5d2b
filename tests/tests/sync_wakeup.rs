//! Wake-up path: with the fallback poll made very long, only LISTEN/NOTIFY can wake an idle sidecar
//! quickly — before and after PostgreSQL restarts under it (the listener reconnects and re-LISTENs).
//! What the listener did is read from the sidecar's own `/metrics` (each sidecar on its own port):
//! `erp_sync_listener_connects_total` (successful LISTENs), `erp_sync_listener_up`, and
//! `erp_sync_notifications_total` (NOTIFYs received).

mod sync_util;

use anyhow::Result;
use e2e::{wait_until, Sidecar};
use std::time::{Duration, Instant};
use sync_util::{http_addr, metric_of, mobile, NewContact, World};

const POLL: (&str, &str) = ("ERP_SYNC_ENGINE_POLL_INTERVAL_MS", "600000");

/// A sidecar polling only every 10 minutes, with its ops HTTP server on `addr` (and `extra`
/// settings).
fn slow_poll_sidecar(w: &World, addr: &str, extra: &[(&str, &str)]) -> Result<Sidecar> {
    let mut env = vec![POLL, ("ERP_SYNC_HTTP_LISTEN_ADDR", addr)];
    env.extend_from_slice(extra);
    w.sidecar("w1", &env)
}

/// `erp_sync_listener_connects_total` (0 while it cannot be scraped).
fn connects(addr: &str) -> f64 {
    metric_of(addr, "erp_sync_listener_connects_total").unwrap_or(0.0)
}

fn listener_up(addr: &str) -> bool {
    metric_of(addr, "erp_sync_listener_up") == Some(1.0)
}

fn notifications(addr: &str) -> Result<f64> {
    sync_util::scrape(addr).and_then(|t| {
        sync_util::metric(&t, "erp_sync_notifications_total")
            .ok_or_else(|| anyhow::anyhow!("no erp_sync_notifications_total in\n{t}"))
    })
}

/// Waits until the sidecar has LISTENed `n` times in all and the LISTEN is in place now.
fn listening(addr: &str, n: f64, t: Duration) -> bool {
    wait_until(t, || connects(addr) >= n && listener_up(addr))
}

fn idle(w: &World) -> bool {
    w.count("SELECT count(*) FROM erp_sync.workers WHERE idle")
        .is_ok_and(|n| n == 1)
}

fn busy(w: &World) -> bool {
    w.count("SELECT count(*) FROM erp_sync.workers WHERE NOT idle")
        .is_ok_and(|n| n == 1)
}

fn synced_within(w: &World, id: i64, t: Duration) -> bool {
    wait_until(t, || matches!(w.erp_ord(id), Ok(Some(_))))
}

#[test]
fn notify_wakes_an_idle_sidecar_even_after_a_postgres_restart() -> Result<()> {
    let w = World::start()?;
    let addr = http_addr();
    let s = slow_poll_sidecar(&w, &addr, &[])?;
    assert!(
        wait_until(Duration::from_secs(10), || idle(&w)),
        "worker never went idle: {}",
        s.proc.output()
    );
    assert!(
        listening(&addr, 1.0, Duration::from_secs(5)),
        "no LISTEN: {}",
        s.proc.output()
    );
    assert_eq!(connects(&addr), 1.0);
    let before = notifications(&addr)?;

    let t = Instant::now();
    let a = w.contact(&NewContact::personal("通知一", &mobile(71)))?;
    assert!(
        synced_within(&w, a, Duration::from_secs(5)),
        "not woken by NOTIFY: {}",
        s.proc.output()
    );
    eprintln!("woken and synced in {:?}", t.elapsed());
    assert!(notifications(&addr)? > before, "synced without a NOTIFY?");

    w.pg.restart("fast")?;
    // The listener notices, reconnects with backoff, re-LISTENs (a second successful LISTEN) and
    // polls once.
    assert!(
        listening(&addr, 2.0, Duration::from_secs(15)),
        "no re-LISTEN after the restart (connects {}): {}",
        connects(&addr),
        s.proc.output()
    );
    assert!(wait_until(Duration::from_secs(10), || idle(&w)));
    let before = notifications(&addr)?;
    let b = w.contact(&NewContact::personal("通知二", &mobile(72)))?;
    assert!(
        synced_within(&w, b, Duration::from_secs(5)),
        "not woken after restart: {}",
        s.proc.output()
    );
    assert!(notifications(&addr)? > before, "synced without a NOTIFY?");
    Ok(())
}

/// The capture trigger NOTIFYs only when a fresh worker is idle (pg_ext/src/capture/wake.rs): a
/// sidecar is woken by the first of 15 contacts and then held busy by the simulator (every ERP
/// call takes 4 s) while the other 14 are written, each in its own transaction and connection.
/// It is told about the first write only, not about the 14 written while it was busy, and it
/// still drains them all without its (10-minute) poll.
///
/// Whether the sidecar is busy is read from the database, not left to timing: the 14 writes
/// happen after its worker row says busy and before any outbox row has finished, so a slow
/// machine cannot turn a real idle period into a false failure (the earlier form of this test,
/// 30 ms per call, failed in CI when the sidecar drained a batch and rightly went idle between
/// two writes).
#[test]
fn busy_sidecar_gets_no_notifications_but_drains() -> Result<()> {
    const HOLD_MS: u64 = 4000;
    let w = World::start()?;
    let addr = http_addr();
    // ERP timeout longer than the held calls: they must complete, not time out and retry.
    let s = slow_poll_sidecar(&w, &addr, &[("ERP_SYNC_ERP_TIMEOUT_MS", "20000")])?;
    assert!(wait_until(Duration::from_secs(10), || idle(&w)));
    assert!(
        listening(&addr, 1.0, Duration::from_secs(5)),
        "{}",
        s.proc.output()
    );
    let before = notifications(&addr)?;
    w.faults(serde_json::json!({ "latency_ms": HOLD_MS }))?;
    let mut ids = vec![w.contact(&NewContact::personal("批量00", &mobile(80)))?];
    assert!(
        wait_until(Duration::from_secs(5), || busy(&w)),
        "the first write did not make the sidecar busy: {}",
        s.proc.output()
    );
    let t = Instant::now();
    for i in 1..15 {
        ids.push(w.contact(&NewContact::personal(
            &format!("批量{i:02}"),
            &mobile(80 + i),
        ))?);
    }
    let writing = t.elapsed();
    // No outbox row has finished: the first (held) ERP call is still in hand, so the sidecar has
    // been busy through every write; it cannot have gone idle in between.
    let finished =
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status NOT IN ('pending', 'running')")?;
    assert!(
        busy(&w) && finished == 0,
        "the held ERP call ended during the 14 writes ({writing:?}, {finished} rows finished): cannot judge"
    );
    let while_busy = notifications(&addr)? - before;
    w.faults(serde_json::json!({ "latency_ms": 0 }))?;
    w.settle(Duration::from_secs(30), &[&s])?;
    for id in &ids {
        assert!(w.erp_ord(*id)?.is_some(), "contact {id} not synced");
    }
    let received = notifications(&addr)? - before;
    eprintln!("15 writes ({writing:?} for the 14 while busy), {received} notifications");
    assert_eq!(
        (while_busy, received),
        (1.0, 1.0),
        "notifications (during the writes, in all): only the write to the idle sidecar wakes it: {}",
        s.proc.output()
    );
    Ok(())
}

#[test]
fn killed_listener_backend_is_replaced() -> Result<()> {
    let w = World::start()?;
    let addr = http_addr();
    let s = slow_poll_sidecar(&w, &addr, &[])?;
    assert!(wait_until(Duration::from_secs(10), || idle(&w)));
    assert!(
        listening(&addr, 1.0, Duration::from_secs(5)),
        "{}",
        s.proc.output()
    );
    assert_eq!(connects(&addr), 1.0);
    let listeners =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'erp-sync-listener'";
    let killed = w.count(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'erp-sync-listener') t",
    )?;
    assert_eq!(killed, 1, "one listener connection");
    assert!(
        listening(&addr, 2.0, Duration::from_secs(10)),
        "no re-LISTEN after the backend was killed (connects {}): {}",
        connects(&addr),
        s.proc.output()
    );
    assert_eq!(w.count(listeners)?, 1, "one listener connection again");
    let a = w.contact(&NewContact::personal("监听重连", &mobile(91)))?;
    assert!(
        synced_within(&w, a, Duration::from_secs(5)),
        "{}",
        s.proc.output()
    );
    Ok(())
}

/// The NOTIFY channel has one place: the extension's `notify.channel` setting. The capture
/// trigger notifies on it and the sidecar LISTENs on what the database says (read at every
/// connect), so a changed channel still wakes an idle sidecar at once.
#[test]
fn the_notify_channel_is_the_extensions_setting() -> Result<()> {
    let w = World::start()?;
    w.exec(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('notify.channel', 'Erp Sync Wake')",
    )?;
    let s = slow_poll_sidecar(&w, &http_addr(), &[])?;
    assert!(wait_until(Duration::from_secs(10), || idle(&w)));
    // The worker row can say idle a moment before the listener's log line is written: wait for it.
    assert!(
        wait_until(Duration::from_secs(10), || s
            .proc
            .output()
            .contains("channel=Erp Sync Wake")),
        "{}",
        s.proc.output()
    );
    let a = w.contact(&NewContact::personal("频道客户", &mobile(73)))?;
    assert!(
        synced_within(&w, a, Duration::from_secs(5)),
        "not woken on the configured channel: {}",
        s.proc.output()
    );
    Ok(())
}
