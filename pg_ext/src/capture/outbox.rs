//! Writing the outbox and rejections: everything one statement (or one request_sync) decided,
//! collected in a [`Batch`] and written at once, whatever the row count. Rows stay minimal
//! (contact key, kind, optional ref/template): the sidecar reads the contact's CURRENT state when
//! it sends. Contact keys are bound as `text[]`; while the database is still at the 0.1.0 schema
//! (`contact_id bigint`, this library installed but `ALTER EXTENSION erp_sync UPDATE` not run yet)
//! every statement casts them to bigint (`%KEY%`, see [`keyed`]).

use super::direct;
use crate::db::{self, INT4_ARRAY, INT8_ARRAY, TEXT_ARRAY};
use erp_sync_rules::admission::Admission;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::collections::HashSet;

/// Pending `customer`/`assign` rows coalesce with an existing pending row of the same contact
/// and kind (`outbox_coalesce_key`, by the arbiter index: also against a concurrent
/// transaction's new pending row); other rows never conflict with that partial index.
/// Coalescing UPDATEs the twin (`DO UPDATE`, not `DO NOTHING`): that row lock, held until this
/// transaction ends, keeps a claim (`FOR UPDATE SKIP LOCKED`) from taking the twin and reading the
/// contact before this edit commits — else the edit would reach nobody. A twin a claim already
/// holds makes the statement wait for the claim's commit, after which it is no twin any more and
/// the row is inserted. `RETURNING` tells inserted rows (`xmax = 0`) from coalesced ones.
macro_rules! insert_outbox {
    () => {
        "INSERT INTO erp_sync.outbox (contact_id, kind, ref_id, template_id, status, last_error, finished_at) \
         SELECT u.c%KEY%, u.k, u.r, u.t, CASE WHEN u.e IS NULL THEN 'pending' ELSE 'skipped' END, u.e, \
                CASE WHEN u.e IS NULL THEN NULL ELSE pg_catalog.now() END \
         FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.text[]), \
                         pg_catalog.unnest($3::pg_catalog.int8[]), pg_catalog.unnest($4::pg_catalog.int4[]), \
                         pg_catalog.unnest($5::pg_catalog.text[])) AS u (c, k, r, t, e) \
         ON CONFLICT (contact_id, kind) WHERE status = 'pending' AND kind IN ('customer', 'assign') \
         DO UPDATE SET updated_at = pg_catalog.now() \
         RETURNING (xmax = '0'::pg_catalog.xid) AS inserted"
    };
}
/// `[clearing]`: also clear the rejections of contacts that passed ($6) in the same statement.
const INSERT_OUTBOX: [&str; 2] = [
    insert_outbox!(),
    concat!(
        "WITH cleared AS (DELETE FROM erp_sync.rejections WHERE contact_id = ANY ($6::pg_catalog.text[]%KEYS%)) ",
        insert_outbox!()
    ),
];
const CLEAR_REJECTIONS: &str =
    "DELETE FROM erp_sync.rejections WHERE contact_id = ANY ($1::pg_catalog.text[]%KEYS%)";

/// `sql` for the outbox's key type: `%KEY%` (a key) and `%KEYS%` (an array of keys) are nothing
/// for the `text` key, casts to bigint for the 0.1.0 schema's bigint key.
fn keyed(sql: &str) -> String {
    if direct::legacy_bigint_keys() {
        sql.replace("%KEYS%", "::pg_catalog.int8[]")
            .replace("%KEY%", "::pg_catalog.int8")
    } else {
        sql.replace("%KEYS%", "").replace("%KEY%", "")
    }
}

/// How pending `customer`/`assign` rows coalesce with existing ones.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Coalesce {
    /// Rows go straight into the heap and indexes ([`direct::insert`]), skipping those whose
    /// pending twin this transaction can see. A concurrent transaction's uncommitted twin makes
    /// it fail with a unique violation on `outbox_coalesce_key` ([`is_coalesce_race`]): then
    /// write again with [`Coalesce::Arbiter`].
    Look,
    /// SPI `INSERT … ON CONFLICT DO UPDATE` on `outbox_coalesce_key`: never fails on a twin.
    Arbiter,
}

/// Did a [`Coalesce::Look`] write lose the race for a pending row (the error message of
/// [`super::guard::protected`])?
pub fn is_coalesce_race(message: &str) -> bool {
    message.contains("outbox_coalesce_key") && message.contains("SQLSTATE 23505")
}

