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
//! With `capture.mode = log` none of that happens here: the same change tests pick the contact
//! keys (and thread / signal refs) of the statement, and one capture-log row per kind of work is
//! written ([`super::log`]); `erp_sync.expand()` makes the decisions later ([`super::decide`]).
//!
//! Nothing here may fail the platform's write: the whole statement's capture runs in ONE
//! subtransaction (see [`super::guard`]); on failure every row it saw is recorded as `skipped`.
//! In log mode only the log rows are written after it, at the transaction's own level, by code
//! that cannot raise an error the write did not (else through SPI in a subtransaction of its own:
//! [`super::log_heap`]).

use super::columns::{self, Row};
use super::decide::{on_signal, record_failure, resync, Admissions, Assign, Seen, Templates};
use super::guard::protected;
use super::log::{Append, Capture};
use super::lookup;
use super::outbox::{is_coalesce_race, Batch, Coalesce};
use super::transition;
use super::wake;
use crate::config;
use erp_sync_rules::admission::{AdmissionSettings, Val};
use erp_sync_rules::assignment::tier_for;
use erp_sync_rules::customer::admit_khid;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::collections::HashSet;

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Insert,
    Update,
}

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
    // capture.mode = log: the subtransaction decided what to log; the rows are written after it,
    // at the transaction's own level (see super::log_heap)
    let outcome = match outcome {
        Ok(Some(append)) => append.write().map(|()| wake::wake()),
        Ok(None) => Ok(()),
        Err(message) => Err(message),
    };
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

/// One statement's capture. Direct mode writes its outbox rows and rejections here; in log mode
/// the capture-log rows to write come back (`Some`), written by the caller after the
/// subtransaction this runs in.
fn handle(trigger: &PgTrigger<'_>, seen: &Seen, coalesce: Coalesce) -> SpiResult<Option<Append>> {
    let op = match trigger.op() {
        Ok(PgTriggerOperation::Insert) => Op::Insert,
        Ok(PgTriggerOperation::Update) => Op::Update,
        _ => return Ok(None),
    };
    let args = trigger.extra_args().unwrap_or_default();
    let Some((entity, cols)) = args.split_first() else {
        pgrx::warning!("erp_sync: capture trigger without arguments; re-run erp_sync.track()");
        return Ok(None);
    };
    if trigger.relid().is_ok_and(super::quiet::suppressed) {
        return Ok(None); // erp_sync.suppress_capture(): rows the ERP holds already (import)
    }
    let logged = super::log::enabled()?;
    if entity == "source" {
        let mut batch = Batch::default();
        let mut cap = Capture::default();
        let into = if logged {
            Sink::Log(&mut cap)
        } else {
            Sink::Batch(&mut batch)
        };
        on_change_source(trigger, cols, into, seen)?;
        return if logged {
            log_prepare(trigger, cap, seen)
        } else {
            flush(batch, coalesce).map(|()| None)
        };
    }
    let fields = crate::entities::fields(entity);
    if fields.is_empty() {
        pgrx::warning!(
            "erp_sync: capture trigger for unknown entity {entity:?}; re-run erp_sync.track()"
        );
        return Ok(None);
    }
    let td = trigger.trigger_data();
    if td.tg_newtable.is_null() {
        pgrx::warning!(
            "erp_sync: capture trigger without a transition table; re-run erp_sync.track()"
        );
        return Ok(None);
    }
    // SAFETY: trigger data of a statement-level AFTER trigger: the relation and its transition
    // tables are valid for the duration of the call.
    // An INSERT logged (capture.mode = log) reads only the fields the log row needs: no change
    // test, no admission (a contact's key alone instead of its every mapped column).
    let narrow: Vec<String>;
    let cols = match (logged && op == Op::Insert, log_insert_fields(entity)) {
        (true, Some(needed)) => {
            narrow = fields
                .iter()
                .zip(cols.iter().chain(std::iter::repeat(&String::new())))
                .map(|(f, c)| {
                    if needed.contains(f) {
                        c.clone()
                    } else {
                        String::new()
                    }
                })
                .collect();
            &narrow[..]
        }
        _ => cols,
    };
    let (news, olds) = unsafe {
        let tupdesc = (*td.tg_relation).rd_att;
        let mut layout = columns::layout(fields, cols, tupdesc);
        (
            transition::rows(td.tg_newtable, tupdesc, &mut layout),
            transition::rows(td.tg_oldtable, tupdesc, &mut layout),
        )
    };
    if news.is_empty() {
        return Ok(None);
    }
    let rows = transition::pair(news, olds);
    // the trigger's arguments follow the entity's field list (TRIGGER_FIELDS)
    let has_condition = fields
        .iter()
        .position(|f| *f == "condition")
        .and_then(|i| cols.get(i))
        .is_some_and(|c| !c.is_empty());
    if logged {
        let cap = log_statement(entity, op, &rows, has_condition)?;
        return log_prepare(trigger, cap, seen);
    }
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
                let signal = (new.int("id"), templates.pick(text(new, "content")));
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
            let table = table_of(trigger);
            for (new, old) in &rows {
                if let (true, Some(contact_id)) = (
                    asks(has_condition, new, old.as_ref()),
                    new.key("contact_id"),
                ) {
                    let why = format!("sync requested by a row of {table}");
                    resync(
                        contact_id,
                        &why,
                        Assign::No,
                        &mut contacts,
                        &mut batch,
                        seen,
                    )?;
                }
            }
        }
        _ => {}
    }
    flush(batch, coalesce).map(|()| None)
}

