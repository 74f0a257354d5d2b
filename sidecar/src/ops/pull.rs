//! ERP → platform pull (spec scenario 4): page through `custom/list.asp` (`ly = 171` by default,
//! sorted `-date1`, configurable page size, every page up to `pagecount`) and upsert the rows into
//! `erp_sync.erp_customers`, so customers typed into the ERP by hand are not lost to the platform
//! (`erp_sync.erp_only_customers` lists the ones the platform does not know).
//!
//! # How changes are detected without a "modified since" filter
//!
//! The list has no modification-time filter and no change feed, so every pull is a **full pass**:
//!
//! - each row is kept as received (`raw`, every column by id) and `erp_customers.raw_hash` is
//!   `md5(raw::text)` (jsonb text is canonical: key order does not matter). The upsert writes a row
//!   only when it is new, when its raw row differs from the stored one (`changed_at` is set), or
//!   when it comes back after being gone; an unchanged row costs no write. Counts: `new`,
//!   `changed`, `unchanged`.
//! - rows not listed by a **complete** pass get `gone_at` (deleted in the ERP, or moved to another
//!   source); they lose it when listed again (`returned`). A pass is complete when every page up to
//!   `pagecount` was read, no page was empty early, and the ERP's `recordcount` did not change during
//!   the pass: a customer added or deleted meanwhile shifts the pages (`-date1` puts new ones first),
//!   which could duplicate a row (harmless: rows are de-duplicated by ord) or skip one, so such a pass
//!   does not mark anything gone.
//!
//! Cost: one `list.asp` request per page and one statement per page; the seen ords (8 bytes each)
//! are kept in memory for the gone pass.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::config::ScheduleConfig;
use crate::db::pool_err;
use crate::erp::{ErpClient, ErpCustomer, ListFilter};
use crate::error::{Error, Result};

pub mod q {
    pub const PULL_UPSERT: &str = include_str!("../../queries/pull_upsert.sql");
    pub const PULL_MARK_GONE: &str = include_str!("../../queries/pull_mark_gone.sql");
}

/// What to pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOptions {
    /// `ly` filter; `None` = every source.
    pub ly: Option<String>,
    /// `_rpt_sort`.
    pub sort: Option<String>,
    pub page_size: u32,
    pub max_pages: u32,
    /// Offset of the ERP's wall clock (its dates carry no zone), minutes east of UTC.
    pub utc_offset_minutes: i32,
}

impl PullOptions {
    pub fn from_config(cfg: &ScheduleConfig) -> PullOptions {
        let nonempty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        PullOptions {
            ly: nonempty(&cfg.pull_ly),
            sort: nonempty(&cfg.pull_sort),
            page_size: cfg.pull_page_size.max(1),
            max_pages: cfg.pull_max_pages.max(1),
            utc_offset_minutes: cfg.utc_offset_minutes,
        }
    }
}

/// Outcome of one pull.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PullSummary {
    pub pages: u32,
    /// Distinct customers listed.
    pub rows: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Rows listed again after having been gone.
    pub returned: u64,
    /// Rows marked gone by this (complete) pass.
    pub gone: u64,
    /// Every page read and the list stable during the pass (only then are rows marked gone).
    pub complete: bool,
    pub duration_ms: u64,
}

impl std::fmt::Display for PullSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pages={} rows={} new={} changed={} unchanged={} returned={} gone={} complete={} duration_ms={}",
            self.pages,
            self.rows,
            self.new,
            self.changed,
            self.unchanged,
            self.returned,
            self.gone,
            self.complete,
            self.duration_ms
        )
    }
}

/// Progress callback: `(pages done, pages in total)`.
pub type Progress<'a> = &'a (dyn Fn(u32, u32) + Send + Sync);

