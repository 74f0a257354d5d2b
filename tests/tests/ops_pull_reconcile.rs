//! ERP → platform, end to end (issue 5): the `list.asp` pull into `erp_sync.erp_customers`,
//! change detection, reconciliation of every kind of difference with `reconcile_fix`, the
//! `erp_sync.rollback()` entry point, and a schedule firing once per period with two sidecars.

mod sync_util;

use anyhow::{anyhow, Context, Result};
use e2e::wait_until;
use serde_json::json;
use std::time::Duration;
use sync_util::{field, mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(30);
const NO_SCHEDULES: (&str, &str) = ("ERP_SYNC_SCHEDULE_ENABLED", "false");

/// `key=N` from a summary line such as `pull: pages=4 rows=8 new=8 …`.
fn num(summary: &str, key: &str) -> Result<i64> {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .ok_or_else(|| anyhow!("no {key}= in {summary:?}"))?
        .parse()
        .with_context(|| format!("{key} in {summary:?}"))
}

fn sqlstate(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_default()
}

/// (kind, contact_id, erp_ord, field) of a reconcile item.
type Item = (String, Option<i64>, Option<i64>, Option<String>);

fn kinds(w: &World) -> Result<Vec<Item>> {
    Ok(w.query(
        "SELECT kind, contact_id::bigint, erp_ord, field FROM erp_sync.reconcile_report
         ORDER BY kind, contact_id::bigint NULLS FIRST, erp_ord, field",
        &[],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect())
}

#[test]
fn pull_pages_detect_changes_and_reconcile_every_difference() -> Result<()> {
    let w = World::start()?;
    // Hand-typed ERP customers (source 171 = WeChat), two of them sharing a mobile, plus one from
    // another source that the pull must not list.
    let hand: Vec<i64> = (1..=5)
        .map(|i| {
            w.erp_seed_customer(
                2,
                json!({"name": format!("手工客户{i}"), "khid": format!("KH9{i}"), "ly": "171",
                       "mobile": if i >= 4 { mobile(90) } else { mobile(90 + i) }}),
            )
        })
        .collect::<Result<_>>()?;
    w.erp_seed_customer(
        2,
        json!({"name": "展会客户", "khid": "KH99", "ly": "172", "mobile": mobile(99)}),
    )?;
    let a = w.contact(&NewContact::personal("甲先生", &mobile(1)))?;
    let b = w.contact(&NewContact::personal("乙女士", &mobile(2)))?;
    let c = w.contact(&NewContact::personal("丙先生", &mobile(3)))?;
    let mut s = w.sidecar("w1", &[NO_SCHEDULES])?;
    w.settle(SETTLE, &[&s])?;
    for id in [a, b, c] {
        assert!(w.erp_ord(id)?.is_some(), "contact {id} synced");
    }

    // ---- pull: 8 customers of source 171 in pages of 3 ----
    let out = w.erp_sync(&["pull", "--page-size", "3"], &[])?;
    assert_eq!(num(&out, "pages")?, 3, "{out}");
    assert_eq!(num(&out, "rows")?, 8, "{out}");
    assert_eq!(num(&out, "new")?, 8, "{out}");
    assert_eq!(num(&out, "changed")?, 0, "{out}");
    assert!(out.contains("complete=true"), "{out}");
    assert_eq!(w.count("SELECT count(*) FROM erp_sync.erp_customers")?, 8);
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.erp_customers WHERE khid = 'KH99'")?,
        0
    );
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.erp_customers WHERE raw ? 'date1' AND add_date IS NOT NULL AND raw_hash IS NOT NULL")?,
        8
    );
    let only: Vec<i64> = w
        .query(
            "SELECT erp_ord FROM erp_sync.erp_only_customers ORDER BY erp_ord",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected = hand.clone();
    expected.sort_unstable();
    assert_eq!(
        only, expected,
        "exactly the hand-typed customers are ERP-only"
    );

    // ---- a second pull detects the one changed ERP row ----
    w.exec(&format!(
        "UPDATE mp.contacts SET name = '甲先生改名' WHERE id = {a}"
    ))?;
    w.settle(SETTLE, &[&s])?;
    let out = w.erp_sync(&["pull", "--page-size", "3"], &[])?;
    assert_eq!(num(&out, "new")?, 0, "{out}");
    assert_eq!(num(&out, "changed")?, 1, "{out}");
    assert_eq!(num(&out, "unchanged")?, 7, "{out}");
    let a_ord = w.erp_ord(a)?.expect("a linked");
    let r = w.query(
        "SELECT name, changed_at IS NOT NULL FROM erp_sync.erp_customers WHERE erp_ord = $1",
        &[&a_ord],
    )?;
    assert_eq!(
        r[0].get::<_, Option<String>>(0).as_deref(),
        Some("甲先生改名")
    );
    assert!(r[0].get::<_, bool>(1), "changed_at set");

    // ---- make every kind of difference ----
    // c changes on the platform while its sync is lost (sidecar stopped, row removed): name,
    // mobile, weixinAcc and jz (score 75 → 95) now differ from the ERP.
    s.proc.terminate(Duration::from_secs(15))?;
    w.exec(&format!(
        "UPDATE mp.contacts SET name = '丙先生新', phone = '{}', wechat_id = 'wx_new', score = 95 WHERE id = {c};
         DELETE FROM erp_sync.outbox WHERE contact_id = '{c}' AND status = 'pending';",
        mobile(33)
    ))?;
    // d: linked, but its ERP customer is not there any more (deleted by hand in the ERP).
    let mut dc = NewContact::personal("丁先生", &mobile(4));
    dc.id = Some(8004);
    w.exec("ALTER TABLE mp.contacts DISABLE TRIGGER USER")?;
    let d = w.contact(&dc)?;
    w.exec("ALTER TABLE mp.contacts ENABLE TRIGGER USER")?;
    w.exec(&format!(
        "INSERT INTO erp_sync.customer_link (contact_id, khid, erp_ord, customer_type, synced_at)
         VALUES ({d}, 'WX{d}', 987654, 'personal', now())"
    ))?;

    let out = w.erp_sync(&["reconcile", "--no-pull"], &[])?;
    assert!(out.contains("reconcile: run="), "{out}");
    let c_ord = w.erp_ord(c)?.expect("c linked");
    let mut dups = [hand[3], hand[4]];
    dups.sort_unstable();
    let mut want = vec![
        (
            "duplicate_mobile".to_string(),
            None,
            Some(dups[0]),
            Some("mobile".to_string()),
        ),
        (
            "duplicate_mobile".to_string(),
            None,
            Some(dups[1]),
            Some("mobile".to_string()),
        ),
    ];
    for f in ["jz", "mobile", "name", "weixinAcc"] {
        want.push((
            "field_mismatch".into(),
            Some(c),
            Some(c_ord),
            Some(f.to_string()),
        ));
    }
    want.push(("missing_in_erp".into(), Some(d), Some(987654), None));
    for o in &expected {
        want.push(("missing_in_platform".into(), None, Some(*o), None));
    }
    assert_eq!(kinds(&w)?, want);
    let run_id: i64 = w.query("SELECT max(id) FROM erp_sync.reconcile_runs", &[])?[0].get(0);
    let counts: serde_json::Value = w.query(
        "SELECT counts FROM erp_sync.reconcile_runs WHERE id = $1",
        &[&run_id],
    )?[0]
        .get(0);
    assert_eq!(counts["field_mismatch"], json!(4), "{counts}");
    assert_eq!(counts["missing_in_platform"], json!(5), "{counts}");

    // The reader sees the report with masked mobiles.
    w.exec("CREATE ROLE mon LOGIN IN ROLE erp_sync_reader")?;
    let mut mon = postgres::Client::connect(&w.pg.url_for("erp", "mon"), postgres::NoTls)?;
    let masked: Vec<String> = mon
        .query(
            "SELECT erp_value FROM erp_sync.reconcile_report WHERE field = 'mobile' ORDER BY kind",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !masked.is_empty() && masked.iter().all(|m| m.contains("****")),
        "{masked:?}"
    );
    let only_masked: i64 = mon
        .query_one(
            "SELECT count(*) FROM erp_sync.erp_only_customers WHERE mobile LIKE '%****%'",
            &[],
        )?
        .get(0);
    assert_eq!(only_masked, 5);

    // ---- reconcile_fix queues c and d; the sidecar repairs them ----
    let fixed: i32 = w.query("SELECT erp_sync.reconcile_fix($1)", &[&run_id])?[0].get(0);
    assert_eq!(fixed, 2);
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.outbox WHERE kind = 'customer' AND status = 'pending' AND contact_id IN ('{c}', '{d}')"
        ))?,
        2
    );
    let s = w.sidecar("w2", &[NO_SCHEDULES])?;
    w.settle(SETTLE, &[&s])?;
    let cust = &w.erp_by_khid(&format!("WX{c}"))?[0];
    assert_eq!(field(cust, "name").as_deref(), Some("丙先生新"));
    assert_eq!(field(cust, "jz").as_deref(), Some("175"));
    assert_eq!(
        w.erp_by_khid(&format!("WX{d}"))?.len(),
        1,
        "d created again"
    );
    let out = w.erp_sync(&["reconcile"], &[])?;
    assert_eq!(num(&out, "field_mismatch")?, 0, "{out}");
    assert_eq!(num(&out, "missing_in_erp")?, 0, "{out}");
    assert_eq!(num(&out, "duplicate_mobile")?, 2, "{out}");
    Ok(())
}

