//! pg_dump / pg_restore (issue 13, fix 4): a database with synced contacts, contacts still
//! pending, edited / deleted / added follow-up templates, sales reps and settings is dumped
//! (`pg_dump -Fc`, restored with `pg_restore -j 2`; plain SQL, restored with `psql`) into new
//! databases of the same cluster. The configuration, the sync state and `contact_status` come
//! back equal, and a sidecar on the restored database (same ERP simulator) syncs what was
//! pending and what is written afterwards: no ERP customer twice, no follow-up twice, nothing
//! lost. The line `DUMP_RESTORE ...` (run with `--nocapture`) gives the figures.

mod sync_util;

use anyhow::{bail, Context, Result};
use e2e::wait_until;
use std::collections::HashMap;
use std::time::Duration;
use sync_util::{field, mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(60);

/// What must be equal between the dumped and the restored database, one text per item (rows
/// as text, sorted).
const SNAPSHOT: &[(&str, &str)] = &[
    ("settings", "SELECT key, value, description, updated_at FROM erp_sync.settings"),
    ("templates", "SELECT * FROM erp_sync.followup_templates"),
    ("deleted templates", "SELECT * FROM erp_sync.followup_templates_deleted"),
    ("effective templates", "SELECT m, erp_sync.select_template(m) FROM unnest(ARRAY['请报价', '电话未接', '很好', '签约', '见面', '考虑中', '你好']) m"),
    ("sales reps", "SELECT * FROM erp_sync.sales_reps"),
    ("tracked tables", "SELECT entity, relid::text, columns, tracked_at FROM erp_sync.tracked_tables"),
    ("outbox", "SELECT * FROM erp_sync.outbox"),
    ("rejections", "SELECT * FROM erp_sync.rejections"),
    ("customer_link", "SELECT * FROM erp_sync.customer_link"),
    ("sync_log", "SELECT id, outbox_id, contact_id, action, erp_ord, outcome, error, worker, created_at FROM erp_sync.sync_log"),
    ("erp_customers", "SELECT erp_ord, khid, raw_hash FROM erp_sync.erp_customers"),
    ("schedule_runs", "SELECT * FROM erp_sync.schedule_runs"),
    ("alert_state", "SELECT * FROM erp_sync.alert_state"),
    ("sequences", "SELECT 'outbox', last_value, is_called FROM erp_sync.outbox_id_seq UNION ALL
                   SELECT 'sync_log', last_value, is_called FROM erp_sync.sync_log_id_seq UNION ALL
                   SELECT 'reconcile_runs', last_value, is_called FROM erp_sync.reconcile_runs_id_seq UNION ALL
                   SELECT 'reconcile_items', last_value, is_called FROM erp_sync.reconcile_items_id_seq UNION ALL
                   SELECT 'mp.contacts', last_value, is_called FROM mp.contacts_id_seq"),
    ("contact_status", "SELECT * FROM erp_sync.contact_status"),
    ("queue", "SELECT kind, status, rows, oldest_created_at FROM erp_sync.queue"),
    ("platform", "SELECT 'contacts', count(*) FROM mp.contacts UNION ALL
                  SELECT 'threads', count(*) FROM mp.threads UNION ALL
                  SELECT 'signals', count(*) FROM mp.signals"),
];

fn snapshot(w: &World, db: &str) -> Result<Vec<(String, String)>> {
    let mut c = w.pg.connect_db(db)?;
    SNAPSHOT
        .iter()
        .map(|(name, q)| {
            let row = c
                .query_one(
                    &format!(
                        "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') \
                         FROM (SELECT t::text AS x FROM ({q}) t) s"
                    ),
                    &[],
                )
                .with_context(|| format!("{db}: {name}"))?;
            Ok((name.to_string(), row.try_get(0)?))
        })
        .collect()
}

fn assert_same(before: &[(String, String)], after: &[(String, String)], what: &str) {
    for ((name, a), (_, b)) in before.iter().zip(after) {
        assert_eq!(a, b, "{what}: {name} differs after the restore");
    }
}

/// One integer from `db`.
fn count_in(w: &World, db: &str, sql: &str) -> Result<i64> {
    Ok(w.pg.connect_db(db)?.query_one(sql, &[])?.try_get(0)?)
}

#[test]
fn dump_and_restore_keep_config_and_state_and_the_sidecar_carries_on() -> Result<()> {
    let w = World::start()?;

    // ---- configuration the operator changed
    w.exec(
        "INSERT INTO erp_sync.settings (key, value, description) VALUES
             ('template.default', '108', 'ops: no keyword -> 还没考虑'),
             ('admission.min_score', '65', NULL),
             ('alerts.max_failures', '25', NULL);
         INSERT INTO erp_sync.sales_reps (erp_user_id, name, tier) VALUES
             ('u_top', '金牌', 'top'), ('u_reg', '普通', 'regular'), ('u_off', '离职', 'regular');
         UPDATE erp_sync.sales_reps SET active = false WHERE erp_user_id = 'u_off';
         UPDATE erp_sync.followup_templates SET keywords = keywords || '合同'::text WHERE template_id = 106;
         UPDATE erp_sync.followup_templates SET label = '约见面' WHERE template_id = 109;
         DELETE FROM erp_sync.followup_templates WHERE template_id = 107;
         INSERT INTO erp_sync.followup_templates VALUES (130, ARRAY['报价'], 5, '报价');",
    )?;

    // ---- phase A: contacts synced before the dump
    let mut passing = Vec::new();
    for n in 1..=16 {
        let id = w.contact(&NewContact::personal(&format!("客户甲{n:02}"), &mobile(n)))?;
        w.thread(id, if n % 2 == 0 { 85 } else { 70 }, "咨询")?;
        passing.push(id);
    }
    let mut low = NewContact::personal("低分客户", &mobile(90));
    low.score = 30;
    let rejected = [w.contact(&low)?, {
        let mut c = NewContact::personal("没验证", &mobile(91));
        c.verified = false;
        w.contact(&c)?
    }];
    let mut signals: Vec<(i64, String, &str)> = Vec::new(); // contact, content, template
    for (i, &c) in passing.iter().take(4).enumerate() {
        let s = format!("请报价，第{i}次");
        w.signal(c, &s)?;
        signals.push((c, s, "130"));
    }
    let mut s1 = w.sidecar("w1", &[])?;
    w.settle(SETTLE, &[&s1])?;
    s1.proc.terminate(Duration::from_secs(15))?;
    // a heartbeat row of a sidecar that is not running: not dumped (workers)
    w.exec(
        "INSERT INTO erp_sync.workers (worker_id, idle, idle_since) VALUES ('gone', true, now())",
    )?;
    let synced_before =
        w.count("SELECT count(*) FROM erp_sync.contact_status WHERE sync_state = 'synced'")?;
    assert_eq!(synced_before, passing.len() as i64);
    let renamed = passing[0];
    let ord_renamed = w.erp_ord(renamed)?.context("first contact linked")?;

    // ---- phase B: written while no sidecar runs: pending at the dump
    for n in 17..=24 {
        let id = w.contact(&NewContact::personal(&format!("客户乙{n:02}"), &mobile(n)))?;
        w.thread(id, 82, "待同步")?;
        passing.push(id);
    }
    w.exec(&format!(
        "UPDATE mp.contacts SET name = '改名客户' WHERE id = {renamed}"
    ))?;
    for (i, &c) in passing.iter().skip(4).take(3).enumerate() {
        let s = format!("电话未接，第{i}次");
        w.signal(c, &s)?; // 107 deleted: template.default 108
        signals.push((c, s, "108"));
    }
    let s = "客户说很好，准备发合同".to_string();
    w.signal(passing[20], &s)?;
    signals.push((passing[20], s, "106"));
    let pending_at_dump =
        w.count("SELECT count(*) FROM erp_sync.contact_status WHERE sync_state = 'pending'")?;
    let pending_rows = w.unfinished()?;
    assert!(
        pending_at_dump >= 9,
        "pending contacts at the dump: {pending_at_dump}"
    );
    let max_outbox_id = w.count("SELECT max(id) FROM erp_sync.outbox")?;
    let before = snapshot(&w, "erp")?;

    // ---- dump, restore into new databases: custom format and plain SQL
    let dir = tempfile::tempdir()?;
    let custom = dir.path().join("erp.dump").display().to_string();
    let plain = dir.path().join("erp.sql").display().to_string();
    w.pg.pg_tool("pg_dump", &["-Fc", "-f", &custom, "erp"])?;
    w.pg.pg_tool("pg_dump", &["-Fp", "-f", &plain, "erp"])?;
    let mut admin = w.pg.connect_db("postgres")?;
    for db in ["erp_restored", "erp_plain"] {
        admin.batch_execute(&format!("CREATE DATABASE {db} TEMPLATE template0"))?;
    }
    w.pg.pg_tool(
        "pg_restore",
        &["--exit-on-error", "-j", "2", "-d", "erp_restored", &custom],
    )?;
    w.pg.pg_tool(
        "psql",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "erp_plain",
            "-f",
            &plain,
        ],
    )?;
    assert_same(
        &before,
        &snapshot(&w, "erp_restored")?,
        "pg_restore of pg_dump -Fc",
    );
    assert_same(
        &before,
        &snapshot(&w, "erp_plain")?,
        "psql of plain pg_dump",
    );
    for db in ["erp_restored", "erp_plain"] {
        // built over the platform's table again, without erp_sync.rebuild_contact_status()
        assert_eq!(
            count_in(
                &w,
                db,
                "SELECT count(*) FROM pg_views WHERE schemaname = 'erp_sync' \
                 AND viewname = 'contact_status' AND definition LIKE '%FROM mp.contacts c%'"
            )?,
            1,
            "{db}: contact_status is over mp.contacts"
        );
        assert_eq!(
            count_in(&w, db, "SELECT count(*) FROM erp_sync.contact_status")?,
            count_in(&w, db, "SELECT count(*) FROM mp.contacts")?,
            "{db}: contact_status lists every platform contact"
        );
        // not dumped: the ERP session (a credential) and the heartbeats of running sidecars
        assert_eq!(
            count_in(&w, db, "SELECT count(*) FROM erp_sync.erp_session")?,
            0,
            "{db}"
        );
        assert_eq!(
            count_in(&w, db, "SELECT count(*) FROM erp_sync.workers")?,
            0,
            "{db}"
        );
    }
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.erp_session")?,
        1,
        "the dumped database had a session"
    );

    // The restored database takes the old one's name (the sidecar and World's helpers use `erp`).
    let mut last = None;
    let swapped = wait_until(Duration::from_secs(15), || {
        match admin.batch_execute(
            "ALTER DATABASE erp RENAME TO erp_old; ALTER DATABASE erp_restored RENAME TO erp",
        ) {
            Ok(()) => true,
            Err(e) => {
                last = Some(e.to_string()); // old connections still closing
                false
            }
        }
    });
    if !swapped {
        bail!("renaming the databases: {last:?}");
    }

    // ---- phase C: a sidecar on the restored database, and new writes
    let s2 = w.sidecar("w2", &[])?;
    let mut after = Vec::new();
    for n in 25..=28 {
        let id = w.contact(&NewContact::personal(&format!("客户丙{n:02}"), &mobile(n)))?;
        w.thread(id, 66, "恢复后")?;
        after.push(id);
    }
    passing.extend_from_slice(&after);
    for &c in [passing[1], passing[26]].iter() {
        let s = format!("约了面谈 {c}");
        w.signal(c, &s)?;
        signals.push((c, s, "109"));
    }
    w.settle(SETTLE, &[&s2])?;

    // ---- nothing lost, nothing twice
    let states: HashMap<i64, String> = w
        .query(
            "SELECT contact_id::bigint, sync_state FROM erp_sync.contact_status",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let synced_after = passing
        .iter()
        .filter(|id| states.get(id).map(String::as_str) == Some("synced"))
        .count();
    for id in rejected {
        assert_eq!(
            states.get(&id).map(String::as_str),
            Some("rejected"),
            "contact {id}"
        );
    }
    let customers = w.erp_customers()?;
    let by_khid = w.erp_khid_counts()?;
    let dup_khid = by_khid.values().filter(|n| **n > 1).count();
    let lost = passing
        .iter()
        .filter(|id| {
            !by_khid.contains_key(&format!("WX{id}"))
                || states.get(id).map(String::as_str) != Some("synced")
        })
        .count();
    let renamed_erp = w.erp_by_khid(&format!("WX{renamed}"))?;
    assert_eq!(
        field(&renamed_erp[0], "name").as_deref(),
        Some("改名客户"),
        "the pending edit reached the ERP"
    );
    assert_eq!(
        field(&renamed_erp[0], "ord"),
        Some(ord_renamed.to_string()),
        "updated, not created again"
    );

    let followups = w.erp_followups()?;
    let mut dup_followups = 0;
    let mut lost_followups = 0;
    for (contact, content, template) in &signals {
        let sent = w.followups_of(&followups, *contact, content)?;
        match sent.len() {
            0 => lost_followups += 1,
            1 => assert_eq!(
                field(sent[0], "intro").as_deref(),
                Some(*template),
                "template of {content:?}"
            ),
            _ => dup_followups += 1,
        }
    }
    // ids continue after the restored ones (the sequence was dumped): no capture collided
    let first_new = w.query(
        "SELECT min(id) FROM erp_sync.outbox WHERE contact_id = ANY($1::bigint[]::text[])",
        &[&after],
    )?[0]
        .get::<_, Option<i64>>(0);
    assert!(
        first_new > Some(max_outbox_id),
        "{first_new:?} after {max_outbox_id}"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE last_error LIKE 'capture failed%'")?,
        0
    );
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status <> 'done'")?,
        0
    );
    // the restored templates and settings are what the sidecar used
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.customer_link WHERE assigned_to = 'u_off'")?,
        0,
        "the inactive rep stayed inactive"
    );

    println!(
        "DUMP_RESTORE contacts={} rejected={} synced_before={synced_before} pending_at_dump={pending_at_dump} \
         pending_rows={pending_rows} new_after={} synced_after={synced_after} erp_customers={} \
         followups={} dup_khid={dup_khid} dup_followups={dup_followups} lost={lost} lost_followups={lost_followups}",
        passing.len(),
        rejected.len(),
        after.len(),
        customers.len(),
        signals.len(),
    );
    assert_eq!(synced_after, passing.len());
    assert_eq!(
        customers.len(),
        passing.len(),
        "one ERP customer per passing contact"
    );
    assert_eq!(
        (dup_khid, lost, dup_followups, lost_followups),
        (0, 0, 0, 0)
    );
    Ok(())
}
