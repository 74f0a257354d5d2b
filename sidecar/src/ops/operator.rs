//! The operator page's API (served by [`super::http`] next to the status page).
//!
//! | path | what |
//! |---|---|
//! | `GET /api/contacts?q=` | contacts whose khid, id, mobile (any notation) or name matches; mobiles masked |
//! | `GET /api/contacts/{id}` | one contact's timeline: its state, outbox rows, sync_log entries (masked), operator actions |
//! | `GET /api/session` | whether actions are enabled, and the signed-in operator with the page's CSRF token |
//! | `POST /api/login` | `{"token", "operator"}` → a session cookie (`HttpOnly; SameSite=Strict`) + CSRF token |
//! | `POST /api/logout` | ends the session |
//! | `POST /api/actions` | `{"action", "contact_id", ...}` with header `X-CSRF-Token`: `sync_now`, `retry`, `resolve_in_doubt` (`outbox_id`, `sent`), `rollback` (`sync_log_id`) |
//!
//! Reading needs nothing (the page is on loopback by default and masks mobiles, like the status
//! page). Actions need `http.admin_token` (or `http.admin_token_file`): without one they are
//! refused and the page stays read-only. A request that changes something must carry the session
//! cookie, the session's CSRF token in `X-CSRF-Token`, and, when the browser sends one, an
//! `Origin` equal to the page's own. Each action runs in one transaction with its row in
//! `erp_sync.operator_actions` (who, what, on which contact, the result); a refused or failed
//! action is recorded there too. The token is never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deadpool_postgres::Pool;
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::db::pool_err;
use crate::error::{Error, Result};

mod q {
    pub const SEARCH: &str = include_str!("../../queries/operator_search.sql");
    pub const CONTACT: &str = include_str!("../../queries/operator_contact.sql");
    pub const OUTBOX: &str = include_str!("../../queries/operator_outbox.sql");
    pub const LOG: &str = include_str!("../../queries/operator_log.sql");
    pub const AUDIT: &str = include_str!("../../queries/operator_audit.sql");
    pub const AUDIT_INSERT: &str = include_str!("../../queries/operator_audit_insert.sql");
    pub const OUTBOX_CONTACT: &str = include_str!("../../queries/operator_outbox_contact.sql");
    pub const LOG_CONTACT: &str = include_str!("../../queries/operator_log_contact.sql");
    pub const SYNC_NOW: &str = include_str!("../../queries/operator_sync_now.sql");
    pub const RETRY: &str = include_str!("../../queries/operator_retry.sql");
    pub const RESOLVE: &str = include_str!("../../queries/operator_resolve.sql");
    pub const ROLLBACK: &str = include_str!("../../queries/operator_rollback.sql");
    pub const REJECTIONS: &str = include_str!("../../queries/operator_rejections.sql");
}

/// Name of the session cookie.
pub const COOKIE: &str = "erp_sync_session";
/// Header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends this long after sign-in.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Rows of each timeline part, and search results, shown at most.
const LIMIT: i64 = 50;

struct Session {
    operator: String,
    csrf: String,
    expires: Instant,
}

/// Who may act: the admin token and the signed-in sessions (in memory: a restart signs everyone
/// out).
pub struct Gate {
    token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
}

