//! `erp_sync.track()` / `erp_sync.untrack()`: attach the capture triggers to a platform table
//! with a column map, and `erp_sync.request_sync()`, the manual "sync now" button.

use super::direct;
use super::lookup::{self, Lookup};
use super::outbox::{Batch, Coalesce};
use super::wake;
use crate::config;
use crate::entities::{fields, required, ENTITIES};
use crate::error::{ErpResult, ErpSyncError, OrRaise};
use pgrx::prelude::*;
use pgrx::spi::quote_literal;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

use super::relation::{drop_triggers, relation_info, TableInfo, TRIGGER_INSERT, TRIGGER_UPDATE};

/// The problems `erp_sync.check_source()` finds with a payload view, errors only, as one text.
fn source_errors(entity: &str, relid: pg_sys::Oid) -> ErpResult<Option<String>> {
    Ok(Spi::get_one_with_args::<String>(
        "SELECT string_agg(problem || ' (' || hint || ')', '; ') \
         FROM erp_sync.check_source($1, $2::regclass) WHERE severity = 'error'",
        &[entity.into(), relid.into()],
    )?)
}

/// Key columns hold the contact's key, which the outbox carries as text (`contact_id text`, khid
/// `customer.khid_format`, `WX{key}` by default): an integer (smallint, integer, bigint,
/// numeric), uuid or text (text, varchar, char) column. Checked before anything is attached, so
/// any other type (a float, a timestamp, json, ...) is a clear error, not a surprise later. While
/// the database is still at the 0.1.0 schema (`outbox.contact_id bigint`, before `ALTER EXTENSION
/// erp_sync UPDATE`), only integer columns are accepted.
fn check_key_types(
    relid: pg_sys::Oid,
    entity: &str,
    table: &str,
    resolved: &Map<String, Value>,
) -> ErpResult<()> {
    let keys: &[&str] = match entity {
        "contact" => &["id"],
        _ => &["contact_id"],
    };
    for field in keys {
        let Some(column) = resolved.get(*field).and_then(Value::as_str) else {
            continue;
        };
        let (type_name, kind) = Spi::get_two_with_args::<String, String>(
            "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod), \
                    CASE WHEN coalesce(nullif(t.typbasetype, 0), t.oid) IN \
                             ('int2'::pg_catalog.regtype, 'int4'::pg_catalog.regtype, \
                              'int8'::pg_catalog.regtype, 'numeric'::pg_catalog.regtype) THEN 'integer' \
                         WHEN coalesce(nullif(t.typbasetype, 0), t.oid) IN \
                             ('uuid'::pg_catalog.regtype, 'text'::pg_catalog.regtype, \
                              'varchar'::pg_catalog.regtype, 'bpchar'::pg_catalog.regtype) THEN 'text' \
                         ELSE 'other' END \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1 AND a.attname = $2",
            &[relid.into(), column.into()],
        )?;
        let accepted = match kind.as_deref() {
            Some("integer") => true,
            Some("text") => !direct::legacy_bigint_keys(),
            _ => false,
        };
        if !accepted {
            return Err(ErpSyncError::UnsupportedKeyType {
                table: table.to_string(),
                field: field.to_string(),
                column: column.to_string(),
                type_name: type_name.unwrap_or_default(),
                legacy_schema: kind.as_deref() == Some("text"),
            });
        }
    }
    Ok(())
}

/// Resolve the column map: explicit entries must name existing columns; other fields map to a
/// same-named column when there is one. Required fields must resolve.
pub fn resolve_columns(
    entity: &str,
    map: &Value,
    table: &str,
    existing: &[String],
) -> ErpResult<Map<String, Value>> {
    let known = fields(entity);
    if known.is_empty() {
        return Err(ErpSyncError::UnknownEntity(entity.to_string()));
    }
    let Some(given) = map.as_object() else {
        return Err(ErpSyncError::BadColumnMap(format!(
            "expected a JSON object, got {map}"
        )));
    };
    for (field, col) in given {
        if !known.contains(&field.as_str()) {
            return Err(ErpSyncError::UnknownField {
                entity: entity.to_string(),
                field: field.clone(),
            });
        }
        let Some(col) = col.as_str() else {
            return Err(ErpSyncError::BadColumnMap(format!(
                "the column for \"{field}\" must be a string, got {col}"
            )));
        };
        if !existing.iter().any(|c| c == col) {
            return Err(ErpSyncError::UnknownColumn {
                table: table.to_string(),
                field: field.clone(),
                column: col.to_string(),
            });
        }
    }
    let mut resolved = Map::new();
    for f in known {
        let col = match given.get(*f).and_then(Value::as_str) {
            Some(c) => Some(c.to_string()),
            None => existing.iter().find(|c| c.as_str() == *f).cloned(),
        };
        if let Some(c) = col {
            resolved.insert(f.to_string(), Value::String(c));
        }
    }
    for f in required(entity) {
        if !resolved.contains_key(*f) {
            return Err(ErpSyncError::MissingRequiredColumn {
                table: table.to_string(),
                entity: entity.to_string(),
                field: f.to_string(),
            });
        }
    }
    Ok(resolved)
}

