//! Wake-up path: with the fallback poll made very long, only LISTEN/NOTIFY can wake an idle sidecar
//! quickly — before and after PostgreSQL restarts under it (the listener reconnects and re-LISTENs).

mod sync_util;

use anyhow::Result;
use e2e::wait_until;
use std::time::{Duration, Instant};
use sync_util::{mobile, NewContact, World};

const SLOW_POLL: &[(&str, &str)] = &[("ERP_SYNC_ENGINE_POLL_INTERVAL_MS", "600000")];

fn idle(w: &World) -> bool {
    w.count("SELECT count(*) FROM erp_sync.workers WHERE idle")
        .is_ok_and(|n| n == 1)
}

fn synced_within(w: &World, id: i64, t: Duration) -> bool {
    wait_until(t, || matches!(w.erp_ord(id), Ok(Some(_))))
}

#[test]
fn notify_wakes_an_idle_sidecar_even_after_a_postgres_restart() -> Result<()> {
    let w = World::start()?;
    let s = w.sidecar("w1", SLOW_POLL)?;
    assert!(
        wait_until(Duration::from_secs(10), || idle(&w)),
        "worker never went idle: {}",
        s.proc.output()
    );

    let t = Instant::now();
    let a = w.contact(&NewContact::personal("通知一", &mobile(71)))?;
    assert!(
        synced_within(&w, a, Duration::from_secs(5)),
        "not woken by NOTIFY: {}",
        s.proc.output()
    );
    eprintln!("woken and synced in {:?}", t.elapsed());

    w.pg.restart("fast")?;
    // The listener notices, reconnects with backoff, re-LISTENs and polls once.
    assert!(wait_until(Duration::from_secs(15), || s
        .proc
        .output()
        .matches("listening")
        .count()
        >= 2));
    assert!(wait_until(Duration::from_secs(10), || idle(&w)));
    let b = w.contact(&NewContact::personal("通知二", &mobile(72)))?;
    assert!(
        synced_within(&w, b, Duration::from_secs(5)),
        "not woken after restart: {}",
        s.proc.output()
    );
    Ok(())
}

#[test]
fn busy_sidecar_gets_no_notifications_but_drains() -> Result<()> {
    let w = World::start()?;
    w.faults(serde_json::json!({"latency_ms": 30}))?;
    let s = w.sidecar("w1", SLOW_POLL)?;
    assert!(wait_until(Duration::from_secs(10), || idle(&w)));
    let mut ids = Vec::new();
    for i in 0..15 {
        ids.push(w.contact(&NewContact::personal(
            &format!("批量{i:02}"),
            &mobile(80 + i),
        ))?);
    }
    w.settle(Duration::from_secs(30), &[&s])?;
    for id in ids {
        assert!(w.erp_ord(id)?.is_some());
    }
    Ok(())
}

#[test]
fn killed_listener_backend_is_replaced() -> Result<()> {
    let w = World::start()?;
    let s = w.sidecar("w1", SLOW_POLL)?;
    assert!(wait_until(Duration::from_secs(10), || idle(&w)));
    let killed = w.count(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'erp-sync-listener') t",
    )?;
    assert_eq!(killed, 1, "one listener connection");
    assert!(wait_until(Duration::from_secs(10), || s
        .proc
        .output()
        .matches("listening")
        .count()
        >= 2));
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
    let s = w.sidecar("w1", SLOW_POLL)?;
    assert!(wait_until(Duration::from_secs(10), || idle(&w)));
    assert!(
        s.proc.output().contains("channel=Erp Sync Wake"),
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