impl Gate {
    /// `token` empty = actions disabled.
    pub fn new(token: &str) -> Self {
        Gate {
            token: (!token.is_empty()).then(|| token.to_string()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    fn token_matches(&self, given: &str) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(given.as_bytes())))
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a usable map (sessions are plain data).
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self, operator: String) -> (String, String) {
        let id = random_hex();
        let csrf = random_hex();
        let mut s = self.sessions();
        let now = Instant::now();
        s.retain(|_, v| v.expires > now);
        s.insert(
            id.clone(),
            Session {
                operator,
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        (id, csrf)
    }

    /// (operator, csrf) of a live session.
    fn lookup(&self, id: &str) -> Option<(String, String)> {
        let s = self.sessions();
        s.get(id)
            .filter(|v| v.expires > Instant::now())
            .map(|v| (v.operator.clone(), v.csrf.clone()))
    }

    fn close(&self, id: &str) {
        self.sessions().remove(id);
    }
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// A browser's `Origin`, when sent, must be this server's (`Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
        _ => false,
    }
}

/// What the API state needs.
pub struct OperatorState {
    pub pool: Pool,
    pub gate: Gate,
    pub worker: String,
}

fn err(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

fn db_unavailable(e: &Error) -> Response {
    tracing::warn!(error = %e, "operator page: database read failed");
    err(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

fn contact_json(r: &tokio_postgres::Row) -> Result<Value> {
    Ok(json!({
        "contact_id": r.try_get::<_, String>("contact_id")?,
        "khid": r.try_get::<_, Option<String>>("khid")?,
        "name": r.try_get::<_, Option<String>>("name")?,
        "mobile": r.try_get::<_, Option<String>>("mobile")?,
        "sync_state": r.try_get::<_, String>("sync_state")?,
        "erp_ord": r.try_get::<_, Option<i64>>("erp_ord")?,
        "last_error": r.try_get::<_, Option<String>>("last_error")?,
        "admission_reasons": r.try_get::<_, Value>("admission_reasons")?,
    }))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub async fn search(
    State(st): State<Arc<OperatorState>>,
    Query(p): Query<SearchQuery>,
) -> Response {
    let q = p.q.trim();
    if q.is_empty() {
        return Json(json!({ "contacts": [] })).into_response();
    }
    let found = async {
        let c = st.pool.get().await.map_err(pool_err)?;
        let rows = c.query(q::SEARCH, &[&q, &LIMIT]).await?;
        rows.iter().map(contact_json).collect::<Result<Vec<_>>>()
    }
    .await;
    match found {
        Ok(list) => Json(json!({ "contacts": list })).into_response(),
        Err(e) => db_unavailable(&e),
    }
}

pub async fn timeline(State(st): State<Arc<OperatorState>>, Path(id): Path<String>) -> Response {
    let read = async {
        let c = st.pool.get().await.map_err(pool_err)?;
        let Some(contact) = c.query_opt(q::CONTACT, &[&id]).await? else {
            return Ok(None);
        };
        let mut out = contact_json(&contact)?;
        out["last_synced_at"] = json!(contact.try_get::<_, Option<f64>>("last_synced_epoch")?);
        let outbox = c.query(q::OUTBOX, &[&id, &LIMIT]).await?;
        out["outbox"] = Value::Array(
            outbox
                .iter()
                .map(|r| {
                    Ok(json!({
                        "id": r.try_get::<_, i64>("id")?,
                        "kind": r.try_get::<_, String>("kind")?,
                        "ref_id": r.try_get::<_, Option<i64>>("ref_id")?,
                        "status": r.try_get::<_, String>("status")?,
                        "attempts": r.try_get::<_, i32>("attempts")?,
                        "last_error": r.try_get::<_, Option<String>>("last_error")?,
                        "created_at": r.try_get::<_, Option<f64>>("created_epoch")?,
                        "finished_at": r.try_get::<_, Option<f64>>("finished_epoch")?,
                        "send_started": r.try_get::<_, bool>("send_started")?,
                    }))
                })
                .collect::<Result<Vec<_>>>()?,
        );
        let log = c.query(q::LOG, &[&id, &LIMIT]).await?;
        out["sync_log"] = Value::Array(
            log.iter()
                .map(|r| {
                    Ok(json!({
                        "id": r.try_get::<_, i64>("id")?,
                        "outbox_id": r.try_get::<_, Option<i64>>("outbox_id")?,
                        "action": r.try_get::<_, String>("action")?,
                        "outcome": r.try_get::<_, String>("outcome")?,
                        "erp_ord": r.try_get::<_, Option<i64>>("erp_ord")?,
                        "error": r.try_get::<_, Option<String>>("error")?,
                        "at": r.try_get::<_, Option<f64>>("at_epoch")?,
                        "rolled_back": r.try_get::<_, bool>("rolled_back")?,
                        "can_roll_back": r.try_get::<_, bool>("can_roll_back")?,
                    }))
                })
                .collect::<Result<Vec<_>>>()?,
        );
        let audit = c.query(q::AUDIT, &[&id, &LIMIT]).await?;
        out["actions"] = Value::Array(
            audit
                .iter()
                .map(|r| {
                    Ok(json!({
                        "id": r.try_get::<_, i64>("id")?,
                        "at": r.try_get::<_, Option<f64>>("at_epoch")?,
                        "operator": r.try_get::<_, String>("operator")?,
                        "action": r.try_get::<_, String>("action")?,
                        "target": r.try_get::<_, Option<i64>>("target")?,
                        "ok": r.try_get::<_, bool>("ok")?,
                        "result": r.try_get::<_, Option<String>>("result")?,
                    }))
                })
                .collect::<Result<Vec<_>>>()?,
        );
        Ok::<_, Error>(Some(out))
    }
    .await;
    match read {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => err(StatusCode::NOT_FOUND, format!("no contact {id}")),
        Err(e) => db_unavailable(&e),
    }
}

/// Contacts rejected at admission for the status page: (rows, total).
pub async fn rejections(pool: &Pool, limit: i64) -> Result<(Vec<Value>, i64)> {
    let c = pool.get().await.map_err(pool_err)?;
    let rows = c.query(q::REJECTIONS, &[&limit]).await?;
    let total = match rows.first() {
        Some(r) => r.try_get::<_, i64>("total")?,
        None => 0,
    };
    let list = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "contact_id": r.try_get::<_, String>("contact_id")?,
                "khid": r.try_get::<_, Option<String>>("khid")?,
                "reasons": r.try_get::<_, Value>("reasons")?,
                "at": r.try_get::<_, Option<f64>>("at_epoch")?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((list, total))
}

pub async fn session(State(st): State<Arc<OperatorState>>, headers: HeaderMap) -> Response {
    let who = session_id(&headers).and_then(|id| st.gate.lookup(&id));
    Json(json!({
        "actions_enabled": st.gate.enabled(),
        "operator": who.as_ref().map(|w| w.0.clone()),
        "csrf": who.map(|w| w.1),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    token: String,
    operator: String,
}

pub async fn login(
    State(st): State<Arc<OperatorState>>,
    headers: HeaderMap,
    Json(l): Json<Login>,
) -> Response {
    if !same_origin(&headers) {
        return err(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    if !st.gate.enabled() {
        return err(
            StatusCode::FORBIDDEN,
            "actions are disabled: set http.admin_token (or http.admin_token_file) to enable them",
        );
    }
    let operator = l.operator.trim().to_string();
    if operator.is_empty() || operator.chars().count() > 100 {
        return err(
            StatusCode::BAD_REQUEST,
            "operator: give your name (1 to 100 characters)",
        );
    }
    if !st.gate.token_matches(&l.token) {
        tracing::warn!(operator = %operator, "operator page: sign-in refused (wrong admin token)");
        return err(StatusCode::UNAUTHORIZED, "wrong admin token");
    }
    let (id, csrf) = st.gate.open(operator.clone());
    tracing::info!(operator = %operator, "operator page: signed in");
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    let mut resp = Json(json!({ "operator": operator, "csrf": csrf })).into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(v) => {
            resp.headers_mut().insert(header::SET_COOKIE, v);
            resp
        }
        Err(e) => err(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot set the session cookie: {e}"),
        ),
    }
}

pub async fn logout(State(st): State<Arc<OperatorState>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        st.gate.close(&id);
    }
    let mut resp = Json(json!({ "operator": null })).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("erp_sync_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

/// One action of the page.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    SyncNow {
        contact_id: String,
    },
    Retry {
        contact_id: String,
    },
    ResolveInDoubt {
        contact_id: String,
        outbox_id: i64,
        sent: bool,
    },
    Rollback {
        contact_id: String,
        sync_log_id: i64,
    },
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::SyncNow { .. } => "sync_now",
            Action::Retry { .. } => "retry",
            Action::ResolveInDoubt { .. } => "resolve_in_doubt",
            Action::Rollback { .. } => "rollback",
        }
    }
    fn contact(&self) -> &str {
        match self {
            Action::SyncNow { contact_id }
            | Action::Retry { contact_id }
            | Action::ResolveInDoubt { contact_id, .. }
            | Action::Rollback { contact_id, .. } => contact_id,
        }
    }
    fn target(&self) -> Option<i64> {
        match self {
            Action::ResolveInDoubt { outbox_id, .. } => Some(*outbox_id),
            Action::Rollback { sync_log_id, .. } => Some(*sync_log_id),
            _ => None,
        }
    }
}

/// Why an action did not happen: refused by a rule of the page (4xx), or by the database.
enum Refusal {
    Bad(String),
    Db(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Db(e)
    }
}

impl From<tokio_postgres::Error> for Refusal {
    fn from(e: tokio_postgres::Error) -> Self {
        Refusal::Db(Error::Db(e))
    }
}

/// The text of a database error as a person should read it (message, detail, hint).
fn db_text(e: &Error) -> String {
    if let Error::Db(pg) = e {
        if let Some(d) = pg.as_db_error() {
            let mut t = d.message().to_string();
            if let Some(h) = d.hint() {
                t.push_str(" (");
                t.push_str(h);
                t.push(')');
            }
            return t;
        }
    }
    e.to_string()
}

/// Run the action and its audit row in one transaction; the result text.
async fn perform(
    st: &OperatorState,
    operator: &str,
    a: &Action,
) -> std::result::Result<String, Refusal> {
    let mut c = st.pool.get().await.map_err(pool_err)?;
    let tx = c.transaction().await?;
    let contact = a.contact();
    let result = match a {
        Action::SyncNow { .. } => {
            let v: Value = tx
                .query_one(q::SYNC_NOW, &[&contact])
                .await?
                .try_get("result")?;
            let status = v.get("status").and_then(Value::as_str).unwrap_or("?");
            match status {
                "rejected" => format!("rejected: {}", v["admission"]["reasons"]),
                s => s.to_string(),
            }
        }
        Action::Retry { .. } => {
            let n: i32 = tx
                .query_one(q::RETRY, &[&contact])
                .await?
                .try_get("revived")?;
            format!("{n} dead row(s) back to pending")
        }
        Action::ResolveInDoubt {
            outbox_id, sent, ..
        } => {
            let row = tx.query_opt(q::OUTBOX_CONTACT, &[outbox_id]).await?;
            match row {
                Some(r) if r.try_get::<_, String>("contact_id")? == contact => {}
                _ => {
                    return Err(Refusal::Bad(format!(
                        "outbox row {outbox_id} is not a row of contact {contact}"
                    )))
                }
            }
            tx.query_one(q::RESOLVE, &[outbox_id, sent])
                .await?
                .try_get("result")?
        }
        Action::Rollback { sync_log_id, .. } => {
            let row = tx.query_opt(q::LOG_CONTACT, &[sync_log_id]).await?;
            match row {
                Some(r)
                    if r.try_get::<_, Option<String>>("contact_id")?.as_deref()
                        == Some(contact) => {}
                _ => {
                    return Err(Refusal::Bad(format!(
                        "sync_log entry {sync_log_id} is not an entry of contact {contact}"
                    )))
                }
            }
            let id: i64 = tx
                .query_one(q::ROLLBACK, &[sync_log_id])
                .await?
                .try_get("outbox_id")?;
            format!("rollback queued as outbox row {id}")
        }
    };
    tx.query_one(
        q::AUDIT_INSERT,
        &[
            &operator,
            &a.name(),
            &contact,
            &a.target(),
            &true,
            &result,
            &st.worker,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(result)
}

/// The audit row of an action that did not happen (its own transaction).
async fn record_refusal(st: &OperatorState, operator: &str, a: &Action, why: &str) -> Result<()> {
    let c = st.pool.get().await.map_err(pool_err)?;
    c.query_one(
        q::AUDIT_INSERT,
        &[
            &operator,
            &a.name(),
            &a.contact(),
            &a.target(),
            &false,
            &why,
            &st.worker,
        ],
    )
    .await?;
    Ok(())
}

pub async fn action(
    State(st): State<Arc<OperatorState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !st.gate.enabled() {
        return err(
            StatusCode::FORBIDDEN,
            "actions are disabled: set http.admin_token (or http.admin_token_file) to enable them",
        );
    }
    if !same_origin(&headers) {
        return err(StatusCode::FORBIDDEN, "cross-origin request refused");
    }
    let Some((operator, csrf)) = session_id(&headers).and_then(|id| st.gate.lookup(&id)) else {
        return err(
            StatusCode::UNAUTHORIZED,
            "sign in with the admin token first",
        );
    };
    let given = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(csrf.as_bytes())) {
        return err(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page",
        );
    }
    let a: Action = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("not an action: {e}")),
    };
    match perform(&st, &operator, &a).await {
        Ok(result) => {
            tracing::info!(operator = %operator, action = a.name(), contact_id = %a.contact(), target = ?a.target(), "operator action");
            Json(json!({ "ok": true, "action": a.name(), "result": result })).into_response()
        }
        Err(refusal) => {
            let (code, why) = match &refusal {
                Refusal::Bad(m) => (StatusCode::BAD_REQUEST, m.clone()),
                // The database refused it (a rule of the extension): the person can act on that.
                Refusal::Db(e @ Error::Db(pg)) if pg.as_db_error().is_some() => {
                    (StatusCode::CONFLICT, db_text(e))
                }
                Refusal::Db(e) => (StatusCode::SERVICE_UNAVAILABLE, db_text(e)),
            };
            tracing::warn!(operator = %operator, action = a.name(), contact_id = %a.contact(), error = %why, "operator action refused");
            if let Err(e) = record_refusal(&st, &operator, &a, &why).await {
                tracing::warn!(error = %e, "cannot record the refused operator action");
            }
            err(code, why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("header"));
        }
        h
    }

    #[test]
    fn a_gate_without_token_refuses_every_token() {
        let g = Gate::new("");
        assert!(!g.enabled());
        assert!(!g.token_matches(""));
        assert!(!g.token_matches("anything"));
    }

    #[test]
    fn sessions_carry_operator_and_csrf_and_end() {
        let g = Gate::new("0123456789abcdef");
        assert!(g.token_matches("0123456789abcdef"));
        assert!(!g.token_matches("0123456789abcdeF"));
        assert!(!g.token_matches("0123456789abcde"));
        let (id, csrf) = g.open("张三".into());
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        assert_eq!(g.lookup(&id), Some(("张三".to_string(), csrf)));
        assert_eq!(g.lookup("not-a-session"), None);
        g.close(&id);
        assert_eq!(g.lookup(&id), None);
    }

    #[test]
    fn cookie_and_origin() {
        let h = headers(&[("cookie", "a=1; erp_sync_session=abc; b=2")]);
        assert_eq!(session_id(&h).as_deref(), Some("abc"));
        assert_eq!(session_id(&headers(&[("cookie", "a=1")])), None);
        assert!(
            same_origin(&headers(&[("host", "127.0.0.1:9187")])),
            "no Origin: not a cross-site browser request"
        );
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:9187"),
            ("origin", "http://127.0.0.1:9187")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:9187"),
            ("origin", "http://evil.example")
        ])));
        assert!(
            !same_origin(&headers(&[("origin", "http://127.0.0.1:9187")])),
            "Origin without Host"
        );
    }

    #[test]
    fn actions_parse_strictly() {
        let a: Action = serde_json::from_value(json!({"action": "sync_now", "contact_id": "7"}))
            .expect("sync_now");
        assert_eq!((a.name(), a.contact(), a.target()), ("sync_now", "7", None));
        let a: Action = serde_json::from_value(
            json!({"action": "rollback", "contact_id": "7", "sync_log_id": 3}),
        )
        .expect("rollback");
        assert_eq!((a.name(), a.target()), ("rollback", Some(3)));
        let a: Action = serde_json::from_value(json!({"action": "resolve_in_doubt", "contact_id": "u-1", "outbox_id": 9, "sent": false}))
            .expect("resolve");
        assert_eq!(
            (a.name(), a.contact(), a.target()),
            ("resolve_in_doubt", "u-1", Some(9))
        );
        for bad in [
            json!({"action": "drop_table", "contact_id": "7"}),
            json!({"action": "rollback", "contact_id": "7"}),
            json!({"action": "sync_now", "contact_id": "7", "extra": 1}),
            json!({"action": "resolve_in_doubt", "contact_id": "7", "outbox_id": 9}),
        ] {
            assert!(
                serde_json::from_value::<Action>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
