//! Runs one contact's claimed rows in id order and writes each result back. Per row: one read
//! (`row_context.sql`; the claim already read the head's), the ERP calls, one acknowledgement
//! (`erp_sync.ack`: lease check, `customer_link`, `sync_log`, outbox status in one transaction;
//! `erp_sync.retry` after it for a retryable failure).

use std::time::{Duration, Instant};

use serde_json::json;

use super::handlers::{self, Verdict};
use super::{Ctx, RunSummary};
use crate::db::{self, Effects, LogEntry, OutboxRow};
use crate::error::{Error, Result, RetryClass};
use crate::mapping;

/// What the outbox row becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Ack {
    Finish {
        status: &'static str,
        reason: Option<String>,
    },
    Retry {
        delay: Duration,
        error: String,
        counts: bool,
    },
}

/// After a row: go on with the chain or stop (and release the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Stop,
}

/// Whether an error is the local database being unreachable (connection refused or lost, pool
/// exhausted) rather than something about the row: such a failure gives its attempt back.
fn database_unavailable(e: &Error) -> bool {
    match e {
        Error::Pool(_) => true,
        Error::Db(db) => db.code().is_none() || db.is_closed(),
        _ => false,
    }
}

/// Map a handler result to the outbox acknowledgement; `attempts` counts the current one (the
/// claim counted it). Reasons and errors carry their mobiles masked: they are stored in
/// `outbox.last_error` and logged (an ERP refusal quotes what it refused).
pub fn ack_for(result: &Result<Verdict>, attempts: i32, backoff: &crate::backoff::Backoff) -> Ack {
    let mut ack = ack_unmasked(result, attempts, backoff);
    match &mut ack {
        Ack::Finish {
            reason: Some(text), ..
        }
        | Ack::Retry { error: text, .. } => *text = erp_sync_rules::mask_text(text),
        Ack::Finish { reason: None, .. } => {}
    }
    ack
}

fn ack_unmasked(result: &Result<Verdict>, attempts: i32, backoff: &crate::backoff::Backoff) -> Ack {
    match result {
        Ok(Verdict::Done) => Ack::Finish {
            status: "done",
            reason: None,
        },
        Ok(Verdict::Skipped(r)) => Ack::Finish {
            status: "skipped",
            reason: Some(r.clone()),
        },
        Ok(Verdict::Dead(r)) => Ack::Finish {
            status: "dead",
            reason: Some(r.clone()),
        },
        Ok(Verdict::InDoubt(r)) => Ack::Finish {
            status: "in_doubt",
            reason: Some(r.clone()),
        },
        // Refused credentials are not the row's fault: keep it (not counted) and let the engine
        // pause claiming until a login works again.
        Err(e @ Error::LoginFailed(_)) => Ack::Retry {
            delay: backoff.delay(1),
            error: e.to_string(),
            counts: false,
        },
        Err(e) if database_unavailable(e) => Ack::Retry {
            delay: backoff.delay(u32::try_from(attempts.max(1)).unwrap_or(1)),
            error: e.to_string(),
            counts: false,
        },
        Err(e) => match e.retry_class() {
            RetryClass::Retry => Ack::Retry {
                delay: backoff.delay(u32::try_from(attempts.max(1)).unwrap_or(1)),
                error: e.to_string(),
                counts: true,
            },
            // The client re-logs in itself; reaching here means the repeat expired again. Try
            // later without counting it against the row.
            RetryClass::Relogin => Ack::Retry {
                delay: backoff.delay(1),
                error: e.to_string(),
                counts: false,
            },
            RetryClass::Fatal => Ack::Finish {
                status: "dead",
                reason: Some(e.to_string()),
            },
        },
    }
}

