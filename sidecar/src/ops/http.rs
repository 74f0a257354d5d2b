//! The ops HTTP server of `erp-sync run` (`http.listen_addr`, default `127.0.0.1:9187`, `off`
//! disables it) and the start of the monitoring tasks next to the engine.
//!
//! | path | content |
//! |---|---|
//! | `/healthz` | 200 `{"status":"ok",...}` when the database answers and the LISTEN connection is up; 503 otherwise |
//! | `/metrics` | OpenMetrics text ([`crate::metrics`]) + queue depth read at scrape time |
//! | `/api/status` | JSON for the status page: queue, 1 h / 24 h stats, hourly success rate, recent failures, alerts |
//! | `/` | the status page (static HTML + JS, no external resources) |
//!
//! The server uses its own small pool (2 connections) so a saturated engine pool does not make
//! the health check lie. A port already in use is logged as an error; the engine keeps running.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deadpool_postgres::Pool;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::operator::{self, Gate, OperatorState};
use crate::config::Config;
use crate::db::{make_pool, pool_err};
use crate::error::{Error, Result};
use crate::metrics::{self, QueueDepth};

mod q {
    pub const PING: &str = include_str!("../../queries/monitor_ping.sql");
    pub const QUEUE: &str = include_str!("../../queries/monitor_queue.sql");
    pub const STATS: &str = include_str!("../../queries/monitor_stats.sql");
    pub const HOURLY: &str = include_str!("../../queries/monitor_hourly.sql");
    pub const FAILURES: &str = include_str!("../../queries/monitor_failures.sql");
    pub const ALERTS: &str = include_str!("../../queries/monitor_alerts.sql");
}

const STATUS_PAGE: &str = include_str!("status_page.html");
/// Budget of one database read behind an endpoint.
const DB_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct AppState {
    pool: Pool,
    worker: String,
    /// `schedule.utc_offset_minutes`: the page shows times at this offset.
    utc_offset_minutes: i32,
    actions_enabled: bool,
}

/// The HTTP server started by [`spawn_monitoring`].
pub struct Monitoring {
    stop: watch::Sender<bool>,
    /// the server's task; `None` when it was not started
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Monitoring {
    /// Stop the server and wait for it.
    pub async fn shutdown(self) {
        if self.stop.send(true).is_err() {
            tracing::debug!("monitoring tasks already gone");
        }
        if let Some(h) = self.task {
            if let Err(e) = h.await {
                tracing::warn!(error = %e, "ops HTTP server task failed");
            }
        }
    }
}

/// Start the HTTP server (unless `http.listen_addr = "off"`). Never fails the run: problems are
/// logged. (Alerts, retention and schedules run in [`super::periodic`].)
pub fn spawn_monitoring(cfg: &Config, worker: &str) -> Monitoring {
    let (stop, stop_rx) = watch::channel(false);
    if cfg.http.listen_addr == "off" {
        return Monitoring { stop, task: None };
    }
    let mut db = cfg.database.clone();
    db.pool_size = 2;
    let pool = match make_pool(&db) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "ops HTTP server disabled: cannot build its database pool");
            return Monitoring { stop, task: None };
        }
    };
    let gate = Gate::new(&cfg.http.admin_token);
    let state = AppState {
        pool: pool.clone(),
        worker: worker.to_string(),
        utc_offset_minutes: cfg.schedule.utc_offset_minutes,
        actions_enabled: gate.enabled(),
    };
    let op = OperatorState {
        pool,
        gate,
        worker: worker.to_string(),
    };
    let addr = cfg.http.listen_addr.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = serve(&addr, router(state, op), stop_rx).await {
            tracing::error!(listen_addr = %addr, error = %e, "ops HTTP server not running");
        }
    });
    Monitoring {
        stop,
        task: Some(task),
    }
}

/// The router (also used by unit tests).
fn router(state: AppState, op: OperatorState) -> Router {
    let operator = Router::new()
        .route("/api/contacts", get(operator::search))
        .route("/api/contacts/{id}", get(operator::timeline))
        .route("/api/session", get(operator::session))
        .route("/api/login", post(operator::login))
        .route("/api/logout", post(operator::logout))
        .route("/api/actions", post(operator::action))
        .with_state(Arc::new(op));
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/api/status", get(api_status))
        .with_state(Arc::new(state))
        .merge(operator)
}

async fn serve(addr: &str, app: Router, mut stop: watch::Receiver<bool>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(listen_addr = %local, "ops HTTP server listening (/healthz /metrics /api/status /)");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        })
        .await?;
    Ok(())
}

async fn timed<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(DB_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::Pool(format!(
            "database did not answer within {} ms",
            DB_TIMEOUT.as_millis()
        ))),
    }
}

async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(STATUS_PAGE)).into_response()
}

