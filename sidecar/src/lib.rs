//! erp-sync: the sidecar that drains the `erp_sync` outbox into Zhibang ERP.
//!
//! - [`erp`]: the Zhibang ERP client (protocol types, session, retry classification)
//! - [`sim`]: a protocol-faithful ERP simulator with fault injection (`erp-sync sim`)
//! - [`config`]: the one configuration struct (file + `ERP_SYNC_*` environment)
//! - [`engine`]: listener, claim/lease, per-kind handlers, write-back
//! - [`ops`]: `/healthz`, `/metrics`, status page, alert webhook, retention, schedules (pull,
//!   sweep, reconciliation)
//! - [`backoff`]: the retry delay policy (rows, listener reconnects, ERP logins)
//! - [`telemetry`]: tracing setup and masking helpers
//! - [`error`]: the crate's error enum and its retry classification

pub mod backoff;
pub mod config;
pub mod engine;
pub mod erp;
pub mod error;
pub mod ops;
pub mod sim;
pub mod telemetry;

pub use error::{Error, RetryClass};
