//! `#[pg_test]`s: pg_dump / pg_restore: what is dumped, templates and contact_status after a restore.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    /// Every table and sequence of the extension is either dumped (pg_extension_config_dump) or
    /// deliberately not (dump.sql says why): a new table must take a side here.
    #[pg_test]
    fn every_table_is_dumped_or_deliberately_not() {
        serial();
        let undecided = text(
            "SELECT coalesce(string_agg(c.relname, ',' ORDER BY c.relname), '') FROM pg_class c
             WHERE c.relnamespace = 'erp_sync'::regnamespace AND c.relkind IN ('r', 'p', 'S')
               AND NOT c.oid = ANY (coalesce((SELECT extconfig FROM pg_extension WHERE extname = 'erp_sync'), '{}'))
               AND c.relname NOT IN ('workers', 'erp_session', 'capture_log', 'capture_log_0', 'capture_log_1', 'capture_cursor')",
        );
        assert_eq!(
            undecided, "",
            "tables/sequences neither dumped nor listed as not dumped"
        );
        // the sequence of every dumped table is dumped too (restored ids would collide)
        let seqs = text(
            "SELECT coalesce(string_agg(s.relname, ',' ORDER BY s.relname), '') FROM pg_class s
             JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
             WHERE s.relkind = 'S' AND s.relnamespace = 'erp_sync'::regnamespace
               AND NOT s.oid = ANY (coalesce((SELECT extconfig FROM pg_extension WHERE extname = 'erp_sync'), '{}'))",
        );
        assert_eq!(seqs, "", "sequences not dumped");
        // every row of the templates is dumped (no filter): restored edits replace the seeds
        assert_eq!(
            text(
                "SELECT c.extcondition[array_position(c.extconfig, 'erp_sync.followup_templates'::regclass)]
                 FROM pg_extension c WHERE c.extname = 'erp_sync'"
            ),
            ""
        );
    }

    fn templates_now() -> String {
        text(
            "SELECT string_agg(format('%s:%s:%s', template_id, array_to_string(keywords, '/'), priority), ' '
                               ORDER BY template_id) FROM erp_sync.followup_templates",
        )
    }

    fn deleted_defaults() -> String {
        text(
            "SELECT coalesce(string_agg(template_id::text, ',' ORDER BY template_id), '')
             FROM erp_sync.followup_templates_deleted",
        )
    }

    /// The state a restore's CREATE EXTENSION leaves: the seeds, no deleted defaults.
    fn reseed_templates() {
        run("TRUNCATE erp_sync.followup_templates");
        assert_eq!(deleted_defaults(), "106,107,108,109,120");
        run("DELETE FROM erp_sync.followup_templates_deleted");
        run("INSERT INTO erp_sync.followup_templates SELECT * FROM erp_sync.followup_template_defaults()");
        assert_eq!(deleted_defaults(), "");
    }

    #[pg_test]
    fn template_edits_and_deletions_survive_a_restore_in_either_order() {
        serial();
        let fresh = templates_now();
        assert_eq!(
            fresh,
            "106:很好/发合同/签约:10 107:无人接听/未接:20 108:还没考虑/再等等:30 109:面谈/见面:40 120:考虑中/研究一下:50"
        );
        // the operator edits a default, deletes one, adds one
        run("UPDATE erp_sync.followup_templates SET keywords = keywords || '合同'::text WHERE template_id = 106");
        run("DELETE FROM erp_sync.followup_templates WHERE template_id = 107");
        run("INSERT INTO erp_sync.followup_templates VALUES (130, ARRAY['报价'], 5, '报价')");
        assert_eq!(deleted_defaults(), "107");
        let edited = templates_now();
        // an edited row is not replaced by an INSERT of its id; a marker for it is refused
        assert!(
            sqlstate("INSERT INTO erp_sync.followup_templates VALUES (106, '{}', 1, 'x')")
                .starts_with("23505")
        );
        assert!(
            sqlstate("INSERT INTO erp_sync.followup_templates_deleted VALUES (106)")
                .starts_with("23514")
        );
        assert!(
            sqlstate("INSERT INTO erp_sync.followup_templates_deleted VALUES (130)")
                .starts_with("23514")
        );
        run("CREATE TEMP TABLE dumped_t AS SELECT * FROM erp_sync.followup_templates");
        run("CREATE TEMP TABLE dumped_d AS SELECT * FROM erp_sync.followup_templates_deleted");
        // restore: templates first, then the deleted defaults
        reseed_templates();
        run("INSERT INTO erp_sync.followup_templates SELECT * FROM dumped_t");
        run("INSERT INTO erp_sync.followup_templates_deleted SELECT * FROM dumped_d");
        assert_eq!(templates_now(), edited);
        assert_eq!(deleted_defaults(), "107");
        // restore: the deleted defaults first
        reseed_templates();
        run("INSERT INTO erp_sync.followup_templates_deleted SELECT * FROM dumped_d");
        run("INSERT INTO erp_sync.followup_templates SELECT * FROM dumped_t");
        assert_eq!(templates_now(), edited);
        assert_eq!(deleted_defaults(), "107");
        assert_eq!(
            int("SELECT erp_sync.select_template('电话未接')::int8"),
            120
        );
        assert_eq!(
            int("SELECT erp_sync.select_template('请报价，很好')::int8"),
            130
        );
        // a deleted default that comes back (new id reused, or renumbered) is no longer deleted
        run("UPDATE erp_sync.followup_templates SET template_id = 107 WHERE template_id = 130");
        assert_eq!(deleted_defaults(), "");
        run("UPDATE erp_sync.followup_templates SET template_id = 131 WHERE template_id = 108");
        assert_eq!(deleted_defaults(), "108");
    }

    #[pg_test]
    fn contact_status_rebuilds_when_the_contact_table_arrives() {
        serial();
        platform();
        good_contact(1);
        let over_contacts =
            "SELECT pg_get_viewdef('erp_sync.contact_status'::regclass) LIKE '%mp.contacts%'";
        assert_eq!(one::<bool>(over_contacts), Some(true));
        run("CREATE TEMP TABLE dumped_tt AS SELECT * FROM erp_sync.tracked_tables");
        // a restore's CREATE EXTENSION: no tracked table, contact_status over the known ids
        run("TRUNCATE erp_sync.tracked_tables");
        assert_eq!(one::<bool>(over_contacts), Some(false));
        // then its COPY of tracked_tables
        run("INSERT INTO erp_sync.tracked_tables SELECT * FROM dumped_tt");
        assert_eq!(one::<bool>(over_contacts), Some(true));
        assert_eq!(
            text("SELECT sync_state FROM erp_sync.contact_status WHERE contact_id = '1'"),
            "pending"
        );
        run("DELETE FROM erp_sync.tracked_tables WHERE entity = 'contact'");
        assert_eq!(one::<bool>(over_contacts), Some(false));
    }
}
