//! [`Ctx`]: what the run loop, the contact tasks and the handlers share — the pool, the ERP client
//! behind the concurrency and rate limits, the rows in hand, the pause after a refused login.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;

use crate::backoff::Backoff;
use crate::config::EngineConfig;
use crate::db;
use crate::erp::ErpClient;
use crate::error::{Error, Result};

/// Everything a handler needs; shared by all tasks.
pub struct Ctx {
    pub pool: Pool,
    pub erp: ErpClient,
    pub worker: String,
    pub cfg: EngineConfig,
    pub backoff: Backoff,
    pub(super) sem: Semaphore,
    pub(super) limiter: Option<DefaultDirectRateLimiter>,
    /// Set on shutdown: tasks stop between rows and release the rest of their chain.
    pub stopping: AtomicBool,
    /// The ERP refused our login: no claiming until then (a credentials problem is not the rows'
    /// fault, so they are not spent; one explicit login is tried when the pause ends).
    pub(super) login_paused_until: std::sync::Mutex<Option<std::time::Instant>>,
    /// Ids of the rows this process is working on (claimed, not yet handed back).
    pub(super) in_hand: std::sync::Mutex<std::collections::HashSet<i64>>,
    /// Serialises writes of this worker's `erp_sync.workers` row (engine loop and heartbeat).
    pub(super) worker_row: tokio::sync::Mutex<()>,
}

/// Removes a chain's ids from [`Ctx::in_hand`] when dropped (also on panic or abort).
pub struct InHand {
    pub(super) ctx: Arc<Ctx>,
    pub(super) ids: Vec<i64>,
}

impl Drop for InHand {
    fn drop(&mut self) {
        let mut g = match self.ctx.in_hand.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        for id in &self.ids {
            g.remove(id);
        }
    }
}

impl Ctx {
    pub fn new(pool: Pool, erp: ErpClient, worker: String, cfg: EngineConfig) -> Ctx {
        let limiter = NonZeroU32::new(cfg.rate_limit_per_s)
            .map(|r| RateLimiter::direct(Quota::per_second(r)));
        Ctx {
            pool,
            erp,
            worker,
            backoff: Backoff::new(cfg.backoff_base_ms, cfg.backoff_max_ms),
            sem: Semaphore::new(cfg.concurrency),
            limiter,
            stopping: AtomicBool::new(false),
            login_paused_until: std::sync::Mutex::new(None),
            in_hand: std::sync::Mutex::new(std::collections::HashSet::new()),
            worker_row: tokio::sync::Mutex::new(()),
            cfg,
        }
    }

    pub async fn db(&self) -> Result<deadpool_postgres::Client> {
        self.pool.get().await.map_err(db::pool_err)
    }

    /// One ERP call under the global concurrency cap and the rate limit.
    pub async fn erp_call<T, F>(&self, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let _permit = self
            .sem
            .acquire()
            .await
            .map_err(|_| Error::Config("ERP concurrency semaphore closed".into()))?;
        if let Some(l) = &self.limiter {
            l.until_ready().await;
        }
        let started = std::time::Instant::now();
        let res = fut.await;
        crate::metrics::erp_call(started.elapsed(), res.is_ok());
        res
    }

    /// Record whether this worker is idle (`flag` and its `erp_sync.workers` row). Serialised with
    /// the heartbeat, which reads the flag under the same lock: a heartbeat that read "busy" can
    /// no longer land after the engine wrote "idle" and hide the idle worker from the capture
    /// trigger (no NOTIFY until the next heartbeat).
    pub(super) async fn set_idle(&self, flag: &AtomicBool, idle: bool) -> Result<()> {
        let _row = self.worker_row.lock().await;
        flag.store(idle, Ordering::Relaxed);
        db::set_idle(
            &self.pool,
            &self.worker,
            idle,
            self.erp.login_refused().as_deref(),
        )
        .await
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Snapshot of the ids in hand.
    pub fn in_hand(&self) -> Vec<i64> {
        let g = match self.in_hand.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        g.iter().copied().collect()
    }

    /// Mark rows as in hand until the returned guard is dropped.
    pub fn hold(self: &Arc<Self>, ids: Vec<i64>) -> InHand {
        {
            let mut g = match self.in_hand.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            g.extend(ids.iter().copied());
        }
        InHand {
            ctx: self.clone(),
            ids,
        }
    }

    /// How long claiming pauses after the ERP refused the login.
    pub fn login_pause(&self) -> Duration {
        Duration::from_millis(self.cfg.backoff_max_ms.clamp(100, 60_000))
    }

    /// Pause claiming: the ERP refused our credentials.
    pub fn pause_for_login(&self) {
        let until = std::time::Instant::now() + self.login_pause();
        match self.login_paused_until.lock() {
            Ok(mut g) => *g = Some(until),
            Err(poisoned) => *poisoned.into_inner() = Some(until),
        }
    }

    pub(super) fn paused_until(&self) -> Option<std::time::Instant> {
        match self.login_paused_until.lock() {
            Ok(g) => *g,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    pub(super) fn clear_pause(&self) {
        match self.login_paused_until.lock() {
            Ok(mut g) => *g = None,
            Err(poisoned) => *poisoned.into_inner() = None,
        }
    }

    /// Before claiming: `Some(wait)` while paused for a refused login. When the pause is over,
    /// claiming resumes and the next ERP call tries the login again under the client's own policy
    /// (it stops logging in automatically after `erp.max_login_failures`, as the real server asks
    /// for a captcha after more than 3 failures: fix the credentials and restart the sidecar).
    pub(super) async fn login_gate(&self) -> Option<Duration> {
        let until = self.paused_until()?;
        let now = std::time::Instant::now();
        if now < until {
            return Some(until - now);
        }
        self.clear_pause();
        None
    }
}
