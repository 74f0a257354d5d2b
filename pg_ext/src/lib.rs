//! erp_sync: capture the WeChat middle platform's contacts, threads and signals into a
//! transactional outbox for the Zhibang ERP. `CREATE EXTENSION erp_sync`.
//!
//! Table of contents. SQL objects are created in this order:
//!
//! ```text
//! 1. sql/bootstrap.sql  tables, indexes, seed rows (before everything else)
//! 2. Rust functions     rules (rules::sql over erp_sync_rules), capture trigger + track/untrack/request_sync
//!                       (capture), payload functions
//! 3. sql/ops.sql        outbox row CHECK; pick_rep, retry_failed, resolve_in_doubt
//!    sql/outbox.sql     the outbox protocol the sidecar calls: claim, ack, retry, release,
//!                       extend_leases, mark_send_started
//!    sql/capture_log.sql the capture log (capture.mode = log): capture_log_0/_1, capture_cursor,
//!                       the view captured; expand() (capture::log) turns it into outbox rows
//! 4. sql/views.sql      contact_status (rebuilt by track), queue, settings_effective,
//!                       config-change triggers
//! 5. sql/monitoring.sql stats, alerts, recent_failures, alert_state, cleanup (+ their grants)
//! 6. sql/reconcile.sql  pulled ERP customers, reconciliation runs/items, reconcile_report,
//!                       erp_only_customers, reconcile_fix
//!    sql/import.sql     import_erp_customers: the ERP-only customers into the contact table,
//!                       linked (suppress_capture: no echo)
//! 7. sql/schedules.sql  schedule_runs: one run per schedule and period across sidecars
//! 8. sql/rollback.sql   rollback(sync_log_id): the operator's undo of one ERP write
//! 9. sql/erp_session.sql the ERP session shared by the sidecars (worker only)
//!     sql/sync_triggers.sql tables whose rows ask for a sync of their contact (track(.., 'trigger'))
//!     sql/sources.sql   change sources (track_source) and check_source/check_sources for
//!                       payload views (track(view, entity))
//! 10. sql/operator.sql  operator_actions: the audit of the sidecar's operator page; its grants
//! 11. sql/dump.sql      what pg_dump keeps: default templates, contact_status after a restore
//! 12. sql/roles.sql     roles, grants, SECURITY DEFINER for the trigger (last)
//!
//! Upgrades from a released version: sql/erp_sync--A--B.sql (hand-written, see sql/README.md).
//! ```

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

pub mod capture;
pub mod config;
pub mod db;
pub mod entities;
pub mod error;
pub mod rules;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!(
    "../sql/ops.sql",
    name = "ops",
    requires = [
        "bootstrap",
        rules::sql::setting,
        capture::outbox::outbox_row_check
    ]
);
extension_sql_file!(
    "../sql/capture_log.sql",
    name = "capture_log",
    requires = ["bootstrap"]
);
extension_sql_file!(
    "../sql/views.sql",
    name = "views",
    requires = [
        "ops",
        "capture_log",
        rules::sql::khid_text,
        rules::sql::mask_mobile,
        rules::sql::mask_text,
        rules::sql::mask_jsonb,
        rules::sql::normalize_mobile,
        rules::sql::setting_defaults,
        capture::track::config_changed
    ]
);
extension_sql_file!(
    "../sql/monitoring.sql",
    name = "monitoring",
    requires = ["views", rules::sql::setting_defaults, rules::sql::mask_text]
);
extension_sql_file!(
    "../sql/reconcile.sql",
    name = "reconcile",
    requires = [
        "views",
        "ops",
        rules::sql::setting,
        rules::sql::mask_mobile,
        rules::sql::mask_text,
        rules::sql::mask_jsonb
    ]
);
extension_sql_file!(
    "../sql/import.sql",
    name = "import",
    requires = [
        "reconcile",
        "views",
        rules::sql::setting,
        rules::sql::normalize_mobile,
        rules::sql::mask_text,
        capture::quiet::suppress_capture
    ]
);
extension_sql_file!(
    "../sql/outbox.sql",
    name = "outbox",
    requires = [
        "ops",
        capture::payload::contact_payload_text,
        capture::payload::signal_payload,
        capture::log::expand
    ]
);
extension_sql_file!(
    "../sql/schedules.sql",
    name = "schedules",
    requires = ["bootstrap", rules::sql::mask_jsonb]
);
extension_sql_file!("../sql/rollback.sql", name = "rollback", requires = ["ops"]);
extension_sql_file!(
    "../sql/erp_session.sql",
    name = "erp_session",
    requires = ["bootstrap"]
);
extension_sql_file!(
    "../sql/sync_triggers.sql",
    name = "sync_triggers",
    requires = ["bootstrap"]
);
extension_sql_file!(
    "../sql/sources.sql",
    name = "sources",
    requires = ["bootstrap"]
);
extension_sql_file!(
    "../sql/operator.sql",
    name = "operator",
    requires = [
        "bootstrap",
        "rollback",
        capture::track::request_sync_text,
        rules::sql::mask_text
    ]
);
extension_sql_file!(
    "../sql/dump.sql",
    name = "dump",
    requires = [
        "views",
        "monitoring",
        "reconcile",
        "import",
        "schedules",
        "rollback",
        "erp_session",
        "operator",
        "sync_triggers",
        "sources"
    ]
);
extension_sql_file!("../sql/roles.sql", name = "roles", finalize);

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