const UPSERT_REJECTIONS: &str = "INSERT INTO erp_sync.rejections AS r (contact_id, reasons, checks, rejected_at) \
     SELECT u.c%KEY%, u.x::pg_catalog.jsonb, u.y::pg_catalog.jsonb, pg_catalog.now() \
     FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), pg_catalog.unnest($2::pg_catalog.text[]), \
                     pg_catalog.unnest($3::pg_catalog.text[])) AS u (c, x, y) \
     ON CONFLICT (contact_id) DO UPDATE SET reasons = EXCLUDED.reasons, checks = EXCLUDED.checks, \
     rejected_at = EXCLUDED.rejected_at";

/// Outbox rows and rejection changes, in the order they were decided.
#[derive(Default)]
pub struct Batch {
    contact_id: Vec<String>,
    kind: Vec<&'static str>,
    ref_id: Vec<Option<i64>>,
    template_id: Vec<Option<i32>>,
    /// `Some(reason)`: a `skipped` row
    skip_reason: Vec<Option<String>>,
    skipped: usize,
    /// (contact, kind) of pending customer/assign rows already in the batch
    coalesced: HashSet<(String, &'static str)>,
    /// per contact, in order: `Some((reasons, checks))` upserts the rejection, `None` deletes it
    rejections: Vec<(String, Option<(String, String)>)>,
}

impl Batch {
    fn push(
        &mut self,
        contact_id: String,
        kind: &'static str,
        ref_id: Option<i64>,
        template_id: Option<i32>,
        reason: Option<String>,
    ) {
        self.contact_id.push(contact_id);
        self.kind.push(kind);
        self.ref_id.push(ref_id);
        self.template_id.push(template_id);
        self.skipped += usize::from(reason.is_some());
        self.skip_reason.push(reason);
    }

    /// Queue `customer` / `assign` for the contact (coalesced with a pending row).
    pub fn enqueue(&mut self, contact_id: String, kind: &'static str, ref_id: Option<i64>) {
        if self.coalesced.insert((contact_id.clone(), kind)) {
            self.push(contact_id, kind, ref_id, None, None);
        }
    }

    pub fn enqueue_followup(&mut self, contact_id: String, signal_id: i64, template_id: i32) {
        self.push(
            contact_id,
            "followup",
            Some(signal_id),
            Some(template_id),
            None,
        );
    }

    /// Record an operation that will not be sent, with its reason (status `skipped`).
    pub fn skip(
        &mut self,
        contact_id: String,
        kind: &'static str,
        ref_id: Option<i64>,
        template_id: Option<i32>,
        reason: String,
    ) {
        self.push(contact_id, kind, ref_id, template_id, Some(reason));
    }

    pub fn reject(&mut self, contact_id: String, admission: &Admission) {
        let state = (
            admission.reasons_json().to_string(),
            admission.checks_json().to_string(),
        );
        self.rejections.push((contact_id, Some(state)));
    }

    pub fn clear_rejection(&mut self, contact_id: String) {
        self.rejections.push((contact_id, None));
    }

