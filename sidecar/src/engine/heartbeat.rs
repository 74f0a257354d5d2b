//! The heartbeat of `erp-sync run`: every `engine.heartbeat_ms` it refreshes this worker's row
//! (idle flag, ERP login state) and extends the leases of every row in hand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Ctx;
use crate::db;

pub(super) fn spawn_heartbeat(
    ctx: Arc<Ctx>,
    idle: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(ctx.cfg.heartbeat_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let beat = async {
                {
                    let _row = ctx.worker_row.lock().await;
                    let refused = ctx.erp.login_refused();
                    db::set_idle(
                        &ctx.pool,
                        &ctx.worker,
                        idle.load(Ordering::Relaxed),
                        refused.as_deref(),
                    )
                    .await?;
                }
                db::extend_leases(&ctx.pool, &ctx.worker, ctx.cfg.lease_ms, &ctx.in_hand()).await
            };
            match tokio::time::timeout(Duration::from_millis(ctx.cfg.heartbeat_ms), beat).await {
                Ok(Ok(n)) => tracing::trace!(extended = n, "heartbeat"),
                Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
                Err(_) => tracing::warn!("heartbeat timed out"),
            }
        }
    })
}
