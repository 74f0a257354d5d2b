//! Cron schedules run inside `erp-sync run` (spec 同步时机):
//!
//! | job | default cron (`[schedule]`, read at `utc_offset_minutes`, default +08:00) | does |
//! |---|---|---|
//! | `pull` | `0 0 2 * * *` (02:00 daily) | [`super::pull`]: ERP customers → `erp_customers` |
//! | `sweep` | `0 0 * * * *` (hourly) | counts due and lease-expired outbox rows and NOTIFYs the workers when there are any (read-only, cheap) |
//! | `reconcile` | `0 0 3 * * Sun` (weekly) | a pull, then [`super::reconcile`] |
//!
//! **Once per period across sidecars.** A period is identified by its cron tick (`period_key` =
//! the tick in RFC 3339). Before running, a sidecar claims it with `INSERT INTO
//! erp_sync.schedule_runs … ON CONFLICT (name, period_key) DO NOTHING RETURNING`: only the one
//! that inserted the row runs the job, and it records `finished_at`, `ok` and a JSON summary.
//!
//! **Missed runs.** At start-up, for a schedule that has run before (some row exists) but whose
//! latest tick was not claimed (every sidecar was down), that tick is claimed and run once. A
//! fresh install does not fire at start-up. A job that died with its sidecar keeps its claim
//! (`finished_at` NULL): it is not retried before its next period.
//!
//! **Shutdown.** Jobs see the shutdown signal (a pull stops between pages and does not mark
//! rows gone); a job still running after `shutdown_deadline_ms` is abandoned (its claim stays
//! unfinished). A job still running when its next tick comes is not started twice in one process
//! (each schedule is a service of the shared loop in [`super::periodic`]).

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use croner::Cron;
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::periodic::Service;
use super::pull::{self, PullOptions};
use super::reconcile;
use crate::config::schedule::{offset, schedules, Job};
use crate::config::Config;
use crate::db::pool_err;
use crate::erp::ErpClient;
use crate::error::{Error, Result};

pub mod q {
    pub const CLAIM: &str = include_str!("../../queries/schedule_claim.sql");
    pub const FINISH: &str = include_str!("../../queries/schedule_finish.sql");
    pub const HISTORY: &str = include_str!("../../queries/schedule_history.sql");
    pub const SWEEP: &str = include_str!("../../queries/schedule_sweep.sql");
    pub const NOTIFY: &str = include_str!("../../queries/schedule_notify.sql");
}

/// The first tick strictly after `t`.
pub fn next_tick(cron: &Cron, t: &DateTime<FixedOffset>) -> Result<DateTime<FixedOffset>> {
    cron.find_next_occurrence(t, false)
        .map_err(|e| Error::Config(format!("cron: no next occurrence after {t}: {e}")))
}

/// The latest tick at or before `t` (the period `t` is in).
pub fn current_tick(cron: &Cron, t: &DateTime<FixedOffset>) -> Result<DateTime<FixedOffset>> {
    cron.find_previous_occurrence(t, true)
        .map_err(|e| Error::Config(format!("cron: no occurrence before {t}: {e}")))
}

/// The key of the period starting at `tick`.
pub fn period_key(tick: &DateTime<FixedOffset>) -> String {
    tick.to_rfc3339()
}

/// Should start-up run the current period's job? Only for a schedule that ran before and whose
/// current period nobody claimed.
pub fn catch_up_due(ran_before: bool, claimed: bool) -> bool {
    ran_before && !claimed
}

/// What the jobs need.
#[derive(Clone)]
pub struct JobCtx {
    pub pool: Pool,
    pub erp: ErpClient,
    pub worker: String,
    pub pull: PullOptions,
}

/// Run one job (also used by the `pull` / `reconcile` commands through their own functions).
pub async fn run_job(ctx: &JobCtx, job: Job, shutdown: &watch::Receiver<bool>) -> Result<Value> {
    let quiet = |_: u32, _: u32| {};
    match job {
        Job::Pull => {
            let s = pull::pull(&ctx.pool, &ctx.erp, &ctx.pull, &quiet, shutdown).await?;
            pull::summary_json(&s)
        }
        Job::Sweep => sweep(&ctx.pool).await,
        Job::Reconcile => {
            let p = pull::pull(&ctx.pool, &ctx.erp, &ctx.pull, &quiet, shutdown).await?;
            if *shutdown.borrow() {
                return Ok(
                    json!({"pull": pull::summary_json(&p)?, "reconcile": "skipped: shutdown"}),
                );
            }
            let r = reconcile::reconcile(&ctx.pool, "schedule", &ctx.worker, &|_: &str| {}).await?;
            Ok(json!({"pull": pull::summary_json(&p)?, "reconcile": pull::summary_json(&r)?}))
        }
    }
}

