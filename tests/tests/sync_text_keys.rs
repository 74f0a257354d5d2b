//! Contact keys that are not integers (issue 15), end to end: a platform that keys its contacts
//! by uuid (as the wxauto platform's `customer_hub` does) syncs to the vendor-strict simulator
//! with khid `WX{uuid}` (38 characters), an edit updates the SAME ERP customer, and a
//! `customer.khid_format` that gives more than the ERP's 50 characters is refused with a recorded
//! reason and sends nothing (the simulator enforces the vendor's limit on its own as well).

mod sync_util;

use anyhow::Result;
use std::time::Duration;
use sync_util::{field, mobile, World};

const SETTLE: Duration = Duration::from_secs(60);

const KEYS: [&str; 3] = [
    "0b6f2c1e-8d4a-4f6b-9c3e-2a1d5e7f9b0c",
    "7d1e0f3a-2b4c-4d5e-8f6a-9b0c1d2e3f4a",
    "c3a9e5d1-6f2b-4a8c-9d0e-1f2a3b4c5d6e",
];

/// A platform keyed by uuid: contacts, threads and signals (threads and signals have integer ids
/// of their own), tracked instead of the reference schema's tables.
fn uuid_platform(w: &World) -> Result<()> {
    w.exec(
        "CREATE SCHEMA hub;
         CREATE TABLE hub.customers (
             id uuid PRIMARY KEY DEFAULT gen_random_uuid(), type text NOT NULL DEFAULT 'personal',
             name text, company text, phone text, phone_verified boolean, score numeric,
             list_status text, wechat_id text, address text);
         CREATE TABLE hub.threads (id bigserial PRIMARY KEY, contact_id uuid REFERENCES hub.customers,
             score int, summary text);
         CREATE TABLE hub.signals (id bigserial PRIMARY KEY, contact_id uuid REFERENCES hub.customers,
             content text, ts timestamptz DEFAULT now());
         SELECT erp_sync.track('hub.customers', 'contact');
         SELECT erp_sync.track('hub.threads', 'thread');
         SELECT erp_sync.track('hub.signals', 'signal');",
    )
}

fn hub_contact(w: &World, key: &str, name: &str, n: i64) -> Result<()> {
    w.query(
        "INSERT INTO hub.customers (id, name, phone, phone_verified, score, list_status, wechat_id, address)
         VALUES ($1::text::uuid, $2, $3, true, 80, 'white', $4, '上海市浦东新区')",
        &[&key, &name, &mobile(n), &format!("wx_hub_{n}")],
    )
    .map(drop)
}

fn one_text(w: &World, sql: &str, key: &str) -> Result<Option<String>> {
    Ok(w.query(sql, &[&key])?
        .first()
        .and_then(|r| r.get::<_, Option<String>>(0)))
}