/// `schema.table` of the trigger's relation, for reasons and warnings.
fn table_of(trigger: &PgTrigger<'_>) -> String {
    match (trigger.table_schema(), trigger.table_name()) {
        (Ok(schema), Ok(name)) => format!("{schema}.{name}"),
        _ => "?".into(),
    }
}

/// The text of a row's field, if it is text.
fn text<'r>(row: &'r Row, field: &str) -> Option<&'r str> {
    match row.get(field) {
        Val::Text(t) => Some(t.as_str()),
        _ => None,
    }
}

/// Does a row of a sync-trigger table ask for a sync? Every INSERT without a condition column;
/// with one, a row whose condition is or turns true.
fn asks(has_condition: bool, new: &Row, old: Option<&Row>) -> bool {
    if !has_condition {
        return old.is_none(); // without a condition only an INSERT asks
    }
    let is_true = |r: &Row| matches!(r.get("condition"), Val::Bool(true));
    is_true(new) && !old.is_some_and(is_true)
}

/// Did a thread's assignment tier (or its contact) change? A new thread always counts.
fn tier_changed(
    new: &Row,
    old: Option<&Row>,
    (top, regular): (i64, i64),
    contact_id: &str,
) -> bool {
    match old {
        None => true,
        Some(old) => {
            tier_for(old.int("score"), top, regular) != tier_for(new.int("score"), top, regular)
                || old.raw("contact_id") != Some(contact_id)
        }
    }
}

/// The fields a logged INSERT of `entity` reads ([`log_statement`] on an INSERT).
fn log_insert_fields(entity: &str) -> Option<&'static [&'static str]> {
    match entity {
        "contact" => Some(&["id"]),
        "thread" => Some(&["id", "contact_id"]),
        "signal" => Some(&["id", "contact_id", "content"]),
        "trigger" => Some(&["contact_id", "condition"]),
        _ => None,
    }
}

