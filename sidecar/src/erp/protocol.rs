//! Wire format: request bodies (`{"session","cmdkey","datas":[{"id","val"}]}`), endpoint paths, and
//! tolerant parsing of the reply envelope `{"header":{"status","message","session"},"body":{…}}`
//! and of the webapi reply `{"Code","Msg"}`.

use serde_json::{json, Map, Value};

use crate::error::{Error, Result};

pub const LOGIN: &str = "/webapi/v3/ov1/login";
pub const CUSTOM_ADD: &str = "/sysa/mobilephone/salesmanage/custom/add.asp";
pub const CUSTOM_LIST: &str = "/sysa/mobilephone/salesmanage/custom/list.asp";
pub const PERSON_ADD: &str = "/sysa/mobilephone/salesmanage/person/add.asp";
pub const PERSON_LIST: &str = "/sysa/mobilephone/salesmanage/person/list.asp";
pub const ORDER: &str = "/sysa/mobilephone/systemmanage/order.asp";
pub const REPLY: &str = "/sysa/mobilephone/systemmanage/reply.asp";
pub const WEBAPI_CUSTOMER_EDIT: &str = "/webapi/v3/sales/customer/edit";

pub const CMD_SAVE: &str = "__sys_dosave";
pub const CMD_REFRESH: &str = "refresh";

/// Prefix of `body.message.text` when the ERP reports an exception.
pub const SERVER_EXCEPTION_PREFIX: &str = "服务器异常";

/// Words that mark a `body.message.text` without an explicit `result` as a refusal.
const REFUSAL_WORDS: [&str; 9] = [
    "失败",
    "已存在",
    "重复",
    "不能",
    "不允许",
    "错误",
    "无权",
    "不存在",
    "无效",
];

/// One `{"id","val"}` item.
pub fn item(id: &str, val: impl Into<Value>) -> Value {
    json!({"id": id, "val": val.into()})
}

/// A mobile-endpoint request body.
pub fn request(session: &str, cmdkey: Option<&str>, datas: Vec<Value>) -> Value {
    let mut m = Map::new();
    m.insert("session".into(), Value::String(session.to_string()));
    if let Some(c) = cmdkey {
        m.insert("cmdkey".into(), Value::String(c.to_string()));
    }
    m.insert("datas".into(), Value::Array(datas));
    Value::Object(m)
}

/// The login body (`txt:` prefixed values).
pub fn login_request(user: &str, password: &str, serialnum: &str) -> Value {
    json!({"datas": [
        item("user", format!("txt:{user}")),
        item("password", format!("txt:{password}")),
        item("serialnum", format!("txt:{serialnum}")),
    ]})
}

/// A status/code that may arrive as a number, a numeric string, or a bool.
pub fn as_i64_loose(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64)),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// Any scalar as a string (`null` → None). Numbers keep their JSON text.
pub fn as_string_loose(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// Parse bytes as JSON; an unparseable reply is a protocol violation.
pub fn parse_json(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| {
        let snippet: String = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
        Error::Protocol(format!(
            "unparseable reply ({e}): {}",
            super::mask::mask_mobiles_in_text(&snippet)
        ))
    })
}

/// The parsed envelope of a mobile-endpoint reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub status: i64,
    pub message: Option<String>,
    pub body: Value,
    /// The whole reply (some replies put `value` / `source` at the top level).
    pub root: Value,
}

impl Envelope {
    /// `body.message.text` (or `body.message` when it is a string).
    pub fn message_text(&self) -> Option<String> {
        message_text(&self.body)
    }
}

