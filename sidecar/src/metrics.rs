//! Process-wide metrics, served by `/metrics` in the OpenMetrics text format (1.0.0) with the
//! `prometheus-client` crate.
//!
//! Series (a counter `x` is exposed as `x_total`):
//! - `erp_sync_rows_total{kind,status}` counter: outbox rows acknowledged by this process
//!   (`done` = synced, `dead` = failed, `skipped`, `pending` = will retry, `in_doubt`);
//! - `erp_sync_retries_total` counter: rows put back for a retry;
//! - `erp_sync_erp_calls_total{result}` counter (`ok`, `error`) and the
//!   `erp_sync_erp_call_duration_seconds` histogram ([`LATENCY_BUCKETS`]);
//! - `erp_sync_erp_logins_total` counter: ERP logins (the first one plus session re-logins), from
//!   [`crate::erp::ErpClient::login_count`];
//! - `erp_sync_notifications_total` counter: NOTIFYs the listener received;
//! - `erp_sync_listener_connects_total` counter: successful LISTENs (the first and every re-LISTEN
//!   after a lost connection);
//! - `erp_sync_listener_up` gauge: 1 while the LISTEN connection is in place;
//! - `erp_sync_db_up` gauge, `erp_sync_queue_rows{kind,status}` and
//!   `erp_sync_queue_oldest_pending_seconds{kind}` gauges: read from the database at scrape time
//!   (served by `ops::http`).
//!
//! The counters and the histogram live in one process-wide `Metrics`; every scrape builds a fresh
//! [`Registry`] holding clones of those handles (they share their values) plus the values of that
//! moment (logins from the ERP client, the listener flag, the queue), and encodes it. A labelled
//! family without any series yet (no row acknowledged, no pending row) is left out, as OpenMetrics
//! allows; `erp_sync_erp_calls_total` has both results from the start.
//!
//! The engine reports through [`row_acked`], [`erp_call`], [`notification_received`],
//! [`listener_connected`] and [`register_engine`] (one-line calls).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::erp::ErpClient;

/// The Content-Type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the ERP latency histogram buckets (`+Inf` is added).
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindStatus {
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallResult {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

/// The process-wide metric handles (cheap clones that share their values).
struct Metrics {
    rows: Family<KindStatus, Counter>,
    retries: Counter,
    erp_calls: Family<CallResult, Counter>,
    erp_latency: Histogram,
    notifications: Counter,
    listener_connects: Counter,
}

fn metrics() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let erp_calls = Family::<CallResult, Counter>::default();
        // Both results are exposed from the start (at 0), as rate() over a missing series is empty.
        for result in ["ok", "error"] {
            drop(erp_calls.get_or_create(&CallResult {
                result: result.into(),
            }));
        }
        Metrics {
            rows: Family::default(),
            retries: Counter::default(),
            erp_calls,
            erp_latency: Histogram::new(LATENCY_BUCKETS),
            notifications: Counter::default(),
            listener_connects: Counter::default(),
        }
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
        m.retries.inc();
    }
    m.rows
        .get_or_create(&KindStatus {
            kind: kind.to_string(),
            status: status.to_string(),
        })
        .inc();
}

/// One ERP call finished after `elapsed`.
pub fn erp_call(elapsed: Duration, ok: bool) {
    let m = metrics();
    let result = if ok { "ok" } else { "error" };
    m.erp_calls
        .get_or_create(&CallResult {
            result: result.into(),
        })
        .inc();
    m.erp_latency.observe(elapsed.as_secs_f64());
}

/// The listener received one NOTIFY.
pub fn notification_received() {
    metrics().notifications.inc();
}

/// The listener issued LISTEN successfully (first connect or a reconnect).
pub fn listener_connected() {
    metrics().listener_connects.inc();
}

/// Queue depth of one (kind, status) pair, read from `erp_sync.queue` at scrape time.
#[derive(Debug, Clone)]
pub struct QueueDepth {
    pub kind: String,
    pub status: String,
    pub rows: i64,
    pub oldest_pending_s: Option<f64>,
}

fn gauge(v: bool) -> Gauge {
    let g = Gauge::default();
    g.set(i64::from(v));
    g
}