    /// Write the batch; returns how many `pending` outbox rows were inserted (not coalesced).
    pub fn flush(self, coalesce: Coalesce) -> SpiResult<usize> {
        // the last decision per contact wins (an upsert of one contact twice in one command fails)
        let mut decided = HashSet::new();
        let (mut reject_ids, mut reasons, mut checks, mut clear_ids) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (id, state) in self.rejections.into_iter().rev() {
            if !decided.insert(id.clone()) {
                continue;
            }
            match state {
                Some((r, c)) => {
                    reject_ids.push(id);
                    reasons.push(r);
                    checks.push(c);
                }
                None => clear_ids.push(id),
            }
        }
        if coalesce == Coalesce::Look {
            let rows: Vec<direct::Row<'_>> = (0..self.contact_id.len())
                .map(|i| direct::Row {
                    contact_id: &self.contact_id[i],
                    kind: self.kind[i],
                    ref_id: self.ref_id[i],
                    template_id: self.template_id[i],
                    skip_reason: self.skip_reason[i].as_deref(),
                })
                .collect();
            let inserted = direct::insert(&rows);
            let clearing = direct::any_rejection(&clear_ids);
            if clearing || !reject_ids.is_empty() {
                Spi::connect_mut(|client| {
                    if clearing {
                        let plan = db::plan(client, &keyed(CLEAR_REJECTIONS), &[TEXT_ARRAY])?;
                        client.update(&*plan, None, &[clear_ids.into()])?;
                    }
                    upsert_rejections(client, reject_ids, reasons, checks)
                })?;
            }
            return Ok(inserted);
        }
        let skipped = self.skipped;
        let rows = self.contact_id.len();
        Spi::connect_mut(|client| {
            let mut inserted: usize = 0;
            if rows > 0 || !clear_ids.is_empty() {
                let mut types = vec![TEXT_ARRAY, TEXT_ARRAY, INT8_ARRAY, INT4_ARRAY, TEXT_ARRAY];
                let mut args = vec![
                    self.contact_id.into(),
                    self.kind.into(),
                    self.ref_id.into(),
                    self.template_id.into(),
                    self.skip_reason.into(),
                ];
                let clearing = !clear_ids.is_empty();
                if clearing {
                    types.push(TEXT_ARRAY);
                    args.push(clear_ids.into());
                }
                let plan = db::plan(client, &keyed(INSERT_OUTBOX[usize::from(clearing)]), &types)?;
                for row in client.update(&*plan, None, &args)? {
                    if row.get::<bool>(1)?.unwrap_or(false) {
                        inserted += 1;
                    }
                }
            }
            upsert_rejections(client, reject_ids, reasons, checks)?;
            // skipped rows never conflict, so every skipped row counts in `inserted`
            Ok(inserted.saturating_sub(skipped))
        })
    }
}

fn upsert_rejections(
    client: &mut pgrx::spi::SpiClient<'_>,
    ids: Vec<String>,
    reasons: Vec<String>,
    checks: Vec<String>,
) -> SpiResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let plan = db::plan(
        client,
        &keyed(UPSERT_REJECTIONS),
        &[TEXT_ARRAY, TEXT_ARRAY, TEXT_ARRAY],
    )?;
    client.update(&*plan, None, &[ids.into(), reasons.into(), checks.into()])?;
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
    const STATUSES: [&str; 6] = ["pending", "running", "done", "dead", "skipped", "in_doubt"];
    match kind {
        Some(k) if KINDS.contains(&k) => {}
        other => return Some(format!("kind {other:?} is not one of {}", KINDS.join(", "))),
    }
    match status {
        Some(s) if STATUSES.contains(&s) => {}
        other => {
            return Some(format!(
                "status {other:?} is not one of {}",
                STATUSES.join(", ")
            ))
        }
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
    if status == Some("in_doubt") && (kind != Some("followup") || last_error.is_none()) {
        return Some("only a followup row can be in_doubt, with its reason in last_error".into());
    }
    if status != Some("skipped")
        && matches!(kind, Some("followup" | "rollback"))
        && ref_id.is_none()
    {
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
    match outbox_row_problem(
        kind,
        status,
        attempts,
        ref_id,
        lease_owner,
        lease_expires_at.is_some(),
        last_error,
    ) {
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
        assert_eq!(
            p(
                Some("customer"),
                Some("pending"),
                Some(0),
                None,
                None,
                false,
                None
            ),
            None
        );
        assert!(p(
            Some("nope"),
            Some("pending"),
            Some(0),
            None,
            None,
            false,
            None
        )
        .is_some());
        assert!(p(
            Some("customer"),
            Some("runing"),
            Some(0),
            None,
            None,
            false,
            None
        )
        .is_some());
        assert!(p(Some("customer"), None, Some(0), None, None, false, None).is_some());
        // in_doubt: follow-ups only, always with the reason
        let why = Some("send began, no result");
        assert_eq!(
            p(
                Some("followup"),
                Some("in_doubt"),
                Some(1),
                Some(3),
                None,
                false,
                why
            ),
            None
        );
        assert!(p(
            Some("followup"),
            Some("in_doubt"),
            Some(1),
            Some(3),
            None,
            false,
            None
        )
        .is_some());
        assert!(p(
            Some("customer"),
            Some("in_doubt"),
            Some(1),
            None,
            None,
            false,
            why
        )
        .is_some());
        assert!(p(
            Some("customer"),
            Some("pending"),
            Some(-1),
            None,
            None,
            false,
            None
        )
        .is_some());
        assert!(p(
            Some("customer"),
            Some("running"),
            Some(0),
            None,
            Some("w"),
            false,
            None
        )
        .is_some());
        assert_eq!(
            p(
                Some("customer"),
                Some("running"),
                Some(0),
                None,
                Some("w"),
                true,
                None
            ),
            None
        );
        assert!(p(
            Some("followup"),
            Some("skipped"),
            Some(0),
            None,
            None,
            false,
            None
        )
        .is_some());
        assert_eq!(
            p(
                Some("followup"),
                Some("skipped"),
                Some(0),
                None,
                None,
                false,
                Some("why")
            ),
            None
        );
        assert!(p(
            Some("rollback"),
            Some("pending"),
            Some(0),
            None,
            None,
            false,
            None
        )
        .is_some());
    }
}
