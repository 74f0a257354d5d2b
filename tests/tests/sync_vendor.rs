//! The vendor's protocol end to end, against the simulator in its default vendor-strict mode
//! (`docs/zhibang-protocol.md`): exact lookups over fuzzy filters among hundreds of customers whose
//! khids share prefixes with ours, saves whose replies get lost, list calls failing with status 11,
//! SIGKILLed sidecars — and one ERP session for a fleet of sidecars on a single-session server.

mod sync_util;

use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use sync_util::{field, mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(150);

/// Customers typed into the ERP by hand whose khids contain ours: `WX{i}0000`, `WX{i}-旧`,
/// `OLDWX{i}` for i in 1..=n (the fuzzy `khid=WX{i}` filter returns them all).
fn seed_prefix_customers(w: &World, n: i64) -> Result<Vec<String>> {
    let mut khids = Vec::new();
    let mut batch = Vec::new();
    for i in 1..=n {
        for k in [
            format!("WX{i}0000"),
            format!("WX{i}-旧"),
            format!("OLDWX{i}"),
        ] {
            batch.push(json!({"intsort": 2, "fields": {
                "name": format!("手工客户{k}"), "khid": k, "sort1": "12", "person_name": "手工"}}));
            khids.push(k);
        }
    }
    let v = w.sim.post("/_sim/customers", &Value::Array(batch))?;
    let got = v.get("ords").and_then(Value::as_array).map_or(0, Vec::len);
    if got != khids.len() {
        bail!("seeded {got} of {} customers: {v}", khids.len());
    }
    Ok(khids)
}

#[test]
fn prefix_khids_lost_replies_status11_and_sigkills() -> Result<()> {
    let w = World::start()?;
    let n = 100;
    let seeded = seed_prefix_customers(&w, n)?;
    let mut ids = Vec::new();
    for i in 0..n {
        let c = if i % 4 == 0 {
            NewContact::company(
                &format!("客户{i:03}"),
                &format!("公司{i:03}"),
                &mobile(5000 + i),
            )
        } else {
            NewContact::personal(&format!("客户{i:03}"), &mobile(5000 + i))
        };
        let id = w.contact(&c)?;
        for k in 0..2 {
            w.signal(id, &format!("c{id}-{k} 考虑中"))?;
        }
        ids.push(id);
    }
    assert_eq!(
        ids.first().copied(),
        Some(1),
        "khids WX1..WX{n} share prefixes with the seeds"
    );
    // A fifth of the customer saves are stored but their reply is lost; list and detail calls
    // fail with status 11 now and then.
    w.faults(json!({"lost_reply_rate": 0.2, "status11_rate": 0.03, "paths": ["custom/"], "latency_ms": 3}))?;
    // Small pages: every khid lookup reads several pages of the fuzzy filter.
    let env = [
        ("ERP_SYNC_ERP_LOOKUP_PAGE_SIZE", "20"),
        ("ERP_SYNC_ENGINE_MAX_ATTEMPTS", "30"),
    ];
    let mut s = w.sidecar("w1", &env)?;
    let mut kills = 0;
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(1500 + 400 * round));
        s.proc.kill()?;
        kills += 1;
        // Alternate: the same worker id gives its rows back at start, another waits for leases.
        let worker = if round % 2 == 0 { "w2" } else { "w1" };
        s = w.sidecar(worker, &env)?;
    }
    let (in_doubt_sent, in_doubt_unsent) = w.settle_resolving(SETTLE, &[&s])?;
    let stats = w.sim.get("/_sim/stats")?;
    eprintln!(
        "kills={kills} lost_replies={} status11={} requests={} in_doubt_sent={in_doubt_sent} in_doubt_unsent={in_doubt_unsent}",
        stats["lost_replies"], stats["status11"], stats["requests"]
    );
    assert!(stats["lost_replies"].as_u64().unwrap_or(0) > 0, "{stats}");
    assert!(stats["status11"].as_u64().unwrap_or(0) > 0, "{stats}");

    // 0 duplicates, 0 missing; the seeds untouched.
    let customers = w.erp_customers()?;
    let mut by_khid: HashMap<String, Vec<&Value>> = HashMap::new();
    for c in &customers {
        if let Some(k) = field(c, "khid") {
            by_khid.entry(k).or_default().push(c);
        }
    }
    let mut missing = Vec::new();
    let mut duplicated = Vec::new();
    for id in &ids {
        match by_khid.get(&format!("WX{id}")).map(Vec::len).unwrap_or(0) {
            0 => missing.push(*id),
            1 => {}
            _ => duplicated.push(*id),
        }
    }
    assert!(
        missing.is_empty() && duplicated.is_empty(),
        "missing {missing:?}, duplicated {duplicated:?}"
    );
    for id in &ids {
        let c = by_khid[&format!("WX{id}")][0];
        assert_eq!(
            field(c, "sort1").as_deref(),
            Some(e2e::SIM_CATEGORY),
            "contact {id}: {c}"
        );
        assert!(
            field(c, "person_name").is_some_and(|p| !p.is_empty()),
            "contact {id}: {c}"
        );
        assert_eq!(
            w.erp_ord(*id)?.map(|o| o.to_string()),
            field(c, "ord"),
            "contact {id} linked to its customer"
        );
    }
    for k in &seeded {
        let found = by_khid.get(k).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(found.len(), 1, "seed {k}");
        assert_eq!(
            found[0]["saves"],
            json!(0),
            "seed {k} was written to: {}",
            found[0]
        );
    }
    assert_eq!(customers.len(), seeded.len() + ids.len());
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status NOT IN ('done', 'skipped')")?,
        0
    );

    // Every follow-up carries the vendor's required template, 跟进方式 and 日程类型, and its text.
    let fu = w.erp_followups()?;
    for f in &fu {
        for k in ["intro", "sort", "plantype"] {
            assert!(
                field(f, k).is_some_and(|v| !v.is_empty()),
                "follow-up without {k}: {f}"
            );
        }
        assert_eq!(field(f, "sort").as_deref(), Some("484"), "{f}");
        assert_eq!(field(f, "plantype").as_deref(), Some("0"), "{f}");
    }
    let mut resent = 0;
    for id in &ids {
        let ord = w.erp_ord(*id)?.map(|o| o.to_string());
        for k in 0..2 {
            let text = format!("c{id}-{k} 考虑中");
            let sent = fu
                .iter()
                .filter(|f| {
                    field(f, "ord") == ord && field(f, "@intro2").as_deref() == Some(text.as_str())
                })
                .count();
            assert!(sent >= 1, "follow-up {text:?} of contact {id} missing");
            resent += sent - 1;
        }
    }
    eprintln!("follow-ups: {} stored, {resent} sent twice", fu.len());
    assert_eq!(
        resent, 0,
        "engine.in_doubt_followups = hold: nothing is sent twice"
    );
    Ok(())
}