fn drop_trigger_on(relid: pg_sys::Oid) -> ErpResult<()> {
    let qual = Spi::get_one_with_args::<String>(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[relid.into()],
    );
    match qual {
        Ok(Some(q)) => drop_triggers(relid, &q),
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition) => Ok(()), // table is gone
        Err(e) => Err(e.into()),
    }
}

fn rebuild_contact_status() -> ErpResult<()> {
    Spi::run("SELECT erp_sync.rebuild_contact_status()").map_err(Into::into)
}

/// (Re)attach the capture triggers of `entity` to the table: AFTER INSERT, and AFTER UPDATE when
/// `on_update`, each FOR EACH STATEMENT with its transition tables; the column map travels as the
/// trigger's arguments in [`fields`] order (`''` for an unmapped field).
fn attach_capture(
    relid: pg_sys::Oid,
    info: &TableInfo,
    entity: &str,
    resolved: &Map<String, Value>,
    on_update: bool,
) -> ErpResult<()> {
    let mut args = vec![quote_literal(entity)];
    for f in fields(entity) {
        args.push(quote_literal(
            resolved.get(*f).and_then(Value::as_str).unwrap_or(""),
        ));
    }
    let args = args.join(", ");
    drop_triggers(relid, &info.qualname)?;
    Spi::run(&format!(
        "CREATE TRIGGER {TRIGGER_INSERT} AFTER INSERT ON {} REFERENCING NEW TABLE AS erp_sync_new \
         FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.capture({args})",
        info.qualname
    ))?;
    if on_update {
        Spi::run(&format!(
            "CREATE TRIGGER {TRIGGER_UPDATE} AFTER UPDATE ON {} REFERENCING OLD TABLE AS erp_sync_old NEW TABLE AS erp_sync_new \
             FOR EACH STATEMENT EXECUTE FUNCTION erp_sync.capture({args})",
            info.qualname
        ))?;
    }
    Ok(())
}

/// `track(tbl, 'trigger', {"contact_id": .., "condition": ..})`: rows of `tbl` ask for a sync of
/// their contact. Kept in `erp_sync.sync_triggers` (any number of tables); a table is tracked
/// once, so one already tracked as contact/thread/signal is refused. The INSERT trigger always;
/// the UPDATE trigger only with a condition column (a row whose condition turns true asks).
fn track_sync_trigger(
    relid: pg_sys::Oid,
    info: &TableInfo,
    resolved: Map<String, Value>,
) -> ErpResult<Value> {
    super::relation::require_0_2_0("sync_triggers", "sync triggers")?;
    let other = Spi::get_one_with_args::<String>(
        "SELECT entity FROM erp_sync.tracked_tables WHERE relid = $1::regclass",
        &[relid.into()],
    );
    match other {
        Ok(Some(e)) => {
            return Err(ErpSyncError::InvalidArgument {
                message: format!("{} is tracked as the {e} table; a table is tracked once", info.qualname),
                hint: format!("a {e} row already syncs its contact; to make it a sync trigger instead, call erp_sync.untrack('{}') first", info.qualname),
            })
        }
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition) => {}
        Err(e) => return Err(e.into()),
    }
    let condition = resolved
        .get("condition")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(col) = &condition {
        let ty = Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = $1 AND a.attname = $2",
            &[relid.into(), col.as_str().into()],
        )?
        .unwrap_or_default();
        if ty != "boolean" {
            return Err(ErpSyncError::InvalidArgument {
                message: format!("{}.{col} (field condition) is of type {ty}: a condition must be a boolean column", info.qualname),
                hint: format!("map condition to a boolean column, e.g. ALTER TABLE {} ADD COLUMN first_payment boolean GENERATED ALWAYS AS (...) STORED, or leave it out (every INSERT asks)", info.qualname),
            });
        }
    }
    let resolved_json = Value::Object(resolved.clone());
    Spi::run_with_args(
        "INSERT INTO erp_sync.sync_triggers (relid, columns) VALUES ($1::regclass, $2::jsonb) \
         ON CONFLICT (relid) DO UPDATE SET columns = EXCLUDED.columns, tracked_at = now()",
        &[relid.into(), resolved_json.to_string().into()],
    )?;
    attach_capture(relid, info, "trigger", &resolved, condition.is_some())?;
    Ok(json!({"entity": "trigger", "table": info.qualname, "columns": resolved_json}))
}

