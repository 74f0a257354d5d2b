//! Database access of the engine: a deadpool-postgres pool and one function per query in
//! `sidecar/queries/*.sql`.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio_postgres::NoTls;

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};

pub mod q {
    pub const CLAIM: &str = include_str!("../../queries/claim.sql");
    pub const EXTEND_LEASES: &str = include_str!("../../queries/extend_leases.sql");
    pub const WORKER_UPSERT: &str = include_str!("../../queries/worker_upsert.sql");
    pub const WORKER_DELETE: &str = include_str!("../../queries/worker_delete.sql");
    pub const RELEASE: &str = include_str!("../../queries/release.sql");
    pub const LOCK_LEASE: &str = include_str!("../../queries/lock_lease.sql");
    pub const FINISH: &str = include_str!("../../queries/finish.sql");
    pub const RETRY: &str = include_str!("../../queries/retry.sql");
    pub const CONTACT_PAYLOAD: &str = include_str!("../../queries/contact_payload.sql");
    pub const SIGNAL_PAYLOAD: &str = include_str!("../../queries/signal_payload.sql");
    pub const PICK_REP: &str = include_str!("../../queries/pick_rep.sql");
    pub const ASSIGNMENT_FOR: &str = include_str!("../../queries/assignment_for.sql");
    pub const LINK_GET: &str = include_str!("../../queries/link_get.sql");
    pub const LINK_UPSERT: &str = include_str!("../../queries/link_upsert.sql");
    pub const LINK_ASSIGN: &str = include_str!("../../queries/link_assign.sql");
    pub const ASSIGN_IF_UNASSIGNED: &str = include_str!("../../queries/assign_if_unassigned.sql");
    pub const SYNC_LOG_INSERT: &str = include_str!("../../queries/sync_log_insert.sql");
    pub const REJECTION_GET: &str = include_str!("../../queries/rejection_get.sql");
    pub const PRIOR_CUSTOMER_ROW: &str = include_str!("../../queries/prior_customer_row.sql");
    pub const PENDING_TWIN: &str = include_str!("../../queries/pending_twin.sql");
    pub const CARRY_RETRY: &str = include_str!("../../queries/carry_retry.sql");
    pub const SYNC_LOG_GET: &str = include_str!("../../queries/sync_log_get.sql");
    pub const SYNC_LOG_ROLLED_BACK: &str = include_str!("../../queries/sync_log_rolled_back.sql");
    pub const LINK_DELETE: &str = include_str!("../../queries/link_delete.sql");
    pub const UNFINISHED: &str = include_str!("../../queries/unfinished.sql");
    pub const NEXT_DUE: &str = include_str!("../../queries/next_due.sql");
    pub const HEAD_CHECK: &str = include_str!("../../queries/head_check.sql");
    pub const DRY_RUN_PLAN: &str = include_str!("../../queries/dry_run_plan.sql");
}

pub fn pool_err(e: impl std::fmt::Display) -> Error {
    Error::Pool(e.to_string())
}

/// Parse the configured URL / key=value string.
pub fn pg_config(cfg: &DatabaseConfig) -> Result<tokio_postgres::Config> {
    let mut pg = tokio_postgres::Config::from_str(&cfg.url)
        .map_err(|e| Error::Config(format!("database.url: {e}")))?;
    pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
    if pg.get_application_name().is_none() {
        pg.application_name("erp-sync");
    }
    Ok(pg)
}

pub fn make_pool(cfg: &DatabaseConfig) -> Result<Pool> {
    let pg = pg_config(cfg)?;
    let mgr = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let t = Duration::from_millis(cfg.connect_timeout_ms);
    Pool::builder(mgr)
        .max_size(cfg.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(t))
        .create_timeout(Some(t))
        .recycle_timeout(Some(t))
        .build()
        .map_err(|e| Error::Config(format!("database pool: {e}")))
}

/// One claimed outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub contact_id: i64,
    pub kind: String,
    pub ref_id: Option<i64>,
    pub template_id: Option<i32>,
    pub attempts: i32,
}

impl OutboxRow {
    fn from_row(r: &tokio_postgres::Row) -> Result<OutboxRow> {
        Ok(OutboxRow {
            id: r.try_get(0)?,
            contact_id: r.try_get(1)?,
            kind: r.try_get(2)?,
            ref_id: r.try_get(3)?,
            template_id: r.try_get(4)?,
            attempts: r.try_get(5)?,
        })
    }
}

/// `erp_sync.customer_link` of one contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link {
    pub khid: Option<String>,
    pub erp_ord: Option<i64>,
    pub customer_type: Option<String>,
    pub person_synced: bool,
    pub assigned_tier: Option<String>,
    pub assigned_to: Option<String>,
    pub last_payload_hash: Option<String>,
}

/// One `erp_sync.sync_log` row to write.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    pub action: &'static str,
    pub erp_ord: Option<i64>,
    pub request: Option<Value>,
    pub response: Option<Value>,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub old_data: Option<Value>,
}

/// `customer_link` upsert after a customer row.
#[derive(Debug, Clone)]
pub struct LinkWrite {
    pub khid: String,
    pub erp_ord: i64,
    pub customer_type: &'static str,
    pub person_synced: bool,
    pub payload_hash: Option<String>,
}

