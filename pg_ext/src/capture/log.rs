//! The capture log (`capture.mode = log`): the capture trigger writes one narrow row per
//! statement and kind of work — the changed contact keys, append-only, indexed on the writing
//! transaction's id only — and `erp_sync.expand()` (called by `erp_sync.claim()`) turns committed
//! rows into outbox rows off the platform's write path, with the same decisions as direct capture
//! (`super::decide`): admission on the contact's current row (its payload view), coalescing,
//! follow-ups.
//!
//! Which rows a call expands is PgQ's batch rule: the rows of transactions committed in the
//! current snapshot and not in the snapshot of the previous expansion (`capture_cursor.last`).
//! A transaction that commits after a later-started one is simply in a later batch; a long-open
//! one holds back nothing committed after it. The cursor row is locked `SKIP LOCKED`: a second
//! sidecar expanding at the same moment skips expansion (and claims), so nothing is expanded
//! twice; expansion and cursor move commit together, so a crash repeats a batch, never skips one.
//!
//! Rows go to `capture_log_0` or `_1` by their transaction id (`capture.log_rotate_xids` ids per
//! turn); a table whose rows are all expanded and that no writer holds is `TRUNCATE`d — no DELETE,
//! no dead rows, no VACUUM of the log.

use super::decide::{on_signal, record_failure, resync, Admissions, Assign, Seen, Templates};
use super::guard::protected;
use super::log_heap::LogRow;
use super::outbox::{Batch, Coalesce};
use crate::config;
use crate::db::{self, INT4_ARRAY, INT8_ARRAY, TEXT, TEXT_ARRAY};
use crate::error::OrRaise;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::collections::HashSet;
use std::ffi::CStr;

/// The log tables, by `(txid / capture.log_rotate_xids) % 2`.
const LOG_TABLES: [&CStr; 2] = [c"capture_log_0", c"capture_log_1"];

/// `capture.mode`: `log` writes the capture log; anything else (`direct`, the default) decides in
/// the writing statement. (A database still at the 0.1.0 schema has no capture log: there the
/// write fails inside the trigger's subtransaction and the rows are recorded `skipped`.)
pub fn enabled() -> SpiResult<bool> {
    Ok(config::setting("capture.mode")?.is_some_and(|m| m.trim().eq_ignore_ascii_case("log")))
}

/// The work one statement logs, by kind: `c` resync the contact, `a` resync it and queue its
/// assignment (ref: the thread whose tier changed), `f` a follow-up (ref: the signal, its template).
#[derive(Default)]
pub struct Capture {
    resync: Vec<String>,
    resync_once: HashSet<String>,
    assign: Vec<String>,
    assign_refs: Vec<Option<i64>>,
    followup: Vec<String>,
    followup_refs: Vec<Option<i64>>,
    templates: Vec<Option<i32>>,
}

impl Capture {
    pub fn resync(&mut self, key: String) {
        if self.resync_once.insert(key.clone()) {
            self.resync.push(key);
        }
    }

    pub fn assign(&mut self, key: String, thread_id: Option<i64>) {
        self.assign.push(key);
        self.assign_refs.push(thread_id);
    }

    pub fn followup(&mut self, key: String, signal_id: Option<i64>, template: i32) {
        self.followup.push(key);
        self.followup_refs.push(signal_id);
        self.templates.push(Some(template));
    }

