//! Snapshot of the extension's configuration tables (settings, follow-up templates, tracked
//! tables).
//!
//! The capture trigger runs for every platform write, so it must not re-read these tables every
//! time. The snapshot lives across transactions and is dropped by a relcache invalidation
//! callback: a statement trigger on each configuration table (`erp_sync.config_changed()`)
//! registers a relcache invalidation of that table, which every backend processes after the
//! change commits (and the changing backend at once, and again if it rolls back). DDL on a
//! tracked table (columns renamed, retyped, trigger re-created) invalidates it the same way.

use erp_sync_rules::admission::AdmissionSettings;
use erp_sync_rules::settings::default_for;
use erp_sync_rules::templates::Template;
use pgrx::prelude::*;
use pgrx::spi::SpiResult;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// One row of `erp_sync.tracked_tables`, resolved to the statements that read its rows.
#[derive(Debug)]
pub struct Tracked {
    /// key field (`id`, `contact_id`) → the statement reading the newest row by that key
    /// ([`lookup_sql`]), built once per reload instead of once per read
    pub lookups: HashMap<&'static str, String>,
}

/// entity → its tracked table
type TrackedTables = HashMap<String, Rc<Tracked>>;

/// A tracked table as `load_tracked` reads it: what [`lookup_sql`] is built from.
struct TrackedTable {
    entity: String,
    /// `schema.table`, quoted with `format('%I.%I')`.
    qualname: String,
    /// spec field name → column name
    columns: HashMap<String, String>,
    /// column name → SQL type (`format_type`) of the table's live columns
    types: HashMap<String, String>,
}

/// `SELECT` of the newest row (by `id`) whose `key_field` column equals `$1` (text, cast to the
/// column's own type so that its index is used), as a JSON object of the entity's spec fields.
/// `json_build_object` of the mapped columns only: no sort of the keys (as `to_jsonb` does) and
/// no renaming of column names afterwards. A mapped column the table no longer has (dropped after
/// `track()`) reads as NULL, so the payload still says what is missing.
fn lookup_sql(t: &TrackedTable, key_field: &str) -> Option<String> {
    // the column a field maps to and its type, if the table still has it
    let live = |field: &str| {
        let c = t.columns.get(field)?;
        Some((c, t.types.get(c)?))
    };
    let (key_col, key_type) = live(key_field)?;
    let (id_col, _) = live("id")?;
    let q = pgrx::spi::quote_identifier;
    let object = crate::entities::fields(&t.entity)
        .iter()
        .filter(|f| t.columns.contains_key(**f))
        .map(|f| match live(f) {
            Some((c, _)) => format!("'{f}', x.{}", q(c)),
            None => format!("'{f}', NULL"),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "SELECT pg_catalog.json_build_object({object})::text FROM {tbl} x \
         WHERE x.{key} = $1::{key_type} ORDER BY x.{id} DESC LIMIT 1",
        tbl = t.qualname,
        key = q(key_col),
        id = q(id_col),
    ))
}

#[derive(Default)]
struct Snapshot {
    settings: Option<Rc<HashMap<String, String>>>,
    templates: Option<Rc<Vec<Template>>>,
    tracked: Option<Rc<TrackedTables>>,
    /// relations whose relcache invalidation drops the snapshot
    watched: Vec<pg_sys::Oid>,
}

thread_local! {
    static SNAPSHOT: RefCell<Snapshot> = RefCell::new(Snapshot::default());
    /// set by the invalidation callback when the snapshot was borrowed at that moment
    static STALE: Cell<bool> = const { Cell::new(false) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    SNAPSHOT.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => {
            if relid == pg_sys::InvalidOid || s.watched.contains(&relid) {
                *s = Snapshot::default();
            }
        }
        Err(_) => STALE.with(|f| f.set(true)),
    });
}

fn ensure_callback() {
    if !CALLBACK_REGISTERED.with(Cell::get) {
        // SAFETY: registered once per backend; the callback only touches thread-locals.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(
                Some(relcache_changed),
                pg_sys::Datum::from(0usize),
            )
        };
        CALLBACK_REGISTERED.with(|r| r.set(true));
    }
}

