//! Operations around the sync engine (they use `crate::db`, `crate::erp`, `crate::metrics`; never `crate::engine`).
//!
//! - [`http`]: `/healthz`, `/metrics`, the status page and `/api/status` (+ starting the
//!   monitoring tasks next to `erp-sync run`)
//! - [`operator`]: the operator page's API: search, a contact's timeline, signed actions
//! - [`periodic`]: the one loop running alerts, retention and the schedules, each when due
//! - [`alerts`]: `erp_sync.alerts` → webhook, once per state change across all sidecars
//! - [`retention`]: periodic `erp_sync.cleanup()` in batches
//! - [`pull`]: ERP customers (`list.asp`, all pages) → `erp_sync.erp_customers`
//! - [`reconcile`]: platform links/contacts vs pulled ERP customers → `erp_sync.reconcile_*`
//! - [`schedule`]: cron schedules (pull, sweep, reconcile), once per period across sidecars

pub mod alerts;
pub mod http;
pub mod operator;
pub mod periodic;
pub mod pull;
pub mod reconcile;
pub mod retention;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use periodic::{PeriodicHandle, Service};

/// Start the periodic services of `erp-sync run`: alerts (when `alerts.webhook_url` is set),
/// retention (when `retention.interval_ms` > 0) and the schedules (unless `schedules_off`, e.g.
/// `--once` or a dry run, or `schedule.enabled = false`), in the one loop of [`periodic`]. It
/// stops when `signal` turns true or at [`PeriodicHandle::stop`]. Never fails the run: problems
/// are logged.
pub fn spawn_periodic(
    cfg: &Config,
    worker: &str,
    signal: tokio::sync::watch::Receiver<bool>,
    schedules_off: bool,
) -> PeriodicHandle {
    periodic::spawn(
        services(cfg, worker, schedules_off),
        Duration::from_millis(cfg.schedule.shutdown_deadline_ms),
        signal,
    )
}

fn services(cfg: &Config, worker: &str, schedules_off: bool) -> Vec<Arc<dyn Service>> {
    let mut out: Vec<Arc<dyn Service>> = Vec::new();
    let wants_schedules = !schedules_off && cfg.schedule.enabled;
    if cfg.alerts.webhook_url.is_empty() && cfg.retention.interval_ms == 0 && !wants_schedules {
        return out;
    }
    let pool = match pull::ops_pool(&cfg.database) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "alerts, retention and schedules disabled: cannot build their database pool");
            return out;
        }
    };
    if !cfg.alerts.webhook_url.is_empty() {
        match alerts::Alerts::new(pool.clone(), cfg.alerts.clone(), worker.to_string()) {
            Ok(a) => out.push(Arc::new(a)),
            Err(e) => {
                tracing::error!(error = %e, "alerts disabled: cannot build the webhook client")
            }
        }
    }
    if cfg.retention.interval_ms > 0 {
        out.push(Arc::new(retention::Retention::new(
            pool.clone(),
            cfg.retention.clone(),
        )));
    }
    if wants_schedules {
        match schedule::services(cfg, pool, worker) {
            Ok(list) => out.extend(list),
            Err(e) => tracing::error!(error = %e, "schedules disabled"),
        }
    } else {
        tracing::info!("schedules disabled");
    }
    out
}
