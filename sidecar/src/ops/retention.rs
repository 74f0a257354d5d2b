//! Retention job: every `retention.interval_ms` (first run at start-up), call
//! `erp_sync.cleanup(retention.batch_size)` until it reports no more work. Each call is its own
//! short transaction deleting at most one batch per table (finished outbox rows older than the
//! setting `retention.done_days`, sync_log rows older than `retention.sync_log_days`), with
//! `retention.pause_ms` between batches, so there is no long lock and no long-running
//! transaction. Several sidecars may run it at once: the function skips rows locked by another.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::watch;

use super::periodic::{next_every, Service};
use crate::config::RetentionConfig;
use crate::db::pool_err;
use crate::error::{Error, Result};

const CLEANUP: &str = include_str!("../../queries/monitor_cleanup.sql");

/// Totals of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: i64,
    pub sync_log: i64,
    pub batches: u32,
}

/// The retention job as a periodic service (due at start-up, then every `interval_ms`).
pub struct Retention {
    pool: Pool,
    cfg: RetentionConfig,
}

impl Retention {
    pub fn new(pool: Pool, cfg: RetentionConfig) -> Self {
        Self { pool, cfg }
    }
}

impl Service for Retention {
    fn name(&self) -> &str {
        "retention"
    }
    fn next(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        next_every(Duration::from_millis(self.cfg.interval_ms), at, now)
    }
    fn run(
        self: Arc<Self>,
        _at: DateTime<Utc>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, ()> {
        async move {
            match run_once(&self.pool, &self.cfg, &stop).await {
                Ok(p) if p.outbox + p.sync_log > 0 => tracing::info!(
                    outbox = p.outbox,
                    sync_log = p.sync_log,
                    batches = p.batches,
                    "retention: pruned"
                ),
                Ok(p) => tracing::debug!(batches = p.batches, "retention: nothing to prune"),
                Err(e) => tracing::warn!(error = %e, "retention cleanup failed (next run retries)"),
            }
        }
        .boxed()
    }
}

/// Batches until `erp_sync.cleanup` says there is no more (or shutdown).
pub async fn run_once(
    pool: &Pool,
    cfg: &RetentionConfig,
    stop: &watch::Receiver<bool>,
) -> Result<Pruned> {
    let mut p = Pruned::default();
    loop {
        let v: Value = {
            let c = pool.get().await.map_err(pool_err)?;
            c.query_one(CLEANUP, &[&cfg.batch_size]).await?.try_get(0)?
        };
        let get = |k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
        p.outbox += get("outbox");
        p.sync_log += get("sync_log");
        p.batches += 1;
        tracing::debug!(
            outbox = get("outbox"),
            sync_log = get("sync_log"),
            batch = p.batches,
            "retention batch"
        );
        let more = v
            .get("more")
            .and_then(Value::as_bool)
            .ok_or_else(|| Error::Protocol(format!("erp_sync.cleanup returned {v}")))?;
        if !more || *stop.borrow() {
            return Ok(p);
        }
        tokio::time::sleep(Duration::from_millis(cfg.pause_ms)).await;
    }
}
