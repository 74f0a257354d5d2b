//! The crate's one error enum. Every failure the engine sees is classified by [`Error::retry_class`].

use thiserror::Error as ThisError;

/// What the sync engine may do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// Transient: retry later with capped, jittered backoff (transport, timeout, 5xx, 429, server exception).
    Retry,
    /// The ERP session expired: log in again and repeat the call (does not count as an attempt).
    Relogin,
    /// Never retry: business refusal, protocol violation, bad credentials, bad config.
    Fatal,
}

#[derive(Debug, ThisError)]
pub enum Error {
    // ---- ERP side (filled by the erp module) ----
    #[error("ERP transport error: {0}")]
    Transport(String),
    /// No connection to the ERP could be made: the request certainly did not reach it.
    #[error("ERP unreachable: {0}")]
    Connect(String),
    #[error("ERP call timed out after {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    #[error("ERP HTTP status {status}")]
    HttpStatus { status: u16 },
    #[error("ERP server exception: {0}")]
    ServerException(String),
    #[error("ERP session expired")]
    SessionExpired,
    #[error("ERP login failed: {0}")]
    LoginFailed(String),
    #[error("ERP refused: {0}")]
    Business(String),
    #[error("ERP protocol violation: {0}")]
    Protocol(String),

    // ---- local side ----
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool error: {0}")]
    Pool(String),
    #[error("configuration error: {0}")]
    Config(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn retry_class(&self) -> RetryClass {
        match self {
            Error::Transport(_)
            | Error::Connect(_)
            | Error::Timeout { .. }
            | Error::ServerException(_)
            // An unparseable or unexpected reply may be a proxy glitch; every ERP write is made
            // idempotent by the khid lookup, so retrying (bounded by max attempts) is safe.
            | Error::Protocol(_)
            | Error::Db(_)
            | Error::Pool(_)
            | Error::Io(_) => RetryClass::Retry,
            Error::HttpStatus { status } if *status == 429 || *status >= 500 => RetryClass::Retry,
            Error::SessionExpired => RetryClass::Relogin,
            Error::HttpStatus { .. }
            | Error::LoginFailed(_)
            | Error::Business(_)
            | Error::Config(_) => RetryClass::Fatal,
        }
    }
}

impl Error {
    /// Whether the request that failed may have been processed by the ERP all the same: its reply
    /// was lost (timeout, broken connection, a gateway's 502/504, a 500) or unreadable. A refused
    /// connection, an answer of the ERP's own (refusal, server exception, status 11, expired
    /// session) or an overloaded server (503, 429) means it was not.
    pub fn may_have_reached_server(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Transport(_) | Error::Protocol(_) => true,
            Error::HttpStatus { status } => matches!(status, 500 | 502 | 504),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
