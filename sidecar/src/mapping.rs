//! Pure mapping of `erp_sync.contact_payload()` JSON to the ERP's customer fields (spec, scenario 1).
//!
//! | platform                        | ERP           |
//! |---------------------------------|---------------|
//! | company, else name              | name          |
//! | payload `khid` (the linked customer's khid, else `customer.khid_format`, `WX{key}` by default; ≤ 50 characters) | khid |
//! | fixed 171 (网站注册 = WeChat)     | ly            (on create only: an update leaves the ERP's source alone) |
//! | phone                           | mobile        |
//! | wechat_id                       | weixinAcc     |
//! | address                         | address       |
//! | score_to_value(thread score)    | jz            (only with a score: else the ERP's stays) |
//! | "来自微信中台，评分: N"           | intro         (only with a score: else the ERP's stays) |
//! | thread summary                  | product       |
//! | contact_person, else name       | person_name   (required by the vendor for both kinds) |
//! | `erp.customer_category`         | sort1         (客户分类, filled in by the ERP client) |
//! | contact_phone                   | phone         (company customers only) |
//! | email                           | email         (company customers only) |
//!
//! Empty platform values are not sent (`None`): on an update they leave the ERP's value alone
//! instead of clearing it.

use erp_sync_rules::customer::check_khid;
use erp_sync_rules::numbers::format_number;
use erp_sync_rules::{score_to_value, LY_WECHAT};
use serde_json::Value;

use crate::erp::{CustomerFields, CustomerKind, Person};

/// Admission verdict carried by the payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub passed: bool,
    pub reasons: Vec<String>,
}

/// The parts of a contact payload the engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactView {
    /// The platform's key of the contact, as text.
    pub contact_id: String,
    pub khid: String,
    pub kind: CustomerKind,
    pub fields: CustomerFields,
    /// The contact person to add to a company customer.
    pub person: Option<Person>,
    /// Score used for jz / assignment (thread score, else contact score, else 0).
    pub score: f64,
    pub wechat_id: Option<String>,
    pub admission: Admission,
}

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => {
            let t = s.trim();
            (!t.is_empty()).then(|| t.to_string())
        }
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => erp_sync_rules::parse_number(s),
        _ => None,
    }
}

