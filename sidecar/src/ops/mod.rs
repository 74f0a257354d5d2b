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
