//! Waking an idle sidecar with NOTIFY: at most once per idle period of the workers per backend.
//!
//! NOTIFY takes a database-wide lock at commit, serialising the platform's commits, so a backend
//! sends it only when it can matter:
//! * a busy sidecar drains without being told: only a fresh idle worker needs waking;
//! * a worker records when it went idle (`workers.idle_since`); a backend NOTIFYs only when the
//!   newest `idle_since` among fresh idle workers is newer than the one it last notified for. A
//!   writer that does not maintain `idle_since` counts as idle since its last heartbeat (one
//!   NOTIFY per backend per heartbeat: never fewer wake-ups, only more).
//! * the check runs at most once per transaction;
//! * the value notified for is remembered only when the transaction COMMITS (its NOTIFY is then
//!   delivered); an abort, or a rollback to a savepoint before the NOTIFY, forgets it and the
//!   next capture checks again. A wake-up lost to a race costs at most one poll interval.

use super::direct;
use super::guard::protected;
use crate::config;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::cell::{Cell, RefCell};

thread_local! {
    /// local transaction id whose wake-up check is done
    static CHECKED: Cell<Option<u32>> = const { Cell::new(None) };
    /// `notify.idle_fresh` as text and in microseconds, parsed once per value
    static FRESH: RefCell<Option<(String, i64)>> = const { RefCell::new(None) };
    /// `idle_since` (a TimestampTz) of the last wake-up this backend committed
    static LAST_NOTIFIED: Cell<Option<i64>> = const { Cell::new(None) };
    /// `idle_since` notified for in the current transaction, and the subtransaction that sent it
    static PENDING: Cell<Option<(i64, pg_sys::SubTransactionId)>> = const { Cell::new(None) };
    static CALLBACKS_REGISTERED: Cell<bool> = const { Cell::new(false) };
    static NOTIFIES: Cell<u64> = const { Cell::new(0) };
}

/// How many wake-up NOTIFYs this backend has issued (for tests and debugging).
pub fn notifies_sent() -> u64 {
    NOTIFIES.with(Cell::get)
}

fn current_lxid() -> u32 {
    // SAFETY: MyProc is set for every backend that can run SQL.
    unsafe { (*pg_sys::MyProc).lxid }
}

/// The transaction queued outbox rows: wake an idle sidecar if this backend has not yet done so
/// for its current idle period. A failure here (say, a malformed `notify.idle_fresh`) costs only
/// the wake-up, never the outbox rows: it runs in its own subtransaction.
pub fn wake() {
    let lxid = current_lxid();
    if CHECKED.with(|c| c.replace(Some(lxid))) == Some(lxid) {
        return;
    }
    if let Err(e) = protected(|| wake_if_newly_idle().map_err(|e| e.to_string())) {
        pgrx::warning!("erp_sync: could not wake the sidecar (it will poll): {e}");
    }
}

fn wake_if_newly_idle() -> SpiResult<()> {
    let fresh = config::setting("notify.idle_fresh")?.unwrap_or_else(|| "30 seconds".into());
    // SAFETY: reads the transaction's start time.
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let since = direct::newest_idle_since(now.saturating_sub(fresh_us(&fresh)));
    let Some(since) = since else { return Ok(()) };
    if LAST_NOTIFIED
        .with(Cell::get)
        .is_some_and(|last| since <= last)
    {
        return Ok(()); // this idle period was already told by this backend
    }
    notify()?;
    ensure_callbacks();
    // SAFETY: plain read of the current subtransaction id.
    let subid = unsafe { pg_sys::GetCurrentSubTransactionId() };
    PENDING.with(|p| p.set(Some((since, subid))));
    Ok(())
}

/// `notify.idle_fresh` (an interval) in microseconds; months count 30 days, as interval
/// comparison does. A malformed value is an ERROR (the caller's subtransaction catches it).
fn fresh_us(fresh: &str) -> i64 {
    if let Some(us) = FRESH.with(|f| {
        f.borrow()
            .as_ref()
            .and_then(|(text, us)| (text == fresh).then_some(*us))
    }) {
        return us;
    }
    let text = std::ffi::CString::new(fresh).unwrap_or_default();
    // SAFETY: interval_in on a NUL-terminated string; the result is a palloc'd Interval.
    let us = unsafe {
        let datum = pg_sys::OidFunctionCall3Coll(
            pg_sys::Oid::from(pg_sys::F_INTERVAL_IN),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(text.as_ptr()),
            pg_sys::Datum::from(pg_sys::InvalidOid),
            pg_sys::Datum::from(-1i32),
        );
        let iv = &*datum.cast_mut_ptr::<pg_sys::Interval>();
        const DAY_US: i64 = 86_400_000_000;
        iv.time
            .saturating_add(i64::from(iv.day).saturating_mul(DAY_US))
            .saturating_add(i64::from(iv.month).saturating_mul(30 * DAY_US))
    };
    FRESH.with(|f| *f.borrow_mut() = Some((fresh.to_string(), us)));
    us
}

fn notify() -> SpiResult<()> {
    let channel = config::setting("notify.channel")?.unwrap_or_else(|| "erp_sync".into());
    // pg_notify(channel, '') called directly: an SPI statement around it cost the notifying
    // transaction ~0.2 ms, inside the COMMIT -> first ERP request latency
    // SAFETY: two text arguments, allocated in the current memory context.
    unsafe {
        pg_sys::OidFunctionCall2Coll(
            pg_sys::Oid::from(pg_sys::F_PG_NOTIFY),
            pg_sys::InvalidOid,
            direct::text(&channel),
            direct::text(""),
        );
    }
    NOTIFIES.with(|n| n.set(n.get() + 1));
    Ok(())
}

/// NOTIFY unconditionally (manual actions: request_sync).
pub fn wake_now() -> SpiResult<()> {
    notify()
}

fn committed() {
    if let Some((since, _)) = PENDING.with(Cell::take) {
        LAST_NOTIFIED.with(|l| l.set(Some(l.get().map_or(since, |last| last.max(since)))));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PARALLEL_COMMIT => committed(),
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE => {
            PENDING.with(|p| p.set(None))
        }
        _ => {}
    }
}

/// A rolled-back subtransaction discards the NOTIFYs it (or a subtransaction inside it) sent:
/// those have ids >= its own, as it is still open when it aborts.
#[pg_guard]
unsafe extern "C-unwind" fn subxact_event(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB
        && PENDING
            .with(Cell::get)
            .is_some_and(|(_, sent_in)| sent_in >= my_subid)
    {
        PENDING.with(|p| p.set(None));
        CHECKED.with(|c| c.set(None));
    }
}

fn ensure_callbacks() {
    if !CALLBACKS_REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registered once per backend; the callbacks only touch thread-locals.
        unsafe {
            pg_sys::RegisterXactCallback(Some(xact_event), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(subxact_event), std::ptr::null_mut());
        }
    }
}

/// Tests run inside one transaction: act as if it committed here and a new one began.
#[cfg(any(test, feature = "pg_test"))]
pub fn pretend_commit() {
    committed();
    CHECKED.with(|c| c.set(None));
}

/// Tests share backends: start from a backend that never notified.
#[cfg(any(test, feature = "pg_test"))]
pub fn reset_for_tests() {
    LAST_NOTIFIED.with(|l| l.set(None));
    PENDING.with(|p| p.set(None));
    CHECKED.with(|c| c.set(None));
}
