//! Fault injection: settings (start-up flags, changed at run time through `POST /_sim/faults`) and the
//! per-request decision.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// "Refuse the write when field `field` = `value`" (on any write endpoint whose path contains
/// `path`, if set). The reply is a business refusal with `text` (default 保存失败：…不允许).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusalRule {
    pub field: String,
    pub value: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
}

impl RefusalRule {
    pub fn text(&self) -> String {
        self.text
            .clone()
            .unwrap_or_else(|| format!("保存失败：{}={} 不允许", self.field, self.value))
    }
}

/// Run-time fault settings. Rates are probabilities in [0, 1]; `*_next` counters inject the fault into
/// the next N matching requests deterministically (checked before the rates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added latency per request (ms), plus uniform jitter in [0, jitter_ms].
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// HTTP 5xx replies (status `error_status`).
    pub error_rate: f64,
    pub error_status: u16,
    pub error_next: u32,
    /// Requests that hang for `hang_ms` before being answered (client timeouts).
    pub hang_rate: f64,
    pub hang_ms: u64,
    pub hang_next: u32,
    /// Replies with truncated JSON.
    pub malformed_rate: f64,
    pub malformed_next: u32,
    /// Replies `body.message.text = "服务器异常…"` (webapi: `Code` 500).
    pub server_exception_rate: f64,
    pub server_exception_next: u32,
    /// Customer saves answered "保存成功" without storing anything.
    pub not_persisted_rate: f64,
    pub not_persisted_next: u32,
    /// Replies `{"header":{"status":"11","message":"数据库连接超时"}}` with no body (nothing processed).
    pub status11_rate: f64,
    pub status11_next: u32,
    /// Writes (`__sys_dosave`, `delete`, webapi add/edit) processed and stored, whose reply is then lost:
    /// alternately an HTTP 502 with an HTML body and a connection dropped mid-response.
    pub lost_reply_rate: f64,
    pub lost_reply_next: u32,
    /// Replies whose JSON carries raw (unescaped) control characters (TAB, 0x01) inside a string.
    pub control_chars_rate: f64,
    pub control_chars_next: u32,
    /// Replies starting with a UTF-8 BOM (EF BB BF).
    pub bom_rate: f64,
    pub bom_next: u32,
    /// The next N session-bearing calls find their session expired (the session is invalidated).
    pub expire_next: u32,
    /// Business refusals for chosen field values.
    pub refuse: Vec<RefusalRule>,
    /// Only requests whose path contains one of these get the transport-level faults (latency, 5xx,
    /// hang, malformed, status 11, server exception, lost reply, control chars, BOM); empty = every non-admin path.
    pub paths: Vec<String>,
    /// Refuse a customer whose mobile another customer already has.
    pub duplicate_mobile_rule: bool,
    /// Session lifetime for new sessions (ms).
    pub session_ttl_ms: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            error_status: 503,
            error_next: 0,
            hang_rate: 0.0,
            hang_ms: 60_000,
            hang_next: 0,
            malformed_rate: 0.0,
            malformed_next: 0,
            server_exception_rate: 0.0,
            server_exception_next: 0,
            not_persisted_rate: 0.0,
            not_persisted_next: 0,
            status11_rate: 0.0,
            status11_next: 0,
            lost_reply_rate: 0.0,
            lost_reply_next: 0,
            control_chars_rate: 0.0,
            control_chars_next: 0,
            bom_rate: 0.0,
            bom_next: 0,
            expire_next: 0,
            refuse: Vec::new(),
            paths: Vec::new(),
            duplicate_mobile_rule: true,
            session_ttl_ms: 7_200_000,
        }
    }
}

/// What happens to one request before it is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    None,
    HttpError(u16),
    Hang(u64),
    Malformed,
    Status11,
    ServerException,
}

/// What happens to one reply after the request was processed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct After {
    /// The reply is lost (502 or dropped connection); the write was stored.
    pub lost: bool,
    /// Raw control characters inside a JSON string.
    pub control_chars: bool,
    /// A UTF-8 BOM before the JSON.
    pub bom: bool,
}

impl Faults {
    fn path_matches(&self, path: &str) -> bool {
        self.paths.is_empty() || self.paths.iter().any(|p| path.contains(p.as_str()))
    }

    /// Decide the transport-level fault and latency of one request; `roll` yields uniform [0,1) numbers.
    pub fn decide(&mut self, path: &str, mut roll: impl FnMut() -> f64) -> (Injected, u64) {
        if !self.path_matches(path) {
            return (Injected::None, 0);
        }
        let latency = self.latency_ms
            + if self.jitter_ms > 0 {
                (roll() * (self.jitter_ms + 1) as f64) as u64
            } else {
                0
            };
        let inj = if take(&mut self.error_next) || hit(self.error_rate, &mut roll) {
            Injected::HttpError(self.error_status)
        } else if take(&mut self.hang_next) || hit(self.hang_rate, &mut roll) {
            Injected::Hang(self.hang_ms)
        } else if take(&mut self.malformed_next) || hit(self.malformed_rate, &mut roll) {
            Injected::Malformed
        } else if take(&mut self.status11_next) || hit(self.status11_rate, &mut roll) {
            Injected::Status11
        } else if take(&mut self.server_exception_next)
            || hit(self.server_exception_rate, &mut roll)
        {
            Injected::ServerException
        } else {
            Injected::None
        };
        (inj, latency)
    }

