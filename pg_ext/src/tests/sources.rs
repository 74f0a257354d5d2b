//! `#[pg_test]`s of payload views and change sources (issue 15 items 2–3), on the wxauto
//! platform's customer hub (`sql/customer_hub.sql`): UUID contacts, the bucket on threads, scores
//! by thread, messages, identity fields in a second table — described by views, wired by paths.

#[pgrx::pg_schema]
mod tests {
    use crate::capture::source::{resolution, Path};
    use crate::tests::tests::{int, jsonb, outbox, run, serial, sqlstate, text};
    use pgrx::prelude::*;
    use serde_json::json;

    const HUB: &str = include_str!("../../../sql/customer_hub.sql");
    const A: &str = "0b6f2c1e-8d4a-4f6b-9c3e-2a1d5e7f9b0c";
    const B: &str = "7d1e0f3a-2b4c-4d5e-8f6a-9b0c1d2e3f4a";

    /// Contact `id` with its identity row and one thread in `bucket` scored `score`.
    fn hub_contact(id: &str, n: u32, bucket: &str, score: i32) {
        run(&format!(
            "INSERT INTO hub.customers_unified (wechat_id, company_name, real_name, phone, phone_verified, erp_customer_type, intent_score)
             VALUES ('wx_{n}', '上海某某有限公司', '王小明{n}', '1380013{n:04}', true, 1, 10.5);
             INSERT INTO hub.contacts (id, wx_id, remark) VALUES ('{id}', 'wx_{n}', 'VIP');
             INSERT INTO hub.threads (id, contact_id, bucket, topic) VALUES ('t-{id}', '{id}', '{bucket}', '想采购');
             INSERT INTO hub.signals (id, thread_id, total_score, bucket) VALUES ('s-{id}', 't-{id}', {score}, '{bucket}');"
        ));
    }

    fn pending(contact: &str, kind: &str) -> i64 {
        outbox(&format!(
            "contact_id = '{contact}' AND kind = '{kind}' AND status = 'pending'"
        ))
    }

    fn rejected(contact: &str) -> String {
        text(&format!(
            "SELECT coalesce((SELECT reasons::text FROM erp_sync.rejections WHERE contact_id = '{contact}'), '')"
        ))
    }

    fn finish_all() {
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now() WHERE status = 'pending'");
    }

    #[pg_test]
    fn a_gray_thread_holds_a_contact_back_and_white_admits_it_at_once() {
        serial();
        run(HUB);
        hub_contact(A, 1, "GRAY", 85);
        assert_eq!(pending(A, "customer"), 0);
        assert!(
            rejected(A).contains("'grey' is not 'white'"),
            "{}",
            rejected(A)
        );
        // the bucket is edited on the thread: the contact is re-evaluated through the view
        run(&format!(
            "UPDATE hub.threads SET bucket = 'WHITE' WHERE contact_id = '{A}'"
        ));
        assert_eq!(rejected(A), "", "the rejection is cleared");
        assert_eq!(pending(A, "customer"), 1);
        assert_eq!(
            pending(A, "assign"),
            1,
            "the assignment is re-evaluated too"
        );
        assert_eq!(
            text(&format!(
                "SELECT khid FROM erp_sync.contact_status WHERE contact_id = '{A}'"
            )),
            format!("WX{A}")
        );
        let p = jsonb(&format!("SELECT erp_sync.contact_payload('{A}')"));
        assert_eq!(p["name"], "王小明1");
        assert_eq!(
            p["type"], "company",
            "customer type 1 → company, in the view"
        );
        assert_eq!(p["score"], 85.0, "the newest score of the thread");
        assert_eq!(p["thread"]["summary"], "想采购");
        assert_eq!(p["admission"]["passed"], true);
        // an UPDATE of no watched column asks for nothing
        finish_all();
        run(&format!(
            "UPDATE hub.threads SET last_msg_at = now() WHERE contact_id = '{A}'"
        ));
        assert_eq!(pending(A, "customer"), 0);
    }

