//! Issue 13 fix 5: the reader role sees no clear mobile, in any notation, anywhere.
//!
//! Mobiles are put in every place a reader could see them: contact phones in different notations,
//! ERP refusal texts quoting a mobile (the simulator refuses), reconcile items with mobile, name
//! and weixinAcc mismatches, ERP-only customers with mobiles in their texts, and rows written
//! directly as a writer that does not mask would write them (defence in depth: the views and the
//! write triggers must mask what the sidecar forgot). Then, as a login that is a member of
//! `erp_sync_reader` only, every relation of every schema it may SELECT is read in full, each row
//! as `row_to_json`, and no seeded mobile may appear unmasked.
//!
//! The detector is independent of the masking code: every seeded mobile has the middle digits
//! `5271`, and a leak is any run of 7 consecutive digits of a seeded mobile once separators are
//! dropped and full-width digits folded (in `erp_sync`), or the whole 11 digits (other schemas:
//! the catalogs hold many numbers, so only the full number is looked for there).

mod sync_util;

use anyhow::{bail, Context, Result};
use serde_json::json;
use std::time::Duration;
use sync_util::{NewContact, World};

const SETTLE: Duration = Duration::from_secs(40);
const NO_SCHEDULES: (&str, &str) = ("ERP_SYNC_SCHEDULE_ENABLED", "false");

/// Seeded mobile number `n`: 1385271NNNN / 1395271NNNN.
fn seed(prefix: &str, n: u32) -> String {
    format!("{prefix}5271{n:04}")
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(0xff10 + (c as u32 - '0' as u32)).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Separators a mobile may be written with; dropped before looking for digit runs.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '-'
            | '.'
            | '('
            | ')'
            | '+'
            | '\u{a0}'
            | '\u{3000}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{ff08}'
            | '\u{ff09}'
            | '\u{ff0b}'
            | '\u{ff0d}'
            | '\u{ff0e}'
    )
}

/// `s` with separators dropped and full-width digits folded to ASCII.
fn projection(s: &str) -> String {
    s.chars()
        .filter(|c| !is_separator(*c))
        .map(|c| match c {
            '\u{ff10}'..='\u{ff19}' => {
                char::from_u32(u32::from(c) - 0xff10 + u32::from('0')).unwrap_or(c)
            }
            _ => c,
        })
        .collect()
}

/// A seeded mobile leaking from `text` (`strict`: 7 consecutive digits of it, else all 11), and
/// the digits found. Later windows first: they name the mobile (all 139 seeds share `1395271`).
fn leak<'a>(text: &str, seeds: &'a [String], strict: bool) -> Option<(&'a str, String)> {
    let p = projection(text);
    let windows: Vec<(usize, usize)> = if strict {
        (0..=4).rev().map(|i| (i, i + 7)).collect()
    } else {
        vec![(0, 11)]
    };
    windows.into_iter().find_map(|(from, to)| {
        seeds
            .iter()
            .find(|m| p.contains(&m[from..to]))
            .map(|m| (m.as_str(), m[from..to].to_string()))
    })
}

fn masked(m: &str) -> String {
    format!("{}****{}", &m[..3], &m[7..])
}