pub fn track_impl(relid: pg_sys::Oid, entity: &str, columns: &Value) -> ErpResult<Value> {
    if !ENTITIES.contains(&entity) {
        return Err(ErpSyncError::UnknownEntity(entity.to_string()));
    }
    let info = relation_info(relid, entity != "trigger")?;
    let resolved = resolve_columns(entity, columns, &info.qualname, &info.columns)?;
    check_key_types(relid, entity, &info.qualname, &resolved)?;

    // A table that was a change source is now this entity or a sync trigger: it can only be one.
    super::source::untrack_source(relid)?;
    if entity == "trigger" {
        return track_sync_trigger(relid, &info, resolved);
    }
    // A table that was a sync trigger is now this entity: it can only be one.
    untrack_sync_trigger(relid)?;
    if info.is_view {
        if !columns.as_object().is_some_and(serde_json::Map::is_empty) {
            return Err(ErpSyncError::InvalidArgument {
                message: format!("{} is a view: a payload view names its columns by the {entity} fields itself", info.qualname),
                hint: format!("leave out the column map: name the columns in the view (SELECT c.uuid AS id, ...), then erp_sync.track('{}', '{entity}')", info.qualname),
            });
        }
        if let Some(errors) = source_errors(entity, relid)? {
            return Err(ErpSyncError::InvalidArgument {
                message: format!("{} cannot be the {entity} source: {errors}", info.qualname),
                hint: format!(
                    "SELECT * FROM erp_sync.check_source('{entity}', '{}') lists every problem",
                    info.qualname
                ),
            });
        }
    }

    // A different table tracked for this entity before: detach it.
    let previous = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT relid::oid FROM erp_sync.tracked_tables WHERE entity = $1",
        &[entity.into()],
    );
    match previous {
        Ok(Some(prev)) if prev != relid => drop_trigger_on(prev)?,
        Ok(_) | Err(pgrx::spi::Error::InvalidPosition) => {}
        Err(e) => return Err(e.into()),
    }
    // This table tracked as another entity before: it can only be one.
    let was_contact = Spi::get_one_with_args::<bool>(
        "WITH d AS (DELETE FROM erp_sync.tracked_tables WHERE relid = $1::regclass AND entity <> $2 RETURNING entity) \
         SELECT coalesce(bool_or(entity = 'contact'), false) FROM d",
        &[relid.into(), entity.into()],
    )?
    .unwrap_or(false);

    let resolved_json = Value::Object(resolved.clone());
    Spi::run_with_args(
        "INSERT INTO erp_sync.tracked_tables (entity, relid, columns) VALUES ($1, $2::regclass, $3::jsonb) \
         ON CONFLICT (entity) DO UPDATE SET relid = EXCLUDED.relid, columns = EXCLUDED.columns, tracked_at = now()",
        &[entity.into(), relid.into(), resolved_json.to_string().into()],
    )?;

    if !info.is_view {
        attach_capture(relid, &info, entity, &resolved, entity != "signal")?;
    }
    config::invalidate();
    if entity == "contact" || was_contact {
        rebuild_contact_status()?;
    }
    if info.is_view {
        return Ok(
            json!({"entity": entity, "view": info.qualname, "columns": resolved_json,
            "note": "a payload view has no triggers: track the tables behind it with erp_sync.track_source()"}),
        );
    }
    Ok(json!({"entity": entity, "table": info.qualname, "columns": resolved_json}))
}

/// Forget a sync trigger table; false when it was none (or the schema is still 0.1.0's, which has
/// no sync triggers: this library also serves a database before `ALTER EXTENSION erp_sync UPDATE`).
fn untrack_sync_trigger(relid: pg_sys::Oid) -> ErpResult<bool> {
    super::relation::forget("sync_triggers", relid)
}

