//! The ERP client: one method per ERP operation. See the module doc of [`crate::erp`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};

use super::config::ErpConfig;
use super::mask::redact;
use super::protocol::{self, Envelope};
use super::session::{Current, LoginState, Secret, SessionCell, SessionStore};
use super::types::Exchange;
use erp_sync_rules::mask_text;

/// Zhibang ERP client. Cheap to clone; clones share the session and the HTTP connection pool.
#[derive(Clone)]
pub struct ErpClient {
    inner: Arc<Inner>,
    trace: Option<Arc<Mutex<Vec<Exchange>>>>,
}

struct Inner {
    cfg: ErpConfig,
    base: String,
    serialnum: String,
    http: reqwest::Client,
    session: SessionCell,
    /// The fleet's shared session, when this client is one of several processes (engine, ops).
    store: std::sync::OnceLock<Arc<dyn SessionStore>>,
}

impl std::fmt::Debug for ErpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpClient")
            .field("base_url", &self.inner.base)
            .field("username", &self.inner.cfg.username)
            .field("session_generation", &self.inner.session.generation())
            .finish_non_exhaustive()
    }
}

/// Where a request goes and how its reply is checked.
pub(super) enum Proto<'a> {
    /// Mobile endpoint: session in the body, envelope reply.
    Mobile {
        cmdkey: Option<&'a str>,
        datas: Vec<Value>,
    },
    /// webapi: `ZBAPI-Token` header, plain JSON body, `{Code, Msg}` reply.
    Webapi { body: Value },
}

