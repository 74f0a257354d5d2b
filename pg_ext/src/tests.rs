//! `#[pg_test]`s: every SQL function and every trigger path, inside Postgres (`cargo pgrx test`).
//! Each test runs in its own transaction, rolled back at the end. This file holds the helpers the
//! topic modules share (`tests/<topic>.rs`, one per area of the extension).

mod admission;
mod capture;
mod capture_log;
mod dump;
mod import;
mod keys;
mod notify;
mod operator_functions;
mod robustness;
mod rules;
mod sources;
mod sync_triggers;
mod track;
mod views_roles;

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::Value;

    pub(crate) const MIDDLE_PLATFORM: &str = include_str!("../../sql/middle_platform.sql");

    pub(crate) fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub(crate) fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub(crate) fn int(sql: &str) -> i64 {
        one::<i64>(sql).unwrap_or_else(|| panic!("NULL from {sql}"))
    }

    pub(crate) fn text(sql: &str) -> String {
        one::<String>(sql).unwrap_or_else(|| panic!("NULL from {sql}"))
    }

    pub(crate) fn jsonb(sql: &str) -> Value {
        one::<pgrx::JsonB>(sql).map(|j| j.0).unwrap_or(Value::Null)
    }

    /// SQLSTATE and hint of the error `sql` raises ("ok" when it does not).
    pub(crate) fn sqlstate(sql: &str) -> String {
        if one::<bool>("SELECT to_regprocedure('pg_temp.sqlstate_of(text)') IS NULL") == Some(true)
        {
            run(
                "CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $f$
             DECLARE h text;
             BEGIN EXECUTE q; RETURN 'ok';
             EXCEPTION WHEN OTHERS THEN GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
                  RETURN SQLSTATE || ': ' || coalesce(h, '');
             END $f$",
            );
        }
        text(&format!(
            "SELECT pg_temp.sqlstate_of({})",
            pgrx::spi::quote_literal(sql)
        ))
    }

    /// Tests run concurrently against one database and create the same schema, tables, rows in
    /// erp_sync.tracked_tables / settings: take turns (the lock ends with the test's transaction).
    pub(crate) fn serial() {
        run("SELECT pg_advisory_xact_lock(20251019)");
    }

    pub(crate) fn platform() {
        run(MIDDLE_PLATFORM);
    }

    /// A contact that passes admission.
    pub(crate) fn good_contact(id: i64) {
        run(&format!(
            "INSERT INTO mp.contacts (id, type, name, company, phone, phone_verified, score, list_status, wechat_id)
             VALUES ({id}, 'company', '王小明', '上海某某有限公司', '+86 138-0013-{id:04}', true, 80, 'white', 'wx_{id}')"
        ));
    }

    pub(crate) fn outbox(filter: &str) -> i64 {
        int(&format!(
            "SELECT count(*) FROM erp_sync.outbox WHERE {filter}"
        ))
    }
}
