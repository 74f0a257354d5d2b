//! How a platform contact is known in the ERP.
//!
//! The contact's key is the platform's own id as text (a bigint `42`, a uuid
//! `0b6f…-…`, any text id); its ERP customer number (khid) is the setting
//! `customer.khid_format` (default `WX{key}`) with `{key}` replaced by it. Every create is
//! preceded by an exact lookup of the khid, which makes creates idempotent, so a khid must be
//! one the ERP stores as sent: at most [`KHID_MAX_CHARS`] characters (客户编号，文本，50字以内),
//! not empty, no surrounding whitespace (the ERP trims its fields). A format or key that breaks
//! this is refused ([`Error`]), never truncated: a truncated khid could be another contact's.

use crate::admission::Admission;
use crate::error::Error;

/// The vendor's limit of `khid` (客户编号，文本，50字以内), in characters.
pub const KHID_MAX_CHARS: usize = 50;

/// The setting holding the khid format (defaults in [`crate::settings`]).
pub const KHID_FORMAT_SETTING: &str = "customer.khid_format";

/// The default khid format: `WX42`, `WX0b6f2c1e-…`.
pub const DEFAULT_KHID_FORMAT: &str = "WX{key}";

/// Where the contact's key goes in a khid format.
pub const KEY_PLACEHOLDER: &str = "{key}";

/// The ERP customer number of the contact with key `key` under `format` (`{key}` replaced by
/// the key), or why there is none.
pub fn khid(key: &str, format: &str) -> Result<String, Error> {
    if !format.contains(KEY_PLACEHOLDER) {
        return Err(Error::KhidFormatWithoutKey {
            format: format.to_string(),
        });
    }
    if key.is_empty() || key.trim() != key {
        return Err(Error::KeyNotUsable {
            key: key.to_string(),
        });
    }
    let khid = format.replace(KEY_PLACEHOLDER, key);
    match check_khid(&khid) {
        Err(Error::KhidOverLimit { chars }) => Err(Error::KhidTooLong {
            chars,
            format: format.to_string(),
        }),
        other => other.map(|()| khid),
    }
}

/// A khid the ERP stores as sent: not empty, no surrounding whitespace, at most
/// [`KHID_MAX_CHARS`] characters.
pub fn check_khid(khid: &str) -> Result<(), Error> {
    let chars = khid.chars().count();
    if chars > KHID_MAX_CHARS {
        return Err(Error::KhidOverLimit { chars });
    }
    if khid.is_empty() || khid.trim() != khid {
        return Err(Error::KhidNotUsable {
            khid: khid.to_string(),
        });
    }
    Ok(())
}

/// A contact is created in the ERP only with a khid the ERP keeps as sent: on top of the
/// admission checks, a contact whose khid cannot be formed ([`khid`]) is not admitted (check
/// `khid` false, the reason appended). Returns the khid when there is one.
pub fn admit_khid(admission: &mut Admission, key: &str, format: &str) -> Option<String> {
    match khid(key, format) {
        Ok(k) => Some(k),
        Err(e) => {
            admission.passed = false;
            admission.checks.push(("khid", false));
            admission.reasons.push(e.to_string());
            None
        }
    }
}

/// Customer source (`ly`) of the customers the platform creates: 171 = 网站注册 (WeChat); also
/// the source the daily pull lists by default.
pub const LY_WECHAT: &str = "171";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn khid_default_format() {
        assert_eq!(khid("42", DEFAULT_KHID_FORMAT).as_deref(), Ok("WX42"));
        assert_eq!(khid("0", DEFAULT_KHID_FORMAT).as_deref(), Ok("WX0"));
        assert_eq!(khid("-1", DEFAULT_KHID_FORMAT).as_deref(), Ok("WX-1"));
        let uuid = "0b6f2c1e-8d4a-4f6b-9c3e-2a1d5e7f9b0c";
        let k = khid(uuid, DEFAULT_KHID_FORMAT).expect("uuid khid");
        assert_eq!(k, format!("WX{uuid}"));
        assert_eq!(k.chars().count(), 38);
        assert_eq!(LY_WECHAT, "171");
    }

    #[test]
    fn khid_other_formats() {
        assert_eq!(khid("42", "MP-{key}-A").as_deref(), Ok("MP-42-A"));
        assert_eq!(khid("42", "{key}").as_deref(), Ok("42"));
        assert!(matches!(
            khid("42", "WX"),
            Err(Error::KhidFormatWithoutKey { .. })
        ));
    }

    #[test]
    fn khid_limit_is_50_characters_never_truncated() {
        let key = "k".repeat(48);
        assert_eq!(khid(&key, "WX{key}").map(|k| k.chars().count()), Ok(50));
        let long = "k".repeat(49);
        match khid(&long, "WX{key}") {
            Err(Error::KhidTooLong { chars, .. }) => assert_eq!(chars, 51),
            other => panic!("expected too long, got {other:?}"),
        }
        // characters, not bytes: 50 CJK characters fit
        assert!(khid(&"客".repeat(48), "微信{key}").is_ok());
        let msg = khid(&long, "WX{key}").map_err(|e| e.to_string());
        assert!(
            msg.as_ref().is_err_and(|m| m.contains("51")
                && m.contains("50")
                && m.contains(KHID_FORMAT_SETTING)),
            "{msg:?}"
        );
    }

    #[test]
    fn a_contact_without_a_khid_is_not_admitted() {
        let mut a = Admission {
            passed: true,
            checks: vec![("has_name", true)],
            reasons: Vec::new(),
        };
        assert_eq!(
            admit_khid(&mut a, "42", DEFAULT_KHID_FORMAT).as_deref(),
            Some("WX42")
        );
        assert!(a.passed && a.checks.len() == 1 && a.reasons.is_empty());
        assert_eq!(
            admit_khid(&mut a, &"9".repeat(49), DEFAULT_KHID_FORMAT),
            None
        );
        assert!(!a.passed);
        assert_eq!(a.checks.last(), Some(&("khid", false)));
        assert!(a.reasons[0].contains("allows 50"), "{:?}", a.reasons);
    }

    #[test]
    fn keys_the_erp_would_change_are_refused() {
        for bad in ["", " 42", "42 ", "\t"] {
            assert!(
                matches!(
                    khid(bad, DEFAULT_KHID_FORMAT),
                    Err(Error::KeyNotUsable { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            khid("42", " {key}"),
            Err(Error::KhidNotUsable { .. })
        ));
        assert_eq!(check_khid("WX42"), Ok(()));
        assert_eq!(
            check_khid(&"x".repeat(51)),
            Err(Error::KhidOverLimit { chars: 51 })
        );
    }
}
