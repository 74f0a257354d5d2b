//! The one configuration struct of `erp-sync`.
//!
//! Sources, later wins:
//! 1. built-in defaults (every key has one, so the daemon runs with no file at all);
//! 2. the TOML file given by `--config` (default `erp-sync.toml` in the working directory, if present);
//! 3. the environment: every key is `ERP_SYNC_<SECTION>_<KEY>`, e.g. `ERP_SYNC_DATABASE_URL`,
//!    `ERP_SYNC_ERP_BASE_URL`, `ERP_SYNC_ENGINE_CONCURRENCY`. An `ERP_SYNC_*` variable that names no
//!    key is an error (a typo must not be silently ignored).
//!
//! Secrets: `erp.password` may instead come from the file named by `erp.password_file`
//! (`ERP_SYNC_ERP_PASSWORD_FILE`), and `database.password_file` likewise fills in the database
//! password. [`Config::redacted_toml`] prints the effective configuration with secrets masked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod layers;
pub mod schedule;
mod secrets;
mod sections;

use crate::erp::ErpConfig;
use crate::error::{Error, Result};
use layers::{apply_override, env_overrides, merge, take_erp_password_file};
pub use schedule::ScheduleConfig;
use secrets::redact_tree;
pub use secrets::{is_secret_key, read_secret, redact_url};
pub use sections::{
    AlertsConfig, DatabaseConfig, EngineConfig, HttpConfig, InDoubtFollowups, LogConfig, LogFormat,
    RetentionConfig,
};

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "ERP_SYNC_";
/// Config file read when `--config` is not given (only if it exists).
pub const DEFAULT_CONFIG_FILE: &str = "erp-sync.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub erp: ErpConfig,
    pub engine: EngineConfig,
    pub log: LogConfig,
    /// `/healthz`, `/metrics`, status page (`ops::http`).
    pub http: HttpConfig,
    /// `erp_sync.alerts` → webhook (`ops::alerts`).
    pub alerts: AlertsConfig,
    /// Periodic `erp_sync.cleanup()` (`ops::retention`).
    pub retention: RetentionConfig,
    /// Scheduled ERP pull, queue sweep and reconciliation (`ops::schedule`).
    pub schedule: ScheduleConfig,
    /// `erp.password_file`: file holding the ERP password (read by [`Config::load`], overrides
    /// `erp.password`). Kept here because the `[erp]` section belongs to the ERP client's struct.
    #[serde(skip)]
    pub erp_password_file: String,
}

