//! Follow-ups are never sent twice without someone choosing it: a follow-up whose send began but
//! whose result was not recorded (the ERP's reply lost, the sidecar killed mid-send) is
//! `in_doubt` — visible in `contact_status`, `alerts` and the queue, holding its contact's later
//! rows — until `erp_sync.resolve_in_doubt(id, sent)`. `engine.in_doubt_followups = "resend"`
//! keeps the at-least-once behaviour.

mod sync_util;

use anyhow::Result;
use serde_json::json;
use std::time::Duration;
use sync_util::{field, mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(60);

fn followups_of(w: &World, contact: i64) -> Result<Vec<String>> {
    let ord = w.erp_ord(contact)?.map(|o| o.to_string());
    Ok(w.erp_followups()?
        .iter()
        .filter(|f| field(f, "ord") == ord)
        .filter_map(|f| field(f, "@intro2"))
        .collect())
}

fn followup_rows(w: &World, contact: i64) -> Result<Vec<(i64, String)>> {
    Ok(w.query(
        "SELECT id, status FROM erp_sync.outbox WHERE contact_id = $1::bigint::text AND kind = 'followup' ORDER BY id",
        &[&contact],
    )?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect())
}

fn sql_state(w: &World, sql: &str) -> Option<String> {
    match w.pg.client().and_then(|mut c| Ok(c.batch_execute(sql)?)) {
        Ok(()) => None,
        Err(e) => e
            .downcast_ref::<postgres::Error>()
            .and_then(|e| e.code())
            .map(|c| c.code().to_string()),
    }
}

#[test]
fn a_followup_whose_reply_is_lost_waits_for_a_person() -> Result<()> {
    let w = World::start()?;
    let id = w.contact(&NewContact::personal("存疑客户", &mobile(1200)))?;
    // The ERP stores the follow-up, then the connection drops (or a 502 comes back).
    w.faults(json!({"lost_reply_next": 1, "paths": ["reply.asp"]}))?;
    w.signal(id, "第一条消息 谈的很好")?;
    let s = w.sidecar("w1", &[])?;
    assert!(
        e2e::wait_until(SETTLE, || followup_rows(&w, id)
            .is_ok_and(|r| r.len() == 1 && r[0].1 == "in_doubt")),
        "{:?}",
        followup_rows(&w, id)
    );
    let doubt = followup_rows(&w, id)?[0].0;
    assert_eq!(
        followups_of(&w, id)?,
        ["第一条消息 谈的很好"],
        "the ERP has it once"
    );
    // Visible: contact_status, alerts, queue.
    let st = w.query(
        "SELECT sync_state, last_error FROM erp_sync.contact_status WHERE contact_id = $1::bigint::text",
        &[&id],
    )?;
    assert_eq!(st[0].get::<_, String>(0), "in_doubt");
    let why: String = st[0].get(1);
    assert!(why.contains("resolve_in_doubt"), "{why}");
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.alerts WHERE code = 'in_doubt_followups'")?,
        1
    );
    assert_eq!(
        w.count(
            "SELECT coalesce(sum(rows), 0)::bigint FROM erp_sync.queue WHERE status = 'in_doubt'"
        )?,
        1
    );
    // The contact's next follow-up waits behind it (per-contact order).
    w.signal(id, "第二条消息 约了面谈")?;
    std::thread::sleep(Duration::from_secs(2));
    let rows = followup_rows(&w, id)?;
    assert_eq!(rows[1].1, "pending", "{rows:?}");
    assert_eq!(followups_of(&w, id)?.len(), 1);

    // Only rows in doubt can be resolved, with a real SQLSTATE.
    assert_eq!(
        sql_state(
            &w,
            &format!("SELECT erp_sync.resolve_in_doubt({}, true)", rows[1].0)
        )
        .as_deref(),
        Some("55000")
    );
    assert_eq!(
        sql_state(&w, "SELECT erp_sync.resolve_in_doubt(987654321, true)").as_deref(),
        Some("P0002")
    );
    // Someone checked the ERP: it is there.
    let r = w.query("SELECT erp_sync.resolve_in_doubt($1, true)", &[&doubt])?;
    assert_eq!(r[0].get::<_, String>(0), "done");
    w.settle(SETTLE, &[&s])?;
    assert_eq!(
        followups_of(&w, id)?,
        ["第一条消息 谈的很好", "第二条消息 约了面谈"],
        "each once, in order"
    );
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.sync_log WHERE outbox_id = {doubt} AND error LIKE 'in doubt, resolved by %: sent'"
        ))?,
        1,
        "the decision is audited"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.alerts WHERE code = 'in_doubt_followups'")?,
        0
    );
    Ok(())
}

