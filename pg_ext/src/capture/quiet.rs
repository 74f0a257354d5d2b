//! `erp_sync.suppress_capture(tbl, suppress)`: the capture trigger ignores this backend's writes
//! to one table until the end of the current transaction. Used by
//! `erp_sync.import_erp_customers()` (`sql/import.sql`): the contacts it inserts are ERP
//! customers already, linked in the same transaction, so capturing them would send the ERP what
//! it holds (an echo). Not a GUC: a setting could be set by any role that writes contacts; this
//! function is the owner's (EXECUTE revoked from PUBLIC in `sql/import.sql`).
//!
//! The flag carries the local transaction id that set it, so it ends with its transaction
//! (commit or abort) without a callback: the next transaction of the backend has another id.

use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    /// (local transaction id, table) whose capture is suppressed
    static QUIET: Cell<Option<(u32, pg_sys::Oid)>> = const { Cell::new(None) };
}

fn current_lxid() -> u32 {
    // SAFETY: MyProc is set for every backend that can run SQL.
    unsafe { (*pg_sys::MyProc).lxid }
}

/// Is capture of `relid` suppressed in the current transaction?
pub fn suppressed(relid: pg_sys::Oid) -> bool {
    QUIET.with(Cell::get) == Some((current_lxid(), relid))
}

/// Until the end of the current transaction (or a call with `suppress` false), the capture
/// trigger writes nothing for this backend's INSERTs and UPDATEs of `tbl`. Returns `suppress`.
#[pg_extern(
    volatile,
    strict,
    parallel_unsafe,
    sql = "CREATE FUNCTION erp_sync.suppress_capture(tbl regclass, suppress boolean) RETURNS boolean \
           VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'suppress_capture_wrapper';"
)]
fn suppress_capture(tbl: pg_sys::Oid, suppress: bool) -> bool {
    QUIET.with(|q| q.set(suppress.then(|| (current_lxid(), tbl))));
    suppress
}