    /// What this capture stands for, so that a failure to write it is recorded (`skipped`).
    pub fn note(&self, seen: &Seen) {
        let mut seen = seen.borrow_mut();
        seen.extend(
            self.resync
                .iter()
                .chain(&self.assign)
                .map(|k| (k.clone(), "customer", None)),
        );
        seen.extend(
            self.followup
                .iter()
                .zip(&self.followup_refs)
                .map(|(k, r)| (k.clone(), "followup", *r)),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.resync.is_empty() && self.assign.is_empty() && self.followup.is_empty()
    }

    /// Where the statement's rows go: the log table of this transaction, by its id. Reads a
    /// setting: call it inside the capture's subtransaction, then [`Append::write`] after it.
    pub fn prepare(self, source: pg_sys::Oid) -> SpiResult<Append> {
        let turn = rotate_xids()?;
        // SAFETY: the writing statement's transaction has its xid already (it wrote the row).
        let txid = unsafe { pg_sys::GetTopFullTransactionId() }.value;
        let table = LOG_TABLES[usize::from((txid / turn) % 2 == 1)];
        Ok(Append {
            source,
            txid,
            table,
            cap: self,
        })
    }
}

/// A statement's capture, ready to be appended to its log table.
pub struct Append {
    source: pg_sys::Oid,
    txid: u64,
    table: &'static CStr,
    cap: Capture,
}

impl Append {
    /// The log rows, at most one per kind of work.
    fn rows(&self) -> Vec<LogRow<'_>> {
        let c = &self.cap;
        [
            (b'c', &c.resync, None, None),
            (b'a', &c.assign, Some(&c.assign_refs[..]), None),
            (
                b'f',
                &c.followup,
                Some(&c.followup_refs[..]),
                Some(&c.templates[..]),
            ),
        ]
        .into_iter()
        .filter(|(_, keys, _, _)| !keys.is_empty())
        .map(|(op, keys, refs, templates)| LogRow {
            op,
            keys,
            refs,
            templates,
        })
        .collect()
    }

    /// Append the rows at the transaction's own level, straight into the heap
    /// ([`super::log_heap`]); when that cannot be done at once, through SPI in a subtransaction.
    /// `Err`: the SPI write failed too (the caller records the rows `skipped`).
    pub fn write(self) -> Result<(), String> {
        let rows = self.rows();
        if super::log_heap::append(self.table, self.txid, self.source, &rows) {
            return Ok(());
        }
        protected(|| self.write_spi(&rows).map_err(|e| e.to_string()))
    }

    fn write_spi(&self, rows: &[LogRow<'_>]) -> SpiResult<()> {
        let sql = format!(
            "INSERT INTO erp_sync.{} (source, op, keys, refs, templates) \
             VALUES ($1::oid, $2::\"char\", $3, $4, $5)",
            self.table.to_string_lossy()
        );
        Spi::connect_mut(|client| {
            let oid = PgOid::BuiltIn(PgBuiltInOids::OIDOID);
            let plan = db::plan(
                client,
                &sql,
                &[oid, TEXT, TEXT_ARRAY, INT8_ARRAY, INT4_ARRAY],
            )?;
            for row in rows {
                let op = char::from(row.op).to_string();
                client.update(
                    &*plan,
                    None,
                    &[
                        self.source.into(),
                        op.into(),
                        row.keys.to_vec().into(),
                        row.refs.map(<[Option<i64>]>::to_vec).into(),
                        row.templates.map(<[Option<i32>]>::to_vec).into(),
                    ],
                )?;
            }
            Ok(())
        })
    }
}

/// `capture.log_rotate_xids`: transaction ids per log table (at least 1). Writer and rotation
/// map an id to its table with it: `(txid / turn) % 2`.
fn rotate_xids() -> SpiResult<u64> {
    Ok(config::setting_num("capture.log_rotate_xids")?.max(1.0) as u64)
}

/// A `pg_snapshot` in its text form `xmin:xmax:xip,...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snap {
    pub xmin: u64,
    pub xmax: u64,
    pub xip: Vec<u64>,
}

impl Snap {
    pub fn parse(text: &str) -> Option<Snap> {
        let mut parts = text.splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        };
        Some(Snap { xmin, xmax, xip })
    }

    pub fn text(&self) -> String {
        let xip: Vec<String> = self.xip.iter().map(u64::to_string).collect();
        format!("{}:{}:{}", self.xmin, self.xmax, xip.join(","))
    }

    /// `cur` cut at `xmax`: what a snapshot taken when `xmax` was the next id would have seen of
    /// the transactions `cur` knows finished — so a batch can stop at a transaction boundary.
    /// The ids below `xmax` that `cur` saw running are still running in it.
    pub fn cut(&self, xmax: u64) -> Snap {
        if xmax >= self.xmax {
            return self.clone();
        }
        let xip: Vec<u64> = self.xip.iter().copied().filter(|x| *x < xmax).collect();
        Snap {
            xmin: xip
                .first()
                .copied()
                .unwrap_or(xmax)
                .min(self.xmin.min(xmax)),
            xmax,
            xip,
        }
    }
}