#[test]
fn a_sidecar_killed_mid_send_leaves_the_followup_in_doubt() -> Result<()> {
    let w = World::start()?;
    let id = w.contact(&NewContact::personal("中断客户", &mobile(1300)))?;
    let env = [("ERP_SYNC_ERP_TIMEOUT_MS", "60000")];
    let s = w.sidecar("w1", &env)?;
    w.settle(SETTLE, &[&s])?;
    // The follow-up's request hangs: the sidecar is killed while waiting for the answer.
    w.faults(json!({"hang_rate": 1.0, "hang_ms": 60000, "paths": ["reply.asp"]}))?;
    w.signal(id, "发送中被中断")?;
    assert!(e2e::wait_until(SETTLE, || {
        w
        .count("SELECT count(*) FROM erp_sync.outbox WHERE kind = 'followup' AND status = 'running' AND send_started_at IS NOT NULL")
        .is_ok_and(|n| n == 1)
    }));
    std::thread::sleep(Duration::from_millis(300));
    let mut s = s;
    s.proc.kill()?;
    w.faults(json!({"hang_rate": 0.0, "paths": []}))?;
    // Another worker finds it when its lease expires: in doubt, not sent again.
    let s2 = w.sidecar("w2", &env)?;
    assert!(e2e::wait_until(SETTLE, || followup_rows(&w, id)
        .is_ok_and(|r| r.len() == 1 && r[0].1 == "in_doubt")));
    std::thread::sleep(Duration::from_secs(1));
    assert!(followups_of(&w, id)?.is_empty());
    // The ERP does not have it (the request hung before it was stored): queue it again.
    let (sent, not_sent) = w.resolve_in_doubt_from_erp()?;
    assert_eq!((sent, not_sent), (0, 1));
    w.settle(SETTLE, &[&s2])?;
    assert_eq!(followups_of(&w, id)?, ["发送中被中断"]);
    Ok(())
}

#[test]
fn resend_mode_sends_a_lost_reply_again() -> Result<()> {
    let w = World::start()?;
    let id = w.contact(&NewContact::personal("重发客户", &mobile(1400)))?;
    w.faults(json!({"lost_reply_next": 1, "paths": ["reply.asp"]}))?;
    w.signal(id, "至少一次")?;
    let s = w.sidecar("w1", &[("ERP_SYNC_ENGINE_IN_DOUBT_FOLLOWUPS", "resend")])?;
    w.settle(SETTLE, &[&s])?;
    assert_eq!(
        followups_of(&w, id)?,
        ["至少一次", "至少一次"],
        "at-least-once, as chosen"
    );
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.outbox WHERE status NOT IN ('done')")?,
        0
    );
    Ok(())
}

/// An answer that says the request was not processed (503, a refused connection) is retried as
/// usual: nothing is in doubt, and the follow-up reaches the ERP once.
#[test]
fn a_followup_refused_by_an_overloaded_erp_is_simply_retried() -> Result<()> {
    let w = World::start()?;
    let id = w.contact(&NewContact::personal("重试客户", &mobile(1500)))?;
    let s = w.sidecar("w1", &[])?;
    w.settle(SETTLE, &[&s])?;
    w.faults(json!({"error_next": 2, "paths": ["reply.asp"]}))?;
    w.signal(id, "服务繁忙后重试")?;
    w.settle(SETTLE, &[&s])?;
    assert_eq!(followups_of(&w, id)?, ["服务繁忙后重试"]);
    let r = w.query(
        "SELECT status, attempts FROM erp_sync.outbox WHERE contact_id = $1::bigint::text AND kind = 'followup'",
        &[&id],
    )?;
    assert_eq!(
        (r[0].get::<_, String>(0), r[0].get::<_, i32>(1)),
        ("done".to_string(), 3),
        "two refused attempts and one that went through"
    );
    Ok(())
}
