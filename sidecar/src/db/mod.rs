//! Database access of the engine and the ops: `pool` (pool, version check, NOTIFY channel),
//! `types` (the domain types), `outbox` (calls of the outbox protocol, the extension's SQL API),
//! and here the reads: one function per query in `sidecar/queries/*.sql`.

use deadpool_postgres::{GenericClient, Pool};
use serde_json::Value;

use crate::error::Result;

pub mod erp_session;
mod outbox;
mod pool;
mod types;

pub use outbox::*;
pub use pool::*;
pub use types::*;

pub mod q {
    // The outbox protocol is the extension's SQL API (pg_ext/sql/outbox.sql): these only call it.
    pub const CLAIM: &str = "SELECT * FROM erp_sync.claim($1, $2, $3, $4, $5, $6, $7)";
    pub const ACK: &str =
        "SELECT erp_sync.ack($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
    pub const RETRY: &str = "SELECT erp_sync.retry($1, $2, $3, $4, $5, $6, $7)";
    pub const RELEASE: &str = "SELECT erp_sync.release($1, $2, $3)";
    pub const EXTEND_LEASES: &str = "SELECT erp_sync.extend_leases($1, $2, $3)";
    pub const MARK_SEND_STARTED: &str = "SELECT erp_sync.mark_send_started($1, $2)";
    pub const WORKER_UPSERT: &str = include_str!("../../queries/worker_upsert.sql");
    pub const WORKER_DELETE: &str = include_str!("../../queries/worker_delete.sql");
    pub const CONTACT_PAYLOAD: &str = include_str!("../../queries/contact_payload.sql");
    pub const SIGNAL_PAYLOAD: &str = include_str!("../../queries/signal_payload.sql");
    pub const ASSIGN_TARGET: &str = include_str!("../../queries/assign_target.sql");
    pub const ASSIGNMENT_FOR: &str = include_str!("../../queries/assignment_for.sql");
    pub const LINK_GET: &str = include_str!("../../queries/link_get.sql");
    pub const ROW_CONTEXT: &str = include_str!("../../queries/row_context.sql");
    pub const SYNC_LOG_INSERT: &str = include_str!("../../queries/sync_log_insert.sql");
    pub const REJECTION_GET: &str = include_str!("../../queries/rejection_get.sql");
    pub const PRIOR_CUSTOMER_ROW: &str = include_str!("../../queries/prior_customer_row.sql");
    pub const SYNC_LOG_GET: &str = include_str!("../../queries/sync_log_get.sql");
    pub const UNFINISHED: &str = include_str!("../../queries/unfinished.sql");
    pub const NEXT_DUE: &str = include_str!("../../queries/next_due.sql");
    pub const DRY_RUN_PLAN: &str = include_str!("../../queries/dry_run_plan.sql");
    pub const ERP_SESSION_GET: &str = include_str!("../../queries/erp_session_get.sql");
    pub const ERP_SESSION_LOCK: &str = include_str!("../../queries/erp_session_lock.sql");
    pub const ERP_SESSION_PUT: &str = include_str!("../../queries/erp_session_put.sql");
}

/// Read the [`RowContext`] of `row`.
pub async fn row_context(c: &impl GenericClient, row: &OutboxRow) -> Result<RowContext> {
    let st = c.prepare_cached(q::ROW_CONTEXT).await?;
    let r = c
        .query_one(&st, &[&row.contact_id, &row.id, &row.kind, &row.ref_id])
        .await?;
    RowContext::from_row(&r, 1, r.try_get(0)?)
}

/// The tier of `score` and, when it differs from `current`, the rep picked for it.
pub async fn assign_target(
    c: &impl GenericClient,
    score: f64,
    current: Option<&str>,
) -> Result<(String, Option<String>)> {
    let st = c.prepare_cached(q::ASSIGN_TARGET).await?;
    let r = c.query_one(&st, &[&score, &current]).await?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// Register / heartbeat the worker: idle flag and the ERP login state (`login_refused`).
pub async fn set_idle(
    pool: &Pool,
    worker: &str,
    idle: bool,
    login_refused: Option<&str>,
) -> Result<()> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::WORKER_UPSERT).await?;
    c.execute(&st, &[&worker, &idle, &login_refused]).await?;
    Ok(())
}

