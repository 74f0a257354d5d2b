//! The capture trigger: AFTER INSERT / AFTER UPDATE, FOR EACH STATEMENT, with transition tables,
//! attached by `erp_sync.track()`. One call handles every row of the statement and writes its
//! outbox rows and rejections with one SPI call each (see [`super::outbox::Batch`]).
//!
//! * contact: admission in Rust straight from the tuple; pass → `customer` outbox row (coalesced)
//!   and, on UPDATE, the rejection cleared; fail → rejection upserted, no outbox row. An UPDATE
//!   that changes none of the mapped (ERP-visible) fields writes nothing (old and new rows are
//!   paired by id).
//! * thread: new thread, or changed score/summary → `customer` (jz/product changed); new thread
//!   or a changed assignment tier → `assign` (ref_id = thread id). Only for an admitted contact.
//! * signal: INSERT → `followup` (ref_id = signal id, template chosen now) for an admitted
//!   contact, else an outbox row with status `skipped` and the reason in `last_error`. With
//!   `admission.require_conversation` on, a contact rejected before its first signal is admitted
//!   by it: rejection cleared, `customer` queued ahead of the `followup`.
//!
//! * trigger (a table tracked with `track(tbl, 'trigger', ..)`, e.g. orders): an INSERT, or with a
//!   condition column a row whose condition is or turns true → what `request_sync()` does for the
//!   row's contact (customer queued, or the rejection recorded).
//! * source (a change source, `erp_sync.track_source(tbl, path)`): the statement's rows resolved
//!   to contact keys along the path in one query → for each contact what `request_sync()` does,
//!   plus its assignment; or, for a follow-up source, each new row → a follow-up as a signal's.
//!
//! Nothing here may fail the platform's write: the whole statement's capture runs in ONE
//! subtransaction (see [`super::guard`]); on failure every row it saw is recorded as `skipped`.

use super::columns::{self, Row};
use super::guard::protected;
use super::lookup;
use super::outbox::{is_coalesce_race, Batch, Coalesce};
use super::transition;
use super::wake;
use crate::config;
use erp_sync_rules::admission::{Admission, AdmissionSettings, Val};
use erp_sync_rules::assignment::tier_for;
use erp_sync_rules::customer::admit_khid;
use erp_sync_rules::templates::pick_template;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Insert,
    Update,
}

/// What a row was going to write (contact key, kind, ref_id), so a failure can be recorded.
type Seen = RefCell<Vec<(String, &'static str, Option<i64>)>>;

#[pg_trigger]
fn capture<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    let seen = Seen::default();
    let mut outcome =
        protected(|| handle(trigger, &seen, Coalesce::Look).map_err(|e| e.to_string()));
    if outcome.as_ref().is_err_and(|m| is_coalesce_race(m)) {
        seen.borrow_mut().clear();
        outcome =
            protected(|| handle(trigger, &seen, Coalesce::Arbiter).map_err(|e| e.to_string()));
    }
    if let Err(message) = outcome {
        let table = trigger.table_name().unwrap_or_else(|_| "?".into());
        pgrx::warning!(
            "erp_sync: capture on {table} failed, the rows are saved but not queued: {message}"
        );
        let seen = seen.into_inner();
        if !seen.is_empty() {
            let reason = format!("capture failed: {message}");
            let recorded = protected(|| record_failure(seen, &reason).map_err(|e| e.to_string()));
            if let Err(again) = recorded {
                pgrx::warning!("erp_sync: could not record the capture failure either: {again}");
            }
        }
    }
    Ok(None)
}