/// A server that keeps one online session per user ends the previous session at every login.
/// Three sidecars with one ERP account share the session through `erp_sync.erp_session`: a
/// handful of logins per run, not one per request, and nobody logs anybody out.
#[test]
fn three_sidecars_one_session() -> Result<()> {
    let w = World::start_with(&["--single-session"])?;
    w.faults(json!({"latency_ms": 5, "jitter_ms": 10}))?;
    let mut ids = Vec::new();
    for i in 0..45 {
        let id = w.contact(&NewContact::personal(
            &format!("会话{i:02}"),
            &mobile(7000 + i),
        ))?;
        w.signal(id, &format!("s{id} 谈的很好"))?;
        ids.push(id);
    }
    let small = [("ERP_SYNC_ENGINE_BATCH_SIZE", "4")];
    let a = w.sidecar("a", &small)?;
    let b = w.sidecar("b", &small)?;
    let c = w.sidecar("c", &small)?;
    w.settle(SETTLE, &[&a, &b, &c])?;
    let before = w.sim.get("/_sim/stats")?;
    // The server ends every session at once: one of the fleet logs in again, the others take it.
    w.faults(json!({"expire_sessions_now": true}))?;
    for i in 45..60 {
        let id = w.contact(&NewContact::personal(
            &format!("会话{i:02}"),
            &mobile(7000 + i),
        ))?;
        ids.push(id);
    }
    w.settle(SETTLE, &[&a, &b, &c])?;
    let after = w.sim.get("/_sim/stats")?;
    eprintln!("before the expiry: {before}\nafter: {after}");
    let logins = after["logins_ok"].as_u64().unwrap_or(u64::MAX);
    assert!(
        logins <= 3,
        "one login per expiry for the fleet, got {logins}: {after}"
    );
    assert_eq!(
        after["sessions_replaced"],
        json!(0),
        "no sidecar logged another out: {after}"
    );
    let stored = w.count("SELECT count(*) FROM erp_sync.erp_session")?;
    assert_eq!(stored, 1);
    for id in &ids {
        assert_eq!(w.erp_by_khid(&format!("WX{id}"))?.len(), 1, "contact {id}");
    }
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status NOT IN ('done', 'skipped')")?,
        0
    );
    Ok(())
}
