//! End-to-end harness: every test gets real parts.
//!
//! - [`Cluster`]: a throwaway PostgreSQL 15 cluster (via `scripts/pgcluster.sh`) with database `erp`,
//!   `CREATE EXTENSION erp_sync` and the reference schema `sql/middle_platform.sql` loaded.
//! - [`Sim`]: the ERP simulator process (`erp-sync sim`) on a free loopback port, with admin helpers.
//! - [`Sidecar`]: an `erp-sync run` process pointed at both.
//! - [`browser::Browser`]: headless Chromium over the DevTools protocol (the operator page test).
//!
//! The `erp-sync` binary is taken from `$ERP_SYNC_BIN`, else `target/debug/erp-sync` (the Makefile
//! builds it first). The extension must be installed in the system PostgreSQL 15 (`make install-ext`).

pub mod browser;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The 客户分类 id the sidecars under test are configured with: the first of the simulator's
/// default categories (`erp-sync sim --categories`).
pub const SIM_CATEGORY: &str = "11";

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ crate lives in the workspace root")
        .to_path_buf()
}

/// Path of the `erp-sync` binary under test.
pub fn erp_sync_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ERP_SYNC_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug").join("erp-sync")
}

/// A PostgreSQL client program (`pg_dump`, `pg_restore`, `psql`) of the server under test:
/// `$PGBIN/<name>` (as `scripts/pgcluster.sh`), else the system PostgreSQL 15.
pub fn pg_bin(name: &str) -> PathBuf {
    std::env::var_os("PGBIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
        .join(name)
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests on one machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// Polls `cond` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The login role the tests' sidecars use: a member of `erp_sync_worker` only (least privilege,
/// as production runs it; see pg_ext/sql/SECURITY.md).
pub const SIDECAR_ROLE: &str = "erp_sync_sidecar";

/// A throwaway PostgreSQL cluster, stopped (immediate) and removed on drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Cluster {
    /// initdb + start + database `erp` with the extension and the reference schema.
    pub fn start() -> Result<Self> {
        Cluster::start_version(None)
    }

    /// [`Cluster::start`] with the extension at `version` (a released version such as "0.1.0",
    /// installed by `make install-ext` from pg_ext/sql/released/; None: the default version).
    pub fn start_version(version: Option<&str>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("erp_sync_e2e").tempdir()?;
        let port = free_port();
        let c = Cluster { dir, port };
        c.script(&["start", &c.dir_str(), &port.to_string()])?;
        c.create_database("erp", version)?;
        // The sidecar's login: granted erp_sync_worker and nothing else (cluster-wide role).
        c.connect_db("postgres")?.batch_execute(&format!(
            "CREATE ROLE {SIDECAR_ROLE} LOGIN IN ROLE erp_sync_worker"
        ))?;
        Ok(c)
    }

    /// Connection URL of database `db` as the sidecar's least-privilege login [`SIDECAR_ROLE`]:
    /// what every sidecar of the tests uses unless a test says otherwise.
    pub fn worker_url(&self, db: &str) -> String {
        self.url_for(db, SIDECAR_ROLE)
    }

    /// A new database `db` with the extension (at `version`, see [`Cluster::start_version`]) and
    /// the reference schema `sql/middle_platform.sql` (its tables tracked).
    pub fn create_database(&self, db: &str, version: Option<&str>) -> Result<()> {
        let mut admin = self.connect_db("postgres")?;
        admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
        let mut client = self.connect_db(db)?;
        let create = match version {
            Some(v) => format!("CREATE EXTENSION erp_sync VERSION '{v}'"),
            None => "CREATE EXTENSION erp_sync".to_string(),
        };
        client.batch_execute(&create).with_context(|| {
            format!("{create} (is the extension installed? run `make install-ext`)")
        })?;
        let schema = std::fs::read_to_string(workspace_root().join("sql/middle_platform.sql"))?;
        client
            .batch_execute(&schema)
            .context("loading sql/middle_platform.sql")?;
        Ok(())
    }

    fn dir_str(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn script(&self, args: &[&str]) -> Result<()> {
        let out = Command::new(workspace_root().join("scripts/pgcluster.sh"))
            .args(args)
            .env("PG_FSYNC", "off")
            .output()?;
        if !out.status.success() {
            bail!(
                "pgcluster.sh {:?} failed: {}{}",
                args,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Connection URL for database `db` as the superuser.
    pub fn url_for(&self, db: &str, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Superuser URL of the `erp` database.
    pub fn url(&self) -> String {
        self.url_for("erp", "postgres")
    }

    pub fn connect_db(&self, db: &str) -> Result<postgres::Client> {
        Ok(postgres::Client::connect(
            &self.url_for(db, "postgres"),
            postgres::NoTls,
        )?)
    }

    /// A superuser client on the `erp` database.
    pub fn client(&self) -> Result<postgres::Client> {
        self.connect_db("erp")
    }

    /// Restarts the server; `mode` is `fast` or `immediate`.
    pub fn restart(&self, mode: &str) -> Result<()> {
        self.script(&["restart", &self.dir_str(), mode])
    }

    /// Runs the client program `name` ([`pg_bin`]: `pg_dump`, `pg_restore`, `psql`) against this
    /// cluster as the superuser (`-h 127.0.0.1 -p PORT -U postgres`, then `args`); returns its
    /// stdout, fails with its output on a non-zero exit.
    pub fn pg_tool(&self, name: &str, args: &[&str]) -> Result<String> {
        let port = self.port.to_string();
        let out = Command::new(pg_bin(name))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {name}"))?;
        if !out.status.success() {
            bail!(
                "{name} {args:?} exited with {:?}:\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// Server log, for diagnostics.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// One integer from a query (e.g. a count).
    pub fn count(&self, sql: &str) -> Result<i64> {
        let mut c = self.client()?;
        let row = c.query_one(sql, &[])?;
        Ok(row.try_get::<_, i64>(0)?)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Err(e) = self.script(&["stop", &self.dir_str(), "immediate"]) {
            eprintln!("stopping test cluster: {e}");
        }
    }
}

/// A child process killed on drop, with its output captured in a file for diagnostics.
pub struct Proc {
    child: Child,
    pub log_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Proc {
    pub fn spawn(mut cmd: Command, name: &str) -> Result<Self> {
        let log_dir = tempfile::Builder::new().prefix(name).tempdir()?;
        let log_path = log_dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {name} ({:?})", cmd.get_program()))?;
        Ok(Proc {
            child,
            log_path,
            _log_dir: log_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then wait up to `timeout` for exit; returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(st) = self.child.try_wait()? {
                return Ok(st.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("process did not exit within {timeout:?} after SIGTERM")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.is_running() {
            if let Err(e) = self.kill() {
                eprintln!("killing child {}: {e}", self.pid());
            }
        }
    }
}

/// The ERP simulator as a separate process.
pub struct Sim {
    pub proc: Proc,
    pub port: u16,
    http: reqwest::blocking::Client,
}

impl Sim {
    /// Starts `erp-sync sim --port P --user demo --password demo` plus `extra` arguments and waits
    /// until it answers.
    pub fn start(extra: &[&str]) -> Result<Self> {
        let port = free_port();
        let mut cmd = Command::new(erp_sync_bin());
        cmd.args([
            "sim",
            "--port",
            &port.to_string(),
            "--user",
            "demo",
            "--password",
            "demo",
        ]);
        cmd.args(extra);
        let proc = Proc::spawn(cmd, "sim")?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let sim = Sim { proc, port, http };
        if !wait_until(Duration::from_secs(15), || sim.get("/_sim/stats").is_ok()) {
            bail!("simulator did not come up: {}", sim.proc.output());
        }
        Ok(sim)
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// GET an admin (or any) path and parse JSON.
    pub fn get(&self, path: &str) -> Result<Value> {
        let resp = self
            .http
            .get(format!("{}{}", self.base_url(), path))
            .send()?;
        if !resp.status().is_success() {
            return Err(anyhow!("GET {path}: HTTP {}", resp.status()));
        }
        Ok(resp.json()?)
    }

    /// POST JSON to an admin path.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}{}", self.base_url(), path))
            .json(body)
            .send()?;
        if !resp.status().is_success() {
            return Err(anyhow!("POST {path}: HTTP {}", resp.status()));
        }
        let text = resp.text()?;
        Ok(if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }
}

/// An `erp-sync run` process.
pub struct Sidecar {
    pub proc: Proc,
}

impl Sidecar {
    /// Starts `erp-sync run` against `cluster` and `sim` with worker id `worker`; `env` adds or
    /// overrides `ERP_SYNC_*` settings (e.g. `("ERP_SYNC_ENGINE_POLL_INTERVAL_MS", "200")`).
    pub fn start(cluster: &Cluster, sim: &Sim, worker: &str, env: &[(&str, &str)]) -> Result<Self> {
        let mut cmd = Command::new(erp_sync_bin());
        cmd.arg("run")
            .env("ERP_SYNC_DATABASE_URL", cluster.worker_url("erp"))
            .env("ERP_SYNC_ERP_BASE_URL", sim.base_url())
            .env("ERP_SYNC_ERP_USERNAME", "demo")
            .env("ERP_SYNC_ERP_PASSWORD", "demo")
            .env("ERP_SYNC_ERP_CUSTOMER_CATEGORY", SIM_CATEGORY)
            .env("ERP_SYNC_ENGINE_WORKER_ID", worker)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(Sidecar {
            proc: Proc::spawn(cmd, worker)?,
        })
    }
}