fn record_failure(seen: Vec<(String, &'static str, Option<i64>)>, reason: &str) -> SpiResult<()> {
    let mut batch = Batch::default();
    let mut once = HashSet::new();
    for (contact_id, kind, ref_id) in seen {
        if once.insert((contact_id.clone(), kind, ref_id)) {
            batch.skip(contact_id, kind, ref_id, None, reason.to_string());
        }
    }
    batch.flush(Coalesce::Look).map(drop) // skipped rows never coalesce
}

fn handle(trigger: &PgTrigger<'_>, seen: &Seen, coalesce: Coalesce) -> SpiResult<()> {
    let op = match trigger.op() {
        Ok(PgTriggerOperation::Insert) => Op::Insert,
        Ok(PgTriggerOperation::Update) => Op::Update,
        _ => return Ok(()),
    };
    let args = trigger.extra_args().unwrap_or_default();
    let Some((entity, cols)) = args.split_first() else {
        pgrx::warning!("erp_sync: capture trigger without arguments; re-run erp_sync.track()");
        return Ok(());
    };
    if trigger.relid().is_ok_and(super::quiet::suppressed) {
        return Ok(()); // erp_sync.suppress_capture(): rows the ERP holds already (import)
    }
    if entity == "source" {
        let mut batch = Batch::default();
        on_change_source(trigger, cols, &mut batch, seen)?;
        return flush(batch, coalesce);
    }
    let fields = crate::entities::fields(entity);
    if fields.is_empty() {
        pgrx::warning!(
            "erp_sync: capture trigger for unknown entity {entity:?}; re-run erp_sync.track()"
        );
        return Ok(());
    }
    let td = trigger.trigger_data();
    if td.tg_newtable.is_null() {
        pgrx::warning!(
            "erp_sync: capture trigger without a transition table; re-run erp_sync.track()"
        );
        return Ok(());
    }
    // SAFETY: trigger data of a statement-level AFTER trigger: the relation and its transition
    // tables are valid for the duration of the call.
    let (news, olds) = unsafe {
        let tupdesc = (*td.tg_relation).rd_att;
        let mut layout = columns::layout(fields, cols, tupdesc);
        (
            transition::rows(td.tg_newtable, tupdesc, &mut layout),
            transition::rows(td.tg_oldtable, tupdesc, &mut layout),
        )
    };
    if news.is_empty() {
        return Ok(());
    }
    let rows = transition::pair(news, olds);
    let mut batch = Batch::default();
    match entity.as_str() {
        "contact" => {
            let settings = config::admission_settings()?;
            let format = config::khid_format()?;
            for (new, old) in &rows {
                on_contact(
                    op,
                    new,
                    old.as_ref(),
                    (&settings, &format),
                    &mut batch,
                    seen,
                )?;
            }
        }
        "thread" => {
            let mut contacts = Admissions::default();
            let (top, regular) = config::tier_thresholds()?;
            for (new, old) in &rows {
                on_thread(
                    new,
                    old.as_ref(),
                    (top, regular),
                    &mut contacts,
                    &mut batch,
                    seen,
                )?;
            }
        }
        "signal" if op == Op::Insert => {
            let mut contacts = Admissions::default();
            let templates = Templates::load()?;
            for (new, _) in &rows {
                let Some(contact_id) = new.key("contact_id") else {
                    pgrx::warning!("erp_sync: signal without a contact_id (NULL); not captured");
                    continue;
                };
                let template = match new.get("content") {
                    Val::Text(content) => templates.pick(content),
                    _ => templates.default,
                };
                let signal = (new.int("id"), template);
                on_signal(
                    contact_id,
                    signal,
                    &templates,
                    &mut contacts,
                    &mut batch,
                    seen,
                )?;
            }
        }
        "trigger" => {
            let mut contacts = Admissions::default();
            // the trigger's arguments follow the entity's field list (TRIGGER_FIELDS)
            let has_condition = fields
                .iter()
                .position(|f| *f == "condition")
                .and_then(|i| cols.get(i))
                .is_some_and(|c| !c.is_empty());
            let table = match (trigger.table_schema(), trigger.table_name()) {
                (Ok(schema), Ok(name)) => format!("{schema}.{name}"),
                _ => "?".into(),
            };
            for (new, old) in &rows {
                let asks = match (has_condition, old) {
                    (false, None) => true,
                    (false, Some(_)) => false, // without a condition only an INSERT asks
                    (true, _) => {
                        let is_true = |r: &Row| matches!(r.get("condition"), Val::Bool(true));
                        is_true(new) && !old.as_ref().is_some_and(is_true)
                    }
                };
                if let (true, Some(contact_id)) = (asks, new.key("contact_id")) {
                    let why = format!("sync requested by a row of {table}");
                    resync(contact_id, &why, false, &mut contacts, &mut batch, seen)?;
                }
            }
        }
        _ => {}
    }
    flush(batch, coalesce)
}

fn flush(batch: Batch, coalesce: Coalesce) -> SpiResult<()> {
    if batch.flush(coalesce)? > 0 {
        wake::wake();
    }
    Ok(())
}

/// The follow-up templates and the settings a signal's capture reads, once per statement.
struct Templates {
    default: i32,
    list: std::rc::Rc<Vec<erp_sync_rules::templates::Template>>,
    /// `admission.require_conversation`: a signal may be what admits a contact
    conversation_admits: bool,
}

impl Templates {
    fn load() -> SpiResult<Templates> {
        Ok(Templates {
            default: config::setting_num("template.default")? as i32,
            list: config::templates()?,
            conversation_admits: config::admission_settings()?.require_conversation,
        })
    }

    fn pick(&self, content: &str) -> i32 {
        pick_template(content, &self.list, self.default)
    }
}

/// A statement on a change source (`erp_sync.track_source`): its path resolves the statement's
/// rows to contact keys in one query (see [`super::source`]); each contact is resynced (and its
/// assignment queued), or, for a follow-up source, each new row becomes a follow-up.
fn on_change_source(
    trigger: &PgTrigger<'_>,
    args: &[String],
    batch: &mut Batch,
    seen: &Seen,
) -> SpiResult<()> {
    let (Some(sql), Some(flags)) = (args.first(), args.get(1)) else {
        pgrx::warning!(
            "erp_sync: change source trigger without its path; re-run erp_sync.track_source()"
        );
        return Ok(());
    };
    let flags: serde_json::Value = serde_json::from_str(flags).unwrap_or_default();
    let followup = flags["followup"].as_bool().unwrap_or(false);
    let assign = flags["assign"].as_bool().unwrap_or(!followup);
    let table = match (trigger.table_schema(), trigger.table_name()) {
        (Ok(schema), Ok(name)) => format!("{schema}.{name}"),
        _ => "?".into(),
    };
    let rows = super::source::resolve(trigger.trigger_data(), sql)?;
    let mut contacts = Admissions::default();
    if followup {
        let templates = Templates::load()?;
        for r in rows {
            let template = r
                .content
                .as_deref()
                .map_or(templates.default, |c| templates.pick(c));
            on_signal(
                r.key,
                (r.ref_id, template),
                &templates,
                &mut contacts,
                batch,
                seen,
            )?;
        }
        return Ok(());
    }
    let mut once = HashSet::new();
    let why = format!("a change of {table}");
    for r in rows {
        if once.insert(r.key.clone()) {
            resync(r.key, &why, assign, &mut contacts, batch, seen)?;
        }
    }
    Ok(())
}

fn on_contact(
    op: Op,
    new: &Row,
    old: Option<&Row>,
    (settings, khid_format): (&AdmissionSettings, &str),
    batch: &mut Batch,
    seen: &Seen,
) -> SpiResult<()> {
    if let Some(old) = old {
        if !new.changed_from(old, &[]) {
            return Ok(()); // nothing the ERP sees changed
        }
    }
    let Some(id) = new.key("id") else {
        pgrx::warning!("erp_sync: contact row without an id (NULL); not captured");
        return Ok(());
    };
    seen.borrow_mut().push((id.clone(), "customer", None));
    let mut verdict = lookup::admit(new.contact_view(), &id, settings)?;
    admit_khid(&mut verdict, &id, khid_format);
    if verdict.passed {
        if op == Op::Update {
            batch.clear_rejection(id.clone());
        }
        batch.enqueue(id, "customer", None);
    } else {
        batch.reject(id, &verdict);
    }
    Ok(())
}

/// Admission of the contacts a statement's threads / signals refer to, looked up once each.
#[derive(Default)]
struct Admissions(HashMap<String, Result<Admission, String>>);

impl Admissions {
    fn of(&mut self, contact_id: &str) -> SpiResult<&Result<Admission, String>> {
        Ok(match self.0.entry(contact_id.to_string()) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(lookup::contact_admission(contact_id)?),
        })
    }
}