impl ErpClient {
    /// Build a client (no network traffic until the first call).
    pub fn new(cfg: ErpConfig) -> Result<Self> {
        let base = cfg.base_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "erp.base_url must start with http:// or https://, got {base:?}"
            )));
        }
        if cfg.timeout_ms == 0 {
            return Err(Error::Config("erp.timeout_ms must be > 0".into()));
        }
        let serialnum = if cfg.serialnum.trim().is_empty() {
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(20)
                .map(char::from)
                .collect()
        } else {
            cfg.serialnum
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect()
        };
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                base,
                serialnum,
                http,
                session: SessionCell::default(),
                store: std::sync::OnceLock::new(),
            }),
            trace: None,
        })
    }

    pub fn config(&self) -> &ErpConfig {
        &self.inner.cfg
    }

    /// Share the ERP session with other processes through `store` (see [`crate::erp::session`]).
    /// Automatic logins then take the stored session or log in under the store's lock; an explicit
    /// [`ErpClient::login`] still logs in directly. Set once; later calls are ignored.
    pub fn share_session(&self, store: Arc<dyn SessionStore>) {
        if self.inner.store.set(store).is_err() {
            debug!("erp session store already set");
        }
    }

    /// The key of this client's session in a [`SessionStore`]: user and server.
    fn account(&self) -> String {
        format!("{}@{}", self.inner.cfg.username, self.inner.base)
    }

    /// A clone with its own exchange buffer (see the module doc).
    pub fn traced(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            trace: Some(Arc::new(Mutex::new(Vec::new()))),
        }
    }

    /// Drain the exchanges recorded by this traced clone (empty for an untraced client).
    pub fn take_exchanges(&self) -> Vec<Exchange> {
        match &self.trace {
            Some(t) => match t.lock() {
                Ok(mut g) => std::mem::take(&mut *g),
                Err(p) => std::mem::take(&mut *p.into_inner()),
            },
            None => Vec::new(),
        }
    }

    /// Successful logins performed by this client (all clones).
    pub fn login_count(&self) -> u64 {
        self.inner.session.logins()
    }

    /// The ERP's text refusing the last login (mobiles masked), while no login has worked since:
    /// what the engine reports in `erp_sync.workers` (alert `erp_login_failed`).
    pub fn login_refused(&self) -> Option<String> {
        self.inner.session.refused().map(|m| mask_text(&m))
    }

    /// Generation of the current session (0 before the first login).
    pub fn session_generation(&self) -> u64 {
        self.inner.session.generation()
    }

    // ------------------------------------------------------------------ session

    /// Log in now (explicit: ignores the failed-login backoff), replacing the current session.
    pub async fn login(&self) -> Result<()> {
        self.relogin(None, true).await.map(|_| ())
    }

    /// A usable session now (logging in when there is none or it is too old): so that the next
    /// call's failure is about that call, not about a login.
    pub async fn ensure_session(&self) -> Result<()> {
        self.session().await.map(drop)
    }

    async fn session(&self) -> Result<Current> {
        match self.inner.session.current() {
            Some(c) if self.fresh(&c) => Ok(c),
            Some(c) => self.relogin(Some(c.generation), false).await,
            None => self.relogin(None, false).await,
        }
    }

    fn fresh(&self, c: &Current) -> bool {
        c.obtained.elapsed() < Duration::from_millis(self.inner.cfg.session_ttl_ms)
    }

    /// Single-flight login. `stale`: the generation the caller found unusable; if another task has
    /// already replaced it, its session is reused instead of logging in again.
    async fn relogin(&self, stale: Option<u64>, explicit: bool) -> Result<Current> {
        let mut st = self.inner.session.login.lock().await;
        if !explicit {
            if let Some(c) = self.inner.session.current() {
                if Some(c.generation) != stale && self.fresh(&c) {
                    return Ok(c);
                }
            }
            let last = st.last_error.clone().unwrap_or_default();
            if st.consecutive_failures >= self.inner.cfg.max_login_failures.max(1) {
                return Err(Error::LoginFailed(format!(
                    "automatic login disabled after {} failed logins (last: {last}); fix credentials and restart or log in explicitly",
                    st.consecutive_failures
                )));
            }
            if let Some(until) = st.blocked_until {
                if Instant::now() < until {
                    return Err(Error::LoginFailed(format!(
                        "in backoff after a failed login (last: {last})"
                    )));
                }
            }
        }
        let res = match self.inner.store.get().filter(|_| !explicit) {
            Some(store) => self.shared_login(store.as_ref(), stale).await,
            None => self
                .do_login()
                .await
                .map(|t| (self.inner.session.install(t), true)),
        };
        match res {
            Ok((c, own)) => {
                *st = LoginState::default();
                if let Some(Some(was)) = self.inner.session.set_refused(None) {
                    info!(previous = %mask_text(&was), "ERP login works again: syncing resumes");
                }
                if own {
                    info!(generation = c.generation, stored = c.stored, "erp login ok");
                } else {
                    debug!(
                        generation = c.generation,
                        stored = c.stored,
                        "erp session taken from the fleet's store"
                    );
                }
                Ok(c)
            }
            Err(Error::LoginFailed(msg)) => {
                st.consecutive_failures += 1;
                let wait = LoginState::backoff(
                    self.inner.cfg.relogin_backoff_ms,
                    self.inner.cfg.relogin_backoff_max_ms,
                    st.consecutive_failures,
                );
                st.blocked_until = Some(Instant::now() + wait);
                st.last_error = Some(msg.clone());
                self.inner.session.clear();
                // Told once per state change (first refusal, or a different text); the repeats
                // of the same refusal are debug.
                let shown = mask_text(&msg);
                if self.inner.session.set_refused(Some(msg.clone())).is_some() {
                    warn!(failures = st.consecutive_failures, backoff_ms = wait.as_millis() as u64, erp_message = %shown,
                        "ERP login refused: syncing waits until a login works (check erp.username / erp.password)");
                } else {
                    debug!(failures = st.consecutive_failures, backoff_ms = wait.as_millis() as u64, erp_message = %shown,
                        "erp login refused again");
                }
                Err(Error::LoginFailed(msg))
            }
            Err(other) => Err(other),
        }
    }

    /// A session through the fleet's store: the stored one unless it is the one found stale (or too
    /// old), else a login under the store's lock. Returns whether this process logged in. If the
    /// store cannot be used (database down), a direct login keeps the ERP reachable.
    async fn shared_login(
        &self,
        store: &dyn SessionStore,
        stale_local: Option<u64>,
    ) -> Result<(Current, bool)> {
        let account = self.account();
        let ttl = self.inner.cfg.session_ttl_ms;
        let stale = self
            .inner
            .session
            .current()
            .filter(|c| stale_local.is_none_or(|g| g == c.generation))
            .and_then(|c| c.stored);
        match store.load(&account).await {
            Ok(Some(s)) if Some(s.generation) != stale && s.age_ms < ttl => {
                return Ok((self.inner.session.install_stored(s, false), false));
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "erp session store unavailable; logging in directly");
                let t = self.do_login().await?;
                return Ok((self.inner.session.install(t), true));
            }
        }
        let own = std::sync::atomic::AtomicBool::new(false);
        let login = Box::pin(async {
            own.store(true, std::sync::atomic::Ordering::Relaxed);
            self.do_login().await
        });
        let s = store.login_locked(&account, stale, ttl, login).await?;
        let own = own.load(std::sync::atomic::Ordering::Relaxed);
        Ok((self.inner.session.install_stored(s, own), own))
    }

    async fn do_login(&self) -> Result<Secret> {
        let cfg = &self.inner.cfg;
        let body = protocol::login_request(&cfg.username, &cfg.password, &self.inner.serialnum);
        self.roundtrip(protocol::LOGIN, None, &body, None, |v| {
            protocol::parse_login(&v).map(Secret::new)
        })
        .await
    }

    // ------------------------------------------------------------------ transport

    /// One HTTP exchange: POST, status check, JSON parse, `parse`, and recording of the exchange.
    async fn roundtrip<T>(
        &self,
        endpoint: &str,
        cmdkey: Option<&str>,
        body: &Value,
        token: Option<&Secret>,
        parse: impl FnOnce(Value) -> Result<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let url = format!("{}{}", self.inner.base, endpoint);
        let mut req = self.inner.http.post(&url).json(body);
        if let Some(t) = token {
            req = req.header("ZBAPI-Token", t.expose());
        }
        let timeout_ms = self.inner.cfg.timeout_ms;
        let map_err = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout { timeout_ms }
            } else if e.is_connect() {
                Error::Connect(e.without_url().to_string())
            } else {
                Error::Transport(e.without_url().to_string())
            }
        };
        let mut http_status = None;
        let mut response = Value::Null;
        let result: Result<T> = async {
            let resp = req.send().await.map_err(map_err)?;
            let status = resp.status();
            http_status = Some(status.as_u16());
            let bytes = resp.bytes().await.map_err(map_err)?;
            if !status.is_success() {
                response = unparsed(&bytes);
                return Err(Error::HttpStatus {
                    status: status.as_u16(),
                });
            }
            let v = match protocol::parse_json(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    response = unparsed(&bytes);
                    return Err(e);
                }
            };
            response = redact(&v);
            parse(v)
        }
        .await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(_) => debug!(endpoint, cmdkey, elapsed_ms, http_status, "erp call ok"),
            Err(e) => {
                debug!(endpoint, cmdkey, elapsed_ms, http_status, error = %e, "erp call failed")
            }
        }
        if let Some(t) = &self.trace {
            let ex = Exchange {
                endpoint: endpoint.to_string(),
                cmdkey: cmdkey.map(str::to_string),
                request: redact(body),
                response,
                http_status,
                error: result.as_ref().err().map(ToString::to_string),
                elapsed_ms,
            };
            match t.lock() {
                Ok(mut g) => g.push(ex),
                Err(p) => p.into_inner().push(ex),
            }
        }
        result
    }

    async fn send(&self, endpoint: &str, s: &Current, proto: &Proto<'_>) -> Result<Envelope> {
        match proto {
            Proto::Mobile { cmdkey, datas } => {
                let body = protocol::request(s.token.expose(), *cmdkey, datas.clone());
                self.roundtrip(endpoint, *cmdkey, &body, None, protocol::parse_envelope)
                    .await
            }
            Proto::Webapi { body } => {
                self.roundtrip(endpoint, None, body, Some(&s.token), |v| {
                    let msg = protocol::parse_webapi(&v)?;
                    Ok(Envelope {
                        status: 0,
                        message: Some(msg),
                        body: Value::Null,
                        root: v,
                    })
                })
                .await
            }
        }
    }

    /// A call with the session: on `SessionExpired`, one shared re-login, then one retry.
    pub(super) async fn call(&self, endpoint: &str, proto: Proto<'_>) -> Result<Envelope> {
        let s = self.session().await?;
        match self.send(endpoint, &s, &proto).await {
            Err(Error::SessionExpired) => {
                debug!(
                    endpoint,
                    generation = s.generation,
                    "erp session expired; re-login"
                );
                let s2 = self.relogin(Some(s.generation), false).await?;
                self.send(endpoint, &s2, &proto).await
            }
            other => other,
        }
    }

    /// A mobile-endpoint call (session in the body, envelope reply).
    pub(super) async fn mobile(
        &self,
        endpoint: &str,
        cmdkey: Option<&str>,
        datas: Vec<Value>,
    ) -> Result<Envelope> {
        self.call(endpoint, Proto::Mobile { cmdkey, datas }).await
    }
}

fn unparsed(bytes: &[u8]) -> Value {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]);
    serde_json::json!({ "unparsed": erp_sync_rules::mask_text(&s) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_validates_and_redacts() -> Result<()> {
        assert!(matches!(
            ErpClient::new(ErpConfig {
                base_url: "ftp://x".into(),
                ..ErpConfig::default()
            }),
            Err(Error::Config(_))
        ));
        let c = ErpClient::new(ErpConfig {
            password: "pw-xyz".into(),
            base_url: "http://h/".into(),
            ..ErpConfig::default()
        })?;
        assert!(!format!("{c:?}").contains("pw-xyz"));
        assert_eq!(c.inner.base, "http://h");
        assert_eq!(c.inner.serialnum.len(), 20);
        assert!(c
            .inner
            .serialnum
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric()));
        Ok(())
    }
}
