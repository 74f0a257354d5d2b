//! Process-wide metrics, rendered in the Prometheus text format (version 0.0.4) by `/metrics`.
//!
//! Hand-rolled on atomics (a handful of series; no extra dependency):
//! - `erp_sync_rows_total{kind,status}` counter: outbox rows acknowledged by this process
//!   (`done` = synced, `dead` = failed, `skipped`, `pending` = will retry);
//! - `erp_sync_retries_total` counter: rows put back for a retry;
//! - `erp_sync_erp_call_duration_seconds` histogram, `erp_sync_erp_calls_total{result}`;
//! - `erp_sync_erp_logins_total` counter: ERP logins (the first one plus session re-logins), from
//!   [`crate::erp::ErpClient::login_count`];
//! - `erp_sync_listener_up` gauge; the queue depth gauges come from the database at scrape time
//!   (see [`crate::ops::http`]).
//!
//! The engine reports through [`row_acked`], [`erp_call`] and [`register_engine`] (one-line calls).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::erp::ErpClient;

/// Upper bounds (seconds) of the ERP latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

struct Metrics {
    rows: Mutex<BTreeMap<(String, String), u64>>,
    retries: AtomicU64,
    erp_ok: AtomicU64,
    erp_err: AtomicU64,
    latency: Histogram,
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        rows: Mutex::new(BTreeMap::new()),
        retries: AtomicU64::new(0),
        erp_ok: AtomicU64::new(0),
        erp_err: AtomicU64::new(0),
        latency: Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        },
    })
}

/// What the engine shares with the ops endpoints.
#[derive(Clone)]
pub struct EngineHandles {
    pub erp: ErpClient,
    /// True while the LISTEN connection is in place (kept by `engine::listener`).
    pub listener_ok: Arc<AtomicBool>,
}

fn engine_slot() -> &'static Mutex<Option<EngineHandles>> {
    static E: OnceLock<Mutex<Option<EngineHandles>>> = OnceLock::new();
    E.get_or_init(|| Mutex::new(None))
}

/// Called by `engine::run` once the listener is spawned.
pub fn register_engine(erp: ErpClient, listener_ok: Arc<AtomicBool>) {
    let mut g = match engine_slot().lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    *g = Some(EngineHandles { erp, listener_ok });
}

