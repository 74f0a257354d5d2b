//! Shared state of a running simulator: store, sessions, account lockouts, faults, request log, stats.
//! Every lock is a short synchronous critical section; none is held across an await.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tracing::info;

use super::faults::{After, Faults, Injected};
use super::rules::Catalog;
use super::state::Store;
use super::SimConfig;
use crate::error::{Error, Result};

/// Endpoints counted in the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Login = 0,
    CustomAdd,
    CustomList,
    PersonAdd,
    PersonList,
    Order,
    Reply,
    WebapiEdit,
    WebapiAdd,
    CustomDelete,
}

impl Endpoint {
    pub const ALL: [Endpoint; 10] = [
        Endpoint::Login,
        Endpoint::CustomAdd,
        Endpoint::CustomList,
        Endpoint::PersonAdd,
        Endpoint::PersonList,
        Endpoint::Order,
        Endpoint::Reply,
        Endpoint::WebapiEdit,
        Endpoint::WebapiAdd,
        Endpoint::CustomDelete,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Login => "login",
            Endpoint::CustomAdd => "custom/add",
            Endpoint::CustomList => "custom/list",
            Endpoint::PersonAdd => "person/add",
            Endpoint::PersonList => "person/list",
            Endpoint::Order => "order",
            Endpoint::Reply => "reply",
            Endpoint::WebapiEdit => "webapi/customer/edit",
            Endpoint::WebapiAdd => "webapi/customer/add",
            Endpoint::CustomDelete => "custom/delete",
        }
    }
}

/// One received request, as the admin log shows it (session/token never stored).
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    pub seq: u64,
    /// Unix time of receipt (ms).
    pub at_ms: u64,
    /// The same instant in microseconds (latency measurements).
    pub at_us: u64,
    pub endpoint: &'static str,
    /// Path and query as received.
    pub path: String,
    pub cmdkey: Option<String>,
    /// `datas` as `{id: val}` (values as received; login password replaced by `<redacted>`).
    pub datas: serde_json::Map<String, Value>,
    /// Plain JSON body of webapi calls.
    pub body: Option<Value>,
    pub fault: Option<String>,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub by_endpoint: [AtomicU64; Endpoint::ALL.len()],
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_locked: AtomicU64,
    pub session_expired: AtomicU64,
    pub faults: AtomicU64,
    pub refusals: AtomicU64,
    pub not_persisted: AtomicU64,
    /// Writes stored whose reply was then lost (502 / dropped connection).
    pub lost_replies: AtomicU64,
    /// `status 11` (数据库连接超时) replies.
    pub status11: AtomicU64,
    /// Replies with raw control characters / a BOM.
    pub control_chars: AtomicU64,
    pub bom: AtomicU64,
    /// Sessions ended by a later login of the same user (`--single-session`).
    pub sessions_replaced: AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> Value {
        let by: serde_json::Map<String, Value> = Endpoint::ALL
            .iter()
            .map(|e| {
                (
                    e.name().to_string(),
                    Value::from(self.by_endpoint[*e as usize].load(Ordering::Relaxed)),
                )
            })
            .collect();
        serde_json::json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "by_endpoint": by,
            "logins_ok": self.logins_ok.load(Ordering::Relaxed),
            "logins_failed": self.logins_failed.load(Ordering::Relaxed),
            "logins_locked": self.logins_locked.load(Ordering::Relaxed),
            "session_expired": self.session_expired.load(Ordering::Relaxed),
            "faults": self.faults.load(Ordering::Relaxed),
            "refusals": self.refusals.load(Ordering::Relaxed),
            "not_persisted": self.not_persisted.load(Ordering::Relaxed),
            "lost_replies": self.lost_replies.load(Ordering::Relaxed),
            "status11": self.status11.load(Ordering::Relaxed),
            "control_chars": self.control_chars.load(Ordering::Relaxed),
            "bom": self.bom.load(Ordering::Relaxed),
            "sessions_replaced": self.sessions_replaced.load(Ordering::Relaxed),
        })
    }

    fn reset(&self) {
        for a in [
            &self.requests,
            &self.logins_ok,
            &self.logins_failed,
            &self.logins_locked,
            &self.session_expired,
            &self.faults,
            &self.refusals,
            &self.not_persisted,
            &self.lost_replies,
            &self.status11,
            &self.control_chars,
            &self.bom,
            &self.sessions_replaced,
        ] {
            a.store(0, Ordering::Relaxed);
        }
        for a in &self.by_endpoint {
            a.store(0, Ordering::Relaxed);
        }
    }
}