/// The ERP's `date1` (`2025-10-19 12:43:10`, or a date alone) as an instant, read in `offset`.
pub fn parse_erp_date(text: &str, offset_minutes: i32) -> Option<DateTime<Utc>> {
    let t = text.trim();
    let offset = FixedOffset::east_opt(offset_minutes.checked_mul(60)?)?;
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y/%m/%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .or_else(|| {
        ["%Y-%m-%d", "%Y/%m/%d"]
            .iter()
            .find_map(|f| NaiveDate::parse_from_str(t, f).ok())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })?;
    naive
        .and_local_timezone(offset)
        .single()
        .map(|d| d.with_timezone(&Utc))
}

fn loose_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One customer as the record `pull_upsert.sql` reads.
pub fn upsert_record(c: &ErpCustomer, offset_minutes: i32) -> Value {
    json!({
        "erp_ord": c.ord,
        "name": c.name,
        "khid": c.khid,
        "ly": c.ly,
        "mobile": c.mobile,
        "weixin_acc": c.weixin_acc,
        "address": c.address,
        "add_date": c.add_date.as_deref()
            .and_then(|d| parse_erp_date(d, offset_minutes))
            .map(|d| d.to_rfc3339()),
        "sales_person": c.sales_person,
        "jz": c.raw.get("jz").and_then(loose_text),
        "raw": Value::Object(c.raw.clone()),
    })
}

/// Keep the rows not seen yet in this pass (a row shifted to the next page by a concurrent insert
/// is listed twice).
pub fn dedupe(rows: Vec<ErpCustomer>, seen: &mut HashSet<i64>) -> Vec<ErpCustomer> {
    rows.into_iter().filter(|c| seen.insert(c.ord)).collect()
}

fn count(row: &tokio_postgres::Row, col: &str) -> Result<u64> {
    let n: i64 = row.try_get(col)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Pull every page. Stops early (incomplete, nothing marked gone) when `shutdown` turns true.
pub async fn pull(
    pool: &Pool,
    erp: &ErpClient,
    opts: &PullOptions,
    progress: Progress<'_>,
    shutdown: &watch::Receiver<bool>,
) -> Result<PullSummary> {
    let started = Instant::now();
    let mut s = PullSummary::default();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut pageindex: u32 = 1;
    let mut pagecount: u32 = 1;
    let mut first_recordcount: Option<u64> = None;
    let mut stable = true;
    let mut exhausted = false;
    tracing::info!(
        ly = opts.ly.as_deref().unwrap_or("*"),
        page_size = opts.page_size,
        sort = opts.sort.as_deref().unwrap_or(""),
        "ERP pull starting"
    );
    while pageindex <= pagecount && pageindex <= opts.max_pages {
        if *shutdown.borrow() {
            tracing::info!(pages = s.pages, "ERP pull interrupted by shutdown");
            break;
        }
        let filter = ListFilter {
            ly: opts.ly.clone(),
            sort: opts.sort.clone(),
            pagesize: opts.page_size,
            pageindex,
            ..ListFilter::default()
        };
        let page = erp.list_customers(&filter).await?;
        pagecount = page.page.pagecount;
        match first_recordcount {
            None => first_recordcount = Some(page.page.recordcount),
            Some(n) if n != page.page.recordcount => stable = false,
            Some(_) => {}
        }
        s.pages += 1;
        if page.rows.is_empty() {
            // Empty before pagecount: the list shrank under us.
            exhausted = pageindex < pagecount;
            progress(s.pages, pagecount.max(s.pages));
            break;
        }
        let fresh = dedupe(page.rows, &mut seen);
        if !fresh.is_empty() {
            let records: Vec<Value> = fresh
                .iter()
                .map(|c| upsert_record(c, opts.utc_offset_minutes))
                .collect();
            let c = pool.get().await.map_err(pool_err)?;
            let row = c
                .query_one(q::PULL_UPSERT, &[&Value::Array(records)])
                .await?;
            s.new += count(&row, "new")?;
            s.changed += count(&row, "changed")?;
            s.unchanged += count(&row, "unchanged")?;
            s.returned += count(&row, "returned")?;
        }
        tracing::debug!(pageindex, pagecount, rows = seen.len(), "ERP pull page");
        progress(s.pages, pagecount.max(s.pages));
        pageindex += 1;
    }
    s.rows = seen.len() as u64;
    let all_pages = pageindex > pagecount && !exhausted;
    let counted = first_recordcount.is_none_or(|n| n == s.rows);
    s.complete = all_pages && stable && counted && !*shutdown.borrow();
    if s.complete {
        let ords: Vec<i64> = seen.into_iter().collect();
        let c = pool.get().await.map_err(pool_err)?;
        s.gone = c.execute(q::PULL_MARK_GONE, &[&ords]).await?;
    } else if pageindex <= pagecount && pageindex > opts.max_pages {
        tracing::warn!(
            max_pages = opts.max_pages,
            pagecount,
            "ERP pull stopped at schedule.pull_max_pages: nothing marked gone"
        );
    } else {
        tracing::info!(
            all_pages,
            stable,
            counted,
            "ERP pull incomplete: nothing marked gone"
        );
    }
    s.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        pages = s.pages,
        rows = s.rows,
        new = s.new,
        changed = s.changed,
        unchanged = s.unchanged,
        returned = s.returned,
        gone = s.gone,
        complete = s.complete,
        duration_ms = s.duration_ms,
        "ERP pull finished"
    );
    Ok(s)
}

