//! Alert notifications: every `alerts.check_interval_ms`, compare `erp_sync.alerts` with
//! `erp_sync.alert_state` (what was last notified) and POST only the differences to
//! `alerts.webhook_url`: `fired` when an alert appears (or changes level), `resolved` when it
//! clears. Nothing is sent while the state stays the same.
//!
//! Several sidecars: the comparison runs in one transaction holding
//! `pg_try_advisory_xact_lock(hashtext('erp_sync.alerts'))`; a sidecar that does not get the lock
//! skips the tick, and the state row is written in the same transaction as the POST succeeded, so
//! each change is sent once. A failed POST leaves the state unchanged: it is retried next tick
//! (at-least-once when the commit itself fails after a successful POST).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::periodic::{next_every, Service};
use crate::config::AlertsConfig;
use crate::db::pool_err;
use crate::error::{Error, Result};

mod q {
    pub const LOCK: &str = include_str!("../../queries/monitor_alert_lock.sql");
    pub const ALERTS: &str = include_str!("../../queries/monitor_alerts.sql");
    pub const STATE: &str = include_str!("../../queries/monitor_alert_state.sql");
    pub const FIRE: &str = include_str!("../../queries/monitor_alert_fire.sql");
    pub const CLEAR: &str = include_str!("../../queries/monitor_alert_clear.sql");
}

/// One active alert row.
#[derive(Debug, Clone)]
struct Alert {
    code: String,
    level: String,
    message: String,
    message_en: String,
    value: Option<f64>,
    threshold: Option<f64>,
    unit: String,
}

/// What one check did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckOutcome {
    pub locked: bool,
    pub fired: usize,
    pub resolved: usize,
    pub failed_posts: usize,
}

/// The alert check as a periodic service (due at start-up, then every `check_interval_ms`).
pub struct Alerts {
    pool: Pool,
    http: reqwest::Client,
    cfg: AlertsConfig,
    worker: String,
}

impl Alerts {
    /// Fails only when the webhook client cannot be built.
    pub fn new(pool: Pool, cfg: AlertsConfig, worker: String) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.webhook_timeout_ms))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the alert webhook client: {e}")))?;
        tracing::info!(
            check_interval_ms = cfg.check_interval_ms,
            "alert notifications enabled"
        );
        Ok(Self {
            pool,
            http,
            cfg,
            worker,
        })
    }
}

impl Service for Alerts {
    fn name(&self) -> &str {
        "alerts"
    }
    fn next(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        next_every(Duration::from_millis(self.cfg.check_interval_ms), at, now)
    }
    fn run(
        self: Arc<Self>,
        _at: DateTime<Utc>,
        _stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, ()> {
        async move {
            match check_once(&self.pool, &self.http, &self.cfg, &self.worker).await {
                Ok(o) if o.fired + o.resolved + o.failed_posts > 0 => tracing::info!(
                    fired = o.fired,
                    resolved = o.resolved,
                    failed_posts = o.failed_posts,
                    "alerts checked"
                ),
                Ok(o) => tracing::trace!(locked = o.locked, "alerts checked: no change"),
                Err(e) => tracing::warn!(error = %e, "alert check failed"),
            }
        }
        .boxed()
    }
}

/// One comparison + notification round.
pub async fn check_once(
    pool: &Pool,
    http: &reqwest::Client,
    cfg: &AlertsConfig,
    worker: &str,
) -> Result<CheckOutcome> {
    let mut out = CheckOutcome::default();
    let mut c = pool.get().await.map_err(pool_err)?;
    let tx = c.transaction().await?;
    out.locked = tx.query_one(q::LOCK, &[]).await?.try_get(0)?;
    if !out.locked {
        return Ok(out); // another sidecar is checking right now
    }
    let mut current = BTreeMap::new();
    for r in tx.query(q::ALERTS, &[]).await? {
        let a = Alert {
            code: r.try_get("code")?,
            level: r.try_get("level")?,
            message: r.try_get("message")?,
            message_en: r.try_get("message_en")?,
            value: r.try_get("value")?,
            threshold: r.try_get("threshold")?,
            unit: r.try_get("unit")?,
        };
        current.insert(a.code.clone(), a);
    }
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    for r in tx.query(q::STATE, &[]).await? {
        known.insert(r.try_get("code")?, r.try_get("level")?);
    }
    for (code, a) in &current {
        if known.get(code) == Some(&a.level) {
            continue;
        }
        let body = json!({
            "event": "fired", "code": a.code, "level": a.level, "message": a.message,
            "message_en": a.message_en, "value": a.value, "threshold": a.threshold, "unit": a.unit,
            "at": chrono::Utc::now().to_rfc3339(), "sidecar": worker,
        });
        match post(http, &cfg.webhook_url, &body).await {
            Ok(()) => {
                tx.execute(q::FIRE, &[&a.code, &a.level, &a.message, &a.value, &worker])
                    .await?;
                tracing::warn!(code = %a.code, level = %a.level, message = %a.message, "alert fired");
                out.fired += 1;
            }
            Err(e) => {
                tracing::warn!(code = %a.code, error = %e, "alert webhook failed (retried next check)");
                out.failed_posts += 1;
            }
        }
    }
    for (code, level) in &known {
        if current.contains_key(code) {
            continue;
        }
        let body = json!({
            "event": "resolved", "code": code, "level": level,
            "at": chrono::Utc::now().to_rfc3339(), "sidecar": worker,
        });
        match post(http, &cfg.webhook_url, &body).await {
            Ok(()) => {
                tx.execute(q::CLEAR, &[code]).await?;
                tracing::info!(code = %code, "alert resolved");
                out.resolved += 1;
            }
            Err(e) => {
                tracing::warn!(code = %code, error = %e, "alert webhook failed (retried next check)");
                out.failed_posts += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(out)
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Result<()> {
    let resp = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| Error::Transport(format!("alert webhook: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Error::HttpStatus {
            status: status.as_u16(),
        })
    }
}
