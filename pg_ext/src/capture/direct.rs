//! Outbox rows written straight into the heap and its indexes: the capture trigger's hot path.
//!
//! Through SPI, `INSERT INTO erp_sync.outbox … SELECT FROM unnest(…)` spent most of its time in
//! the executor around the row (plan lookup, executor start-up, a function scan of five arrays,
//! projection): ~22 % of the backend CPU of a single-row platform INSERT (perf, bench
//! write_path). Here each row takes the steps COPY takes, and nothing else:
//! * the table's constraints (`ExecConstraints`: NOT NULL and `outbox_row_check`);
//! * `table_tuple_insert`;
//! * `ExecInsertIndexTuples`: every index, partial-index predicates, the uniqueness of
//!   `outbox_coalesce_key`.
//!
//! Coalescing is [`super::outbox::Coalesce::Look`]: a pending customer/assign row is not written
//! when `outbox_coalesce_key` already holds a pending twin this transaction can see **and** can
//! lock `FOR SHARE` without waiting. The lock, held until this transaction ends, is what makes
//! skipping safe: a claim takes its rows `FOR UPDATE SKIP LOCKED`, so the twin is claimed (and the
//! contact read) only after this edit commits. A twin that cannot be locked at once is being
//! claimed (or was, by a transaction this snapshot does not see): the claim may have read the
//! contact already, so the row is written. Its unique check then waits for the claim and, if the
//! twin is still pending afterwards, fails with SQLSTATE 23505 on `outbox_coalesce_key`, as the
//! SPI statement does; the trigger then writes again through SPI with `ON CONFLICT DO UPDATE`.
//!
//! Column defaults are applied here, as the table declares them: `id` from `outbox_id_seq`,
//! `attempts` 0, `next_attempt_at`/`created_at`/`updated_at` the transaction start (`now()`).
//! The test `direct_rows_equal_spi_rows` compares a row written here with one written by SQL.
//!
//! Access checks: none are made (as for any C-level heap access); the trigger that calls this
//! runs as the extension owner anyway. Name lookups are by OID from the catalog on every call,
//! so a dropped and re-created extension is found again.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

/// One outbox row the trigger decided to write.
pub struct Row<'a> {
    /// the contact key (text form of the platform's id)
    pub contact_id: &'a str,
    pub kind: &'a str,
    pub ref_id: Option<i64>,
    pub template_id: Option<i32>,
    /// `Some(reason)`: written as `skipped` with the reason, finished now
    pub skip_reason: Option<&'a str>,
}

const SCHEMA: &CStr = c"erp_sync";

/// OID of `erp_sync.<name>` (a table, index or sequence), `None` when there is none; never an
/// ERROR.
///
/// # Safety
/// Catalog lookups: call it from a backend inside a transaction.
pub unsafe fn find_relid(name: &CStr) -> Option<pg_sys::Oid> {
    let nsp = pg_sys::get_namespace_oid(SCHEMA.as_ptr(), true);
    if nsp == pg_sys::InvalidOid {
        return None;
    }
    let oid = pg_sys::get_relname_relid(name.as_ptr(), nsp);
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// OID of `erp_sync.<name>` (a table, index or sequence); an ERROR when there is none.
unsafe fn relid(name: &CStr) -> pg_sys::Oid {
    let Some(oid) = find_relid(name) else {
        pgrx::ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "relation \"erp_sync.{}\" does not exist",
                name.to_string_lossy()
            )
        );
    };
    oid
}

/// A `text` datum, allocated in the current memory context.
///
/// # Safety
/// Needs a current memory context (any code called from Postgres has one).
pub unsafe fn text(s: &str) -> pg_sys::Datum {
    let len = i32::try_from(s.len()).unwrap_or(i32::MAX);
    pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(s.as_ptr().cast(), len))
}

