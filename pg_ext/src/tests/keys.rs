//! `#[pg_test]`s of contact keys that are not integers (issue 15): a contact table keyed by
//! uuid (the wxauto platform's `customer_hub`) and one keyed by text. The key travels as text
//! through the outbox, rejections and payloads; the khid is `customer.khid_format` (`WX{key}`)
//! and a khid over the ERP's 50 characters is a recorded rejection, never a truncated khid.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{int, jsonb, one, outbox, run, serial, sqlstate, text};
    use pgrx::prelude::*;
    use serde_json::json;

    const A: &str = "0b6f2c1e-8d4a-4f6b-9c3e-2a1d5e7f9b0c";
    const B: &str = "7d1e0f3a-2b4c-4d5e-8f6a-9b0c1d2e3f4a";

    /// Contact, thread and signal tables of a platform that keys contacts by uuid (the thread's
    /// and signal's own ids stay integers: `ref_id` is bigint), all tracked.
    fn uuid_platform() {
        run("CREATE SCHEMA hub");
        run(
            "CREATE TABLE hub.contacts (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), type text,
                 name text, company text, phone text, phone_verified boolean, score numeric,
                 list_status text, wechat_id text)",
        );
        run("CREATE TABLE hub.threads (id bigint PRIMARY KEY, contact_id uuid, score int, summary text)");
        run("CREATE TABLE hub.signals (id bigint PRIMARY KEY, contact_id uuid, content text)");
        run("SELECT erp_sync.track('hub.contacts', 'contact')");
        run("SELECT erp_sync.track('hub.threads', 'thread')");
        run("SELECT erp_sync.track('hub.signals', 'signal')");
    }

    fn hub_contact(id: &str, score: i32) {
        run(&format!(
            "INSERT INTO hub.contacts (id, type, name, company, phone, phone_verified, score, list_status, wechat_id)
             VALUES ('{id}', 'personal', '王小明', NULL, '13800138001', true, {score}, 'white', 'wx_hub')"
        ));
    }

    #[pg_test]
    fn a_uuid_key_is_queued_and_rejected_as_text() {
        serial();
        uuid_platform();
        hub_contact(A, 80);
        assert_eq!(
            outbox(&format!(
                "contact_id = '{A}' AND kind = 'customer' AND status = 'pending'"
            )),
            1
        );
        // coalesced by the text key: an edit while pending writes no second row
        run(&format!(
            "UPDATE hub.contacts SET name = '王小明改' WHERE id = '{A}'"
        ));
        assert_eq!(outbox(&format!("contact_id = '{A}'")), 1);
        // the payload the sidecar reads: the key as text, khid WX{uuid} (38 characters)
        let p = jsonb(&format!("SELECT erp_sync.contact_payload('{A}')"));
        assert_eq!(p["id"], json!(A));
        assert_eq!(p["khid"], json!(format!("WX{A}")));
        assert_eq!(p["admission"]["passed"], json!(true));
        assert_eq!(
            text(&format!("SELECT erp_sync.khid('{A}')")),
            format!("WX{A}")
        );
        // admission rejections are recorded under the text key
        hub_contact(B, 20);
        assert_eq!(outbox(&format!("contact_id = '{B}'")), 0);
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM erp_sync.rejections WHERE contact_id = '{B}'"
            )),
            1
        );
        assert_eq!(
            text(&format!(
                "SELECT sync_state FROM erp_sync.contact_status WHERE contact_id = '{B}'"
            )),
            "rejected"
        );
        // threads and signals refer to the uuid; their own ids are the ref_ids
        run(&format!(
            "INSERT INTO hub.threads VALUES (10, '{A}', 90, '想采购')"
        ));
        assert_eq!(
            outbox(&format!(
                "contact_id = '{A}' AND kind = 'assign' AND ref_id = 10"
            )),
            1
        );
        run(&format!(
            "INSERT INTO hub.signals VALUES (20, '{A}', '签约了')"
        ));
        assert_eq!(
            outbox(&format!(
                "contact_id = '{A}' AND kind = 'followup' AND ref_id = 20 AND status = 'pending'"
            )),
            1
        );
        // the "sync now" button and retry_failed take the text key
        run("UPDATE erp_sync.outbox SET status = 'dead', last_error = 'x', finished_at = now()");
        let r = jsonb(&format!("SELECT erp_sync.request_sync('{A}')"));
        assert_eq!(
            (r["status"].clone(), r["khid"].clone()),
            (json!("queued"), json!(format!("WX{A}")))
        );
        assert_eq!(
            int(&format!(
                "SELECT erp_sync.retry_failed('{A}', 'followup')::int8"
            )),
            1
        );
        // a key that is not a uuid cannot name a contact of this table: a clear error
        assert!(sqlstate("SELECT erp_sync.request_sync('42')").starts_with("22P02"));
    }

    #[pg_test]
    fn a_text_key_is_kept_as_written() {
        serial();
        run("CREATE SCHEMA txt");
        run(
            "CREATE TABLE txt.people (key varchar(64), type text, name text, phone text,
                 phone_verified boolean, score int, list_status text)",
        );
        run(r#"SELECT erp_sync.track('txt.people', 'contact', '{"id": "key"}')"#);
        run("INSERT INTO txt.people VALUES
                 ('wx_abc', 'personal', '王小明', '13800138001', true, 80, 'white'),
                 ('0042', 'personal', '王小明', '13800138002', true, 80, 'white'),
                 (' 43 ', 'personal', '王小明', '13800138003', true, 80, 'white'),
                 ('', 'personal', '王小明', '13800138004', true, 80, 'white'),
                 (NULL, 'personal', '王小明', '13800138005', true, 80, 'white')");
        assert_eq!(
            text("SELECT string_agg(contact_id, ',' ORDER BY id) FROM erp_sync.outbox"),
            "wx_abc,0042"
        );
        // a key the ERP would not keep as sent (padded, empty) is a rejection with its reason
        let reasons = text(
            "SELECT string_agg(format('%L=%s', contact_id, reasons), ' ' ORDER BY contact_id)
             FROM erp_sync.rejections",
        );
        assert!(
            reasons.starts_with("''=")
                && reasons.contains("' 43 '=")
                && reasons.contains("surrounding whitespace"),
            "{reasons}"
        );
        assert_eq!(
            one::<bool>(
                "SELECT (checks->>'khid')::boolean FROM erp_sync.rejections WHERE contact_id = ' 43 '"
            ),
            Some(false)
        );
        assert_eq!(
            jsonb("SELECT erp_sync.contact_payload('0042')")["khid"],
            json!("WX0042")
        );
    }

    /// `customer.khid_format`: the one rule (erp_sync_rules::customer) with the configured
    /// format; a khid over the ERP's 50 characters is refused with a recorded reason, nothing
    /// queued, nothing truncated.
    #[pg_test]
    fn khid_format_and_its_50_character_limit() {
        serial();
        uuid_platform();
        run("INSERT INTO erp_sync.settings (key, value) VALUES ('customer.khid_format', 'MP-{key}')");
        hub_contact(A, 80);
        assert_eq!(
            jsonb(&format!("SELECT erp_sync.contact_payload('{A}')"))["khid"],
            json!(format!("MP-{A}"))
        );
        // 'WECHAT-HUB-' + 36 + '-CN' = 50: still fine
        run("UPDATE erp_sync.settings SET value = 'WECHAT-HUB-{key}-CN' WHERE key = 'customer.khid_format'");
        assert_eq!(
            text(&format!("SELECT erp_sync.khid('{A}')"))
                .chars()
                .count(),
            50
        );
        // 51 characters: rejected, with the reason, and nothing queued
        run("UPDATE erp_sync.settings SET value = 'WECHAT-HUB-{key}-CN1' WHERE key = 'customer.khid_format'");
        assert_eq!(one::<String>(&format!("SELECT erp_sync.khid('{A}')")), None);
        hub_contact(B, 80);
        assert_eq!(outbox(&format!("contact_id = '{B}'")), 0);
        let reasons = jsonb(&format!(
            "SELECT reasons FROM erp_sync.rejections WHERE contact_id = '{B}'"
        ));
        let reason = reasons[0].as_str().unwrap_or_default().to_string();
        assert!(
            reason.contains("51 characters")
                && reason.contains("allows 50")
                && reason.contains("customer.khid_format"),
            "{reasons}"
        );
        // the payload of a contact queued before the change says so too: no khid, not admitted
        let p = jsonb(&format!("SELECT erp_sync.contact_payload('{A}')"));
        assert_eq!(p["khid"], serde_json::Value::Null);
        assert_eq!(p["admission"]["passed"], json!(false));
        // a format without {key} would give every contact the same khid: refused
        run("UPDATE erp_sync.settings SET value = 'WX' WHERE key = 'customer.khid_format'");
        let r = jsonb(&format!("SELECT erp_sync.request_sync('{A}')"));
        assert_eq!(r["status"], json!("rejected"));
        assert!(
            r["admission"]["reasons"]
                .to_string()
                .contains("has no {key}"),
            "{r}"
        );
    }
}