/// One log row of a batch.
struct Logged {
    txid: u64,
    source: String,
    op: String,
    keys: Vec<Option<String>>,
    refs: Vec<Option<i64>>,
    templates: Vec<Option<i32>>,
    /// the source is a sync trigger (`track(tbl, 'trigger')`), not a change source
    sync_trigger: bool,
}

/// The batch: rows of transactions committed in `cur` and not in `last`, and the rows of the
/// calling transaction itself (`own`), which it may expand before it commits: they commit or roll
/// back with their expansion.
fn batch_rows(last: &str, cur: &str, own: Option<&str>) -> SpiResult<Vec<Logged>> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT l.txid::text, coalesce(l.source::regclass::text, l.source::text), l.op::text, \
                    l.keys, l.refs, l.templates, \
                    EXISTS (SELECT 1 FROM erp_sync.sync_triggers t WHERE t.relid::oid = l.source) \
             FROM erp_sync.capture_log l \
             WHERE (l.txid >= pg_catalog.pg_snapshot_xmin($1::pg_snapshot) \
                    AND l.txid < pg_catalog.pg_snapshot_xmax($2::pg_snapshot) \
                    AND pg_catalog.pg_visible_in_snapshot(l.txid, $2::pg_snapshot) \
                    AND NOT pg_catalog.pg_visible_in_snapshot(l.txid, $1::pg_snapshot)) \
                OR l.txid = $3::xid8 \
             ORDER BY l.txid, l.tableoid, l.ctid",
            None,
            &[last.into(), cur.into(), own.into()],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let txid = r
                .get::<String>(1)?
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            out.push(Logged {
                txid,
                source: r.get::<String>(2)?.unwrap_or_default(),
                op: r.get::<String>(3)?.unwrap_or_default(),
                keys: r.get::<Vec<Option<String>>>(4)?.unwrap_or_default(),
                refs: r.get::<Vec<Option<i64>>>(5)?.unwrap_or_default(),
                templates: r.get::<Vec<Option<i32>>>(6)?.unwrap_or_default(),
                sync_trigger: r.get::<bool>(7)?.unwrap_or(false),
            });
        }
        Ok(out)
    })
}

/// The decisions for one log row, into `batch`.
fn decide(
    row: &Logged,
    templates: &Templates,
    contacts: &mut Admissions,
    batch: &mut Batch,
    seen: &Seen,
) -> SpiResult<()> {
    // what asked, in the words of direct capture (a sync trigger's row, or a change source's)
    let why = if row.sync_trigger {
        format!("sync requested by a row of {}", row.source)
    } else {
        format!("a change of {}", row.source)
    };
    for (i, key) in row.keys.iter().enumerate() {
        let Some(key) = key.clone() else { continue };
        let r = row.refs.get(i).copied().flatten();
        match row.op.as_str() {
            "c" => resync(key, &why, Assign::No, contacts, batch, seen)?,
            "a" => resync(key, &why, Assign::Thread(r), contacts, batch, seen)?,
            "f" => {
                let template = row
                    .templates
                    .get(i)
                    .copied()
                    .flatten()
                    .unwrap_or(templates.default);
                on_signal(key, (r, template), templates, contacts, batch, seen)?;
            }
            other => pgrx::warning!("erp_sync: capture log row of unknown kind {other:?} ignored"),
        }
    }
    Ok(())
}