    #[pg_test]
    fn black_never_syncs_and_a_new_score_or_identity_edit_resyncs() {
        serial();
        run(HUB);
        hub_contact(A, 1, "WHITE", 85);
        hub_contact(B, 2, "BLACK", 95);
        assert_eq!(pending(A, "customer"), 1);
        assert_eq!(pending(B, "customer"), 0);
        assert!(
            rejected(B).contains("'black' is not 'white'"),
            "{}",
            rejected(B)
        );
        // a message of the black contact: a follow-up that is not sent, with the reason
        run(&format!(
            "INSERT INTO hub.messages (thread_id, content) VALUES ('t-{B}', '我要报价')"
        ));
        let why = text(&format!(
            "SELECT last_error FROM erp_sync.outbox WHERE contact_id = '{B}' AND kind = 'followup' AND status = 'skipped'"
        ));
        assert!(why.contains("contact not admitted"), "{why}");
        // a message of the admitted contact: a follow-up referring to the message
        run(&format!(
            "INSERT INTO hub.messages (thread_id, content) VALUES ('t-{A}', '签约了')"
        ));
        assert_eq!(
            int(&format!(
                "SELECT count(*) FROM erp_sync.outbox o JOIN hub.messages m ON m.id = o.ref_id
                 WHERE o.contact_id = '{A}' AND o.kind = 'followup' AND o.status = 'pending'"
            )),
            1
        );
        assert_eq!(
            jsonb(&format!(
                "SELECT erp_sync.signal_payload(max(id)) FROM hub.messages WHERE thread_id = 't-{A}'"
            ))["content"],
            "签约了"
        );
        // a new score row (through its thread) and an identity edit (through the WeChat id)
        finish_all();
        run(&format!("INSERT INTO hub.signals (id, thread_id, total_score, bucket) VALUES ('s2-{A}', 't-{A}', 40, 'WHITE')"));
        assert_eq!(pending(A, "customer"), 0, "score 40 fails admission");
        assert!(rejected(A).contains("score"), "{}", rejected(A));
        run(&format!("INSERT INTO hub.signals (id, thread_id, total_score, bucket) VALUES ('s3-{A}', 't-{A}', 90, 'WHITE')"));
        assert_eq!((pending(A, "customer"), pending(A, "assign")), (1, 1));
        finish_all();
        run("UPDATE hub.customers_unified SET phone = '13900139001' WHERE wechat_id = 'wx_1'");
        assert_eq!(pending(A, "customer"), 1);
        assert_eq!(
            jsonb(&format!("SELECT erp_sync.contact_payload('{A}')"))["phone"],
            "13900139001"
        );
        // a 100-row statement is one resolution: every contact once
        finish_all();
        run("UPDATE hub.customers_unified SET intent_score = intent_score + 1");
        assert_eq!(
            outbox("status = 'pending' AND kind = 'customer'"),
            1,
            "A only: B is black"
        );
    }

