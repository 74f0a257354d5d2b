//! What the sidecar sends: the CURRENT state of a contact / signal, in the spec's field names.
//! SECURITY DEFINER with a pinned search_path, so the sidecar role needs no access to the
//! platform's tables.

use super::lookup::{self, Lookup};
use crate::error::OrRaise;
use erp_sync_rules::mobile::normalize_mobile;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

/// `khid` is NULL when the contact has none (`customer.khid_format` gives more than the ERP's 50
/// characters, or no `{key}`): then `admission` is not passed and its reasons say why.
pub fn contact_payload_impl(contact_id: &str) -> pgrx::spi::SpiResult<Option<Value>> {
    let Lookup::Found(mut row) = lookup::contact(contact_id)? else {
        return Ok(None);
    };
    let (verdict, khid) = lookup::verdict(contact_id, &row)?;
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
    row.insert("khid".into(), khid.map_or(Value::Null, Value::String));
    Ok(Some(Value::Object(row)))
}

/// The contact with key `contact_id` (the text form of the platform's id).
#[pg_extern(
    stable,
    strict,
    security_definer,
    parallel_restricted,
    name = "contact_payload"
)]
#[search_path(pg_catalog, pg_temp)]
fn contact_payload_text(contact_id: &str) -> Option<JsonB> {
    contact_payload_impl(contact_id).or_raise().map(JsonB)
}

/// `contact_payload(bigint)` of the released 0.1.0 install script (`contact_payload_wrapper`):
/// kept for a database still at 0.1.0 with this library; not part of 0.2.0's SQL.
#[pg_extern(sql = false)]
fn contact_payload(contact_id: i64) -> Option<JsonB> {
    contact_payload_impl(&contact_id.to_string())
        .or_raise()
        .map(JsonB)
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