/// Run `f` on the snapshot. Never call SPI inside `f` (SPI may process invalidations).
fn with_snapshot<R>(f: impl FnOnce(&mut Snapshot) -> R) -> R {
    ensure_callback();
    SNAPSHOT.with(|s| {
        let mut s = s.borrow_mut();
        if STALE.with(|f| f.replace(false)) {
            *s = Snapshot::default();
        }
        f(&mut s)
    })
}

/// Drop the snapshot in this backend now.
pub fn invalidate() {
    SNAPSHOT.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => *s = Snapshot::default(),
        Err(_) => STALE.with(|f| f.set(true)),
    });
}

/// A configuration table changed: drop the snapshot here and, at commit, in every backend.
pub fn changed(relid: pg_sys::Oid) {
    invalidate();
    // SAFETY: plain cache invalidation request for an existing relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}

/// Planner settings a caller may have turned off for its own statement, set back to `on` while
/// the snapshot is re-read. The sidecar's claim turns sequential and bitmap scans off (its plan
/// must stay on `outbox_claim_idx`) and computes payloads inside that transaction; a reload there
/// (after any relcache invalidation of a tracked table, e.g. an ANALYZE) planned these catalog
/// queries under its settings and took ~110 ms instead of ~1 ms.
const PLANNER_DEFAULTS: [&std::ffi::CStr; 2] = [c"enable_seqscan", c"enable_bitmapscan"];

/// Run a reload under [`PLANNER_DEFAULTS`], the way `SET` clauses of a function apply: a new
/// GUC nest level, popped afterwards (and by the (sub)transaction's abort on an error).
pub(crate) fn reload<T>(f: impl FnOnce() -> SpiResult<T>) -> SpiResult<T> {
    // SAFETY: plain GUC assignments at a fresh nest level; AtEOXact_GUC pops exactly that level.
    let level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        for name in PLANNER_DEFAULTS {
            pg_sys::set_config_option(
                name.as_ptr(),
                c"on".as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
        level
    };
    let out = f();
    // SAFETY: pops the level pushed above (isCommit = true keeps nothing: all SAVE actions).
    unsafe { pg_sys::AtEOXact_GUC(true, level) };
    out
}

/// The part of the snapshot that `slot` selects, (re)loaded by `load` when an invalidation dropped
/// it. `load` also returns the relations (besides the configuration tables) whose invalidation
/// drops the snapshot again. Loads run under [`reload`].
fn cached<T>(
    slot: fn(&mut Snapshot) -> &mut Option<Rc<T>>,
    load: impl FnOnce() -> SpiResult<(T, Vec<pg_sys::Oid>)>,
) -> SpiResult<Rc<T>> {
    if let Some(v) = with_snapshot(|s| slot(s).clone()) {
        return Ok(v);
    }
    let (mut watch, (value, relids)) = reload(|| Ok((watch_config_tables()?, load()?)))?;
    watch.extend(relids);
    let value = Rc::new(value);
    add_watched(&watch);
    with_snapshot(|s| *slot(s) = Some(Rc::clone(&value)));
    Ok(value)
}

fn watch_config_tables() -> SpiResult<Vec<pg_sys::Oid>> {
    Spi::connect(|client| {
        let mut oids = Vec::new();
        let sql = "SELECT c.oid FROM pg_catalog.pg_class c \
                   WHERE c.relnamespace = 'erp_sync'::regnamespace \
                     AND c.relname IN ('settings', 'followup_templates', 'tracked_tables')";
        for row in client.select(sql, None, &[])? {
            if let Some(oid) = row.get::<pg_sys::Oid>(1)? {
                oids.push(oid);
            }
        }
        Ok(oids)
    })
}

fn add_watched(oids: &[pg_sys::Oid]) {
    with_snapshot(|s| {
        for oid in oids {
            if !s.watched.contains(oid) {
                s.watched.push(*oid);
            }
        }
    });
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
    cached(|s| &mut s.settings, || Ok((load_settings()?, Vec::new())))
}

/// The value of a setting: the row in `erp_sync.settings`, else the documented default.
pub fn setting(key: &str) -> SpiResult<Option<String>> {
    Ok(settings()?
        .get(key)
        .cloned()
        .or_else(|| default_for(key).map(str::to_string)))
}

/// A numeric setting; an unparsable value falls back to the default with a WARNING.
pub fn setting_num(key: &str) -> SpiResult<f64> {
    let fallback = default_for(key)
        .and_then(|d| d.parse::<f64>().ok())
        .unwrap_or(0.0);
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

/// A boolean setting (`true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`, any case); anything else
/// falls back to the default with a WARNING.
pub fn setting_bool(key: &str) -> SpiResult<bool> {
    let parse = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" | "t" => Some(true),
        "false" | "off" | "no" | "0" | "f" => Some(false),
        _ => None,
    };
    let fallback = default_for(key).and_then(parse).unwrap_or(false);
    match setting(key)? {
        Some(v) => Ok(parse(&v).unwrap_or_else(|| {
            pgrx::warning!("erp_sync: setting {key} = {v:?} is not a boolean; using {fallback}");
            fallback
        })),
        None => Ok(fallback),
    }
}

pub fn admission_settings() -> SpiResult<AdmissionSettings> {
    Ok(AdmissionSettings {
        min_name_chars: setting_num("admission.min_name_chars")? as i64,
        min_score: setting_num("admission.min_score")?,
        require_address: setting_bool("admission.require_address")?,
        require_wechat: setting_bool("admission.require_wechat")?,
        require_conversation: setting_bool("admission.require_conversation")?,
    })
}

/// `customer.khid_format` (`WX{key}` by default), for `erp_sync_rules::customer::khid`.
pub fn khid_format() -> SpiResult<String> {
    use erp_sync_rules::customer::{DEFAULT_KHID_FORMAT, KHID_FORMAT_SETTING};
    Ok(setting(KHID_FORMAT_SETTING)?.unwrap_or_else(|| DEFAULT_KHID_FORMAT.to_string()))
}

pub fn tier_thresholds() -> SpiResult<(i64, i64)> {
    Ok((
        setting_num("assign.top_min")? as i64,
        setting_num("assign.regular_min")? as i64,
    ))
}

fn load_templates() -> SpiResult<Vec<Template>> {
    Spi::connect(|client| {
        let mut out = Vec::new();
        let sql = "SELECT template_id, keywords FROM erp_sync.followup_templates \
                   ORDER BY priority, template_id";
        for row in client.select(sql, None, &[])? {
            if let Some(id) = row.get::<i32>(1)? {
                let words: Vec<Option<String>> =
                    row.get::<Vec<Option<String>>>(2)?.unwrap_or_default();
                out.push(Template {
                    template_id: id,
                    keywords: words.into_iter().flatten().collect(),
                });
            }
        }
        Ok(out)
    })
}

pub fn templates() -> SpiResult<Rc<Vec<Template>>> {
    cached(|s| &mut s.templates, || Ok((load_templates()?, Vec::new())))
}

fn load_tracked() -> SpiResult<(TrackedTables, Vec<pg_sys::Oid>)> {
    Spi::connect(|client| {
        let mut out = HashMap::new();
        let mut relids = Vec::new();
        let sql = "SELECT t.entity, format('%I.%I', n.nspname, c.relname), t.columns::text, \
                   (SELECT jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod)) \
                    FROM pg_catalog.pg_attribute a \
                    WHERE a.attrelid = t.relid AND a.attnum > 0 AND NOT a.attisdropped)::text, \
                   c.oid \
                   FROM erp_sync.tracked_tables t \
                   JOIN pg_catalog.pg_class c ON c.oid = t.relid \
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";
        for row in client.select(sql, None, &[])? {
            let (Some(entity), Some(qualname)) = (row.get::<String>(1)?, row.get::<String>(2)?)
            else {
                continue;
            };
            let columns = string_map(row.get::<String>(3)?);
            let types = string_map(row.get::<String>(4)?);
            if let Some(oid) = row.get::<pg_sys::Oid>(5)? {
                relids.push(oid);
            }
            let table = TrackedTable {
                entity,
                qualname,
                columns,
                types,
            };
            let lookups = ["id", "contact_id"]
                .into_iter()
                .filter_map(|key| lookup_sql(&table, key).map(|sql| (key, sql)))
                .collect();
            out.insert(table.entity, Rc::new(Tracked { lookups }));
        }
        Ok((out, relids))
    })
}

/// A JSON object of strings (as text) to a map; anything else gives an empty map.
fn string_map(text: Option<String>) -> HashMap<String, String> {
    text.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The table tracked for `entity`, if any.
pub fn tracked(entity: &str) -> SpiResult<Option<Rc<Tracked>>> {
    Ok(cached(|s| &mut s.tracked, load_tracked)?
        .get(entity)
        .cloned())
}