    #[pg_test]
    fn check_source_names_what_is_wrong_with_a_view() {
        serial();
        run(HUB);
        run("CREATE VIEW hub.bad_source AS
             SELECT c.id, 1 AS phone_verified, u.erp_customer_type AS type, c.created_at AS score, c.owner
             FROM hub.contacts c LEFT JOIN hub.customers_unified u ON true");
        run(
            "INSERT INTO hub.customers_unified (wechat_id) VALUES ('a'), ('b');
             INSERT INTO hub.contacts (id, wx_id) VALUES ('k1', 'a')",
        );
        let problems = text(
            "SELECT string_agg(severity || ' ' || field || ': ' || problem, E'\\n' ORDER BY field)
             FROM erp_sync.check_source('contact', 'hub.bad_source')",
        );
        for expected in [
            "error id: hub.bad_source has more than one row for id k1",
            "error phone_verified: hub.bad_source.phone_verified is of type integer",
            "error score: hub.bad_source.score is of type timestamp with time zone",
            "error type: hub.bad_source.type is of type integer",
            "warning owner: hub.bad_source.owner is no contact field and is not sent",
        ] {
            assert!(problems.contains(expected), "{expected:?} in\n{problems}");
        }
        // track() refuses it with the problems and how to list them
        let err = sqlstate("SELECT erp_sync.track('hub.bad_source', 'contact')");
        assert!(
            err.starts_with("22023") && err.contains("check_source"),
            "{err}"
        );
        // the customer hub's own views pass: check_sources() has no error for them
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.check_sources() WHERE severity = 'error'"),
            0
        );
        assert!(
            text("SELECT string_agg(problem, '; ') FROM erp_sync.check_sources() WHERE entity = 'thread'")
                .contains("hub.thread_source.id is of type text"),
            "a text thread id is a warning"
        );
        // a path that does not resolve is refused at track_source(), never in a platform write
        let err = sqlstate(
            r#"SELECT erp_sync.track_source('hub.messages', '{"via": [{"table": "hub.threads", "from": "thread_id", "to": "nope"}], "key": "contact_id"}')"#,
        );
        assert!(err.contains("columns of hub.threads"), "{err}");
        let err = sqlstate(
            r#"SELECT erp_sync.track_source('hub.messages', '{"via": [{"table": "hub.threads", "from": "id", "to": "id"}], "key": "contact_id"}')"#,
        );
        assert!(err.contains("comparable"), "bigint = text: {err}");
        let err =
            sqlstate(r#"SELECT erp_sync.track_source('hub.messages', '{"key": "x", "vai": 1}')"#);
        assert!(err.starts_with("22023"), "{err}");
        // a table tracked as an entity is not also a change source
        let err = sqlstate(
            r#"SELECT erp_sync.track_source('hub.thread_source', '{"key": "contact_id"}')"#,
        );
        assert!(!err.starts_with("ok"), "a view has no triggers: {err}");
    }

    #[pg_test]
    fn untrack_forgets_a_change_source() {
        serial();
        run(HUB);
        assert_eq!(text("SELECT erp_sync.untrack('hub.signals')"), "source");
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'hub.signals'::regclass AND tgname LIKE 'erp_sync%'"),
            0
        );
        hub_contact(A, 1, "GRAY", 85);
        run(&format!(
            "UPDATE hub.threads SET bucket = 'WHITE' WHERE contact_id = '{A}'"
        ));
        finish_all();
        run(&format!("INSERT INTO hub.signals (id, thread_id, total_score, bucket) VALUES ('x', 't-{A}', 90, 'WHITE')"));
        assert_eq!(pending(A, "customer"), 0, "no longer a source");
    }

    fn path(v: serde_json::Value) -> Path {
        Path::parse(&v).expect("a valid path")
    }

    #[pg_test]
    fn paths_parse_strictly() {
        let p = path(json!({"key": "contact_id"}));
        assert!(p.via.is_empty() && p.assigns());
        let p = path(json!({"key": "contact_id", "followup": {"id": "id", "content": "body"}}));
        assert!(
            !p.assigns(),
            "a follow-up source does not assign unless asked"
        );
        assert!(
            Path::parse(&json!({"key": "c", "vai": []})).is_err(),
            "a typo is refused"
        );
        assert!(Path::parse(&json!({"via": []})).is_err(), "key is required");
    }

    #[pg_test]
    fn a_two_step_path_is_one_join_per_step() {
        let p = path(json!({"key": "contact_id",
            "via": [{"table": "hub.threads", "from": "thread_id", "to": "id"}], "watch": ["total_score"]}));
        let r = resolution(&p, &["hub.signals".into(), "hub.threads".into()], &[]);
        assert_eq!(
            r.on_insert,
            "SELECT (h1.contact_id)::text AS key, NULL::bigint AS ref, NULL::text AS content \
             FROM erp_sync_new n JOIN hub.threads h1 ON h1.id = n.thread_id \
             WHERE (h1.contact_id)::text IS NOT NULL"
        );
        // watched: total_score, and the first step's column
        assert!(r.on_update.contains(
            "pg_catalog.jsonb_build_array(o.total_score, o.thread_id) = pg_catalog.jsonb_build_array(n.total_score, n.thread_id)"
        ), "{}", r.on_update);
        assert!(r
            .on_update
            .contains("FROM erp_sync_old n JOIN hub.threads h1"));
    }
}