pub async fn claim(
    pool: &Pool,
    worker: &str,
    lease_ms: u64,
    heads: i64,
    chain_max: i64,
    in_hand: &[i64],
) -> Result<Vec<OutboxRow>> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::CLAIM).await?;
    let rows = c
        .query(
            &st,
            &[&worker, &(lease_ms as i64), &heads, &chain_max, &in_hand],
        )
        .await?;
    let mut out = rows
        .iter()
        .map(OutboxRow::from_row)
        .collect::<Result<Vec<_>>>()?;
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
    Ok(c.execute(&st, &[&worker, &(lease_ms as i64), &in_hand])
        .await?)
}

pub async fn set_idle(pool: &Pool, worker: &str, idle: bool) -> Result<()> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::WORKER_UPSERT).await?;
    c.execute(&st, &[&worker, &idle]).await?;
    Ok(())
}

pub async fn worker_delete(pool: &Pool, worker: &str) -> Result<()> {
    let c = pool.get().await.map_err(pool_err)?;
    c.execute(q::WORKER_DELETE, &[&worker]).await?;
    Ok(())
}

/// Release rows held by `worker` (`ids` None = all of them). Returns how many.
pub async fn release(pool: &Pool, worker: &str, ids: Option<&[i64]>) -> Result<u64> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::RELEASE).await?;
    let ids: Option<Vec<i64>> = ids.map(<[i64]>::to_vec);
    Ok(c.execute(&st, &[&worker, &ids]).await?)
}

pub async fn contact_payload(c: &impl GenericClient, contact_id: i64) -> Result<Option<Value>> {
    let st = c.prepare_cached(q::CONTACT_PAYLOAD).await?;
    let row = c.query_one(&st, &[&contact_id]).await?;
    Ok(row.try_get(0)?)
}

pub async fn signal_payload(c: &impl GenericClient, signal_id: i64) -> Result<Option<Value>> {
    let st = c.prepare_cached(q::SIGNAL_PAYLOAD).await?;
    let row = c.query_one(&st, &[&signal_id]).await?;
    Ok(row.try_get(0)?)
}

pub async fn pick_rep(c: &impl GenericClient, tier: &str) -> Result<Option<String>> {
    let st = c.prepare_cached(q::PICK_REP).await?;
    let row = c.query_one(&st, &[&tier]).await?;
    Ok(row.try_get(0)?)
}

pub async fn assignment_for(c: &impl GenericClient, score: f64) -> Result<Option<String>> {
    let st = c.prepare_cached(q::ASSIGNMENT_FOR).await?;
    let row = c.query_one(&st, &[&score]).await?;
    Ok(row.try_get(0)?)
}

pub async fn link_get(c: &impl GenericClient, contact_id: i64) -> Result<Option<Link>> {
    let st = c.prepare_cached(q::LINK_GET).await?;
    let Some(r) = c.query_opt(&st, &[&contact_id]).await? else {
        return Ok(None);
    };
    Ok(Some(Link {
        khid: r.try_get(0)?,
        erp_ord: r.try_get(1)?,
        customer_type: r.try_get(2)?,
        person_synced: r.try_get(3)?,
        assigned_tier: r.try_get(4)?,
        assigned_to: r.try_get(5)?,
        last_payload_hash: r.try_get(6)?,
    }))
}

pub async fn rejection(c: &impl GenericClient, contact_id: i64) -> Result<Option<Value>> {
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
    contact_id: i64,
    before_id: i64,
) -> Result<Option<(String, Option<String>)>> {
    let st = c.prepare_cached(q::PRIOR_CUSTOMER_ROW).await?;
    match c.query_opt(&st, &[&contact_id, &before_id]).await? {
        Some(r) => Ok(Some((r.try_get(0)?, r.try_get(1)?))),
        None => Ok(None),
    }
}

/// A `sync_log` entry to roll back.
#[derive(Debug, Clone)]
pub struct LoggedAction {
    pub action: String,
    pub erp_ord: Option<i64>,
    pub old_data: Option<Value>,
    pub contact_id: Option<i64>,
    pub rolled_back: bool,
    pub outcome: String,
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

/// Whether a lower-id row of the contact is pending or running.
pub async fn blocked_by_earlier(pool: &Pool, contact_id: i64, id: i64) -> Result<bool> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::HEAD_CHECK).await?;
    Ok(c.query_one(&st, &[&contact_id, &id]).await?.try_get(0)?)
}

pub async fn dry_run_plan(pool: &Pool, after_id: i64, limit: i64) -> Result<Vec<OutboxRow>> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::DRY_RUN_PLAN).await?;
    let rows = c.query(&st, &[&after_id, &limit]).await?;
    rows.iter().map(OutboxRow::from_row).collect()
}

/// A query of a write-back pipeline: rows affected (or returned).
pub type Pending<'a> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = std::result::Result<u64, tokio_postgres::Error>>
            + Send
            + 'a,
    >,
>;

/// Parameters of `sync_log_insert.sql` for one entry.
pub fn log_params<'a>(
    row: &'a OutboxRow,
    worker: &'a &'a str,
    l: &'a LogEntry,
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 11] {
    [
        &row.id,
        &row.contact_id,
        &l.action,
        &l.erp_ord,
        &l.request,
        &l.response,
        &l.outcome,
        &l.error,
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
        c.execute(&st, &log_params(row, &worker, l)).await?;
    }
    Ok(())
}
