//! `erp-sync`: the command line. All behaviour lives in the library; this file only parses
//! arguments, loads the configuration, installs logging and signal handling, and maps results to
//! exit codes:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success (including a graceful shutdown on SIGTERM/SIGINT) |
//! | 1 | runtime failure |
//! | 2 | usage or configuration error |
//! | 3 | ERP login / connection test failed |
//! | 130 | a second SIGINT/SIGTERM forced an immediate exit |

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sidecar::config::Config;
use sidecar::engine::{self, RunOptions};
use sidecar::erp::{CustomerKind, ErpClient, ListFilter};
use sidecar::{telemetry, Error};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "erp-sync",
    version,
    about = "Sync the erp_sync outbox into Zhibang ERP"
)]
struct Cli {
    /// Config file (TOML). Default: ./erp-sync.toml when it exists. Every key can also be set as
    /// `ERP_SYNC_<SECTION>_<KEY>` in the environment.
    #[arg(long, global = true, env = "ERP_SYNC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drain the outbox into the ERP until SIGTERM/SIGINT.
    Run {
        /// Log and record (sync_log outcome dry_run) what would be sent; no ERP call, outbox untouched.
        #[arg(long)]
        dry_run: bool,
        /// Exit once no outbox row is pending or running (retries are waited for).
        #[arg(long)]
        once: bool,
    },
    /// Serve the ERP simulator.
    Sim(Box<sidecar::sim::SimConfig>),
    /// Test the ERP connection (log in, count customers), like the spec's 测试连接.
    Login {
        /// Also print the fields of the ERP's customer form (ids, captions, option lists), to find
        /// the 客户分类 id for erp.customer_category.
        #[arg(long)]
        fields: bool,
    },
    /// Validate the configuration (including the values the ERP requires for every write) and
    /// print it with secrets redacted.
    CheckConfig,
    /// Pull ERP customers into erp_sync.erp_customers now (what the daily schedule does).
    Pull {
        /// list.asp page size (default: schedule.pull_page_size).
        #[arg(long)]
        page_size: Option<u32>,
    },
    /// Pull, then reconcile the platform with the ERP now (what the weekly schedule does).
    Reconcile {
        /// Reconcile against the rows pulled before, without pulling first.
        #[arg(long)]
        no_pull: bool,
    },
}

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_LOGIN: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("erp-sync: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    rt.block_on(real_main(cli))
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("erp-sync: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// [`load`], then the logger from the loaded `[log]` section.
fn load_with_logging(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    let cfg = load(path)?;
    telemetry::init(&cfg.log).map_err(|e| {
        eprintln!("erp-sync: {e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    Ok(cfg)
}

fn exit_for(e: &Error) -> ExitCode {
    match e {
        Error::Config(_) => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::from(EXIT_RUNTIME),
    }
}

async fn real_main(cli: Cli) -> ExitCode {
    match cli.cmd {
        Cmd::CheckConfig => {
            let cfg = match load(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(e) = cfg.erp.validate_for_writes() {
                eprintln!("erp-sync: {e}");
                return exit_for(&e);
            }
            match cfg.redacted_toml() {
                Ok(text) => {
                    println!("# effective configuration (secrets redacted)\n{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("erp-sync: {e}");
                    exit_for(&e)
                }
            }
        }
        Cmd::Sim(sim_cfg) => {
            let log = sidecar::config::LogConfig::default();
            if let Err(e) = telemetry::init(&log) {
                eprintln!("erp-sync: {e}");
            }
            match sidecar::sim::serve(*sim_cfg).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("erp-sync sim: {e}");
                    exit_for(&e)
                }
            }
        }
        Cmd::Pull { page_size } => {
            let mut cfg = match load_with_logging(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Some(n) = page_size {
                cfg.schedule.pull_page_size = n.max(1);
            }
            ops_command(&cfg, false, true).await
        }
        Cmd::Reconcile { no_pull } => {
            let cfg = match load_with_logging(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            ops_command(&cfg, true, !no_pull).await
        }
        Cmd::Login { fields } => {
            let cfg = match load_with_logging(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            login(&cfg, fields).await
        }
        Cmd::Run { dry_run, once } => {
            let mut cfg = match load_with_logging(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            cfg.engine.dry_run |= dry_run;
            if !cfg.engine.dry_run {
                if let Err(e) = cfg.erp.validate_for_writes() {
                    tracing::error!(error = %e, "erp-sync run: configuration incomplete");
                    eprintln!("erp-sync: {e}");
                    return exit_for(&e);
                }
            }
            let shutdown = spawn_signal_handler();
            // /healthz, /metrics, status page; alerts, retention and schedules (see sidecar::ops).
            if cfg.engine.worker_id.is_empty() {
                cfg.engine.worker_id = cfg.worker_id(); // one id for the engine and the ops tasks
            }
            let monitoring = sidecar::ops::http::spawn_monitoring(&cfg, &cfg.engine.worker_id);
            // Alert webhook, retention, scheduled pull / sweep / reconciliation: one loop.
            let periodic = sidecar::ops::spawn_periodic(
                &cfg,
                &cfg.engine.worker_id,
                shutdown.clone(),
                once || cfg.engine.dry_run,
            );
            let result = engine::run(&cfg, RunOptions { once }, shutdown).await;
            monitoring.shutdown().await;
            periodic.stop().await;
            match result {
                Ok(s) => {
                    if once || cfg.engine.dry_run {
                        println!(
                            "done={} skipped={} dead={} in_doubt={} retried={} released={} planned={}",
                            s.done, s.skipped, s.dead, s.in_doubt, s.retried, s.released, s.planned
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!(error = %e, "erp-sync run failed");
                    eprintln!("erp-sync: {e}");
                    exit_for(&e)
                }
            }
        }
    }
}

async fn login(cfg: &Config, fields: bool) -> ExitCode {
    let client = match ErpClient::new(cfg.erp.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("erp-sync: {e}");
            return exit_for(&e);
        }
    };
    println!("ERP: {} as {}", cfg.erp.base_url, cfg.erp.username);
    if let Err(e) = client.login().await {
        println!("登录状态: 失败 — {e}");
        return ExitCode::from(EXIT_LOGIN);
    }
    println!("登录状态: 0 (ok)");
    // The session is a credential: only its presence and generation are shown.
    println!(
        "Session: ******** (generation {})",
        client.session_generation()
    );
    let filter = ListFilter {
        pagesize: 1,
        pageindex: 1,
        ..ListFilter::default()
    };
    match client.list_customers(&filter).await {
        Ok(page) => println!("客户数量: {}", page.page.recordcount),
        Err(e) => {
            println!("customer list failed: {e}");
            return ExitCode::from(EXIT_LOGIN);
        }
    }
    if fields {
        for kind in [CustomerKind::Company, CustomerKind::Personal] {
            match client.customer_form(kind).await {
                Ok(form) => print_form(kind, &form),
                Err(e) => {
                    println!("customer form (intsort={}) failed: {e}", kind.intsort());
                    return ExitCode::from(EXIT_LOGIN);
                }
            }
        }
        println!(
            "\nSet erp.customer_category (env ERP_SYNC_ERP_CUSTOMER_CATEGORY) to the value of the 客户分类 (sort1) option to use."
        );
    }
    ExitCode::SUCCESS
}

/// The customer form as a table: id, caption, required, pre-filled value, options.
fn print_form(kind: CustomerKind, form: &[sidecar::erp::FormField]) {
    let label = match kind {
        CustomerKind::Company => "单位客户",
        CustomerKind::Personal => "个人客户",
    };
    println!(
        "\n客户表单 custom/add.asp?intsort={} ({label}): {} fields",
        kind.intsort(),
        form.len()
    );
    println!(
        "{:<16} {:<12} {:<4} value / options",
        "id", "caption", "req"
    );
    for f in form {
        let mut rest = f.value.clone();
        if !f.options.is_empty() {
            let opts: Vec<String> = f.options.iter().map(|(v, t)| format!("{v}={t}")).collect();
            if !rest.is_empty() {
                rest.push(' ');
            }
            rest.push_str(&format!("[{}]", opts.join(", ")));
        }
        println!(
            "{:<16} {:<12} {:<4} {rest}",
            f.id,
            f.caption,
            if f.required { "是" } else { "" }
        );
    }
}

/// `erp-sync pull` / `erp-sync reconcile`: a progress bar on a terminal (stderr), a summary line
/// at the end (stdout).
async fn ops_command(cfg: &Config, reconcile: bool, pull: bool) -> ExitCode {
    use sidecar::ops::{pull as p, reconcile as r};
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} pages")
    {
        bar.set_style(style);
    }
    let (pool, erp) = match (p::ops_pool(&cfg.database), ErpClient::new(cfg.erp.clone())) {
        (Ok(pool), Ok(erp)) => (pool, erp),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("erp-sync: {e}");
            return exit_for(&e);
        }
    };
    if let Err(e) = sidecar::db::check_extension(&pool).await {
        eprintln!("erp-sync: {e}");
        return exit_for(&e);
    }
    // The running sidecars' session: a login of our own would end theirs on a single-session ERP.
    erp.share_session(std::sync::Arc::new(
        sidecar::db::erp_session::PgSessionStore::new(pool.clone()),
    ));
    let shutdown = spawn_signal_handler();
    if pull {
        bar.set_message("pulling ERP customers");
        let progress = {
            let bar = bar.clone();
            move |done: u32, total: u32| {
                bar.set_length(u64::from(total));
                bar.set_position(u64::from(done));
            }
        };
        let opts = p::PullOptions::from_config(&cfg.schedule);
        match p::pull(&pool, &erp, &opts, &progress, &shutdown).await {
            Ok(s) => {
                bar.finish_and_clear();
                println!("pull: {s}");
            }
            Err(e) => {
                bar.abandon();
                tracing::error!(error = %e, "pull failed");
                eprintln!("erp-sync pull: {e}");
                return exit_for(&e);
            }
        }
    }
    if reconcile {
        let spinner = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new_spinner()
        } else {
            indicatif::ProgressBar::hidden()
        };
        let phase = {
            let spinner = spinner.clone();
            move |m: &str| spinner.set_message(format!("reconcile: {m}"))
        };
        match r::reconcile(&pool, "manual", &cfg.worker_id(), &phase).await {
            Ok(s) => {
                spinner.finish_and_clear();
                println!("reconcile: {s}");
            }
            Err(e) => {
                spinner.abandon();
                tracing::error!(error = %e, "reconcile failed");
                eprintln!("erp-sync reconcile: {e}");
                return exit_for(&e);
            }
        }
    }
    ExitCode::SUCCESS
}

/// First SIGTERM/SIGINT: graceful shutdown (the watch turns true). Second: exit 130 at once.
fn spawn_signal_handler() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot install SIGTERM handler");
                    return;
                }
            };
        let mut count = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                r = tokio::signal::ctrl_c() => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "cannot listen for SIGINT");
                        return;
                    }
                }
            }
            count += 1;
            if count == 1 {
                tracing::info!("shutdown requested: finishing in-flight rows");
                if tx.send(true).is_err() {
                    return;
                }
            } else {
                eprintln!("erp-sync: second signal, exiting now");
                std::process::exit(130);
            }
        }
    });
    rx
}
