//! Admission: may this contact be created in the ERP? (spec "准入检查" + strategy section)
//!
//! Checks (all must pass):
//! * `has_mobile`     `phone` is text and normalises to a mainland mobile
//! * `has_name`       `name` is text with more than `admission.min_name_chars` characters (default 2)
//! * `is_verified`    `phone_verified` is boolean `true`
//! * `score_pass`     `score` is a number ≥ `admission.min_score` (default 60); a number given as
//!   text (`'85'`, `' 85 '`, `'85.0'`) counts as that number, other text fails with the reason
//! * `has_company`    `type` is `company` or `personal`; `company` is required (non-blank) for `company`
//! * `is_whitelisted` when a `list_status` value is present at all, it must be `white`
//!   (a contact on the grey list is captured but not admitted; the grey→white upgrade admits it)
//!
//! The spec's optional quality requirements, each off by default and checked only when its
//! setting is `true` (each with its own reason):
//! * `has_address`      (`admission.require_address`)      `address` is non-blank text (有详细地址)
//! * `has_wechat`       (`admission.require_wechat`)       `wechat_id` is non-blank text (有微信号)
//! * `has_conversation` (`admission.require_conversation`) the contact has at least one signal
//!   (有沟通记录); the caller looks it up and sets [`ContactView::conversation`]
//!
//! Missing keys, NULLs and wrong types fail the check with a short reason; nothing here panics.
//! Platform values quoted in a reason are masked (a phone with [`mask_mobile`], other texts with
//! [`mask_text`]) before they are shortened.

use crate::mask::{mask_mobile, mask_text};
use crate::mobile::normalize_mobile;
use crate::numbers::{format_number, parse_number};
use serde_json::{json, Map, Value};

/// A field value as the rules see it, independent of where it came from (jsonb or a heap tuple).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Missing,
    Null,
    Text(String),
    Number(f64),
    Bool(bool),
    /// Some other type (array, object, date, ...); the name is shown in the reason.
    Other(&'static str),
}

