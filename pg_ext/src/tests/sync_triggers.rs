//! `#[pg_test]`s of sync triggers (issue 16): `track(tbl, 'trigger', ..)` makes a row of any
//! table — the platform's orders — ask for a sync of its contact, optionally only where a boolean
//! condition column is (or turns) true: "first payment → sync now" with no platform code.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{int, jsonb, outbox, platform, run, serial, sqlstate, text};
    use pgrx::prelude::*;
    use serde_json::json;

    fn orders() {
        platform();
        run("CREATE TABLE mp.orders (id bigserial PRIMARY KEY, customer bigint, amount numeric, first_paid boolean NOT NULL DEFAULT false)");
        run(
            "INSERT INTO mp.contacts (id, type, name, phone, phone_verified, score, list_status)
             VALUES (1, 'personal', '王小明', '13800130001', true, 80, 'white'),
                    (2, 'personal', '王小红', '13800130002', false, 80, 'white')",
        );
        // contact 1's customer row is done: only a new request queues another
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
    }

    fn customer_rows(contact: &str, status: &str) -> i64 {
        outbox(&format!(
            "contact_id = '{contact}' AND kind = 'customer' AND status = '{status}'"
        ))
    }

    #[pg_test]
    fn an_insert_asks_for_a_sync_of_its_contact() {
        serial();
        orders();
        let r =
            jsonb(r#"SELECT erp_sync.track('mp.orders', 'trigger', '{"contact_id": "customer"}')"#);
        assert_eq!(r["columns"], json!({"contact_id": "customer"}));
        assert_eq!(int("SELECT count(*) FROM erp_sync.sync_triggers"), 1);
        run("INSERT INTO mp.orders (customer, amount) VALUES (1, 100), (1, 50), (NULL, 10)");
        assert_eq!(
            customer_rows("1", "pending"),
            1,
            "one customer row per contact (coalesced)"
        );
        run("UPDATE mp.orders SET amount = amount + 1");
        assert_eq!(
            customer_rows("1", "pending"),
            1,
            "without a condition an UPDATE asks for nothing"
        );
        // a contact that fails admission: the rejection is recorded, nothing queued
        run("INSERT INTO mp.orders (customer, amount) VALUES (2, 100)");
        assert_eq!(customer_rows("2", "pending"), 0);
        assert!(
            text("SELECT reasons::text FROM erp_sync.rejections WHERE contact_id = '2'")
                .contains("phone_verified")
        );
        // a contact that does not exist: a skipped row says so
        run("INSERT INTO mp.orders (customer, amount) VALUES (404, 1)");
        let why = text("SELECT last_error FROM erp_sync.outbox WHERE contact_id = '404' AND status = 'skipped'");
        assert!(
            why.contains("sync requested by a row of mp.orders: contact 404 not found"),
            "{why}"
        );
    }

    #[pg_test]
    fn a_condition_column_asks_only_when_it_turns_true() {
        serial();
        orders();
        run(
            r#"SELECT erp_sync.track('mp.orders', 'trigger', '{"contact_id": "customer", "condition": "first_paid"}')"#,
        );
        run("INSERT INTO mp.orders (id, customer, amount) VALUES (1, 1, 100)");
        assert_eq!(customer_rows("1", "pending"), 0, "not paid yet");
        run("UPDATE mp.orders SET first_paid = true WHERE id = 1");
        assert_eq!(customer_rows("1", "pending"), 1, "the first payment asks");
        run("UPDATE erp_sync.outbox SET status = 'done', finished_at = now()");
        run("UPDATE mp.orders SET amount = 120 WHERE id = 1");
        assert_eq!(customer_rows("1", "pending"), 0, "still true: asks no more");
        run("INSERT INTO mp.orders (id, customer, amount, first_paid) VALUES (2, 1, 9, true)");
        assert_eq!(
            customer_rows("1", "pending"),
            1,
            "an insert with the condition true asks"
        );
        // the platform's write never fails because of it
        run("INSERT INTO mp.orders (id, customer, amount, first_paid) VALUES (3, 999999, 1, true)");
    }

    #[pg_test]
    fn bad_sync_triggers_are_clear_errors() {
        serial();
        orders();
        let s = sqlstate(
            r#"SELECT erp_sync.track('mp.orders', 'trigger', '{"contact_id": "customer", "condition": "amount"}')"#,
        );
        assert!(
            s.starts_with("22023: map condition to a boolean column"),
            "{s}"
        );
        let s = sqlstate(r#"SELECT erp_sync.track('mp.orders', 'trigger', '{}')"#);
        assert!(s.starts_with("42703: map it explicitly"), "{s}");
        let s =
            sqlstate(r#"SELECT erp_sync.track('mp.contacts', 'trigger', '{"contact_id": "id"}')"#);
        assert!(s.contains("untrack"), "a table is tracked once: {s}");
        // untrack forgets it and detaches the trigger
        run(r#"SELECT erp_sync.track('mp.orders', 'trigger', '{"contact_id": "customer"}')"#);
        assert_eq!(text("SELECT erp_sync.untrack('mp.orders')"), "trigger");
        assert_eq!(int("SELECT count(*) FROM erp_sync.sync_triggers"), 0);
        run("INSERT INTO mp.orders (customer, amount) VALUES (1, 100)");
        assert_eq!(customer_rows("1", "pending"), 0);
        // a sync-trigger table tracked as an entity later is that entity only
        run(r#"SELECT erp_sync.track('mp.orders', 'trigger', '{"contact_id": "customer"}')"#);
        run("CREATE TABLE mp.notes (id bigserial PRIMARY KEY, contact_id bigint, content text)");
        run(r#"SELECT erp_sync.track('mp.notes', 'trigger', '{}')"#);
        run("SELECT erp_sync.track('mp.notes', 'signal')");
        assert_eq!(int("SELECT count(*) FROM erp_sync.sync_triggers"), 1);
    }
}