/// Outcome of a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok(String),
    BadCredentials,
    Locked,
}

pub struct Sim {
    cfg: SimConfig,
    initial_faults: Faults,
    pub faults: Mutex<Faults>,
    pub store: Mutex<Store>,
    /// token → (user, expiry).
    sessions: Mutex<HashMap<String, (String, Instant)>>,
    catalog: Catalog,
    failures: Mutex<HashMap<String, u32>>,
    log: Mutex<VecDeque<LoggedRequest>>,
    pub stats: Stats,
    seq: AtomicU64,
    dice: AtomicU64,
    seed: u64,
    shutdown: tokio::sync::watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Result<Self> {
        let faults = Faults {
            latency_ms: cfg.latency_ms,
            jitter_ms: cfg.jitter_ms,
            error_rate: cfg.error_rate,
            hang_rate: cfg.hang_rate,
            malformed_rate: cfg.malformed_rate,
            server_exception_rate: cfg.server_exception_rate,
            not_persisted_rate: cfg.not_persisted_rate,
            duplicate_mobile_rule: cfg.duplicate_mobile_rule,
            session_ttl_ms: cfg.session_ttl_ms,
            lost_reply_rate: cfg.lost_reply_rate,
            status11_rate: cfg.status11_rate,
            control_chars_rate: cfg.control_chars_rate,
            bom_rate: cfg.bom_rate,
            ..Faults::default()
        };
        let mut store = Store::new(cfg.start_ord);
        if let Some(path) = &cfg.snapshot {
            if path.exists() {
                let bytes = std::fs::read(path)?;
                store = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Config(format!("bad simulator snapshot {}: {e}", path.display()))
                })?;
                store.reindex();
                info!(path = %path.display(), customers = store.customers.len(), "simulator snapshot loaded");
            }
        }
        let catalog = Catalog::from_flags(&cfg.categories, &cfg.follow_levels, cfg.max_page_size)
            .map_err(|e| Error::Config(format!("simulator catalogue: {e}")))?;
        let seed = cfg.seed.unwrap_or_else(rand::random);
        let (shutdown, _rx) = tokio::sync::watch::channel(false);
        Ok(Self {
            initial_faults: faults.clone(),
            faults: Mutex::new(faults),
            store: Mutex::new(store),
            sessions: Mutex::new(HashMap::new()),
            catalog,
            failures: Mutex::new(HashMap::new()),
            log: Mutex::new(VecDeque::with_capacity(cfg.request_log.min(100_000))),
            stats: Stats::default(),
            seq: AtomicU64::new(0),
            dice: AtomicU64::new(0),
            seed,
            shutdown,
            cfg,
        })
    }

    pub fn cfg(&self) -> &SimConfig {
        &self.cfg
    }

    /// Categories, follow levels and page cap (strict mode).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A uniform number in [0, 1) (seeded, lock-free).
    pub fn roll(&self) -> f64 {
        let n = self.dice.fetch_add(1, Ordering::Relaxed);
        (splitmix64(self.seed ^ n.wrapping_mul(0xA24B_AED4_963E_E407)) >> 11) as f64
            / (1u64 << 53) as f64
    }

    pub fn count(&self, ep: Endpoint) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.by_endpoint[ep as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn decide(&self, path: &str) -> (Injected, u64) {
        let mut f = lock(&self.faults);
        f.decide(path, || self.roll())
    }

    /// Reply-level faults of a processed request (see [`Faults::after`]).
    pub fn decide_after(&self, path: &str, write: bool) -> After {
        let mut f = lock(&self.faults);
        f.after(path, write, || self.roll())
    }

    pub fn faults_snapshot(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub fn with_faults<T>(&self, f: impl FnOnce(&mut Faults) -> T) -> T {
        f(&mut lock(&self.faults))
    }

    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut lock(&self.store))
    }

    // ---------------------------------------------------------------- sessions and logins

    pub fn login(&self, user: &str, password: &str) -> LoginOutcome {
        let mut failures = lock(&self.failures);
        let n = failures.get(user).copied().unwrap_or(0);
        if n > self.cfg.lockout_after {
            self.stats.logins_locked.fetch_add(1, Ordering::Relaxed);
            return LoginOutcome::Locked;
        }
        if user != self.cfg.user || password != self.cfg.password {
            failures.insert(user.to_string(), n + 1);
            self.stats.logins_failed.fetch_add(1, Ordering::Relaxed);
            return LoginOutcome::BadCredentials;
        }
        failures.remove(user);
        drop(failures);
        let token: String = {
            use rand::Rng;
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        };
        let ttl = Duration::from_millis(lock(&self.faults).session_ttl_ms);
        let mut sessions = lock(&self.sessions);
        if self.cfg.single_session {
            // UniqueLogin: a new login of the user ends the user's previous sessions.
            let before = sessions.len();
            sessions.retain(|_, (u, _)| u != user);
            let replaced = (before - sessions.len()) as u64;
            self.stats
                .sessions_replaced
                .fetch_add(replaced, Ordering::Relaxed);
        }
        sessions.insert(token.clone(), (user.to_string(), Instant::now() + ttl));
        drop(sessions);
        self.stats.logins_ok.fetch_add(1, Ordering::Relaxed);
        LoginOutcome::Ok(token)
    }

    /// Whether `token` is a live session; `expire_next` faults invalidate it here.
    pub fn check_session(&self, token: &str) -> bool {
        let forced = lock(&self.faults).expire();
        let mut s = lock(&self.sessions);
        let ok = match s.get(token) {
            Some((_, exp)) if !forced && Instant::now() < *exp => true,
            Some(_) => {
                s.remove(token);
                false
            }
            None => false,
        };
        if !ok {
            self.stats.session_expired.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub fn expire_all_sessions(&self) -> usize {
        let mut s = lock(&self.sessions);
        let n = s.len();
        s.clear();
        n
    }

    pub fn live_sessions(&self) -> usize {
        let now = Instant::now();
        lock(&self.sessions)
            .values()
            .filter(|(_, e)| now < *e)
            .count()
    }

    // ---------------------------------------------------------------- request log

    pub fn log_request(&self, r: LoggedRequest) {
        let cap = self.cfg.request_log;
        if cap == 0 {
            return;
        }
        let mut l = lock(&self.log);
        while l.len() >= cap {
            l.pop_front();
        }
        l.push_back(r);
    }

    /// Record a fault decided after the request was logged (lost reply, BOM, control chars).
    pub fn mark_fault(&self, seq: u64, fault: &str) {
        let mut l = lock(&self.log);
        if let Some(r) = l.iter_mut().rev().find(|r| r.seq == seq) {
            r.fault = Some(match r.fault.take() {
                Some(old) => format!("{old},{fault}"),
                None => fault.to_string(),
            });
        }
    }

    pub fn requests(&self, limit: usize, path: Option<&str>) -> Vec<LoggedRequest> {
        let l = lock(&self.log);
        let matching: Vec<&LoggedRequest> = l
            .iter()
            .filter(|r| path.is_none_or(|p| r.path.contains(p)))
            .collect();
        let skip = matching.len().saturating_sub(limit);
        matching.into_iter().skip(skip).cloned().collect()
    }

    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }

    // ---------------------------------------------------------------- lifecycle

    pub fn reset(&self) {
        *lock(&self.store) = Store::new(self.cfg.start_ord);
        *lock(&self.faults) = self.initial_faults.clone();
        lock(&self.sessions).clear();
        lock(&self.failures).clear();
        lock(&self.log).clear();
        self.stats.reset();
    }

    pub fn shutdown_rx(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn write_snapshot(&self) -> Result<()> {
        let Some(path) = &self.cfg.snapshot else {
            return Ok(());
        };
        let bytes = {
            let s = lock(&self.store);
            serde_json::to_vec_pretty(&*s).map_err(|e| Error::Io(std::io::Error::other(e)))?
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        info!(path = %path.display(), "simulator snapshot written");
        Ok(())
    }
}
