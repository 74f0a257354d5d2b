//! `#[pg_test]`s: admission: the optional rules and scores given as text.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::*;
    use pgrx::prelude::*;
    use serde_json::json;

    /// A platform that stores scores as text (a Python platform): '85', ' 85 ', '85.0' are that
    /// number; other text is a recorded rejection with the reason.
    #[pg_test]
    fn scores_given_as_text_are_numbers() {
        serial();
        run("CREATE SCHEMA crm");
        run("CREATE TABLE crm.people (pid bigint PRIMARY KEY, type text, name text, phone text, phone_verified boolean, score text)");
        run(r#"SELECT erp_sync.track('crm.people', 'contact', '{"id": "pid"}')"#);
        run("INSERT INTO crm.people VALUES
             (1, 'personal', '王小明', '13800130001', true, '85'),
             (2, 'personal', '王小红', '13800130002', true, ' 85 '),
             (3, 'personal', '王小刚', '13800130003', true, '85.0'),
             (4, 'personal', '王小强', '13800130004', true, '八十五'),
             (5, 'personal', '王小亮', '13800130005', true, '59.5')");
        assert_eq!(
            outbox("kind = 'customer' AND contact_id IN ('1', '2', '3')"),
            3
        );
        assert_eq!(
            text("SELECT reasons::text FROM erp_sync.rejections WHERE contact_id = '4'"),
            r#"["score: expected a number, got text '八十五'"]"#
        );
        assert_eq!(
            text("SELECT reasons::text FROM erp_sync.rejections WHERE contact_id = '5'"),
            r#"["score: 59.5 is below the minimum 60"]"#
        );
    }

    /// The spec's optional quality requirements: off by default; on, each has its own reason, and
    /// with require_conversation a contact's first signal admits it (customer queued before the
    /// follow-up, rejection cleared).
    #[pg_test]
    fn optional_admission_requirements() {
        serial();
        platform();
        run(
            "INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             VALUES (1, 'personal', '王小明', '13800130001', true, 80, 'white')",
        );
        assert_eq!(
            outbox("contact_id = '1' AND kind = 'customer'"),
            1,
            "off by default"
        );
        run("INSERT INTO erp_sync.settings (key, value) VALUES
             ('admission.require_address', 'true'), ('admission.require_wechat', 'on'),
             ('admission.require_conversation', 'TRUE')");
        run("INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status, address, wechat_id)
             VALUES (2, 'personal', '王小红', '13800130002', true, 80, 'white', '', NULL),
                    (3, 'personal', '王小刚', '13800130003', true, 80, 'white', '上海市浦东新区世纪大道1号', 'wx_3')");
        assert_eq!(
            jsonb("SELECT reasons FROM erp_sync.rejections WHERE contact_id = '2'"),
            json!([
                "address: no detailed address (admission.require_address)",
                "wechat_id: no WeChat id (admission.require_wechat)",
                "conversation: no communication record yet (admission.require_conversation)"
            ])
        );
        assert_eq!(
            jsonb("SELECT reasons FROM erp_sync.rejections WHERE contact_id = '3'"),
            json!(["conversation: no communication record yet (admission.require_conversation)"])
        );
        assert_eq!(outbox("contact_id IN ('2', '3')"), 0);
        // the first message admits contact 3: customer first, then the follow-up
        run("INSERT INTO mp.signals (id, contact_id, content) VALUES (10, 3, '你好，想了解价格')");
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.rejections WHERE contact_id = '3'"),
            0
        );
        assert_eq!(
            text("SELECT string_agg(kind || ':' || status, ',' ORDER BY id) FROM erp_sync.outbox WHERE contact_id = '3'"),
            "customer:pending,followup:pending"
        );
        assert_eq!(
            jsonb("SELECT erp_sync.contact_payload('3')")["admission"]["passed"],
            json!(true)
        );
        // contact 2's message does not admit it (address, wechat still missing)
        run("INSERT INTO mp.signals (id, contact_id, content) VALUES (11, 2, '你好')");
        assert_eq!(
            text("SELECT string_agg(kind || ':' || status, ',' ORDER BY id) FROM erp_sync.outbox WHERE contact_id = '2'"),
            "followup:skipped"
        );
        assert_eq!(
            jsonb("SELECT erp_sync.request_sync('2')")["status"],
            json!("rejected")
        );
        // a setting that is not a boolean warns and keeps the default (off)
        run("UPDATE erp_sync.settings SET value = 'maybe' WHERE key LIKE 'admission.require_%'");
        run("UPDATE mp.contacts SET name = '王小红红' WHERE id = 2");
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.rejections WHERE contact_id = '2'"),
            0
        );
    }
}