/// An equality scan key on index column `attno`, with the index's own collation.
unsafe fn eq_key(
    index: pg_sys::Relation,
    attno: i16,
    proc_: u32,
    arg: pg_sys::Datum,
) -> pg_sys::ScanKeyData {
    let mut key = pg_sys::ScanKeyData::default();
    let collation = *(*index)
        .rd_indcollation
        .add(usize::try_from(attno - 1).unwrap_or(0));
    pg_sys::ScanKeyEntryInitialize(
        &mut key,
        0,
        attno,
        pg_sys::BTEqualStrategyNumber as u16,
        pg_sys::InvalidOid,
        collation,
        pg_sys::Oid::from(proc_),
        arg,
    );
    key
}

/// Does `index` (of `heap`) point at a row visible to `snapshot` with these keys?
unsafe fn index_has(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    keys: &mut [pg_sys::ScanKeyData],
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    let n = i32::try_from(keys.len()).unwrap_or(i32::MAX);
    let scan = pg_sys::index_beginscan(heap, index, snapshot, n, 0);
    pg_sys::index_rescan(scan, keys.as_mut_ptr(), n, std::ptr::null_mut(), 0);
    let found = pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::ForwardScanDirection, slot);
    pg_sys::index_endscan(scan);
    found
}

/// Lock the twin row in `slot` `FOR SHARE` without waiting; whether it is locked (held until the
/// transaction ends). `table_tuple_lock` is a static inline of tableam.h: called through the
/// table access method as it does.
unsafe fn lock_twin(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    snapshot: pg_sys::Snapshot,
    cid: pg_sys::CommandId,
) -> bool {
    let Some(lock) = (*(*rel).rd_tableam).tuple_lock else {
        return false;
    };
    let mut tid = (*slot).tts_tid;
    let mut tmfd: pg_sys::TM_FailureData = std::mem::zeroed();
    let res = lock(
        rel,
        &mut tid,
        snapshot,
        slot,
        cid,
        pg_sys::LockTupleMode::LockTupleShare,
        pg_sys::LockWaitPolicy::LockWaitSkip,
        0,
        &mut tmfd,
    );
    res == pg_sys::TM_Result::TM_Ok
}

/// A contact key as a datum of the key column: `text` (since 0.2.0), or `bigint` while the
/// database is still at the 0.1.0 schema (this library installed, `ALTER EXTENSION erp_sync
/// UPDATE` not run yet), where a key that is not an integer cannot be written.
#[derive(Clone, Copy, PartialEq)]
enum KeyType {
    Text,
    Int8,
}

impl KeyType {
    unsafe fn of(desc: pg_sys::TupleDesc, at: usize) -> KeyType {
        if (*(*desc).attrs.as_ptr().add(at)).atttypid == pg_sys::INT8OID {
            KeyType::Int8
        } else {
            KeyType::Text
        }
    }

    /// The equality procedure of the key type (scan keys).
    fn eq_proc(self) -> u32 {
        match self {
            KeyType::Text => pg_sys::F_TEXTEQ,
            KeyType::Int8 => pg_sys::F_INT8EQ,
        }
    }

    /// The key as a datum of this type; a Postgres ERROR for a non-integer key in a bigint column.
    unsafe fn datum(self, key: &str) -> pg_sys::Datum {
        match self {
            KeyType::Text => text(key),
            KeyType::Int8 => match key.parse::<i64>() {
                Ok(n) => pg_sys::Datum::from(n),
                Err(_) => {
                    pgrx::pg_sys::panic::ErrorReport::new(
                        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                        format!(
                            "erp_sync: contact key {key:?} is not an integer, and this database's erp_sync schema (0.1.0) keys contacts by bigint"
                        ),
                        "erp_sync",
                    )
                    .set_hint("run ALTER EXTENSION erp_sync UPDATE: since 0.2.0 contact keys are text")
                    .report(PgLogLevel::ERROR);
                    unreachable!("ereport(ERROR) returned")
                }
            },
        }
    }
}

