//! The decisions capture makes for a contact, shared by the capture trigger (direct mode: in the
//! writing statement) and the capture log's expansion (`capture.mode = log`: off the write path):
//! admission looked up once per contact, a resync (what `request_sync()` does), a follow-up.

use super::lookup;
use super::outbox::Batch;
use crate::config;
use erp_sync_rules::admission::Admission;
use erp_sync_rules::templates::pick_template;
use pgrx::spi::SpiResult;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// What a row was going to write (contact key, kind, ref_id), so a failure can be recorded.
pub type Seen = RefCell<Vec<(String, &'static str, Option<i64>)>>;

/// Admission of the contacts a statement's threads / signals refer to, looked up once each.
#[derive(Default)]
pub struct Admissions(HashMap<String, Result<Admission, String>>);

impl Admissions {
    pub fn of(&mut self, contact_id: &str) -> SpiResult<&Result<Admission, String>> {
        Ok(match self.0.entry(contact_id.to_string()) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(lookup::contact_admission(contact_id)?),
        })
    }
}

/// The follow-up templates and the settings a signal's capture reads, once per statement.
pub struct Templates {
    pub default: i32,
    list: std::rc::Rc<Vec<erp_sync_rules::templates::Template>>,
    /// `admission.require_conversation`: a signal may be what admits a contact
    pub conversation_admits: bool,
}

impl Templates {
    pub fn load() -> SpiResult<Templates> {
        Ok(Templates {
            default: config::setting_num("template.default")? as i32,
            list: config::templates()?,
            conversation_admits: config::admission_settings()?.require_conversation,
        })
    }

    /// The template for a signal's text; `template.default` when it has none.
    pub fn pick(&self, content: Option<&str>) -> i32 {
        content.map_or(self.default, |c| pick_template(c, &self.list, self.default))
    }
}

/// Whether a resync also queues the contact's assignment (`assign`, ref = the thread whose tier
/// changed, if known).
#[derive(Clone, Copy)]
pub enum Assign {
    No,
    Thread(Option<i64>),
}

/// What `erp_sync.request_sync()` does for a contact a row asks to resync (a sync-trigger row:
/// an order, a payment; a change-source row: a thread's bucket, a score): admission re-checked on
/// the contact's current row, then its customer row queued (rejection cleared; with `assign`, its
/// assignment too) or the rejection recorded; a contact that cannot be read is a `skipped`
/// customer row with the reason (`why` names what asked).
pub fn resync(
    contact_id: String,
    why: &str,
    assign: Assign,
    contacts: &mut Admissions,
    batch: &mut Batch,
    seen: &Seen,
) -> SpiResult<()> {
    seen.borrow_mut()
        .push((contact_id.clone(), "customer", None));
    match contacts.of(&contact_id)? {
        Ok(verdict) if verdict.passed => {
            batch.clear_rejection(contact_id.clone());
            batch.enqueue(contact_id.clone(), "customer", None);
            if let Assign::Thread(thread_id) = assign {
                batch.enqueue(contact_id, "assign", thread_id);
            }
        }
        Ok(verdict) => batch.reject(contact_id, verdict),
        Err(e) => batch.skip(contact_id, "customer", None, None, format!("{why}: {e}")),
    }
    Ok(())
}

/// A signal (or a follow-up source's row) `(id, template)` of a contact: a follow-up for an
/// admitted contact, else a `skipped` row with the reason. With `admission.require_conversation`
/// on, this signal may be what admits a contact held back until now (its rejection is cleared
/// and its customer queued first).
pub fn on_signal(
    contact_id: String,
    (signal_id, template): (Option<i64>, i32),
    templates: &Templates,
    contacts: &mut Admissions,
    batch: &mut Batch,
    seen: &Seen,
) -> SpiResult<()> {
    let Some(signal_id) = signal_id else {
        seen.borrow_mut()
            .push((contact_id.clone(), "followup", None));
        batch.skip(
            contact_id,
            "followup",
            None,
            Some(template),
            "signal without a usable id".into(),
        );
        return Ok(());
    };
    seen.borrow_mut()
        .push((contact_id.clone(), "followup", Some(signal_id)));
    match contacts.of(&contact_id)? {
        Ok(verdict) if verdict.passed => {
            if templates.conversation_admits && lookup::rejected(&contact_id)? {
                batch.clear_rejection(contact_id.clone());
                batch.enqueue(contact_id.clone(), "customer", None);
            }
            batch.enqueue_followup(contact_id, signal_id, template)
        }
        Ok(verdict) => {
            let reason = format!("contact not admitted: {}", verdict.reasons.join("; "));
            batch.skip(
                contact_id,
                "followup",
                Some(signal_id),
                Some(template),
                reason,
            );
        }
        Err(why) => batch.skip(
            contact_id,
            "followup",
            Some(signal_id),
            Some(template),
            why.clone(),
        ),
    }
    Ok(())
}

/// Record what a failed capture (or expansion) was going to write as `skipped` rows with the
/// reason, once per (contact, kind, ref).
pub fn record_failure(
    seen: Vec<(String, &'static str, Option<i64>)>,
    reason: &str,
) -> SpiResult<()> {
    let mut batch = Batch::default();
    let mut once = std::collections::HashSet::new();
    for (contact_id, kind, ref_id) in seen {
        if once.insert((contact_id.clone(), kind, ref_id)) {
            batch.skip(contact_id, kind, ref_id, None, reason.to_string());
        }
    }
    batch.flush(super::outbox::Coalesce::Look).map(drop) // skipped rows never coalesce
}
