//! Mainland-China mobile numbers: normalisation and validation.
//!
//! A valid mobile is `^1[3-9]\d{9}$` after stripping spaces, dashes, dots, parentheses and a
//! `+86` / `0086` / `86` country prefix. Anything else is "not a mobile" (`None`).
//!
//! Admission ([`normalize_mobile`]) takes ASCII digits only: what it accepts is sent to the ERP.
//! Masking ([`normalize_mobile_lenient`], [`crate::mask`]) also reads full-width digits
//! (`１３８…`): a number a reader would recognise is hidden even where admission refuses it.

/// Characters a human (or a form) puts between digits that carry no meaning.
pub fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '-'
            | '.'
            | '('
            | ')'
            | '\u{00a0}'
            | '\u{3000}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{ff08}'
            | '\u{ff09}'
            | '\u{ff0d}'
    )
}

/// The value of a digit: ASCII `0`-`9` or full-width `０`-`９` (U+FF10..U+FF19).
pub fn digit_value(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '\u{ff10}'..='\u{ff19}' => u8::try_from(u32::from(c) - 0xff10).ok(),
        _ => None,
    }
}

/// Normalise `raw` to the 11-digit mainland mobile, or `None` when it is not one (ASCII digits
/// only: the admission rule).
pub fn normalize_mobile(raw: &str) -> Option<String> {
    normalize(raw, false)
}

/// [`normalize_mobile`] that also reads full-width digits and the full-width plus sign
/// (`＋８６ １３８…`): the masking rule's notion of "a mobile".
pub fn normalize_mobile_lenient(raw: &str) -> Option<String> {
    normalize(raw, true)
}

/// The key two mobiles compare by (reconciliation): the normalised mobile, else the digits
/// (ASCII or full-width) of whatever it is; `None` when there are no digits.
pub fn comparison_key(raw: &str) -> Option<String> {
    normalize_mobile_lenient(raw).or_else(|| {
        let digits: String = raw
            .chars()
            .filter_map(digit_value)
            .map(|d| char::from(b'0' + d))
            .collect();
        (!digits.is_empty()).then_some(digits)
    })
}

fn normalize(raw: &str, lenient: bool) -> Option<String> {
    // Cheap guard: a mobile with generous formatting is never longer than this.
    if raw.len() > 64 {
        return None;
    }
    let compact: String = raw
        .chars()
        .filter(|c| !is_separator(*c))
        .map(|c| match (lenient, c, digit_value(c)) {
            (true, '\u{ff0b}', _) => '+',
            (true, _, Some(d)) => char::from(b'0' + d),
            _ => c,
        })
        .collect();
    let digits = if let Some(rest) = compact.strip_prefix("+86") {
        rest
    } else if let Some(rest) = compact.strip_prefix("0086") {
        rest
    } else if compact.len() == 13 {
        compact.strip_prefix("86").unwrap_or(&compact)
    } else {
        &compact
    };
    is_valid_mobile(digits).then(|| digits.to_string())
}

/// `^1[3-9]\d{9}$`, exactly.
pub fn is_valid_mobile(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_formatted() {
        assert_eq!(
            normalize_mobile("13800138000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_mobile("138-0013-8000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_mobile(" 138 0013 8000 ").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_mobile("+86 138.0013.8000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_mobile("0086-13800138000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_mobile("8613800138000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_mobile("(+86)19912345678").as_deref(),
            Some("19912345678")
        );
    }

    #[test]
    fn rejects_non_mobiles() {
        for bad in [
            "",
            "1380013",
            "12800138000",
            "23800138000",
            "1380013800a",
            "138001380001",
            "010-12345678",
            "+1 13800138000",
            "１３８００１３８０００",
            "📱13800138000",
        ] {
            assert_eq!(normalize_mobile(bad), None, "{bad}");
        }
        assert_eq!(normalize_mobile(&"1".repeat(100_000)), None);
    }

    #[test]
    fn lenient_reads_full_width_digits() {
        assert_eq!(
            normalize_mobile_lenient("１３８００１３８０００").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_mobile_lenient("＋８６ １３８－００１３－８０００").as_deref(),
            Some("13800138000")
        );
        assert_eq!(
            normalize_mobile_lenient("+86 138-0013-8000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(normalize_mobile_lenient("１２８００１３８０００"), None);
        assert_eq!(normalize_mobile_lenient("📱13800138000"), None);
    }

    #[test]
    fn digit_values() {
        assert_eq!(digit_value('0'), Some(0));
        assert_eq!(digit_value('9'), Some(9));
        assert_eq!(digit_value('０'), Some(0));
        assert_eq!(digit_value('９'), Some(9));
        assert_eq!(digit_value('a'), None);
        assert_eq!(digit_value('٣'), None);
    }

    #[test]
    fn comparison_keys() {
        assert_eq!(
            comparison_key("+86 138-0000-0001").as_deref(),
            Some("13800000001")
        );
        assert_eq!(
            comparison_key("13800000001").as_deref(),
            Some("13800000001")
        );
        assert_eq!(
            comparison_key("８６１３８０００００００１").as_deref(),
            Some("13800000001")
        );
        assert_eq!(
            comparison_key("010-1234 5678").as_deref(),
            Some("01012345678")
        );
        assert_eq!(comparison_key(" - "), None);
    }
}