/// The registry of one scrape: the process-wide handles and the values of this moment. `queue`
/// is `None` when the database could not be read (the `erp_sync_db_up` gauge says so).
fn scrape_registry(queue: Option<&[QueueDepth]>) -> Registry {
    let m = metrics();
    let eng = engine();
    let mut r = Registry::default();
    r.register(
        "erp_sync_rows",
        "Outbox rows acknowledged by this sidecar, by kind and resulting status (done = synced, dead = failed, pending = retry)",
        m.rows.clone(),
    );
    r.register(
        "erp_sync_retries",
        "Rows put back for a retry after a retryable error",
        m.retries.clone(),
    );
    r.register(
        "erp_sync_erp_calls",
        "ERP calls by result",
        m.erp_calls.clone(),
    );
    r.register_with_unit(
        "erp_sync_erp_call_duration",
        "ERP call latency (including client retries and re-logins)",
        Unit::Seconds,
        m.erp_latency.clone(),
    );
    r.register(
        "erp_sync_erp_logins",
        "ERP logins of this sidecar (first login and session re-logins)",
        ConstCounter::new(eng.as_ref().map_or(0, |e| e.erp.login_count())),
    );
    r.register(
        "erp_sync_notifications",
        "NOTIFYs received by the listener (the capture trigger sends one only when a worker is idle)",
        m.notifications.clone(),
    );
    r.register(
        "erp_sync_listener_connects",
        "Successful LISTENs (the first one and every re-LISTEN after a lost connection)",
        m.listener_connects.clone(),
    );
    r.register(
        "erp_sync_listener_up",
        "1 while the LISTEN connection is alive",
        gauge(
            eng.as_ref()
                .is_some_and(|e| e.listener_ok.load(Ordering::Relaxed)),
        ),
    );
    r.register(
        "erp_sync_db_up",
        "1 when the queue could be read from the database at this scrape",
        gauge(queue.is_some()),
    );
    if let Some(q) = queue {
        let rows = Family::<KindStatus, Gauge>::default();
        let oldest = Family::<Kind, Gauge<f64, AtomicU64>>::default();
        for d in q {
            rows.get_or_create(&KindStatus {
                kind: d.kind.clone(),
                status: d.status.clone(),
            })
            .set(d.rows);
            if let Some(s) = d.oldest_pending_s {
                oldest
                    .get_or_create(&Kind {
                        kind: d.kind.clone(),
                    })
                    .set(s);
            }
        }
        r.register(
            "erp_sync_queue_rows",
            "Outbox rows by kind and status (erp_sync.queue)",
            rows,
        );
        r.register_with_unit(
            "erp_sync_queue_oldest_pending",
            "Age of the oldest pending row, by kind",
            Unit::Seconds,
            oldest,
        );
    }
    r
}

