//! Reading the CURRENT state of tracked rows (through the stored column map) by id. Used off the
//! contact hot path: thread/signal capture, request_sync() and the payload functions.

use crate::capture::columns::remap_json;
use crate::config::{self, Tracked};
use crate::db::{self, TEXT};
use crate::rules::admission::{self, Admission, ContactView};
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use serde_json::{Map, Value};

pub enum Lookup {
    /// No table is tracked for the entity.
    NotTracked,
    NotFound,
    Found(Map<String, Value>),
}

/// `to_jsonb(row)` of the row whose `key_field` column equals `key`, newest by `id` first.
/// The key is passed as text and cast to the column's own type, so any key type works and
/// the column's index is used.
fn fetch(t: &Tracked, key_field: &str, key: i64) -> SpiResult<Option<Map<String, Value>>> {
    let (Some(key_col), Some(id_col)) = (t.columns.get(key_field), t.columns.get("id")) else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT pg_catalog.to_jsonb(x)::text FROM {tbl} x WHERE x.{key} = $1::{ty} ORDER BY x.{id} DESC LIMIT 1",
        tbl = t.qualname,
        key = pgrx::spi::quote_identifier(key_col),
        id = pgrx::spi::quote_identifier(id_col),
        ty = t.types.get(key_col).map(String::as_str).unwrap_or("bigint"),
    );
    let text = Spi::connect_mut(|client| {
        let plan = db::plan(client, &sql, &[TEXT])?;
        client
            .update(&*plan, Some(1), &[key.to_string().into()])?
            .first()
            .get_one::<String>()
    });
    let text = match text {
        Ok(t) => t,
        Err(pgrx::spi::Error::InvalidPosition) => None,
        Err(e) => return Err(e),
    };
    Ok(text
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| {
            v.as_object()
                .map(|row| remap_json(row, &t.entity, &t.columns))
        }))
}

pub fn contact(contact_id: i64) -> SpiResult<Lookup> {
    let Some(t) = config::tracked("contact")? else {
        return Ok(Lookup::NotTracked);
    };
    Ok(fetch(&t, "id", contact_id)?.map_or(Lookup::NotFound, Lookup::Found))
}

/// Latest thread (highest id) of a contact.
pub fn latest_thread(contact_id: i64) -> SpiResult<Option<Map<String, Value>>> {
    let Some(t) = config::tracked("thread")? else {
        return Ok(None);
    };
    fetch(&t, "contact_id", contact_id)
}

pub fn signal(signal_id: i64) -> SpiResult<Option<Map<String, Value>>> {
    let Some(t) = config::tracked("signal")? else {
        return Ok(None);
    };
    fetch(&t, "id", signal_id)
}

/// Admission of a contact from its current row; `Err(reason)` when it cannot be evaluated.
pub fn contact_admission(contact_id: i64) -> SpiResult<Result<Admission, String>> {
    Ok(match contact(contact_id)? {
        Lookup::NotTracked => Err("no contact table is tracked".into()),
        Lookup::NotFound => Err(format!("contact {contact_id} not found")),
        Lookup::Found(row) => Ok(admission::evaluate(
            &ContactView::from_json(&row),
            &config::admission_settings()?,
        )),
    })
}
