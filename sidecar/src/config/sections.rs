//! The sections of [`super::Config`] owned by the sidecar itself (`[database]`, `[engine]`,
//! `[log]`, `[http]`, `[alerts]`, `[retention]`) with their defaults. `[erp]` belongs to the ERP
//! client (`crate::erp::ErpConfig`), `[schedule]` to [`super::schedule`].

use serde::{Deserialize, Serialize};

use super::redact_url;

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// libpq-style URL or key=value string, e.g. `postgres://erp_sync_worker@localhost/platform`.
    pub url: String,
    /// File holding the database password (overrides any password in `url`). Empty = none.
    pub password_file: String,
    /// The password read from `password_file` by [`super::Config::load`] (never serialized or
    /// printed); given to the connection by `db::pg_config`.
    #[serde(skip)]
    pub password: Option<String>,
    /// Connections in the pool used by the workers (the listener has one more of its own).
    pub pool_size: usize,
    /// Timeout for opening a connection.
    pub connect_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "postgres://postgres@localhost/postgres".into(),
            password_file: String::new(),
            password: None,
            pool_size: 8,
            connect_timeout_ms: 5_000,
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("password_file", &self.password_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Lease owner name; must be unique per running sidecar. Empty = `<hostname>-<pid>-<random>`.
    pub worker_id: String,
    /// Global cap on ERP calls in flight (the spec's 5).
    pub concurrency: usize,
    /// ERP requests per second (all kinds together); 0 = unlimited.
    pub rate_limit_per_s: u32,
    /// Most contacts held (claimed) at once; each contact's due rows are claimed as one chain.
    pub batch_size: i64,
    /// Most rows of one contact claimed in one chain.
    pub chain_max: i64,
    /// Fallback poll when no NOTIFY arrives.
    pub poll_interval_ms: u64,
    /// Lease length of a claimed row; a crashed worker's rows are reclaimable after it.
    pub lease_ms: u64,
    /// Worker heartbeat, which also extends the leases of the rows in hand.
    pub heartbeat_ms: u64,
    /// Failed attempts (retryable errors) before a row is dead.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt, jittered, capped by `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Record and log what would be sent without calling the ERP and without touching the outbox.
    pub dry_run: bool,
    /// On SIGTERM/SIGINT: time given to in-flight rows before they are released.
    pub shutdown_deadline_ms: u64,
    /// Listener reconnect backoff cap.
    pub listen_reconnect_max_ms: u64,
    /// How long the write-back of an ERP effect keeps retrying against an unavailable database.
    pub writeback_retry_ms: u64,
    /// A follow-up whose send had begun when its worker died, hung past its lease or lost the
    /// ERP's reply may be in the ERP already: `hold` (default) parks it as `in_doubt` for a person
    /// (`erp_sync.resolve_in_doubt`); `resend` sends it again (at-least-once).
    pub in_doubt_followups: InDoubtFollowups,
}

/// What happens to a follow-up that was perhaps sent ([`EngineConfig::in_doubt_followups`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InDoubtFollowups {
    #[default]
    Hold,
    Resend,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            worker_id: String::new(),
            concurrency: 5,
            rate_limit_per_s: 20,
            batch_size: 64,
            chain_max: 50,
            poll_interval_ms: 2_000,
            lease_ms: 15_000,
            heartbeat_ms: 3_000,
            max_attempts: 8,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            dry_run: false,
            shutdown_deadline_ms: 10_000,
            listen_reconnect_max_ms: 10_000,
            writeback_retry_ms: 60_000,
            in_doubt_followups: InDoubtFollowups::Hold,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `sidecar=debug,info`. `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// The ops HTTP server.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to serve `/healthz`, `/metrics`, `/` and `/api/status` on; `off` disables the
    /// server. Loopback by default: the status page is not authenticated (mobiles are masked).
    pub listen_addr: String,
    /// Enables the operator page's actions (sync now, retry, resolve in doubt, roll back): an
    /// operator signs in with this token. Empty = the page is read-only. At least 16 characters.
    pub admin_token: String,
    /// File holding the admin token (overrides `admin_token`). Empty = none.
    pub admin_token_file: String,
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen_addr", &self.listen_addr)
            .field(
                "admin_token",
                &if self.admin_token.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("admin_token_file", &self.admin_token_file)
            .finish()
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen_addr: "127.0.0.1:9187".into(),
            admin_token: String::new(),
            admin_token_file: String::new(),
        }
    }
}

/// Alert notifications.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// POST target for alert state changes (JSON); empty = no notifications (the `erp_sync.alerts`
    /// view and the status page still show them).
    pub webhook_url: String,
    /// How often `erp_sync.alerts` is checked.
    pub check_interval_ms: u64,
    /// Timeout of one webhook POST (a failed POST is retried at the next check).
    pub webhook_timeout_ms: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook_url: String::new(),
            check_interval_ms: 60_000,
            webhook_timeout_ms: 5_000,
        }
    }
}

/// Retention cleanup of finished outbox rows and old sync_log rows (ages are the database settings
/// `retention.done_days` / `retention.sync_log_days`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Interval between cleanup runs; 0 disables the job.
    pub interval_ms: u64,
    /// Rows deleted per table per `erp_sync.cleanup(batch)` call (one short transaction each).
    pub batch_size: i32,
    /// Pause between two batches of one run.
    pub pause_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            interval_ms: 3_600_000,
            batch_size: 5_000,
            pause_ms: 100,
        }
    }
}
