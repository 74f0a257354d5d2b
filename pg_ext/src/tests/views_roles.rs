//! `#[pg_test]`s: the views and the roles that read them.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::*;
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn contact_status_states_and_masking() {
        serial();
        platform();
        good_contact(1); // pending
        good_contact(2); // synced
        good_contact(3); // failed
        run("INSERT INTO mp.contacts (id, name, phone) VALUES (4, '张三', '13800138000')"); // rejected
        run("INSERT INTO mp.contacts (id, name) VALUES (5, 'x')");
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now() WHERE contact_id = '2'");
        run("INSERT INTO erp_sync.customer_link (contact_id, khid, erp_ord, synced_at) VALUES (2, 'WX2', 5001, now())");
        run("UPDATE erp_sync.outbox SET status = 'dead', last_error = 'ERP said no', finished_at = now() WHERE contact_id = '3'");
        run("INSERT INTO erp_sync.rejections VALUES (99, '[]', '{}', now())"); // not a platform contact: not listed
        run("SELECT erp_sync.untrack('mp.contacts')"); // contact 6 exists before tracking
        run("INSERT INTO mp.contacts (id, name) VALUES (6, 'x')");
        run("SELECT erp_sync.track('mp.contacts', 'contact')");
        let states = text("SELECT string_agg(contact_id || '=' || sync_state, ',' ORDER BY contact_id::int8) FROM erp_sync.contact_status");
        assert_eq!(
            states,
            "1=pending,2=synced,3=failed,4=rejected,5=rejected,6=not_queued"
        );
        assert_eq!(
            int("SELECT erp_ord FROM erp_sync.contact_status WHERE contact_id = '2'"),
            5001
        );
        assert_eq!(
            text("SELECT last_error FROM erp_sync.contact_status WHERE contact_id = '3'"),
            "ERP said no"
        );
        assert_eq!(
            text("SELECT khid FROM erp_sync.contact_status WHERE contact_id = '3'"),
            "WX3"
        );
        assert_eq!(
            text("SELECT mobile FROM erp_sync.contact_status WHERE contact_id = '1'"),
            "13800130001"
        );
        run("SET LOCAL ROLE erp_sync_reader");
        assert_eq!(
            text("SELECT mobile FROM erp_sync.contact_status WHERE contact_id = '1'"),
            "138****0001"
        );
        assert!(int("SELECT count(*) FROM erp_sync.queue") >= 1);
        assert!(sqlstate("SELECT * FROM erp_sync.outbox").starts_with("42501"));
        assert!(sqlstate("SELECT * FROM mp.contacts").starts_with("42501"));
        run("RESET ROLE");
        run("SET LOCAL ROLE erp_sync_worker");
        assert_eq!(
            text("SELECT mobile FROM erp_sync.contact_status WHERE contact_id = '1'"),
            "13800130001"
        );
        assert_eq!(
            jsonb("SELECT erp_sync.contact_payload('1')")["khid"],
            json!("WX1")
        );
        assert!(sqlstate("SELECT * FROM mp.contacts").starts_with("42501"));
        assert!(sqlstate("SELECT erp_sync.track('mp.contacts', 'contact')").starts_with("42501"));
        run("RESET ROLE");
    }

    /// Every free text of the views is masked for the reader, whatever the notation of the
    /// mobile in it; the mobile column stays clear for the worker.
    #[pg_test]
    fn reader_views_mask_every_text() {
        serial();
        platform();
        good_contact(1);
        run(
            "UPDATE erp_sync.outbox SET status = 'dead', finished_at = now(),
                 last_error = 'ERP refused: 手机 +86 139-0000-0779 已存在' WHERE contact_id = '1'",
        );
        run(
            "INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             VALUES (2, 'personal', '张三丰', '13700002222', true, 80, 'grey')",
        );
        // as a writer that did not mask (the admission rule masks its own reasons already)
        run(
            r#"UPDATE erp_sync.rejections SET reasons = '["type: 13800001111", {"k": "(+86)136.0000.3333"}]'
               WHERE contact_id = '2'"#,
        );
        run(
            "INSERT INTO erp_sync.sync_log (contact_id, action, outcome, error)
             VALUES (1, 'create', 'failed', '客户手机１３５００００４４４４重复')",
        );
        run("INSERT INTO erp_sync.reconcile_runs (id, trigger, finished_at) VALUES (1, 'manual', now())");
        run("INSERT INTO erp_sync.reconcile_items (run_id, kind, contact_id, field, platform_value, erp_value)
             VALUES (1, 'field_mismatch', 1, 'name', '王 13400005555', '王'),
                    (1, 'field_mismatch', 1, 'mobile', '13300006666', '+86 133 0000 7777')");
        run("INSERT INTO erp_sync.erp_customers (erp_ord, name, khid, mobile, weixin_acc, address, sales_person)
             VALUES (900, '李 18900008888', 'KH18900008888', '18900008888', '18900008888', '上海 189-0000-8888', '销售18900008888')");
        run("INSERT INTO erp_sync.alert_state (code, level, message) VALUES ('x', 'info', 'call 17700009999')");
        run(
            r#"INSERT INTO erp_sync.schedule_runs (name, period_key, summary)
               VALUES ('pull', 'p1', '{"error": "ERP refused: 16600001234 exists"}')"#,
        );
        for role in ["erp_sync_reader", "erp_sync_worker"] {
            run(&format!("SET LOCAL ROLE {role}"));
            assert_eq!(
                text("SELECT last_error FROM erp_sync.contact_status WHERE contact_id = '1'"),
                "ERP refused: 手机 +86 139****0779 已存在"
            );
            let reasons = text(
                "SELECT admission_reasons::text FROM erp_sync.contact_status WHERE contact_id = '2'",
            );
            assert!(
                reasons.contains("138****1111") && reasons.contains("136****3333"),
                "{reasons}"
            );
            assert!(
                !reasons.contains("13800001111") && !reasons.contains("1360000"),
                "{reasons}"
            );
            assert_eq!(
                text("SELECT error FROM erp_sync.recent_failures WHERE contact_id = '1'"),
                "客户手机135****4444重复"
            );
            assert_eq!(
                text("SELECT platform_value FROM erp_sync.reconcile_report WHERE field = 'name'"),
                "王 134****5555"
            );
            assert_eq!(
                text("SELECT concat_ws('|', name, khid, weixin_acc, address, sales_person) FROM erp_sync.erp_only_customers"),
                "李 189****8888|KH189****8888|189****8888|上海 189****8888|销售189****8888"
            );
            assert_eq!(
                text("SELECT message FROM erp_sync.alert_state"),
                "call 177****9999"
            );
            assert_eq!(
                text("SELECT summary->>'error' FROM erp_sync.schedule_runs"),
                "ERP refused: 166****1234 exists"
            );
            run("RESET ROLE");
        }
        // the mobile columns: masked for the reader, clear for the worker
        run("SET LOCAL ROLE erp_sync_reader");
        assert_eq!(
            text("SELECT mobile FROM erp_sync.contact_status WHERE contact_id = '2'"),
            "137****2222"
        );
        assert_eq!(
            text("SELECT erp_value FROM erp_sync.reconcile_report WHERE field = 'mobile'"),
            "133****7777"
        );
        assert_eq!(
            text("SELECT mobile FROM erp_sync.erp_only_customers"),
            "189****8888"
        );
        run("RESET ROLE");
        run("SET LOCAL ROLE erp_sync_worker");
        assert_eq!(
            text("SELECT mobile FROM erp_sync.contact_status WHERE contact_id = '2'"),
            "13700002222"
        );
        assert_eq!(
            text("SELECT erp_value FROM erp_sync.reconcile_report WHERE field = 'mobile'"),
            "+86 133 0000 7777"
        );
        run("RESET ROLE");
    }

    #[pg_test]
    fn queue_view_counts() {
        serial();
        platform();
        good_contact(1);
        good_contact(2);
        run("INSERT INTO mp.signals (contact_id, content) VALUES (1, 'x')");
        assert_eq!(
            int("SELECT rows FROM erp_sync.queue WHERE kind = 'customer' AND status = 'pending'"),
            2
        );
        assert_eq!(
            int("SELECT rows FROM erp_sync.queue WHERE kind = 'followup' AND status = 'pending'"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.queue WHERE oldest_pending_age IS NOT NULL"),
            2
        );
    }

    #[pg_test]
    fn platform_role_without_erp_sync_rights_can_write() {
        serial();
        platform();
        run("CREATE ROLE erp_sync_test_app NOLOGIN");
        run("GRANT USAGE ON SCHEMA mp TO erp_sync_test_app");
        run("GRANT INSERT, UPDATE, SELECT ON ALL TABLES IN SCHEMA mp TO erp_sync_test_app");
        run("GRANT USAGE ON ALL SEQUENCES IN SCHEMA mp TO erp_sync_test_app");
        run("SET LOCAL ROLE erp_sync_test_app");
        good_contact(1);
        run("RESET ROLE");
        assert_eq!(outbox("contact_id = '1'"), 1);
    }
}
