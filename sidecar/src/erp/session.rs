//! The shared ERP session: one login at a time (single flight), a generation counter so that every
//! call that failed with the same expired session shares one re-login, and a backoff after failed logins.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A session token. `Debug`/`Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(s: impl Into<Arc<str>>) -> Self {
        Self(s.into())
    }
    /// The token itself; only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The session currently in use.
#[derive(Debug, Clone)]
pub struct Current {
    pub token: Secret,
    /// Incremented by every successful login.
    pub generation: u64,
    pub obtained: Instant,
}

/// Bookkeeping of failed logins (guarded by the login mutex).
#[derive(Debug, Default)]
pub struct LoginState {
    pub consecutive_failures: u32,
    pub blocked_until: Option<Instant>,
    pub last_error: Option<String>,
}

impl LoginState {
    /// Backoff after the n-th consecutive failure: base · 2^(n-1), capped.
    pub fn backoff(base_ms: u64, max_ms: u64, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        Duration::from_millis(base_ms.saturating_mul(1u64 << shift).min(max_ms))
    }
}

#[derive(Debug, Default)]
pub struct SessionCell {
    current: RwLock<Option<Current>>,
    /// Held for the whole duration of a login: the single flight.
    pub login: tokio::sync::Mutex<LoginState>,
    generation: AtomicU64,
    logins: AtomicU64,
}

impl SessionCell {
    pub fn current(&self) -> Option<Current> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Install a fresh session (call with the login mutex held).
    pub fn install(&self, token: Secret) -> Current {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.logins.fetch_add(1, Ordering::Relaxed);
        let c = Current {
            token,
            generation,
            obtained: Instant::now(),
        };
        match self.current.write() {
            Ok(mut g) => *g = Some(c.clone()),
            Err(p) => *p.into_inner() = Some(c.clone()),
        }
        c
    }

    /// Forget the session (after a failed login).
    pub fn clear(&self) {
        match self.current.write() {
            Ok(mut g) => *g = None,
            Err(p) => *p.into_inner() = None,
        }
    }

    /// Successful logins so far.
    pub fn logins(&self) -> u64 {
        self.logins.load(Ordering::Relaxed)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_redacted() {
        let s = Secret::new("tok-123");
        assert!(!format!("{s:?}").contains("tok-123"));
        let c = SessionCell::default();
        let cur = c.install(s);
        assert!(!format!("{cur:?}").contains("tok-123"));
        assert_eq!(cur.generation, 1);
        assert_eq!(c.install(Secret::new("b")).generation, 2);
        assert_eq!(c.logins(), 2);
        c.clear();
        assert!(c.current().is_none());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(
            LoginState::backoff(100, 1000, 1),
            Duration::from_millis(100)
        );
        assert_eq!(
            LoginState::backoff(100, 1000, 2),
            Duration::from_millis(200)
        );
        assert_eq!(
            LoginState::backoff(100, 1000, 5),
            Duration::from_millis(1000)
        );
        assert_eq!(
            LoginState::backoff(100, 1000, 60),
            Duration::from_millis(1000)
        );
    }
}
