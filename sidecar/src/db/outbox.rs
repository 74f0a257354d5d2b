//! Calls of the outbox protocol, the extension's SQL API (`pg_ext/sql/outbox.sql`): claim, ack
//! (write-back), retry, release, extend_leases, mark_send_started, and the sync_log entries an ack
//! carries. No state transition is written here: the functions own them.

use deadpool_postgres::{GenericClient, Pool};
use serde_json::Value;

use crate::error::Result;

use super::pool::pool_err;
use super::q;
use super::types::*;

/// Acknowledge `row` with the handler's effects (`erp_sync.ack`). `finish` = `(status, reason)`;
/// None keeps the row running (a retry follows in the same transaction). Returns the row's
/// status, or None when the lease was lost (nothing written).
pub async fn write_back(
    c: &impl GenericClient,
    row: &OutboxRow,
    worker: &str,
    finish: Option<(&str, Option<&str>)>,
    fx: &Effects,
) -> Result<Option<String>> {
    let st = c.prepare_cached(q::ACK).await?;
    let (status, reason) = finish.unzip();
    let reason = reason.flatten();
    let (mut change, mut khid, mut ord, mut ctype, mut person, mut hash) =
        (None, None, None, None, None::<bool>, None);
    let (mut tier, mut to, mut unlink_contact) = (None, None, None::<&str>);
    match &fx.link {
        Some(LinkChange::Upsert(l)) => {
            change = Some("upsert");
            khid = Some(l.khid.as_str());
            ord = Some(l.erp_ord);
            ctype = Some(l.customer_type);
            person = Some(l.person_synced);
            hash = l.payload_hash.as_deref();
        }
        Some(LinkChange::Assign(t, a)) => {
            change = Some("assign");
            tier = Some(t.as_str());
            to = a.as_deref();
        }
        Some(LinkChange::Unlink(contact, o)) => {
            change = Some("unlink");
            unlink_contact = Some(contact.as_str());
            ord = Some(*o);
        }
        None => {}
    }
    let logs = Value::Array(fx.logs.iter().map(LogEntry::to_json).collect());
    let r = c
        .query_one(
            &st,
            &[
                &row.id,
                &worker,
                &status,
                &reason,
                &change,
                &khid,
                &ord,
                &ctype,
                &person,
                &hash,
                &tier,
                &to,
                &unlink_contact,
                &fx.rolled_back,
                &logs,
            ],
        )
        .await?;
    Ok(r.try_get::<_, Option<String>>(0)?)
}

/// A retryable failure of `row` (`erp_sync.retry`, after [`write_back`] with no final status in
/// the same transaction): `counts` = whether it is an attempt. Returns the row's new status
/// (`pending` or `dead`), None when the lease was lost.
pub async fn retry(
    c: &impl GenericClient,
    row: &OutboxRow,
    worker: &str,
    delay_ms: i64,
    error: &str,
    max_attempts: i32,
    counts: bool,
) -> Result<Option<String>> {
    let st = c.prepare_cached(q::RETRY).await?;
    let r = c
        .query_one(
            &st,
            &[
                &row.id,
                &worker,
                &delay_ms,
                &error,
                &max_attempts,
                &counts,
                &row.counted,
            ],
        )
        .await?;
    Ok(r.try_get::<_, Option<String>>(0)?)
}

/// Column of `erp_sync.claim`'s result holding the row's new status (`running`, `dead` or
/// `in_doubt`).
const CLAIM_STATUS_COLUMN: usize = 17;

/// What one claim asks for (`erp_sync.claim`'s parameters).
pub struct ClaimRequest<'a> {
    pub worker: &'a str,
    pub lease_ms: u64,
    /// Contact heads at most.
    pub heads: i64,
    /// Rows per contact at most.
    pub chain_max: i64,
    /// Rows this worker still has in hand (never re-claimed by it).
    pub in_hand: &'a [i64],
    /// `engine.max_attempts`: a head claimed this often without a result ends dead.
    pub max_attempts: i32,
    /// `engine.in_doubt_followups = "hold"`: a follow-up head whose send began ends in_doubt.
    pub hold_in_doubt: bool,
}

