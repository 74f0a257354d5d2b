//! `#[pg_test]`s: the capture trigger: contacts, threads, signals.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::*;
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn contact_insert_update_coalesce_and_noop() {
        serial();
        platform();
        good_contact(1);
        assert_eq!(
            outbox("contact_id = '1' AND kind = 'customer' AND status = 'pending'"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM erp_sync.rejections"), 0);
        // a visible change while a row is pending: coalesced into it
        run("UPDATE mp.contacts SET address = '上海市' WHERE id = 1");
        assert_eq!(outbox("true"), 1);
        // once the sidecar took it, a new change queues a new row
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        run("UPDATE mp.contacts SET wechat_id = 'wx_new' WHERE id = 1");
        assert_eq!(outbox("status = 'pending'"), 1);
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        // no ERP-visible change: nothing written at all
        let before = int("SELECT count(*) FROM erp_sync.outbox");
        run("UPDATE mp.contacts SET updated_at = now() + interval '1 day' WHERE id = 1");
        run("UPDATE mp.contacts SET name = name WHERE id = 1");
        assert_eq!(int("SELECT count(*) FROM erp_sync.outbox"), before);
        assert_eq!(outbox("status = 'pending'"), 0);
    }

    #[pg_test]
    fn contact_rejected_then_grey_to_white_upgrade() {
        serial();
        platform();
        run(
            "INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             VALUES (7, 'personal', '赵六六', '13900139000', true, 75, 'grey')",
        );
        assert_eq!(outbox("true"), 0);
        let reasons = jsonb("SELECT reasons FROM erp_sync.rejections WHERE contact_id = '7'");
        assert_eq!(reasons, json!(["list_status: 'grey' is not 'white'"]));
        assert_eq!(
            jsonb("SELECT checks FROM erp_sync.rejections WHERE contact_id = '7'")
                ["is_whitelisted"],
            json!(false)
        );
        run("UPDATE mp.contacts SET list_status = 'white' WHERE id = 7");
        assert_eq!(
            outbox("contact_id = '7' AND kind = 'customer' AND status = 'pending'"),
            1
        );
        assert_eq!(int("SELECT count(*) FROM erp_sync.rejections"), 0);
        // and a contact that becomes invalid again is rejected, its pending row stays for the sidecar
        run("UPDATE mp.contacts SET phone = '1234' WHERE id = 7");
        let reasons = jsonb("SELECT reasons FROM erp_sync.rejections WHERE contact_id = '7'");
        assert_eq!(
            reasons,
            json!(["phone: not a valid mainland mobile: ****4"])
        );
    }

    #[pg_test]
    fn contact_settings_changed_in_same_transaction_apply() {
        serial();
        platform();
        run("INSERT INTO erp_sync.settings (key, value) VALUES ('admission.min_score', '85')");
        good_contact(1); // score 80
        assert_eq!(outbox("true"), 0);
        run("UPDATE erp_sync.settings SET value = '80' WHERE key = 'admission.min_score'");
        good_contact(2);
        assert_eq!(outbox("contact_id = '2'"), 1);
    }

    #[pg_test]
    fn contact_insert_select_100_rows_in_one_statement() {
        serial();
        platform();
        run(
            "INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             SELECT g, 'personal', '张三丰' || g, '138' || lpad(g::text, 8, '0'), true, 75,
                    CASE WHEN g % 4 = 0 THEN 'grey' ELSE 'white' END
             FROM generate_series(1, 100) g",
        );
        assert_eq!(int("SELECT count(*) FROM mp.contacts"), 100);
        assert_eq!(outbox("kind = 'customer' AND status = 'pending'"), 75);
        assert_eq!(outbox("contact_id::int8 % 4 = 0"), 0);
        assert_eq!(outbox("true"), 75);
        assert_eq!(
            int(r#"SELECT count(*) FROM erp_sync.rejections
                   WHERE contact_id::int8 % 4 = 0 AND reasons = '["list_status: ''grey'' is not ''white''"]'"#),
            25
        );
        assert_eq!(int("SELECT count(*) FROM erp_sync.rejections"), 25);
        // one statement, one subtransaction: every row it wrote has the same xmin
        assert_eq!(
            int(
                "SELECT count(DISTINCT x) FROM (SELECT xmin::text FROM erp_sync.outbox
                 UNION ALL SELECT xmin::text FROM erp_sync.rejections) s (x)"
            ),
            1
        );
        // an upsert fires the INSERT and the UPDATE capture: 1 turns grey, 300 is new
        run("INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status) VALUES
             (1, 'personal', 'x', 'x', true, 75, 'white'), (300, 'personal', '王二小', '13800000300', true, 75, 'white')
             ON CONFLICT (id) DO UPDATE SET list_status = 'grey'");
        assert_eq!(outbox("contact_id = '300' AND status = 'pending'"), 1);
        assert_eq!(int("SELECT count(*) FROM erp_sync.rejections"), 26);
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.rejections WHERE contact_id = '1'"),
            1
        );
    }

    #[pg_test]
    fn coalesce_race_is_recognised() {
        serial();
        // what a plain INSERT that lost the race for a pending row raises (the capture then
        // runs again with ON CONFLICT DO NOTHING)
        let lost = crate::capture::guard::protected(|| {
            Spi::run("INSERT INTO erp_sync.outbox (contact_id, kind) VALUES (1, 'customer'), (1, 'customer')")
                .map_err(|e| e.to_string())
        });
        match lost {
            Err(message) => assert!(
                crate::capture::outbox::is_coalesce_race(&message),
                "{message}"
            ),
            Ok(()) => panic!("a duplicate pending row was accepted"),
        }
        assert!(!crate::capture::outbox::is_coalesce_race(
            "relation \"erp_sync.outbox\" does not exist (SQLSTATE 42P01)"
        ));
    }

    /// A configuration reload reads with sequential and bitmap scans on, whatever the caller set
    /// (the sidecar's claim turns them off), and leaves the caller's settings as they were, also
    /// when the reload fails.
    #[pg_test]
    fn reload_runs_under_planner_defaults() {
        run("SET LOCAL enable_seqscan = off");
        run("SET LOCAL enable_bitmapscan = off");
        let scans = || {
            Spi::get_two::<String, String>(
                "SELECT current_setting('enable_seqscan'), current_setting('enable_bitmapscan')",
            )
        };
        let off = (Some("off".to_string()), Some("off".to_string()));
        let on = (Some("on".to_string()), Some("on".to_string()));
        assert_eq!(crate::config::reload(scans).expect("reload"), on);
        assert_eq!(scans().expect("after"), off);
        let failed = crate::config::reload(|| -> pgrx::spi::SpiResult<()> {
            Err(pgrx::spi::Error::NoTupleTable)
        });
        assert!(failed.is_err());
        assert_eq!(scans().expect("after a failed reload"), off);
        // the real reload path: a payload read after an invalidation, inside such a transaction
        serial();
        platform();
        good_contact(1);
        run("ANALYZE mp.contacts");
        assert_eq!(text("SELECT erp_sync.contact_payload('1')->>'khid'"), "WX1");
        assert_eq!(scans().expect("after the payload"), off);
    }

    /// The trigger's direct heap/index write and the SPI statement write the same rows.
    #[pg_test]
    fn direct_rows_equal_spi_rows() {
        use crate::capture::outbox::{Batch, Coalesce};
        serial();
        let batch = || {
            let mut b = Batch::default();
            b.enqueue("1".into(), "customer", None);
            b.enqueue("1".into(), "assign", Some(10));
            b.enqueue_followup("1".into(), 20, 107);
            b.skip("2".into(), "followup", Some(21), Some(106), "why".into());
            b
        };
        let rows = |written: &str| {
            jsonb(&format!(
                "SELECT jsonb_agg(to_jsonb(o) - 'id' ORDER BY o.id) FROM erp_sync.outbox o \
                 WHERE o.id > {written}"
            ))
        };
        let direct = batch().flush(Coalesce::Look).expect("direct write");
        let after_direct = int("SELECT coalesce(max(id), 0) FROM erp_sync.outbox");
        let direct_rows = rows("0");
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now() WHERE status = 'pending'");
        let spi = batch().flush(Coalesce::Arbiter).expect("SPI write");
        assert_eq!((direct, spi), (3, 3));
        let spi_rows = rows(&after_direct.to_string());
        assert_eq!(direct_rows.as_array().map(Vec::len), Some(4));
        assert_eq!(direct_rows, spi_rows);
        // ids come from the table's sequence
        assert_eq!(
            one::<bool>(
                "SELECT max(id) = (SELECT last_value FROM erp_sync.outbox_id_seq) FROM erp_sync.outbox"
            ),
            Some(true)
        );
        // coalescing by looking: the SPI write's pending row is a twin, nothing new is written
        let mut again = Batch::default();
        again.enqueue("1".into(), "customer", None);
        assert_eq!(again.flush(Coalesce::Look).expect("coalesced"), 0);
        // the table's row rules hold for direct writes too
        let broken = crate::capture::guard::protected(|| {
            crate::capture::direct::insert(&[crate::capture::direct::Row {
                contact_id: "3",
                kind: "followup",
                ref_id: None,
                template_id: None,
                skip_reason: None,
            }]);
            Ok(())
        });
        assert!(
            broken
                .as_ref()
                .is_err_and(|m| m.contains("a followup row needs ref_id")),
            "{broken:?}"
        );
    }

    /// What a concurrent twin does to a direct write: the unique check of `outbox_coalesce_key`
    /// raises the error the trigger retries on (here the twin is written by the same call, which
    /// its probe cannot see either).
    #[pg_test]
    fn direct_write_of_an_unseen_twin_is_a_coalesce_race() {
        use crate::capture::direct::{insert, Row};
        serial();
        let row = || Row {
            contact_id: "5",
            kind: "customer",
            ref_id: None,
            template_id: None,
            skip_reason: None,
        };
        let lost = crate::capture::guard::protected(|| {
            insert(&[row(), row()]);
            Ok(())
        });
        match lost {
            Err(message) => assert!(
                crate::capture::outbox::is_coalesce_race(&message),
                "{message}"
            ),
            Ok(()) => panic!("a duplicate pending row was accepted"),
        }
        assert_eq!(outbox("contact_id = '5'"), 0);
    }

    #[pg_test]
    fn contact_multi_row_update_writes_only_changed_rows() {
        serial();
        platform();
        run(
            "INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             SELECT g, 'personal', '李四光' || g, '137' || lpad(g::text, 8, '0'), true, 70,
                    CASE WHEN g = 10 THEN 'grey' ELSE 'white' END
             FROM generate_series(1, 10) g",
        );
        assert_eq!(
            text("SELECT string_agg(contact_id::text, ',') FROM erp_sync.rejections"),
            "10"
        );
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        // 1-3: a visible change; 4-8: nothing the ERP sees; 9: becomes grey; 10: grey -> white
        run("UPDATE mp.contacts SET
               name = CASE WHEN id <= 3 THEN name || '改' ELSE name END,
               list_status = CASE WHEN id = 9 THEN 'grey' WHEN id = 10 THEN 'white' ELSE list_status END,
               updated_at = now() + interval '1 day'");
        let pending = text("SELECT string_agg(contact_id::text, ',' ORDER BY contact_id::int8) FROM erp_sync.outbox WHERE status = 'pending'");
        assert_eq!(pending, "1,2,3,10");
        assert_eq!(
            text("SELECT string_agg(contact_id::text, ',') FROM erp_sync.rejections"),
            "9"
        );
        // nothing visible changes in any row: nothing written
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        run("UPDATE mp.contacts SET updated_at = now() + interval '2 days'");
        assert_eq!(outbox("status = 'pending'"), 0);
        // a changed id pairs with no old row: captured as changed
        run("UPDATE mp.contacts SET id = 11 WHERE id = 1");
        assert_eq!(outbox("contact_id = '11' AND status = 'pending'"), 1);
    }

    #[pg_test]
    fn thread_multi_row_insert_and_update() {
        serial();
        platform();
        good_contact(1);
        good_contact(2);
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        run("INSERT INTO mp.threads (id, contact_id, score, summary) VALUES (10, 1, 70, 'a'), (11, 1, 90, 'b'), (12, 2, 50, 'c')");
        assert_eq!(outbox("status = 'pending' AND kind = 'customer'"), 2);
        // coalesced: the first thread's assign row per contact
        assert_eq!(text("SELECT string_agg(ref_id::text, ',' ORDER BY ref_id) FROM erp_sync.outbox WHERE kind = 'assign'"), "10,12");
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        // 10 stays regular, 12 goes public -> regular, 11 unchanged
        run("UPDATE mp.threads SET score = CASE id WHEN 10 THEN 75 WHEN 12 THEN 65 ELSE score END");
        assert_eq!(outbox("status = 'pending' AND kind = 'customer'"), 2);
        assert_eq!(text("SELECT string_agg(ref_id::text, ',') FROM erp_sync.outbox WHERE status = 'pending' AND kind = 'assign'"), "12");
    }

    // ---------------------------------------------------------------- threads

    #[pg_test]
    fn thread_paths() {
        serial();
        platform();
        good_contact(1);
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        run("INSERT INTO mp.threads (id, contact_id, score, summary) VALUES (10, 1, 70, '想了解产品')");
        assert_eq!(outbox("status = 'pending' AND kind = 'customer'"), 1);
        assert_eq!(
            outbox("status = 'pending' AND kind = 'assign' AND ref_id = 10"),
            1
        );
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        // same tier (regular): customer only (jz changes), no assign
        run("UPDATE mp.threads SET score = 75 WHERE id = 10");
        assert_eq!(outbox("status = 'pending' AND kind = 'customer'"), 1);
        assert_eq!(outbox("status = 'pending' AND kind = 'assign'"), 0);
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        // crossing 80: assign too
        run("UPDATE mp.threads SET score = 85 WHERE id = 10");
        assert_eq!(outbox("status = 'pending' AND kind = 'assign'"), 1);
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        // nothing relevant changed
        run("UPDATE mp.threads SET updated_at = now() + interval '1 hour' WHERE id = 10");
        assert_eq!(outbox("status = 'pending'"), 0);
        // thread of a rejected contact: nothing
        run("INSERT INTO mp.contacts (id, name, phone) VALUES (2, 'x', 'y')");
        run("INSERT INTO mp.threads (contact_id, score) VALUES (2, 95)");
        assert_eq!(outbox("contact_id = '2'"), 0);
    }

    // ---------------------------------------------------------------- signals

    #[pg_test]
    fn signal_followup_and_skipped() {
        serial();
        platform();
        good_contact(1);
        run("INSERT INTO mp.signals (id, contact_id, content) VALUES (100, 1, '客户说很好，尽快发合同')");
        assert_eq!(
            outbox(
                "kind = 'followup' AND ref_id = 100 AND template_id = 106 AND status = 'pending'"
            ),
            1
        );
        run("INSERT INTO mp.signals (id, contact_id, content) VALUES (101, 1, NULL)");
        assert_eq!(
            outbox("kind = 'followup' AND ref_id = 101 AND template_id = 120"),
            1
        );
        // rejected contact: recorded as skipped with the reason
        run(
            "INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             VALUES (2, 'personal', '钱七七', '13700137000', false, 75, 'white')",
        );
        run("INSERT INTO mp.signals (id, contact_id, content) VALUES (200, 2, '无人接听')");
        let err = text(
            "SELECT last_error FROM erp_sync.outbox WHERE ref_id = 200 AND status = 'skipped'",
        );
        assert_eq!(
            err,
            "contact not admitted: phone_verified: phone not verified"
        );
        assert_eq!(
            int("SELECT template_id::int8 FROM erp_sync.outbox WHERE ref_id = 200"),
            107
        );
        // signals are never re-captured on UPDATE
        run("UPDATE mp.signals SET content = '签约' WHERE id = 100");
        assert_eq!(outbox("kind = 'followup'"), 3);
    }

    #[pg_test]
    fn signal_without_contact_table_is_skipped() {
        serial();
        platform();
        good_contact(1);
        run("SELECT erp_sync.untrack('mp.contacts')");
        run("INSERT INTO mp.signals (id, contact_id, content) VALUES (5, 1, 'hi')");
        assert_eq!(
            text("SELECT last_error FROM erp_sync.outbox WHERE ref_id = 5"),
            "no contact table is tracked"
        );
    }
}
