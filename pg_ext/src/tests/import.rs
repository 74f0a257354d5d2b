//! `#[pg_test]`s of `erp_sync.import_erp_customers()` (`sql/import.sql`): the pulled ERP-only
//! customers into the tracked contact table through its column map, linked to their own ord and
//! khid, without an echo into the outbox; skips and failures reported per customer.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{int, jsonb, one, outbox, platform, run, serial, sqlstate, text};
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    /// A platform of its own column names: full_name NOT NULL (an ERP customer without a name
    /// fails), a CHECK on the kind, a column the ERP knows nothing of with its default.
    fn crm_platform() {
        run("CREATE SCHEMA crm");
        run("CREATE TABLE crm.people (pid bigserial PRIMARY KEY, full_name text NOT NULL,
                 mobile text, kind text CHECK (kind IN ('company', 'personal')), firm text, boss text,
                 wx text, addr text, vip boolean NOT NULL DEFAULT false)");
        run(
            r#"SELECT erp_sync.track('crm.people', 'contact', '{"id": "pid", "name": "full_name",
                 "phone": "mobile", "type": "kind", "company": "firm", "contact_person": "boss",
                 "wechat_id": "wx", "address": "addr"}')"#,
        );
    }

    /// A pulled ERP customer (`raw` as the list gives it: intsort, person_name).
    fn pulled(ord: i64, name: Option<&str>, khid: Option<&str>, mobile: Option<&str>, raw: Value) {
        let q = |v: Option<&str>| v.map_or("NULL".into(), pgrx::spi::quote_literal);
        run(&format!(
            "INSERT INTO erp_sync.erp_customers (erp_ord, name, khid, mobile, weixin_acc, address, ly, raw)
             VALUES ({ord}, {}, {}, {}, 'wx_{ord}', '北京市朝阳区', '172', {}::jsonb)",
            q(name),
            q(khid),
            q(mobile),
            pgrx::spi::quote_literal(raw.to_string())
        ));
    }

    fn entries(summary: &Value, list: &str) -> Vec<(i64, String)> {
        summary[list]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        let ord = e["erp_ord"].as_i64().unwrap_or(-1);
                        let why = ["reason", "sqlstate", "contact_id"]
                            .iter()
                            .find_map(|k| e[*k].as_str())
                            .unwrap_or_default();
                        (ord, why.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[pg_test]
    fn imports_through_the_column_map_linked_without_an_echo() {
        serial();
        crm_platform();
        run("INSERT INTO crm.people (pid, full_name, mobile) VALUES (7, '平台老客户', '13900000503')");
        pulled(
            501,
            Some("手工甲"),
            Some("KH501"),
            Some("+86 139-0000-0501"),
            json!({"intsort": "2"}),
        );
        pulled(
            502,
            Some("某某科技有限公司"),
            Some("KH502"),
            Some("13900000502"),
            json!({"intsort": "1", "person_name": "李经理"}),
        );
        // the mobile of platform contact 7 (another notation): one person, one contact
        pulled(
            503,
            Some("重复手机"),
            Some("KH503"),
            Some("139 0000 0503"),
            json!({"intsort": "2"}),
        );
        // no name: full_name NOT NULL refuses it, the others are imported
        pulled(
            504,
            None,
            Some("KH504"),
            Some("13900000504"),
            json!({"intsort": "2"}),
        );
        // gone from the ERP, linked by khid already, the khid of platform contact 7: not ERP-only
        pulled(
            505,
            Some("已删除"),
            Some("KH505"),
            Some("13900000505"),
            json!({}),
        );
        run("UPDATE erp_sync.erp_customers SET gone_at = now() WHERE erp_ord = 505");
        pulled(
            506,
            Some("平台老客户"),
            Some("WX7"),
            Some("13900000506"),
            json!({}),
        );
        // the format's khid of a key no contact has yet, and no khid at all: skipped
        pulled(
            507,
            Some("占号客户"),
            Some("WX999"),
            Some("13900000507"),
            json!({}),
        );
        pulled(508, Some("无编号"), None, Some("13900000508"), json!({}));
        // two ERP customers with one mobile: the first is imported, the second skipped
        pulled(
            509,
            Some("同号乙"),
            Some("KH509"),
            Some("13900000509"),
            json!({"intsort": "2"}),
        );
        pulled(
            510,
            Some("同号丙"),
            Some("KH510"),
            Some("13900000509"),
            json!({"intsort": "2"}),
        );

        let s = jsonb("SELECT erp_sync.import_erp_customers()");
        assert_eq!(s["candidates"], json!(8), "{s}");
        assert_eq!(s["imported"], json!(3), "{s}");
        assert_eq!(s["skipped"], json!(4), "{s}");
        assert_eq!(s["failed"], json!(1), "{s}");
        assert_eq!(s["dry_run"], json!(false));
        let failed = &s["failures"][0];
        assert_eq!(failed["erp_ord"], json!(504), "{s}");
        assert_eq!(failed["sqlstate"], json!("23502"), "{s}");
        assert!(
            failed["message"]
                .as_str()
                .unwrap_or_default()
                .contains("full_name"),
            "{s}"
        );
        let skipped = entries(&s, "skipped_customers");
        let reason = |ord: i64| {
            skipped
                .iter()
                .find(|(o, _)| *o == ord)
                .map(|(_, r)| r.clone())
                .unwrap_or_default()
        };
        assert!(
            reason(503).contains("mobile already on platform contact 7"),
            "{skipped:?}"
        );
        assert!(
            reason(507).contains("WX999") && reason(507).contains("999"),
            "{skipped:?}"
        );
        assert!(reason(508).contains("no usable khid"), "{skipped:?}");
        let new_509 = entries(&s, "contacts").into_iter().find(|(o, _)| *o == 509);
        let new_509 = new_509.map(|(_, k)| k).unwrap_or_default();
        assert!(
            reason(510).contains(&format!("platform contact {new_509}")),
            "{skipped:?}"
        );

        // the contacts: what the ERP gives, the table's defaults for the rest
        let key_501 = text("SELECT contact_id FROM erp_sync.customer_link WHERE erp_ord = 501");
        assert_eq!(
            text(&format!(
                "SELECT concat_ws('|', full_name, mobile, kind, wx, addr, vip) FROM crm.people WHERE pid = {key_501}"
            )),
            "手工甲|13900000501|personal|wx_501|北京市朝阳区|f"
        );
        let key_502 = text("SELECT contact_id FROM erp_sync.customer_link WHERE erp_ord = 502");
        assert_eq!(
            text(&format!(
                "SELECT concat_ws('|', full_name, firm, boss, kind) FROM crm.people WHERE pid = {key_502}"
            )),
            "李经理|某某科技有限公司|李经理|company"
        );
        // linked with the ERP customer's own khid; no outbox row (no echo); synced with its ord
        assert_eq!(
            text(&format!(
                "SELECT concat_ws('|', khid, customer_type, person_synced, synced_at IS NOT NULL)
                 FROM erp_sync.customer_link WHERE contact_id = '{key_501}'"
            )),
            "KH501|personal|t|t"
        );
        // (platform contact 7, inserted above, was captured: rejected, its admission fields unmapped)
        assert_eq!(outbox("contact_id <> '7'"), 0);
        assert_eq!(
            int("SELECT count(*) FROM erp_sync.rejections WHERE contact_id <> '7'"),
            0
        );
        assert_eq!(
            text(&format!(
                "SELECT concat_ws('|', sync_state, erp_ord, khid) FROM erp_sync.contact_status WHERE contact_id = '{key_501}'"
            )),
            "synced|501|KH501"
        );
        // the payload names the linked customer's khid: the sidecar updates that customer
        assert_eq!(
            jsonb(&format!("SELECT erp_sync.contact_payload('{key_501}')"))["khid"],
            json!("KH501")
        );
        assert_eq!(int("SELECT count(*) FROM erp_sync.erp_only_customers"), 5);
        assert_eq!(int("SELECT count(*) FROM crm.people"), 4);

        // idempotent: a second call imports nothing
        let again = jsonb("SELECT erp_sync.import_erp_customers()");
        assert_eq!(again["imported"], json!(0), "{again}");
        assert_eq!(int("SELECT count(*) FROM crm.people"), 4);

        // capture is suppressed only for the import's own transaction: a later edit is captured
        run(&format!(
            "UPDATE crm.people SET full_name = '手工甲改' WHERE pid = {key_501}"
        ));
        assert!(
            outbox(&format!("contact_id = '{key_501}'"))
                + int(&format!(
                    "SELECT count(*) FROM erp_sync.rejections WHERE contact_id = '{key_501}'"
                ))
                == 1,
            "the edit is captured (queued, or rejected by admission)"
        );
    }

    /// On the reference schema: an imported contact the platform then vets and edits is queued
    /// as an ordinary customer row, whose payload updates the same ERP customer (its khid).
    #[pg_test]
    fn a_later_platform_edit_queues_the_linked_customer() {
        serial();
        platform();
        pulled(
            601,
            Some("手工客户"),
            Some("KH601"),
            Some("13900000601"),
            json!({"intsort": "2"}),
        );
        let s = jsonb("SELECT erp_sync.import_erp_customers()");
        assert_eq!(s["imported"], json!(1), "{s}");
        let key = text("SELECT contact_id FROM erp_sync.customer_link WHERE erp_ord = 601");
        assert_eq!(outbox("true"), 0);
        run(&format!(
            "UPDATE mp.contacts SET name = '手工客户改', list_status = 'white', phone_verified = true, score = 80
             WHERE id = {key}"
        ));
        assert_eq!(
            outbox(&format!(
                "contact_id = '{key}' AND kind = 'customer' AND status = 'pending'"
            )),
            1
        );
        let p = jsonb(&format!("SELECT erp_sync.contact_payload('{key}')"));
        assert_eq!(p["khid"], json!("KH601"));
        assert_eq!(p["name"], json!("手工客户改"));
        assert_eq!(p["admission"]["passed"], json!(true), "{p}");
    }

    #[pg_test]
    fn dry_run_keeps_nothing_and_errors_name_what_is_missing() {
        serial();
        platform();
        // nothing pulled yet: a summary saying so, no error
        let s = jsonb("SELECT erp_sync.import_erp_customers()");
        assert_eq!(s["pulled"], json!(false), "{s}");
        pulled(
            701,
            Some("手工客户"),
            Some("KH701"),
            Some("13900000701"),
            json!({"intsort": "2"}),
        );
        pulled(
            702,
            Some("手工客户二"),
            Some("KH702"),
            Some("13900000702"),
            json!({"intsort": "2"}),
        );
        let s = jsonb("SELECT erp_sync.import_erp_customers(dry_run => true)");
        assert_eq!(s["dry_run"], json!(true));
        assert_eq!(s["imported"], json!(2), "{s}");
        assert_eq!(int("SELECT count(*) FROM mp.contacts"), 0);
        assert_eq!(int("SELECT count(*) FROM erp_sync.customer_link"), 0);
        // max_customers: one now, the other left
        let s = jsonb("SELECT erp_sync.import_erp_customers(max_customers => 1)");
        assert_eq!(
            (s["imported"].clone(), s["remaining"].clone()),
            (json!(1), json!(1)),
            "{s}"
        );
        let s = jsonb("SELECT erp_sync.import_erp_customers()");
        assert_eq!(s["imported"], json!(1), "{s}");
        assert_eq!(outbox("true"), 0);
        assert!(sqlstate("SELECT erp_sync.import_erp_customers(-1)").starts_with("22023"));
        // no contact table tracked: 55000 with a hint
        run("SELECT erp_sync.untrack('mp.contacts')");
        let e = sqlstate("SELECT erp_sync.import_erp_customers()");
        assert!(
            e.starts_with("55000: ") && e.contains("erp_sync.track("),
            "{e}"
        );
        // owner only
        assert_eq!(
            one::<bool>("SELECT has_function_privilege('public', 'erp_sync.import_erp_customers(int, boolean)', 'EXECUTE')"),
            Some(false)
        );
        assert_eq!(
            one::<bool>("SELECT has_function_privilege('erp_sync_worker', 'erp_sync.suppress_capture(regclass, boolean)', 'EXECUTE')"),
            Some(false)
        );
    }
}