#[test]
fn rollback_function_undoes_a_create_and_an_update() -> Result<()> {
    let w = World::start()?;
    let id = 6101;
    w.erp_seed_customer(
        2,
        json!({"name": "原来的名字", "khid": format!("WX{id}"), "mobile": mobile(61), "ly": "171"}),
    )?;
    let mut c = NewContact::personal("平台名字", &mobile(61));
    c.id = Some(id);
    w.contact(&c)?;
    let created = w.contact(&NewContact::personal("新建客户", &mobile(62)))?;
    let mut s = w.sidecar("w1", &[NO_SCHEDULES])?;
    w.settle(SETTLE, &[&s])?;
    s.proc.terminate(Duration::from_secs(15))?;
    // The seeded customer was taken over by an update (or a weixinAcc supplement) with old data.
    let log_id = |contact: i64, actions: &[&str]| -> Result<i64> {
        let actions: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        Ok(w.query(
            "SELECT id FROM erp_sync.sync_log WHERE contact_id = $1::bigint::text AND action = ANY($2) AND outcome = 'success'
             ORDER BY id LIMIT 1",
            &[&contact, &actions],
        )?
        .first()
        .ok_or_else(|| anyhow!("no {actions:?} entry for {contact}"))?
        .get(0))
    };
    let upd = log_id(id, &["update", "supplement"])?;
    let cre = log_id(created, &["create"])?;

    let mut db = w.pg.client()?;
    let o1: i64 = db
        .query_one("SELECT erp_sync.rollback($1)", &[&upd])?
        .get(0);
    let row = db.query_one(
        "SELECT kind, ref_id, status FROM erp_sync.outbox WHERE id = $1",
        &[&o1],
    )?;
    assert_eq!(row.get::<_, String>(0), "rollback");
    assert_eq!(row.get::<_, Option<i64>>(1), Some(upd));
    assert_eq!(row.get::<_, String>(2), "pending");
    // A second call while the first is pending.
    let e = db
        .query_one("SELECT erp_sync.rollback($1)", &[&upd])
        .expect_err("pending");
    assert_eq!(sqlstate(&e), "55006", "{e:?}");
    db.query_one("SELECT erp_sync.rollback($1)", &[&cre])?;
    // Unknown id, failed entry.
    let e = db
        .query_one("SELECT erp_sync.rollback(999999)", &[])
        .expect_err("unknown");
    assert_eq!(sqlstate(&e), "P0002", "{e:?}");
    let failed: i64 = db
        .query_one(
            "INSERT INTO erp_sync.sync_log (contact_id, action, outcome, error, erp_ord)
             VALUES ($1::bigint, 'create', 'failed', 'ERP refused', NULL) RETURNING id",
            &[&created],
        )?
        .get(0);
    let e = db
        .query_one("SELECT erp_sync.rollback($1)", &[&failed])
        .expect_err("failed entry");
    assert_eq!(sqlstate(&e), "55000", "{e:?}");
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("nothing to undo"), "{msg}");

    let s = w.sidecar("w2", &[NO_SCHEDULES])?;
    w.settle(SETTLE, &[&s])?;
    assert_eq!(
        field(&w.erp_by_khid(&format!("WX{id}"))?[0], "name").as_deref(),
        Some("原来的名字"),
        "update undone"
    );
    assert!(
        w.erp_by_khid(&format!("WX{created}"))?.is_empty(),
        "create undone"
    );
    assert_eq!(w.erp_ord(created)?, None);
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.sync_log WHERE id IN ({upd}, {cre}) AND outcome = 'rolled_back' AND rolled_back_at IS NOT NULL"
        ))?,
        2
    );
    // Twice: already rolled back.
    let e = db
        .query_one("SELECT erp_sync.rollback($1)", &[&upd])
        .expect_err("twice");
    assert_eq!(sqlstate(&e), "55000", "{e:?}");
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("already rolled back"), "{msg}");
    Ok(())
}