/// The registered engine, if `run` has started.
pub fn engine() -> Option<EngineHandles> {
    match engine_slot().lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

/// Listener state: `None` before the engine registered.
pub fn listener_up() -> Option<bool> {
    engine().map(|e| e.listener_ok.load(Ordering::Relaxed))
}

/// One outbox row acknowledged with `status` (`done`, `skipped`, `dead`, `pending` = retry).
pub fn row_acked(kind: &str, status: &str) {
    let m = metrics();
    if status == "pending" {
        m.retries.fetch_add(1, Ordering::Relaxed);
    }
    let mut g = match m.rows.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    *g.entry((kind.to_string(), status.to_string())).or_insert(0) += 1;
}

/// One ERP call finished after `elapsed`.
pub fn erp_call(elapsed: Duration, ok: bool) {
    let m = metrics();
    if ok {
        m.erp_ok.fetch_add(1, Ordering::Relaxed);
    } else {
        m.erp_err.fetch_add(1, Ordering::Relaxed);
    }
    let secs = elapsed.as_secs_f64();
    for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
        if secs <= *le {
            m.latency.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    m.latency.count.fetch_add(1, Ordering::Relaxed);
    m.latency.sum_us.fetch_add(
        u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

/// Queue depth of one (kind, status) pair, read from `erp_sync.queue` at scrape time.
#[derive(Debug, Clone)]
pub struct QueueDepth {
    pub kind: String,
    pub status: String,
    pub rows: i64,
    pub oldest_pending_s: Option<f64>,
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition. `queue` is `None` when the database could not be read (the
/// `erp_sync_db_up` gauge says so).
pub fn render(queue: Option<&[QueueDepth]>) -> String {
    let m = metrics();
    let mut out = String::with_capacity(4096);
    // `write!` into a String cannot fail; the results are checked anyway.
    let mut w = |s: std::fmt::Arguments<'_>| {
        if out.write_fmt(s).is_err() {
            tracing::debug!("metrics: formatting failed");
        }
    };
    w(format_args!(
        "# HELP erp_sync_rows_total Outbox rows acknowledged by this sidecar, by kind and resulting status (done = synced, dead = failed, pending = retry).\n# TYPE erp_sync_rows_total counter\n"
    ));
    {
        let g = match m.rows.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for ((kind, status), n) in g.iter() {
            w(format_args!(
                "erp_sync_rows_total{{kind=\"{}\",status=\"{}\"}} {n}\n",
                label(kind),
                label(status)
            ));
        }
    }
    w(format_args!(
        "# HELP erp_sync_retries_total Rows put back for a retry after a retryable error.\n# TYPE erp_sync_retries_total counter\nerp_sync_retries_total {}\n",
        m.retries.load(Ordering::Relaxed)
    ));
    w(format_args!(
        "# HELP erp_sync_erp_calls_total ERP calls by result.\n# TYPE erp_sync_erp_calls_total counter\nerp_sync_erp_calls_total{{result=\"ok\"}} {}\nerp_sync_erp_calls_total{{result=\"error\"}} {}\n",
        m.erp_ok.load(Ordering::Relaxed),
        m.erp_err.load(Ordering::Relaxed)
    ));
    w(format_args!(
        "# HELP erp_sync_erp_call_duration_seconds ERP call latency (including client retries and re-logins).\n# TYPE erp_sync_erp_call_duration_seconds histogram\n"
    ));
    for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
        w(format_args!(
            "erp_sync_erp_call_duration_seconds_bucket{{le=\"{le}\"}} {}\n",
            m.latency.buckets[i].load(Ordering::Relaxed)
        ));
    }
    let count = m.latency.count.load(Ordering::Relaxed);
    w(format_args!(
        "erp_sync_erp_call_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nerp_sync_erp_call_duration_seconds_sum {}\nerp_sync_erp_call_duration_seconds_count {count}\n",
        m.latency.sum_us.load(Ordering::Relaxed) as f64 / 1e6
    ));
    let eng = engine();
    w(format_args!(
        "# HELP erp_sync_erp_logins_total ERP logins of this sidecar (first login and session re-logins).\n# TYPE erp_sync_erp_logins_total counter\nerp_sync_erp_logins_total {}\n",
        eng.as_ref().map_or(0, |e| e.erp.login_count())
    ));
    w(format_args!(
        "# HELP erp_sync_listener_up 1 while the LISTEN connection is alive.\n# TYPE erp_sync_listener_up gauge\nerp_sync_listener_up {}\n",
        u8::from(eng.as_ref().is_some_and(|e| e.listener_ok.load(Ordering::Relaxed)))
    ));
    w(format_args!(
        "# HELP erp_sync_db_up 1 when the queue could be read from the database at this scrape.\n# TYPE erp_sync_db_up gauge\nerp_sync_db_up {}\n",
        u8::from(queue.is_some())
    ));
    if let Some(q) = queue {
        w(format_args!(
            "# HELP erp_sync_queue_rows Outbox rows by kind and status (erp_sync.queue).\n# TYPE erp_sync_queue_rows gauge\n"
        ));
        for d in q {
            w(format_args!(
                "erp_sync_queue_rows{{kind=\"{}\",status=\"{}\"}} {}\n",
                label(&d.kind),
                label(&d.status),
                d.rows
            ));
        }
        w(format_args!(
            "# HELP erp_sync_queue_oldest_pending_seconds Age of the oldest pending row, by kind.\n# TYPE erp_sync_queue_oldest_pending_seconds gauge\n"
        ));
        for d in q {
            if let Some(s) = d.oldest_pending_s {
                w(format_args!(
                    "erp_sync_queue_oldest_pending_seconds{{kind=\"{}\"}} {s}\n",
                    label(&d.kind)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        row_acked("customer", "done");
        row_acked("customer", "pending");
        erp_call(Duration::from_millis(30), true);
        let q = vec![QueueDepth {
            kind: "customer".into(),
            status: "pending".into(),
            rows: 3,
            oldest_pending_s: Some(1.5),
        }];
        let text = render(Some(&q));
        assert!(text.contains("erp_sync_rows_total{kind=\"customer\",status=\"done\"}"));
        assert!(text.contains("erp_sync_queue_rows{kind=\"customer\",status=\"pending\"} 3"));
        assert!(text.contains("erp_sync_erp_call_duration_seconds_bucket{le=\"+Inf\"}"));
        assert!(text.contains("erp_sync_db_up 1"));
        // the 30 ms call is in the 0.05 bucket but not in the 0.025 one (other tests may add more)
        let b = |le: &str| -> u64 {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "erp_sync_erp_call_duration_seconds_bucket{{le=\"{le}\"}}"
                    ))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        assert!(b("0.05") >= 1);
        assert!(b("0.05") > b("0.025") || b("0.025") > 0);
        assert!(render(None).contains("erp_sync_db_up 0"));
        assert_eq!(label("a\"b"), "a\\\"b");
    }
}
