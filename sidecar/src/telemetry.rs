//! Logging setup (`tracing`, human or JSON) and the masking helpers used in log fields.
//!
//! Conventions: events about one outbox row carry the fields `outbox_id`, `contact_id`, `kind`
//! and, once known, `erp_ord`; mobiles only ever appear masked ([`mask_mobile`]); sessions,
//! passwords and tokens never appear.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogConfig, LogFormat};
use crate::error::{Error, Result};

pub use erp_sync_rules::mask_mobile;

/// Install the global subscriber. `RUST_LOG`, when set, wins over `log.level`. Logs go to stderr.
pub fn init(cfg: &LogConfig) -> Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(&cfg.level),
    }
    .map_err(|e| Error::Config(format!("log level: {e}")))?;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let res = match cfg.format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    res.map_err(|e| Error::Config(format!("cannot install logger: {e}")))
}

/// Mask an optional mobile for a log field.
pub fn masked(mobile: Option<&str>) -> String {
    mobile.map(mask_mobile).unwrap_or_default()
}
