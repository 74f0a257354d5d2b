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
use sidecar::erp::{ErpClient, ListFilter};
use sidecar::{telemetry, Error};
use tokio::sync::watch;

#[derive(Parser)]
#[command(
    name = "erp-sync",
    version,
    about = "Sync the erp_sync outbox into Zhibang ERP"
)]
struct Cli {
    /// Config file (TOML). Default: ./erp-sync.toml when it exists. Every key can also be set as
    /// ERP_SYNC_<SECTION>_<KEY> in the environment.
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
    Sim(sidecar::sim::SimConfig),
    /// Test the ERP connection (log in, count customers), like the spec's 测试连接.
    Login,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig,
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
            match sidecar::sim::serve(sim_cfg).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("erp-sync sim: {e}");
                    exit_for(&e)
                }
            }
        }
        Cmd::Login => {
            let cfg = match load(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(e) = telemetry::init(&cfg.log) {
                eprintln!("erp-sync: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            login(&cfg).await
        }
        Cmd::Run { dry_run, once } => {
            let mut cfg = match load(cli.config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            cfg.engine.dry_run |= dry_run;
            if let Err(e) = telemetry::init(&cfg.log) {
                eprintln!("erp-sync: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            let shutdown = spawn_signal_handler();
            match engine::run(&cfg, RunOptions { once }, shutdown).await {
                Ok(s) => {
                    if once || cfg.engine.dry_run {
                        println!(
                            "done={} skipped={} dead={} retried={} released={} planned={}",
                            s.done, s.skipped, s.dead, s.retried, s.released, s.planned
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

async fn login(cfg: &Config) -> ExitCode {
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
        Ok(page) => {
            println!("客户数量: {}", page.page.recordcount);
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("customer list failed: {e}");
            ExitCode::from(EXIT_LOGIN)
        }
    }
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
