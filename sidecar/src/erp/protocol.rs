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

/// A number that may arrive as a JSON number, a numeric string as VBScript prints it (`"12"`,
/// `" 12 "`, `"1,234.00"`), or a bool.
pub fn as_i64_loose(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let t = s.trim();
            let cleaned: std::borrow::Cow<'_, str> = if t.contains(',') {
                t.replace(',', "").into()
            } else {
                t.into()
            };
            cleaned.parse::<i64>().ok().or_else(|| {
                cleaned
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            })
        }
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

/// Parse a reply as JSON, as leniently as the public clients of the same server do: a UTF-8 BOM,
/// raw control characters inside strings and invalid UTF-8 sequences are accepted (the pages are
/// built by VBScript string concatenation). Whatever is still unparseable is a protocol violation.
pub fn parse_json(bytes: &[u8]) -> Result<Value> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = match serde_json::from_slice(body) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let text = String::from_utf8_lossy(body);
    serde_json::from_str(&escape_raw_controls(&text)).map_err(|_| {
        let snippet: String = text.chars().take(120).collect();
        Error::Protocol(format!(
            "unparseable reply ({first}): {}",
            erp_sync_rules::mask_text(&snippet)
        ))
    })
}

/// Escape control characters (U+0000–U+001F) that stand raw inside JSON string literals.
fn escape_raw_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            } else if (c as u32) < 0x20 {
                out.push_str(&format!("\\u{:04x}", c as u32));
                continue;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
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
/// - any other non-zero status (the server's `11` is a database error) → `ServerException` with the
///   header's message kept (retryable);
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
                Err(Error::ServerException(format!("header.status {n}: {m}")))
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
        // The server's own error (11: database) is not a verdict on the credentials.
        Some(11) => Err(Error::ServerException(format!(
            "login: header.status 11: {message}"
        ))),
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

/// What a write (`__sys_dosave`, delete) answered. The vendor's MessageClass reply has
/// `title/text/url/wait/target/uitype` and no `result`; the spec's simplified shape adds `result`.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReply {
    /// `body.message.text`, verbatim ("" when there is none).
    pub text: String,
    /// `message.result` (or `success`) when the reply has one.
    pub result: Option<bool>,
}

impl WriteReply {
    /// Whether the ERP says it stored the write: `result` when present, else a text that reports
    /// success (保存成功, 指派成功, 删除成功, 修改成功). This decides only whether an unverified
    /// write is worth retrying; a customer save counts when it reads back.
    pub fn acknowledged(&self) -> bool {
        self.result.unwrap_or_else(|| self.text.contains("成功"))
    }

    /// The outcome of a write that cannot be read back (person, assignment, follow-up, delete
    /// request): acknowledged → the text; an explicit `result` 0 or any other text → `Business`
    /// with the ERP's text verbatim; no text at all → `Protocol` (retryable: an unknown reply is
    /// never a success).
    pub fn outcome(self) -> Result<String> {
        if self.acknowledged() {
            Ok(self.text)
        } else if self.result == Some(false) || !self.text.trim().is_empty() {
            Err(Error::Business(if self.text.trim().is_empty() {
                "refused (result 0, no text)".into()
            } else {
                self.text
            }))
        } else {
            Err(Error::Protocol("write reply without a message".into()))
        }
    }
}

