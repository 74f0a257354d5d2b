//! Reading the CURRENT state of tracked rows (through the stored column map) by id. Used off the
//! contact hot path: thread/signal capture, request_sync() and the payload functions.

use crate::config::{self, Tracked};
use crate::db::{self, TEXT};
use erp_sync_rules::admission::{self, Admission, AdmissionSettings, ContactView};
use erp_sync_rules::customer::admit_khid;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use serde_json::{Map, Value};

pub enum Lookup {
    /// No table is tracked for the entity.
    NotTracked,
    NotFound,
    Found(Map<String, Value>),
}

/// The spec fields of the newest row whose `key_field` column equals `key`
/// (see `config::Tracked::lookups`); `None` when no row matches or the field is not mapped.
fn fetch(t: &Tracked, key_field: &str, key: &str) -> SpiResult<Option<Map<String, Value>>> {
    let Some(sql) = t.lookups.get(key_field) else {
        return Ok(None);
    };
    let text = Spi::connect_mut(|client| {
        let plan = db::plan(client, sql, &[TEXT])?;
        client
            .update(&*plan, Some(1), &[key.into()])?
            .first()
            .get_one::<String>()
    });
    let text = match text {
        Ok(t) => t,
        Err(pgrx::spi::Error::InvalidPosition) => None,
        Err(e) => return Err(e),
    };
    Ok(text.and_then(|s| match serde_json::from_str::<Value>(&s) {
        Ok(Value::Object(row)) => Some(row),
        _ => None,
    }))
}

pub fn contact(contact_id: &str) -> SpiResult<Lookup> {
    let Some(t) = config::tracked("contact")? else {
        return Ok(Lookup::NotTracked);
    };
    Ok(fetch(&t, "id", contact_id)?.map_or(Lookup::NotFound, Lookup::Found))
}

/// Latest thread (highest id) of a contact.
pub fn latest_thread(contact_id: &str) -> SpiResult<Option<Map<String, Value>>> {
    let Some(t) = config::tracked("thread")? else {
        return Ok(None);
    };
    fetch(&t, "contact_id", contact_id)
}

pub fn signal(signal_id: i64) -> SpiResult<Option<Map<String, Value>>> {
    let Some(t) = config::tracked("signal")? else {
        return Ok(None);
    };
    fetch(&t, "id", &signal_id.to_string())
}

/// Admission of a contact from its current row; `Err(reason)` when it cannot be evaluated.
pub fn contact_admission(contact_id: &str) -> SpiResult<Result<Admission, String>> {
    Ok(match contact(contact_id)? {
        Lookup::NotTracked => Err("no contact table is tracked".into()),
        Lookup::NotFound => Err(format!("contact {contact_id} not found")),
        Lookup::Found(row) => Ok(verdict(contact_id, &row)?.0),
    })
}

/// Has the contact at least one signal? `None` when no signal table is tracked (the check then
/// fails as "could not be looked up").
pub fn has_signal(contact_id: &str) -> SpiResult<Option<bool>> {
    let Some(t) = config::tracked("signal")? else {
        return Ok(None);
    };
    Ok(Some(fetch(&t, "contact_id", contact_id)?.is_some()))
}

/// Is a rejection recorded for the contact?
pub fn rejected(contact_id: &str) -> SpiResult<bool> {
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM erp_sync.rejections WHERE contact_id = $1)",
        &[contact_id.into()],
    )?
    .unwrap_or(false))
}

/// The one way the extension evaluates admission: `view` of contact `contact_id`, with its
/// conversation looked up when `admission.require_conversation` asks for it.
pub fn admit(
    mut view: ContactView,
    contact_id: &str,
    s: &AdmissionSettings,
) -> SpiResult<Admission> {
    if s.require_conversation && view.conversation.is_none() {
        view.conversation = has_signal(contact_id)?;
    }
    Ok(admission::evaluate(&view, s))
}

/// The khid of the ERP customer the contact is linked to (`customer_link.khid`), if any. A
/// database still at the 0.1.0 schema (bigint keys, before `ALTER EXTENSION erp_sync UPDATE`)
/// has no imported customers: its khid is the format's, as 0.1.0 had it.
pub fn linked_khid(contact_id: &str) -> SpiResult<Option<String>> {
    if super::direct::legacy_bigint_keys() {
        return Ok(None);
    }
    let khid = Spi::connect_mut(|client| {
        let plan = db::plan(
            client,
            "SELECT khid FROM erp_sync.customer_link WHERE contact_id = $1",
            &[TEXT],
        )?;
        client
            .update(&*plan, Some(1), &[contact_id.into()])?
            .first()
            .get_one::<String>()
    });
    match khid {
        Err(pgrx::spi::Error::InvalidPosition) => Ok(None),
        other => other,
    }
}

/// The verdict on a contact's current row: the admission checks ([`admit`]), then its khid; the
/// khid when there is one. The khid rule, in one place: a contact linked to an ERP customer
/// (`customer_link.khid`, e.g. one brought home by `erp_sync.import_erp_customers()`, or synced
/// before a change of the format) is that customer's khid, so the sidecar finds and updates that
/// customer; any other contact's is `customer.khid_format`
/// (`erp_sync_rules::customer::admit_khid`, which rejects a khid the ERP would not keep).
pub fn verdict(
    contact_id: &str,
    row: &Map<String, Value>,
) -> SpiResult<(Admission, Option<String>)> {
    let mut verdict = admit(
        ContactView::from_json(row),
        contact_id,
        &config::admission_settings()?,
    )?;
    let khid = match linked_khid(contact_id)? {
        Some(k) => Some(k),
        None => admit_khid(&mut verdict, contact_id, &config::khid_format()?),
    };
    Ok((verdict, khid))
}
