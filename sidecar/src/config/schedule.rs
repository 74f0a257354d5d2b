//! `[schedule]`: when the scheduled jobs run (`ops::schedule` runs them), and its parsing —
//! owned here so that validating a configuration needs nothing from `ops`.

use chrono::FixedOffset;
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Schedules (`ops::schedule`) and the ERP pull (`ops::pull`). Cron expressions have six fields
/// (`sec min hour day-of-month month day-of-week`) and are read in the fixed offset
/// `utc_offset_minutes` (default +08:00, the ERP's time); an empty expression disables that job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Run the schedules inside `erp-sync run` (off: only the `pull`/`reconcile` commands).
    pub enabled: bool,
    /// Pull of ERP customers into `erp_sync.erp_customers` (spec: daily at 02:00).
    pub pull_cron: String,
    /// Cheap sweep of due/expired outbox rows that wakes idle workers (spec: hourly).
    pub sweep_cron: String,
    /// Pull + full reconciliation (spec: weekly on Sunday).
    pub reconcile_cron: String,
    /// Offset of the wall clock the cron expressions are read in, minutes east of UTC.
    pub utc_offset_minutes: i32,
    /// After downtime, run a missed period once at start-up (only for a schedule that has run before).
    pub catch_up: bool,
    /// `list.asp` page size of a pull.
    pub pull_page_size: u32,
    /// Customer source (`ly`) filter of a pull; empty = every source.
    pub pull_ly: String,
    /// `_rpt_sort` of a pull.
    pub pull_sort: String,
    /// Safety cap on the pages of one pull.
    pub pull_max_pages: u32,
    /// On shutdown: time given to a running job before it is abandoned.
    pub shutdown_deadline_ms: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            enabled: true,
            pull_cron: "0 0 2 * * *".into(),
            sweep_cron: "0 0 * * * *".into(),
            reconcile_cron: "0 0 3 * * Sun".into(),
            utc_offset_minutes: 480,
            catch_up: true,
            pull_page_size: 100,
            pull_ly: erp_sync_rules::LY_WECHAT.into(),
            pull_sort: "-date1".into(),
            pull_max_pages: 10_000,
            shutdown_deadline_ms: 5_000,
        }
    }
}

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Pull,
    Sweep,
    Reconcile,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Pull => "pull",
            Job::Sweep => "sweep",
            Job::Reconcile => "reconcile",
        }
    }
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub job: Job,
    pub expr: String,
    pub cron: Cron,
}

/// Parse a cron expression (5 or 6 fields; 6 = with seconds first).
pub fn parse_cron(what: &str, expr: &str) -> Result<Cron> {
    expr.trim().parse::<Cron>().map_err(|e| {
        Error::Config(format!(
            "schedule.{what}: invalid cron expression {expr:?}: {e}"
        ))
    })
}

pub fn offset(cfg: &ScheduleConfig) -> Result<FixedOffset> {
    cfg.utc_offset_minutes
        .checked_mul(60)
        .and_then(FixedOffset::east_opt)
        .ok_or_else(|| {
            Error::Config(format!(
                "schedule.utc_offset_minutes {} is out of range",
                cfg.utc_offset_minutes
            ))
        })
}

/// The configured schedules (empty expressions are disabled).
pub fn schedules(cfg: &ScheduleConfig) -> Result<Vec<Schedule>> {
    let mut out = Vec::new();
    for (job, key, expr) in [
        (Job::Pull, "pull_cron", &cfg.pull_cron),
        (Job::Sweep, "sweep_cron", &cfg.sweep_cron),
        (Job::Reconcile, "reconcile_cron", &cfg.reconcile_cron),
    ] {
        if expr.trim().is_empty() {
            continue;
        }
        out.push(Schedule {
            job,
            expr: expr.clone(),
            cron: parse_cron(key, expr)?,
        });
    }
    Ok(out)
}

/// Config validation (called by `Config::validate`).
pub fn validate(cfg: &ScheduleConfig) -> Result<()> {
    offset(cfg)?;
    schedules(cfg)?;
    if cfg.pull_page_size == 0 || cfg.pull_max_pages == 0 {
        return Err(Error::Config(
            "schedule.pull_page_size and schedule.pull_max_pages must be > 0".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_expressions_and_offsets_are_config_errors() {
        let cfg = ScheduleConfig {
            pull_cron: "every day".into(),
            ..ScheduleConfig::default()
        };
        assert!(matches!(validate(&cfg), Err(Error::Config(m)) if m.contains("pull_cron")));
        let cfg = ScheduleConfig {
            utc_offset_minutes: 100_000,
            ..ScheduleConfig::default()
        };
        assert!(matches!(validate(&cfg), Err(Error::Config(_))));
        let cfg = ScheduleConfig {
            sweep_cron: String::new(),
            ..ScheduleConfig::default()
        };
        assert_eq!(schedules(&cfg).expect("ok").len(), 2);
    }
}
