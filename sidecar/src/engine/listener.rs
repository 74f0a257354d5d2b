//! The wake-up side: a dedicated connection that `LISTEN`s on the extension's channel.
//!
//! NOTIFY is only a hint (the trigger sends it only when some worker says it is idle, and a
//! notification can be lost with a dropped connection), so the engine also polls every
//! `poll_interval_ms`. This task:
//! - connects, issues `LISTEN`, and wakes the engine at once (a poll right after every (re)connect
//!   covers whatever was notified while it was away);
//! - forwards each notification as a wake-up;
//! - every `health_ms` runs `SELECT 1` with a timeout on the listening connection, so a silently
//!   dead connection (half-open TCP, killed backend) is noticed and replaced;
//! - reconnects with capped exponential backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::backoff::Backoff;
use crate::config::DatabaseConfig;
use crate::db;

#[derive(Clone)]
pub struct ListenerOptions {
    pub db: DatabaseConfig,
    pub health_ms: u64,
    pub reconnect_max_ms: u64,
}

/// Spawn the listener. `healthy` is true while a LISTEN is in place.
pub fn spawn(
    opts: ListenerOptions,
    wake: Arc<Notify>,
    healthy: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let backoff = Backoff::new(200, opts.reconnect_max_ms.max(200));
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            match listen_once(&opts, &wake, &healthy, &mut shutdown).await {
                Ok(Stop::Shutdown) => return,
                Ok(Stop::Lost(why)) => {
                    tracing::warn!(reason = %why, "listener connection lost; reconnecting");
                    failures = 1;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, attempt = failures, "listener cannot connect");
                }
            }
            healthy.store(false, Ordering::Relaxed);
            let delay = backoff.delay(failures);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    })
}

enum Stop {
    Shutdown,
    Lost(String),
}

async fn listen_once(
    opts: &ListenerOptions,
    wake: &Arc<Notify>,
    healthy: &AtomicBool,
    shutdown: &mut watch::Receiver<bool>,
) -> crate::error::Result<Stop> {
    let mut pg = db::pg_config(&opts.db)?;
    // Identifiable in pg_stat_activity (the pool's connections are `erp-sync`).
    pg.application_name("erp-sync-listener");
    let (client, mut connection) = pg.connect(NoTls).await?;
    // The driver wakes the engine itself (no hop through this task: a notification is on the
    // latency path of every idle-time sync). `alive` closes when the driver ends.
    let (alive, mut ended) = mpsc::channel::<()>(1);
    let driver_wake = Arc::clone(wake);
    let driver = tokio::spawn(async move {
        let _alive = alive;
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(_)) => {
                    crate::metrics::notification_received();
                    driver_wake.notify_one();
                }
                Ok(AsyncMessage::Notice(n)) => {
                    tracing::debug!(notice = %n.message(), "listener notice")
                }
                Ok(_) => {}
                Err(e) => return e.to_string(),
            }
        }
        "connection closed".to_string()
    });
    let result = async {
        // The channel is the extension's setting, read at every (re)connect: one place to set it.
        let channel = db::notify_channel(&client).await?;
        client
            .batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\"")))
            .await?;
        healthy.store(true, Ordering::Relaxed);
        crate::metrics::listener_connected();
        tracing::info!(%channel, "listening");
        // Poll at once: anything enqueued while we were not listening.
        wake.notify_one();
        let health = Duration::from_millis(opts.health_ms.max(100));
        let mut tick = tokio::time::interval(health);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = ended.recv() => return Ok(Stop::Lost("connection ended".into())),
                _ = tick.tick() => {
                    match tokio::time::timeout(health, client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Ok(Stop::Lost(format!("health check failed: {e}"))),
                        Err(_) => return Ok(Stop::Lost("health check timed out".into())),
                    }
                }
                _ = shutdown.changed() => return Ok(Stop::Shutdown),
            }
        }
    }
    .await;
    driver.abort();
    match driver.await {
        Ok(reason) => tracing::debug!(%reason, "listener driver ended"),
        Err(e) if e.is_cancelled() => {}
        Err(e) => tracing::warn!(error = %e, "listener driver panicked"),
    }
    result
}
