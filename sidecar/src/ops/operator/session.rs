//! Who may act on the operator page: the admin token, the signed-in sessions (in memory), the
//! session cookie, the CSRF token and the `Origin` check; the sign-in and sign-out endpoints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{err, OperatorState};

/// Name of the session cookie.
pub const COOKIE: &str = "erp_sync_session";
/// Header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends this long after sign-in.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
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
    pub(super) fn lookup(&self, id: &str) -> Option<(String, String)> {
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

pub(super) fn session_id(headers: &HeaderMap) -> Option<String> {
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
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
        _ => false,
    }
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
}