/// Rows the claim ended `dead` (no attempts left) or `in_doubt` (a follow-up whose send had begun,
/// with `hold_in_doubt`) are logged and not returned.
pub async fn claim(pool: &Pool, req: &ClaimRequest<'_>) -> Result<Vec<OutboxRow>> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::CLAIM).await?;
    // One statement in autocommit: the function carries its planner settings.
    let lease_ms = i64::try_from(req.lease_ms).unwrap_or(i64::MAX);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &req.worker,
        &lease_ms,
        &req.heads,
        &req.chain_max,
        &req.in_hand,
        &req.max_attempts,
        &req.hold_in_doubt,
    ];
    let rows = c.query(&st, &params).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let row = OutboxRow::from_claim_row(r)?;
        match r.try_get::<_, String>(CLAIM_STATUS_COLUMN)?.as_str() {
            "dead" => {
                tracing::warn!(outbox_id = row.id, contact_id = row.contact_id, kind = %row.kind,
                    attempts = row.attempts, "row dead: no attempts left (its lease expired every time)");
                crate::metrics::row_acked(&row.kind, "dead");
                continue;
            }
            "in_doubt" => {
                tracing::warn!(outbox_id = row.id, contact_id = row.contact_id,
                    "follow-up in doubt: its send began and no result was recorded; waiting for erp_sync.resolve_in_doubt");
                crate::metrics::row_acked(&row.kind, "in_doubt");
                continue;
            }
            _ => {}
        }
        out.push(row);
    }
    out.sort_by_key(|r| r.id);
    Ok(out)
}

/// Extend the leases of the rows in hand.
pub async fn extend_leases(
    pool: &Pool,
    worker: &str,
    lease_ms: u64,
    in_hand: &[i64],
) -> Result<u64> {
    if in_hand.is_empty() {
        return Ok(0);
    }
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::EXTEND_LEASES).await?;
    let n: i64 = c
        .query_one(&st, &[&worker, &(lease_ms as i64), &in_hand])
        .await?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Release rows held by `worker` (`ids` None = all of them); `unprocessed_counted`: rows among
/// them whose attempt the claim counted and that were not processed (they get it back). Returns
/// how many.
pub async fn release(
    pool: &Pool,
    worker: &str,
    ids: Option<&[i64]>,
    unprocessed_counted: &[i64],
) -> Result<u64> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::RELEASE).await?;
    let ids: Option<Vec<i64>> = ids.map(<[i64]>::to_vec);
    let n: i64 = c
        .query_one(&st, &[&worker, &ids, &unprocessed_counted])
        .await?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Record, durably (autocommit), that the follow-up of row `id` is being sent now; false when the
/// row is no longer leased to `worker`.
pub async fn mark_send_started(c: &impl GenericClient, id: i64, worker: &str) -> Result<bool> {
    let st = c.prepare_cached(q::MARK_SEND_STARTED).await?;
    Ok(c.query_one(&st, &[&id, &worker]).await?.try_get(0)?)
}

/// Parameters of `sync_log_insert.sql` for one entry; `error` is its [`LogEntry::stored_error`].
pub fn log_params<'a>(
    row: &'a OutboxRow,
    worker: &'a &'a str,
    l: &'a LogEntry,
    error: &'a Option<String>,
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 11] {
    [
        &row.id,
        &row.contact_id,
        &l.action,
        &l.erp_ord,
        &l.request,
        &l.response,
        &l.outcome,
        error,
        &l.duration_ms,
        &l.old_data,
        worker,
    ]
}

pub async fn insert_logs(
    c: &impl GenericClient,
    row: &OutboxRow,
    worker: &str,
    logs: &[LogEntry],
) -> Result<()> {
    if logs.is_empty() {
        return Ok(());
    }
    let st = c.prepare_cached(q::SYNC_LOG_INSERT).await?;
    for l in logs {
        let error = l.stored_error();
        c.execute(&st, &log_params(row, &worker, l, &error)).await?;
    }
    Ok(())
}
