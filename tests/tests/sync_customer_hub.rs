//! The wxauto platform's customer hub end to end (issue 15): its own tables translated to
//! Postgres (`sql/customer_hub.sql`: UUID contacts, the bucket on threads, scores by thread,
//! messages, identity fields in a second table), described to erp_sync by payload views and wired
//! by change sources — against the vendor-strict simulator, with a sidecar that polls only every
//! 10 minutes, so whatever syncs "at once" was woken by the commit.

mod sync_util;

use anyhow::Result;
use e2e::wait_until;
use std::time::Duration;
use sync_util::{field, World};

const HUB: &str = include_str!("../../sql/customer_hub.sql");
const SETTLE: Duration = Duration::from_secs(60);
/// Far below the 10-minute poll: only the NOTIFY of the commit can make a sync this quick.
const AT_ONCE: Duration = Duration::from_secs(20);
const POLL: (&str, &str) = ("ERP_SYNC_ENGINE_POLL_INTERVAL_MS", "600000");

const WHITE: &str = "0b6f2c1e-8d4a-4f6b-9c3e-2a1d5e7f9b0c";
const GRAY: &str = "7d1e0f3a-2b4c-4d5e-8f6a-9b0c1d2e3f4a";
const BLACK: &str = "c3a9e5d1-6f2b-4a8c-9d0e-1f2a3b4c5d6e";
const LATE: &str = "5e8f1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

/// One contact as the platform writes it: identity row, contact, thread in `bucket`, a score.
fn hub_contact(w: &World, key: &str, n: i64, bucket: &str, score: i32) -> Result<()> {
    w.exec(&format!(
        "INSERT INTO hub.customers_unified (wechat_id, company_name, real_name, phone, phone_verified, erp_customer_type, intent_score)
         VALUES ('wx_hub_{n}', '杭州中台科技有限公司{n}', '中台客户{n}', '1380013{n:04}', true, 1, 12.5);
         INSERT INTO hub.contacts (id, wx_id, remark) VALUES ('{key}', 'wx_hub_{n}', '展会');
         INSERT INTO hub.threads (id, contact_id, bucket, topic) VALUES ('t-{key}', '{key}', '{bucket}', '想采购100台设备');
         INSERT INTO hub.signals (id, thread_id, total_score, bucket) VALUES ('s-{key}', 't-{key}', {score}, '{bucket}');"
    ))
}

fn status(w: &World, key: &str) -> Result<(String, String)> {
    let rows = w.query(
        "SELECT sync_state, admission_reasons::text FROM erp_sync.contact_status WHERE contact_id = $1",
        &[&key],
    )?;
    Ok(rows
        .first()
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or_default())
}

#[test]
fn the_customer_hub_syncs_through_its_payload_views() -> Result<()> {
    customer_hub("direct")
}

/// The same with the capture log: the platform's writes only log keys; every decision (the
/// rejections of GRAY and BLACK included) is made by the sidecar's expansion.
#[test]
fn the_customer_hub_syncs_the_same_with_the_capture_log() -> Result<()> {
    customer_hub("log")
}

