//! `erp-sync run --dry-run` (see the module docs of [`super`]): plan, log and record; change nothing else.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{worker, Ctx, RunOptions, RunSummary};
use crate::db;
use crate::error::Result;

/// `run --dry-run`: plan, log and record; change nothing else.
pub(super) async fn dry_run(
    ctx: &Arc<Ctx>,
    opts: RunOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<RunSummary> {
    tracing::info!("dry run: no ERP calls, outbox untouched");
    let mut summary = RunSummary::default();
    let mut after: i64 = 0;
    let poll = Duration::from_millis(ctx.cfg.poll_interval_ms);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let page = match db::dry_run_plan(&ctx.pool, after, ctx.cfg.batch_size.max(1) * 10).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "dry run: cannot read the queue");
                Vec::new()
            }
        };
        let full = page.len() as i64 >= ctx.cfg.batch_size.max(1) * 10;
        for row in &page {
            after = after.max(row.id);
            match worker::plan_row(ctx, row).await {
                Ok(()) => summary.planned += 1,
                Err(e) => {
                    tracing::warn!(outbox_id = row.id, contact_id = row.contact_id, error = %e, "dry run: cannot plan row")
                }
            }
        }
        if full {
            continue;
        }
        if opts.once {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => {}
        }
    }
    tracing::info!(planned = summary.planned, "dry run finished");
    Ok(summary)
}