#[test]
fn the_reader_sees_no_unmasked_mobile_anywhere() -> Result<()> {
    let w = World::start()?;
    let mut seeds: Vec<String> = Vec::new();
    // (seed, where) of the seeds the reader must see, masked
    let mut visible: Vec<(String, &str)> = Vec::new();

    // ---- the ERP refuses three customers with texts that quote a mobile ----
    let (r1, r2, r3) = (seed("139", 41), seed("139", 42), seed("139", 43));
    let dashed = |m: &str| format!("{}-{}-{}", &m[..3], &m[3..7], &m[7..]);
    w.faults(json!({"refuse": [
        {"field": "name", "value": "拒绝甲", "text": format!("保存失败：手机 +86 {} 已存在", dashed(&r1))},
        {"field": "name", "value": "拒绝乙", "text": format!("客户手机{}已被占用", full_width(&r2))},
        {"field": "name", "value": "拒绝丙",
         "text": format!("{{\"mobile\":\"0086 {r3}\",\"msg\":\"重复\"}} (+86){}", dashed(&r3).replace('-', "."))},
    ]}))?;
    seeds.extend([r1.clone(), r2.clone(), r3.clone()]);
    visible.extend([
        (r1.clone(), "refusal"),
        (r2.clone(), "refusal"),
        (r3.clone(), "refusal"),
    ]);

    // ---- contacts with phones in different notations ----
    let notations = |m: &str| {
        [
            format!("+86 {}-{}-{}", &m[..3], &m[3..7], &m[7..]),
            format!("0086 {m}"),
            format!("(+86){}.{}.{}", &m[..3], &m[3..7], &m[7..]),
            format!("{} {} {}", &m[..3], &m[3..7], &m[7..]),
            format!("86-{m}"),
            format!("+86-{} {} {}", &m[..3], &m[3..7], &m[7..]),
            m.to_string(),
        ]
    };
    let mut synced = Vec::new();
    for i in 0..7 {
        let m = seed("138", i as u32 + 1);
        let phone = notations(&m)[i].clone();
        seeds.push(m.clone());
        visible.push((m.clone(), "contact_status.mobile"));
        let mut c = NewContact::personal(&format!("客户{i}号"), &phone);
        c.wechat_id = Some(m.clone());
        synced.push((w.contact(&c)?, m));
    }
    // a full-width phone: not admitted, its reason quotes it (masked)
    let fw = seed("138", 8);
    seeds.push(fw.clone());
    visible.push((fw.clone(), "admission reason"));
    w.contact(&NewContact::personal("全角号码", &full_width(&fw)))?;
    let refused: Vec<i64> = [("拒绝甲", 44), ("拒绝乙", 45), ("拒绝丙", 46)]
        .into_iter()
        .map(|(name, n)| {
            let m = seed("139", n);
            seeds.push(m.clone());
            visible.push((m.clone(), "contact_status.mobile"));
            w.contact(&NewContact::personal(name, &m))
        })
        .collect::<Result<_>>()?;
    w.signal(
        synced[0].0,
        &format!("客户说很好，回电 +86 {}", synced[1].1),
    )?;

    let mut s = w.sidecar("w1", &[NO_SCHEDULES])?;
    w.settle(SETTLE, &[&s])?;
    for (id, _) in &synced {
        if w.erp_ord(*id)?.is_none() {
            bail!("contact {id} not synced: {:?}", w.rows_of(*id)?);
        }
    }
    // The sidecar stored the refusals masked already.
    for id in &refused {
        let rows = w.rows_of(*id)?;
        let err = rows[0].2.clone().unwrap_or_default();
        assert!(rows[0].1 == "dead" && err.contains("****"), "{rows:?}");
        if let Some(l) = leak(&err, &seeds, true) {
            bail!("the sidecar stored a clear mobile in outbox.last_error: {err:?} ({l:?})");
        }
    }
    let log_errors: Vec<String> = w
        .query(
            "SELECT coalesce(error, '') || coalesce(request::text, '') || coalesce(response::text, '')
             FROM erp_sync.sync_log",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for e in &log_errors {
        if let Some(l) = leak(e, &seeds, true) {
            bail!("the sidecar stored a clear mobile in sync_log: {e:?} ({l:?})");
        }
    }

    // ---- reconcile: mobile, name and weixinAcc mismatches, ERP-only customers ----
    s.proc.terminate(Duration::from_secs(15))?;
    let (changed, old_mobile) = synced[2].clone();
    let new_mobile = seed("138", 9);
    seeds.push(new_mobile.clone());
    visible.push((old_mobile.clone(), "reconcile erp_value"));
    w.exec(&format!(
        "UPDATE mp.contacts SET phone = '+86 {} {} {}', name = '改名 {}', wechat_id = 'wx {}'
         WHERE id = {changed};
         DELETE FROM erp_sync.outbox WHERE contact_id = '{changed}' AND status = 'pending';",
        &new_mobile[..3],
        &new_mobile[3..7],
        &new_mobile[7..],
        seed("138", 10),
        seed("138", 11),
    ))?;
    seeds.extend([seed("138", 10), seed("138", 11)]);
    visible.extend([
        (new_mobile.clone(), "reconcile platform_value"),
        (seed("138", 10), "reconcile name"),
        (seed("138", 11), "reconcile weixinAcc"),
    ]);
    let (e1, e2, e3, e4) = (
        seed("139", 21),
        seed("139", 22),
        seed("139", 23),
        seed("139", 24),
    );
    seeds.extend([e1.clone(), e2.clone(), e3.clone(), e4.clone()]);
    // two hand-typed ERP customers sharing a mobile (duplicate_mobile), mobiles in their texts
    for (name, khid) in [
        (format!("手工 {e2}"), format!("KH{e3}")),
        ("手工二".to_string(), "KH2".to_string()),
    ] {
        w.erp_seed_customer(
            2,
            json!({"name": name, "khid": khid, "ly": "171",
                   "mobile": format!("+86 {} {} {}", &e1[..3], &e1[3..7], &e1[7..]),
                   "weixinAcc": e4, "address": format!("上海 {}", full_width(&e3))}),
        )?;
    }
    visible.extend([
        (e1.clone(), "erp_only_customers.mobile"),
        (e2.clone(), "erp_only_customers.name"),
        (e3.clone(), "erp_only_customers.khid/address"),
        (e4.clone(), "erp_only_customers.weixin_acc"),
    ]);
    let out = w.erp_sync(&["reconcile"], &[])?;
    assert!(out.contains("reconcile: run="), "{out}");
    let fields: Vec<String> = w
        .query(
            "SELECT DISTINCT field FROM erp_sync.reconcile_items WHERE contact_id = $1::bigint::text ORDER BY 1",
            &[&changed],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(fields, ["mobile", "name", "weixinAcc"], "reconcile items");

    // ---- rows written as a writer that does not mask would write them ----
    let d: Vec<String> = (51..=58).map(|n| seed("139", n)).collect();
    seeds.extend(d.iter().cloned());
    let victim = synced[3].0;
    w.exec(&format!(
        "UPDATE erp_sync.outbox SET last_error = 'ERP refused: (+86)139.5271.0051 重复'
         WHERE id = (SELECT max(id) FROM erp_sync.outbox WHERE contact_id = '{victim}');
         INSERT INTO erp_sync.sync_log (contact_id, action, outcome, error)
         VALUES ({victim}, 'update', 'failed', '手机{}已存在');
         UPDATE erp_sync.rejections SET reasons = reasons || '[\"phone 139 5271 0053\", {{\"m\": 13952710054}}]'::jsonb;
         INSERT INTO erp_sync.alert_state (code, level, message)
         VALUES ('test', 'info', '请联系 86-{}');
         INSERT INTO erp_sync.schedule_runs (name, period_key, ok, summary)
         VALUES ('pull', 'test', false, '{{\"error\": \"ERP refused: +86 139 5271 0056\", \"n\": 8613952710057}}');
         INSERT INTO erp_sync.reconcile_items (run_id, kind, contact_id, field, platform_value, erp_value)
         SELECT max(id), 'field_mismatch', {victim}, 'name', '王 0086 {}', '王' FROM erp_sync.reconcile_runs;",
        full_width(&d[1]),
        d[4],
        d[7],
    ))?;
    for (m, place) in [
        (&d[0], "contact_status.last_error"),
        (&d[1], "recent_failures.error"),
        (&d[2], "admission_reasons"),
        (&d[3], "admission_reasons (number)"),
        (&d[4], "alert_state.message"),
        (&d[5], "schedule_runs.summary"),
        (&d[6], "schedule_runs.summary (number)"),
        (&d[7], "reconcile_report.platform_value"),
    ] {
        visible.push((m.clone(), place));
    }
    // The clear values are there for the worker-only tables (the test is not vacuous).
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE last_error LIKE '%139.5271.0051%'")?,
        1
    );

    // ---- read everything the reader may SELECT ----
    w.exec("CREATE ROLE mask_reader LOGIN IN ROLE erp_sync_reader")?;
    let mut r = postgres::Client::connect(&w.pg.url_for("erp", "mask_reader"), postgres::NoTls)?;
    let rels: Vec<(String, String)> = r
        .query(
            "SELECT n.nspname::text, format('%I.%I', n.nspname, c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
               AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
             ORDER BY 2",
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let ours: Vec<&str> = rels
        .iter()
        .filter(|(n, _)| n != "pg_catalog" && n != "information_schema")
        .map(|(_, q)| q.as_str())
        .collect();
    assert_eq!(
        ours,
        [
            "erp_sync.alert_state",
            "erp_sync.alerts",
            "erp_sync.change_sources",
            "erp_sync.contact_status",
            "erp_sync.erp_login_state",
            "erp_sync.erp_only_customers",
            "erp_sync.operator_actions",
            "erp_sync.queue",
            "erp_sync.recent_failures",
            "erp_sync.reconcile_report",
            "erp_sync.reconcile_runs",
            "erp_sync.schedule_runs",
            "erp_sync.settings_effective",
            "erp_sync.sync_triggers",
        ],
        "what erp_sync_reader may read (pg_ext/sql/SECURITY.md)"
    );
    let mut seen = String::new();
    let mut rows_read = 0usize;
    for (schema, rel) in &rels {
        let texts: Vec<String> = r
            .query(&format!("SELECT row_to_json(t)::text FROM {rel} t"), &[])
            .with_context(|| format!("reading {rel} as the reader"))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let strict = schema == "erp_sync";
        for t in &texts {
            if let Some((m, run)) = leak(t, &seeds, strict) {
                bail!("{rel} shows {m} unmasked to the reader ({run} in {t})");
            }
        }
        rows_read += texts.len();
        if strict {
            seen.extend(texts.iter().map(|t| format!("{rel}: {t}\n")));
        }
    }
    assert!(
        rows_read > 1000,
        "the catalogs were read too ({rows_read} rows)"
    );
    // Every seed the reader can see is there, masked (nothing passed by being left out).
    for (m, place) in &visible {
        assert!(
            seen.contains(&masked(m)),
            "{place}: {} not shown to the reader:\n{seen}",
            masked(m)
        );
    }

    // The sidecar's own log: no clear mobile of a refusal or of a contact either.
    let log = s.proc.output();
    if let Some(l) = leak(&log, &seeds, false) {
        bail!("the sidecar logged a clear mobile: {l:?}");
    }
    Ok(())
}
