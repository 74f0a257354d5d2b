//! The pool (deadpool-postgres over tokio-postgres, password from the config or its file), the
//! warm-up of a new connection, the extension version check at start-up, the NOTIFY channel.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};

pub fn pool_err(e: impl std::fmt::Display) -> Error {
    Error::Pool(e.to_string())
}

/// Parse the configured URL / key=value string.
pub fn pg_config(cfg: &DatabaseConfig) -> Result<tokio_postgres::Config> {
    let mut pg = tokio_postgres::Config::from_str(&cfg.url)
        .map_err(|e| Error::Config(format!("database.url: {e}")))?;
    pg.connect_timeout(Duration::from_millis(cfg.connect_timeout_ms));
    // database.password_file wins over a password in the URL
    if let Some(pw) = &cfg.password {
        pg.password(pw.as_bytes());
    }
    if pg.get_application_name().is_none() {
        pg.application_name("erp-sync");
    }
    // Every statement is prepared once per connection and run thousands of times with different
    // ids. Left to itself the server re-plans the write-back for each call (its custom plans prune
    // the branches a call does not use, so they always look cheaper than the generic one): ~1 ms
    // of planning per row. One generic plan per statement instead.
    let opts = pg.get_options().unwrap_or_default().to_string();
    if !opts.contains("plan_cache_mode") {
        pg.options(format!("{opts} -c plan_cache_mode=force_generic_plan").trim());
    }
    Ok(pg)
}

/// The first payload read of a connection loads the extension's configuration and plans its
/// lookups (~10 ms). Done here, so that a connection's first claim does not pay for it. (Inside a
/// claim, whose transaction turns sequential and bitmap scans off (see [`claim`]), the extension
/// reloads with those scans back on; before it did, the same first read took 58–350 ms.) A
/// failure (say, the extension is not installed yet) only costs the warm-up.
async fn warm_up(client: &tokio_postgres::Client) {
    // what the payload functions read: settings (admission), tracked tables, their lookups
    const WARM_UP: &str = "SELECT erp_sync.setting('admission.min_score'), \
                           erp_sync.contact_payload(0), erp_sync.signal_payload(0)";
    if let Err(e) = client.batch_execute(WARM_UP).await {
        tracing::debug!(error = %e, "connection warm-up failed");
    }
}

pub fn make_pool(cfg: &DatabaseConfig) -> Result<Pool> {
    let pg = pg_config(cfg)?;
    let mgr = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let t = Duration::from_millis(cfg.connect_timeout_ms);
    Pool::builder(mgr)
        .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
            Box::pin(async move {
                warm_up(client).await;
                Ok(())
            })
        }))
        .max_size(cfg.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(t))
        .create_timeout(Some(t))
        .recycle_timeout(Some(t))
        .build()
        .map_err(|e| Error::Config(format!("database pool: {e}")))
}

/// The version of the extension this sidecar speaks: the workspace version (both crates are
/// released together, every schema change ships as an upgrade script).
pub const EXTENSION_VERSION: &str = env!("CARGO_PKG_VERSION");

/// At start-up: the database's `erp_sync` extension is the version this sidecar speaks. A missing
/// or other version is a `Config` error naming the statement that fixes it; a database that cannot
/// be reached is the caller's to wait for.
pub async fn check_extension(pool: &Pool) -> Result<()> {
    let c = pool.get().await.map_err(pool_err)?;
    let row = c
        .query_opt(
            "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'erp_sync'",
            &[],
        )
        .await?;
    let Some(row) = row else {
        return Err(Error::Config(
            "the extension erp_sync is not installed in this database: CREATE EXTENSION erp_sync (as a superuser), then track the platform's tables".into(),
        ));
    };
    let found: String = row.try_get(0)?;
    if found != EXTENSION_VERSION {
        return Err(Error::Config(format!(
            "the database has the extension erp_sync {found}, this sidecar speaks {EXTENSION_VERSION}: \
             install erp_sync {EXTENSION_VERSION} on the server, then ALTER EXTENSION erp_sync UPDATE TO '{EXTENSION_VERSION}' \
             (or run the sidecar of version {found})"
        )));
    }
    Ok(())
}

/// The NOTIFY channel of the capture trigger: the extension's `notify.channel` setting.
pub async fn notify_channel(c: &tokio_postgres::Client) -> Result<String> {
    let row = c
        .query_one(
            "SELECT coalesce((SELECT effective FROM erp_sync.settings_effective WHERE key = 'notify.channel'), 'erp_sync')",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}