pub async fn run_chain(ctx: &Ctx, mut chain: Vec<OutboxRow>) -> RunSummary {
    let mut s = RunSummary::default();
    // the claim read the head's context; later rows read theirs after the previous write-back
    let mut claimed_context = chain.first_mut().and_then(|r| r.context.take());
    for (i, row) in chain.iter().enumerate() {
        if ctx.stopping() {
            release_rest(ctx, &chain[i..], &mut s).await;
            return s;
        }
        let context = match claimed_context.take() {
            Some(rc) => Ok(rc),
            None => read_context(ctx, row).await,
        };
        let rc = match context {
            Ok(rc) if rc.blocked => {
                tracing::warn!(outbox_id = row.id, contact_id = row.contact_id,
                    "an earlier row of the contact is pending again; releasing the rest of the chain");
                release_rest(ctx, &chain[i..], &mut s).await;
                return s;
            }
            Ok(rc) => rc,
            Err(e) => {
                tracing::warn!(outbox_id = row.id, error = %e,
                    "cannot read the row's context; releasing the rest of the chain");
                release_rest(ctx, &chain[i..], &mut s).await;
                return s;
            }
        };
        let started = Instant::now();
        let mut fx = Effects::default();
        let result = handlers::process(ctx, row, rc, &mut fx).await;
        let ack = ack_for(
            &result,
            row.attempts + i32::from(!row.counted),
            &ctx.backoff,
        );
        if let (Ok(Verdict::Dead(reason)), true) =
            (&result, fx.logs.iter().all(|l| l.outcome != "failed"))
        {
            // Dead without an ERP call (e.g. a follow-up whose customer is not in the ERP): audit it too.
            fx.logs.push(LogEntry {
                action: action_of_kind(&row.kind),
                outcome: "failed",
                error: Some(reason.clone()),
                ..LogEntry::default()
            });
        }
        // A refused login is not the row's: the client tells operators once per state change
        // (and the heartbeat puts it in SQL); here it only pauses claiming.
        let login_refused = matches!(result, Err(Error::LoginFailed(_)));
        if login_refused {
            ctx.pause_for_login();
        }
        match &ack {
            Ack::Finish { status, reason } => {
                let level_warn = *status == "dead";
                if level_warn {
                    tracing::warn!(outbox_id = row.id, contact_id = row.contact_id, kind = %row.kind,
                        reason = reason.as_deref().unwrap_or(""), "row dead");
                } else {
                    tracing::debug!(outbox_id = row.id, contact_id = row.contact_id, kind = %row.kind, status,
                        reason = reason.as_deref().unwrap_or(""), elapsed_ms = started.elapsed().as_millis() as u64, "row finished");
                }
                // A fatal ERP error already has its failed sync_log entry from the step.
            }
            Ack::Retry {
                delay,
                error,
                counts,
            } if login_refused => {
                tracing::debug!(outbox_id = row.id, contact_id = row.contact_id, kind = %row.kind,
                    counted = *counts, retry_in_ms = delay.as_millis() as u64,
                    error = %error, "row waits for a working ERP login");
            }
            Ack::Retry {
                delay,
                error,
                counts,
            } => {
                tracing::warn!(outbox_id = row.id, contact_id = row.contact_id, kind = %row.kind,
                    attempt = row.attempts, counted = *counts, retry_in_ms = delay.as_millis() as u64,
                    error = %error, "row failed, will retry");
            }
        }
        let next =
            match write_back(ctx, row, &fx, &ack).await {
                Ok(WriteBack::Acked(status)) => {
                    crate::metrics::row_acked(&row.kind, status.as_str());
                    match status.as_str() {
                        "done" => s.done += 1,
                        "skipped" => s.skipped += 1,
                        "dead" => s.dead += 1,
                        "in_doubt" => s.in_doubt += 1,
                        _ => s.retried += 1,
                    }
                    if status == "pending" {
                        Next::Stop
                    } else {
                        Next::Continue
                    }
                }
                Ok(WriteBack::LeaseLost) => {
                    tracing::warn!(outbox_id = row.id, contact_id = row.contact_id,
                    "lease lost before write-back (another worker took the row); result discarded");
                    Next::Stop
                }
                Err(e) => {
                    tracing::error!(outbox_id = row.id, contact_id = row.contact_id, error = %e,
                    "write-back failed; the row will be reclaimed when its lease expires");
                    Next::Stop
                }
            };
        if next == Next::Stop {
            release_rest(ctx, &chain[i + 1..], &mut s).await;
            return s;
        }
    }
    s
}

async fn read_context(ctx: &Ctx, row: &OutboxRow) -> Result<db::RowContext> {
    let c = ctx.db().await?;
    db::row_context(&c, row).await
}

/// The sync_log action recorded for a row of `kind` that fails before any ERP call.
fn action_of_kind(kind: &str) -> &'static str {
    match kind {
        "followup" => "followup",
        "assign" => "assign",
        "rollback" => "restore",
        _ => "create",
    }
}