/// What `erp_sync.request_sync()` does for a contact a row asks to resync (a sync-trigger row:
/// an order, a payment; a change-source row: a thread's bucket, a score): admission re-checked on
/// the contact's current row, then its customer row queued (rejection cleared; with `assign`, its
/// assignment too) or the rejection recorded; a contact that cannot be read is a `skipped`
/// customer row with the reason (`why` names what asked).
fn resync(
    contact_id: String,
    why: &str,
    assign: bool,
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
            if assign {
                batch.enqueue(contact_id, "assign", None);
            }
        }
        Ok(verdict) => batch.reject(contact_id, verdict),
        Err(e) => batch.skip(contact_id, "customer", None, None, format!("{why}: {e}")),
    }
    Ok(())
}

fn on_thread(
    new: &Row,
    old: Option<&Row>,
    (top, regular): (i64, i64),
    contacts: &mut Admissions,
    batch: &mut Batch,
    seen: &Seen,
) -> SpiResult<()> {
    if let Some(old) = old {
        if !new.changed_from(old, &["score", "summary", "contact_id"]) {
            return Ok(());
        }
    }
    let Some(contact_id) = new.key("contact_id") else {
        pgrx::warning!("erp_sync: thread without a contact_id (NULL); not captured");
        return Ok(());
    };
    let thread_id = new.int("id");
    seen.borrow_mut()
        .push((contact_id.clone(), "customer", None));
    match contacts.of(&contact_id)? {
        Ok(verdict) if verdict.passed => {}
        _ => return Ok(()), // the contact's own rejection says why; nothing to send yet
    }
    batch.enqueue(contact_id.clone(), "customer", None);
    let new_tier = tier_for(new.int("score"), top, regular);
    let tier_changed = match old {
        None => true,
        Some(old) => {
            tier_for(old.int("score"), top, regular) != new_tier
                || old.raw("contact_id") != Some(contact_id.as_str())
        }
    };
    if tier_changed {
        if let Some(last) = seen.borrow_mut().last_mut() {
            *last = (contact_id.clone(), "assign", thread_id);
        }
        batch.enqueue(contact_id, "assign", thread_id);
    }
    Ok(())
}

/// A signal (or a follow-up source's row) `(id, template)` of a contact: a follow-up for an
/// admitted contact, else a `skipped` row with the reason. With `admission.require_conversation`
/// on, this signal may be what admits a contact held back until now (its rejection is cleared
/// and its customer queued first).
fn on_signal(
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