/// The hourly sweep: wake idle workers when rows are due or leases expired.
pub async fn sweep(pool: &Pool) -> Result<Value> {
    let c = pool.get().await.map_err(pool_err)?;
    let row = c.query_one(q::SWEEP, &[]).await?;
    let due: i64 = row.try_get("due")?;
    let expired: i64 = row.try_get("expired")?;
    let notified = due + expired > 0;
    if notified {
        let channel = crate::db::notify_channel(&c).await?;
        c.query_one(q::NOTIFY, &[&channel]).await?;
    }
    tracing::info!(due, expired, notified, "sweep finished");
    Ok(json!({"due": due, "expired_leases": expired, "notified": notified}))
}

async fn claim(pool: &Pool, name: &str, key: &str, worker: &str) -> Result<bool> {
    let c = pool.get().await.map_err(pool_err)?;
    Ok(c.query_opt(q::CLAIM, &[&name, &key, &worker])
        .await?
        .is_some())
}

/// Record the end of a job. The summary is stored with its mobiles masked (an error may quote the
/// ERP; the reader role reads `schedule_runs`).
async fn finish(pool: &Pool, name: &str, key: &str, ok: bool, summary: &Value) -> Result<()> {
    let c = pool.get().await.map_err(pool_err)?;
    let summary = erp_sync_rules::mask_json(summary);
    c.execute(q::FINISH, &[&name, &key, &ok, &summary]).await?;
    Ok(())
}

/// Claim and run one period of a job.
async fn fire(ctx: &JobCtx, job: Job, key: String, shutdown: watch::Receiver<bool>) {
    let name = job.name();
    match claim(&ctx.pool, name, &key, &ctx.worker).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(job = name, period = %key, "period already claimed by another sidecar");
            return;
        }
        Err(e) => {
            tracing::warn!(job = name, period = %key, error = %e, "cannot claim the period: skipped");
            return;
        }
    }
    tracing::info!(job = name, period = %key, worker = %ctx.worker, "scheduled job starting");
    let (ok, summary) = match run_job(ctx, job, &shutdown).await {
        Ok(s) => (true, s),
        Err(e) => {
            tracing::warn!(job = name, period = %key, error = %e, "scheduled job failed");
            (false, json!({"error": e.to_string()}))
        }
    };
    if let Err(e) = finish(&ctx.pool, name, &key, ok, &summary).await {
        tracing::warn!(job = name, period = %key, error = %e, "cannot record the job's end");
    }
}

/// One cron schedule as a periodic service.
struct Scheduled {
    ctx: Arc<JobCtx>,
    job: Job,
    cron: Cron,
    tz: FixedOffset,
    catch_up: bool,
}

impl Scheduled {
    /// The first tick strictly after `t`, in UTC (`None`, logged, when the cron has none).
    fn after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match next_tick(&self.cron, &t.with_timezone(&self.tz)) {
            Ok(n) => Some(n.with_timezone(&Utc)),
            Err(e) => {
                tracing::warn!(job = self.job.name(), error = %e, "schedule has no next period");
                None
            }
        }
    }

    /// The current period's tick when start-up should run it (see [`catch_up_due`]).
    async fn missed(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.catch_up {
            return None;
        }
        let name = self.job.name();
        let tick = match current_tick(&self.cron, &now.with_timezone(&self.tz)) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(job = name, error = %e, "no previous period");
                return None;
            }
        };
        let key = period_key(&tick);
        let history = async {
            let c = self.ctx.pool.get().await.map_err(pool_err)?;
            let r = c.query_one(q::HISTORY, &[&name, &key]).await?;
            Ok::<(bool, bool), Error>((r.try_get("ran_before")?, r.try_get("claimed")?))
        };
        match history.await {
            Ok((ran_before, claimed)) if catch_up_due(ran_before, claimed) => {
                tracing::info!(job = name, period = %key, "running a missed period");
                Some(tick.with_timezone(&Utc))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(job = name, error = %e, "cannot read the schedule history");
                None
            }
        }
    }
}

impl Service for Scheduled {
    fn name(&self) -> &str {
        self.job.name()
    }
    fn first(self: Arc<Self>, now: DateTime<Utc>) -> BoxFuture<'static, Option<DateTime<Utc>>> {
        async move {
            match self.missed(now).await {
                Some(t) => Some(t),
                None => self.after(now),
            }
        }
        .boxed()
    }
    fn next(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.after(if at > now { at } else { now })
    }
    fn run(
        self: Arc<Self>,
        at: DateTime<Utc>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, ()> {
        async move {
            let key = period_key(&at.with_timezone(&self.tz));
            fire(&self.ctx, self.job, key, stop).await
        }
        .boxed()
    }
}

