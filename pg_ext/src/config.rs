//! Per-transaction snapshot of the extension's configuration tables (settings, follow-up
//! templates, tracked tables) and the "already woke the sidecar" flag.
//!
//! The capture trigger runs once per platform row, so it must not re-read these tables every
//! time: they are loaded once per local transaction id and dropped when the next transaction
//! starts. Changes made inside the current transaction are seen too: a statement trigger on each
//! of those tables calls `erp_sync.config_changed()`, which clears the snapshot.

use crate::rules::admission::AdmissionSettings;
use crate::rules::settings::default_for;
use crate::rules::templates::Template;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// One row of `erp_sync.tracked_tables`, resolved.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub entity: String,
    /// `schema.table`, quoted with `format('%I.%I')`.
    pub qualname: String,
    /// spec field name → column name
    pub columns: HashMap<String, String>,
    /// column name → SQL type (`format_type`)
    pub types: HashMap<String, String>,
}

#[derive(Default)]
struct TxCache {
    lxid: Option<u32>,
    settings: Option<Rc<HashMap<String, String>>>,
    templates: Option<Rc<Vec<Template>>>,
    tracked: Option<Rc<HashMap<String, Tracked>>>,
    wake_checked: bool,
}

thread_local! {
    static CACHE: RefCell<TxCache> = RefCell::new(TxCache::default());
}

fn current_lxid() -> u32 {
    // SAFETY: MyProc is set for every backend that can run SQL.
    unsafe { (*pg_sys::MyProc).lxid }
}

/// Run `f` on the cache of the current transaction (resetting it when the transaction changed).
/// Never call SPI inside `f`: SPI may fire triggers that use the cache again.
fn with_cache<R>(f: impl FnOnce(&mut TxCache) -> R) -> R {
    let lxid = current_lxid();
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.lxid != Some(lxid) {
            *c = TxCache { lxid: Some(lxid), ..TxCache::default() };
        }
        f(&mut c)
    })
}

/// Drop the snapshot (settings, templates, tracked tables changed in this transaction).
pub fn invalidate() {
    CACHE.with(|c| *c.borrow_mut() = TxCache::default());
}

fn load_settings() -> SpiResult<HashMap<String, String>> {
    Spi::connect(|client| {
        let mut map = HashMap::new();
        for row in client.select("SELECT key, value FROM erp_sync.settings", None, &[])? {
            if let (Some(k), Some(v)) = (row.get::<String>(1)?, row.get::<String>(2)?) {
                map.insert(k, v);
            }
        }
        Ok(map)
    })
}

fn settings() -> SpiResult<Rc<HashMap<String, String>>> {
    if let Some(s) = with_cache(|c| c.settings.clone()) {
        return Ok(s);
    }
    let s = Rc::new(load_settings()?);
    with_cache(|c| c.settings = Some(Rc::clone(&s)));
    Ok(s)
}

/// The value of a setting: the row in `erp_sync.settings`, else the documented default.
pub fn setting(key: &str) -> SpiResult<Option<String>> {
    Ok(settings()?.get(key).cloned().or_else(|| default_for(key).map(str::to_string)))
}

/// A numeric setting; an unparsable value falls back to the default with a WARNING.
pub fn setting_num(key: &str) -> SpiResult<f64> {
    let fallback = default_for(key).and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0);
    match setting(key)? {
        Some(v) => match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(n),
            _ => {
                pgrx::warning!("erp_sync: setting {key} = {v:?} is not a number; using {fallback}");
                Ok(fallback)
            }
        },
        None => Ok(fallback),
    }
}

pub fn admission_settings() -> SpiResult<AdmissionSettings> {
    Ok(AdmissionSettings {
        min_name_chars: setting_num("admission.min_name_chars")? as i64,
        min_score: setting_num("admission.min_score")?,
    })
}

pub fn tier_thresholds() -> SpiResult<(i64, i64)> {
    Ok((setting_num("assign.top_min")? as i64, setting_num("assign.regular_min")? as i64))
}

fn load_templates() -> SpiResult<Vec<Template>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        let sql = "SELECT template_id, keywords FROM erp_sync.followup_templates \
                   ORDER BY priority, template_id";
        for row in client.select(sql, None, &[])? {
            if let Some(id) = row.get::<i32>(1)? {
                let words: Vec<Option<String>> = row.get::<Vec<Option<String>>>(2)?.unwrap_or_default();
                out.push(Template { template_id: id, keywords: words.into_iter().flatten().collect() });
            }
        }
        Ok(out)
    })
}

pub fn templates() -> SpiResult<Rc<Vec<Template>>> {
    if let Some(t) = with_cache(|c| c.templates.clone()) {
        return Ok(t);
    }
    let t = Rc::new(load_templates()?);
    with_cache(|c| c.templates = Some(Rc::clone(&t)));
    Ok(t)
}

fn load_tracked() -> SpiResult<HashMap<String, Tracked>> {
    Spi::connect(|client| {
        let mut out = HashMap::new();
        let sql = "SELECT t.entity, format('%I.%I', n.nspname, c.relname), t.columns::text, \
                   (SELECT jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod)) \
                    FROM pg_catalog.pg_attribute a \
                    WHERE a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped)::text \
                   FROM erp_sync.tracked_tables t \
                   JOIN pg_catalog.pg_class c ON c.oid = t.relid \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";
        for row in client.select(sql, None, &[])? {
            let (Some(entity), Some(qualname)) = (row.get::<String>(1)?, row.get::<String>(2)?) else {
                continue;
            };
            let columns = string_map(row.get::<String>(3)?);
            let types = string_map(row.get::<String>(4)?);
            out.insert(entity.clone(), Tracked { entity, qualname, columns, types });
        }
        Ok(out)
    })
}

/// A JSON object of strings (as text) to a map; anything else gives an empty map.
fn string_map(text: Option<String>) -> HashMap<String, String> {
    text.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|m| m.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string()))).collect())
        .unwrap_or_default()
}

/// The table tracked for `entity`, if any.
pub fn tracked(entity: &str) -> SpiResult<Option<Tracked>> {
    if let Some(t) = with_cache(|c| c.tracked.clone()) {
        return Ok(t.get(entity).cloned());
    }
    let t = Rc::new(load_tracked()?);
    with_cache(|c| c.tracked = Some(Rc::clone(&t)));
    Ok(t.get(entity).cloned())
}

/// True the first time it is called in a transaction: the wake-up check runs once per transaction.
pub fn first_wake_check() -> bool {
    with_cache(|c| !std::mem::replace(&mut c.wake_checked, true))
}
