//! Protocol-faithful Zhibang ERP simulator with fault injection (`erp-sync sim`).
//!
//! Serves the endpoints of issue 3 (see [`routes`], [`strict`]) over HTTP (axum), keeps
//! customers, persons, follow-ups and assignments in memory (optional JSON snapshot, loaded at start
//! when present and written on exit), and exposes admin endpoints under `/_sim/` (see [`admin`]):
//!
//! | method | path | |
//! |---|---|---|
//! | GET/POST | `/_sim/faults` | read / merge-patch [`faults::Faults`]; `{"expire_sessions_now": true}` drops every session |
//! | GET/DELETE | `/_sim/requests` | received requests (`?limit=N&path=substr`), newest last, bounded ring buffer |
//! | GET/POST | `/_sim/customers` | stored customers / seed customers (array of `{intsort, fields, date1?, catename?}`) |
//! | GET | `/_sim/persons`, `/_sim/followups`, `/_sim/assignments` | stored records |
//! | GET | `/_sim/stats` | request counts by endpoint, logins, injected faults |
//! | POST | `/_sim/reset` | drop records, sessions, log, stats, lockouts; faults back to start-up values |
//!
//! Two modes: **vendor-strict** (default; [`strict`], rules in [`rules`], vocabulary in [`vendor`],
//! written from the vendor's API reference and sharing nothing with `crate::erp`) and `--lenient`
//! (the older spec-shaped simulator, kept for old tests).
//!
//! | | strict (default) | `--lenient` |
//! |---|---|---|
//! | envelope | `{"header":{"status":0\|"0",…},"body":…}`, always `text/html` | same, `text/html` every 4th reply |
//! | write reply | MessageClass `{title:"",text,url:"",wait:"0",target:"",uitype:""}`, never `result` | `text` + `result` (success alternates), `value` = ord |
//! | allocation | `bill.value` = ord as string, `bill.groups` = the customer form (`must`, `source` options), khid pre-filled `KH<yyyymmdd><nnnn>` | `bill.value` number, no groups |
//! | customer save | `name`, `sort1` (one of `--categories`), `person_name` required for intsort 1 and 2, create and update; vendor length limits; unknown ids ignored; create also adds the first contact person | `name`; `person_name` on create of intsort 1; khid defaults to `KH<ord>` |
//! | detail | form groups + 系统信息, every value a string, money `1,234.00` | `[{id,text,value}]` |
//! | list | `name khid mobile phone address pym intro` fuzzy, `ly jz area trade telsort` multi-select, `telord`, `searchKey`; pagesize 0 → 20, capped at `--max-page-size`; `ord` third column; string cells; rows as arrays / `{ord,value}` objects / a single object | khid, mobile exact; cap 1000; `ord` first; positional rows |
//! | person | `company` must exist (`关联客户不存在`), `person_name` required | `name` required |
//! | order / reply | `member1` ∈ {0,1}, `member2` when 0; follow-up `intro`, `sort` ∈ 481–484, `plantype` ∈ 0–2 with the plan fields | stored as received |
//! | webapi add/edit | `sort2` (= stored intsort on edit), `name`, `sort` (category), `sort1` (`--follow-levels`), `person_name` | edit only, presence checks |
//! | delete | `custom/list.asp?__msgid=delete` (`id`/`ord`) and `custom/delete.asp` (`ord`), cmdkey `delete` | `custom/add.asp` cmdkey `delete` |
//!
//! Faults (start-up flags and `POST /_sim/faults`; `*_next` counters are deterministic; all respect
//! `paths`): `error_*` (HTTP 5xx), `hang_*`, `malformed_*`, `server_exception_*`, `not_persisted_*`,
//! `expire_next`, `refuse` rules, and new `status11_*` (`{"header":{"status":"11","message":"数据库连接超时"}}`,
//! no body, nothing processed), `lost_reply_*` (a write is stored, then the reply is lost: HTTP 502 and a
//! dropped connection alternate), `control_chars_*` (raw TAB and 0x01 inside a JSON string), `bom_*`
//! (UTF-8 BOM first). Flags added with strict mode: `--lenient`, `--single-session` (a login ends the
//! user's earlier sessions, like `UniqueLogin`), `--categories`, `--follow-levels`, `--max-page-size`,
//! `--lost-reply-rate`, `--status11-rate`, `--control-chars-rate`, `--bom-rate`.
//!
//! In both modes `header.status` alternates between `0` and `"0"`; list default order is newest
//! first, ties by ord. An account is locked (captcha message) once it has more than `lockout_after`
//! consecutive failed logins, until `/_sim/reset`.