impl Config {
    /// Defaults, then the file (explicit path must exist; the default path is optional), then the
    /// process environment.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let (file_text, file_name) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    Error::Config(format!("cannot read config file {}: {e}", p.display()))
                })?;
                (Some(text), p.to_path_buf())
            }
            None => {
                let p = PathBuf::from(DEFAULT_CONFIG_FILE);
                match std::fs::read_to_string(&p) {
                    Ok(text) => (Some(text), p),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, p),
                    Err(e) => {
                        return Err(Error::Config(format!("cannot read {}: {e}", p.display())))
                    }
                }
            }
        };
        let mut cfg =
            Config::from_sources(file_text.as_deref(), &file_name.display().to_string(), &env)?;
        cfg.resolve_secret_files()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Pure part of [`Config::load`]: layer a TOML text and `(name, value)` environment pairs over
    /// the defaults. Secret files are not read here.
    pub fn from_sources(
        file_text: Option<&str>,
        file_name: &str,
        env: &[(String, String)],
    ) -> Result<Config> {
        let tree = Config::layered_tree(file_text, file_name, env)?;
        let (tree, pw_file) = take_erp_password_file(tree)?;
        let mut cfg: Config = tree
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.to_string()))?;
        cfg.erp_password_file = pw_file;
        Ok(cfg)
    }

    /// Defaults + file + environment as one TOML tree (validated by deserialising it).
    fn layered_tree(
        file_text: Option<&str>,
        file_name: &str,
        env: &[(String, String)],
    ) -> Result<toml::Value> {
        let mut tree = toml::Value::try_from(Config::default())
            .map_err(|e| Error::Config(format!("cannot serialise defaults: {e}")))?;
        if let Some(text) = file_text {
            let file: toml::Value =
                toml::from_str(text).map_err(|e| Error::Config(format!("{file_name}: {e}")))?;
            // Validate the file alone first so its errors name the file.
            let (checked, _) = take_erp_password_file(file.clone())?;
            toml::Value::try_into::<Config>(checked)
                .map_err(|e| Error::Config(format!("{file_name}: {e}")))?;
            merge(&mut tree, file);
        }
        let overrides = env_overrides(env)?;
        if overrides.is_empty() {
            return Ok(tree);
        }
        // First try: values keep the type of the key they replace (absent keys, e.g. unset options,
        // are taken as strings). Second try for absent keys: a typed scalar.
        let mut first = tree.clone();
        let mut absent = Vec::new();
        for ov in &overrides {
            if !apply_override(&mut first, ov, false)? {
                absent.push(ov);
            }
        }
        let check = |t: &toml::Value| -> std::result::Result<(), String> {
            let (t, _) = take_erp_password_file(t.clone()).map_err(|e| e.to_string())?;
            t.try_into::<Config>()
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        match check(&first) {
            Ok(()) => Ok(first),
            Err(e) if absent.is_empty() => Err(Error::Config(format!("environment: {e}"))),
            Err(e) => {
                let mut second = tree;
                for ov in &overrides {
                    apply_override(&mut second, ov, true)?;
                }
                check(&second).map_err(|_| Error::Config(format!("environment: {e}")))?;
                Ok(second)
            }
        }
    }

    fn resolve_secret_files(&mut self) -> Result<()> {
        if !self.database.password_file.is_empty() {
            self.database.password = Some(read_secret(&self.database.password_file)?);
        }
        if !self.erp_password_file.is_empty() {
            self.erp.password = read_secret(&self.erp_password_file)?;
        }
        if !self.http.admin_token_file.is_empty() {
            self.http.admin_token = read_secret(&self.http.admin_token_file)?;
        }
        Ok(())
    }

    /// Sanity checks that serde cannot express.
    pub fn validate(&self) -> Result<()> {
        let e = &self.engine;
        let bad = |m: &str| Err(Error::Config(m.to_string()));
        if self.database.url.trim().is_empty() {
            return bad("database.url is empty");
        }
        let token = self.http.admin_token.trim();
        if !token.is_empty() && token.chars().count() < 16 {
            return bad("http.admin_token must be at least 16 characters (or empty: no actions)");
        }
        if self.database.pool_size == 0 {
            return bad("database.pool_size must be > 0");
        }
        if e.concurrency == 0 {
            return bad("engine.concurrency must be > 0");
        }
        if e.batch_size <= 0 || e.chain_max <= 0 {
            return bad("engine.batch_size and engine.chain_max must be > 0");
        }
        if e.max_attempts <= 0 {
            return bad("engine.max_attempts must be > 0");
        }
        if e.lease_ms < 1_000 {
            return bad("engine.lease_ms must be >= 1000");
        }
        if e.heartbeat_ms == 0 || e.heartbeat_ms * 2 > e.lease_ms {
            return bad("engine.heartbeat_ms must be > 0 and at most half of engine.lease_ms");
        }
        if e.poll_interval_ms == 0 {
            return bad("engine.poll_interval_ms must be > 0");
        }
        if e.backoff_base_ms == 0 || e.backoff_max_ms < e.backoff_base_ms {
            return bad("engine.backoff_base_ms must be > 0 and <= engine.backoff_max_ms");
        }
        if self.http.listen_addr != "off"
            && self
                .http
                .listen_addr
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return bad("http.listen_addr must be host:port (an IP address) or \"off\"");
        }
        if self.alerts.check_interval_ms == 0 || self.alerts.webhook_timeout_ms == 0 {
            return bad("alerts.check_interval_ms and alerts.webhook_timeout_ms must be > 0");
        }
        if self.retention.batch_size <= 0 {
            return bad("retention.batch_size must be > 0");
        }
        schedule::validate(&self.schedule)?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|err| Error::Config(format!("log.level: {err}")))?;
        Ok(())
    }

    /// The effective configuration as TOML with every secret masked (for `check-config`).
    pub fn redacted_toml(&self) -> Result<String> {
        let mut tree = toml::Value::try_from(self).map_err(|e| Error::Config(e.to_string()))?;
        if !self.erp_password_file.is_empty() {
            if let Some(t) = tree.get_mut("erp").and_then(toml::Value::as_table_mut) {
                t.insert(
                    "password_file".into(),
                    toml::Value::String(self.erp_password_file.clone()),
                );
            }
        }
        redact_tree(&mut tree, None);
        toml::to_string_pretty(&tree).map_err(|e| Error::Config(e.to_string()))
    }

    /// The worker id to use: configured, or `<hostname>-<pid>-<4 random hex>`.
    pub fn worker_id(&self) -> String {
        if !self.engine.worker_id.is_empty() {
            return self.engine.worker_id.clone();
        }
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "erp-sync".into());
        format!(
            "{host}-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let cfg = Config::from_sources(None, "none", &[]).expect("defaults");
        cfg.validate().expect("valid");
        assert_eq!(cfg.engine.concurrency, 5);
        assert_eq!(cfg.log.format, LogFormat::Human);
    }

    #[test]
    fn file_then_env() {
        let file = "[engine]\nconcurrency = 3\nbatch_size = 7\n[log]\nformat = \"json\"\n";
        let cfg = Config::from_sources(
            Some(file),
            "f.toml",
            &env(&[
                ("ERP_SYNC_ENGINE_CONCURRENCY", "9"),
                ("ERP_SYNC_DATABASE_URL", "postgres://u:pw@h/db"),
                ("ERP_SYNC_ENGINE_DRY_RUN", "true"),
                ("PATH", "/bin"),
                ("ERP_SYNC_CONFIG", "/etc/erp-sync.toml"),
                ("ERP_SYNC_BIN", "/usr/bin/erp-sync"),
            ]),
        )
        .expect("config");
        assert_eq!(cfg.engine.concurrency, 9);
        assert_eq!(cfg.engine.batch_size, 7);
        assert!(cfg.engine.dry_run);
        assert_eq!(cfg.log.format, LogFormat::Json);
        assert_eq!(cfg.database.url, "postgres://u:pw@h/db");
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::from_sources(Some("[engine]\nconcurency = 3\n"), "f", &[]).is_err());
        assert!(Config::from_sources(Some("[nope]\nx = 1\n"), "f", &[]).is_err());
        assert!(
            Config::from_sources(None, "f", &env(&[("ERP_SYNC_ENGINE_CONCURENCY", "3")])).is_err()
        );
        assert!(Config::from_sources(None, "f", &env(&[("ERP_SYNC_FOO_BAR", "3")])).is_err());
        assert!(
            Config::from_sources(None, "f", &env(&[("ERP_SYNC_ENGINE_CONCURRENCY", "x")])).is_err()
        );
    }

    #[test]
    fn erp_keys_from_env() {
        let cfg = Config::from_sources(
            None,
            "f",
            &env(&[
                ("ERP_SYNC_ERP_BASE_URL", "http://127.0.0.1:9"),
                ("ERP_SYNC_ERP_USERNAME", "demo"),
                ("ERP_SYNC_ERP_PASSWORD", "12345"),
            ]),
        )
        .expect("config");
        let text = cfg.redacted_toml().expect("toml");
        assert!(text.contains("http://127.0.0.1:9"), "{text}");
        assert!(!text.contains("12345"), "{text}");
        assert!(!format!("{cfg:?}").contains("12345"));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("host=h user=u password=x dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        let cfg = Config::from_sources(
            None,
            "f",
            &env(&[("ERP_SYNC_DATABASE_URL", "postgres://u:s3cr3t@h/db")]),
        )
        .expect("config");
        let text = cfg.redacted_toml().expect("toml");
        assert!(!text.contains("s3cr3t"));
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
        assert!(is_secret_key("password"));
        assert!(!is_secret_key("password_file"));
    }

    #[test]
    fn nested_and_optional_keys() {
        let cfg = Config::from_sources(
            None,
            "f",
            &env(&[
                ("ERP_SYNC_ERP_FOLLOWUP_CONTENT_FIELD", "content"),
                ("ERP_SYNC_ERP_FOLLOWUP_SORT", "481"),
                ("ERP_SYNC_ERP_CUSTOMER_CATEGORY", "11"),
                ("ERP_SYNC_ERP_CUSTOMER_CATEGORY_PERSONAL", "12"),
                ("ERP_SYNC_ERP_PASSWORD_FILE", "/run/secrets/erp"),
            ]),
        )
        .expect("config");
        assert_eq!(cfg.erp.followup.content_field, "content");
        assert_eq!(cfg.erp.followup.sort, 481);
        assert_eq!(cfg.erp.customer_category, "11");
        assert_eq!(cfg.erp.customer_category_personal, "12");
        assert_eq!(cfg.erp_password_file, "/run/secrets/erp");
        assert!(cfg
            .redacted_toml()
            .expect("toml")
            .contains("/run/secrets/erp"));
    }

    #[test]
    fn password_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let erp_pw = dir.path().join("erp");
        let db_pw = dir.path().join("db");
        std::fs::write(&erp_pw, "erp-secret\n").expect("write");
        std::fs::write(&db_pw, "db-secret\n").expect("write");
        let file = format!(
            "[erp]\npassword_file = {:?}\n[database]\nurl = \"postgres://w@h/db\"\npassword_file = {:?}\n",
            erp_pw.display().to_string(),
            db_pw.display().to_string()
        );
        let mut cfg = Config::from_sources(Some(&file), "f", &[]).expect("config");
        cfg.resolve_secret_files().expect("secrets");
        assert_eq!(cfg.erp.password, "erp-secret");
        assert_eq!(cfg.database.url, "postgres://w@h/db");
        assert_eq!(cfg.database.password.as_deref(), Some("db-secret"));
        assert!(!format!("{:?}", cfg.database).contains("db-secret"));
        let text = cfg.redacted_toml().expect("toml");
        assert!(
            !text.contains("erp-secret") && !text.contains("db-secret"),
            "{text}"
        );
    }

    #[test]
    fn admin_token_from_env_or_file_never_shown() {
        let cfg = Config::from_sources(None, "f", &env(&[("ERP_SYNC_HTTP_ADMIN_TOKEN", "short")]))
            .expect("parse");
        let e = cfg.validate().expect_err("a short admin token is refused");
        assert!(e.to_string().contains("at least 16 characters"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("token");
        std::fs::write(&f, "0123456789abcdef-operator\n").expect("write");
        let path = f.display().to_string();
        let mut cfg = Config::from_sources(
            None,
            "f",
            &env(&[("ERP_SYNC_HTTP_ADMIN_TOKEN_FILE", &path)]),
        )
        .expect("parse");
        cfg.resolve_secret_files().expect("secrets");
        cfg.validate().expect("valid");
        assert_eq!(cfg.http.admin_token, "0123456789abcdef-operator");
        assert!(
            !format!("{cfg:?}").contains("0123456789abcdef"),
            "Debug shows the token"
        );
        let text = cfg.redacted_toml().expect("toml");
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }

    #[test]
    fn validation() {
        let cfg = Config::from_sources(None, "f", &env(&[("ERP_SYNC_ENGINE_CONCURRENCY", "0")]))
            .expect("parse");
        assert!(cfg.validate().is_err());
        let cfg = Config::from_sources(
            None,
            "f",
            &env(&[("ERP_SYNC_ENGINE_HEARTBEAT_MS", "60000")]),
        )
        .expect("parse");
        assert!(cfg.validate().is_err());
    }
}