/// The whole exposition, ending in `# EOF` (serve it as [`CONTENT_TYPE`]).
pub fn render(queue: Option<&[QueueDepth]>) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::text::encode(&mut out, &scrape_registry(queue))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A strict-enough reading of an OpenMetrics text exposition: family name -> type, and every
    /// sample `name{labels}` -> value. Fails on a sample without a declared family, a family
    /// declared twice, a malformed line, or an exposition not ending in exactly one `# EOF`.
    struct Parsed {
        types: BTreeMap<String, String>,
        samples: BTreeMap<String, f64>,
    }

    fn parse(text: &str) -> Parsed {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "{text}");
        assert_eq!(lines.iter().filter(|l| **l == "# EOF").count(), 1, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        let mut types = BTreeMap::new();
        let mut samples = BTreeMap::new();
        for l in &lines[..lines.len() - 1] {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').expect("TYPE name type");
                assert!(
                    types.insert(name.to_string(), ty.to_string()).is_none(),
                    "family {name} declared twice"
                );
            } else if l.starts_with("# HELP ") || l.starts_with("# UNIT ") {
            } else {
                assert!(!l.starts_with('#'), "unexpected comment: {l}");
                let (series, value) = l.rsplit_once(' ').expect("sample: series value");
                let name = series.split('{').next().unwrap_or(series);
                let family = types
                    .iter()
                    .filter(|(f, _)| {
                        name == f.as_str()
                            || name.strip_prefix(f.as_str()).is_some_and(|s| {
                                ["_total", "_bucket", "_sum", "_count"].contains(&s)
                            })
                    })
                    .map(|(f, _)| f.clone())
                    .next_back();
                assert!(family.is_some(), "sample without a family: {l}");
                let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {l}"));
                assert!(
                    samples.insert(series.to_string(), v).is_none(),
                    "duplicate sample {series}"
                );
            }
        }
        Parsed { types, samples }
    }

    #[test]
    fn renders_every_series_as_valid_openmetrics() {
        row_acked("customer", "done");
        row_acked("customer", "pending");
        erp_call(Duration::from_millis(30), true);
        let q = vec![QueueDepth {
            kind: "customer".into(),
            status: "pending".into(),
            rows: 3,
            oldest_pending_s: Some(1.5),
        }];
        let p = parse(&render(Some(&q)).expect("render"));
        for (family, ty) in [
            ("erp_sync_rows", "counter"),
            ("erp_sync_retries", "counter"),
            ("erp_sync_erp_calls", "counter"),
            ("erp_sync_erp_call_duration_seconds", "histogram"),
            ("erp_sync_erp_logins", "counter"),
            ("erp_sync_notifications", "counter"),
            ("erp_sync_listener_connects", "counter"),
            ("erp_sync_listener_up", "gauge"),
            ("erp_sync_db_up", "gauge"),
            ("erp_sync_queue_rows", "gauge"),
            ("erp_sync_queue_oldest_pending_seconds", "gauge"),
        ] {
            assert_eq!(
                p.types.get(family).map(String::as_str),
                Some(ty),
                "{family}"
            );
        }
        assert_eq!(p.types.len(), 11, "{:?}", p.types);
        let s = |series: &str| p.samples.get(series).copied();
        assert!(s("erp_sync_rows_total{kind=\"customer\",status=\"done\"}") >= Some(1.0));
        assert!(s("erp_sync_retries_total") >= Some(1.0));
        assert!(s("erp_sync_erp_calls_total{result=\"ok\"}") >= Some(1.0));
        assert!(s("erp_sync_erp_calls_total{result=\"error\"}").is_some());
        assert_eq!(
            s("erp_sync_queue_rows{kind=\"customer\",status=\"pending\"}"),
            Some(3.0)
        );
        assert_eq!(
            s("erp_sync_queue_oldest_pending_seconds{kind=\"customer\"}"),
            Some(1.5)
        );
        assert_eq!(s("erp_sync_db_up"), Some(1.0));
        assert_eq!(s("erp_sync_listener_up"), Some(0.0), "no engine registered");
        assert_eq!(s("erp_sync_erp_logins_total"), Some(0.0));
        // the histogram: every configured bucket and +Inf, cumulative; the 30 ms call is in the
        // 0.05 bucket (other tests may add more calls)
        let bucket = |le: &str| {
            s(&format!(
                "erp_sync_erp_call_duration_seconds_bucket{{le=\"{le}\"}}"
            ))
            .unwrap_or_else(|| panic!("bucket {le}"))
        };
        let mut prev = 0.0;
        for le in LATENCY_BUCKETS {
            let n = bucket(&format!("{le:?}"));
            assert!(n >= prev, "buckets not cumulative at {le}");
            prev = n;
        }
        assert!(bucket("0.05") >= 1.0);
        let count = s("erp_sync_erp_call_duration_seconds_count").expect("count");
        assert_eq!(bucket("+Inf"), count);
        assert!(count >= 1.0 && s("erp_sync_erp_call_duration_seconds_sum") >= Some(0.03));

        // without the database: db_up 0 and no queue gauges
        let p = parse(&render(None).expect("render"));
        assert_eq!(p.samples.get("erp_sync_db_up"), Some(&0.0));
        assert!(!p.types.contains_key("erp_sync_queue_rows"));
    }

    #[test]
    fn counters_increment() {
        let read = |series: &str| {
            parse(&render(None).expect("render"))
                .samples
                .get(series)
                .copied()
                .unwrap_or_else(|| panic!("{series} missing"))
        };
        let (n0, c0) = (
            read("erp_sync_notifications_total"),
            read("erp_sync_listener_connects_total"),
        );
        notification_received();
        notification_received();
        listener_connected();
        assert!(read("erp_sync_notifications_total") >= n0 + 2.0);
        assert!(read("erp_sync_listener_connects_total") >= c0 + 1.0);
        let e0 = read("erp_sync_erp_calls_total{result=\"error\"}");
        erp_call(Duration::from_millis(1), false);
        assert!(read("erp_sync_erp_calls_total{result=\"error\"}") >= e0 + 1.0);
    }

    #[test]
    fn label_values_are_escaped() {
        row_acked("a\"b\\c\nd", "done");
        let text = render(None).expect("render");
        assert!(
            text.contains(r#"erp_sync_rows_total{kind="a\"b\\c\nd",status="done"} 1"#),
            "{text}"
        );
        parse(&text);
    }
}