/// Is `erp_sync.outbox.contact_id` still the 0.1.0 schema's `bigint` (the SPI statements of
/// `super::outbox` then cast their `text[]` keys)? One syscache lookup.
pub fn legacy_bigint_keys() -> bool {
    // SAFETY: catalog cache lookups by OID and name; nothing is kept.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(SCHEMA.as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return false;
        }
        let rel = pg_sys::get_relname_relid(c"outbox".as_ptr(), nsp);
        if rel == pg_sys::InvalidOid {
            return false;
        }
        let attnum = pg_sys::get_attnum(rel, c"contact_id".as_ptr());
        attnum > 0 && pg_sys::get_atttype(rel, attnum) == pg_sys::INT8OID
    }
}

/// Attribute numbers (0-based) of the outbox columns this module fills, by name.
struct Columns {
    natts: usize,
    key: KeyType,
    id: usize,
    contact_id: usize,
    kind: usize,
    ref_id: usize,
    template_id: usize,
    status: usize,
    attempts: usize,
    next_attempt_at: usize,
    last_error: usize,
    created_at: usize,
    updated_at: usize,
    finished_at: usize,
}

/// Index (0-based) of the live column `name` of `erp_sync.<table>`, whose descriptor is `desc`.
unsafe fn column(desc: pg_sys::TupleDesc, table: &str, name: &str) -> usize {
    let natts = usize::try_from((*desc).natts).unwrap_or(0);
    let found = (0..natts).find(|&i| {
        let att = (*desc).attrs.as_ptr().add(i);
        !(*att).attisdropped
            && CStr::from_ptr((*att).attname.data.as_ptr()).to_bytes() == name.as_bytes()
    });
    let Some(i) = found else {
        pgrx::ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("erp_sync.{table} has no column {name}")
        );
    };
    i
}

unsafe fn columns(desc: pg_sys::TupleDesc) -> Columns {
    let natts = usize::try_from((*desc).natts).unwrap_or(0);
    let find = |name: &str| column(desc, "outbox", name);
    Columns {
        natts,
        key: KeyType::of(desc, find("contact_id")),
        id: find("id"),
        contact_id: find("contact_id"),
        kind: find("kind"),
        ref_id: find("ref_id"),
        template_id: find("template_id"),
        status: find("status"),
        attempts: find("attempts"),
        next_attempt_at: find("next_attempt_at"),
        last_error: find("last_error"),
        created_at: find("created_at"),
        updated_at: find("updated_at"),
        finished_at: find("finished_at"),
    }
}

/// What COPY FROM opens to write rows of one table: a private EState, a ResultRelInfo with every
/// index open, and a slot to fill ([`RowWriter::insert`] writes what it holds).
pub struct RowWriter {
    pub estate: *mut pg_sys::EState,
    pub rri: *mut pg_sys::ResultRelInfo,
    pub slot: *mut pg_sys::TupleTableSlot,
}

impl RowWriter {
    /// # Safety
    /// `rel` is open and locked `RowExclusiveLock` (or stronger) until [`RowWriter::close`].
    pub unsafe fn open(rel: pg_sys::Relation) -> RowWriter {
        let estate = pg_sys::CreateExecutorState();
        let rri = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
            .cast::<pg_sys::ResultRelInfo>();
        pg_sys::InitResultRelInfo(rri, rel, 0, std::ptr::null_mut(), 0);
        pg_sys::ExecOpenIndices(rri, false);
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        RowWriter { estate, rri, slot }
    }

