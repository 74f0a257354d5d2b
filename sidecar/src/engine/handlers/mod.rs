//! One handler per outbox kind. A handler reads the CURRENT platform state through the extension's
//! payload functions, talks to the ERP through the rate/concurrency-limited context, and returns a
//! verdict plus the effects to write back (sync_log entries, customer_link changes) — the write-back
//! itself happens in one transaction in [`super::worker`].

mod assign;
mod customer;
mod followup;
mod rollback;

pub use followup::signal_date;

use std::time::Instant;

use serde_json::{json, Value};

use super::Ctx;
use crate::config::InDoubtFollowups;
use crate::db::{self, Effects, LinkChange, LinkWrite, LogEntry, OutboxRow, RowContext};
use crate::erp::{Assignment, CustomerKind, ErpClient, Exchange, Followup};
use crate::error::{Error, Result};
use crate::mapping::{self, ContactView};
use crate::telemetry::masked;

/// How a row ends when the handler returns normally.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Done,
    /// Nothing to do, with the reason (kept in `outbox.last_error`).
    Skipped(String),
    /// Cannot ever succeed as things are, with the reason.
    Dead(String),
    /// A follow-up that was perhaps sent (its reply was lost): waits for a person, with the reason.
    InDoubt(String),
}

/// Process one row; `rc` is what [`db::row_context`] read for it.
pub async fn process(
    ctx: &Ctx,
    row: &OutboxRow,
    rc: RowContext,
    fx: &mut Effects,
) -> Result<Verdict> {
    match row.kind.as_str() {
        "customer" => customer::customer(ctx, row, rc, fx).await,
        "followup" => followup::followup(ctx, row, rc, fx).await,
        "assign" => assign::assign(ctx, row, rc, fx).await,
        "rollback" => rollback::rollback(ctx, row, fx).await,
        other => Ok(Verdict::Dead(format!("unknown outbox kind {other:?}"))),
    }
}

/// sync_log request/response from the exchanges of one step.
pub fn exchanges_json(ex: &[Exchange]) -> (Option<Value>, Option<Value>, i32) {
    if ex.is_empty() {
        return (None, None, 0);
    }
    let req = ex
        .iter()
        .map(|e| json!({"endpoint": e.endpoint, "cmdkey": e.cmdkey, "body": e.request}))
        .collect::<Vec<_>>();
    let resp = ex
        .iter()
        .map(|e| {
            json!({"endpoint": e.endpoint, "http_status": e.http_status, "body": e.response,
                   "error": e.error, "elapsed_ms": e.elapsed_ms})
        })
        .collect::<Vec<_>>();
    let ms: u64 = ex.iter().map(|e| e.elapsed_ms).sum();
    (
        Some(Value::Array(req)),
        Some(Value::Array(resp)),
        i32::try_from(ms).unwrap_or(i32::MAX),
    )
}

/// Record one ERP step (success or failure) from the traced client's exchanges.
fn log_step(
    fx: &mut Effects,
    t: &ErpClient,
    action: &'static str,
    erp_ord: Option<i64>,
    started: Instant,
    err: Option<&Error>,
) {
    let ex = t.take_exchanges();
    let (request, response, mut ms) = exchanges_json(&ex);
    if ex.is_empty() {
        ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    }
    fx.logs.push(LogEntry {
        action,
        erp_ord,
        request,
        response,
        outcome: if err.is_some() { "failed" } else { "success" },
        error: err.map(ToString::to_string),
        duration_ms: ms,
        old_data: None,
    });
}

/// Run one ERP step: limits, tracing, and a sync_log entry for failures (and for successes when
/// `action` is given).
async fn step<T, F>(
    ctx: &Ctx,
    fx: &mut Effects,
    t: &ErpClient,
    action: &'static str,
    erp_ord: Option<i64>,
    log_success: bool,
    fut: F,
) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let started = Instant::now();
    let res = ctx.erp_call(fut).await;
    match &res {
        Ok(_) if log_success => log_step(fx, t, action, erp_ord, started, None),
        Ok(_) => {
            // Lookups are not logged on success; drop their exchanges.
            let _discarded: Vec<Exchange> = t.take_exchanges();
        }
        Err(e) => log_step(fx, t, action, erp_ord, started, Some(e)),
    }
    res
}

fn skip_log(fx: &mut Effects, reason: &str, request: Option<Value>) {
    fx.logs.push(LogEntry {
        action: "skip",
        outcome: "skipped",
        error: Some(reason.to_string()),
        request,
        ..LogEntry::default()
    });
}

fn kind_name(k: CustomerKind) -> &'static str {
    match k {
        CustomerKind::Company => "company",
        CustomerKind::Personal => "personal",
    }
}

/// The fields as stored in sync_log (mobiles masked by the ERP module's redaction).
fn fields_json(v: &ContactView) -> Value {
    let obj: serde_json::Map<String, Value> = v
        .fields
        .pairs()
        .into_iter()
        .map(|(k, val)| (k.to_string(), Value::String(val.to_string())))
        .collect();
    crate::erp::mask::redact(&json!({"intsort": v.kind.intsort(), "fields": obj}))
}

/// Why a contact has no ERP customer, as the verdict of a dependent row (follow-up, assignment).
async fn no_customer_verdict(ctx: &Ctx, row: &OutboxRow, fx: &mut Effects) -> Result<Verdict> {
    let c = ctx.db().await?;
    if let Some(reasons) = db::rejection(&c, &row.contact_id).await? {
        let r = format!("contact rejected at admission: {reasons}");
        skip_log(fx, &r, None);
        return Ok(Verdict::Skipped(r));
    }
    if let Some(p) = db::contact_payload(&c, &row.contact_id).await? {
        let adm = mapping::admission(&p);
        if !adm.passed {
            let r = format!("contact rejected at admission: {}", adm.reasons.join(", "));
            skip_log(fx, &r, None);
            return Ok(Verdict::Skipped(r));
        }
    } else {
        let r = "contact no longer exists";
        skip_log(fx, r, None);
        return Ok(Verdict::Skipped(r.into()));
    }
    if let Some((status, err)) = db::prior_customer_row(&c, &row.contact_id, row.id).await? {
        if status == "skipped" {
            let r = format!("customer was skipped: {}", err.unwrap_or_default());
            skip_log(fx, &r, None);
            return Ok(Verdict::Skipped(r));
        }
    }
    Ok(Verdict::Dead("customer not synced yet".into()))
}