pub async fn worker_delete(pool: &Pool, worker: &str) -> Result<()> {
    let c = pool.get().await.map_err(pool_err)?;
    c.execute(q::WORKER_DELETE, &[&worker]).await?;
    Ok(())
}

pub async fn contact_payload(c: &impl GenericClient, contact_id: &str) -> Result<Option<Value>> {
    let st = c.prepare_cached(q::CONTACT_PAYLOAD).await?;
    let row = c.query_one(&st, &[&contact_id]).await?;
    Ok(row.try_get(0)?)
}

pub async fn signal_payload(c: &impl GenericClient, signal_id: i64) -> Result<Option<Value>> {
    let st = c.prepare_cached(q::SIGNAL_PAYLOAD).await?;
    let row = c.query_one(&st, &[&signal_id]).await?;
    Ok(row.try_get(0)?)
}

pub async fn assignment_for(c: &impl GenericClient, score: f64) -> Result<Option<String>> {
    let st = c.prepare_cached(q::ASSIGNMENT_FOR).await?;
    let row = c.query_one(&st, &[&score]).await?;
    Ok(row.try_get(0)?)
}

pub async fn link_get(c: &impl GenericClient, contact_id: &str) -> Result<Option<Link>> {
    let st = c.prepare_cached(q::LINK_GET).await?;
    let Some(r) = c.query_opt(&st, &[&contact_id]).await? else {
        return Ok(None);
    };
    Ok(Some(Link::from_row(&r, 0)?))
}

pub async fn rejection(c: &impl GenericClient, contact_id: &str) -> Result<Option<Value>> {
    let st = c.prepare_cached(q::REJECTION_GET).await?;
    match c.query_opt(&st, &[&contact_id]).await? {
        Some(r) => Ok(Some(
            r.try_get::<_, Option<Value>>(0)?.unwrap_or(Value::Null),
        )),
        None => Ok(None),
    }
}

pub async fn prior_customer_row(
    c: &impl GenericClient,
    contact_id: &str,
    before_id: i64,
) -> Result<Option<(String, Option<String>)>> {
    let st = c.prepare_cached(q::PRIOR_CUSTOMER_ROW).await?;
    match c.query_opt(&st, &[&contact_id, &before_id]).await? {
        Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
        None => Ok(None),
    }
}

pub async fn sync_log_get(c: &impl GenericClient, id: i64) -> Result<Option<LoggedAction>> {
    let st = c.prepare_cached(q::SYNC_LOG_GET).await?;
    let Some(r) = c.query_opt(&st, &[&id]).await? else {
        return Ok(None);
    };
    Ok(Some(LoggedAction {
        action: r.try_get(0)?,
        erp_ord: r.try_get(1)?,
        old_data: r.try_get(2)?,
        contact_id: r.try_get(3)?,
        rolled_back: r.try_get(4)?,
        outcome: r.try_get(5)?,
    }))
}

/// Rows not finished yet (pending or running, any worker).
pub async fn unfinished(pool: &Pool) -> Result<i64> {
    let c = pool.get().await.map_err(pool_err)?;
    Ok(c.query_one(q::UNFINISHED, &[]).await?.try_get(0)?)
}

/// Milliseconds until the earliest pending row is due; None when nothing is pending.
pub async fn next_due_ms(pool: &Pool) -> Result<Option<i64>> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::NEXT_DUE).await?;
    Ok(c.query_one(&st, &[]).await?.try_get(0)?)
}

pub async fn dry_run_plan(pool: &Pool, after_id: i64, limit: i64) -> Result<Vec<OutboxRow>> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::DRY_RUN_PLAN).await?;
    let rows = c.query(&st, &[&after_id, &limit]).await?;
    rows.iter().map(OutboxRow::from_row).collect()
}
