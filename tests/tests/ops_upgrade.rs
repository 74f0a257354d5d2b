//! Upgrades (issue 13): 0.1.0 is released, so a database created with it must reach the current
//! version through `ALTER EXTENSION erp_sync UPDATE` (the hand-written erp_sync--0.1.0--0.2.0.sql)
//! with nothing lost (a row queued under 0.1.0's bigint contact key is still pending, its key as
//! text, and is synced afterwards), and end with the catalog of a fresh install. The 0.1.0 install script is
//! the tagged release's (pg_ext/sql/released/, scripts/released-sql.sh), run against the current
//! library.

mod sync_util;

use anyhow::Result;
use e2e::{Cluster, Sim};
use std::time::Duration;
use sync_util::{field, mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(60);

/// Every object of the extension, one line each: members, relations (ACL, comment), columns
/// (position, type, default), indexes, constraints, triggers (the capture triggers on the platform
/// tables too), views, sequences, functions (signature, properties, ACL, md5 of the source),
/// dumped tables, initial privileges. ACLs are sorted: grant order does not matter.
const CATALOG: &str = r#"
WITH ns AS (SELECT 'erp_sync'::regnamespace AS oid),
ext AS (SELECT e.oid, e.extconfig, e.extcondition FROM pg_extension e WHERE e.extname = 'erp_sync')
SELECT line FROM (
  SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid) AS line
  FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
  UNION ALL
  SELECT format('relation %s kind=%s acl=%s comment=%s options=%s', c.relname, c.relkind,
                (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(c.relacl) x),
                obj_description(c.oid, 'pg_class'), c.reloptions)
  FROM pg_class c, ns WHERE c.relnamespace = ns.oid
  UNION ALL
  SELECT format('column %s.%s #%s %s notnull=%s default=%s generated=%s identity=%s comment=%s', c.relname, a.attname, a.attnum,
                format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
                a.attgenerated, a.attidentity, col_description(c.oid, a.attnum))
  FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN ns ON c.relnamespace = ns.oid
  UNION ALL
  SELECT format('constraint %s.%s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN ns ON c.relnamespace = ns.oid
  UNION ALL
  SELECT format('trigger %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
  FROM pg_trigger t WHERE NOT t.tgisinternal
  UNION ALL
  SELECT format('view %s %s', c.relname, pg_get_viewdef(c.oid))
  FROM pg_class c JOIN ns ON c.relnamespace = ns.oid WHERE c.relkind IN ('v', 'm')
  UNION ALL
  SELECT format('sequence %s type=%s start=%s inc=%s min=%s max=%s cache=%s cycle=%s', c.relname,
                s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN ns ON c.relnamespace = ns.oid
  UNION ALL
  SELECT format('function %s(%s) returns %s kind=%s lang=%s volatile=%s strict=%s secdef=%s parallel=%s leakproof=%s cost=%s rows=%s config=%s acl=%s src=%s bin=%s comment=%s',
                p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.prokind, l.lanname,
                p.provolatile, p.proisstrict, p.prosecdef, p.proparallel, p.proleakproof, p.procost, p.prorows,
                p.proconfig, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(p.proacl) x),
                md5(p.prosrc), p.probin, obj_description(p.oid, 'pg_proc'))
  FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid JOIN pg_language l ON l.oid = p.prolang
  UNION ALL
  SELECT format('dumped %s %s', u.tbl::regclass, u.cond)
  FROM ext, unnest(ext.extconfig, ext.extcondition) AS u(tbl, cond)
  UNION ALL
  SELECT format('initpriv %s %s %s', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), ip.privtype,
                (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(ip.initprivs) x))
  FROM pg_init_privs ip
  WHERE ip.privtype = 'e'
  UNION ALL
  SELECT format('schema %s acl=%s', n.nspname, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(n.nspacl) x))
  FROM pg_namespace n JOIN ns ON n.oid = ns.oid
) l ORDER BY line
"#;

fn catalog(pg: &Cluster, db: &str) -> Result<Vec<String>> {
    Ok(pg
        .connect_db(db)?
        .query(CATALOG, &[])?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect())
}

