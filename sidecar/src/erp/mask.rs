//! Masking of personal data and removal of secrets from what is logged or stored in `sync_log`.

use serde_json::Value;

/// `13812345678` → `138****5678`. Strings shorter than 8 characters become `****`.
pub fn mask_mobile(mobile: &str) -> String {
    let chars: Vec<char> = mobile.trim().chars().collect();
    if chars.len() < 8 {
        return "****".to_string();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Keys whose values are secrets: removed wherever they appear.
const SECRET_KEYS: [&str; 4] = ["session", "password", "zbapi-token", "token"];
/// Field ids (in `datas`) or object keys holding phone numbers.
const PHONE_KEYS: [&str; 5] = ["mobile", "phone", "tel", "mobile2", "contact_phone"];

/// Mask every run of 11 digits starting with `1` (a mainland mobile) inside free text.
pub fn mask_mobiles_in_text(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() < 11 || !b.iter().any(|c| c.is_ascii_digit()) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let run = &s[start..i];
            if run.len() == 11 && run.starts_with('1') {
                out.push_str(&mask_mobile(run));
            } else {
                out.push_str(run);
            }
        } else {
            // copy one UTF-8 char
            let ch_len = utf8_len(b[i]);
            let end = (i + ch_len).min(b.len());
            out.push_str(&s[i..end]);
            i = end;
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Redact a request/response for logging: secrets removed (`"<redacted>"`), phone fields masked
/// (`{"id":"mobile","val":…}` items and `mobile` keys), and any mobile-looking number in any string masked.
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
        Value::String(s) => Value::String(mask_mobiles_in_text(s)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_mobile() {
        assert_eq!(mask_mobile("13812345678"), "138****5678");
        assert_eq!(mask_mobile("123"), "****");
        assert_eq!(mask_mobile(""), "****");
        assert_eq!(mask_mobile("+8613812345678"), "+86****5678");
    }

    #[test]
    fn masks_in_text() {
        assert_eq!(
            mask_mobiles_in_text("手机13812345678已存在"),
            "手机138****5678已存在"
        );
        assert_eq!(mask_mobiles_in_text("ord 123456789012"), "ord 123456789012");
        assert_eq!(mask_mobiles_in_text("短"), "短");
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
