//! Writing the outbox, rejections and the wake-up NOTIFY. Rows stay minimal (contact id, kind,
//! optional ref/template): the sidecar reads the contact's CURRENT state when it sends.

use crate::config;
use crate::db::{self, INT4, INT8, TEXT};
use crate::rules::admission::Admission;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::cell::Cell;

const ENQUEUE: &str = "INSERT INTO erp_sync.outbox (contact_id, kind, ref_id) VALUES ($1, $2, $3) \
     ON CONFLICT (contact_id, kind) WHERE status = 'pending' AND kind IN ('customer', 'assign') DO NOTHING";
const ENQUEUE_FOLLOWUP: &str = "INSERT INTO erp_sync.outbox (contact_id, kind, ref_id, template_id) \
     VALUES ($1, 'followup', $2, $3)";
const SKIP: &str = "INSERT INTO erp_sync.outbox \
     (contact_id, kind, ref_id, template_id, status, last_error, finished_at) \
     VALUES ($1, $2, $3, $4, 'skipped', $5, pg_catalog.now())";
const REJECT: &str = "INSERT INTO erp_sync.rejections AS r (contact_id, reasons, checks, rejected_at) \
     VALUES ($1, $2::jsonb, $3::jsonb, pg_catalog.now()) \
     ON CONFLICT (contact_id) DO UPDATE SET reasons = EXCLUDED.reasons, checks = EXCLUDED.checks, \
     rejected_at = EXCLUDED.rejected_at";
const CLEAR_REJECTION: &str = "DELETE FROM erp_sync.rejections WHERE contact_id = $1";
const IDLE_WORKER: &str = "SELECT EXISTS (SELECT 1 FROM erp_sync.workers \
     WHERE idle AND heartbeat_at > pg_catalog.now() - $1::interval)";
const NOTIFY: &str = "SELECT pg_catalog.pg_notify($1, '')";

thread_local! {
    static NOTIFIES: Cell<u64> = const { Cell::new(0) };
}

/// How many wake-up NOTIFYs this backend has issued (for tests and debugging).
pub fn notifies_sent() -> u64 {
    NOTIFIES.with(Cell::get)
}

