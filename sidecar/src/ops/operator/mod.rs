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
//!
//! Files: `mod.rs` the reads (search, timeline, the status page's rejections), `session.rs` who
//! may act (admin token, sessions, CSRF, Origin; sign-in and sign-out), `actions.rs` the actions
//! and their audit rows.

mod actions;
mod session;

pub use actions::action;
pub use session::{login, logout, session, Gate};

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use deadpool_postgres::Pool;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::db::pool_err;
use crate::error::{Error, Result};

mod q {
    pub const SEARCH: &str = include_str!("../../../queries/operator_search.sql");
    pub const CONTACT: &str = include_str!("../../../queries/operator_contact.sql");
    pub const OUTBOX: &str = include_str!("../../../queries/operator_outbox.sql");
    pub const LOG: &str = include_str!("../../../queries/operator_log.sql");
    pub const AUDIT: &str = include_str!("../../../queries/operator_audit.sql");
    pub const AUDIT_INSERT: &str = include_str!("../../../queries/operator_audit_insert.sql");
    pub const OUTBOX_CONTACT: &str = include_str!("../../../queries/operator_outbox_contact.sql");
    pub const LOG_CONTACT: &str = include_str!("../../../queries/operator_log_contact.sql");
    pub const SYNC_NOW: &str = include_str!("../../../queries/operator_sync_now.sql");
    pub const RETRY: &str = include_str!("../../../queries/operator_retry.sql");
    pub const RESOLVE: &str = include_str!("../../../queries/operator_resolve.sql");
    pub const ROLLBACK: &str = include_str!("../../../queries/operator_rollback.sql");
    pub const REJECTIONS: &str = include_str!("../../../queries/operator_rejections.sql");
}

/// Rows of each timeline part, and search results, shown at most.
const LIMIT: i64 = 50;

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