/// A pool for the ops jobs (small: they run one statement at a time).
pub fn ops_pool(cfg: &crate::config::DatabaseConfig) -> Result<Pool> {
    let mut db = cfg.clone();
    db.pool_size = 2;
    crate::db::make_pool(&db)
}

/// `Error` for a summary that cannot be serialised (never expected).
pub fn summary_json<T: Serialize>(s: &T) -> Result<Value> {
    serde_json::to_value(s).map_err(|e| Error::Config(format!("cannot serialise a summary: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn cust(ord: i64) -> ErpCustomer {
        let mut raw = Map::new();
        raw.insert("ord".into(), json!(ord.to_string()));
        raw.insert("jz".into(), json!("289"));
        ErpCustomer {
            ord,
            name: Some(format!("客户{ord}")),
            khid: Some(format!("KH{ord}")),
            ly: Some("171".into()),
            mobile: None,
            weixin_acc: None,
            address: None,
            add_date: Some("2025-10-19 12:43:10".into()),
            sales_person: None,
            raw,
        }
    }

    #[test]
    fn erp_dates_are_read_in_the_erp_offset() {
        let d = parse_erp_date("2025-10-19 12:43:10", 480).expect("date");
        assert_eq!(d.to_rfc3339(), "2025-10-19T04:43:10+00:00");
        let d = parse_erp_date("2025/10/19", 0).expect("date only");
        assert_eq!(d.to_rfc3339(), "2025-10-19T00:00:00+00:00");
        assert!(parse_erp_date("yesterday", 480).is_none());
        assert!(parse_erp_date("", 480).is_none());
    }

    #[test]
    fn records_keep_the_raw_row_and_jz() {
        let r = upsert_record(&cust(7), 480);
        assert_eq!(r["erp_ord"], json!(7));
        assert_eq!(r["jz"], json!("289"));
        assert_eq!(r["raw"]["ord"], json!("7"));
        assert_eq!(r["add_date"], json!("2025-10-19T04:43:10+00:00"));
    }

    #[test]
    fn rows_listed_twice_are_kept_once() {
        let mut seen = HashSet::new();
        let a = dedupe(vec![cust(1), cust(2)], &mut seen);
        let b = dedupe(vec![cust(2), cust(3)], &mut seen);
        assert_eq!(a.iter().map(|c| c.ord).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(b.iter().map(|c| c.ord).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn options_from_config() {
        let cfg = ScheduleConfig {
            pull_ly: " ".into(),
            ..ScheduleConfig::default()
        };
        let o = PullOptions::from_config(&cfg);
        assert_eq!(o.ly, None);
        assert_eq!(o.sort.as_deref(), Some("-date1"));
        assert_eq!(o.page_size, 100);
    }
}