/// Admission from the payload: `{"passed"|"ok"|"pass": bool, "reasons": [..]}`; a missing verdict
/// counts as passed (the capture trigger only enqueues admitted contacts).
pub fn admission(payload: &Value) -> Admission {
    let adm = payload.get("admission").unwrap_or(&Value::Null);
    let passed = ["passed", "ok", "pass", "admitted"]
        .iter()
        .find_map(|k| adm.get(*k).and_then(Value::as_bool))
        .unwrap_or(true);
    let reasons = match adm.get("reasons") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|r| match r {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    Admission { passed, reasons }
}

/// What a customer row makes of its contact's payload (one rule for the send and the dry run).
#[derive(Debug)]
pub enum CustomerPlan {
    /// admitted and mapped: send it
    Send(ContactView),
    /// admission failed: skipped with this reason (and the view, when the payload maps)
    NotAdmitted(String, Option<ContactView>),
    /// cannot be mapped: dead with this reason
    Unmappable(String),
}

/// Admission first: a contact edited after it was queued (a name removed, say) is skipped with
/// the reasons, not mapped into a "cannot map" death. One without a khid (the khid format does
/// not fit the ERP: a setting to fix) stays unmappable, for a person to fix and retry.
pub fn plan_customer(payload: &Value) -> CustomerPlan {
    let admission = admission(payload);
    let view = contact_view(payload);
    let has_khid = matches!(payload.get("khid"), Some(Value::String(_)));
    if !admission.passed && has_khid {
        let reason = format!("admission not passed: {}", admission.reasons.join(", "));
        return CustomerPlan::NotAdmitted(reason, view.ok());
    }
    match view {
        Ok(v) => CustomerPlan::Send(v),
        Err(e) => CustomerPlan::Unmappable(format!("cannot map contact: {e}")),
    }
}

/// Map a contact payload to the ERP fields. Errors name what is missing.
///
/// The khid is the payload's (the extension forms it with `customer.khid_format`), checked again
/// with the shared rule: a payload without one (its format gives more than the ERP's 50
/// characters: the reason is in its admission) or with one the ERP would not keep as sent is an
/// error, never a khid made up here or cut short.
pub fn contact_view(payload: &Value) -> Result<ContactView, String> {
    let contact_id = match payload.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("payload has no contact id".into()),
    };
    let khid = match payload.get("khid") {
        Some(Value::String(k)) => k.clone(),
        _ => {
            let why = admission(payload).reasons.join("; ");
            return Err(if why.is_empty() {
                "payload has no khid".to_string()
            } else {
                format!("payload has no khid: {why}")
            });
        }
    };
    check_khid(&khid).map_err(|e| e.to_string())?;
    let kind = match text(payload, "type").as_deref() {
        Some("company") => CustomerKind::Company,
        _ => CustomerKind::Personal,
    };
    let thread = payload.get("thread").unwrap_or(&Value::Null);
    // No score on the platform (e.g. a customer brought home from the ERP and not scored yet):
    // jz and intro are not sent, so the ERP's own rating and remarks stay.
    let known_score = number(thread, "score").or_else(|| number(payload, "score"));
    let score = known_score.unwrap_or(0.0);
    let person_name = text(payload, "name");
    let name = text(payload, "company")
        .or_else(|| person_name.clone())
        .ok_or("contact has neither company nor name")?;
    let wechat_id = text(payload, "wechat_id");
    let mut fields = CustomerFields {
        ord: None,
        name,
        khid: Some(khid.clone()),
        sort1: None,
        ly: Some(LY_WECHAT.to_string()),
        mobile: text(payload, "phone"),
        weixin_acc: wechat_id.clone(),
        address: text(payload, "address"),
        jz: known_score.map(|s| score_to_value(s).to_string()),
        intro: known_score.map(|s| format!("来自微信中台，评分: {}", format_number(s))),
        product: text(thread, "summary"),
        // The vendor requires 联系人姓名 for personal customers too: the contact's own name.
        person_name: person_name.clone(),
        phone: None,
        email: None,
    };
    let mut person = None;
    if kind == CustomerKind::Company {
        let pname = text(payload, "contact_person").or(person_name);
        fields.person_name = pname.clone();
        fields.phone = text(payload, "contact_phone");
        fields.email = text(payload, "email");
        if let Some(n) = pname {
            person = Some(Person {
                name: n,
                phone: fields.phone.clone(),
                mobile: text(payload, "contact_phone").or_else(|| fields.mobile.clone()),
                email: fields.email.clone(),
            });
        }
    }
    Ok(ContactView {
        contact_id,
        khid,
        kind,
        fields,
        person,
        score,
        wechat_id,
        admission: admission(payload),
    })
}

