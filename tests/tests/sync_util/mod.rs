//! Shared helpers of the `sync_*` end-to-end tests: one cluster + one simulator per test, sidecars
//! started with fast timings, SQL helpers to create platform data, and readers for what the ERP
//! simulator stored.
#![allow(dead_code)]

use anyhow::{anyhow, bail, Context, Result};
use e2e::{wait_until, Cluster, Sidecar, Sim};
use serde_json::Value;
use std::time::Duration;

/// Timings that keep tests fast: frequent polls, short leases (expired leases come back in ~2 s),
/// quick retries, and an ERP timeout shorter than the simulator's hang.
pub const FAST: &[(&str, &str)] = &[
    ("ERP_SYNC_ENGINE_POLL_INTERVAL_MS", "300"),
    ("ERP_SYNC_ENGINE_LEASE_MS", "2000"),
    ("ERP_SYNC_ENGINE_HEARTBEAT_MS", "400"),
    ("ERP_SYNC_ENGINE_BACKOFF_BASE_MS", "100"),
    ("ERP_SYNC_ENGINE_BACKOFF_MAX_MS", "800"),
    ("ERP_SYNC_ENGINE_RATE_LIMIT_PER_S", "0"),
    ("ERP_SYNC_ENGINE_SHUTDOWN_DEADLINE_MS", "3000"),
    ("ERP_SYNC_ERP_TIMEOUT_MS", "1500"),
    ("ERP_SYNC_ERP_RELOGIN_BACKOFF_MS", "100"),
    ("ERP_SYNC_ERP_RELOGIN_BACKOFF_MAX_MS", "500"),
];

pub struct World {
    pub pg: Cluster,
    pub sim: Sim,
}

/// A platform contact to insert into `mp.contacts`; defaults pass admission.
#[derive(Debug, Clone)]
pub struct NewContact {
    pub id: Option<i64>,
    pub company_type: bool,
    pub name: String,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub verified: bool,
    pub score: i32,
    pub wechat_id: Option<String>,
    pub address: Option<String>,
    pub contact_person: Option<String>,
    pub contact_phone: Option<String>,
    pub email: Option<String>,
}

impl NewContact {
    pub fn personal(name: &str, phone: &str) -> NewContact {
        NewContact {
            id: None,
            company_type: false,
            name: name.into(),
            company: None,
            phone: Some(phone.into()),
            verified: true,
            score: 75,
            wechat_id: Some(format!("wx_{phone}")),
            address: Some("上海市浦东新区".into()),
            contact_person: None,
            contact_phone: None,
            email: None,
        }
    }

    pub fn company(name: &str, company: &str, phone: &str) -> NewContact {
        NewContact {
            company_type: true,
            company: Some(company.into()),
            contact_person: Some(format!("{name}经理")),
            contact_phone: Some("13900001111".into()),
            email: Some("sales@example.com".into()),
            ..NewContact::personal(name, phone)
        }
    }
}

/// Mobile number `1380000NNNN` for test contact `n`.
pub fn mobile(n: i64) -> String {
    format!("138{:08}", n)
}

impl World {
    pub fn start() -> Result<World> {
        World::start_with(&[])
    }

    /// With `E2E_CAPTURE_MODE` set (`log` or `direct`), the database starts in that
    /// `capture.mode` (`E2E_CAPTURE_MODE=log make chaos` runs the chaos scenarios on the capture
    /// log); tests that pick a mode themselves still do.
    pub fn start_with(sim_args: &[&str]) -> Result<World> {
        let pg = Cluster::start()?;
        let sim = Sim::start(sim_args)?;
        let w = World { pg, sim };
        if let Ok(mode) = std::env::var("E2E_CAPTURE_MODE") {
            let mode = mode.trim();
            if !matches!(mode, "log" | "direct") {
                bail!("E2E_CAPTURE_MODE={mode:?}: expected log or direct");
            }
            w.exec(&format!(
                "INSERT INTO erp_sync.settings (key, value) VALUES ('capture.mode', '{mode}')"
            ))?;
        }
        Ok(w)
    }

    pub fn sidecar(&self, worker: &str, extra: &[(&str, &str)]) -> Result<Sidecar> {
        let mut env: Vec<(&str, &str)> = FAST.to_vec();
        env.extend_from_slice(extra);
        Sidecar::start(&self.pg, &self.sim, worker, &env)
    }

