//! Operations around the sync engine (they use `crate::db`, `crate::erp`, `crate::metrics`; never `crate::engine`).
//!
//! - [`http`]: `/healthz`, `/metrics`, the status page and `/api/status` (+ starting the
//!   monitoring tasks next to `erp-sync run`)
//! - [`alerts`]: `erp_sync.alerts` → webhook, once per state change across all sidecars
//! - [`retention`]: periodic `erp_sync.cleanup()` in batches
//! - [`pull`]: ERP customers (`list.asp`, all pages) → `erp_sync.erp_customers`
//! - [`reconcile`]: platform links/contacts vs pulled ERP customers → `erp_sync.reconcile_*`
//! - [`schedule`]: cron schedules (pull, sweep, reconcile), once per period across sidecars

pub mod alerts;
pub mod http;
pub mod pull;
pub mod reconcile;
pub mod retention;
pub mod schedule;

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

/// The clock of a periodic job: first tick at once, late ticks delayed rather than bunched.
pub(crate) fn every(period_ms: u64) -> Interval {
    let mut tick = tokio::time::interval(Duration::from_millis(period_ms));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Waits for the job's next tick; false once `stop` says the process is shutting down.
pub(crate) async fn next_tick(tick: &mut Interval, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tick.tick() => {}
        _ = stop.changed() => return false,
    }
    !*stop.borrow()
}