    /// The row stored in the slot into the heap and every index (unique violations are ERRORs).
    ///
    /// # Safety
    /// The slot holds a stored tuple of the table's descriptor.
    pub unsafe fn insert(&self, cid: pg_sys::CommandId) {
        pg_sys::table_tuple_insert(
            (*self.rri).ri_RelationDesc,
            self.slot,
            cid,
            0,
            std::ptr::null_mut(),
        );
        let conflicts = pg_sys::ExecInsertIndexTuples(
            self.rri,
            self.slot,
            self.estate,
            false,
            false,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        pg_sys::list_free(conflicts);
    }

    /// # Safety
    /// Called once, before the table is closed.
    pub unsafe fn close(self) {
        pg_sys::ExecDropSingleTupleTableSlot(self.slot);
        pg_sys::ExecCloseIndices(self.rri);
        pg_sys::FreeExecutorState(self.estate);
    }
}

/// Write `rows`; returns how many `pending` rows were written (coalesced ones are not).
/// Errors are Postgres ERRORs (the caller runs this in a subtransaction).
pub fn insert(rows: &[Row<'_>]) -> usize {
    if rows.is_empty() {
        return 0;
    }
    // SAFETY: the sequence COPY FROM uses for each row (CopyFrom/CopyMultiInsertBuffer): a
    // ResultRelInfo with open indexes in a private EState, constraints, table insert, index
    // inserts; everything opened here is closed here, and an ERROR releases the locks, buffers
    // and memory with the subtransaction the caller runs this in.
    unsafe {
        // see the rows of earlier statements (and earlier trigger calls of this one), as SPI would
        pg_sys::CommandCounterIncrement();
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let cid = pg_sys::GetCurrentCommandId(true);
        let rel = pg_sys::table_open(relid(c"outbox"), pg_sys::RowExclusiveLock as i32);
        let coalesce = pg_sys::index_open(
            relid(c"outbox_coalesce_key"),
            pg_sys::RowExclusiveLock as i32,
        );
        let seq = relid(c"outbox_id_seq");
        let desc = (*rel).rd_att;
        let cols = columns(desc);

        let writer = RowWriter::open(rel);
        let (estate, rri, slot) = (writer.estate, writer.rri, writer.slot);
        let probe = pg_sys::table_slot_create(rel, std::ptr::null_mut());

        let now = pg_sys::Datum::from(pg_sys::GetCurrentTransactionStartTimestamp());
        let pending = text("pending");
        let skipped = text("skipped");
        let mut written = 0;
        for row in rows {
            let kind = text(row.kind);
            let coalescing = row.skip_reason.is_none() && matches!(row.kind, "customer" | "assign");
            if coalescing {
                let mut keys = [
                    eq_key(
                        coalesce,
                        1,
                        cols.key.eq_proc(),
                        cols.key.datum(row.contact_id),
                    ),
                    eq_key(coalesce, 2, pg_sys::F_TEXTEQ, kind),
                ];
                if index_has(rel, coalesce, snapshot, &mut keys, probe)
                    && lock_twin(rel, probe, snapshot, cid)
                {
                    continue; // the twin, claimable only after this commits, sends the current state
                }
            }
            pg_sys::ExecClearTuple(slot);
            let values = std::slice::from_raw_parts_mut((*slot).tts_values, cols.natts);
            let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, cols.natts);
            nulls.fill(true);
            let mut set = |at: usize, v: pg_sys::Datum| {
                values[at] = v;
                nulls[at] = false;
            };
            let id = pg_sys::OidFunctionCall1Coll(
                pg_sys::Oid::from(pg_sys::F_NEXTVAL),
                pg_sys::InvalidOid,
                pg_sys::Datum::from(seq),
            );
            set(cols.id, id);
            set(cols.contact_id, cols.key.datum(row.contact_id));
            set(cols.kind, kind);
            if let Some(r) = row.ref_id {
                set(cols.ref_id, pg_sys::Datum::from(r));
            }
            if let Some(t) = row.template_id {
                set(cols.template_id, pg_sys::Datum::from(t));
            }
            set(cols.attempts, pg_sys::Datum::from(0i32));
            set(cols.next_attempt_at, now);
            set(cols.created_at, now);
            set(cols.updated_at, now);
            match row.skip_reason {
                None => set(cols.status, pending),
                Some(reason) => {
                    set(cols.status, skipped);
                    set(cols.last_error, text(reason));
                    set(cols.finished_at, now);
                }
            }
            pg_sys::ExecStoreVirtualTuple(slot);
            if !(*desc).constr.is_null() {
                pg_sys::ExecConstraints(rri, slot, estate);
            }
            writer.insert(cid);
            if let Some(ctx) = (*estate).es_per_tuple_exprcontext.as_mut() {
                pg_sys::MemoryContextReset(ctx.ecxt_per_tuple_memory);
            }
            written += usize::from(row.skip_reason.is_none());
        }

        pg_sys::ExecDropSingleTupleTableSlot(probe);
        writer.close();
        pg_sys::index_close(coalesce, pg_sys::NoLock as i32);
        pg_sys::table_close(rel, pg_sys::NoLock as i32);
        pg_sys::UnregisterSnapshot(snapshot);
        // make the rows visible to what runs next in this trigger call (rejections, wake-up)
        pg_sys::CommandCounterIncrement();
        written
    }
}

/// Does any of `contact_ids` have a row in `erp_sync.rejections` this transaction can see?
pub fn any_rejection(contact_ids: &[String]) -> bool {
    if contact_ids.is_empty() {
        return false;
    }
    // SAFETY: read-only index probes of the rejections primary key; opened and closed here.
    unsafe {
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot());
        let rel = pg_sys::table_open(relid(c"rejections"), pg_sys::AccessShareLock as i32);
        let index = pg_sys::index_open(relid(c"rejections_pkey"), pg_sys::AccessShareLock as i32);
        let probe = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let key = KeyType::of(
            (*rel).rd_att,
            column((*rel).rd_att, "rejections", "contact_id"),
        );
        let found = contact_ids.iter().any(|id| {
            let mut keys = [eq_key(index, 1, key.eq_proc(), key.datum(id))];
            index_has(rel, index, snapshot, &mut keys, probe)
        });
        pg_sys::ExecDropSingleTupleTableSlot(probe);
        pg_sys::index_close(index, pg_sys::AccessShareLock as i32);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as i32);
        pg_sys::UnregisterSnapshot(snapshot);
        found
    }
}

