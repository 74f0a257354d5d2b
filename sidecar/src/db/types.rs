//! The domain types the engine and the ops pass around: a claimed outbox row, its context (payload,
//! link), what a handler did (effects, log entries, link changes), a logged action.

use serde_json::Value;

use crate::error::Result;

/// One claimed outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    /// The platform's key of the contact, as text (`42`, a uuid, a text id).
    pub contact_id: String,
    pub kind: String,
    pub ref_id: Option<i64>,
    pub template_id: Option<i32>,
    /// Attempts so far; for a row claimed as its contact's head, including the current one.
    pub attempts: i32,
    /// The claim counted the current attempt (the row was its contact's head).
    pub counted: bool,
    /// The row context read by the claim (a contact's head row only).
    pub context: Option<RowContext>,
}

impl OutboxRow {
    /// The first 6 columns: id, contact_id, kind, ref_id, template_id, attempts.
    pub(super) fn from_row(r: &tokio_postgres::Row) -> Result<OutboxRow> {
        Ok(OutboxRow {
            id: r.try_get(0)?,
            contact_id: r.try_get(1)?,
            kind: r.try_get(2)?,
            ref_id: r.try_get(3)?,
            template_id: r.try_get(4)?,
            attempts: r.try_get(5)?,
            counted: false,
            context: None,
        })
    }

    /// A row of `erp_sync.claim`: the 6 columns, then `head` and, for a head, its row context.
    pub(super) fn from_claim_row(r: &tokio_postgres::Row) -> Result<OutboxRow> {
        let mut row = OutboxRow::from_row(r)?;
        row.counted = r.try_get::<_, bool>(6)?;
        if row.counted {
            row.context = Some(RowContext::from_row(r, 7, false)?);
        }
        Ok(row)
    }
}

/// `erp_sync.customer_link` of one contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link {
    pub khid: Option<String>,
    pub erp_ord: Option<i64>,
    pub customer_type: Option<String>,
    pub person_synced: bool,
    pub assigned_tier: Option<String>,
    pub assigned_to: Option<String>,
    pub last_payload_hash: Option<String>,
}

impl Link {
    /// The link's 7 columns starting at column `at` (the column order of `link_get.sql`).
    pub(super) fn from_row(r: &tokio_postgres::Row, at: usize) -> Result<Link> {
        Ok(Link {
            khid: r.try_get(at)?,
            erp_ord: r.try_get(at + 1)?,
            customer_type: r.try_get(at + 2)?,
            person_synced: r.try_get(at + 3)?,
            assigned_tier: r.try_get(at + 4)?,
            assigned_to: r.try_get(at + 5)?,
            last_payload_hash: r.try_get(at + 6)?,
        })
    }
}

/// What a handler changed, written back with the row's final status (`erp_sync.ack`).
#[derive(Debug, Default)]
pub struct Effects {
    pub logs: Vec<LogEntry>,
    pub link: Option<LinkChange>,
    /// A `sync_log` id now rolled back.
    pub rolled_back: Option<i64>,
}

/// One `erp_sync.sync_log` row to write. `error` is stored with its mobiles masked
/// ([`LogEntry::stored_error`]); `request`/`response` come masked from the ERP client.
#[derive(Debug, Clone, Default)]
pub struct LogEntry {
    pub action: &'static str,
    pub erp_ord: Option<i64>,
    pub request: Option<Value>,
    pub response: Option<Value>,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub old_data: Option<Value>,
}

impl LogEntry {
    /// `error` as stored: every mobile in it masked (an ERP refusal quotes what it refused).
    pub fn stored_error(&self) -> Option<String> {
        self.error.as_deref().map(erp_sync_rules::mask_text)
    }

    /// One element of the `logs` array of `erp_sync.ack`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "action": self.action, "erp_ord": self.erp_ord, "request": self.request,
            "response": self.response, "outcome": self.outcome, "error": self.stored_error(),
            "duration_ms": self.duration_ms, "old_data": self.old_data,
        })
    }
}

/// `customer_link` upsert after a customer row.
#[derive(Debug, Clone)]
pub struct LinkWrite {
    pub khid: String,
    pub erp_ord: i64,
    pub customer_type: &'static str,
    pub person_synced: bool,
    pub payload_hash: Option<String>,
}

/// What a processed row changes in `customer_link` (at most one thing per row).
#[derive(Debug, Clone)]
pub enum LinkChange {
    /// A customer row: the contact's ERP customer.
    Upsert(LinkWrite),
    /// An assign row: `(tier, assigned_to)`.
    Assign(String, Option<String>),
    /// A rolled-back create: `(contact_id, erp_ord)` has no ERP customer any more.
    Unlink(String, i64),
}

/// What a handler reads before its ERP calls (`row_context.sql`, one round trip; for a head
/// row, the claim).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowContext {
    /// A lower-id row of the contact is pending or running: do not process this one now.
    pub blocked: bool,
    /// The contact's current state (customer / assign rows); `None` when it no longer exists.
    pub payload: Option<Value>,
    /// The follow-up's signal (followup rows); `None` when it no longer exists.
    pub signal: Option<Value>,
    pub link: Option<Link>,
}

impl RowContext {
    /// payload, signal, linked and the link's 7 columns, starting at column `at`.
    pub(super) fn from_row(
        r: &tokio_postgres::Row,
        at: usize,
        blocked: bool,
    ) -> Result<RowContext> {
        let linked: bool = r.try_get(at + 2)?;
        Ok(RowContext {
            blocked,
            payload: r.try_get(at)?,
            signal: r.try_get(at + 1)?,
            link: if linked {
                Some(Link::from_row(r, at + 3)?)
            } else {
                None
            },
        })
    }
}

/// A `sync_log` entry to roll back.
#[derive(Debug, Clone)]
pub struct LoggedAction {
    pub action: String,
    pub erp_ord: Option<i64>,
    pub old_data: Option<Value>,
    pub contact_id: Option<String>,
    pub rolled_back: bool,
    pub outcome: String,
}
