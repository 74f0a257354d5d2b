//! The operator page's actions: each runs in one transaction with its row in
//! `erp_sync.operator_actions`; a refused or failed action is recorded there too.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::session::{same_origin, session_id, CSRF_HEADER};
use super::{err, q, OperatorState};
use crate::db::pool_err;
use crate::error::{Error, Result};

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