/// The type of `contact_id` in outbox, rejections, customer_link, sync_log, reconcile_items.
fn key_types(w: &World) -> Result<String> {
    Ok(w.query(
        "SELECT string_agg(format_type(a.atttypid, a.atttypmod), ',' ORDER BY t.n)
         FROM unnest(ARRAY['outbox', 'rejections', 'customer_link', 'sync_log', 'reconcile_items'])
              WITH ORDINALITY AS t(rel, n)
         JOIN pg_attribute a ON a.attrelid = ('erp_sync.' || t.rel)::regclass AND a.attname = 'contact_id'",
        &[],
    )?[0]
        .get(0))
}

fn version(w: &World) -> Result<String> {
    Ok(w.query(
        "SELECT extversion FROM pg_extension WHERE extname = 'erp_sync'",
        &[],
    )?[0]
        .get(0))
}

#[test]
fn upgrade_from_0_1_0_keeps_data_equals_a_fresh_install_and_drains() -> Result<()> {
    let w = World {
        pg: Cluster::start_version(Some("0.1.0"))?,
        sim: Sim::start(&[])?,
    };
    assert_eq!(version(&w)?, "0.1.0");
    assert_eq!(
        w.count("SELECT count(*) FROM pg_class WHERE relname = 'erp_session'")?,
        0,
        "a 0.1.0 catalog"
    );

    // ---- written with 0.1.0: configuration, contacts (some rejected), follow-ups, all pending
    w.exec(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('assign.top_min', '90');
         INSERT INTO erp_sync.sales_reps (erp_user_id, name, tier) VALUES
             ('u_top', '金牌', 'top'), ('u_reg', '普通', 'regular');
         UPDATE erp_sync.followup_templates SET keywords = keywords || '合同'::text WHERE template_id = 106;
         DELETE FROM erp_sync.followup_templates WHERE template_id = 108;
         INSERT INTO erp_sync.followup_templates VALUES (130, ARRAY['报价'], 5, '报价');",
    )?;
    let mut passing = Vec::new();
    for n in 1..=12 {
        let c = if n % 4 == 0 {
            NewContact::company(
                &format!("升级{n:02}"),
                &format!("升级测试{n:02}有限公司"),
                &mobile(n),
            )
        } else {
            NewContact::personal(&format!("升级客户{n:02}"), &mobile(n))
        };
        let id = w.contact(&c)?;
        w.thread(id, 55 + 3 * n as i32, "升级前")?;
        passing.push(id);
    }
    let mut low = NewContact::personal("低分客户", &mobile(50));
    low.score = 20;
    let rejected = w.contact(&low)?;
    let mut signals = Vec::new(); // (contact, content, template)
    for (i, &c) in passing.iter().take(6).enumerate() {
        let (content, template) = if i % 2 == 0 {
            (format!("请报价 {i}"), "130")
        } else {
            (format!("再等等 {i}"), "120") // 108 deleted: the default
        };
        w.signal(c, &content)?;
        signals.push((c, content, template));
    }
    // one pending row queued under 0.1.0 (contact_id bigint), followed through the upgrade
    let queued_id: i64 = w.query(
        "SELECT id FROM erp_sync.outbox WHERE contact_id::text = $1::bigint::text
           AND kind = 'customer' AND status = 'pending'",
        &[&passing[0]],
    )?[0]
        .get(0);
    assert_eq!(
        key_types(&w)?,
        "bigint,bigint,bigint,bigint,bigint",
        "0.1.0 keys"
    );
    let pending_before = w.unfinished()?;
    let outbox_before = w.count("SELECT count(*) FROM erp_sync.outbox")?;
    assert!(
        pending_before >= 18,
        "customer + follow-up rows pending: {pending_before}"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.contact_status WHERE sync_state = 'pending'")?,
        passing.len() as i64
    );

    // ---- upgrade
    w.exec("ALTER EXTENSION erp_sync UPDATE")?;
    assert_eq!(version(&w)?, "0.2.0");
    w.pg.create_database("erp_fresh", None)?;
    let upgraded = catalog(&w.pg, "erp")?;
    let fresh = catalog(&w.pg, "erp_fresh")?;
    let only_upgraded: Vec<_> = upgraded.iter().filter(|l| !fresh.contains(l)).collect();
    let only_fresh: Vec<_> = fresh.iter().filter(|l| !upgraded.contains(l)).collect();
    assert!(
        only_upgraded.is_empty() && only_fresh.is_empty(),
        "upgraded catalog differs from a fresh install:\n only after the upgrade: {only_upgraded:#?}\n only in a fresh install: {only_fresh:#?}"
    );
    assert_eq!(upgraded.len(), fresh.len());
    // the data is still there; the default deleted under 0.1.0 is known as deleted
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox")?,
        outbox_before
    );
    assert_eq!(w.unfinished()?, pending_before);
    // contact keys are text now (issue 15); the row queued under 0.1.0 is there, key as text
    assert_eq!(key_types(&w)?, "text,text,text,text,text");
    let r = &w.query(
        "SELECT contact_id, status FROM erp_sync.outbox WHERE id = $1",
        &[&queued_id],
    )?[0];
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1)),
        (passing[0].to_string(), "pending".to_string())
    );
    assert_eq!(
        w.query(
            "SELECT string_agg(template_id::text, ',' ORDER BY template_id) FROM erp_sync.followup_templates_deleted",
            &[]
        )?[0]
            .get::<_, Option<String>>(0)
            .as_deref(),
        Some("108")
    );

    // ---- drain with the current sidecar, and keep writing
    let s = w.sidecar("w1", &[])?;
    let mut after = Vec::new();
    for n in 13..=15 {
        let id = w.contact(&NewContact::personal(&format!("升级后{n:02}"), &mobile(n)))?;
        w.thread(id, 80, "升级后")?;
        after.push(id);
    }
    w.signal(after[0], "签约了")?;
    signals.push((after[0], "签约了".to_string(), "106"));
    passing.extend_from_slice(&after);
    w.settle(SETTLE, &[&s])?;

    let synced =
        w.count("SELECT count(*) FROM erp_sync.contact_status WHERE sync_state = 'synced'")?;
    assert_eq!(synced, passing.len() as i64);
    assert_eq!(
        w.query(
            "SELECT sync_state FROM erp_sync.contact_status WHERE contact_id = $1::bigint::text",
            &[&rejected]
        )?[0]
            .get::<_, String>(0),
        "rejected"
    );
    let khids = w.erp_khid_counts()?;
    let dup_khid = khids.values().filter(|n| **n > 1).count();
    let lost = passing
        .iter()
        .filter(|id| !khids.contains_key(&format!("WX{id}")))
        .count();
    let followups = w.erp_followups()?;
    for (contact, content, template) in &signals {
        let sent = w.followups_of(&followups, *contact, content)?;
        assert_eq!(sent.len(), 1, "follow-up {content:?} sent once: {sent:?}");
        assert_eq!(
            field(sent[0], "intro").as_deref(),
            Some(*template),
            "template of {content:?}"
        );
    }
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status <> 'done'")?,
        0
    );
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.outbox WHERE id = {queued_id} AND status = 'done'"
        ))?,
        1,
        "the row queued under 0.1.0 was synced"
    );
    println!(
        "UPGRADE from=0.1.0 to=0.2.0 catalog_objects={} catalog_diff={} contacts={} pending_rows_at_upgrade={pending_before} \
         synced={synced} erp_customers={} followups={} dup_khid={dup_khid} lost={lost}",
        upgraded.len(),
        only_upgraded.len() + only_fresh.len(),
        passing.len(),
        khids.values().sum::<usize>(),
        signals.len(),
    );
    assert_eq!((dup_khid, lost), (0, 0));
    assert_eq!(
        khids.values().sum::<usize>(),
        passing.len(),
        "one ERP customer per contact"
    );
    Ok(())
}