/// `capture.mode = log`: what the statement changed, as capture log work (see [`super::log`]):
/// the same change tests as direct capture, no admission, no outbox probe.
fn log_statement(
    entity: &str,
    op: Op,
    rows: &[(Row, Option<Row>)],
    has_condition: bool,
) -> SpiResult<Capture> {
    let mut cap = Capture::default();
    match entity {
        "contact" => {
            for (new, old) in rows {
                if old.as_ref().is_some_and(|o| !new.changed_from(o, &[])) {
                    continue;
                }
                match new.key("id") {
                    Some(id) => cap.resync(id),
                    None => {
                        pgrx::warning!("erp_sync: contact row without an id (NULL); not captured")
                    }
                }
            }
        }
        "thread" => {
            let tiers = config::tier_thresholds()?;
            for (new, old) in rows {
                if let Some(o) = old {
                    if !new.changed_from(o, &["score", "summary", "contact_id"]) {
                        continue;
                    }
                }
                let Some(key) = new.key("contact_id") else {
                    pgrx::warning!("erp_sync: thread without a contact_id (NULL); not captured");
                    continue;
                };
                if tier_changed(new, old.as_ref(), tiers, &key) {
                    cap.assign(key.clone(), new.int("id"));
                }
                cap.resync(key);
            }
        }
        "signal" if op == Op::Insert => {
            let templates = Templates::load()?;
            for (new, _) in rows {
                let Some(key) = new.key("contact_id") else {
                    pgrx::warning!("erp_sync: signal without a contact_id (NULL); not captured");
                    continue;
                };
                cap.followup(key, new.int("id"), templates.pick(text(new, "content")));
            }
        }
        "trigger" => {
            for (new, old) in rows {
                if let (true, Some(key)) = (
                    asks(has_condition, new, old.as_ref()),
                    new.key("contact_id"),
                ) {
                    cap.resync(key);
                }
            }
        }
        _ => {}
    }
    Ok(cap)
}

/// The statement's capture-log rows, ready for [`Append::write`] (none: nothing to log).
fn log_prepare(trigger: &PgTrigger<'_>, cap: Capture, seen: &Seen) -> SpiResult<Option<Append>> {
    if cap.is_empty() {
        return Ok(None);
    }
    cap.note(seen);
    let Ok(relid) = trigger.relid() else {
        return Ok(None);
    };
    cap.prepare(relid).map(Some)
}

/// Where a change source's decisions go: the outbox now (direct) or the capture log.
enum Sink<'a> {
    Batch(&'a mut Batch),
    Log(&'a mut Capture),
}

fn flush(batch: Batch, coalesce: Coalesce) -> SpiResult<()> {
    if batch.flush(coalesce)? > 0 {
        wake::wake();
    }
    Ok(())
}

/// A statement on a change source (`erp_sync.track_source`): its path resolves the statement's
/// rows to contact keys in one query (see [`super::source`]); each contact is resynced (and its
/// assignment queued), or, for a follow-up source, each new row becomes a follow-up.
fn on_change_source(
    trigger: &PgTrigger<'_>,
    args: &[String],
    into: Sink<'_>,
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
    let table = table_of(trigger);
    let rows = super::source::resolve(trigger.trigger_data(), sql)?;
    let templates = if followup {
        Some(Templates::load()?)
    } else {
        None
    };
    match into {
        Sink::Log(cap) => {
            for r in rows {
                match &templates {
                    Some(t) => cap.followup(r.key, r.ref_id, t.pick(r.content.as_deref())),
                    None if assign => cap.assign(r.key, None),
                    None => cap.resync(r.key),
                }
            }
        }
        Sink::Batch(batch) => {
            let mut contacts = Admissions::default();
            let mut once = HashSet::new();
            let why = format!("a change of {table}");
            for r in rows {
                if let Some(t) = &templates {
                    let signal = (r.ref_id, t.pick(r.content.as_deref()));
                    on_signal(r.key, signal, t, &mut contacts, batch, seen)?;
                } else if once.insert(r.key.clone()) {
                    let assign = if assign {
                        Assign::Thread(None)
                    } else {
                        Assign::No
                    };
                    resync(r.key, &why, assign, &mut contacts, batch, seen)?;
                }
            }
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
    if tier_changed(new, old, (top, regular), &contact_id) {
        if let Some(last) = seen.borrow_mut().last_mut() {
            *last = (contact_id.clone(), "assign", thread_id);
        }
        batch.enqueue(contact_id, "assign", thread_id);
    }
    Ok(())
}
