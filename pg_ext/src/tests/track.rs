//! `#[pg_test]`s: track() / untrack(): column maps, key types, errors with SQLSTATE and hint.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::*;
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn track_reference_schema() {
        serial();
        platform();
        assert_eq!(int("SELECT count(*) FROM erp_sync.tracked_tables"), 3);
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgname = 'erp_sync_capture'"),
            3
        );
        let map = jsonb("SELECT columns FROM erp_sync.tracked_tables WHERE entity = 'contact'");
        assert_eq!(map["wechat_id"], json!("wechat_id"));
        assert_eq!(map.as_object().map(|m| m.len()), Some(14));
        // statement-level, with transition tables; signals are captured on INSERT only
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgname = 'erp_sync_capture_update'"),
            2
        );
        assert_eq!(int("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'erp_sync_capture%' AND tgtype & 1 = 1"), 0);
        assert_eq!(int("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'erp_sync_capture%' AND tgnewtable IS NULL"), 0);
        // its array-parameter plans stay generic instead of being re-planned on every call
        let config = text("SELECT array_to_string(proconfig, ',') FROM pg_proc WHERE oid = 'erp_sync.capture()'::regprocedure");
        assert!(
            config.contains("plan_cache_mode=force_generic_plan"),
            "{config}"
        );
        // re-tracking is idempotent
        run("SELECT erp_sync.track('mp.contacts', 'contact')");
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgname = 'erp_sync_capture'"),
            3
        );
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgname = 'erp_sync_capture_update'"),
            2
        );
    }

    #[pg_test]
    fn track_bad_arguments_raise_with_sqlstate_and_hint() {
        serial();
        platform();
        run("CREATE TABLE public.people (pid bigint, mobile text)");
        let s = sqlstate("SELECT erp_sync.track('public.people', 'customer')");
        assert!(s.starts_with("22023: entity must be one of"), "{s}");
        let s =
            sqlstate(r#"SELECT erp_sync.track('public.people', 'contact', '{"colour": "pid"}')"#);
        assert!(s.starts_with("22023: fields of contact"), "{s}");
        let s = sqlstate(r#"SELECT erp_sync.track('public.people', 'contact', '{"id": "nope"}')"#);
        assert!(s.starts_with("42703: map the field"), "{s}");
        let s =
            sqlstate(r#"SELECT erp_sync.track('public.people', 'contact', '{"phone": "mobile"}')"#);
        assert!(s.starts_with("42703: map it explicitly"), "{s}");
        let s = sqlstate(r#"SELECT erp_sync.track('public.people', 'contact', '[1]')"#);
        assert!(s.starts_with("22023: pass a JSON object"), "{s}");
        let s = sqlstate(r#"SELECT erp_sync.track('public.people', 'contact', '{"id": 5}')"#);
        assert!(s.starts_with("22023"), "{s}");
        run("CREATE VIEW public.people_v AS SELECT * FROM public.people");
        // a view is a payload view: it names its columns itself, and has no triggers
        let s = sqlstate(r#"SELECT erp_sync.track('public.people_v', 'contact', '{"id": "pid"}')"#);
        assert!(s.starts_with("22023: leave out the column map"), "{s}");
        let s = sqlstate(
            r#"SELECT erp_sync.track('public.people_v', 'trigger', '{"contact_id": "pid"}')"#,
        );
        assert!(s.starts_with("42809"), "{s}");
        let s = sqlstate("SELECT erp_sync.untrack('public.people')");
        assert!(s.starts_with("42704"), "{s}");
        let s = sqlstate("SELECT erp_sync.retry_failed(NULL, 'bogus')");
        assert!(s.starts_with("22023"), "{s}");
        assert_eq!(
            sqlstate("SELECT erp_sync.track('mp.threads', 'thread')"),
            "ok"
        );
    }

    /// A key column that is neither an integer, a uuid nor text (e.g. a timestamptz): track()
    /// says what is wrong and what to do (SQLSTATE 42804, a hint, no Rust backtrace in DETAIL).
    /// (uuid and text keys are tracked: tests/keys.rs.)
    #[pg_test]
    fn track_a_key_of_another_type_is_a_clear_error() {
        serial();
        platform();
        run("CREATE TABLE public.ts_contacts (id timestamptz PRIMARY KEY, name text, phone text)");
        let s = sqlstate("SELECT erp_sync.track('public.ts_contacts', 'contact')");
        assert!(
            s.starts_with("42804: map the contact id to a column"),
            "{s}"
        );
        let detail = text(
            "DO $$ BEGIN PERFORM erp_sync.track('public.ts_contacts', 'contact');
             EXCEPTION WHEN OTHERS THEN
                 DECLARE m text; d text; BEGIN
                     GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
                     PERFORM set_config('erp_sync_test.err', m || ' | ' || d, true);
                 END;
             END $$;
             SELECT current_setting('erp_sync_test.err')",
        );
        assert!(
            detail.contains("ts_contacts.id (field id) is of type timestamp with time zone")
                && detail.contains("integer, uuid or text")
                && !detail.contains("pgrx"),
            "{detail}"
        );
        run("CREATE TABLE public.wx_threads (id bigint, contact_id jsonb, score int)");
        let s = sqlstate(r#"SELECT erp_sync.track('public.wx_threads', 'thread')"#);
        assert!(s.starts_with("42804: map contact_id"), "{s}");
        // the hint's way out: a key of one of those types
        run("ALTER TABLE public.ts_contacts ADD COLUMN erp_id bigint GENERATED ALWAYS AS IDENTITY UNIQUE");
        assert_eq!(
            sqlstate(
                r#"SELECT erp_sync.track('public.ts_contacts', 'contact', '{"id": "erp_id"}')"#
            ),
            "ok"
        );
        run("INSERT INTO public.ts_contacts (id, name, phone) VALUES (now(), '张三', '13800000001')");
        assert_eq!(
            int(
                "SELECT count(*) FROM (SELECT contact_id FROM erp_sync.outbox UNION ALL
                                        SELECT contact_id FROM erp_sync.rejections) x
                 JOIN public.ts_contacts c ON c.erp_id::text = x.contact_id"
            ),
            1,
            "captured (queued or rejected by admission) under its integer key"
        );
    }

    #[pg_test]
    fn untrack_stops_capture() {
        serial();
        platform();
        assert_eq!(text("SELECT erp_sync.untrack('mp.contacts')"), "contact");
        good_contact(1);
        assert_eq!(outbox("true"), 0);
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgname = 'erp_sync_capture'"),
            2
        );
        assert_eq!(
            int("SELECT count(*) FROM pg_trigger WHERE tgname = 'erp_sync_capture_update'"),
            1
        );
        // contact_status is back to the placeholder (no contact table)
        assert_eq!(int("SELECT count(*) FROM erp_sync.contact_status"), 0);
    }
}