/// Expand `rows` into the outbox: all in one subtransaction; if that fails, row by row, and a
/// row that fails on its own is recorded as `skipped` with the reason (never retried forever,
/// never holding back the rows after it).
fn expand_rows(rows: &[Logged]) -> SpiResult<()> {
    let templates = Templates::load()?;
    let all = protected(|| {
        let (mut contacts, mut batch, seen) =
            (Admissions::default(), Batch::default(), Seen::default());
        for row in rows {
            decide(row, &templates, &mut contacts, &mut batch, &seen).map_err(|e| e.to_string())?;
        }
        batch.flush(Coalesce::Arbiter).map_err(|e| e.to_string())
    });
    if all.is_ok() {
        return Ok(());
    }
    for row in rows {
        let seen = Seen::default();
        let one = protected(|| {
            let (mut contacts, mut batch) = (Admissions::default(), Batch::default());
            decide(row, &templates, &mut contacts, &mut batch, &seen).map_err(|e| e.to_string())?;
            batch.flush(Coalesce::Arbiter).map_err(|e| e.to_string())
        });
        if let Err(message) = one {
            pgrx::warning!(
                "erp_sync: expanding a capture of {} failed: {message}",
                row.source
            );
            let reason = format!("capture expansion failed: {message}");
            let recorded =
                protected(|| record_failure(seen.into_inner(), &reason).map_err(|e| e.to_string()));
            if let Err(again) = recorded {
                pgrx::warning!("erp_sync: could not record the expansion failure either: {again}");
            }
        }
    }
    Ok(())
}

/// `TRUNCATE` a log table whose rows are all expanded (in `done`) and that nobody else holds; the
/// table current writers use (by `cur`'s ids) is left alone, so writers are never kept waiting.
fn rotate(done: &Snap, cur: &Snap) -> SpiResult<()> {
    let turn = rotate_xids()?;
    let busy = [(cur.xmin / turn) % 2, (cur.xmax / turn) % 2];
    for n in 0..2u64 {
        if busy.contains(&n) {
            continue;
        }
        let table = format!("erp_sync.capture_log_{n}");
        let Some(oid) = Spi::get_one_with_args::<pg_sys::Oid>(
            "SELECT pg_catalog.to_regclass($1)::oid",
            &[table.as_str().into()],
        )?
        else {
            continue;
        };
        // SAFETY: a plain conditional lock request; released at the end of the transaction.
        let locked =
            unsafe { pg_sys::ConditionalLockRelationOid(oid, pg_sys::AccessExclusiveLock as i32) };
        if !locked {
            continue;
        }
        let all_done = Spi::get_one_with_args::<bool>(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {table}) AND NOT EXISTS (SELECT 1 FROM {table} \
                 WHERE NOT pg_catalog.pg_visible_in_snapshot(txid, $1::pg_snapshot))"
            ),
            &[done.text().into()],
        )?;
        if all_done == Some(true) {
            Spi::run(&format!("TRUNCATE {table}"))?;
        }
    }
    Ok(())
}