pub fn untrack_impl(relid: pg_sys::Oid) -> ErpResult<String> {
    let entity = Spi::get_one_with_args::<String>(
        "DELETE FROM erp_sync.tracked_tables WHERE relid = $1::regclass RETURNING entity",
        &[relid.into()],
    );
    let entity = match entity {
        Ok(Some(e)) => e,
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition) if untrack_sync_trigger(relid)? => {
            "trigger".to_string()
        }
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition)
            if super::source::untrack_source(relid)? =>
        {
            "source".to_string()
        }
        Ok(None) | Err(pgrx::spi::Error::InvalidPosition) => {
            let name = relation_info(relid, true)
                .map_or_else(|_| format!("relation {}", relid.to_u32()), |t| t.qualname);
            return Err(ErpSyncError::NotTracked(name));
        }
        Err(e) => return Err(e.into()),
    };
    drop_trigger_on(relid)?;
    config::invalidate();
    if entity == "contact" {
        rebuild_contact_status()?;
    }
    Ok(entity)
}

#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = "CREATE FUNCTION erp_sync.track(tbl regclass, entity text, columns jsonb DEFAULT '{}') RETURNS jsonb \
           VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'track_wrapper';"
)]
fn track(tbl: pg_sys::Oid, entity: Option<String>, columns: Option<JsonB>) -> JsonB {
    let entity = entity.unwrap_or_default();
    let columns = columns.map_or_else(|| json!({}), |c| c.0);
    JsonB(track_impl(tbl, &entity, &columns).or_raise())
}

#[pg_extern(
    volatile,
    strict,
    parallel_unsafe,
    sql = "CREATE FUNCTION erp_sync.untrack(tbl regclass) RETURNS text \
           VOLATILE STRICT PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'untrack_wrapper';"
)]
fn untrack(tbl: pg_sys::Oid) -> String {
    untrack_impl(tbl).or_raise()
}

/// The manual "sync now" button: re-check admission (and the khid) from the contact's current
/// row, then queue it (and wake a sidecar) or record the rejection. Returns what happened.
pub fn request_sync_impl(contact_id: &str) -> ErpResult<Value> {
    let row = match lookup::contact(contact_id)? {
        Lookup::NotTracked => return Err(ErpSyncError::NoContactTable),
        Lookup::NotFound => {
            return Err(ErpSyncError::InvalidArgument {
                message: format!("contact {contact_id} does not exist"),
                hint: "pass the id of a row of the tracked contact table".into(),
            })
        }
        Lookup::Found(row) => row,
    };
    let (verdict, khid) = lookup::verdict(contact_id, &row)?;
    let mut batch = Batch::default();
    let status = if verdict.passed {
        batch.clear_rejection(contact_id.to_string());
        batch.enqueue(contact_id.to_string(), "customer", None);
        let inserted = batch.flush(Coalesce::Arbiter)?;
        wake::wake_now()?;
        if inserted > 0 {
            "queued"
        } else {
            "already_queued"
        }
    } else {
        batch.reject(contact_id.to_string(), &verdict);
        batch.flush(Coalesce::Arbiter)?;
        "rejected"
    };
    Ok(
        json!({"contact_id": contact_id, "khid": khid, "status": status, "admission": verdict.to_json()}),
    )
}

/// `erp_sync.request_sync(contact_id text)`: the key is the text form of the contact's id
/// (`request_sync('42')`, `request_sync('0b6f2c1e-…')`).
#[pg_extern(volatile, strict, parallel_unsafe, name = "request_sync")]
fn request_sync_text(contact_id: &str) -> JsonB {
    JsonB(request_sync_impl(contact_id).or_raise())
}

/// `request_sync(bigint)` of the released 0.1.0 install script (`request_sync_wrapper`): kept
/// for a database still at 0.1.0 with this library; not part of 0.2.0's SQL.
#[pg_extern(sql = false)]
fn request_sync(contact_id: i64) -> JsonB {
    JsonB(request_sync_impl(&contact_id.to_string()).or_raise())
}

/// Statement trigger on settings / followup_templates / tracked_tables: drop the configuration
/// snapshot here now and in every backend once the change commits (relcache invalidation).
#[pg_trigger]
fn config_changed<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    match trigger.relid() {
        Ok(relid) => config::changed(relid),
        Err(_) => config::invalidate(),
    }
    Ok(None)
}
