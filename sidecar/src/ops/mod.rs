//! Operations around the sync engine.
//!
//! - [`http`]: `/healthz`, `/metrics`, the status page and `/api/status` (+ starting the
//!   monitoring tasks next to `erp-sync run`)
//! - [`metrics`]: process-wide counters and the ERP latency histogram (Prometheus text)
//! - [`alerts`]: `erp_sync.alerts` → webhook, once per state change across all sidecars
//! - [`retention`]: periodic `erp_sync.cleanup()` in batches
//! - [`pull`]: ERP customers (`list.asp`, all pages) → `erp_sync.erp_customers`
//! - [`reconcile`]: platform links/contacts vs pulled ERP customers → `erp_sync.reconcile_*`
//! - [`schedule`]: cron schedules (pull, sweep, reconcile), once per period across sidecars

pub mod alerts;
pub mod http;
pub mod metrics;
pub mod pull;
pub mod reconcile;
pub mod retention;
pub mod schedule;