impl Val {
    pub fn from_json(v: Option<&Value>) -> Val {
        match v {
            None => Val::Missing,
            Some(Value::Null) => Val::Null,
            Some(Value::String(s)) => Val::Text(s.clone()),
            Some(Value::Number(n)) => n.as_f64().map_or(Val::Other("number"), Val::Number),
            Some(Value::Bool(b)) => Val::Bool(*b),
            Some(Value::Array(_)) => Val::Other("array"),
            Some(Value::Object(_)) => Val::Other("object"),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Val::Missing => "missing",
            Val::Null => "null",
            Val::Text(_) => "text",
            Val::Number(_) => "number",
            Val::Bool(_) => "boolean",
            Val::Other(t) => t,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Val::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// The fields admission looks at.
#[derive(Debug, Clone)]
pub struct ContactView {
    pub phone: Val,
    pub name: Val,
    pub phone_verified: Val,
    pub score: Val,
    pub kind: Val,
    pub company: Val,
    pub list_status: Val,
    pub address: Val,
    pub wechat_id: Val,
    /// Has the contact at least one signal? `None`: not looked up (only needed when
    /// `require_conversation` is on; then `None` fails the check as "not known").
    pub conversation: Option<bool>,
}

impl ContactView {
    pub fn from_json(obj: &Map<String, Value>) -> ContactView {
        let g = |k: &str| Val::from_json(obj.get(k));
        ContactView {
            phone: g("phone"),
            name: g("name"),
            phone_verified: g("phone_verified"),
            score: g("score"),
            kind: g("type"),
            company: g("company"),
            list_status: g("list_status"),
            address: g("address"),
            wechat_id: g("wechat_id"),
            // a caller that looked it up may say so in the object (erp_sync.admission_check)
            conversation: obj.get("has_conversation").and_then(Value::as_bool),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct AdmissionSettings {
    pub min_name_chars: i64,
    pub min_score: f64,
    pub require_address: bool,
    pub require_wechat: bool,
    pub require_conversation: bool,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            min_name_chars: 2,
            min_score: 60.0,
            require_address: false,
            require_wechat: false,
            require_conversation: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub passed: bool,
    /// (check name, passed), in the documented order.
    pub checks: Vec<(&'static str, bool)>,
    pub reasons: Vec<String>,
}

impl Admission {
    pub fn checks_json(&self) -> Value {
        Value::Object(
            self.checks
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Bool(*v)))
                .collect(),
        )
    }

    pub fn reasons_json(&self) -> Value {
        Value::Array(self.reasons.iter().cloned().map(Value::String).collect())
    }

    pub fn to_json(&self) -> Value {
        json!({"passed": self.passed, "checks": self.checks_json(), "reasons": self.reasons_json()})
    }
}

/// Shorten user data shown inside a reason (100 KB names stay out of the rejection table).
fn clip(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

fn wrong(field: &str, expected: &str, v: &Val) -> String {
    match v {
        Val::Missing => format!("{field}: missing"),
        Val::Null => format!("{field}: is null"),
        _ => format!("{field}: expected {expected}, got {}", v.type_name()),
    }
}

pub fn evaluate(c: &ContactView, s: &AdmissionSettings) -> Admission {
    let mut checks = Vec::with_capacity(6);
    let mut reasons = Vec::new();
    let mut check = |name: &'static str, result: Result<(), String>| {
        checks.push((name, result.is_ok()));
        if let Err(r) = result {
            reasons.push(r);
        }
    };

    check(
        "has_mobile",
        match &c.phone {
            Val::Text(p) => match normalize_mobile(p) {
                Some(_) => Ok(()),
                None if p.trim().is_empty() => Err("phone: empty".into()),
                None => Err(format!(
                    "phone: not a valid mainland mobile: {}",
                    mask_mobile(&clip(p, 32))
                )),
            },
            v => Err(wrong("phone", "text", v)),
        },
    );

    check(
        "has_name",
        match &c.name {
            Val::Text(n) => {
                let len = n.trim().chars().count() as i64;
                if len > s.min_name_chars {
                    Ok(())
                } else {
                    Err(format!(
                        "name: too short ({len} characters, need more than {})",
                        s.min_name_chars
                    ))
                }
            }
            v => Err(wrong("name", "text", v)),
        },
    );

    check(
        "is_verified",
        match &c.phone_verified {
            Val::Bool(true) => Ok(()),
            Val::Bool(false) => Err("phone_verified: phone not verified".into()),
            v => Err(wrong("phone_verified", "boolean", v)),
        },
    );

    check(
        "score_pass",
        match score_of(&c.score) {
            Ok(n) if n >= s.min_score => Ok(()),
            Ok(n) => Err(format!(
                "score: {} is below the minimum {}",
                format_number(n),
                format_number(s.min_score)
            )),
            Err(r) => Err(r),
        },
    );

    check(
        "has_company",
        match (&c.kind, &c.company) {
            (Val::Text(t), _) if t == "personal" => Ok(()),
            (Val::Text(t), Val::Text(co)) if t == "company" && !co.trim().is_empty() => Ok(()),
            (Val::Text(t), _) if t == "company" => {
                Err("company: required for a company customer".into())
            }
            (Val::Text(t), _) => Err(format!(
                "type: must be 'company' or 'personal', got '{}'",
                clip(&mask_text(t), 20)
            )),
            (v, _) => Err(wrong("type", "text 'company' or 'personal'", v)),
        },
    );

    check(
        "is_whitelisted",
        match &c.list_status {
            Val::Missing => Ok(()),
            Val::Text(t) if t == "white" => Ok(()),
            Val::Text(t) => Err(format!(
                "list_status: '{}' is not 'white'",
                clip(&mask_text(t), 20)
            )),
            Val::Null => Err("list_status: is null (must be 'white')".into()),
            v => Err(wrong("list_status", "text", v)),
        },
    );

    if s.require_address {
        check(
            "has_address",
            non_blank(
                "address",
                &c.address,
                "no detailed address (admission.require_address)",
            ),
        );
    }
    if s.require_wechat {
        check(
            "has_wechat",
            non_blank(
                "wechat_id",
                &c.wechat_id,
                "no WeChat id (admission.require_wechat)",
            ),
        );
    }
    if s.require_conversation {
        check(
            "has_conversation",
            match c.conversation {
                Some(true) => Ok(()),
                Some(false) => Err(
                    "conversation: no communication record yet (admission.require_conversation)"
                        .into(),
                ),
                None => Err(
                    "conversation: could not be looked up (admission.require_conversation)".into(),
                ),
            },
        );
    }

    Admission {
        passed: reasons.is_empty(),
        checks,
        reasons,
    }
}

/// The score as a number: a JSON/SQL number, or a number given as text.
fn score_of(v: &Val) -> Result<f64, String> {
    match v {
        Val::Number(n) => Ok(*n),
        Val::Text(t) => parse_number(t).ok_or_else(|| {
            format!(
                "score: expected a number, got text '{}'",
                clip(&mask_text(t), 20)
            )
        }),
        v => Err(wrong("score", "number", v)),
    }
}

/// An optional requirement: `v` must be text with something other than blanks.
fn non_blank(field: &str, v: &Val, missing: &str) -> Result<(), String> {
    match v {
        Val::Text(t) if !t.trim().is_empty() => Ok(()),
        Val::Text(_) | Val::Missing | Val::Null => Err(format!("{field}: {missing}")),
        v => Err(wrong(field, "text", v)),
    }
}

/// jsonb in, jsonb out (the SQL surface). A non-object input fails every check.
pub fn evaluate_json(contact: &Value, s: &AdmissionSettings) -> Value {
    let empty = Map::new();
    let obj = contact.as_object().unwrap_or(&empty);
    let mut result = evaluate(&ContactView::from_json(obj), s);
    if !contact.is_object() {
        result
            .reasons
            .insert(0, "contact: expected a JSON object".into());
    }
    result.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Value {
        json!({"id": 1, "type": "company", "name": "张三丰", "company": "上海某某有限公司",
               "phone": "138-0013-8000", "phone_verified": true, "score": 75, "list_status": "white"})
    }

    fn run(v: Value) -> Admission {
        let obj = v.as_object().cloned().unwrap_or_default();
        evaluate(&ContactView::from_json(&obj), &AdmissionSettings::default())
    }

    #[test]
    fn good_contact_passes() {
        let a = run(good());
        assert!(a.passed, "{:?}", a.reasons);
        assert_eq!(a.checks.len(), 6);
    }

    #[test]
    fn each_check_fails_with_reason() {
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            (
                "phone",
                json!("1380013"),
                "has_mobile",
                "phone: not a valid mainland mobile: 13****13",
            ),
            (
                "phone",
                json!(13800138000u64),
                "has_mobile",
                "phone: expected text, got number",
            ),
            (
                "name",
                json!("张三"),
                "has_name",
                "name: too short (2 characters, need more than 2)",
            ),
            (
                "phone_verified",
                json!(false),
                "is_verified",
                "phone_verified: phone not verified",
            ),
            (
                "phone_verified",
                json!("true"),
                "is_verified",
                "phone_verified: expected boolean, got text",
            ),
            (
                "score",
                json!(59),
                "score_pass",
                "score: 59 is below the minimum 60",
            ),
            (
                "score",
                json!("seventy"),
                "score_pass",
                "score: expected a number, got text 'seventy'",
            ),
            (
                "score",
                json!("59.5"),
                "score_pass",
                "score: 59.5 is below the minimum 60",
            ),
            (
                "company",
                json!("  "),
                "has_company",
                "company: required for a company customer",
            ),
            (
                "type",
                json!("robot"),
                "has_company",
                "type: must be 'company' or 'personal', got 'robot'",
            ),
            (
                "list_status",
                json!("grey"),
                "is_whitelisted",
                "list_status: 'grey' is not 'white'",
            ),
            (
                "list_status",
                Value::Null,
                "is_whitelisted",
                "list_status: is null (must be 'white')",
            ),
            ("name", Value::Null, "has_name", "name: is null"),
        ];
        for (key, val, check, reason) in cases {
            let mut c = good();
            c[key] = val;
            let a = run(c);
            assert!(!a.passed, "{key}");
            assert!(a.checks.contains(&(check, false)), "{key}: {:?}", a.checks);
            assert_eq!(a.reasons, vec![reason.to_string()]);
        }
    }

    #[test]
    fn missing_keys_fail_but_missing_list_status_passes() {
        let a = run(json!({}));
        assert!(!a.passed);
        assert_eq!(a.reasons.len(), 5);
        assert!(a.checks.contains(&("is_whitelisted", true)));
        assert!(a.reasons.contains(&"phone: missing".to_string()));
    }

    #[test]
    fn scores_given_as_text_count_as_numbers() {
        for score in [json!("85"), json!(" 85 "), json!("85.0"), json!("60")] {
            let mut c = good();
            c["score"] = score.clone();
            assert!(run(c).passed, "{score}");
        }
    }

    #[test]
    fn optional_requirements_are_off_by_default_and_each_has_its_reason() {
        let mut c = good();
        c["address"] = json!("  ");
        c.as_object_mut().map(|o| o.remove("wechat_id"));
        let obj = c.as_object().cloned().unwrap_or_default();
        let view = ContactView::from_json(&obj);
        let off = evaluate(&view, &AdmissionSettings::default());
        assert!(off.passed);
        assert_eq!(off.checks.len(), 6, "no optional check unless asked for");
        let on = AdmissionSettings {
            require_address: true,
            require_wechat: true,
            require_conversation: true,
            ..AdmissionSettings::default()
        };
        let a = evaluate(&view, &on);
        assert!(!a.passed);
        assert_eq!(
            a.reasons,
            vec![
                "address: no detailed address (admission.require_address)".to_string(),
                "wechat_id: no WeChat id (admission.require_wechat)".to_string(),
                "conversation: could not be looked up (admission.require_conversation)".to_string(),
            ]
        );
        let mut view = view;
        view.address = Val::Text("上海市浦东新区世纪大道1号".into());
        view.wechat_id = Val::Text("wx_zhang".into());
        view.conversation = Some(false);
        let a = evaluate(&view, &on);
        assert_eq!(
            a.reasons,
            vec![
                "conversation: no communication record yet (admission.require_conversation)"
                    .to_string()
            ]
        );
        view.conversation = Some(true);
        let a = evaluate(&view, &on);
        assert!(a.passed, "{:?}", a.reasons);
        assert_eq!(a.checks.len(), 9);
        view.wechat_id = Val::Number(5.0);
        assert_eq!(
            evaluate(&view, &on).reasons,
            vec!["wechat_id: expected text, got number".to_string()]
        );
    }

    #[test]
    fn personal_needs_no_company() {
        let mut c = good();
        c["type"] = json!("personal");
        c["company"] = Value::Null;
        assert!(run(c).passed);
    }

    #[test]
    fn non_object_input_fails_without_panicking() {
        let out = evaluate_json(&json!([1, 2]), &AdmissionSettings::default());
        assert_eq!(out["passed"], json!(false));
        assert_eq!(out["reasons"][0], json!("contact: expected a JSON object"));
    }

    #[test]
    fn huge_and_odd_values_are_clipped() {
        let mut c = good();
        c["phone"] = json!("x".repeat(100_000));
        c["type"] = json!("🚀".repeat(1000));
        let a = run(c);
        assert!(
            a.reasons.iter().all(|r| r.chars().count() < 120),
            "{:?}",
            a.reasons
        );
    }

    #[test]
    fn quoted_values_are_masked() {
        let mut c = good();
        c["type"] = json!("客户+86 139-0000-0779");
        c["list_status"] = json!("13900000779 grey");
        c["phone"] = json!("+86 139-0000-0779-1");
        let a = run(c);
        assert_eq!(
            a.reasons,
            vec![
                "phone: not a valid mainland mobile: +86****79-1".to_string(),
                "type: must be 'company' or 'personal', got '客户+86 139****0779'".to_string(),
                "list_status: '139****0779 grey' is not 'white'".to_string(),
            ]
        );
    }

    #[test]
    fn settings_change_thresholds() {
        let mut c = good();
        c["name"] = json!("张三");
        let obj = c.as_object().cloned().unwrap_or_default();
        let s = AdmissionSettings {
            min_name_chars: 1,
            min_score: 80.0,
            ..AdmissionSettings::default()
        };
        let a = evaluate(&ContactView::from_json(&obj), &s);
        assert_eq!(
            a.reasons,
            vec!["score: 75 is below the minimum 80".to_string()]
        );
    }
}
