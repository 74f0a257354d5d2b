//! Database access of the engine: a deadpool-postgres pool and one function per query in
//! `sidecar/queries/*.sql`.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde_json::Value;
use tokio_postgres::NoTls;

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};

pub mod erp_session;

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

pub fn pool_err(e: impl std::fmt::Display) -> Error {
    Error::Pool(e.to_string())
}

/// Parse the configured URL / key=value string.
pub fn pg_config(cfg: &DatabaseConfig) -> Result<tokio_postgres::Config> {
    let mut pg = tokio_postgres::Config::from_str(&cfg.url)
        .map_err(|e| Error::Config(format!("database.url: {e}")))?;
    pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
    // database.password_file wins over a password in the URL
    if let Some(pw) = &cfg.password {
        pg.password(pw.as_bytes());
    }
    if pg.get_application_name().is_none() {
        pg.application_name("erp-sync");
    }
    // Every statement is prepared once per connection and run thousands of times with different
    // ids. Left to itself the server re-plans the write-back for each call (its custom plans prune
    // the branches a call does not use, so they always look cheaper than the generic one): ~1 ms
    // of planning per row. One generic plan per statement instead.
    let opts = pg.get_options().unwrap_or_default().to_string();
    if !opts.contains("plan_cache_mode") {
        pg.options(format!("{opts} -c plan_cache_mode=force_generic_plan").trim());
    }
    Ok(pg)
}

/// The first payload read of a connection loads the extension's configuration and plans its
/// lookups (~10 ms). Done here, so that a connection's first claim does not pay for it. (Inside a
/// claim, whose transaction turns sequential and bitmap scans off (see [`claim`]), the extension
/// reloads with those scans back on; before it did, the same first read took 58–350 ms.) A
/// failure (say, the extension is not installed yet) only costs the warm-up.
async fn warm_up(client: &tokio_postgres::Client) {
    // what the payload functions read: settings (admission), tracked tables, their lookups
    const WARM_UP: &str = "SELECT erp_sync.setting('admission.min_score'), \
                           erp_sync.contact_payload(0), erp_sync.signal_payload(0)";
    if let Err(e) = client.batch_execute(WARM_UP).await {
        tracing::debug!(error = %e, "connection warm-up failed");
    }
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
        .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
            Box::pin(async move {
                warm_up(client).await;
                Ok(())
            })
        }))
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
    /// The platform's key of the contact, as text (`42`, a uuid, a text id).
    pub contact_id: String,
    pub kind: String,
    pub ref_id: Option<i64>,
    pub template_id: Option<i32>,
    /// Attempts so far; for a row claimed as its contact's head, including the current one.
    pub attempts: i32,
    /// The claim counted the current attempt (the row was its contact's head).
    pub counted: bool,
    /// The row context read by the claim (a contact's head row only).
    pub context: Option<RowContext>,
}

impl OutboxRow {
    /// The first 6 columns: id, contact_id, kind, ref_id, template_id, attempts.
    fn from_row(r: &tokio_postgres::Row) -> Result<OutboxRow> {
        Ok(OutboxRow {
            id: r.try_get(0)?,
            contact_id: r.try_get(1)?,
            kind: r.try_get(2)?,
            ref_id: r.try_get(3)?,
            template_id: r.try_get(4)?,
            attempts: r.try_get(5)?,
            counted: false,
            context: None,
        })
    }

    /// A row of `erp_sync.claim`: the 6 columns, then `head` and, for a head, its row context.
    fn from_claim_row(r: &tokio_postgres::Row) -> Result<OutboxRow> {
        let mut row = OutboxRow::from_row(r)?;
        row.counted = r.try_get::<_, bool>(6)?;
        if row.counted {
            row.context = Some(RowContext::from_row(r, 7, false)?);
        }
        Ok(row)
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

impl Link {
    /// The link's 7 columns starting at column `at` (the column order of `link_get.sql`).
    fn from_row(r: &tokio_postgres::Row, at: usize) -> Result<Link> {
        Ok(Link {
            khid: r.try_get(at)?,
            erp_ord: r.try_get(at + 1)?,
            customer_type: r.try_get(at + 2)?,
            person_synced: r.try_get(at + 3)?,
            assigned_tier: r.try_get(at + 4)?,
            assigned_to: r.try_get(at + 5)?,
            last_payload_hash: r.try_get(at + 6)?,
        })
    }
}

/// What a handler changed, written back with the row's final status (`erp_sync.ack`).
#[derive(Debug, Default)]
pub struct Effects {
    pub logs: Vec<LogEntry>,
    pub link: Option<LinkChange>,
    /// A `sync_log` id now rolled back.
    pub rolled_back: Option<i64>,
}

/// One `erp_sync.sync_log` row to write. `error` is stored with its mobiles masked
/// ([`LogEntry::stored_error`]); `request`/`response` come masked from the ERP client.
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

impl LogEntry {
    /// `error` as stored: every mobile in it masked (an ERP refusal quotes what it refused).
    pub fn stored_error(&self) -> Option<String> {
        self.error.as_deref().map(erp_sync_rules::mask_text)
    }

    /// One element of the `logs` array of `erp_sync.ack`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "action": self.action, "erp_ord": self.erp_ord, "request": self.request,
            "response": self.response, "outcome": self.outcome, "error": self.stored_error(),
            "duration_ms": self.duration_ms, "old_data": self.old_data,
        })
    }
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