fn customer_hub(mode: &str) -> Result<()> {
    let w = World::start()?;
    w.exec(&format!(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('capture.mode', '{mode}') \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    ))?;
    w.exec(HUB)?;
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.check_sources() WHERE severity = 'error'")?,
        0,
        "the hub's views pass check_sources()"
    );
    hub_contact(&w, WHITE, 1, "WHITE", 92)?;
    hub_contact(&w, GRAY, 2, "GRAY", 80)?;
    hub_contact(&w, BLACK, 3, "BLACK", 95)?;
    if mode == "log" {
        assert_eq!(
            w.count("SELECT count(*) FROM erp_sync.outbox")?,
            0,
            "nothing decided yet"
        );
        assert_eq!(w.count("SELECT count(*) FROM erp_sync.rejections")?, 0);
        assert_eq!(
            w.count("SELECT count(*) FROM erp_sync.contact_status WHERE sync_state = 'pending'")?,
            3,
            "captured work is visible as pending"
        );
    }
    let s = w.sidecar("w1", &[POLL])?;
    // the first drain is woken by the sidecar's start-up claim, then by NOTIFY only
    assert!(
        wait_until(SETTLE, || w
            .erp_by_khid(&format!("WX{WHITE}"))
            .is_ok_and(|f| f.len() == 1)),
        "the admitted contact reached the ERP"
    );
    w.settle(SETTLE, &[&s])?;

    let white = w.erp_by_khid(&format!("WX{WHITE}"))?;
    assert_eq!(
        field(&white[0], "name").as_deref(),
        Some("杭州中台科技有限公司1")
    );
    assert_eq!(
        field(&white[0], "jz").as_deref(),
        Some("175"),
        "score 92 → jz 175"
    );
    assert_eq!(field(&white[0], "ly").as_deref(), Some("171"));
    assert_eq!(
        field(&white[0], "intsort").as_deref(),
        Some("1"),
        "customer type 1 → 单位客户"
    );
    assert_eq!(
        field(&white[0], "product").as_deref(),
        Some("想采购100台设备"),
        "the thread's topic"
    );
    assert_eq!(field(&white[0], "mobile").as_deref(), Some("13800130001"));
    assert_eq!(status(&w, WHITE)?.0, "synced");
    let (state, reasons) = status(&w, GRAY)?;
    assert_eq!(state, "rejected");
    assert!(reasons.contains("'grey' is not 'white'"), "{reasons}");
    let (state, reasons) = status(&w, BLACK)?;
    assert_eq!(state, "rejected");
    assert!(reasons.contains("'black' is not 'white'"), "{reasons}");
    assert!(w.erp_by_khid(&format!("WX{GRAY}"))?.is_empty());

    // GRAY → WHITE on the thread: synced at once (the poll is 10 minutes away)
    w.exec(&format!(
        "UPDATE hub.threads SET bucket = 'WHITE' WHERE contact_id = '{GRAY}'"
    ))?;
    assert!(
        wait_until(AT_ONCE, || w
            .erp_by_khid(&format!("WX{GRAY}"))
            .is_ok_and(|f| f.len() == 1)),
        "the GRAY → WHITE contact was not synced within {AT_ONCE:?}:\n{}",
        s.proc.output()
    );
    w.settle(SETTLE, &[&s])?;
    assert_eq!(status(&w, GRAY)?.0, "synced");

    // a contact written while the sidecar idles: its rejection is recorded at once, with the
    // reason (in log mode by the expansion the commit's NOTIFY wakes, not by the 10-minute poll)
    let written = std::time::Instant::now();
    hub_contact(&w, LATE, 4, "BLACK", 90)?;
    assert!(
        wait_until(AT_ONCE, || status(&w, LATE).is_ok_and(|(state, why)| {
            state == "rejected" && why.contains("'black' is not 'white'")
        })),
        "no rejection for the late BLACK contact within {AT_ONCE:?}: {:?}",
        status(&w, LATE)?
    );
    println!(
        "CUSTOMER_HUB mode={mode} late_rejection_visible_after_ms={}",
        written.elapsed().as_millis()
    );

    // a message becomes a follow-up of its contact; the black contact's is not sent
    w.exec(&format!(
        "INSERT INTO hub.messages (thread_id, content) VALUES ('t-{WHITE}', '已经签约了'), ('t-{BLACK}', '我要报价')"
    ))?;
    // a new score on the thread resyncs the contact: jz follows it
    w.exec(&format!(
        "INSERT INTO hub.signals (id, thread_id, total_score, bucket) VALUES ('s2-{WHITE}', 't-{WHITE}', 65, 'WHITE')"
    ))?;
    w.settle(SETTLE, &[&s])?;
    let ord = field(&white[0], "ord");
    let sent: Vec<_> = w
        .erp_followups()?
        .into_iter()
        .filter(|f| field(f, "ord") == ord && field(f, "@intro2").as_deref() == Some("已经签约了"))
        .collect();
    assert_eq!(sent.len(), 1, "the message's follow-up, once");
    let white = w.erp_by_khid(&format!("WX{WHITE}"))?;
    assert_eq!(white.len(), 1, "still one customer");
    assert_eq!(
        field(&white[0], "jz").as_deref(),
        Some("176"),
        "score 65 → jz 176"
    );

    // BLACK never syncs: not after a message, not after an identity edit
    w.exec(
        "UPDATE hub.customers_unified SET address = '杭州市西湖区' WHERE wechat_id = 'wx_hub_3'",
    )?;
    w.settle(SETTLE, &[&s])?;
    assert!(
        w.erp_by_khid(&format!("WX{BLACK}"))?.is_empty(),
        "BLACK reached the ERP"
    );
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.outbox WHERE contact_id = '{BLACK}' AND status <> 'skipped'"
        ))?,
        0,
        "nothing of BLACK was queued to be sent"
    );
    assert_eq!(w.erp_customers()?.len(), 2, "WHITE and GRAY only");
    Ok(())
}
