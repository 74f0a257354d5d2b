//! `#[pg_test]`s: the functions operators and the sidecar call (request_sync, payloads, retry_failed, resolve_in_doubt, pick_rep).

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::*;
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    #[pg_test]
    fn request_sync_button() {
        serial();
        platform();
        good_contact(1);
        let r = jsonb("SELECT erp_sync.request_sync('1')");
        assert_eq!(r["status"], json!("already_queued"));
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        let r = jsonb("SELECT erp_sync.request_sync('1')");
        assert_eq!(
            (r["status"].clone(), r["khid"].clone()),
            (json!("queued"), json!("WX1"))
        );
        run("INSERT INTO mp.contacts (id, name) VALUES (2, '吴十十')");
        let r = jsonb("SELECT erp_sync.request_sync('2')");
        assert_eq!(r["status"], json!("rejected"));
        assert_eq!(r["admission"]["passed"], json!(false));
        assert!(sqlstate("SELECT erp_sync.request_sync('999')").starts_with("22023"));
        run("SELECT erp_sync.untrack('mp.contacts')");
        assert!(sqlstate("SELECT erp_sync.request_sync('1')").starts_with("55000"));
    }

    #[pg_test]
    fn payload_functions() {
        serial();
        platform();
        good_contact(1);
        run("INSERT INTO mp.threads (id, contact_id, score, summary) VALUES (1, 1, 60, 'old'), (2, 1, 91, '新的')");
        run("INSERT INTO mp.signals (id, contact_id, content, ts) VALUES (3, 1, '见面', '2025-10-19 12:00:00+00')");
        let p = jsonb("SELECT erp_sync.contact_payload('1')");
        assert_eq!(p["phone"], json!("13800130001"));
        assert_eq!(p["khid"], json!("WX1"));
        assert_eq!(
            p["thread"],
            json!({"id": 2, "score": 91, "summary": "新的"})
        );
        assert_eq!(p["admission"]["passed"], json!(true));
        assert_eq!(p["type"], json!("company"));
        assert_eq!(p["email"], Value::Null);
        assert!(p.get("created_at").is_none());
        assert_eq!(
            one::<pgrx::JsonB>("SELECT erp_sync.contact_payload('404')").map(|j| j.0),
            None
        );
        let s = jsonb("SELECT erp_sync.signal_payload(3)");
        assert_eq!(
            (
                s["id"].clone(),
                s["contact_id"].clone(),
                s["content"].clone()
            ),
            (json!(3), json!(1), json!("见面"))
        );
        assert!(s["ts"]
            .as_str()
            .is_some_and(|t| t.starts_with("2025-10-19")));
        assert_eq!(
            one::<pgrx::JsonB>("SELECT erp_sync.signal_payload(404)").map(|j| j.0),
            None
        );
    }

    #[pg_test]
    fn retry_failed_revives_dead_rows() {
        serial();
        platform();
        good_contact(1);
        good_contact(2);
        run("INSERT INTO mp.signals (contact_id, content) VALUES (1, 'x')");
        run("UPDATE erp_sync.outbox SET status = 'dead', attempts = 5, last_error = 'boom', finished_at = now()");
        assert_eq!(
            int("SELECT erp_sync.retry_failed('1', 'followup')::int8"),
            1
        );
        assert_eq!(outbox("status = 'pending' AND attempts = 0"), 1);
        // a dead customer row with a pending duplicate stays dead
        run("UPDATE mp.contacts SET notes = 'changed' WHERE id = 2");
        assert_eq!(int("SELECT erp_sync.retry_failed()::int8"), 1);
        assert_eq!(outbox("status = 'dead'"), 1);
        assert_eq!(outbox("status = 'pending'"), 3);
    }

    #[pg_test]
    fn outbox_row_check_names_the_problem() {
        serial();
        platform();
        good_contact(1);
        let s = sqlstate("UPDATE erp_sync.outbox SET status = 'runing'");
        assert!(s.starts_with("23514"), "{s}");
        let s = sqlstate("UPDATE erp_sync.outbox SET status = 'running'");
        assert!(s.starts_with("23514"), "{s}");
        let s = sqlstate("UPDATE erp_sync.outbox SET status = 'running', lease_owner = 'w', lease_expires_at = now()");
        assert_eq!(s, "ok");
        let s = sqlstate("INSERT INTO erp_sync.outbox (contact_id, kind) VALUES (1, 'followup')");
        assert!(s.starts_with("23514"), "{s}");
    }
}