fn exec(sql: &str, types: &[PgOid], args: &[DatumWithOid<'_>]) -> SpiResult<usize> {
    Spi::connect_mut(|client| {
        let plan = db::plan(client, sql, types)?;
        Ok(client.update(&*plan, None, args)?.len())
    })
}

/// Queue `kind` for the contact (coalesced with a pending row of the same contact and kind for
/// `customer`/`assign`). Returns whether a row was inserted.
pub fn enqueue(contact_id: i64, kind: &str, ref_id: Option<i64>) -> SpiResult<bool> {
    let n = exec(ENQUEUE, &[INT8, TEXT, INT8], &[contact_id.into(), kind.into(), ref_id.into()])?;
    if n > 0 {
        wake()?;
    }
    Ok(n > 0)
}

pub fn enqueue_followup(contact_id: i64, signal_id: i64, template_id: i32) -> SpiResult<()> {
    exec(ENQUEUE_FOLLOWUP, &[INT8, INT8, INT4], &[contact_id.into(), signal_id.into(), template_id.into()])?;
    wake()
}

/// Record an operation that will not be sent, with its reason (status `skipped`).
pub fn skip(contact_id: i64, kind: &str, ref_id: Option<i64>, template_id: Option<i32>, reason: &str) -> SpiResult<()> {
    exec(
        SKIP,
        &[INT8, TEXT, INT8, INT4, TEXT],
        &[contact_id.into(), kind.into(), ref_id.into(), template_id.into(), reason.into()],
    )
    .map(drop)
}

pub fn reject(contact_id: i64, admission: &Admission) -> SpiResult<()> {
    let reasons = admission.reasons_json().to_string();
    let checks = admission.checks_json().to_string();
    exec(REJECT, &[INT8, TEXT, TEXT], &[contact_id.into(), reasons.into(), checks.into()]).map(drop)
}

pub fn clear_rejection(contact_id: i64) -> SpiResult<()> {
    exec(CLEAR_REJECTION, &[INT8], &[contact_id.into()]).map(drop)
}

/// NOTIFY at most once per transaction, and only when some sidecar is idle with a fresh
/// heartbeat: a busy sidecar drains without being told, and a NOTIFY in every transaction would
/// serialise the platform's commits. A failure here (say, a malformed `notify.idle_fresh`) costs
/// only the wake-up, never the outbox row: it runs in its own subtransaction.
pub fn wake() -> SpiResult<()> {
    if !config::first_wake_check() {
        return Ok(());
    }
    if let Err(e) = super::guard::protected(|| wake_if_idle().map_err(|e| e.to_string())) {
        pgrx::warning!("erp_sync: could not wake the sidecar (it will poll): {e}");
    }
    Ok(())
}

fn wake_if_idle() -> SpiResult<()> {
    let fresh = config::setting("notify.idle_fresh")?.unwrap_or_else(|| "30 seconds".into());
    let channel = config::setting("notify.channel")?.unwrap_or_else(|| "erp_sync".into());
    let idle = Spi::connect_mut(|client| {
        let plan = db::plan(client, IDLE_WORKER, &[TEXT])?;
        client.update(&*plan, Some(1), &[fresh.into()])?.first().get_one::<bool>()
    })?;
    if idle == Some(true) {
        exec(NOTIFY, &[TEXT], &[channel.into()])?;
        NOTIFIES.with(|n| n.set(n.get() + 1));
    }
    Ok(())
}

/// NOTIFY unconditionally (manual actions: request_sync, retry_failed).
pub fn wake_now() -> SpiResult<()> {
    let channel = config::setting("notify.channel")?.unwrap_or_else(|| "erp_sync".into());
    exec(NOTIFY, &[TEXT], &[channel.into()])?;
    NOTIFIES.with(|n| n.set(n.get() + 1));
    Ok(())
}

/// The outbox row rules, as one CHECK constraint (`outbox_row_check`). Raises check_violation
/// with a precise message instead of returning false.
pub fn outbox_row_problem(
    kind: Option<&str>,
    status: Option<&str>,
    attempts: Option<i32>,
    ref_id: Option<i64>,
    lease_owner: Option<&str>,
    has_lease_expiry: bool,
    last_error: Option<&str>,
) -> Option<String> {
    const KINDS: [&str; 4] = ["customer", "followup", "assign", "rollback"];
    const STATUSES: [&str; 5] = ["pending", "running", "done", "dead", "skipped"];
    match kind {
        Some(k) if KINDS.contains(&k) => {}
        other => return Some(format!("kind {other:?} is not one of {}", KINDS.join(", "))),
    }
    match status {
        Some(s) if STATUSES.contains(&s) => {}
        other => return Some(format!("status {other:?} is not one of {}", STATUSES.join(", "))),
    }
    if attempts.is_some_and(|a| a < 0) {
        return Some("attempts must be >= 0".into());
    }
    if status == Some("running") && (lease_owner.is_none() || !has_lease_expiry) {
        return Some("a running row needs lease_owner and lease_expires_at".into());
    }
    if status == Some("skipped") && last_error.is_none() {
        return Some("a skipped row needs its reason in last_error".into());
    }
    if status != Some("skipped") && matches!(kind, Some("followup" | "rollback")) && ref_id.is_none() {
        return Some(format!("a {} row needs ref_id", kind.unwrap_or_default()));
    }
    None
}

#[pg_extern(immutable, parallel_safe)]
fn outbox_row_check(
    kind: Option<&str>,
    status: Option<&str>,
    attempts: Option<i32>,
    ref_id: Option<i64>,
    lease_owner: Option<&str>,
    lease_expires_at: Option<pgrx::datum::TimestampWithTimeZone>,
    last_error: Option<&str>,
) -> bool {
    match outbox_row_problem(kind, status, attempts, ref_id, lease_owner, lease_expires_at.is_some(), last_error) {
        None => true,
        Some(problem) => {
            pgrx::pg_sys::panic::ErrorReport::new(
                PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
                format!("erp_sync.outbox: {problem}"),
                "outbox_row_check",
            )
            .set_hint("see the outbox table in docs/architecture.md")
            .report(PgLogLevel::ERROR);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::outbox_row_problem as p;

    #[test]
    fn row_rules() {
        assert_eq!(p(Some("customer"), Some("pending"), Some(0), None, None, false, None), None);
        assert!(p(Some("nope"), Some("pending"), Some(0), None, None, false, None).is_some());
        assert!(p(Some("customer"), Some("runing"), Some(0), None, None, false, None).is_some());
        assert!(p(Some("customer"), None, Some(0), None, None, false, None).is_some());
        assert!(p(Some("customer"), Some("pending"), Some(-1), None, None, false, None).is_some());
        assert!(p(Some("customer"), Some("running"), Some(0), None, Some("w"), false, None).is_some());
        assert_eq!(p(Some("customer"), Some("running"), Some(0), None, Some("w"), true, None), None);
        assert!(p(Some("followup"), Some("skipped"), Some(0), None, None, false, None).is_some());
        assert_eq!(p(Some("followup"), Some("skipped"), Some(0), None, None, false, Some("why")), None);
        assert!(p(Some("rollback"), Some("pending"), Some(0), None, None, false, None).is_some());
    }
}
