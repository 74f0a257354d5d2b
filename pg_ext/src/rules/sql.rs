//! SQL surface of the rules (`erp_sync_rules`). Volatility is honest: functions that read a
//! settings or template table are STABLE; pure ones are IMMUTABLE.

use crate::config;
use crate::error::OrRaise;
use erp_sync_rules::admission::{evaluate_json, AdmissionSettings};
use erp_sync_rules::assignment::tier_for;
use erp_sync_rules::settings::DEFAULTS;
use erp_sync_rules::templates::pick_template;
use erp_sync_rules::{mask, mobile, score};
use pgrx::prelude::*;
use pgrx::JsonB;

/// Admission with the thresholds from erp_sync.settings (STABLE: it reads them).
#[pg_extern(stable, strict, parallel_safe)]
fn admission_check(contact: JsonB) -> JsonB {
    let s = config::admission_settings().or_raise();
    JsonB(evaluate_json(&contact.0, &s))
}

/// Pure admission with explicit thresholds and none of the optional requirements (IMMUTABLE).
#[pg_extern(immutable, strict, parallel_safe)]
fn admission_evaluate(contact: JsonB, min_name_chars: i32, min_score: f64) -> JsonB {
    JsonB(evaluate_json(
        &contact.0,
        &AdmissionSettings {
            min_name_chars: min_name_chars.into(),
            min_score,
            ..AdmissionSettings::default()
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

/// Every mobile inside a free text masked, whatever its notation (`+86 139-0000-0779` →
/// `+86 139****0779`); the views apply it to every text a reader can see.
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_text(value: &str) -> String {
    mask::mask_text(value)
}

/// `mask_text` on every string (and object key) of a jsonb value; numbers that read as a
/// mobile become their masked string.
#[pg_extern(immutable, strict, parallel_safe)]
fn mask_jsonb(value: JsonB) -> JsonB {
    JsonB(mask::mask_json(&value.0))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn mask_account(account: &str) -> String {
    mask::mask_account(account)
}

/// The ERP customer number of the contact with key `contact_id` (the text form of its id) under
/// `customer.khid_format` (`WX{key}` by default; STABLE: it reads the setting). NULL when the
/// format gives no khid the ERP keeps as sent (over 50 characters, no `{key}`): such a contact is
/// rejected, with the reason, in `erp_sync.rejections`. SECURITY DEFINER (pinned search_path):
/// `contact_status` calls it for every reader, who may not read `erp_sync.settings` itself; it
/// reads nothing but that setting.
#[pg_extern(stable, strict, security_definer, parallel_safe, name = "khid")]
#[search_path(pg_catalog, pg_temp)]
fn khid_text(contact_id: &str) -> Option<String> {
    erp_sync_rules::khid(contact_id, &config::khid_format().or_raise()).ok()
}

/// `khid(bigint)` of the released 0.1.0 install script (`khid_wrapper`, used by its
/// `contact_status`): kept for a database still at 0.1.0 with this library; not in 0.2.0's SQL.
#[pg_extern(sql = false)]
fn khid(contact_id: i64) -> Option<String> {
    erp_sync_rules::khid(&contact_id.to_string(), &config::khid_format().or_raise()).ok()
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