/// The schedules of `[schedule]` as periodic services sharing one ERP client (its session in the
/// database, shared with the fleet) and `pool`.
pub fn services(cfg: &Config, pool: Pool, worker: &str) -> Result<Vec<Arc<dyn Service>>> {
    let sc = &cfg.schedule;
    let tz = offset(sc)?;
    let list = schedules(sc)?;
    let erp = ErpClient::new(cfg.erp.clone())?;
    erp.share_session(Arc::new(crate::db::erp_session::PgSessionStore::new(
        pool.clone(),
    )));
    let ctx = Arc::new(JobCtx {
        pool,
        erp,
        worker: worker.to_string(),
        pull: PullOptions::from_config(sc),
    });
    Ok(list
        .into_iter()
        .map(|s| {
            tracing::info!(job = s.job.name(), cron = %s.expr, utc_offset_minutes = sc.utc_offset_minutes, "schedule");
            Arc::new(Scheduled {
                ctx: ctx.clone(),
                job: s.job,
                cron: s.cron,
                tz,
                catch_up: sc.catch_up,
            }) as Arc<dyn Service>
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schedule::{parse_cron, validate};
    use crate::config::ScheduleConfig;

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("test time")
    }

    #[test]
    fn default_schedules_parse_and_fire_when_the_spec_says() {
        let cfg = ScheduleConfig::default();
        validate(&cfg).expect("defaults are valid");
        let list = schedules(&cfg).expect("schedules");
        let by = |j: Job| list.iter().find(|s| s.job == j).expect("job").cron.clone();
        // 2026-11-29 is a Sunday.
        let t = at("2026-11-28T10:15:00+08:00");
        assert_eq!(
            next_tick(&by(Job::Pull), &t).expect("pull").to_rfc3339(),
            "2026-11-29T02:00:00+08:00"
        );
        assert_eq!(
            next_tick(&by(Job::Sweep), &t).expect("sweep").to_rfc3339(),
            "2026-11-28T11:00:00+08:00"
        );
        assert_eq!(
            next_tick(&by(Job::Reconcile), &t)
                .expect("reconcile")
                .to_rfc3339(),
            "2026-11-29T03:00:00+08:00"
        );
    }

    #[test]
    fn a_tick_is_its_own_period_and_the_next_is_strictly_after() {
        let c = parse_cron("pull_cron", "0 0 2 * * *").expect("cron");
        let tick = at("2026-11-29T02:00:00+08:00");
        assert_eq!(current_tick(&c, &tick).expect("current"), tick);
        assert_eq!(
            next_tick(&c, &tick).expect("next").to_rfc3339(),
            "2026-11-30T02:00:00+08:00"
        );
        let later = at("2026-11-29T17:30:00+08:00");
        assert_eq!(
            period_key(&current_tick(&c, &later).expect("current")),
            "2026-11-29T02:00:00+08:00"
        );
    }

    #[test]
    fn per_second_crons_for_tests() {
        let c = parse_cron("pull_cron", "*/2 * * * * *").expect("cron");
        let t = at("2026-11-29T02:00:01+00:00");
        assert_eq!(
            next_tick(&c, &t).expect("next").to_rfc3339(),
            "2026-11-29T02:00:02+00:00"
        );
        assert_eq!(
            current_tick(&c, &t).expect("cur").to_rfc3339(),
            "2026-11-29T02:00:00+00:00"
        );
    }

    #[test]
    fn schedule_section_from_the_environment() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cfg = Config::from_sources(
            None,
            "test",
            &env(&[
                ("ERP_SYNC_SCHEDULE_PULL_CRON", "*/2 * * * * *"),
                ("ERP_SYNC_SCHEDULE_SWEEP_CRON", ""),
                ("ERP_SYNC_SCHEDULE_PULL_PAGE_SIZE", "7"),
                ("ERP_SYNC_SCHEDULE_ENABLED", "false"),
            ]),
        )
        .expect("config");
        assert_eq!(cfg.schedule.pull_cron, "*/2 * * * * *");
        assert_eq!(cfg.schedule.pull_page_size, 7);
        assert!(!cfg.schedule.enabled);
        cfg.validate().expect("valid");
        let jobs: Vec<Job> = schedules(&cfg.schedule)
            .expect("schedules")
            .iter()
            .map(|s| s.job)
            .collect();
        assert_eq!(jobs, vec![Job::Pull, Job::Reconcile]);
        assert!(
            Config::from_sources(None, "test", &env(&[("ERP_SYNC_SCHEDULE_PULL_CRONN", "x")]))
                .is_err()
        );
        let bad = Config::from_sources(
            None,
            "test",
            &env(&[("ERP_SYNC_SCHEDULE_PULL_CRON", "61 * * * * *")]),
        )
        .expect("parses as text");
        assert!(bad.validate().is_err());
    }

    #[test]
    fn catch_up_only_after_history() {
        assert!(catch_up_due(true, false));
        assert!(
            !catch_up_due(false, false),
            "fresh install: no start-up run"
        );
        assert!(!catch_up_due(true, true), "period already claimed");
    }
}
