//! Capture-log rows written straight into the heap and its index (`capture.mode = log`), at the
//! writing transaction's own level: the write path's whole cost beyond reading the statement's
//! transition table.
//!
//! Through SPI inside the capture's subtransaction (perf, single-row INSERT, bench write_path)
//! the log row cost about half of the trigger: plan lookup, executor start-up, projection — and
//! an xid of the subtransaction's own (assignment, lock-table entry, `pg_subtrans`; past 64
//! captured statements in one transaction every session's snapshots overflow). Here a row takes
//! the steps COPY takes (`table_tuple_insert`, `ExecInsertIndexTuples`) under the transaction's
//! own xid, after the capture's subtransaction has decided what to write.
//!
//! Outside a subtransaction nothing may raise an ERROR the platform's write did not: the table is
//! looked up without erroring, locked only if the lock is free at once (an expansion truncating
//! it holds it), its columns are checked by name and type, and every value is ours. Whatever does
//! not fit returns `false` and the caller writes the same rows through SPI in a subtransaction,
//! where an error is caught and recorded. Access checks: none (as for any C-level heap access; the
//! rows describe the caller's own write).

use super::direct::{find_relid, RowWriter};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

/// One capture-log row: a kind of work and, per contact key, its ref and template.
pub struct LogRow<'a> {
    pub op: u8,
    pub keys: &'a [String],
    pub refs: Option<&'a [Option<i64>]>,
    pub templates: Option<&'a [Option<i32>]>,
}

/// Positions (0-based) of the log table's columns, found by name and type.
struct Columns {
    natts: usize,
    txid: usize,
    source: usize,
    op: usize,
    keys: usize,
    refs: usize,
    templates: usize,
    at: usize,
}

impl Columns {
    /// `None` when a column is missing or of another type than `sql/capture_log.sql` declares.
    unsafe fn of(desc: pg_sys::TupleDesc) -> Option<Columns> {
        let natts = usize::try_from((*desc).natts).ok()?;
        let find = |name: &str, ty: pg_sys::Oid| {
            (0..natts).find(|&i| {
                let att = (*desc).attrs.as_ptr().add(i);
                !(*att).attisdropped
                    && (*att).atttypid == ty
                    && CStr::from_ptr((*att).attname.data.as_ptr()).to_bytes() == name.as_bytes()
            })
        };
        Some(Columns {
            natts,
            txid: find("txid", pg_sys::XID8OID)?,
            source: find("source", pg_sys::OIDOID)?,
            op: find("op", pg_sys::CHAROID)?,
            keys: find("keys", pg_sys::TEXTARRAYOID)?,
            refs: find("refs", pg_sys::INT8ARRAYOID)?,
            templates: find("templates", pg_sys::INT4ARRAYOID)?,
            at: find("at", pg_sys::TIMESTAMPTZOID)?,
        })
    }
}

/// Append `rows` to `erp_sync.<table>` for transaction `txid` and the captured table `source`.
/// `false`: nothing was written (table missing or changed, or its lock not free at once).
pub fn append(table: &CStr, txid: u64, source: pg_sys::Oid, rows: &[LogRow<'_>]) -> bool {
    if rows.is_empty() {
        return true;
    }
    // SAFETY: the sequence COPY FROM uses for each row, as in `super::direct::insert`, on a table
    // locked here (ConditionalLockRelationOid, held to the end of the transaction, accepts the
    // invalidations a TRUNCATE sent) whose columns were checked; everything opened is closed here.
    unsafe {
        let Some(relid) = find_relid(table) else {
            return false;
        };
        if !pg_sys::ConditionalLockRelationOid(relid, pg_sys::RowExclusiveLock as i32) {
            return false;
        }
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return false;
        }
        let plain_table = (*(*rel).rd_rel).relkind == pg_sys::RELKIND_RELATION as std::ffi::c_char;
        let cols = if plain_table {
            Columns::of((*rel).rd_att)
        } else {
            None
        };
        let Some(cols) = cols else {
            pg_sys::RelationClose(rel);
            return false;
        };
        // what table_open adds: the inserts count in pg_stat (autovacuum, ANALYZE of the log)
        pg_sys::pgstat_init_relation(rel);
        let writer = RowWriter::open(rel);
        let slot = writer.slot;
        let cid = pg_sys::GetCurrentCommandId(true);
        let at = pg_sys::Datum::from(pg_sys::GetCurrentTransactionStartTimestamp());
        for row in rows {
            pg_sys::ExecClearTuple(slot);
            let values = std::slice::from_raw_parts_mut((*slot).tts_values, cols.natts);
            let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, cols.natts);
            nulls.fill(true);
            let mut set = |i: usize, v: Option<pg_sys::Datum>| {
                if let Some(v) = v {
                    values[i] = v;
                    nulls[i] = false;
                }
            };
            set(cols.txid, Some(pg_sys::Datum::from(txid)));
            set(cols.source, Some(pg_sys::Datum::from(source)));
            set(cols.op, Some(pg_sys::Datum::from(row.op)));
            set(cols.keys, row.keys.to_vec().into_datum());
            set(cols.refs, row.refs.and_then(|r| r.to_vec().into_datum()));
            set(
                cols.templates,
                row.templates.and_then(|t| t.to_vec().into_datum()),
            );
            set(cols.at, Some(at));
            pg_sys::ExecStoreVirtualTuple(slot);
            writer.insert(cid);
        }
        writer.close();
        pg_sys::RelationClose(rel);
        true
    }
}