async fn healthz(State(st): State<Arc<AppState>>) -> Response {
    let db = timed(async {
        let c = st.pool.get().await.map_err(pool_err)?;
        c.query_one(q::PING, &[]).await?;
        Ok(())
    })
    .await;
    let listener = metrics::listener_up();
    let ok = db.is_ok() && listener == Some(true);
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "db": db.is_ok(),
        "db_error": db.as_ref().err().map(ToString::to_string),
        "listener": listener,
        "worker": st.worker,
    });
    if !ok {
        tracing::debug!(db = db.is_ok(), listener = ?listener, "healthz: unavailable");
    }
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn read_queue(pool: &Pool) -> Result<Vec<QueueDepth>> {
    timed(async {
        let c = pool.get().await.map_err(pool_err)?;
        let rows = c.query(q::QUEUE, &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(QueueDepth {
                    kind: r.try_get("kind")?,
                    status: r.try_get("status")?,
                    rows: r.try_get("rows")?,
                    oldest_pending_s: r.try_get("oldest_pending_s")?,
                })
            })
            .collect()
    })
    .await
}

async fn metrics_text(State(st): State<Arc<AppState>>) -> Response {
    let queue = match read_queue(&st.pool).await {
        Ok(q) => Some(q),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the queue");
            None
        }
    };
    match metrics::render(queue.as_deref()) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics: encoding failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn stats_json(r: &tokio_postgres::Row) -> Result<Value> {
    Ok(json!({
        "total": r.try_get::<_, i64>("total")?,
        "success": r.try_get::<_, i64>("success")?,
        "failed": r.try_get::<_, i64>("failed")?,
        "success_rate": r.try_get::<_, Option<f64>>("success_rate")?,
    }))
}

async fn status_json(st: &AppState) -> Result<Value> {
    let pool = &st.pool;
    let queue = read_queue(pool).await?;
    let (rejections, rejected) = timed(operator::rejections(pool, 50)).await?;
    timed(async {
        let c = pool.get().await.map_err(pool_err)?;
        let h1 = c.query_one(q::STATS, &[&"1 hour"]).await?;
        let h24 = c.query_one(q::STATS, &[&"24 hours"]).await?;
        let hourly = c.query(q::HOURLY, &[&"24 hours"]).await?;
        let failures = c.query(q::FAILURES, &[&20_i64]).await?;
        let alerts = c.query(q::ALERTS, &[]).await?;
        let mut totals = serde_json::Map::new();
        for d in &queue {
            let prev = totals.get(&d.status).and_then(Value::as_i64).unwrap_or(0);
            totals.insert(d.status.clone(), json!(prev + d.rows));
        }
        for s in ["pending", "running", "done", "dead", "skipped"] {
            totals.entry(s).or_insert(json!(0));
        }
        Ok(json!({
            "generated_at": chrono::Utc::now().to_rfc3339(),
            "utc_offset_minutes": st.utc_offset_minutes,
            "actions_enabled": st.actions_enabled,
            "rejected": rejected,
            "rejections": rejections,
            "listener": metrics::listener_up(),
            "queue": queue.iter().map(|d| json!({
                "kind": d.kind, "status": d.status, "rows": d.rows,
                "oldest_pending_s": d.oldest_pending_s,
            })).collect::<Vec<_>>(),
            "totals": totals,
            "stats_1h": stats_json(&h1)?,
            "stats_24h": stats_json(&h24)?,
            "hourly": hourly.iter().map(|r| Ok(json!({
                "hour": r.try_get::<_, i64>("hour_epoch")?,
                "total": r.try_get::<_, i64>("total")?,
                "success": r.try_get::<_, i64>("success")?,
                "failed": r.try_get::<_, i64>("failed")?,
                "success_rate": r.try_get::<_, Option<f64>>("success_rate")?,
            }))).collect::<Result<Vec<_>>>()?,
            "failures": failures.iter().map(|r| Ok(json!({
                "id": r.try_get::<_, i64>("id")?,
                "at": r.try_get::<_, Option<f64>>("at_epoch")?,
                "contact_id": r.try_get::<_, Option<String>>("contact_id")?,
                "action": r.try_get::<_, String>("action")?,
                "error": r.try_get::<_, Option<String>>("error")?,
                "outcome": r.try_get::<_, String>("outcome")?,
            }))).collect::<Result<Vec<_>>>()?,
            "alerts": alerts.iter().map(|r| Ok(json!({
                "code": r.try_get::<_, String>("code")?,
                "level": r.try_get::<_, String>("level")?,
                "message": r.try_get::<_, String>("message")?,
                "message_en": r.try_get::<_, String>("message_en")?,
                "value": r.try_get::<_, Option<f64>>("value")?,
                "threshold": r.try_get::<_, Option<f64>>("threshold")?,
                "unit": r.try_get::<_, String>("unit")?,
            }))).collect::<Result<Vec<_>>>()?,
        }))
    })
    .await
}

async fn api_status(State(st): State<Arc<AppState>>) -> Response {
    match status_json(&st).await {
        Ok(v) => ([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "api/status failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": e.to_string() })),
            )
                .into_response()
        }
    }
}
