//! The ERP client: one method per ERP operation. See the module doc of [`crate::erp`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Map, Value};
use tracing::{debug, info, warn};

use crate::error::{Error, Result};

use super::config::{ErpConfig, UpdateMode};
use super::list;
use super::mask::redact;
use super::protocol::{self, item, Envelope};
use super::session::{Current, LoginState, Secret, SessionCell};
use super::types::*;

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
enum Proto<'a> {
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
            }),
            trace: None,
        })
    }

    pub fn config(&self) -> &ErpConfig {
        &self.inner.cfg
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

    /// Generation of the current session (0 before the first login).
    pub fn session_generation(&self) -> u64 {
        self.inner.session.generation()
    }

    // ------------------------------------------------------------------ session

    /// Log in now (explicit: ignores the failed-login backoff), replacing the current session.
    pub async fn login(&self) -> Result<()> {
        self.relogin(None, true).await.map(|_| ())
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
        let res = self.do_login().await;
        match res {
            Ok(token) => {
                *st = LoginState::default();
                let c = self.inner.session.install(token);
                info!(generation = c.generation, "erp login ok");
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
                warn!(failures = st.consecutive_failures, backoff_ms = wait.as_millis() as u64, message = %msg, "erp login failed");
                Err(Error::LoginFailed(msg))
            }
            Err(other) => Err(other),
        }
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
    async fn call(&self, endpoint: &str, proto: Proto<'_>) -> Result<Envelope> {
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

    async fn mobile(
        &self,
        endpoint: &str,
        cmdkey: Option<&str>,
        datas: Vec<Value>,
    ) -> Result<Envelope> {
        self.call(endpoint, Proto::Mobile { cmdkey, datas }).await
    }

    // ------------------------------------------------------------------ customers

    /// The customer whose `khid` is exactly `khid` (list filter + exact match on the rows).
    pub async fn find_by_khid(&self, khid: &str) -> Result<Option<ErpCustomer>> {
        let filter = ListFilter {
            khid: Some(khid.to_string()),
            pagesize: 50,
            pageindex: 1,
            ..ListFilter::default()
        };
        let page = self.list_customers(&filter).await?;
        Ok(page
            .rows
            .into_iter()
            .filter(|c| c.khid.as_deref() == Some(khid))
            .min_by_key(|c| c.ord))
    }

    /// Customers whose `mobile` is exactly `mobile` (first 100 list matches).
    pub async fn find_by_mobile(&self, mobile: &str) -> Result<Vec<ErpCustomer>> {
        let filter = ListFilter {
            mobile: Some(mobile.to_string()),
            pagesize: 100,
            pageindex: 1,
            ..ListFilter::default()
        };
        let page = self.list_customers(&filter).await?;
        let want = mobile.trim();
        Ok(page
            .rows
            .into_iter()
            .filter(|c| c.mobile.as_deref().map(str::trim) == Some(want))
            .collect())
    }

    /// `custom/add.asp` without cmdkey: a new ord.
    pub async fn allocate_ord(&self, kind: CustomerKind) -> Result<i64> {
        let env = self
            .mobile(
                protocol::CUSTOM_ADD,
                None,
                vec![item("intsort", kind.intsort())],
            )
            .await?;
        protocol::parse_allocate(&env)
    }

    fn save_datas(ord: i64, fields: &CustomerFields) -> Vec<Value> {
        let mut d = vec![item("ord", ord)];
        d.extend(fields.pairs().into_iter().map(|(id, v)| item(id, v)));
        d
    }

    async fn dosave(
        &self,
        kind: CustomerKind,
        ord: i64,
        fields: &CustomerFields,
    ) -> Result<String> {
        let endpoint = format!("{}?intsort={}", protocol::CUSTOM_ADD, kind.intsort());
        let env = self
            .mobile(
                &endpoint,
                Some(protocol::CMD_SAVE),
                Self::save_datas(ord, fields),
            )
            .await?;
        protocol::parse_write_outcome(&env)
    }

    /// Create a customer: allocate an ord when `fields.ord` is `None`, then `__sys_dosave`. With
    /// `verify_creates`, read it back (khid, else details); a missing record is a `Protocol` error.
    pub async fn save_customer(
        &self,
        kind: CustomerKind,
        fields: &CustomerFields,
    ) -> Result<SaveResult> {
        let ord = match fields.ord {
            Some(o) => o,
            None => self.allocate_ord(kind).await?,
        };
        let message = self.dosave(kind, ord, fields).await?;
        let verified = if self.inner.cfg.verify_creates {
            Some(self.verify(ord, fields.khid.as_deref()).await?)
        } else {
            None
        };
        Ok(SaveResult {
            ord,
            message,
            verified,
        })
    }

    async fn verify(&self, ord: i64, khid: Option<&str>) -> Result<ErpCustomer> {
        if let Some(k) = khid.filter(|k| !k.is_empty()) {
            let filter = ListFilter {
                khid: Some(k.to_string()),
                pagesize: 50,
                pageindex: 1,
                ..ListFilter::default()
            };
            if let Some(c) = self
                .list_customers(&filter)
                .await?
                .rows
                .into_iter()
                .find(|c| c.ord == ord)
            {
                return Ok(c);
            }
        }
        match self.customer_detail(ord).await? {
            Some(d) => {
                let mut raw = Map::new();
                for f in &d.fields {
                    raw.insert(
                        f.id.clone(),
                        f.value.clone().map_or(Value::Null, Value::String),
                    );
                }
                raw.insert("ord".into(), Value::from(ord));
                list::customer_from_row(raw)
            }
            None => {
                warn!(ord, "erp acknowledged a save that it did not persist");
                Err(Error::Protocol(format!("ERP acknowledged the save of ord {ord} but read-back found nothing (not persisted)")))
            }
        }
    }

    /// `custom/add.asp?edit=1`: details, `None` when the ERP says the customer does not exist.
    pub async fn customer_detail(&self, ord: i64) -> Result<Option<CustomerDetail>> {
        let endpoint = format!("{}?edit=1", protocol::CUSTOM_ADD);
        let env = self.mobile(&endpoint, None, vec![item("ord", ord)]).await?;
        if protocol::is_not_found(&env) {
            return Ok(None);
        }
        list::parse_detail(&env, ord).map(Some)
    }

    /// `custom/list.asp` `refresh`.
    pub async fn list_customers(&self, filter: &ListFilter) -> Result<ListPage> {
        let mut d = Vec::new();
        for (id, v) in [
            ("khid", &filter.khid),
            ("ly", &filter.ly),
            ("mobile", &filter.mobile),
            ("name", &filter.name),
        ] {
            if let Some(v) = v {
                d.push(item(id, v.as_str()));
            }
        }
        if filter.pagesize > 0 {
            d.push(item("pagesize", filter.pagesize));
        }
        if filter.pageindex > 0 {
            d.push(item("pageindex", filter.pageindex));
        }
        if let Some(s) = &filter.sort {
            d.push(item("_rpt_sort", s.as_str()));
        }
        let env = self
            .mobile(protocol::CUSTOM_LIST, Some(protocol::CMD_REFRESH), d)
            .await?;
        list::customer_page(&env)
    }

    /// `custom/add.asp` with `delete_cmdkey`: `true` if deleted, `false` if it did not exist.
    pub async fn delete_customer(&self, ord: i64) -> Result<bool> {
        let env = self
            .mobile(
                protocol::CUSTOM_ADD,
                Some(&self.inner.cfg.delete_cmdkey),
                vec![item("ord", ord)],
            )
            .await?;
        if protocol::is_not_found(&env) {
            return Ok(false);
        }
        protocol::parse_write_outcome(&env).map(|_| true)
    }

    /// Update an existing customer (`fields.ord` required) through `update_mode`.
    pub async fn edit_customer(&self, kind: CustomerKind, fields: &CustomerFields) -> Result<()> {
        let ord = fields
            .ord
            .ok_or_else(|| Error::Config("edit_customer needs fields.ord".into()))?;
        match self.inner.cfg.update_mode {
            UpdateMode::Save => self.dosave(kind, ord, fields).await.map(|_| ()),
            UpdateMode::Webapi => {
                let cfg = &self.inner.cfg;
                let mut m = Map::new();
                m.insert("ord".into(), Value::from(ord));
                for (id, v) in fields.pairs() {
                    m.insert(id.into(), Value::String(v.to_string()));
                }
                m.insert("sort".into(), Value::String(cfg.webapi_sort.clone()));
                m.insert("sort1".into(), Value::String(cfg.webapi_sort1.clone()));
                m.insert("sort2".into(), Value::String(cfg.webapi_sort2.clone()));
                if !m.contains_key("person_name") {
                    m.insert("person_name".into(), Value::String(fields.name.clone()));
                }
                m.insert("intsort".into(), Value::from(kind.intsort()));
                self.call(
                    protocol::WEBAPI_CUSTOMER_EDIT,
                    Proto::Webapi {
                        body: Value::Object(m),
                    },
                )
                .await
                .map(|_| ())
            }
        }
    }

    // ------------------------------------------------------------------ persons, assignment, follow-up

    /// Contact persons of a customer (`person/list.asp`, all pages up to 50).
    pub async fn list_persons(&self, customer_ord: i64) -> Result<Vec<ErpPerson>> {
        let field = self.inner.cfg.person_customer_field.clone();
        let mut out = Vec::new();
        let mut pageindex = 1u32;
        loop {
            let d = vec![
                item(&field, customer_ord),
                item("pagesize", 100),
                item("pageindex", pageindex),
            ];
            let env = self
                .mobile(protocol::PERSON_LIST, Some(protocol::CMD_REFRESH), d)
                .await?;
            let t = list::parse_table(&env)?;
            let n = t.rows.len();
            out.extend(t.rows.into_iter().map(|r| list::person_from_row(r, &field)));
            if n == 0 || pageindex >= t.page.pagecount || pageindex >= 50 {
                break;
            }
            pageindex += 1;
        }
        Ok(out)
    }

    /// `person/add.asp` `__sys_dosave`; returns the person's ord when the ERP reports one.
    pub async fn add_person(&self, customer_ord: i64, person: &Person) -> Result<Option<i64>> {
        let mut d = vec![
            item(&self.inner.cfg.person_customer_field, customer_ord),
            item("name", person.name.as_str()),
        ];
        for (id, v) in [
            ("mobile", &person.mobile),
            ("phone", &person.phone),
            ("email", &person.email),
        ] {
            if let Some(v) = v {
                d.push(item(id, v.as_str()));
            }
        }
        let env = self
            .mobile(protocol::PERSON_ADD, Some(protocol::CMD_SAVE), d)
            .await?;
        protocol::parse_write_outcome(&env)?;
        Ok(protocol::parse_written_id(&env))
    }

    /// `systemmanage/order.asp?datatype=tel`.
    pub async fn assign(&self, ord: i64, to: &Assignment) -> Result<()> {
        let (m1, m2) = match to {
            Assignment::Public => (1, String::new()),
            Assignment::To(u) => (0, u.clone()),
        };
        let endpoint = format!("{}?datatype=tel", protocol::ORDER);
        let d = vec![item("ord", ord), item("member1", m1), item("member2", m2)];
        let env = self.mobile(&endpoint, Some(protocol::CMD_SAVE), d).await?;
        protocol::parse_write_outcome(&env).map(|_| ())
    }

    /// `systemmanage/reply.asp?datatype=tel` with the configured field ids.
    pub async fn add_followup(&self, ord: i64, f: &Followup) -> Result<()> {
        let ids = &self.inner.cfg.followup;
        let mut d = vec![
            item("ord", ord),
            item(&ids.template_field, f.template_id),
            item(&ids.content_field, f.content.as_str()),
            item(&ids.date_field, f.date.as_str()),
        ];
        if let (Some(field), Some(sort)) = (&ids.sort_field, f.sort) {
            d.push(item(field, sort));
        }
        let endpoint = format!("{}?datatype=tel", protocol::REPLY);
        let env = self.mobile(&endpoint, Some(protocol::CMD_SAVE), d).await?;
        protocol::parse_write_outcome(&env).map(|_| ())
    }
}

fn unparsed(bytes: &[u8]) -> Value {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]);
    serde_json::json!({ "unparsed": super::mask::mask_mobiles_in_text(&s) })
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

    #[test]
    fn save_datas_ids() {
        let f = CustomerFields {
            name: "甲".into(),
            weixin_acc: Some("wx".into()),
            khid: Some("WX1".into()),
            ..Default::default()
        };
        let d = ErpClient::save_datas(5, &f);
        let ids: Vec<&str> = d.iter().filter_map(|v| v["id"].as_str()).collect();
        assert_eq!(ids, ["ord", "name", "khid", "weixinAcc"]);
        assert_eq!(d[0]["val"], 5);
    }
}
