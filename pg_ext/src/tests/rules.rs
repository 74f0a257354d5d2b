//! `#[pg_test]`s: the rules as SQL functions (admission, mobiles, masking, scores, templates, khid).

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::*;
    use pgrx::prelude::*;
    use serde_json::json;

    #[pg_test]
    fn rules_scalar_functions() {
        serial();
        assert_eq!(
            one::<String>("SELECT erp_sync.normalize_mobile('+86 138-0013-8000')").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            one::<String>("SELECT erp_sync.normalize_mobile('1380013')"),
            None
        );
        assert_eq!(
            text("SELECT erp_sync.mask_mobile('13812341234')"),
            "138****1234"
        );
        assert_eq!(one::<String>("SELECT erp_sync.mask_mobile(NULL)"), None);
        assert_eq!(text("SELECT erp_sync.mask_mobile('12')"), "****");
        assert_eq!(
            text("SELECT erp_sync.mask_account('6222021234567890')"),
            "****7890"
        );
        assert_eq!(text("SELECT erp_sync.khid('42')"), "WX42");
        assert_eq!(int("SELECT erp_sync.score_to_value(90)::int8"), 175);
        assert_eq!(int("SELECT erp_sync.score_to_value(75)::int8"), 289);
        assert_eq!(int("SELECT erp_sync.score_to_value(60)::int8"), 176);
        assert_eq!(int("SELECT erp_sync.score_to_value(45)::int8"), 177);
        assert_eq!(int("SELECT erp_sync.score_to_value(10)::int8"), 290);
        assert_eq!(
            text("SELECT erp_sync.mask_mobile('+86 139-0000-0779')"),
            "139****0779"
        );
        assert_eq!(
            text("SELECT erp_sync.mask_text('ERP: 手机+86 139-0000-0779已存在, ord 123456789012')"),
            "ERP: 手机+86 139****0779已存在, ord 123456789012"
        );
        assert_eq!(
            text("SELECT erp_sync.mask_text('（+86）１３９０００００７７９')"),
            "（+86）139****0779"
        );
        assert_eq!(one::<String>("SELECT erp_sync.mask_text(NULL)"), None);
        assert_eq!(
            jsonb(
                r#"SELECT erp_sync.mask_jsonb('{"e": ["0086 13900000779"], "n": 13800001111, "ord": 5001}')"#
            ),
            json!({"e": ["0086 139****0779"], "n": "138****1111", "ord": 5001})
        );
    }

    #[pg_test]
    fn rules_volatility_is_declared() {
        // khid is STABLE: it reads customer.khid_format
        serial();
        let v = text(
            "SELECT string_agg(proname || ':' || provolatile::text || proparallel::text || CASE WHEN proisstrict THEN 's' ELSE '' END,
                               ',' ORDER BY proname, provolatile)
             FROM pg_proc WHERE pronamespace = 'erp_sync'::regnamespace
               AND proname IN ('normalize_mobile', 'admission_check', 'khid', 'track', 'select_template',
                               'mask_mobile', 'mask_text', 'mask_jsonb')",
        );
        assert_eq!(
            v,
            "admission_check:sss,khid:sss,mask_jsonb:iss,mask_mobile:iss,mask_text:iss,normalize_mobile:iss,select_template:sss,track:vu"
        );
    }

    #[pg_test]
    fn settings_defaults_and_overrides() {
        serial();
        assert_eq!(text("SELECT erp_sync.setting('admission.min_score')"), "60");
        assert_eq!(
            text("SELECT erp_sync.setting('notify.channel')"),
            "erp_sync"
        );
        assert_eq!(
            one::<String>("SELECT erp_sync.setting('no.such.key')"),
            None
        );
        run("INSERT INTO erp_sync.settings (key, value) VALUES ('admission.min_score', '70')");
        assert_eq!(text("SELECT erp_sync.setting('admission.min_score')"), "70");
        assert_eq!(text("SELECT effective FROM erp_sync.settings_effective WHERE key = 'admission.min_score'"), "70");
        assert!(int("SELECT count(*) FROM erp_sync.settings_effective") >= 9);
    }

    #[pg_test]
    fn admission_check_jsonb() {
        serial();
        let ok = jsonb(
            r#"SELECT erp_sync.admission_check('{"type":"personal","name":"李四五","phone":"138 0013 8000",
                "phone_verified":true,"score":60}')"#,
        );
        assert_eq!(ok["passed"], json!(true), "{ok}");
        assert_eq!(ok["checks"]["is_whitelisted"], json!(true));
        let bad = jsonb(
            r#"SELECT erp_sync.admission_check('{"phone": 13800138000, "score": "ninety-nine", "name": null}')"#,
        );
        assert_eq!(bad["passed"], json!(false));
        let reasons = bad["reasons"].to_string();
        assert!(
            reasons.contains("phone: expected text, got number"),
            "{reasons}"
        );
        assert!(
            reasons.contains("score: expected a number, got text 'ninety-nine'"),
            "{reasons}"
        );
        assert!(reasons.contains("name: is null"), "{reasons}");
        assert!(reasons.contains("type: missing"), "{reasons}");
        let arr = jsonb("SELECT erp_sync.admission_check('[1,2]')");
        assert_eq!(arr["passed"], json!(false));
        // thresholds come from settings
        run("INSERT INTO erp_sync.settings (key, value) VALUES ('admission.min_score', '90')");
        let strict = jsonb(
            r#"SELECT erp_sync.admission_check('{"type":"personal","name":"李四五","phone":"13800138000",
                "phone_verified":true,"score":80}')"#,
        );
        assert_eq!(
            strict["reasons"],
            json!(["score: 80 is below the minimum 90"])
        );
        let pure = jsonb(
            r#"SELECT erp_sync.admission_evaluate('{"type":"personal","name":"李四","phone":"13800138000",
                "phone_verified":true,"score":80}', 1, 50)"#,
        );
        assert_eq!(pure["passed"], json!(true), "{pure}");
    }

    #[pg_test]
    fn select_template_from_table() {
        serial();
        assert_eq!(
            int("SELECT erp_sync.select_template('客户说很好，请发合同')::int8"),
            106
        );
        assert_eq!(
            int("SELECT erp_sync.select_template('电话未接')::int8"),
            107
        );
        assert_eq!(
            int("SELECT erp_sync.select_template('再等等吧')::int8"),
            108
        );
        assert_eq!(
            int("SELECT erp_sync.select_template('下周见面')::int8"),
            109
        );
        assert_eq!(
            int("SELECT erp_sync.select_template('随便聊聊 😀')::int8"),
            120
        );
        run("INSERT INTO erp_sync.followup_templates VALUES (130, ARRAY['报价'], 5, '报价')");
        assert_eq!(
            int("SELECT erp_sync.select_template('请报价，很好')::int8"),
            130
        );
        run("INSERT INTO erp_sync.settings (key, value) VALUES ('template.default', '108')");
        assert_eq!(int("SELECT erp_sync.select_template('nothing')::int8"), 108);
    }

    #[pg_test]
    fn assignment_and_pick_rep() {
        serial();
        assert_eq!(text("SELECT erp_sync.assignment_for(80)"), "top");
        assert_eq!(text("SELECT erp_sync.assignment_for(79)"), "regular");
        assert_eq!(text("SELECT erp_sync.assignment_for(59)"), "public");
        assert_eq!(
            text("SELECT erp_sync.assignment_for(79.9::float8)"),
            "regular"
        );
        run("INSERT INTO erp_sync.settings (key, value) VALUES ('assign.top_min', '90')");
        assert_eq!(text("SELECT erp_sync.assignment_for(85)"), "regular");

        run(
            "INSERT INTO erp_sync.sales_reps (erp_user_id, name, tier) VALUES
             ('u1', 'A', 'top'), ('u2', 'B', 'top'), ('u3', 'C', 'regular')",
        );
        run("INSERT INTO erp_sync.sales_reps (erp_user_id, name, tier, active) VALUES ('u9', 'Z', 'top', false)");
        let picks: Vec<String> = (0..4)
            .map(|_| text("SELECT erp_sync.pick_rep('top')"))
            .collect();
        assert_eq!(picks, vec!["u1", "u2", "u1", "u2"]);
        assert_eq!(text("SELECT erp_sync.pick_rep('regular')"), "u3");
        assert_eq!(one::<String>("SELECT erp_sync.pick_rep('public')"), None);
        assert_eq!(
            int("SELECT assigned_count FROM erp_sync.sales_reps WHERE erp_user_id = 'u1'"),
            2
        );
        assert!(sqlstate("SELECT erp_sync.pick_rep('gold')").starts_with("22023: tier must be"));
    }
}