/// The newest start of an idle period, `max(COALESCE(idle_since, heartbeat_at))` as a
/// TimestampTz, among the workers that are idle with a heartbeat after `heartbeat_after`. Read
/// from the heap of `erp_sync.workers` (a few rows) with the latest snapshot: a worker that went
/// idle after this transaction began is seen.
pub fn newest_idle_since(heartbeat_after: i64) -> Option<i64> {
    // SAFETY: a read-only sequential scan, opened and closed here.
    unsafe {
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let rel = pg_sys::table_open(relid(c"workers"), pg_sys::AccessShareLock as i32);
        // 1-based attribute numbers, as slot_getattr takes them
        let attno = |name: &str| {
            i32::try_from(column((*rel).rd_att, "workers", name) + 1).unwrap_or(i32::MAX)
        };
        let (idle, heartbeat, since) = (attno("idle"), attno("heartbeat_at"), attno("idle_since"));
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let scan = pg_sys::table_beginscan(rel, snapshot, 0, std::ptr::null_mut());
        let mut newest: Option<i64> = None;
        let mut isnull = false;
        while pg_sys::table_scan_getnextslot(
            scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        ) {
            let is_idle = pg_sys::slot_getattr(slot, idle, &mut isnull);
            if isnull || !bool::from_datum(is_idle, false).unwrap_or(false) {
                continue;
            }
            let beat = pg_sys::slot_getattr(slot, heartbeat, &mut isnull);
            let Some(beat) = (!isnull).then(|| beat.value() as i64) else {
                continue;
            };
            if beat <= heartbeat_after {
                continue;
            }
            let started = pg_sys::slot_getattr(slot, since, &mut isnull);
            let started = if isnull { beat } else { started.value() as i64 };
            newest = Some(newest.map_or(started, |n| n.max(started)));
        }
        pg_sys::table_endscan(scan);
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::table_close(rel, pg_sys::NoLock as i32);
        pg_sys::UnregisterSnapshot(snapshot);
        newest
    }
}
