//! SQL surface of the rules. Volatility is honest: functions that read a settings or template
//! table are STABLE; pure ones are IMMUTABLE.

use super::admission::{evaluate_json, AdmissionSettings};
use super::assignment::tier_for;
use super::mask;
use super::mobile;
use super::score;
use super::settings::DEFAULTS;
use super::templates::pick_template;
use crate::config;
use crate::error::OrRaise;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Admission with the thresholds from erp_sync.settings (STABLE: it reads them).
#[pg_extern(stable, strict, parallel_safe)]
fn admission_check(contact: JsonB) -> JsonB {
    let s = config::admission_settings().or_raise();
    JsonB(evaluate_json(&contact.0, &s))
}

/// Pure admission with explicit thresholds (IMMUTABLE).
#[pg_extern(immutable, strict, parallel_safe)]
fn admission_evaluate(contact: JsonB, min_name_chars: i32, min_score: f64) -> JsonB {
    JsonB(evaluate_json(
        &contact.0,
        &AdmissionSettings {
            min_name_chars: min_name_chars.into(),
            min_score,
        },
    ))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn normalize_mobile(phone: &str) -> Option<String> {
    mobile::normalize_mobile(phone)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn mask_mobile(phone: &str) -> String {
    mask::mask_mobile(phone)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn mask_account(account: &str) -> String {
    mask::mask_account(account)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn khid(contact_id: i64) -> String {
    super::khid(contact_id)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn score_to_value(score: i32) -> i32 {
    score::score_to_value(score.into())
}

#[pg_extern(stable, strict, parallel_safe)]
fn select_template(content: &str) -> i32 {
    let default = config::setting_num("template.default").or_raise() as i32;
    pick_template(content, &config::templates().or_raise(), default)
}

#[pg_extern(stable, strict, parallel_safe)]
fn assignment_for(score: i32) -> &'static str {
    let (top, regular) = config::tier_thresholds().or_raise();
    tier_for(Some(score.into()), top, regular)
}

/// The value of a setting, or its documented default; NULL for an unknown key.
#[pg_extern(stable, strict, parallel_safe)]
fn setting(key: &str) -> Option<String> {
    config::setting(key).or_raise()
}

/// The documented defaults (see the view erp_sync.settings_effective).
#[pg_extern(immutable, parallel_safe)]
fn setting_defaults() -> TableIterator<
    'static,
    (
        name!(key, String),
        name!(default_value, String),
        name!(description, String),
    ),
> {
    TableIterator::new(DEFAULTS.iter().map(|d| {
        (
            d.key.to_string(),
            d.default.to_string(),
            d.description.to_string(),
        )
    }))
}

/// Same as `assignment_for(int)` for fractional scores (the sidecar binds float8).
#[pg_extern(stable, strict, parallel_safe, name = "assignment_for")]
fn assignment_for_float(score: f64) -> &'static str {
    let (top, regular) = config::tier_thresholds().or_raise();
    let whole = if score.is_finite() {
        Some(score.floor() as i64)
    } else {
        None
    };
    tier_for(whole, top, regular)
}