#[test]
fn schedule_fires_once_per_period_with_two_sidecars() -> Result<()> {
    let w = World::start()?;
    for i in 1..=3 {
        w.erp_seed_customer(
            2,
            json!({"name": format!("手工{i}"), "khid": format!("KH7{i}"), "ly": "171"}),
        )?;
    }
    let env = [
        ("ERP_SYNC_SCHEDULE_PULL_CRON", "*/2 * * * * *"),
        ("ERP_SYNC_SCHEDULE_SWEEP_CRON", ""),
        ("ERP_SYNC_SCHEDULE_RECONCILE_CRON", ""),
        ("ERP_SYNC_SCHEDULE_PULL_PAGE_SIZE", "2"),
    ];
    let mut s1 = w.sidecar("w1", &env)?;
    let mut s2 = w.sidecar("w2", &env)?;
    let ran = wait_until(Duration::from_secs(20), || {
        matches!(
            w.count("SELECT count(*) FROM erp_sync.schedule_runs WHERE name = 'pull' AND ok"),
            Ok(n) if n >= 3
        )
    });
    s1.proc.terminate(Duration::from_secs(15))?;
    s2.proc.terminate(Duration::from_secs(15))?;
    assert!(ran, "pull ran: {}\n{}", s1.proc.output(), s2.proc.output());
    let rows = w.query(
        "SELECT period_key, worker, ok, summary FROM erp_sync.schedule_runs WHERE name = 'pull' ORDER BY period_key",
        &[],
    )?;
    let starts = |out: &str| {
        out.lines()
            .filter(|l| l.contains("scheduled job starting"))
            .count()
    };
    let (n1, n2) = (starts(&s1.proc.output()), starts(&s2.proc.output()));
    assert_eq!(
        n1 + n2,
        rows.len(),
        "each claimed period ran exactly once (w1 {n1}, w2 {n2})"
    );
    let mut keys: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    keys.dedup();
    assert_eq!(keys.len(), rows.len(), "one row per period");
    for r in &rows {
        let worker: Option<String> = r.get(1);
        assert!(matches!(worker.as_deref(), Some("w1" | "w2")), "{worker:?}");
        let ok: Option<bool> = r.get(2);
        if ok == Some(true) {
            let summary: serde_json::Value = r.get(3);
            assert_eq!(summary["rows"], json!(3), "{summary}");
        }
    }
    assert_eq!(w.count("SELECT count(*) FROM erp_sync.erp_customers")?, 3);

    // Downtime: an hourly schedule that has run before catches up its current period once at
    // start-up; a sidecar started afterwards does not run it again.
    let hourly = [
        ("ERP_SYNC_SCHEDULE_PULL_CRON", "0 0 * * * *"),
        ("ERP_SYNC_SCHEDULE_SWEEP_CRON", ""),
        ("ERP_SYNC_SCHEDULE_RECONCILE_CRON", ""),
        ("ERP_SYNC_SCHEDULE_UTC_OFFSET_MINUTES", "0"),
    ];
    let key: String = w.query(
        "SELECT to_char(date_trunc('hour', now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:00:00+00:00')",
        &[],
    )?[0]
        .get(0);
    let mut s3 = w.sidecar("w3", &hourly)?;
    let caught_up = wait_until(Duration::from_secs(15), || {
        matches!(
            w.query(
                "SELECT 1 FROM erp_sync.schedule_runs WHERE name = 'pull' AND period_key = $1 AND worker = 'w3' AND ok",
                &[&key],
            ),
            Ok(r) if r.len() == 1
        )
    });
    assert!(
        caught_up,
        "missed period {key} run at start-up: {}",
        s3.proc.output()
    );
    let mut s4 = w.sidecar("w4", &hourly)?;
    std::thread::sleep(Duration::from_secs(2));
    s3.proc.terminate(Duration::from_secs(15))?;
    s4.proc.terminate(Duration::from_secs(15))?;
    assert_eq!(starts(&s4.proc.output()), 0, "{}", s4.proc.output());
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.schedule_runs WHERE name = 'pull' AND period_key = '{key}'"
        ))?,
        1
    );
    Ok(())
}
