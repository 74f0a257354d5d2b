//! What the simulator's protocol handlers share: a parsed request (`Req`), JSON replies, the
//! refusal rules of the fault settings. Used by [`super::routes`] and [`super::strict`].

use std::collections::BTreeMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::app::Sim;
use super::vendor as p;

/// A parsed mobile-endpoint request.
pub(super) struct Req {
    pub(super) seq: u64,
    /// Path and query as received.
    pub(super) path: String,
    /// URL query, keys lower-cased.
    pub(super) query: BTreeMap<String, String>,
    pub(super) session: String,
    pub(super) cmdkey: Option<String>,
    /// `datas` stringified (`txt:` prefix kept except for login).
    pub(super) datas: BTreeMap<String, String>,
}

impl Req {
    pub(super) fn get(&self, id: &str) -> Option<&str> {
        self.datas.get(id).map(String::as_str)
    }
    /// A URL query parameter (key case-insensitive).
    pub(super) fn query(&self, key: &str) -> Option<&str> {
        self.query
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }
    /// Whether this is a write: `cmdkey` `__sys_dosave` or `delete`.
    pub(super) fn is_write(&self) -> bool {
        matches!(self.cmdkey.as_deref(), Some(p::CMD_SAVE | p::CMD_DELETE))
    }
    pub(super) fn num(&self, id: &str) -> i64 {
        self.get(id)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |f| f as i64)
    }
}

pub(super) fn stringify(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), v.to_string()),
            None => (kv.to_ascii_lowercase(), String::new()),
        })
        .collect()
}

pub(super) fn json_response(status: StatusCode, v: &Value, html_type: bool) -> Response {
    let bytes = match serde_json::to_vec(v) {
        Ok(b) => b,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    // The real ASP pages often answer JSON as text/html: the client must not care.
    let ct = if html_type {
        "text/html; charset=utf-8"
    } else {
        "application/json; charset=utf-8"
    };
    (status, [(header::CONTENT_TYPE, ct)], bytes).into_response()
}

/// The refusal rule of the fault settings that matches this request, if any.
pub(super) fn refusal_rule(sim: &Sim, req: &Req) -> Option<String> {
    sim.with_faults(|f| f.refusal(&req.path, |k| req.get(k).map(str::to_string)))
}
