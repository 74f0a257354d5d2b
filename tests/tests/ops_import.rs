//! ERP → platform, scenario 4 closed (issue 16 item 4): a customer typed into the ERP by hand is
//! pulled, brought home with `erp_sync.import_erp_customers()` as a platform contact linked to its
//! own ord and khid (no echo: nothing is written to the ERP for the import), and a later platform
//! edit updates that same ERP customer — its khid and source (ly) kept, no duplicate.

mod sync_util;

use anyhow::{anyhow, Result};
use serde_json::{json, Value};
use std::time::Duration;
use sync_util::{field, mobile, NewContact, World};

const SETTLE: Duration = Duration::from_secs(30);
const NO_SCHEDULES: (&str, &str) = ("ERP_SYNC_SCHEDULE_ENABLED", "false");
/// Pull every source (the default pulls ly 171 only): the hand-typed customer is 172 朋友介绍.
const ALL_SOURCES: (&str, &str) = ("ERP_SYNC_SCHEDULE_PULL_LY", " ");

fn erp_customer(w: &World, ord: i64) -> Result<Value> {
    w.erp_customers()?
        .into_iter()
        .find(|c| field(c, "ord") == Some(ord.to_string()))
        .ok_or_else(|| anyhow!("no ERP customer ord {ord}"))
}

#[test]
fn a_customer_typed_into_the_erp_is_imported_then_updated_in_place() -> Result<()> {
    let w = World::start()?;
    // a platform contact synced the ordinary way
    let a = w.contact(&NewContact::personal("甲先生", &mobile(1)))?;
    let s = w.sidecar("w1", &[NO_SCHEDULES])?;
    w.settle(SETTLE, &[&s])?;
    assert!(w.erp_ord(a)?.is_some(), "contact {a} synced");
    // typed into the ERP by hand: a customer of its own, and one with contact a's mobile
    let hand_mobile = "13900008001";
    let hand = w.erp_seed_customer(
        2,
        json!({"name": "手工客户", "khid": "KH8001", "ly": "172", "mobile": hand_mobile,
               "weixinAcc": "wx_hand", "address": "杭州市西湖区", "person_name": "手工客户"}),
    )?;
    let twin = w.erp_seed_customer(
        2,
        json!({"name": "甲先生另一个", "khid": "KH8002", "ly": "172", "mobile": mobile(1),
               "person_name": "甲先生另一个"}),
    )?;
    let customers_before = w.erp_customers()?.len();
    assert_eq!(customers_before, 3);

    // ---- pull + import ----
    let out = w.erp_sync(&["pull"], &[ALL_SOURCES])?;
    assert!(out.contains("complete=true"), "{out}");
    let summary: Value = w.query("SELECT erp_sync.import_erp_customers()", &[])?[0].get(0);
    assert_eq!(summary["imported"], json!(1), "{summary}");
    assert_eq!(summary["skipped"], json!(1), "{summary}");
    assert_eq!(summary["failed"], json!(0), "{summary}");
    let skip = &summary["skipped_customers"][0];
    assert_eq!(skip["erp_ord"], json!(twin), "{summary}");
    assert!(
        skip["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("mobile already on platform contact {a}")),
        "{summary}"
    );
    let key: String = summary["contacts"][0]["contact_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no contact_id in {summary}"))?
        .to_string();
    let id: i64 = key.parse()?;
    let row = &w.query(
        "SELECT name, phone, type, wechat_id, address, list_status FROM mp.contacts WHERE id = $1",
        &[&id],
    )?[0];
    let got: Vec<Option<String>> = (0..6).map(|i| row.get(i)).collect();
    assert_eq!(
        got,
        [
            Some("手工客户"),
            Some(hand_mobile),
            Some("personal"),
            Some("wx_hand"),
            Some("杭州市西湖区"),
            Some("grey") // the platform's default: vetting is the platform's
        ]
        .map(|v| v.map(str::to_string))
        .to_vec()
    );
    let status = &w.query(
        "SELECT sync_state, erp_ord, khid FROM erp_sync.contact_status WHERE contact_id = $1",
        &[&key],
    )?[0];
    assert_eq!(status.get::<_, String>(0), "synced");
    assert_eq!(status.get::<_, Option<i64>>(1), Some(hand));
    assert_eq!(
        status.get::<_, Option<String>>(2).as_deref(),
        Some("KH8001")
    );
    // no echo: nothing queued, nothing written to the ERP
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.outbox WHERE contact_id = '{key}'"
        ))?,
        0
    );
    w.settle(SETTLE, &[&s])?;
    assert_eq!(w.erp_customers()?.len(), customers_before);
    assert_eq!(
        field(&erp_customer(&w, hand)?, "saves").as_deref(),
        Some("0")
    );
    // idempotent
    let again: Value = w.query("SELECT erp_sync.import_erp_customers()", &[])?[0].get(0);
    assert_eq!(again["imported"], json!(0), "{again}");
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.erp_only_customers")?,
        1
    );

    // ---- the platform vets and edits it: the same ERP customer is updated ----
    w.exec(&format!(
        "UPDATE mp.contacts SET name = '手工客户改名', list_status = 'white', phone_verified = true, score = 80
         WHERE id = {id}"
    ))?;
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.outbox WHERE contact_id = '{key}' AND kind = 'customer'"
        ))?,
        1
    );
    w.settle(SETTLE, &[&s])?;
    assert_eq!(
        w.rows_of(id)?
            .iter()
            .filter(|(kind, _, _)| kind == "customer")
            .map(|(_, status, e)| (status.clone(), e.clone()))
            .collect::<Vec<_>>(),
        vec![("done".to_string(), None)]
    );
    let c = erp_customer(&w, hand)?;
    assert_eq!(field(&c, "name").as_deref(), Some("手工客户改名"));
    assert_eq!(field(&c, "khid").as_deref(), Some("KH8001"), "its own khid");
    assert_eq!(field(&c, "ly").as_deref(), Some("172"), "its own source");
    assert_eq!(w.erp_ord(id)?, Some(hand));
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.sync_log WHERE contact_id = '{key}' AND action IN ('update', 'supplement')
               AND outcome = 'success' AND erp_ord = {hand}"
        ))?,
        1
    );
    // 0 duplicates: no new customer, one per khid, one per mobile
    let all = w.erp_customers()?;
    assert_eq!(all.len(), customers_before, "no customer created");
    assert!(
        w.erp_khid_counts()?.values().all(|n| *n == 1),
        "{:?}",
        w.erp_khid_counts()?
    );
    assert_eq!(
        all.iter()
            .filter(|c| field(c, "mobile").as_deref() == Some(hand_mobile))
            .count(),
        1
    );
    assert!(w.erp_by_khid(&format!("WX{id}"))?.is_empty(), "no WX{id}");
    Ok(())
}
