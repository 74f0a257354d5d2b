//! The shared ERP session: one login at a time (single flight), a generation counter so that every
//! call that failed with the same expired session shares one re-login, and a backoff after failed logins.
//!
//! Across processes: a server that keeps one online session per user (`UniqueLogin`) ends the
//! previous session at every login, so several sidecars with one ERP account would log each other
//! out in a loop. With a [`SessionStore`] (the engine's is the table `erp_sync.erp_session`), the
//! fleet shares one session: a sidecar first takes the session another one stored, and logs in
//! only under the store's fleet-wide lock, after checking again that nobody did meanwhile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use crate::error::Result;

/// A session as the fleet stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub token: Secret,
    /// The store's generation of this session (increments at every stored login).
    pub generation: i64,
    /// How long ago it was obtained (ms).
    pub age_ms: u64,
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("generation", &self.generation)
            .field("age_ms", &self.age_ms)
            .finish_non_exhaustive()
    }
}

/// Where several clients (processes) with one ERP account keep their common session.
pub trait SessionStore: Send + Sync {
    /// The stored session of `account`, if any.
    fn load<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Option<StoredSession>>>;

    /// Under the fleet-wide login lock of `account`: the stored session when it is younger than
    /// `max_age_ms` and not of generation `stale`; otherwise run `login` (not polled at all when
    /// the stored session is taken) and store its token as the next generation.
    fn login_locked<'a>(
        &'a self,
        account: &'a str,
        stale: Option<i64>,
        max_age_ms: u64,
        login: BoxFuture<'a, Result<Secret>>,
    ) -> BoxFuture<'a, Result<StoredSession>>;
}

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
    /// Incremented by every session installed in this process.
    pub generation: u64,
    /// The store's generation when the session came from (or went to) a [`SessionStore`].
    pub stored: Option<i64>,
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
    /// Backoff after the n-th consecutive failure: base · 2^(n-1), capped (the retry policy's
    /// ceiling, without jitter: one login in flight at a time needs no spreading).
    pub fn backoff(base_ms: u64, max_ms: u64, failures: u32) -> Duration {
        Duration::from_millis(crate::backoff::Backoff::new(base_ms, max_ms).ceiling_ms(failures))
    }
}

#[derive(Debug, Default)]
pub struct SessionCell {
    current: RwLock<Option<Current>>,
    /// Held for the whole duration of a login: the single flight.
    pub login: tokio::sync::Mutex<LoginState>,
    generation: AtomicU64,
    logins: AtomicU64,
    /// The ERP's refusal of the last login, until a login (or a session of the fleet's store)
    /// works again: the state operators are told about, once per change.
    refused: RwLock<Option<String>>,
}

impl SessionCell {
    pub fn current(&self) -> Option<Current> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Install a fresh session from this process's own login (call with the login mutex held).
    pub fn install(&self, token: Secret) -> Current {
        self.logins.fetch_add(1, Ordering::Relaxed);
        self.put(token, None, Duration::ZERO)
    }

    /// Install a session of the fleet's store; `logged_in`: this process's own login made it.
    pub fn install_stored(&self, s: StoredSession, logged_in: bool) -> Current {
        if logged_in {
            self.logins.fetch_add(1, Ordering::Relaxed);
        }
        self.put(s.token, Some(s.generation), Duration::from_millis(s.age_ms))
    }

    fn put(&self, token: Secret, stored: Option<i64>, age: Duration) -> Current {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let now = Instant::now();
        let c = Current {
            token,
            generation,
            stored,
            obtained: now.checked_sub(age).unwrap_or(now),
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

    /// Why the ERP refused the last login, while no login has worked since.
    pub fn refused(&self) -> Option<String> {
        match self.refused.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Record the login state (`None`: a login worked); returns the previous one when it changed.
    pub fn set_refused(&self, now: Option<String>) -> Option<Option<String>> {
        let mut g = match self.refused.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if *g == now {
            return None;
        }
        Some(std::mem::replace(&mut *g, now))
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
    fn refusal_state_reports_changes_only() {
        let c = SessionCell::default();
        assert_eq!(c.refused(), None);
        assert_eq!(c.set_refused(None), None, "no change");
        assert_eq!(c.set_refused(Some("密码错误".into())), Some(None));
        assert_eq!(
            c.set_refused(Some("密码错误".into())),
            None,
            "same refusal again"
        );
        assert_eq!(c.refused().as_deref(), Some("密码错误"));
        assert_eq!(
            c.set_refused(Some("账号已锁定".into())),
            Some(Some("密码错误".into()))
        );
        assert_eq!(c.set_refused(None), Some(Some("账号已锁定".into())));
        assert_eq!(c.refused(), None);
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