/// Expand the committed capture rows not expanded yet (at most about `max_statements` log rows,
/// cut at a transaction boundary); returns how many log rows were expanded, 0 when another
/// session is expanding right now.
pub fn expand_impl(max_statements: i32) -> SpiResult<i64> {
    if Spi::get_one::<bool>("SELECT to_regclass('erp_sync.capture_cursor') IS NOT NULL")?
        != Some(true)
    {
        return Ok(0); // a database still at the 0.1.0 schema has no capture log
    }
    // An expansion truncating a log table holds it until it commits: skip, never wait for it
    // (the claim goes on without expanding; the next one expands).
    let tables = Spi::get_one::<Vec<pg_sys::Oid>>(
        "SELECT array_agg(c.oid) FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = 'erp_sync'::regnamespace \
           AND c.relname IN ('capture_log', 'capture_log_0', 'capture_log_1')",
    )?
    .unwrap_or_default();
    for oid in tables {
        // SAFETY: a plain conditional lock request; released at the end of the transaction.
        if !unsafe { pg_sys::ConditionalLockRelationOid(oid, pg_sys::AccessShareLock as i32) } {
            return Ok(0);
        }
    }
    // Direct capture's steady state (an empty log) costs the claim one probe, no lock, no write.
    if Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM erp_sync.capture_log)")? != Some(true) {
        return Ok(0);
    }
    let last = match Spi::get_one::<String>(
        "SELECT last::text FROM erp_sync.capture_cursor WHERE id = 1 FOR NO KEY UPDATE SKIP LOCKED",
    ) {
        Ok(Some(l)) => l,
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition) => return Ok(0),
        Err(e) => return Err(e),
    };
    // The batch query below runs on this snapshot or a later one (SPI takes a fresh snapshot per
    // query once the transaction has an xid, which the cursor lock gave it), so every row of a
    // transaction visible in `cur` is visible to it: nothing committed is skipped.
    let cur_text = Spi::get_one::<String>("SELECT pg_catalog.pg_current_snapshot()::text")?
        .unwrap_or_default();
    let (Some(cur), Some(_)) = (Snap::parse(&cur_text), Snap::parse(&last)) else {
        pgrx::warning!("erp_sync: capture cursor {last:?} / snapshot {cur_text:?} unreadable");
        return Ok(0);
    };
    let own = Spi::get_one::<String>("SELECT pg_catalog.pg_current_xact_id_if_assigned()::text")?;
    let own_id = own.as_deref().and_then(|t| t.parse::<u64>().ok());
    let mut rows = batch_rows(&last, &cur_text, own.as_deref())?;
    let max = usize::try_from(max_statements.max(1)).unwrap_or(1);
    let mut done = cur.clone();
    if rows.len() > max {
        let boundary = rows[max - 1].txid;
        rows.retain(|r| r.txid <= boundary || Some(r.txid) == own_id);
        done = cur.cut(boundary + 1);
    }
    if !rows.is_empty() {
        expand_rows(&rows)?;
    }
    // The calling transaction's own rows are expanded now; removed, so that rows it writes later
    // are still expanded (its id stays invisible in the cursor until it commits).
    if rows.iter().any(|r| Some(r.txid) == own_id) {
        Spi::run("DELETE FROM erp_sync.capture_log WHERE txid = pg_catalog.pg_current_xact_id()")?;
    }
    Spi::run_with_args(
        "UPDATE erp_sync.capture_cursor SET last = $1::pg_snapshot, expanded_at = now() WHERE id = 1",
        &[done.text().into()],
    )?;
    rotate(&done, &cur)?;
    Ok(rows.len() as i64)
}

/// `erp_sync.expand(max_statements)`: what `erp_sync.claim()` calls first. Runs as the extension
/// owner (it reads the platform's tables through the payload views and writes the outbox), under
/// the planner's default settings whatever the caller's (the claim turns sequential scans off).
#[pg_extern(volatile, strict, parallel_unsafe, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn expand(max_statements: i32) -> i64 {
    config::reload(|| expand_impl(max_statements)).or_raise()
}

#[cfg(test)]
mod tests {
    use super::Snap;

    #[test]
    fn snapshots_round_trip_and_cut_at_a_boundary() {
        let s = Snap::parse("100:110:102,105,108").expect("a snapshot");
        assert_eq!(s.text(), "100:110:102,105,108");
        assert_eq!(
            Snap::parse("7:7:"),
            Some(Snap {
                xmin: 7,
                xmax: 7,
                xip: vec![]
            })
        );
        assert_eq!(Snap::parse("x:1:"), None);
        // cut at 106: 102 and 105 still running, 100..106 otherwise finished
        assert_eq!(
            s.cut(106),
            Snap {
                xmin: 100,
                xmax: 106,
                xip: vec![102, 105]
            }
        );
        // nothing running below the cut
        assert_eq!(
            Snap::parse("100:110:108").map(|s| s.cut(104)),
            Some(Snap {
                xmin: 100,
                xmax: 104,
                xip: vec![]
            })
        );
        // a cut beyond xmax is the snapshot itself
        assert_eq!(s.cut(200), s);
    }
}
