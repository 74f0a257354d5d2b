//! Secrets in the configuration: which keys are secret, their redaction for output, secret files.

use crate::error::{Error, Result};

/// Whether a key names a secret (its value is masked in output).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    (k.contains("password") && !k.ends_with("_file"))
        || k.contains("secret")
        || k.contains("token")
        || k == "session"
}

pub(super) fn redact_tree(v: &mut toml::Value, key: Option<&str>) {
    match v {
        toml::Value::Table(t) => {
            for (k, child) in t.iter_mut() {
                redact_tree(child, Some(k));
            }
        }
        toml::Value::String(s) => {
            if let Some(k) = key {
                if is_secret_key(k) {
                    if !s.is_empty() {
                        *s = "***".into();
                    }
                } else if k == "url" || k.ends_with("_url") {
                    *s = redact_url(s);
                }
            }
        }
        _ => {}
    }
}

/// Mask the password of a `scheme://user:password@host/...` URL and of a `password=...` key/value
/// connection string.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..auth_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
        return url.to_string();
    }
    url.split_whitespace()
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Read a secret file; trailing newline(s) are removed.
pub fn read_secret(path: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read secret file {path}: {e}")))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}