pub mod admin;
pub mod app;
pub mod faults;
pub mod request;
pub mod routes;
pub mod rules;
pub mod state;
pub mod strict;
pub mod vendor;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{info, warn};

pub use app::Sim;
pub use faults::{Faults, RefusalRule};

use crate::error::{Error, Result};

/// Start-up configuration of the simulator (a clap `Args`, flattened into `erp-sync sim`).
#[derive(Clone, clap::Args, serde::Serialize)]
pub struct SimConfig {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 46088)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The one account's user name.
    #[arg(long, default_value = "demo")]
    pub user: String,
    /// The one account's password.
    #[serde(skip)]
    #[arg(long, default_value = "demo")]
    pub password: String,
    /// Session lifetime (ms).
    #[arg(long, default_value_t = 7_200_000)]
    pub session_ttl_ms: u64,
    /// Added latency per request (ms).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Uniform extra latency in [0, jitter] (ms).
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// Probability of an HTTP 503 reply.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Probability of a request hanging (60 s).
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,
    /// Probability of a truncated JSON reply.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Probability of a 服务器异常 reply.
    #[arg(long, default_value_t = 0.0)]
    pub server_exception_rate: f64,
    /// Probability of a customer save acknowledged but not stored.
    #[arg(long, default_value_t = 0.0)]
    pub not_persisted_rate: f64,
    /// Refuse customers whose mobile another customer already has (`--duplicate-mobile-rule false` to disable).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub duplicate_mobile_rule: bool,
    /// Lock the account after more than this many consecutive failed logins.
    #[arg(long, default_value_t = 3)]
    pub lockout_after: u32,
    /// JSON snapshot: loaded at start if it exists, written on exit.
    #[arg(long)]
    pub snapshot: Option<PathBuf>,
    /// Seed of the fault dice (random when absent).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Capacity of the received-requests ring buffer (0 = keep none).
    #[arg(long, default_value_t = 10_000)]
    pub request_log: usize,
    /// First ord handed out.
    #[arg(long, default_value_t = 10_001)]
    pub start_ord: i64,
    /// Answer as the older spec-shaped simulator (`result` flags, exact khid/mobile filters, numeric
    /// cells); default is vendor-strict.
    #[arg(long)]
    pub lenient: bool,
    /// A login ends the user's earlier sessions (the real server's `UniqueLogin`).
    #[arg(long)]
    pub single_session: bool,
    /// 客户分类 ids of the customer form (`sort1`; webapi `sort`): `id:text,…`.
    #[arg(long, default_value = DEFAULT_CATEGORIES)]
    pub categories: String,
    /// 跟进程度 ids of webapi `sort1`: `id:text,…`.
    #[arg(long, default_value = DEFAULT_FOLLOW_LEVELS)]
    pub follow_levels: String,
    /// Largest list page served (strict mode; larger `pagesize` is capped).
    #[arg(long, default_value_t = 100)]
    pub max_page_size: u64,
    /// Probability of a write stored but its reply lost (502 / dropped connection).
    #[arg(long, default_value_t = 0.0)]
    pub lost_reply_rate: f64,
    /// Probability of a `status 11` (数据库连接超时) reply without body.
    #[arg(long, default_value_t = 0.0)]
    pub status11_rate: f64,
    /// Probability of raw control characters inside a reply's JSON strings.
    #[arg(long, default_value_t = 0.0)]
    pub control_chars_rate: f64,
    /// Probability of a reply starting with a UTF-8 BOM.
    #[arg(long, default_value_t = 0.0)]
    pub bom_rate: f64,
}

/// Default `--categories`.
pub const DEFAULT_CATEGORIES: &str = "11:微信客户,12:网站客户,13:代理商";
/// Default `--follow-levels`.
pub const DEFAULT_FOLLOW_LEVELS: &str = "1:初步接触,2:意向明确,3:已成交";

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(m) = &mut v {
            m.insert(
                "password".into(),
                serde_json::Value::String("<redacted>".into()),
            );
        }
        write!(f, "SimConfig {v}")
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            port: 46088,
            host: "127.0.0.1".into(),
            user: "demo".into(),
            password: "demo".into(),
            session_ttl_ms: 7_200_000,
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            hang_rate: 0.0,
            malformed_rate: 0.0,
            server_exception_rate: 0.0,
            not_persisted_rate: 0.0,
            duplicate_mobile_rule: true,
            lockout_after: 3,
            snapshot: None,
            seed: None,
            request_log: 10_000,
            start_ord: 10_001,
            lenient: false,
            single_session: false,
            categories: DEFAULT_CATEGORIES.into(),
            follow_levels: DEFAULT_FOLLOW_LEVELS.into(),
            max_page_size: 100,
            lost_reply_rate: 0.0,
            status11_rate: 0.0,
            control_chars_rate: 0.0,
            bom_rate: 0.0,
        }
    }
}

