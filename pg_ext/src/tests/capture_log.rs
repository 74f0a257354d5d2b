//! `#[pg_test]`s of the capture log (`capture.mode = log`, issue 15 item 4): the trigger writes
//! one narrow row per statement, the work is visible as pending until `erp_sync.expand()`, and
//! expansion decides exactly what direct capture decides for the same writes. (Across real
//! concurrent transactions: e2e `capture_log`.) Inside one test transaction `expand()` sees the
//! transaction's own rows as committed, as its own writes are.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{good_contact, int, outbox, platform, run, serial, text};
    use pgrx::prelude::*;

    fn log_mode() {
        run(
            "INSERT INTO erp_sync.settings (key, value) VALUES ('capture.mode', 'log')
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        );
    }

    /// Writes of every capture path: contacts (admitted and rejected, one 3-row statement),
    /// an edit, a no-op edit, threads (tier changes), signals (templates), a sync trigger.
    fn workload() {
        run("INSERT INTO mp.contacts (id, type, name, company, phone, phone_verified, score, list_status)
             VALUES (1, 'company', '王小明', '上海某某有限公司', '13800130001', true, 80, 'white'),
                    (2, 'personal', '王小红', NULL, '13800130002', false, 80, 'white'),
                    (3, 'personal', '李大壮', NULL, '13800130003', true, 70, 'grey')");
        good_contact(4);
        run("UPDATE mp.contacts SET list_status = 'white' WHERE id = 3");
        run("UPDATE mp.contacts SET name = name WHERE id = 4");
        run("INSERT INTO mp.threads (id, contact_id, score, summary) VALUES (10, 1, 92, '想采购'), (11, 2, 50, 'x')");
        run("UPDATE mp.threads SET score = 65 WHERE id = 10");
        run("UPDATE mp.threads SET summary = '想采购200台' WHERE id = 10");
        run("INSERT INTO mp.signals (id, contact_id, content) VALUES (20, 1, '发合同吧'), (21, 1, '无人接听'), (22, 2, '你好')");
        run("CREATE TABLE mp.orders (id bigserial PRIMARY KEY, contact_id bigint)");
        run(r#"SELECT erp_sync.track('mp.orders', 'trigger', '{"contact_id": "contact_id"}')"#);
        run("INSERT INTO mp.orders (contact_id) VALUES (3), (404)");
    }

    /// What capture decided: every outbox row and rejection, in one comparable text.
    fn decided() -> String {
        text(
            "SELECT coalesce(string_agg(x, E'\\n' ORDER BY x), '') FROM (
               SELECT format('%s %s %s %s %s %s', contact_id, kind, ref_id, template_id, status, last_error) AS x
               FROM erp_sync.outbox
               UNION ALL SELECT format('rejected %s %s', contact_id, reasons) FROM erp_sync.rejections) d",
        )
    }

    #[pg_test]
    fn a_statement_is_one_log_row_visible_as_pending_until_expanded() {
        serial();
        platform();
        log_mode();
        run("INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             SELECT g, 'personal', '客户' || g, '138' || lpad(g::text, 8, '0'), g % 10 <> 0, 80, 'white'
             FROM generate_series(1, 100) g");
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.capture_log"),
            1,
            "one row for the statement"
        );
        assert_eq!(
            int("SELECT cardinality(keys) FROM erp_sync.capture_log WHERE op = 'c'"),
            100
        );
        assert_eq!(outbox("true"), 0, "nothing decided on the write path");
        assert_eq!(int("SELECT count(*) FROM erp_sync.rejections"), 0);
        // the work is visible while it waits
        assert_eq!(
            int("SELECT rows FROM erp_sync.queue WHERE kind = 'customer' AND status = 'pending'"),
            100
        );
        assert_eq!(
            int("SELECT captured FROM erp_sync.queue WHERE kind = 'customer' AND status = 'pending'"),
            100
        );
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.contact_status WHERE sync_state = 'pending'"),
            100
        );
        // expansion: admitted → customer rows, the others → rejections with reasons
        assert_eq!(int("SELECT erp_sync.expand(1000)"), 1);
        assert_eq!(outbox("kind = 'customer' AND status = 'pending'"), 90);
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.rejections WHERE reasons::text LIKE '%phone_verified%'"),
            10
        );
        assert_eq!(int("SELECT count(*) FROM erp_sync.captured"), 0);
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.contact_status WHERE sync_state = 'rejected'"),
            10
        );
        assert_eq!(
            int("SELECT erp_sync.expand(1000)"),
            0,
            "nothing is expanded twice"
        );
        assert_eq!(outbox("true"), 90);
    }

    #[pg_test]
    fn expansion_decides_what_direct_capture_decides() {
        serial();
        platform();
        workload();
        let direct = decided();
        assert!(direct.contains("1 followup 20 106 pending"), "{direct}");
        assert!(direct.contains("404 customer"), "{direct}");
        run("DROP TABLE mp.orders");
        run("TRUNCATE mp.contacts, mp.threads, mp.signals, erp_sync.outbox, erp_sync.rejections CASCADE");
        log_mode();
        workload();
        assert_eq!(outbox("true"), 0);
        assert!(
            int("SELECT count(*) FROM erp_sync.capture_log") <= 12,
            "at most one row per statement and kind"
        );
        assert_eq!(
            text("SELECT string_agg(op::text, '' ORDER BY txid, ctid) FROM erp_sync.capture_log WHERE source = 'mp.threads'::regclass"),
            "cacac",
            "new threads: resync + assign; score 92 → 65: the tier changed; the summary only: resync"
        );
        let state = text("SELECT (SELECT last::text FROM erp_sync.capture_cursor) || ' / ' || pg_current_snapshot()::text || ' / ' || (SELECT string_agg(txid::text, ',') FROM erp_sync.capture_log) || ' / ' || pg_current_xact_id()::text");
        assert!(int("SELECT erp_sync.expand(1000)") > 0, "{state}");
        assert_eq!(decided(), direct, "the same outbox rows and rejections");
    }

    #[pg_test]
    fn a_contact_that_cannot_be_read_is_recorded_and_holds_back_nothing() {
        serial();
        platform();
        log_mode();
        // a payload view that fails for contact 1 (as a broken join or cast in a real one would)
        run("CREATE VIEW mp.contact_source AS
             SELECT c.id, c.type, CASE WHEN c.id = 1 THEN (1 / (c.id - 1))::text ELSE c.name END AS name,
                    c.company, c.phone, c.phone_verified, c.score, c.list_status
             FROM mp.contacts c");
        run("SELECT erp_sync.track('mp.contact_source', 'contact')");
        run(r#"SELECT erp_sync.track_source('mp.contacts', '{"key": "id"}')"#);
        good_contact(1);
        good_contact(2);
        assert_eq!(int("SELECT erp_sync.expand(1000)"), 2);
        let why = text(
            "SELECT last_error FROM erp_sync.outbox WHERE contact_id = '1' AND status = 'skipped'",
        );
        assert!(
            why.contains("capture expansion failed") && why.contains("division by zero"),
            "{why}"
        );
        assert_eq!(
            outbox("contact_id = '2' AND kind = 'customer' AND status = 'pending'"),
            1
        );
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.captured"),
            0,
            "nothing waits forever"
        );
    }

    /// The trigger writes log rows straight into the heap (`capture::log_heap`) at the
    /// transaction's own level: each row is what the SQL INSERT of the same values would be,
    /// under the transaction's own xid (a write inside the capture's subtransaction would carry a
    /// subtransaction's), and expansion finds it through the `txid` index.
    #[pg_test]
    fn log_rows_are_written_as_sql_would_write_them_under_the_transactions_own_xid() {
        serial();
        platform();
        log_mode();
        workload();
        let rows = int("SELECT count(*) FROM erp_sync.capture_log");
        assert!(rows >= 8, "{rows} log rows");
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.capture_log
                 WHERE xmin::text::bigint <> pg_current_xact_id()::text::bigint % 4294967296
                    OR txid <> pg_current_xact_id()"),
            0,
            "every row under the top transaction's xid"
        );
        // the same values through SQL (defaults: txid, at), compared column by column
        run("CREATE TEMP TABLE by_sql (LIKE erp_sync.capture_log INCLUDING DEFAULTS)");
        run("INSERT INTO by_sql (source, op, keys, refs, templates)
             SELECT source, op, keys, refs, templates FROM erp_sync.capture_log");
        assert_eq!(
            int("SELECT count(*) FROM (
                   (SELECT * FROM erp_sync.capture_log EXCEPT ALL SELECT * FROM by_sql)
                   UNION ALL
                   (SELECT * FROM by_sql EXCEPT ALL SELECT * FROM erp_sync.capture_log)) d"),
            0,
            "the same rows as SQL writes"
        );
        assert_eq!(
            text("SELECT string_agg(DISTINCT op::text, '' ORDER BY op::text) FROM erp_sync.capture_log"),
            "acf",
            "every kind of row: resync, assign (refs), follow-up (refs, templates)"
        );
        assert_eq!(
            int("SELECT sum(n_tup_ins)::bigint FROM pg_stat_xact_user_tables
                 WHERE relid IN ('erp_sync.capture_log_0'::regclass, 'erp_sync.capture_log_1'::regclass)"),
            rows,
            "counted in pg_stat as SQL's inserts are (autovacuum and ANALYZE see them)"
        );
        run("SET LOCAL enable_seqscan = off");
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.capture_log WHERE txid = pg_current_xact_id()"),
            rows,
            "the txid index holds every row"
        );
    }
}
