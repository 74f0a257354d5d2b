//! What the sidecar sends: the CURRENT state of a contact / signal, in the spec's field names.
//! SECURITY DEFINER with a pinned search_path, so the sidecar role needs no access to the
//! platform's tables.

use super::lookup::{self, Lookup};
use crate::config;
use crate::error::OrRaise;
use erp_sync_rules::admission::ContactView;
use erp_sync_rules::khid;
use erp_sync_rules::mobile::normalize_mobile;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

pub fn contact_payload_impl(contact_id: i64) -> pgrx::spi::SpiResult<Option<Value>> {
    let Lookup::Found(mut row) = lookup::contact(contact_id)? else {
        return Ok(None);
    };
    let verdict = lookup::admit(
        ContactView::from_json(&row),
        contact_id,
        &config::admission_settings()?,
    )?;
    for f in crate::entities::CONTACT_FIELDS {
        row.entry(f.to_string()).or_insert(Value::Null);
    }
    if let Some(Value::String(p)) = row.get("phone") {
        if let Some(n) = normalize_mobile(p) {
            row.insert("phone".into(), Value::String(n));
        }
    }
    let thread = lookup::latest_thread(contact_id)?.map(|t| {
        json!({"id": t.get("id").cloned().unwrap_or(Value::Null),
               "score": t.get("score").cloned().unwrap_or(Value::Null),
               "summary": t.get("summary").cloned().unwrap_or(Value::Null)})
    });
    row.insert("thread".into(), thread.unwrap_or(Value::Null));
    row.insert("admission".into(), verdict.to_json());
    row.insert("khid".into(), Value::String(khid(contact_id)));
    Ok(Some(Value::Object(row)))
}

#[pg_extern(stable, strict, security_definer, parallel_restricted)]
#[search_path(pg_catalog, pg_temp)]
fn contact_payload(contact_id: i64) -> Option<JsonB> {
    contact_payload_impl(contact_id).or_raise().map(JsonB)
}

#[pg_extern(stable, strict, security_definer, parallel_restricted)]
#[search_path(pg_catalog, pg_temp)]
fn signal_payload(signal_id: i64) -> Option<JsonB> {
    let row = lookup::signal(signal_id).or_raise()?;
    let get = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
    Some(JsonB(
        json!({"id": get("id"), "contact_id": get("contact_id"), "content": get("content"), "ts": get("ts")}),
    ))
}
