//! The platform relations capture attaches to: what a table (or payload view) is, and its capture
//! triggers — shared by `track()` (`super::track`) and `track_source()` (`super::source`).

use crate::error::{ErpResult, ErpSyncError};
use pgrx::prelude::*;

/// Statement-level capture triggers: INSERT (new rows) and UPDATE (old and new rows; a trigger
/// with transition tables fires for one event only). One set per table, whatever it is tracked as.
pub const TRIGGER_INSERT: &str = "erp_sync_capture";
pub const TRIGGER_UPDATE: &str = "erp_sync_capture_update";

/// Drops the capture triggers present on a table (`DROP TRIGGER IF EXISTS` would print a NOTICE
/// for each one that is missing, e.g. on every first `track()`).
pub fn drop_triggers(relid: pg_sys::Oid, qualname: &str) -> ErpResult<()> {
    let sql = Spi::get_one_with_args::<String>(
        &format!(
            "SELECT coalesce(string_agg(format('DROP TRIGGER %I ON %s', tgname, $2::text), '; '), '') \
             FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND tgname IN ('{TRIGGER_INSERT}', '{TRIGGER_UPDATE}')"
        ),
        &[relid.into(), qualname.into()],
    )?
    .unwrap_or_default();
    if !sql.is_empty() {
        Spi::run(&sql)?;
    }
    Ok(())
}

pub struct TableInfo {
    pub qualname: String,
    pub columns: Vec<String>,
    /// a view (or materialized view): a payload view, read but never given triggers
    pub is_view: bool,
}

/// A table (`track`, `track_source`) or, with `views`, a view or materialized view.
pub fn relation_info(relid: pg_sys::Oid, views: bool) -> ErpResult<TableInfo> {
    let row = Spi::get_two_with_args::<String, String>(
        "SELECT c.relkind::text, format('%I.%I', n.nspname, c.relname) \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = $1",
        &[relid.into()],
    );
    let (kind, qualname) = match row {
        Ok((Some(k), Some(q))) => (k, q),
        Ok(_) | Err(pgrx::spi::Error::InvalidPosition) => {
            return Err(ErpSyncError::NotATable(format!(
                "relation {}",
                relid.to_u32()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let is_view = kind == "v" || kind == "m";
    if kind != "r" && kind != "p" && !(views && is_view) {
        return Err(ErpSyncError::NotATable(qualname));
    }
    let columns = Spi::connect(|client| {
        let mut cols = Vec::new();
        let rows = client.select(
            "SELECT attname::text FROM pg_catalog.pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            None,
            &[relid.into()],
        )?;
        for row in rows {
            if let Some(c) = row.get::<String>(1)? {
                cols.push(c);
            }
        }
        Ok::<_, pgrx::spi::Error>(cols)
    })?;
    Ok(TableInfo {
        qualname,
        columns,
        is_view,
    })
}

/// A table that can have capture triggers.
pub fn table_info(relid: pg_sys::Oid) -> ErpResult<TableInfo> {
    relation_info(relid, false)
}

/// Refuse to make `relid` `what` while it is tracked as an entity's table or a sync trigger: a
/// table has one set of capture triggers.
pub fn refuse_if_tracked(relid: pg_sys::Oid, qualname: &str, what: &str) -> ErpResult<()> {
    let other = Spi::get_one_with_args::<String>(
        "SELECT entity FROM erp_sync.tracked_tables WHERE relid = $1::regclass \
         UNION ALL SELECT 'trigger' FROM erp_sync.sync_triggers WHERE relid = $1::regclass",
        &[relid.into()],
    );
    match other {
        Ok(Some(e)) => Err(ErpSyncError::InvalidArgument {
            message: format!("{qualname} is tracked as the {e} table; a table is tracked once"),
            hint: format!("to make it {what} instead, call erp_sync.untrack('{qualname}') first"),
        }),
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Delete `relid`'s row from `erp_sync.<table>` (`sync_triggers`, `change_sources`, keyed by
/// `relid`): false when it had none, or the table does not exist (a database still at 0.1.0's
/// schema, which this library also serves).
pub fn forget(table: &str, relid: pg_sys::Oid) -> ErpResult<bool> {
    if !exists(table)? {
        return Ok(false);
    }
    let qualified = format!("erp_sync.{table}");
    Ok(Spi::get_one_with_args::<bool>(
        &format!(
            "WITH d AS (DELETE FROM {qualified} WHERE relid = $1::regclass RETURNING 1) \
             SELECT count(*) > 0 FROM d"
        ),
        &[relid.into()],
    )?
    .unwrap_or(false))
}

/// Does `erp_sync.<table>` exist? (Tables new in 0.2.0 do not while a database is still at
/// 0.1.0's schema.)
pub fn exists(table: &str) -> ErpResult<bool> {
    let qualified = format!("erp_sync.{table}");
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.to_regclass($1) IS NOT NULL",
        &[qualified.as_str().into()],
    )? == Some(true))
}

/// Refuse `what` (e.g. "change sources") on a database still at 0.1.0's schema, which has no
/// `erp_sync.<table>` yet.
pub fn require_0_2_0(table: &str, what: &str) -> ErpResult<()> {
    if exists(table)? {
        return Ok(());
    }
    Err(ErpSyncError::InvalidArgument {
        message: format!("{what} need the erp_sync 0.2.0 schema; this database is still at 0.1.0"),
        hint: "run ALTER EXTENSION erp_sync UPDATE first".into(),
    })
}