/// What a processed row changes in `customer_link` (at most one thing per row).
#[derive(Debug, Clone)]
pub enum LinkChange {
    /// A customer row: the contact's ERP customer.
    Upsert(LinkWrite),
    /// An assign row: `(tier, assigned_to)`.
    Assign(String, Option<String>),
    /// A rolled-back create: `(contact_id, erp_ord)` has no ERP customer any more.
    Unlink(String, i64),
}

/// What a handler reads before its ERP calls (`row_context.sql`, one round trip; for a head
/// row, the claim).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowContext {
    /// A lower-id row of the contact is pending or running: do not process this one now.
    pub blocked: bool,
    /// The contact's current state (customer / assign rows); `None` when it no longer exists.
    pub payload: Option<Value>,
    /// The follow-up's signal (followup rows); `None` when it no longer exists.
    pub signal: Option<Value>,
    pub link: Option<Link>,
}

impl RowContext {
    /// payload, signal, linked and the link's 7 columns, starting at column `at`.
    fn from_row(r: &tokio_postgres::Row, at: usize, blocked: bool) -> Result<RowContext> {
        let linked: bool = r.try_get(at + 2)?;
        Ok(RowContext {
            blocked,
            payload: r.try_get(at)?,
            signal: r.try_get(at + 1)?,
            link: if linked {
                Some(Link::from_row(r, at + 3)?)
            } else {
                None
            },
        })
    }
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

/// The version of the extension this sidecar speaks: the workspace version (both crates are
/// released together, every schema change ships as an upgrade script).
pub const EXTENSION_VERSION: &str = env!("CARGO_PKG_VERSION");

/// At start-up: the database's `erp_sync` extension is the version this sidecar speaks. A missing
/// or other version is a `Config` error naming the statement that fixes it; a database that cannot
/// be reached is the caller's to wait for.
pub async fn check_extension(pool: &Pool) -> Result<()> {
    let c = pool.get().await.map_err(pool_err)?;
    let row = c
        .query_opt(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'erp_sync'",
            &[],
        )
        .await?;
    let Some(row) = row else {
        return Err(Error::Config(
            "the extension erp_sync is not installed in this database: CREATE EXTENSION erp_sync (as a superuser), then track the platform's tables".into(),
        ));
    };
    let found: String = row.try_get(0)?;
    if found != EXTENSION_VERSION {
        return Err(Error::Config(format!(
            "the database has the extension erp_sync {found}, this sidecar speaks {EXTENSION_VERSION}: \
             install erp_sync {EXTENSION_VERSION} on the server, then ALTER EXTENSION erp_sync UPDATE TO '{EXTENSION_VERSION}' \
             (or run the sidecar of version {found})"
        )));
    }
    Ok(())
}

/// The NOTIFY channel of the capture trigger: the extension's `notify.channel` setting.
pub async fn notify_channel(c: &tokio_postgres::Client) -> Result<String> {
    let row = c
        .query_one(
            "SELECT coalesce((SELECT effective FROM erp_sync.settings_effective WHERE key = 'notify.channel'), 'erp_sync')",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
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

/// A `sync_log` entry to roll back.
#[derive(Debug, Clone)]
pub struct LoggedAction {
    pub action: String,
    pub erp_ord: Option<i64>,
    pub old_data: Option<Value>,
    pub contact_id: Option<String>,
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

pub async fn dry_run_plan(pool: &Pool, after_id: i64, limit: i64) -> Result<Vec<OutboxRow>> {
    let c = pool.get().await.map_err(pool_err)?;
    let st = c.prepare_cached(q::DRY_RUN_PLAN).await?;
    let rows = c.query(&st, &[&after_id, &limit]).await?;
    rows.iter().map(OutboxRow::from_row).collect()
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