#[test]
fn uuid_contacts_sync_with_their_khid_and_updates_reach_the_same_customer() -> Result<()> {
    let w = World::start()?;
    uuid_platform(&w)?;
    for (n, key) in KEYS.iter().enumerate() {
        hub_contact(&w, key, &format!("中台客户{n}"), 100 + n as i64)?;
        w.query(
            "INSERT INTO hub.threads (contact_id, score, summary) VALUES ($1::text::uuid, 85, '想采购')",
            &[key],
        )?;
    }
    w.query(
        "INSERT INTO hub.signals (contact_id, content) VALUES ($1::text::uuid, '签约了')",
        &[&KEYS[0]],
    )?;
    // the outbox carries the uuid as text
    assert_eq!(
        w.count(&format!(
            "SELECT count(DISTINCT contact_id) FROM erp_sync.outbox WHERE contact_id IN ('{}', '{}', '{}')",
            KEYS[0], KEYS[1], KEYS[2]
        ))?,
        3
    );
    let s = w.sidecar("w1", &[])?;
    w.settle(SETTLE, &[&s])?;

    let mut ords = Vec::new();
    for (n, key) in KEYS.iter().enumerate() {
        let khid = format!("WX{key}");
        assert_eq!(khid.chars().count(), 38);
        let found = w.erp_by_khid(&khid)?;
        assert_eq!(found.len(), 1, "one ERP customer for {key}: {found:?}");
        assert_eq!(
            field(&found[0], "name").as_deref(),
            Some(format!("中台客户{n}").as_str())
        );
        let linked = one_text(
            &w,
            "SELECT erp_ord::text FROM erp_sync.customer_link WHERE contact_id = $1 AND khid = 'WX' || $1",
            key,
        )?;
        assert_eq!(linked, field(&found[0], "ord"), "customer_link of {key}");
        assert_eq!(
            one_text(
                &w,
                "SELECT sync_state FROM erp_sync.contact_status WHERE contact_id = $1",
                key
            )?
            .as_deref(),
            Some("synced")
        );
        ords.push(linked);
    }
    let followups = w.erp_followups()?;
    let sent: Vec<_> = followups
        .iter()
        .filter(|f| field(f, "ord") == ords[0] && field(f, "@intro2").as_deref() == Some("签约了"))
        .collect();
    assert_eq!(sent.len(), 1, "the follow-up, once: {followups:?}");

    // an edit of a synced contact updates the SAME ERP customer: no second one
    let before = w.erp_customers()?.len();
    w.query(
        "UPDATE hub.customers SET name = '中台客户改名', address = '杭州市西湖区' WHERE id = $1::text::uuid",
        &[&KEYS[1]],
    )?;
    w.settle(SETTLE, &[&s])?;
    let found = w.erp_by_khid(&format!("WX{}", KEYS[1]))?;
    assert_eq!(found.len(), 1, "still one ERP customer: {found:?}");
    assert_eq!(field(&found[0], "name").as_deref(), Some("中台客户改名"));
    assert_eq!(field(&found[0], "address").as_deref(), Some("杭州市西湖区"));
    assert_eq!(field(&found[0], "ord"), ords[1], "the same ord");
    assert_eq!(w.erp_customers()?.len(), before, "no customer added");
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.sync_log WHERE contact_id = '{}' AND action = 'update' AND outcome = 'success'",
            KEYS[1]
        ))?,
        1
    );
    // the logs name the contact by its key and never carry a mobile in full
    let log = s.proc.output();
    assert!(
        (100..103).all(|n| !log.contains(&mobile(n))),
        "a mobile in the sidecar log"
    );
    Ok(())
}

#[test]
fn a_khid_format_over_50_characters_is_refused_with_a_reason_and_nothing_is_sent() -> Result<()> {
    let w = World::start()?;
    uuid_platform(&w)?;
    // queued under the default format, then the format changes before a sidecar runs
    hub_contact(&w, KEYS[0], "排队客户", 200)?;
    // 'WECHAT-HUB-' + 36 + '-CN1' = 51 characters
    w.exec(
        "INSERT INTO erp_sync.settings (key, value) VALUES ('customer.khid_format', 'WECHAT-HUB-{key}-CN1')",
    )?;
    hub_contact(&w, KEYS[1], "新写客户", 201)?;

    // written under the long format: a recorded rejection with the reason, no outbox row
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.outbox WHERE contact_id = '{}'",
            KEYS[1]
        ))?,
        0
    );
    let reasons = one_text(
        &w,
        "SELECT admission_reasons::text FROM erp_sync.contact_status WHERE contact_id = $1 AND sync_state = 'rejected'",
        KEYS[1],
    )?
    .unwrap_or_default();
    assert!(
        reasons.contains("51 characters") && reasons.contains("allows 50"),
        "{reasons}"
    );

    // queued before: the sidecar ends it dead with the reason, sending nothing
    let s = w.sidecar("w1", &[])?;
    w.settle(SETTLE, &[&s])?;
    let dead = one_text(
        &w,
        "SELECT last_error FROM erp_sync.outbox WHERE contact_id = $1 AND kind = 'customer' AND status = 'dead'",
        KEYS[0],
    )?
    .unwrap_or_default();
    assert!(
        dead.contains("no khid") && dead.contains("allows 50"),
        "{dead}"
    );
    assert_eq!(
        one_text(
            &w,
            "SELECT sync_state FROM erp_sync.contact_status WHERE contact_id = $1",
            KEYS[0]
        )?
        .as_deref(),
        Some("failed")
    );
    assert!(w.erp_customers()?.is_empty(), "nothing reached the ERP");

    // the way back: a format that fits, then retry_failed() / request_sync()
    w.exec(
        "UPDATE erp_sync.settings SET value = 'WX{key}' WHERE key = 'customer.khid_format';
         SELECT erp_sync.retry_failed();",
    )?;
    let r = one_text(&w, "SELECT erp_sync.request_sync($1)->>'status'", KEYS[1])?;
    assert_eq!(r.as_deref(), Some("queued"));
    w.settle(SETTLE, &[&s])?;
    for key in &KEYS[..2] {
        assert_eq!(w.erp_by_khid(&format!("WX{key}"))?.len(), 1, "{key}");
    }
    assert_eq!(w.erp_customers()?.len(), 2);
    Ok(())
}