/// The axum router of a simulator.
pub fn router(sim: Arc<Sim>) -> axum::Router {
    routes::router(sim.clone()).merge(admin::router(sim))
}

/// Serve until SIGINT/SIGTERM (what `erp-sync sim` runs).
pub async fn serve(cfg: SimConfig) -> Result<()> {
    serve_with_shutdown(cfg, shutdown_signal()).await
}

/// Serve until `shutdown` completes; writes the snapshot (if configured) afterwards.
pub async fn serve_with_shutdown(
    cfg: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port)).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim::new(cfg)?);
    info!(%addr, user = %sim.cfg().user, "erp simulator listening");
    run(listener, sim, shutdown).await
}

async fn run(
    listener: tokio::net::TcpListener,
    sim: Arc<Sim>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = router(sim.clone());
    let stopper = sim.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopper.begin_shutdown();
        })
        .await?;
    sim.write_snapshot()?;
    Ok(())
}

/// A simulator running in the background (tests, benches).
pub struct SimHandle {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl SimHandle {
    /// `http://addr`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving and wait (writes the snapshot if configured).
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            if s.send(()).is_err() {
                warn!("simulator already stopped");
            }
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(Error::Io(std::io::Error::other(e.to_string()))),
        }
    }
}

/// Start a simulator on `cfg.host:cfg.port` (use port 0 in tests) in a background task.
pub async fn spawn(cfg: SimConfig) -> Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port)).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim::new(cfg)?);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, sim.clone(), async move {
        // A dropped sender also stops the server.
        if rx.await.is_err() {
            tracing::debug!("simulator handle dropped; stopping");
        }
    }));
    Ok(SimHandle {
        addr,
        sim,
        stop: Some(tx),
        task,
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    info!("erp simulator shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimConfig,
    }

    #[test]
    fn cli_defaults_and_flags() -> std::result::Result<(), clap::Error> {
        let c = Cli::try_parse_from(["sim"])?;
        assert_eq!(
            (c.sim.port, c.sim.user.as_str(), c.sim.password.as_str()),
            (46088, "demo", "demo")
        );
        assert!(c.sim.duplicate_mobile_rule);
        assert_eq!(c.sim.lockout_after, 3);
        let c = Cli::try_parse_from([
            "sim",
            "--port",
            "9",
            "--user",
            "u",
            "--password",
            "p",
            "--duplicate-mobile-rule",
            "false",
            "--error-rate",
            "0.5",
        ])?;
        assert_eq!((c.sim.port, c.sim.user.as_str()), (9, "u"));
        assert!(!c.sim.duplicate_mobile_rule);
        assert_eq!(c.sim.error_rate, 0.5);
        assert!(!format!("{:?}", c.sim).contains("\"p\""));
        assert!(!c.sim.lenient && !c.sim.single_session);
        let c = Cli::try_parse_from([
            "sim",
            "--lenient",
            "--single-session",
            "--max-page-size",
            "50",
            "--lost-reply-rate",
            "0.1",
            "--status11-rate",
            "0.2",
            "--control-chars-rate",
            "0.3",
            "--bom-rate",
            "0.4",
            "--categories",
            "1:a",
        ])?;
        assert!(c.sim.lenient && c.sim.single_session);
        assert_eq!(
            (
                c.sim.max_page_size,
                c.sim.lost_reply_rate,
                c.sim.status11_rate
            ),
            (50, 0.1, 0.2)
        );
        assert_eq!((c.sim.control_chars_rate, c.sim.bom_rate), (0.3, 0.4));
        assert_eq!(c.sim.categories, "1:a");
        let d = SimConfig::default();
        let c = Cli::try_parse_from(["sim"])?;
        assert_eq!(
            (c.sim.categories, c.sim.follow_levels, c.sim.max_page_size),
            (d.categories, d.follow_levels, d.max_page_size)
        );
        Ok(())
    }
}
