//! Sync triggers end to end (issue 16): the platform's orders table is tracked with
//! `erp_sync.track('mp.orders', 'trigger', '{"condition": "first_payment"}')`, and a customer's
//! first payment syncs it at once — no platform code. A contact whose create the ERP refused
//! (dead) is synced when its first order is paid, not when the unpaid order is written; the
//! simulator holds it once. The sidecar runs as a role granted only `erp_sync_worker`.

mod sync_util;

use anyhow::Result;
use serde_json::json;
use std::time::Duration;
use sync_util::{mobile, NewContact, World};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn first_payment_syncs_the_contact() -> Result<()> {
    let w = World::start()?;
    w.exec(
        "CREATE TABLE mp.orders (id bigserial PRIMARY KEY, contact_id bigint REFERENCES mp.contacts,
                                 amount numeric NOT NULL, first_payment boolean NOT NULL DEFAULT false);
         SELECT erp_sync.track('mp.orders', 'trigger', '{\"condition\": \"first_payment\"}');",
    )?;
    w.faults(
        json!({"refuse": [{"field": "name", "value": "付款客户", "text": "保存失败：暂不接收"}]}),
    )?;
    let s = w.sidecar("trg1", &[])?;
    let id = w.contact(&NewContact::personal("付款客户", &mobile(801)))?;
    w.settle(WAIT, &[&s])?;
    let state = |w: &World| -> Result<String> {
        Ok(w.query(
            "SELECT sync_state FROM erp_sync.contact_status WHERE contact_id = $1",
            &[&id.to_string()],
        )?[0]
            .try_get(0)?)
    };
    assert_eq!(state(&w)?, "failed", "the ERP refused the create");
    w.faults(json!({"refuse": []}))?;

    // an unpaid order asks for nothing
    let rows = |w: &World| {
        w.count(&format!(
            "SELECT count(*) FROM erp_sync.outbox WHERE contact_id = '{id}' AND kind = 'customer'"
        ))
    };
    let before = rows(&w)?;
    w.exec(&format!(
        "INSERT INTO mp.orders (id, contact_id, amount) VALUES (1, {id}, 99)"
    ))?;
    w.settle(WAIT, &[&s])?;
    assert_eq!(rows(&w)?, before);
    assert_eq!(state(&w)?, "failed");

    // the first payment syncs it
    w.exec("UPDATE mp.orders SET first_payment = true WHERE id = 1")?;
    w.settle(WAIT, &[&s])?;
    assert_eq!(rows(&w)?, before + 1, "one customer row for the payment");
    assert_eq!(state(&w)?, "synced", "{}", s.proc.output());
    assert!(w.erp_ord(id)?.is_some());
    assert_eq!(
        w.erp_khid_counts()?.get(&format!("WX{id}")).copied(),
        Some(1),
        "the ERP holds the customer once"
    );
    Ok(())
}
