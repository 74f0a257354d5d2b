//! The sync engine: wake (NOTIFY | poll) → claim (SKIP LOCKED + lease) → per-kind handler → ERP →
//! write-back + acknowledgement in one transaction.
//!
//! - [`listener`]: LISTEN connection, reconnect, health check.
//! - [`handlers`]: `customer`, `followup`, `assign`, `rollback`.
//! - [`worker`]: runs one contact's claimed chain in order and writes each result back.
//! - `ctx`: [`Ctx`], what every task shares (pool, ERP client, limits, rows in hand, login pause);
//!   `heartbeat`: the worker row and the leases of the rows in hand; `dry_run`: `run --dry-run`.
//!
//! It uses [`crate::db`] (queries), [`crate::erp`] (the ERP), [`crate::mapping`] (payload → ERP
//! fields), [`crate::backoff`] and [`crate::metrics`]; never `crate::ops`.
//!
//! ## Idle / NOTIFY protocol
//! The worker row in `erp_sync.workers` says `idle = true` only when this sidecar has nothing in
//! hand and its last claim found nothing; the capture trigger NOTIFYs only when a fresh idle worker
//! exists, so a busy system sends no notifications at all. Going idle, the engine first writes
//! `idle = true` and then claims once more, so a row committed in between is not left waiting for
//! the poll. While it has work it says `idle = false` (written only on change). The heartbeat
//! refreshes the row and extends the leases of every row in hand.
//!
//! ## Dry run
//! `--dry-run` claims nothing and changes no outbox row: it reads the due rows, computes what
//! would be sent (no ERP call), logs it and writes one `sync_log` row per outbox row with outcome
//! `dry_run`. Each row is planned once per process. A later real run then does the real work:
//! marking rows done would lose them, and leaving them claimable would re-plan them forever.

mod ctx;
mod dry_run;
pub mod handlers;
mod heartbeat;
pub mod listener;
pub mod worker;

pub use ctx::{Ctx, InHand};
use dry_run::dry_run;
use heartbeat::spawn_heartbeat;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::db::{self, erp_session, OutboxRow};
use crate::erp::ErpClient;
use crate::error::{Error, Result};

/// Options of `erp-sync run` beyond the config file.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Exit when no row is pending or running any more (rows waiting for a retry are waited for;
    /// each ends done, skipped or dead within max_attempts).
    pub once: bool,
}

/// Counters of one run, printed at exit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub done: u64,
    pub skipped: u64,
    pub dead: u64,
    /// Follow-ups parked as `in_doubt` (perhaps sent).
    pub in_doubt: u64,
    pub retried: u64,
    pub released: u64,
    pub planned: u64,
}

impl RunSummary {
    fn add(&mut self, o: &RunSummary) {
        self.done += o.done;
        self.skipped += o.skipped;
        self.dead += o.dead;
        self.in_doubt += o.in_doubt;
        self.retried += o.retried;
        self.released += o.released;
        self.planned += o.planned;
    }
}

/// Group claimed rows by contact, each group in id order.
pub fn chains(rows: Vec<OutboxRow>) -> Vec<Vec<OutboxRow>> {
    // grouped by contact key; the order of the keys does not matter (chains are sorted by id)
    let mut by: BTreeMap<String, Vec<OutboxRow>> = BTreeMap::new();
    for r in rows {
        by.entry(r.contact_id.clone()).or_default().push(r);
    }
    let mut out: Vec<Vec<OutboxRow>> = by
        .into_values()
        .map(|mut v| {
            v.sort_by_key(|r| r.id);
            v
        })
        .collect();
    out.sort_by_key(|c| c.first().map_or(i64::MAX, |r| r.id));
    out
}

