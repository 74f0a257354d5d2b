//! Layering of the configuration sources: the TOML file over the defaults, then the
//! `ERP_SYNC_<SECTION>_<KEY>` environment over both (typed like the key it overrides).

use std::collections::BTreeMap;

use super::ENV_PREFIX;
use crate::error::{Error, Result};

/// One `ERP_SYNC_<SECTION>_<KEY>` variable, split.
#[derive(Debug)]
pub(super) struct Override {
    var: String,
    section: String,
    key: String,
    value: String,
}

const SECTIONS: [&str; 8] = [
    "database",
    "erp",
    "engine",
    "log",
    "http",
    "alerts",
    "retention",
    "schedule",
];
/// `ERP_SYNC_*` variables that are not configuration keys: the `--config` path, the test
/// harness's binary path, and the simulator's own settings.
const NOT_KEYS: [&str; 2] = ["CONFIG", "BIN"];
const NOT_KEY_PREFIXES: [&str; 1] = ["SIM_"];

pub(super) fn env_overrides(env: &[(String, String)]) -> Result<Vec<Override>> {
    let mut out = Vec::new();
    let mut sorted: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in env {
        sorted.insert(k.as_str(), v.as_str());
    }
    for (var, value) in sorted {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if NOT_KEYS.contains(&rest) || NOT_KEY_PREFIXES.iter().any(|p| rest.starts_with(p)) {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = SECTIONS.iter().find_map(|s| {
            lower
                .strip_prefix(&format!("{s}_"))
                .map(|k| (s.to_string(), k.to_string()))
        }) else {
            return Err(Error::Config(format!(
                "unknown environment variable {var}: expected {ENV_PREFIX}<DATABASE|ERP|ENGINE|LOG|HTTP|ALERTS|RETENTION|SCHEDULE>_<KEY>"
            )));
        };
        if key.is_empty() {
            return Err(Error::Config(format!(
                "environment variable {var} names no key"
            )));
        }
        out.push(Override {
            var: var.to_string(),
            section,
            key,
            value: value.to_string(),
        });
    }
    Ok(out)
}

/// Put one override into the tree. Returns whether the key existed. Keys that do not exist are
/// added (as a string, or as a typed scalar when `typed_absent`) and rejected later by
/// `deny_unknown_fields` if the struct has no such field.
pub(super) fn apply_override(
    tree: &mut toml::Value,
    ov: &Override,
    typed_absent: bool,
) -> Result<bool> {
    let section = tree
        .get_mut(&ov.section)
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| Error::Config(format!("{}: no section {}", ov.var, ov.section)))?;
    let (path, key) = locate(section, &ov.key);
    let mut table = section;
    for p in &path {
        table = table
            .get_mut(p)
            .and_then(toml::Value::as_table_mut)
            .ok_or_else(|| Error::Config(format!("{}: no table {p}", ov.var)))?;
    }
    let existing = table.get(&key).cloned();
    let existed = existing.is_some();
    let value = match existing {
        Some(old) => {
            typed_like(&old, &ov.value).map_err(|m| Error::Config(format!("{}: {m}", ov.var)))?
        }
        None if typed_absent => scalar_guess(&ov.value),
        None => toml::Value::String(ov.value.clone()),
    };
    table.insert(key, value);
    Ok(existed)
}

/// Find where `key` (underscore-joined path) lives: an existing key here, else inside a sub-table
/// whose name is a prefix (`followup_template_field` → `[followup] template_field`), else here.
/// Returns the sub-table path and the final key.
fn locate(table: &toml::Table, key: &str) -> (Vec<String>, String) {
    if table.contains_key(key) {
        return (Vec::new(), key.to_string());
    }
    let sub = table
        .iter()
        .filter(|(k, v)| v.is_table() && key.starts_with(&format!("{k}_")))
        .max_by_key(|(k, _)| k.len());
    match sub {
        Some((k, toml::Value::Table(t))) => {
            let (mut path, last) = locate(t, &key[k.len() + 1..]);
            path.insert(0, k.clone());
            (path, last)
        }
        _ => (Vec::new(), key.to_string()),
    }
}

/// Remove `erp.password_file` from a tree (see [`Config::erp_password_file`]).
pub(super) fn take_erp_password_file(mut tree: toml::Value) -> Result<(toml::Value, String)> {
    let Some(erp) = tree.get_mut("erp").and_then(toml::Value::as_table_mut) else {
        return Ok((tree, String::new()));
    };
    match erp.remove("password_file") {
        None => Ok((tree, String::new())),
        Some(toml::Value::String(s)) => Ok((tree, s)),
        Some(_) => Err(Error::Config("erp.password_file must be a string".into())),
    }
}

fn typed_like(old: &toml::Value, raw: &str) -> std::result::Result<toml::Value, String> {
    use toml::Value as V;
    Ok(match old {
        V::String(_) => V::String(raw.to_string()),
        V::Integer(_) => V::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected an integer, got {raw:?}"))?,
        ),
        V::Float(_) => V::Float(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected a number, got {raw:?}"))?,
        ),
        V::Boolean(_) => {
            V::Boolean(parse_bool(raw).ok_or_else(|| format!("expected true/false, got {raw:?}"))?)
        }
        V::Array(_) | V::Table(_) | V::Datetime(_) => {
            // Parse as a TOML value: `[1, 2]`, `{ a = 1 }`, ...
            let doc: toml::Value =
                toml::from_str(&format!("v = {raw}")).map_err(|e| e.to_string())?;
            doc.get("v")
                .cloned()
                .ok_or_else(|| "empty value".to_string())?
        }
    })
}

fn scalar_guess(raw: &str) -> toml::Value {
    if let Ok(i) = raw.trim().parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.trim().parse::<f64>() {
        return toml::Value::Float(f);
    }
    if let Some(b) = parse_bool(raw) {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(raw.to_string())
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Deep merge: tables merge key by key, anything else replaces.
pub(super) fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}