async fn release_rest(ctx: &Ctx, rest: &[OutboxRow], s: &mut RunSummary) {
    if rest.is_empty() {
        return;
    }
    let ids: Vec<i64> = rest.iter().map(|r| r.id).collect();
    // none of them was processed: a head among them gives back the attempt its claim counted
    let counted: Vec<i64> = rest.iter().filter(|r| r.counted).map(|r| r.id).collect();
    match db::release(&ctx.pool, &ctx.worker, Some(&ids), &counted).await {
        Ok(n) => s.released += n,
        Err(e) => {
            tracing::warn!(error = %e, rows = ?ids, "cannot release rows (their leases will expire)")
        }
    }
}

enum WriteBack {
    /// The row's new status.
    Acked(String),
    LeaseLost,
}

/// Write back with retries while the database is unavailable (the ERP effect already happened).
async fn write_back(ctx: &Ctx, row: &OutboxRow, fx: &Effects, ack: &Ack) -> Result<WriteBack> {
    let deadline = Instant::now() + Duration::from_millis(ctx.cfg.writeback_retry_ms);
    let backoff = crate::backoff::Backoff::new(100, 5_000);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match write_back_once(ctx, row, fx, ack).await {
            Ok(w) => return Ok(w),
            Err(e)
                if e.retry_class() == RetryClass::Retry
                    && Instant::now() < deadline
                    && !ctx.stopping() =>
            {
                tracing::warn!(outbox_id = row.id, error = %e, attempt, "write-back failed, retrying");
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn write_back_once(ctx: &Ctx, row: &OutboxRow, fx: &Effects, ack: &Ack) -> Result<WriteBack> {
    let mut c = ctx.db().await?;
    let (delay, error, counts) = match ack {
        // The common case: one statement, its own transaction.
        Ack::Finish { status, reason } => {
            let finish = Some((*status, reason.as_deref()));
            return Ok(
                match db::write_back(&c, row, &ctx.worker, finish, fx).await? {
                    Some(st) => WriteBack::Acked(st),
                    None => WriteBack::LeaseLost,
                },
            );
        }
        Ack::Retry {
            delay,
            error,
            counts,
        } => (delay, error, counts),
    };
    // A retry: the effects, then `erp_sync.retry` (back to pending, coalesced into a newer twin,
    // or dead at max_attempts; this attempt's failed sync_log entries become `retry` unless it
    // died), in one transaction.
    let tx = c.transaction().await?;
    if db::write_back(&tx, row, &ctx.worker, None, fx)
        .await?
        .is_none()
    {
        tx.rollback().await?;
        return Ok(WriteBack::LeaseLost);
    }
    let retried = db::retry(
        &tx,
        row,
        &ctx.worker,
        delay.as_millis() as i64,
        error,
        ctx.cfg.max_attempts,
        *counts,
    )
    .await?;
    let Some(status) = retried else {
        tx.rollback().await?;
        return Ok(WriteBack::LeaseLost);
    };
    tx.commit().await?;
    Ok(WriteBack::Acked(status))
}

/// Dry run of one row: what would be sent, logged and recorded with outcome `dry_run`.
pub async fn plan_row(ctx: &Ctx, row: &OutboxRow) -> Result<()> {
    let c = ctx.db().await?;
    let link = db::link_get(&c, &row.contact_id).await?;
    let (action, request, note) = match row.kind.as_str() {
        "customer" => match db::contact_payload(&c, &row.contact_id).await? {
            None => ("skip", None, "contact no longer exists".to_string()),
            Some(p) => match mapping::plan_customer(&p) {
                mapping::CustomerPlan::NotAdmitted(r, _) | mapping::CustomerPlan::Unmappable(r) => {
                    ("skip", None, r)
                }
                mapping::CustomerPlan::Send(v) => {
                    let fields: serde_json::Map<String, serde_json::Value> = v
                        .fields
                        .pairs()
                        .into_iter()
                        .map(|(k, val)| (k.to_string(), json!(val)))
                        .collect();
                    let req = crate::erp::mask::redact(
                        &json!({"intsort": v.kind.intsort(), "fields": fields,
                        "person": v.person.as_ref().map(|p| &p.name)}),
                    );
                    let action = if link.as_ref().and_then(|l| l.erp_ord).is_some() {
                        "update"
                    } else {
                        "create"
                    };
                    (action, Some(req), format!("would {action} ERP customer {} (create or update decided by a khid lookup)", v.khid))
                }
            },
        },
        "followup" => {
            let sig = match row.ref_id {
                Some(id) => db::signal_payload(&c, id).await?,
                None => None,
            };
            let req = sig.map(|s| {
                crate::erp::mask::redact(&json!({"template_id": row.template_id.unwrap_or(erp_sync_rules::DEFAULT_TEMPLATE_ID),
                    "content": s.get("content"), "date": handlers::signal_date(s.get("ts"))}))
            });
            ("followup", req, "would add a follow-up".to_string())
        }
        "assign" => {
            let score = match db::contact_payload(&c, &row.contact_id).await? {
                Some(p) => mapping::contact_view(&p).map(|v| v.score).unwrap_or(0.0),
                None => 0.0,
            };
            let tier = db::assignment_for(&c, score)
                .await?
                .unwrap_or_else(|| erp_sync_rules::assignment::PUBLIC.into());
            (
                "assign",
                Some(json!({"tier": tier, "score": score})),
                format!("would assign tier {tier}"),
            )
        }
        other => ("skip", None, format!("kind {other} not planned")),
    };
    tracing::info!(outbox_id = row.id, contact_id = row.contact_id, kind = %row.kind, action,
        erp_ord = link.as_ref().and_then(|l| l.erp_ord), plan = %note, "dry run");
    let entry = LogEntry {
        action,
        erp_ord: link.as_ref().and_then(|l| l.erp_ord),
        request,
        response: None,
        outcome: "dry_run",
        error: Some(note),
        duration_ms: 0,
        old_data: None,
    };
    db::insert_logs(&c, row, &ctx.worker, std::slice::from_ref(&entry)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Backoff;

    #[test]
    fn acks() {
        let b = Backoff::new(1_000, 10_000);
        assert_eq!(
            ack_for(&Ok(Verdict::Done), 0, &b),
            Ack::Finish {
                status: "done",
                reason: None
            }
        );
        assert!(matches!(
            ack_for(&Err(Error::Timeout { timeout_ms: 1 }), 2, &b),
            Ack::Retry { counts: true, .. }
        ));
        assert!(matches!(
            ack_for(&Err(Error::SessionExpired), 2, &b),
            Ack::Retry { counts: false, .. }
        ));
        assert!(matches!(
            ack_for(&Err(Error::LoginFailed("密码错误".into())), 2, &b),
            Ack::Retry { counts: false, .. }
        ));
        assert_eq!(
            ack_for(&Err(Error::Business("重复".into())), 0, &b),
            Ack::Finish {
                status: "dead",
                reason: Some("ERP refused: 重复".into())
            }
        );
        // A database outage is not the row's fault: its attempt is given back.
        assert!(matches!(
            ack_for(
                &Err(Error::Pool("timed out waiting for a connection".into())),
                2,
                &b
            ),
            Ack::Retry { counts: false, .. }
        ));
        // The claim counted the third attempt: the delay after it is the third backoff step.
        match ack_for(&Err(Error::HttpStatus { status: 503 }), 3, &b) {
            Ack::Retry { delay, .. } => assert!(
                delay >= Duration::from_millis(2_000) && delay <= Duration::from_millis(4_000)
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// What becomes `outbox.last_error` carries no clear mobile, whatever the ERP quoted.
    #[test]
    fn stored_texts_are_masked() {
        let b = Backoff::new(1_000, 10_000);
        assert_eq!(
            ack_for(
                &Err(Error::Business("手机号 +86 139-0000-0779 已存在".into())),
                0,
                &b
            ),
            Ack::Finish {
                status: "dead",
                reason: Some("ERP refused: 手机号 +86 139****0779 已存在".into())
            }
        );
        match ack_for(
            &Err(Error::ServerException("13900000779 锁定".into())),
            1,
            &b,
        ) {
            Ack::Retry { error, .. } => assert_eq!(error, "ERP server exception: 139****0779 锁定"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            ack_for(
                &Ok(Verdict::Skipped("mobile (+86)139.0000.0779 taken".into())),
                0,
                &b
            ),
            Ack::Finish {
                status: "skipped",
                reason: Some("mobile (+86)139****0779 taken".into())
            }
        );
        let entry = LogEntry {
            error: Some("ERP refused: 手机１３９０００００７７９已存在".into()),
            ..LogEntry::default()
        };
        assert_eq!(
            entry.to_json()["error"],
            "ERP refused: 手机139****0779已存在"
        );
    }
}