/// `erp-sync run`: drain the outbox until `shutdown` turns true (or, with `once`, until idle).
pub async fn run(
    cfg: &Config,
    opts: RunOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<RunSummary> {
    let pool = db::make_pool(&cfg.database)?;
    match db::check_extension(&pool).await {
        Ok(()) => {}
        Err(e @ Error::Config(_)) => return Err(e),
        // The database is down: the engine waits for it like for any outage.
        Err(e) => tracing::warn!(error = %e, "cannot check the extension's version yet"),
    }
    let erp = ErpClient::new(cfg.erp.clone())?;
    erp.share_session(Arc::new(erp_session::PgSessionStore::new(pool.clone())));
    let worker = cfg.worker_id();
    let ctx = Arc::new(Ctx::new(
        pool.clone(),
        erp,
        worker.clone(),
        cfg.engine.clone(),
    ));
    let e = &cfg.engine;
    if e.dry_run {
        return dry_run(&ctx, opts, shutdown).await;
    }
    tracing::info!(worker = %worker, concurrency = e.concurrency, rate_limit_per_s = e.rate_limit_per_s,
        batch_size = e.batch_size, "erp-sync engine starting");

    // Rows held under this worker id by a previous incarnation (killed without a clean shutdown)
    // are ours to give back at once instead of waiting for their leases. Worker ids must be unique.
    match db::release(&ctx.pool, &worker, None, &[]).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            released = n,
            "released rows left by a previous run of this worker"
        ),
        Err(err) => {
            tracing::warn!(error = %err, "cannot release rows of a previous run (leases will expire)")
        }
    }
    let wake = Arc::new(Notify::new());
    let listener_ok = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = listener::spawn(
        listener::ListenerOptions {
            db: cfg.database.clone(),
            health_ms: e.heartbeat_ms,
            reconnect_max_ms: e.listen_reconnect_max_ms,
        },
        wake.clone(),
        listener_ok.clone(),
        stop_rx.clone(),
    );
    crate::metrics::register_engine(ctx.erp.clone(), listener_ok.clone());
    let idle = Arc::new(AtomicBool::new(false));
    let heart = spawn_heartbeat(ctx.clone(), idle.clone(), stop_rx.clone());

    let mut summary = RunSummary::default();
    let mut tasks: JoinSet<RunSummary> = JoinSet::new();
    let poll = Duration::from_millis(e.poll_interval_ms);
    let mut db_failures: u32 = 0;
    let db_backoff = Backoff::new(200, e.poll_interval_ms.max(200));
    let mut idle_written = false;
    let mut registered = false;

    loop {
        if *shutdown.borrow() {
            break;
        }
        while let Some(res) = tasks.try_join_next() {
            collect(&mut summary, res);
        }
        if !registered {
            match ctx.set_idle(&idle, false).await {
                Ok(()) => registered = true,
                Err(err) => tracing::warn!(error = %err, "cannot register worker (will retry)"),
            }
        }
        let gate = ctx.login_gate().await;
        // Claim when idle or when at least half the batch is free: one claim round trip then
        // brings many rows, instead of one claim per finished contact.
        let free = e.batch_size - tasks.len() as i64;
        let capacity = if gate.is_some() || (!tasks.is_empty() && free * 2 < e.batch_size) {
            0
        } else {
            free
        };
        let mut claimed = 0usize;
        let mut claim_failed = false;
        if capacity > 0 {
            let in_hand = ctx.in_hand();
            match db::claim(
                &ctx.pool,
                &db::ClaimRequest {
                    worker: &worker,
                    lease_ms: e.lease_ms,
                    heads: capacity,
                    chain_max: e.chain_max,
                    in_hand: &in_hand,
                    max_attempts: e.max_attempts,
                    hold_in_doubt: e.in_doubt_followups == crate::config::InDoubtFollowups::Hold,
                },
            )
            .await
            {
                Ok(rows) => {
                    db_failures = 0;
                    claimed = rows.len();
                    for chain in chains(rows) {
                        let ctx = ctx.clone();
                        // Registered before the task starts, so the next claim never re-takes them.
                        let held = ctx.hold(chain.iter().map(|r| r.id).collect());
                        tasks.spawn(async move {
                            let _held = held;
                            worker::run_chain(&ctx, chain).await
                        });
                    }
                }
                Err(err) => {
                    db_failures = db_failures.saturating_add(1);
                    claim_failed = true;
                    tracing::warn!(error = %err, attempt = db_failures, "claim failed");
                }
            }
        }
        if claimed > 0 {
            tracing::debug!(claimed, in_flight = tasks.len(), "claimed");
            if idle_written {
                match ctx.set_idle(&idle, false).await {
                    Ok(()) => idle_written = false,
                    Err(err) => tracing::warn!(error = %err, "cannot mark worker busy"),
                }
            }
            continue;
        }
        if let Some(g) = gate {
            tokio::select! {
                _ = tokio::time::sleep(g.min(poll)) => {}
                Some(res) = tasks.join_next(), if !tasks.is_empty() => collect(&mut summary, res),
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if tasks.is_empty() && !claim_failed {
            if opts.once {
                match db::unfinished(&ctx.pool).await {
                    Ok(0) => break,
                    Ok(_) => {} // rows waiting for a retry (or held by others): wait for them
                    Err(err) => tracing::warn!(error = %err, "cannot count unfinished rows"),
                }
            }
            if !idle_written {
                match ctx.set_idle(&idle, true).await {
                    Ok(()) => {
                        idle_written = true;
                        // Claim once more: a row committed before `idle` became visible got no NOTIFY.
                        continue;
                    }
                    Err(err) => tracing::warn!(error = %err, "cannot mark worker idle"),
                }
            }
        }
        let wait = if claim_failed {
            db_backoff.delay(db_failures).min(poll)
        } else if !tasks.is_empty() {
            // Busy: the next finished contact wakes the loop; no need to ask for retry times.
            poll
        } else {
            // Wake for the earliest retry if it comes before the next poll.
            match db::next_due_ms(&ctx.pool).await {
                Ok(Some(ms)) => poll.min(Duration::from_millis(
                    u64::try_from(ms).unwrap_or(0).max(20),
                )),
                Ok(None) => poll,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read the next due time");
                    poll
                }
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            Some(res) = tasks.join_next(), if !tasks.is_empty() => collect(&mut summary, res),
            _ = shutdown.changed() => {}
        }
    }

    // ---- shutdown: stop claiming, let in-flight rows finish, release the rest ----
    ctx.stopping.store(true, Ordering::Relaxed);
    let deadline = Duration::from_millis(e.shutdown_deadline_ms);
    tracing::info!(
        in_flight = tasks.len(),
        deadline_ms = e.shutdown_deadline_ms,
        "stopping"
    );
    let drained = tokio::time::timeout(deadline, async {
        let mut s = RunSummary::default();
        while let Some(res) = tasks.join_next().await {
            collect(&mut s, res);
        }
        s
    })
    .await;
    match drained {
        Ok(s) => summary.add(&s),
        Err(_) => {
            tracing::warn!(
                in_flight = tasks.len(),
                "shutdown deadline reached: abandoning in-flight rows"
            );
            tasks.abort_all();
            while let Some(res) = tasks.join_next().await {
                collect(&mut summary, res);
            }
        }
    }
    match db::release(&ctx.pool, &worker, None, &[]).await {
        Ok(n) => {
            summary.released += n;
            if n > 0 {
                tracing::info!(released = n, "released rows still held");
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot release rows (their leases will expire)"),
    }
    if let Err(err) = stop_tx.send(true) {
        tracing::debug!(error = %err, "background tasks already gone");
    }
    for (name, h) in [("listener", listener), ("heartbeat", heart)] {
        if let Err(err) = h.await {
            tracing::warn!(task = name, error = %err, "background task failed");
        }
    }
    if let Err(err) = db::worker_delete(&ctx.pool, &worker).await {
        tracing::warn!(error = %err, "cannot remove worker row");
    }
    tracing::info!(
        done = summary.done,
        skipped = summary.skipped,
        dead = summary.dead,
        retried = summary.retried,
        released = summary.released,
        "erp-sync engine stopped"
    );
    Ok(summary)
}

fn collect(summary: &mut RunSummary, res: std::result::Result<RunSummary, tokio::task::JoinError>) {
    match res {
        Ok(s) => summary.add(&s),
        Err(e) if e.is_cancelled() => {}
        Err(e) => {
            tracing::error!(error = %e, "contact task panicked (its rows are released by lease expiry)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, contact: i64) -> OutboxRow {
        OutboxRow {
            id,
            contact_id: contact.to_string(),
            kind: "customer".into(),
            ref_id: None,
            template_id: None,
            attempts: 0,
            counted: false,
            context: None,
        }
    }

    #[test]
    fn chains_group_and_order() {
        let c = chains(vec![row(5, 2), row(1, 1), row(3, 1), row(2, 2), row(9, 3)]);
        let ids: Vec<Vec<i64>> = c
            .iter()
            .map(|ch| ch.iter().map(|r| r.id).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 3], vec![2, 5], vec![9]]);
    }
}
