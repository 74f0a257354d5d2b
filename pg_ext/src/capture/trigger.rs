//! The capture trigger: AFTER INSERT OR UPDATE, FOR EACH ROW, attached by `erp_sync.track()`.
//!
//! * contact: admission in Rust straight from the tuple; pass → `customer` outbox row (coalesced)
//!   and the rejection cleared; fail → rejection upserted, no outbox row. An UPDATE that changes
//!   none of the mapped (ERP-visible) fields writes nothing.
//! * thread: new thread, or changed score/summary → `customer` (jz/product changed); new thread
//!   or a changed assignment tier → `assign` (ref_id = thread id). Only for an admitted contact.
//! * signal: INSERT → `followup` (ref_id = signal id, template chosen now) for an admitted
//!   contact, else an outbox row with status `skipped` and the reason in `last_error`.
//!
//! Nothing here may fail the platform's write: see [`super::guard`].

use super::columns::{self, Row};
use super::guard::protected;
use super::lookup;
use super::outbox;
use crate::config;
use crate::rules::admission::{self, Val};
use crate::rules::assignment::tier_for;
use crate::rules::templates::pick_template;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::cell::Cell;

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Insert,
    Update,
}

#[pg_trigger]
fn capture<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    // The contact id, once known, so a failure can still be recorded against it.
    let seen: Cell<Option<(i64, &'static str, Option<i64>)>> = Cell::new(None);
    let outcome = protected(|| handle(trigger, &seen).map_err(|e| e.to_string()));
    if let Err(message) = outcome {
        let table = trigger.table_name().unwrap_or_else(|_| "?".into());
        pgrx::warning!("erp_sync: capture on {table} failed, the row is saved but not queued: {message}");
        if let Some((contact_id, kind, ref_id)) = seen.get() {
            let reason = format!("capture failed: {message}");
            let recorded = protected(|| outbox::skip(contact_id, kind, ref_id, None, &reason).map_err(|e| e.to_string()));
            if let Err(again) = recorded {
                pgrx::warning!("erp_sync: could not record the capture failure either: {again}");
            }
        }
    }
    Ok(None)
}

fn handle(trigger: &PgTrigger<'_>, seen: &Cell<Option<(i64, &'static str, Option<i64>)>>) -> SpiResult<()> {
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
    let fields = columns::fields(entity);
    if fields.is_empty() {
        pgrx::warning!("erp_sync: capture trigger for unknown entity {entity:?}; re-run erp_sync.track()");
        return Ok(());
    }
    let td = trigger.trigger_data();
    // SAFETY: trigger data of a row-level AFTER INSERT/UPDATE trigger: the relation and the
    // tuples are valid for the duration of the call.
    let (new, old) = unsafe {
        let tupdesc = (*td.tg_relation).rd_att;
        match op {
            Op::Insert => (columns::read_row(fields, cols, td.tg_trigtuple, tupdesc), None),
            Op::Update => (
                columns::read_row(fields, cols, td.tg_newtuple, tupdesc),
                Some(columns::read_row(fields, cols, td.tg_trigtuple, tupdesc)),
            ),
        }
    };
    match entity.as_str() {
        "contact" => on_contact(op, &new, old.as_ref(), seen),
        "thread" => on_thread(&new, old.as_ref(), seen),
        "signal" if op == Op::Insert => on_signal(&new, seen),
        _ => Ok(()),
    }
}

fn on_contact(op: Op, new: &Row, old: Option<&Row>, seen: &Cell<Option<(i64, &'static str, Option<i64>)>>) -> SpiResult<()> {
    if let Some(old) = old {
        if !new.changed_from(old, &[]) {
            return Ok(()); // nothing the ERP sees changed
        }
    }
    let Some(id) = new.int("id") else {
        pgrx::warning!("erp_sync: contact row without a usable id ({:?}); not captured", new.raw("id"));
        return Ok(());
    };
    seen.set(Some((id, "customer", None)));
    let verdict = admission::evaluate(&new.contact_view(), &config::admission_settings()?);
    if verdict.passed {
        outbox::enqueue(id, "customer", None)?;
        if op == Op::Update {
            outbox::clear_rejection(id)?;
        }
    } else {
        outbox::reject(id, &verdict)?;
    }
    Ok(())
}

fn on_thread(new: &Row, old: Option<&Row>, seen: &Cell<Option<(i64, &'static str, Option<i64>)>>) -> SpiResult<()> {
    if let Some(old) = old {
        if !new.changed_from(old, &["score", "summary", "contact_id"]) {
            return Ok(());
        }
    }
    let Some(contact_id) = new.int("contact_id") else {
        pgrx::warning!("erp_sync: thread without a usable contact_id ({:?}); not captured", new.raw("contact_id"));
        return Ok(());
    };
    let thread_id = new.int("id");
    seen.set(Some((contact_id, "customer", None)));
    match lookup::contact_admission(contact_id)? {
        Ok(verdict) if verdict.passed => {}
        _ => return Ok(()), // the contact's own rejection says why; nothing to send yet
    }
    outbox::enqueue(contact_id, "customer", None)?;
    let (top, regular) = config::tier_thresholds()?;
    let new_tier = tier_for(new.int("score"), top, regular);
    let tier_changed = match old {
        None => true,
        Some(old) => tier_for(old.int("score"), top, regular) != new_tier || old.int("contact_id") != Some(contact_id),
    };
    if tier_changed {
        seen.set(Some((contact_id, "assign", thread_id)));
        outbox::enqueue(contact_id, "assign", thread_id)?;
    }
    Ok(())
}

fn on_signal(new: &Row, seen: &Cell<Option<(i64, &'static str, Option<i64>)>>) -> SpiResult<()> {
    let Some(contact_id) = new.int("contact_id") else {
        pgrx::warning!("erp_sync: signal without a usable contact_id ({:?}); not captured", new.raw("contact_id"));
        return Ok(());
    };
    let signal_id = new.int("id");
    seen.set(Some((contact_id, "followup", signal_id)));
    let default = config::setting_num("template.default")? as i32;
    let template = match new.get("content") {
        Val::Text(content) => pick_template(content, &config::templates()?, default),
        _ => default,
    };
    let Some(signal_id) = signal_id else {
        return outbox::skip(contact_id, "followup", None, Some(template), "signal without a usable id");
    };
    match lookup::contact_admission(contact_id)? {
        Ok(verdict) if verdict.passed => outbox::enqueue_followup(contact_id, signal_id, template),
        Ok(verdict) => {
            let reason = format!("contact not admitted: {}", verdict.reasons.join("; "));
            outbox::skip(contact_id, "followup", Some(signal_id), Some(template), &reason)
        }
        Err(why) => outbox::skip(contact_id, "followup", Some(signal_id), Some(template), &why),
    }
}