    /// Decide the reply-level faults of a processed request (`write`: a save/delete).
    pub fn after(&mut self, path: &str, write: bool, mut roll: impl FnMut() -> f64) -> After {
        if !self.path_matches(path) {
            return After::default();
        }
        let lost =
            write && (take(&mut self.lost_reply_next) || hit(self.lost_reply_rate, &mut roll));
        if lost {
            return After {
                lost,
                ..After::default()
            };
        }
        After {
            lost,
            control_chars: take(&mut self.control_chars_next)
                || hit(self.control_chars_rate, &mut roll),
            bom: take(&mut self.bom_next) || hit(self.bom_rate, &mut roll),
        }
    }

    /// Whether this customer save is acknowledged without being stored.
    pub fn not_persisted(&mut self, roll: impl FnMut() -> f64) -> bool {
        take(&mut self.not_persisted_next) || hit(self.not_persisted_rate, roll)
    }

    /// Whether this session-bearing call finds its session expired.
    pub fn expire(&mut self) -> bool {
        take(&mut self.expire_next)
    }

    /// The refusal text if a rule matches the request's fields.
    pub fn refusal(&self, path: &str, get: impl Fn(&str) -> Option<String>) -> Option<String> {
        self.refuse
            .iter()
            .filter(|r| r.path.as_deref().is_none_or(|p| path.contains(p)))
            .find(|r| get(&r.field).as_deref() == Some(r.value.as_str()))
            .map(RefusalRule::text)
    }

    /// Apply a JSON merge patch (top-level keys) to the settings.
    pub fn patched(&self, patch: &Value) -> Result<Faults, String> {
        let Value::Object(p) = patch else {
            return Err("faults patch must be a JSON object".into());
        };
        let mut cur = serde_json::to_value(self).map_err(|e| e.to_string())?;
        if let Value::Object(c) = &mut cur {
            for (k, v) in p {
                if k == "expire_sessions_now" {
                    continue;
                }
                if !c.contains_key(k) {
                    return Err(format!("unknown fault setting {k:?}"));
                }
                c.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(cur).map_err(|e| e.to_string())
    }
}

fn take(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

fn hit(rate: f64, mut roll: impl FnMut() -> f64) -> bool {
    rate > 0.0 && roll() < rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn next_counters_are_deterministic() {
        let mut f = Faults {
            error_next: 1,
            malformed_next: 1,
            ..Faults::default()
        };
        assert_eq!(f.decide("/x", || 0.5).0, Injected::HttpError(503));
        assert_eq!(f.decide("/x", || 0.5).0, Injected::Malformed);
        assert_eq!(f.decide("/x", || 0.5).0, Injected::None);
    }

    #[test]
    fn rates_and_paths() {
        let mut f = Faults {
            hang_rate: 1.0,
            paths: vec!["list.asp".into()],
            latency_ms: 5,
            ..Faults::default()
        };
        assert_eq!(f.decide("/a/add.asp", || 0.0), (Injected::None, 0));
        assert_eq!(f.decide("/a/list.asp", || 0.0), (Injected::Hang(60_000), 5));
    }

    #[test]
    fn reply_faults() {
        let mut f = Faults {
            lost_reply_next: 1,
            bom_next: 1,
            status11_next: 1,
            ..Faults::default()
        };
        assert_eq!(f.decide("/x", || 0.5).0, Injected::Status11);
        assert_eq!(
            f.after("/x", false, || 0.5),
            After {
                bom: true,
                ..After::default()
            }
        );
        assert_eq!(
            f.after("/x", true, || 0.5),
            After {
                lost: true,
                ..After::default()
            }
        );
        assert_eq!(f.after("/x", true, || 0.5), After::default());
        let mut g = Faults {
            control_chars_rate: 1.0,
            paths: vec!["list.asp".into()],
            ..Faults::default()
        };
        assert!(!g.after("/add.asp", false, || 0.0).control_chars);
        assert!(g.after("/list.asp", false, || 0.0).control_chars);
    }

    #[test]
    fn patch() {
        let f = Faults::default();
        let g = f
            .patched(&json!({"error_rate": 0.5, "expire_sessions_now": true}))
            .unwrap_or_default();
        assert_eq!(g.error_rate, 0.5);
        assert!(f.patched(&json!({"nope": 1})).is_err());
        assert!(f.patched(&json!({"error_rate": "x"})).is_err());
        assert!(f.patched(&json!([1])).is_err());
    }

    #[test]
    fn refusal_rules() {
        let f = Faults {
            refuse: vec![RefusalRule {
                field: "name".into(),
                value: "坏".into(),
                text: None,
                path: None,
            }],
            ..Faults::default()
        };
        assert!(f
            .refusal("/x", |k| (k == "name").then(|| "坏".to_string()))
            .is_some());
        assert!(f.refusal("/x", |_| Some("好".to_string())).is_none());
    }
}