fn message_text(body: &Value) -> Option<String> {
    match body.get("message") {
        Some(Value::Object(m)) => m.get("text").and_then(as_string_loose),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Validate the envelope of a mobile-endpoint reply (not login):
/// - status 1 → `SessionExpired`;
/// - a `body.message.text` starting with 服务器异常 (any status) → `ServerException`;
/// - another non-zero status → `Protocol` (unknown meaning; retried a bounded number of times);
/// - no header at all is accepted when the reply has a body/value/source (the spec's simplified shapes).
pub fn parse_envelope(root: Value) -> Result<Envelope> {
    let Value::Object(ref obj) = root else {
        return Err(Error::Protocol(format!(
            "reply is not a JSON object: {}",
            short(&root)
        )));
    };
    let header = obj.get("header");
    let status = match header {
        Some(Value::Object(h)) => match h.get("status") {
            Some(s) => as_i64_loose(s)
                .ok_or_else(|| Error::Protocol(format!("bad header.status {}", short(s))))?,
            None => 0,
        },
        Some(Value::Null) | None => {
            if obj.contains_key("body")
                || obj.contains_key("value")
                || obj.contains_key("source")
                || obj.contains_key("bill")
            {
                0
            } else {
                return Err(Error::Protocol(format!(
                    "reply has no header: {}",
                    short(&root)
                )));
            }
        }
        Some(other) => return Err(Error::Protocol(format!("bad header {}", short(other)))),
    };
    let message = header
        .and_then(|h| h.get("message"))
        .and_then(as_string_loose);
    let body = obj.get("body").cloned().unwrap_or(Value::Null);
    if let Some(text) = message_text(&body) {
        if text.trim_start().starts_with(SERVER_EXCEPTION_PREFIX) {
            return Err(Error::ServerException(text));
        }
    }
    match status {
        0 => Ok(Envelope {
            status,
            message,
            body,
            root,
        }),
        1 => Err(Error::SessionExpired),
        n => {
            let m = message.or_else(|| message_text(&body)).unwrap_or_default();
            if m.trim_start().starts_with(SERVER_EXCEPTION_PREFIX) {
                Err(Error::ServerException(m))
            } else {
                Err(Error::Protocol(format!("header.status {n}: {m}")))
            }
        }
    }
}

/// Parse a login reply: the session on status 0, `LoginFailed(message)` otherwise.
pub fn parse_login(root: &Value) -> Result<String> {
    let header = root
        .get("header")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::Protocol(format!("login reply has no header: {}", short(root))))?;
    let status = header.get("status").and_then(as_i64_loose);
    let message = header
        .get("message")
        .and_then(as_string_loose)
        .unwrap_or_default();
    match status {
        Some(0) => match header.get("session").and_then(as_string_loose) {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(Error::Protocol("login succeeded without a session".into())),
        },
        Some(_) => Err(Error::LoginFailed(if message.is_empty() {
            "login refused".into()
        } else {
            message
        })),
        None => Err(Error::Protocol(format!(
            "login reply without status: {}",
            short(root)
        ))),
    }
}

/// The outcome of a write (`__sys_dosave`, delete): the message text on success, `Business(text)` on
/// refusal. Rules: `message.result` (number/string/bool) decides when present (non-zero = success);
/// otherwise a text with a refusal word is a refusal; no message at all is success.
pub fn parse_write_outcome(env: &Envelope) -> Result<String> {
    let msg = env.body.get("message");
    let text = env.message_text().unwrap_or_default();
    if let Some(Value::Object(m)) = msg {
        if let Some(r) = m.get("result").or_else(|| m.get("success")) {
            return match as_i64_loose(r) {
                Some(0) => Err(Error::Business(if text.is_empty() {
                    "refused".into()
                } else {
                    text
                })),
                Some(_) => Ok(text),
                None => Err(Error::Protocol(format!("bad message.result {}", short(r)))),
            };
        }
    }
    if REFUSAL_WORDS.iter().any(|w| text.contains(w)) {
        return Err(Error::Business(text));
    }
    Ok(text)
}

/// The new ord of an allocation: `body.bill.value`, or the spec's top-level `value`, or `body.value`.
pub fn parse_allocate(env: &Envelope) -> Result<i64> {
    let candidates = [
        env.body.get("bill").and_then(|b| b.get("value")),
        env.root.get("value"),
        env.body.get("value"),
        env.root.get("bill").and_then(|b| b.get("value")),
    ];
    if let Some(c) = candidates.into_iter().flatten().next() {
        return match as_i64_loose(c) {
            Some(n) if n > 0 => Ok(n),
            _ => Err(Error::Protocol(format!("bad allocated ord {}", short(c)))),
        };
    }
    Err(Error::Protocol(format!(
        "allocation reply without ord: {}",
        short(&env.root)
    )))
}

/// An id returned by a write, if any (`body.message.value` / `body.bill.value` / `value`).
pub fn parse_written_id(env: &Envelope) -> Option<i64> {
    [
        env.body.get("message").and_then(|m| m.get("value")),
        env.body.get("bill").and_then(|b| b.get("value")),
        env.body.get("value"),
        env.root.get("value"),
    ]
    .into_iter()
    .flatten()
    .find_map(as_i64_loose)
}

/// Whether a reply says "no such record" (detail / delete of a missing customer).
pub fn is_not_found(env: &Envelope) -> bool {
    let has_bill = env.body.get("bill").is_some_and(|b| !b.is_null());
    !has_bill
        && env
            .message_text()
            .is_some_and(|t| t.contains("不存在") || t.contains("已被删除"))
}

/// The webapi reply `{"Code":200|300|400|500,"Msg"}`: 200 → Ok(Msg); 300 → Business; 400 →
/// SessionExpired; 500 → ServerException; anything else → Protocol. `Code` may be a string.
pub fn parse_webapi(root: &Value) -> Result<String> {
    let code = root
        .get("Code")
        .or_else(|| root.get("code"))
        .and_then(as_i64_loose);
    let msg = root
        .get("Msg")
        .or_else(|| root.get("msg"))
        .and_then(as_string_loose)
        .unwrap_or_default();
    match code {
        Some(200) => Ok(msg),
        Some(300) => Err(Error::Business(if msg.is_empty() {
            "refused".into()
        } else {
            msg
        })),
        Some(400) => Err(Error::SessionExpired),
        Some(500) => Err(Error::ServerException(msg)),
        Some(n) => Err(Error::Protocol(format!("webapi Code {n}: {msg}"))),
        None => Err(Error::Protocol(format!(
            "webapi reply without Code: {}",
            short(root)
        ))),
    }
}

/// Short, masked rendering of a value for error messages.
pub fn short(v: &Value) -> String {
    let s = super::mask::redact(v).to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetryClass;

    fn env(v: Value) -> Result<Envelope> {
        parse_envelope(v)
    }

    #[test]
    fn status_number_or_string() -> Result<()> {
        assert_eq!(env(json!({"header":{"status":0},"body":{}}))?.status, 0);
        assert_eq!(
            env(json!({"header":{"status":"0","message":"","session":"x"},"body":{}}))?.status,
            0
        );
        assert_eq!(env(json!({"header":{"status":" 0 "}}))?.status, 0);
        assert_eq!(env(json!({"header":{}, "body":{}}))?.status, 0);
        Ok(())
    }

    #[test]
    fn status_one_is_session_expired() {
        assert!(matches!(
            env(json!({"header":{"status":1,"message":"会话超时"}})),
            Err(Error::SessionExpired)
        ));
        assert!(matches!(
            env(json!({"header":{"status":"1"}})),
            Err(Error::SessionExpired)
        ));
    }

    #[test]
    fn other_status_and_garbage() {
        let e = env(json!({"header":{"status":7,"message":"?"}}));
        assert!(matches!(e, Err(Error::Protocol(_))));
        assert!(matches!(
            env(json!({"header":{"status":"abc"}})),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(env(json!([1, 2])), Err(Error::Protocol(_))));
        assert!(matches!(env(json!({"foo":1})), Err(Error::Protocol(_))));
        assert!(matches!(
            env(json!({"header":"x"})),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse_json(b"{\"header\":{\"status\":0,"),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse_json(b"<html>500</html>"),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn server_exception() {
        let e = env(
            json!({"header":{"status":0},"body":{"model":"message","message":{"text":"服务器异常：对象关闭时不允许操作"}}}),
        );
        match e {
            Err(err @ Error::ServerException(_)) => {
                assert_eq!(err.retry_class(), RetryClass::Retry)
            }
            other => panic!("{other:?}"),
        }
        let e = env(json!({"header":{"status":2,"message":"服务器异常 xx"}}));
        assert!(matches!(e, Err(Error::ServerException(_))));
    }

    #[test]
    fn allocate_shapes() -> Result<()> {
        assert_eq!(
            parse_allocate(&env(
                json!({"header":{"status":0},"body":{"model":"bill","bill":{"value":123}}})
            )?)?,
            123
        );
        assert_eq!(
            parse_allocate(&env(
                json!({"header":{"status":"0"},"body":{"bill":{"value":"456"}}})
            )?)?,
            456
        );
        assert_eq!(parse_allocate(&env(json!({"value": 789}))?)?, 789);
        assert_eq!(
            parse_allocate(&env(json!({"header":{"status":0},"value":"5"}))?)?,
            5
        );
        assert!(matches!(
            parse_allocate(&env(json!({"header":{"status":0},"body":{}}))?),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse_allocate(&env(
                json!({"header":{"status":0},"body":{"bill":{"value":"x"}}})
            )?),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse_allocate(&env(
                json!({"header":{"status":0},"body":{"bill":{"value":0}}})
            )?),
            Err(Error::Protocol(_))
        ));
        Ok(())
    }

    #[test]
    fn write_outcomes() -> Result<()> {
        let ok = env(
            json!({"header":{"status":0},"body":{"model":"message","message":{"text":"保存成功","result":1}}}),
        )?;
        assert_eq!(parse_write_outcome(&ok)?, "保存成功");
        let ok2 = env(
            json!({"header":{"status":0},"body":{"model":"message","message":{"text":"保存成功"}}}),
        )?;
        assert_eq!(parse_write_outcome(&ok2)?, "保存成功");
        let ok3 = env(json!({"header":{"status":0},"body":{}}))?;
        assert_eq!(parse_write_outcome(&ok3)?, "");
        let refused = env(
            json!({"header":{"status":0},"body":{"message":{"text":"手机号码已存在","result":"0"}}}),
        )?;
        match parse_write_outcome(&refused) {
            Err(e @ Error::Business(_)) => assert_eq!(e.retry_class(), RetryClass::Fatal),
            other => panic!("{other:?}"),
        }
        let refused2 = env(json!({"header":{"status":0},"body":{"message":"客户编号重复"}}))?;
        assert!(
            matches!(parse_write_outcome(&refused2), Err(Error::Business(t)) if t == "客户编号重复")
        );
        let bad = env(json!({"header":{"status":0},"body":{"message":{"text":"?","result":[1]}}}))?;
        assert!(matches!(parse_write_outcome(&bad), Err(Error::Protocol(_))));
        Ok(())
    }

    #[test]
    fn login_shapes() {
        assert_eq!(
            parse_login(&json!({"header":{"status":0,"message":"API鉴权成功.","session":"abc"}}))
                .ok(),
            Some("abc".to_string())
        );
        assert_eq!(
            parse_login(&json!({"header":{"status":"0","session":"abc"}})).ok(),
            Some("abc".to_string())
        );
        assert!(
            matches!(parse_login(&json!({"header":{"status":2,"message":"密码错误"}})), Err(Error::LoginFailed(m)) if m == "密码错误")
        );
        assert!(matches!(
            parse_login(&json!({"header":{"status":0,"session":""}})),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse_login(&json!({"x":1})),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn webapi_codes() {
        assert!(parse_webapi(&json!({"Code":200,"Msg":"ok"})).is_ok());
        assert!(parse_webapi(&json!({"Code":"200"})).is_ok());
        assert!(matches!(
            parse_webapi(&json!({"Code":300,"Msg":"名称重复"})),
            Err(Error::Business(_))
        ));
        assert!(matches!(
            parse_webapi(&json!({"Code":400,"Msg":"token"})),
            Err(Error::SessionExpired)
        ));
        assert!(matches!(
            parse_webapi(&json!({"Code":500,"Msg":"x"})),
            Err(Error::ServerException(_))
        ));
        assert!(matches!(
            parse_webapi(&json!({"Code":201})),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            parse_webapi(&json!({"Msg":"x"})),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn not_found_and_written_id() -> Result<()> {
        let nf = env(
            json!({"header":{"status":0},"body":{"model":"message","message":{"text":"该客户不存在或已被删除"}}}),
        )?;
        assert!(is_not_found(&nf));
        let found = env(
            json!({"header":{"status":0},"body":{"model":"bill","bill":{"value":3,"groups":[]}}}),
        )?;
        assert!(!is_not_found(&found));
        let w = env(
            json!({"header":{"status":0},"body":{"message":{"text":"保存成功","value":"77"}}}),
        )?;
        assert_eq!(parse_written_id(&w), Some(77));
        Ok(())
    }

    #[test]
    fn login_request_shape() {
        let v = login_request("u", "p", "S1");
        assert_eq!(v["datas"][0], json!({"id":"user","val":"txt:u"}));
        assert_eq!(v["datas"][2], json!({"id":"serialnum","val":"txt:S1"}));
        let r = request("sess", Some("refresh"), vec![item("khid", "WX1")]);
        assert_eq!(r["cmdkey"], "refresh");
        assert_eq!(r["datas"][0]["id"], "khid");
    }
}
