//! `#[pg_test]`s: bad input never fails the platform's write.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::*;
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    #[pg_test]
    fn custom_table_with_own_names_and_wrong_types_never_fails_the_write() {
        serial();
        run("CREATE SCHEMA crm");
        run(
            "CREATE TABLE crm.people (pid bigint PRIMARY KEY, kind text, nm text, mobile bigint,
                                     ok text, pts text, ls text, wx int, memo text)",
        );
        let map = jsonb(
            r#"SELECT erp_sync.track('crm.people', 'contact',
                 '{"id":"pid","type":"kind","name":"nm","phone":"mobile","phone_verified":"ok",
                   "score":"pts","list_status":"ls","wechat_id":"wx","notes":"memo"}')"#,
        );
        assert_eq!(map["columns"]["phone"], json!("mobile"));
        run("INSERT INTO crm.people VALUES (1, 'personal', '孙八八', 13800138000, 'true', 'ninety-nine', 'white', 42, NULL)");
        let reasons =
            jsonb("SELECT reasons FROM erp_sync.rejections WHERE contact_id = '1'").to_string();
        assert!(
            reasons.contains("phone: expected text, got number"),
            "{reasons}"
        );
        assert!(
            reasons.contains("phone_verified: expected boolean, got text"),
            "{reasons}"
        );
        assert!(
            reasons.contains("score: expected a number, got text 'ninety-nine'"),
            "{reasons}"
        );
        // all NULLs (but the id), and a NULL id
        run("INSERT INTO crm.people (pid) VALUES (2)");
        run("INSERT INTO crm.people (pid) VALUES (3)");
        assert_eq!(int("SELECT count(*) FROM crm.people"), 3);
        assert_eq!(int("SELECT count(*) FROM erp_sync.rejections"), 3);
        // the reference table too
        platform();
        run("INSERT INTO mp.contacts (id) VALUES (9)");
        run("INSERT INTO mp.contacts (id, name, phone, score) VALUES (10, NULL, NULL, NULL)");
        assert_eq!(int("SELECT count(*) FROM mp.contacts"), 2);
    }

    #[pg_test]
    fn huge_odd_and_hostile_values_never_fail_the_write() {
        serial();
        platform();
        let big = "长".repeat(40_000); // ~120 KB in UTF-8
        run(&format!(
            "INSERT INTO mp.contacts (id, type, name, company, phone, phone_verified, score, list_status, notes)
             VALUES (1, 'company', '{big}', '{big}', '{big}', true, 99, 'white', '{big}')"
        ));
        run("INSERT INTO mp.contacts (id, type, name, company, phone, phone_verified, score, list_status, address)
             VALUES (2, 'company', '🦄👩‍👩‍👧 Zoë ﷽ 𝔘𝔫𝔦', 'Ａｃｍｅ 株式会社 \u{202e}evil', '138 0013 8000', true, 88, 'white',
                     E'line1\nline2\ttab \\\\ backslash')");
        run("INSERT INTO mp.contacts (id, type, name, company, phone, phone_verified, score, list_status)
             VALUES (3, 'company', $$Robert'); DROP TABLE erp_sync.outbox; --$$, $$x' OR '1'='1$$,
                     '13800138000', true, 70, 'white')");
        run(&format!(
            "INSERT INTO mp.signals (contact_id, content) VALUES (2, '{big} 签约 🎉')"
        ));
        run("INSERT INTO mp.threads (contact_id, score, summary) VALUES (3, 99, $$'; DELETE FROM mp.contacts; --$$)");
        assert_eq!(int("SELECT count(*) FROM mp.contacts"), 3);
        assert!(
            jsonb("SELECT reasons FROM erp_sync.rejections WHERE contact_id = '1'")
                .to_string()
                .len()
                < 300
        );
        assert_eq!(outbox("contact_id = '2' AND kind = 'customer'"), 1);
        assert_eq!(
            outbox("contact_id = '2' AND kind = 'followup' AND template_id = 106"),
            1
        );
        assert_eq!(outbox("contact_id = '3' AND kind = 'assign'"), 1);
        let payload = jsonb("SELECT erp_sync.contact_payload('2')");
        assert_eq!(payload["name"], json!("🦄👩‍👩‍👧 Zoë ﷽ 𝔘𝔫𝔦"));
    }

    #[pg_test]
    fn missing_outbox_table_never_fails_the_write() {
        serial();
        platform();
        run("ALTER TABLE erp_sync.outbox RENAME TO outbox_gone");
        good_contact(1);
        run("INSERT INTO mp.signals (contact_id, content) VALUES (1, 'hello')");
        assert_eq!(int("SELECT count(*) FROM mp.contacts"), 1);
        assert_eq!(int("SELECT count(*) FROM mp.signals"), 1);
        assert_eq!(int("SELECT count(*) FROM erp_sync.outbox_gone"), 0);
        run("ALTER TABLE erp_sync.outbox_gone RENAME TO outbox");
        good_contact(2);
        assert_eq!(outbox("contact_id = '2'"), 1);
    }

    #[pg_test]
    fn capture_failure_is_recorded_as_skipped() {
        serial();
        platform();
        run("ALTER TABLE erp_sync.rejections RENAME TO rejections_gone");
        run("INSERT INTO mp.contacts (id, name) VALUES (1, 'x')"); // fails admission, cannot reject
        assert_eq!(int("SELECT count(*) FROM mp.contacts"), 1);
        let err = text(
            "SELECT last_error FROM erp_sync.outbox WHERE contact_id = '1' AND status = 'skipped'",
        );
        assert!(
            err.starts_with("capture failed: relation \"erp_sync.rejections\" does not exist"),
            "{err}"
        );
        assert_eq!(
            text("SELECT sync_state FROM erp_sync.contact_status WHERE contact_id = '1'"),
            "skipped"
        );
        run("ALTER TABLE erp_sync.rejections_gone RENAME TO rejections");
    }

    #[pg_test]
    fn dropped_tracked_column_never_fails_the_write() {
        serial();
        platform();
        run("ALTER TABLE mp.contacts DROP COLUMN name");
        run("INSERT INTO mp.contacts (id, phone) VALUES (1, '13800138000')");
        let reasons =
            jsonb("SELECT reasons FROM erp_sync.rejections WHERE contact_id = '1'").to_string();
        assert!(reasons.contains("name: missing"), "{reasons}");
        // the payload lookup still reads the row, with the dropped field as NULL
        let p = jsonb("SELECT erp_sync.contact_payload('1')");
        assert_eq!(
            (p["name"].clone(), p["phone"].clone()),
            (Value::Null, json!("13800138000"))
        );
        assert_eq!(p["admission"]["passed"], json!(false));
    }
}
