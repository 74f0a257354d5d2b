//! Removal of secrets from what is logged or stored in `sync_log`, and masking of personal data
//! in it with the shared masking rule (`erp_sync_rules::mask`, the same as the extension's).

use erp_sync_rules::mask::{mask_mobile, mask_text};
use serde_json::Value;

/// Keys whose values are secrets: removed wherever they appear.
const SECRET_KEYS: [&str; 4] = ["session", "password", "zbapi-token", "token"];
/// Field ids (in `datas`) or object keys holding phone numbers.
const PHONE_KEYS: [&str; 5] = ["mobile", "phone", "tel", "mobile2", "contact_phone"];

/// Redact a request/response for logging: secrets removed (`"<redacted>"`), phone fields masked
/// (`{"id":"mobile","val":…}` items and `mobile` keys), and every mobile inside any string, in any
/// notation, masked (`erp_sync_rules::mask::mask_text`).
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let id = m
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase);
            let mut out = serde_json::Map::with_capacity(m.len());
            for (k, val) in m {
                let kl = k.to_ascii_lowercase();
                let secret = SECRET_KEYS.contains(&kl.as_str())
                    || (k == "val" && id.as_deref().is_some_and(|i| SECRET_KEYS.contains(&i)));
                let redacted = if secret {
                    Value::String("<redacted>".into())
                } else if (k == "val" && id.as_deref().is_some_and(|i| PHONE_KEYS.contains(&i)))
                    || PHONE_KEYS.contains(&kl.as_str())
                {
                    match val {
                        Value::String(s) if !s.is_empty() => Value::String(mask_mobile(s)),
                        Value::Number(n) => Value::String(mask_mobile(&n.to_string())),
                        other => redact(other),
                    }
                } else {
                    redact(val)
                };
                out.insert(k.clone(), redacted);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::String(s) => Value::String(mask_text(s)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn phone_fields_use_the_shared_rule() {
        let r = redact(&json!({"mobile": "+8613812345678", "phone": 13900001111u64,
                              "datas": [{"id": "tel", "val": "+86 137-0000-2222"}]}));
        assert_eq!(r["mobile"], "138****5678");
        assert_eq!(r["phone"], "139****1111");
        assert_eq!(r["datas"][0]["val"], "137****2222");
    }

    #[test]
    fn masks_mobiles_in_any_notation_inside_texts() {
        let r = redact(
            &json!({"body": {"message": {"text": "保存失败：手机 +86 139-0000-0779 已存在"}},
                              "note": "ord 123456789012"}),
        );
        assert_eq!(
            r["body"]["message"]["text"],
            "保存失败：手机 +86 139****0779 已存在"
        );
        assert_eq!(r["note"], "ord 123456789012");
    }

    #[test]
    fn redacts_request() {
        let req = json!({"session":"abc","cmdkey":"__sys_dosave","datas":[
            {"id":"mobile","val":"13812345678"},{"id":"password","val":"txt:pw"},{"id":"name","val":"张三 13900001111"}]});
        let r = redact(&req);
        let s = r.to_string();
        assert!(!s.contains("abc"));
        assert!(!s.contains("txt:pw"));
        assert!(!s.contains("13812345678"));
        assert!(!s.contains("13900001111"));
        assert_eq!(r["datas"][0]["val"], "138****5678");
        assert_eq!(r["cmdkey"], "__sys_dosave");
    }

    #[test]
    fn redacts_response_rows() {
        let resp = json!({"header":{"status":0,"session":"sss"},"body":{"source":{"table":{"rows":[["1","13812345678"]]}}}});
        let s = redact(&resp).to_string();
        assert!(!s.contains("sss"));
        assert!(s.contains("138****5678"));
    }
}
