//! erp-sync: the sidecar that drains the `erp_sync` outbox into Zhibang ERP.
//!
//! Layers (a module only uses the ones above it; `engine` and `ops` never use each other):
//! - [`error`], [`backoff`] (the retry delay policy), [`telemetry`] (tracing setup)
//! - [`config`]: the one configuration struct (file + `ERP_SYNC_*` environment), by concern
//! - [`erp`]: the Zhibang ERP client (the protocol's one owner); [`sim`]: an independent,
//!   vendor-strict ERP simulator with fault injection (`erp-sync sim`; shares nothing with `erp`)
//! - [`mapping`]: contact payload → ERP customer fields (pure)
//! - [`db`]: pool, the domain types and the calls of `sidecar/queries/`, the fleet's ERP session
//! - [`metrics`]: process-wide Prometheus/OpenMetrics series
//! - [`engine`]: listener, claim/lease, per-kind handlers, write-back (`erp-sync run`)
//! - [`ops`]: `/healthz`, `/metrics`, status page, alert webhook, retention, schedules (pull,
//!   sweep, reconciliation)

pub mod backoff;
pub mod config;
pub mod db;
pub mod engine;
pub mod erp;
pub mod error;
pub mod mapping;
pub mod metrics;
pub mod ops;
pub mod sim;
pub mod telemetry;

pub use error::{Error, RetryClass};