/// Stable fingerprint of what would be sent (FNV-1a over the field pairs), for "unchanged" skips.
pub fn fields_hash(kind: CustomerKind, fields: &CustomerFields, person: Option<&Person>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |s: &str| {
        for b in s.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(&kind.intsort().to_string());
    for (k, v) in fields.pairs() {
        feed(k);
        feed(v);
    }
    if let Some(p) = person {
        feed(&p.name);
        feed(p.phone.as_deref().unwrap_or(""));
        feed(p.email.as_deref().unwrap_or(""));
    }
    format!("{h:016x}")
}

/// Whether an ERP person matches the platform's contact person (name, or a phone/mobile).
pub fn person_matches(erp: &crate::erp::ErpPerson, p: &Person) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let name_eq = erp
        .name
        .as_deref()
        .is_some_and(|n| norm(n) == norm(&p.name));
    let phones: Vec<&str> = [p.phone.as_deref(), p.mobile.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let phone_eq = [erp.phone.as_deref(), erp.mobile.as_deref()]
        .into_iter()
        .flatten()
        .any(|x| !x.is_empty() && phones.contains(&x));
    name_eq || phone_eq
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_customer_failing_admission_is_skipped_unless_it_has_no_khid() {
        let failing = json!({"id": 7, "khid": "WX7", "name": null, "company": null,
            "admission": {"passed": false, "reasons": ["name: is null"]}});
        match plan_customer(&failing) {
            CustomerPlan::NotAdmitted(r, view) => {
                assert_eq!(r, "admission not passed: name: is null");
                assert!(view.is_none(), "no name, no company: it does not map");
            }
            other => panic!("{other:?}"),
        }
        let no_khid = json!({"id": 7, "name": "张三",
            "admission": {"passed": false, "reasons": ["khid: 51 characters, the ERP allows 50"]}});
        match plan_customer(&no_khid) {
            CustomerPlan::Unmappable(r) => {
                assert!(
                    r.starts_with("cannot map contact: payload has no khid"),
                    "{r}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    fn company() -> Value {
        json!({
            "id": 42, "type": "company", "name": "张三", "company": "上海某某科技有限公司",
            "phone": "13812345678", "phone_verified": true, "score": 70, "list_status": "white",
            "wechat_id": "zhangsan_wx", "address": "上海市浦东新区", "contact_person": "李四",
            "contact_phone": "13900001111", "email": "li@example.com", "notes": "n",
            "thread": {"id": 7, "score": 92, "summary": "想要采购100台设备"},
            "admission": {"passed": true, "reasons": []}, "khid": "WX42"
        })
    }

    #[test]
    fn jz_follows_the_shared_score_rule() {
        for (score, jz) in [
            (95, "175"),
            (89, "289"),
            (75, "289"),
            (60, "176"),
            (45, "177"),
            (0, "290"),
        ] {
            let mut p = company();
            p["thread"]["score"] = json!(score);
            assert_eq!(
                contact_view(&p).expect("view").fields.jz.as_deref(),
                Some(jz)
            );
        }
    }

    /// The khid is the payload's (the extension's `customer.khid_format`), checked with the
    /// shared rule; none is made up here, none is cut short.
    #[test]
    fn khid_comes_from_the_payload_and_is_checked() {
        let mut p = company();
        p["khid"] = json!("MP-42");
        assert_eq!(contact_view(&p).expect("view").khid, "MP-42");
        p["id"] = json!("0b6f2c1e-8d4a-4f6b-9c3e-2a1d5e7f9b0c");
        p["khid"] = json!("WX0b6f2c1e-8d4a-4f6b-9c3e-2a1d5e7f9b0c");
        let v = contact_view(&p).expect("uuid view");
        assert_eq!(v.contact_id, "0b6f2c1e-8d4a-4f6b-9c3e-2a1d5e7f9b0c");
        assert_eq!(v.fields.khid.as_deref(), Some(v.khid.as_str()));
        p["khid"] = json!("x".repeat(51));
        let e = contact_view(&p).expect_err("51 characters");
        assert!(e.contains("allows 50"), "{e}");
        // no khid (the format gives none): the admission's reason says why
        p["khid"] = Value::Null;
        p["admission"] = json!({"passed": false, "reasons": ["khid: too long"]});
        assert_eq!(
            contact_view(&p).expect_err("no khid"),
            "payload has no khid: khid: too long"
        );
    }

    #[test]
    fn company_mapping() {
        let v = contact_view(&company()).expect("view");
        assert_eq!(v.kind, CustomerKind::Company);
        assert_eq!(v.khid, "WX42");
        let f = &v.fields;
        assert_eq!(f.name, "上海某某科技有限公司");
        assert_eq!(f.khid.as_deref(), Some("WX42"));
        assert_eq!(f.ly.as_deref(), Some("171"));
        assert_eq!(f.mobile.as_deref(), Some("13812345678"));
        assert_eq!(f.weixin_acc.as_deref(), Some("zhangsan_wx"));
        assert_eq!(f.address.as_deref(), Some("上海市浦东新区"));
        assert_eq!(f.jz.as_deref(), Some("175"));
        assert_eq!(f.intro.as_deref(), Some("来自微信中台，评分: 92"));
        assert_eq!(f.product.as_deref(), Some("想要采购100台设备"));
        assert_eq!(f.person_name.as_deref(), Some("李四"));
        assert_eq!(f.phone.as_deref(), Some("13900001111"));
        assert_eq!(f.email.as_deref(), Some("li@example.com"));
        let p = v.person.expect("person");
        assert_eq!(p.name, "李四");
        assert!(v.admission.passed);
    }

    #[test]
    fn personal_mapping() {
        let v = contact_view(&json!({
            "id": 5, "type": "personal", "name": "王五", "company": null, "phone": "13700002222",
            "wechat_id": "", "address": null, "score": 65, "thread": null,
            "admission": {"passed": true}, "khid": "WX5"
        }))
        .expect("view");
        assert_eq!(v.kind, CustomerKind::Personal);
        assert_eq!(v.contact_id, "5");
        assert_eq!(v.khid, "WX5");
        assert_eq!(v.fields.name, "王五");
        assert_eq!(v.fields.weixin_acc, None);
        assert_eq!(v.fields.address, None);
        assert_eq!(v.fields.jz.as_deref(), Some("176"));
        assert_eq!(v.fields.intro.as_deref(), Some("来自微信中台，评分: 65"));
        assert_eq!(v.fields.product, None);
        assert_eq!(v.fields.person_name.as_deref(), Some("王五"));
        assert_eq!(v.fields.email, None);
        assert!(v.person.is_none());
    }

    #[test]
    fn without_a_score_the_erps_rating_and_remarks_stay() {
        let v = contact_view(&json!({
            "id": "7", "type": "personal", "name": "赵六", "phone": "13700003333", "score": null,
            "thread": null, "admission": {"passed": true}, "khid": "KH-ERP-7"
        }))
        .expect("view");
        assert_eq!((v.fields.jz, v.fields.intro), (None, None));
        assert_eq!(v.score, 0.0, "assignment still reads no score as 0");
        let v = contact_view(&json!({
            "id": "7", "type": "personal", "name": "赵六", "phone": "13700003333", "score": " 85 ",
            "thread": null, "admission": {"passed": true}, "khid": "KH-ERP-7"
        }))
        .expect("view");
        assert_eq!(
            v.fields.jz.as_deref(),
            Some("289"),
            "a score given as text counts"
        );
    }

    #[test]
    fn company_person_falls_back_to_name() {
        let mut p = company();
        p["contact_person"] = Value::Null;
        let v = contact_view(&p).expect("view");
        assert_eq!(v.fields.person_name.as_deref(), Some("张三"));
    }

    #[test]
    fn rejected_admission() {
        let mut p = company();
        p["admission"] = json!({"passed": false, "reasons": ["score_pass", "is_verified"]});
        let v = contact_view(&p).expect("view");
        assert!(!v.admission.passed);
        assert_eq!(v.admission.reasons, vec!["score_pass", "is_verified"]);
    }

    #[test]
    fn missing_name_is_an_error() {
        assert!(contact_view(&json!({"id": 1})).is_err());
        assert!(contact_view(&json!({"name": "x"})).is_err());
    }

    #[test]
    fn fractional_score() {
        let mut p = company();
        p["thread"]["score"] = json!(85.5);
        let v = contact_view(&p).expect("view");
        assert_eq!(v.fields.intro.as_deref(), Some("来自微信中台，评分: 85.5"));
    }

    /// The hash is what lets an update that changes nothing the ERP sees skip the ERP: it changes
    /// with every field that is sent (and the contact person), not with what is not sent, and a
    /// payload read again gives the same hash.
    #[test]
    fn hash_changes_with_every_sent_field_only() {
        let hash = |p: &Value| {
            let v = contact_view(p).expect("view");
            fields_hash(v.kind, &v.fields, v.person.as_ref())
        };
        let base = hash(&company());
        assert_eq!(hash(&company()), base, "same payload, same hash");
        let mut seen = std::collections::HashSet::from([base.clone()]);
        for (key, value) in [
            ("company", json!("北京某某有限公司")),
            ("phone", json!("13812345679")),
            ("wechat_id", json!("other_wx")),
            ("address", json!("北京")),
            ("contact_person", json!("王五")),
            ("contact_phone", json!("13900002222")),
            ("email", json!("wang@example.com")),
            ("type", json!("personal")),
        ] {
            let mut p = company();
            p[key] = value;
            let h = hash(&p);
            assert!(seen.insert(h), "changing {key} must change the hash");
        }
        let mut p = company();
        p["thread"]["summary"] = json!("想要采购200台设备");
        assert!(
            seen.insert(hash(&p)),
            "the thread summary (product) is sent"
        );
        let mut p = company();
        p["notes"] = json!("not sent to the ERP");
        assert_eq!(hash(&p), base, "notes are not sent: no new hash");
    }
}