    pub fn exec(&self, sql: &str) -> Result<()> {
        self.pg
            .client()?
            .batch_execute(sql)
            .with_context(|| format!("SQL: {sql}"))
    }

    pub fn query(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>> {
        self.pg
            .client()?
            .query(sql, params)
            .with_context(|| format!("SQL: {sql}"))
    }

    pub fn count(&self, sql: &str) -> Result<i64> {
        self.pg.count(sql)
    }

    pub fn contact(&self, c: &NewContact) -> Result<i64> {
        let mut db = self.pg.client()?;
        let ty = if c.company_type {
            "company"
        } else {
            "personal"
        };
        let row = db.query_one(
            "INSERT INTO mp.contacts (id, type, name, company, phone, phone_verified, score, list_status,
                                      wechat_id, address, contact_person, contact_phone, email)
             VALUES (coalesce($1, nextval('mp.contacts_id_seq')), $2, $3, $4, $5, $6, $7, 'white',
                     $8, $9, $10, $11, $12)
             RETURNING id",
            &[
                &c.id, &ty, &c.name, &c.company, &c.phone, &c.verified, &c.score, &c.wechat_id,
                &c.address, &c.contact_person, &c.contact_phone, &c.email,
            ],
        )?;
        Ok(row.try_get(0)?)
    }

    pub fn thread(&self, contact_id: i64, score: i32, summary: &str) -> Result<i64> {
        let mut db = self.pg.client()?;
        let row = db.query_one(
            "INSERT INTO mp.threads (contact_id, score, summary) VALUES ($1, $2, $3) RETURNING id",
            &[&contact_id, &score, &summary],
        )?;
        Ok(row.try_get(0)?)
    }

    pub fn signal(&self, contact_id: i64, content: &str) -> Result<i64> {
        let mut db = self.pg.client()?;
        let row = db.query_one(
            "INSERT INTO mp.signals (contact_id, content) VALUES ($1, $2) RETURNING id",
            &[&contact_id, &content],
        )?;
        Ok(row.try_get(0)?)
    }

    /// Outbox rows pending or running, and changes captured but not expanded yet
    /// (`capture.mode = log`), counted in one statement: one snapshot, so an expansion that
    /// commits between two counts cannot make captured work look like none.
    pub fn unfinished(&self) -> Result<i64> {
        self.count(&format!(
            "SELECT (SELECT count(*) FROM erp_sync.outbox WHERE status IN ('pending', 'running')){}",
            self.plus_captured()?
        ))
    }

