//! Reading the rows of one statement from the capture trigger's transition tables
//! (`REFERENCING NEW TABLE ... OLD TABLE`), and pairing the old and new rows of an UPDATE.

use super::columns::{self, Layout, Row};
use pgrx::pg_sys;
use std::collections::{HashMap, VecDeque};

/// Every row of a transition table, read through `layout`. A null tuplestore gives no rows.
///
/// # Safety
/// `store` must be a transition table of the current trigger call (or null) and `tupdesc` the
/// descriptor of its rows (the trigger relation's), which `layout` was resolved with.
pub unsafe fn rows(
    store: *mut pg_sys::Tuplestorestate,
    tupdesc: pg_sys::TupleDesc,
    layout: &mut Layout,
) -> Vec<Row> {
    let mut out = Vec::new();
    if store.is_null() {
        return out;
    }
    // Our own read pointer, as a NamedTuplestoreScan does: the store may be shared with other
    // AFTER triggers of the same statement.
    let ptr = pg_sys::tuplestore_alloc_read_pointer(store, pg_sys::EXEC_FLAG_REWIND as i32);
    pg_sys::tuplestore_select_read_pointer(store, ptr);
    pg_sys::tuplestore_rescan(store);
    let slot =
        pg_sys::MakeSingleTupleTableSlot(tupdesc, std::ptr::addr_of!(pg_sys::TTSOpsMinimalTuple));
    while pg_sys::tuplestore_gettupleslot(store, true, false, slot) {
        out.push(columns::read_slot(layout, slot));
    }
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    out
}

/// Pair each new row with the old row of the same id (first unused one, so duplicate ids pair
/// in order). A new row without an old one (its id changed) pairs with `None`.
pub fn pair(news: Vec<Row>, olds: Vec<Row>) -> Vec<(Row, Option<Row>)> {
    if olds.is_empty() {
        return news.into_iter().map(|n| (n, None)).collect();
    }
    let mut by_id: HashMap<Option<String>, VecDeque<Row>> = HashMap::with_capacity(olds.len());
    for old in olds {
        by_id
            .entry(old.raw("id").map(str::to_owned))
            .or_default()
            .push_back(old);
    }
    news.into_iter()
        .map(|new| {
            let old = by_id
                .get_mut(&new.raw("id").map(str::to_owned))
                .and_then(VecDeque::pop_front);
            (new, old)
        })
        .collect()
}