/// Read the reply of a write. A `result` that is neither a number, a numeric string nor a bool is
/// a protocol violation.
pub fn write_reply(env: &Envelope) -> Result<WriteReply> {
    let text = env.message_text().unwrap_or_default();
    let result = match env.body.get("message") {
        Some(Value::Object(m)) => match m.get("result").or_else(|| m.get("success")) {
            None | Some(Value::Null) => None,
            Some(r) => match as_i64_loose(r) {
                Some(n) => Some(n != 0),
                None => return Err(Error::Protocol(format!("bad message.result {}", short(r)))),
            },
        },
        _ => None,
    };
    Ok(WriteReply { text, result })
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
        assert!(matches!(e, Err(Error::ServerException(_))));
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

    fn reply(v: Value) -> Result<WriteReply> {
        write_reply(&env(v)?)
    }

    #[test]
    fn write_outcomes() -> Result<()> {
        // The spec's shape: `result` decides.
        let ok = reply(
            json!({"header":{"status":0},"body":{"model":"message","message":{"text":"保存成功","result":1}}}),
        )?;
        assert!(ok.acknowledged());
        assert_eq!(ok.outcome()?, "保存成功");
        let refused = reply(
            json!({"header":{"status":0},"body":{"message":{"text":"手机号码已存在","result":"0"}}}),
        )?;
        assert!(!refused.acknowledged());
        match refused.outcome() {
            Err(e @ Error::Business(_)) => assert_eq!(e.retry_class(), RetryClass::Fatal),
            other => panic!("{other:?}"),
        }
        // The vendor's MessageClass: no `result`; a success text, or any other text verbatim.
        let vendor_ok = reply(
            json!({"header":{"status":"0"},"body":{"model":"message","message":{"title":"","text":"保存成功","url":"","wait":"0","target":"","uitype":""}}}),
        )?;
        assert_eq!(vendor_ok.result, None);
        assert_eq!(vendor_ok.outcome()?, "保存成功");
        let vendor_refused = reply(
            json!({"header":{"status":"0"},"body":{"model":"message","message":{"title":"","text":"请选择客户分类","url":"","wait":"0"}}}),
        )?;
        assert!(
            matches!(vendor_refused.outcome(), Err(Error::Business(t)) if t == "请选择客户分类")
        );
        let bare = reply(json!({"header":{"status":0},"body":{"message":"客户编号重复"}}))?;
        assert!(matches!(bare.outcome(), Err(Error::Business(t)) if t == "客户编号重复"));
        // No message at all is not a success.
        let empty = reply(json!({"header":{"status":0},"body":{}}))?;
        match empty.outcome() {
            Err(e @ Error::Protocol(_)) => assert_eq!(e.retry_class(), RetryClass::Retry),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reply(json!({"header":{"status":0},"body":{"message":{"text":"?","result":[1]}}})),
            Err(Error::Protocol(_))
        ));
        Ok(())
    }

    #[test]
    fn lenient_json() -> Result<()> {
        // UTF-8 BOM, text/html pages: the bytes are what counts.
        let bom = b"\xEF\xBB\xBF{\"header\":{\"status\":\"0\"},\"body\":{}}";
        assert_eq!(parse_json(bom)?["header"]["status"], "0");
        // Raw control characters inside strings (VBScript concatenation).
        let raw = "{\"header\":{\"status\":0},\"body\":{\"message\":{\"text\":\"a\tb\u{1}c\nd\"}}}";
        let v = parse_json(raw.as_bytes())?;
        assert_eq!(v["body"]["message"]["text"], "a\tb\u{1}c\nd");
        // Escaped quotes and backslashes stay as they are beside a raw TAB.
        let esc = b"{\"a\":\"x\\\"\\\\y\tz\",\"b\":\"\\u0041\"}";
        let v = parse_json(esc)?;
        assert_eq!(
            (v["a"].as_str(), v["b"].as_str()),
            (Some("x\"\\y\tz"), Some("A"))
        );
        // Invalid UTF-8 inside a string does not make the whole reply unreadable.
        let bad_utf8 = b"{\"a\":\"\xff\xfe\"}";
        assert!(parse_json(bad_utf8)?["a"].is_string());
        assert!(matches!(
            parse_json(b"<html>502</html>"),
            Err(Error::Protocol(_))
        ));
        Ok(())
    }

    #[test]
    fn vendor_numbers() {
        assert_eq!(as_i64_loose(&json!("1,234.00")), Some(1234));
        assert_eq!(as_i64_loose(&json!(" 10001 ")), Some(10001));
        assert_eq!(as_i64_loose(&json!("")), None);
        assert_eq!(as_i64_loose(&json!("abc")), None);
        assert_eq!(as_i64_loose(&json!("NaN")), None);
    }

    #[test]
    fn status_eleven_is_a_retryable_server_error() {
        let e = env(json!({"header":{"status":"11","message":"数据库连接超时"}}));
        match e {
            Err(err @ Error::ServerException(_)) => {
                assert!(err.to_string().contains("数据库连接超时"));
                assert_eq!(err.retry_class(), RetryClass::Retry);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_login(&json!({"header":{"status":"11","message":"x"}})),
            Err(Error::ServerException(_))
        ));
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
    fn written_id() -> Result<()> {
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