    /// ` + (count of captured work)`, to add to a count of outbox rows in the same statement;
    /// empty for a database still at the 0.1.0 schema (no capture log).
    fn plus_captured(&self) -> Result<&'static str> {
        let has_log = self
            .count("SELECT count(*) FROM pg_class WHERE oid = to_regclass('erp_sync.captured')")?;
        Ok(if has_log == 0 {
            ""
        } else {
            " + (SELECT count(*) FROM erp_sync.captured)"
        })
    }

    /// Wait until no outbox row is pending or running.
    pub fn settle(&self, timeout: Duration, sidecars: &[&Sidecar]) -> Result<()> {
        if wait_until(timeout, || matches!(self.unfinished(), Ok(0))) {
            return Ok(());
        }
        let mut diag = String::new();
        for r in self.query(
            "SELECT id, contact_id, kind, status, attempts, coalesce(last_error, '') FROM erp_sync.outbox
             WHERE status IN ('pending', 'running') ORDER BY id LIMIT 20",
            &[],
        )? {
            diag.push_str(&format!(
                "  #{} contact {} {} {} attempts={} {}\n",
                r.get::<_, i64>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
                r.get::<_, i32>(4),
                r.get::<_, String>(5)
            ));
        }
        for s in sidecars {
            let out = s.proc.output();
            let tail: Vec<&str> = out.lines().rev().take(30).collect();
            diag.push_str(&format!(
                "--- sidecar log tail ---\n{}\n",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        bail!("outbox did not settle within {timeout:?}:\n{diag}")
    }

    /// [`World::settle`], doing meanwhile what an operator does with follow-ups in doubt: look each
    /// up in the ERP (by the customer's ord and the message text) and call
    /// `erp_sync.resolve_in_doubt(id, found)`, oldest first. Returns (resolved as sent, as not sent).
    pub fn settle_resolving(
        &self,
        timeout: Duration,
        sidecars: &[&Sidecar],
    ) -> Result<(usize, usize)> {
        // Work a sidecar can still do: outbox rows not behind a follow-up in doubt, and captured
        // work not expanded yet (one statement, one snapshot).
        let free = format!(
            "SELECT (SELECT count(*) FROM erp_sync.outbox o
             WHERE o.status IN ('pending', 'running')
               AND NOT EXISTS (SELECT 1 FROM erp_sync.outbox d
                               WHERE d.contact_id = o.contact_id AND d.id < o.id AND d.status = 'in_doubt')){}",
            self.plus_captured()?
        );
        let deadline = std::time::Instant::now() + timeout;
        let (mut sent, mut not_sent) = (0, 0);
        for _ in 0..1000 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !wait_until(left, || matches!(self.count(&free), Ok(0))) {
                break;
            }
            let (s, n) = self.resolve_in_doubt_from_erp()?;
            sent += s;
            not_sent += n;
            if s + n == 0 && matches!(self.unfinished(), Ok(0)) {
                return Ok((sent, not_sent));
            }
        }
        self.settle(Duration::ZERO, sidecars)
            .map(|()| (sent, not_sent))
    }

    /// Resolve every follow-up in doubt from what the ERP holds (see [`World::settle_resolving`]).
    pub fn resolve_in_doubt_from_erp(&self) -> Result<(usize, usize)> {
        let rows = self.query(
            "SELECT o.id, o.contact_id::bigint, s.content FROM erp_sync.outbox o
             JOIN mp.signals s ON s.id = o.ref_id
             WHERE o.status = 'in_doubt' ORDER BY o.id",
            &[],
        )?;
        if rows.is_empty() {
            return Ok((0, 0));
        }
        let fu = self.erp_followups()?;
        let (mut sent, mut not_sent) = (0, 0);
        for r in rows {
            let (id, contact, content): (i64, i64, String) = (r.get(0), r.get(1), r.get(2));
            let ord = self.erp_ord(contact)?.map(|o| o.to_string());
            let found = fu.iter().any(|f| {
                field(f, "ord") == ord && field(f, "@intro2").as_deref() == Some(content.as_str())
            });
            self.query("SELECT erp_sync.resolve_in_doubt($1, $2)", &[&id, &found])?;
            if found {
                sent += 1;
            } else {
                not_sent += 1;
            }
        }
        Ok((sent, not_sent))
    }

    /// `(status, last_error)` of every outbox row of a contact, by id.
    pub fn rows_of(&self, contact_id: i64) -> Result<Vec<(String, String, Option<String>)>> {
        Ok(self
            .query(
                "SELECT kind, status, last_error FROM erp_sync.outbox WHERE contact_id = $1::bigint::text ORDER BY id",
                &[&contact_id],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    pub fn erp_ord(&self, contact_id: i64) -> Result<Option<i64>> {
        let rows = self.query(
            "SELECT erp_ord FROM erp_sync.customer_link WHERE contact_id = $1::bigint::text",
            &[&contact_id],
        )?;
        Ok(rows.first().and_then(|r| r.get::<_, Option<i64>>(0)))
    }

    // ---- simulator side ----

    pub fn faults(&self, patch: Value) -> Result<()> {
        self.sim.post("/_sim/faults", &patch).map(drop)
    }

    /// Every customer the simulator stores.
    pub fn erp_customers(&self) -> Result<Vec<Value>> {
        records(self.sim.get("/_sim/customers")?, "customers")
    }

    /// Customers whose khid is `khid`.
    pub fn erp_by_khid(&self, khid: &str) -> Result<Vec<Value>> {
        Ok(self
            .erp_customers()?
            .into_iter()
            .filter(|c| field(c, "khid").as_deref() == Some(khid))
            .collect())
    }

    /// How many ERP customers carry each khid (more than 1: a duplicate).
    pub fn erp_khid_counts(&self) -> Result<std::collections::HashMap<String, usize>> {
        let mut counts = std::collections::HashMap::new();
        for c in self.erp_customers()? {
            *counts
                .entry(field(&c, "khid").unwrap_or_default())
                .or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The follow-ups among `followups` (from [`World::erp_followups`]) on the ERP customer of
    /// `contact_id` with the text `content`: exactly one when it was sent once.
    pub fn followups_of<'a>(
        &self,
        followups: &'a [Value],
        contact_id: i64,
        content: &str,
    ) -> Result<Vec<&'a Value>> {
        let ord = self.erp_ord(contact_id)?.map(|o| o.to_string());
        Ok(followups
            .iter()
            .filter(|f| field(f, "ord") == ord && field(f, "@intro2").as_deref() == Some(content))
            .collect())
    }

    pub fn erp_persons(&self) -> Result<Vec<Value>> {
        records(self.sim.get("/_sim/persons")?, "persons")
    }

    pub fn erp_followups(&self) -> Result<Vec<Value>> {
        records(self.sim.get("/_sim/followups")?, "followups")
    }

    pub fn erp_assignments(&self) -> Result<Vec<Value>> {
        records(self.sim.get("/_sim/assignments")?, "assignments")
    }

    /// Create a customer directly in the simulator (as if typed into the ERP by hand).
    /// `fields` holds the spec's field ids (name, khid, mobile, weixinAcc, …).
    pub fn erp_seed_customer(&self, intsort: u8, fields: Value) -> Result<i64> {
        let v = self.sim.post(
            "/_sim/customers",
            &serde_json::json!([{"intsort": intsort, "fields": fields}]),
        )?;
        v.get("ords")
            .and_then(|o| o.get(0))
            .and_then(Value::as_i64)
            .ok_or_else(|| anyhow!("seeding a customer returned no ord: {v}"))
    }
}

impl World {
    /// Run a one-shot `erp-sync ARGS` (e.g. `pull`, `reconcile`) against this world's cluster and
    /// simulator; returns stdout, fails with stdout+stderr on a non-zero exit.
    pub fn erp_sync(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let mut cmd = std::process::Command::new(e2e::erp_sync_bin());
        cmd.args(args)
            .env("ERP_SYNC_DATABASE_URL", self.pg.worker_url("erp"))
            .env("ERP_SYNC_ERP_BASE_URL", self.sim.base_url())
            .env("ERP_SYNC_ERP_USERNAME", "demo")
            .env("ERP_SYNC_ERP_PASSWORD", "demo")
            .env("ERP_SYNC_ERP_CUSTOMER_CATEGORY", e2e::SIM_CATEGORY)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .with_context(|| format!("running erp-sync {args:?}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            bail!(
                "erp-sync {args:?} exited with {:?}:\n{stdout}\n{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }
}

fn records(v: Value, key: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Object(mut m) => match m
            .remove(key)
            .or_else(|| m.remove("records"))
            .or_else(|| m.remove("items"))
        {
            Some(Value::Array(a)) => Ok(a),
            other => bail!("unexpected /_sim/{key} reply: {other:?}"),
        },
        other => bail!("unexpected /_sim/{key} reply: {other}"),
    }
}

/// A field of a simulator record as a string (numbers stringified), looking inside `fields` too.
pub fn field(rec: &Value, key: &str) -> Option<String> {
    let v = rec
        .get(key)
        .or_else(|| rec.get("fields").and_then(|f| f.get(key)))?;
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

// ---- the sidecar's /metrics ----

/// The Content-Type the sidecar serves `/metrics` with (OpenMetrics 1.0.0).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A loopback address on a free port for a sidecar's ops HTTP server
/// (`ERP_SYNC_HTTP_LISTEN_ADDR`): the default 9187 collides between tests running in parallel.
pub fn http_addr() -> String {
    format!("127.0.0.1:{}", e2e::free_port())
}

/// `GET http://{addr}/metrics`: the exposition, checked to be served as OpenMetrics and complete
/// (it ends in the one `# EOF`).
pub fn scrape(addr: &str) -> Result<String> {
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("http://{addr}/metrics"))
        .send()?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text()?;
    if !status.is_success() {
        bail!("/metrics answered {status}: {text}");
    }
    if content_type != OPENMETRICS {
        bail!("/metrics served as {content_type:?}, not {OPENMETRICS:?}");
    }
    if !text.ends_with("# EOF\n") || text.matches("# EOF").count() != 1 {
        bail!("/metrics does not end in exactly one # EOF:\n{text}");
    }
    Ok(text)
}

/// The value of one exposition line `name{labels} value` (labels exactly as written).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// One series of the sidecar at `addr` now; `None` while it cannot be scraped or lacks it.
pub fn metric_of(addr: &str, series: &str) -> Option<f64> {
    scrape(addr).ok().and_then(|t| metric(&t, series))
}
