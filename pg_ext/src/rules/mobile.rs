//! Mainland-China mobile numbers: normalisation and validation.
//!
//! A valid mobile is `^1[3-9]\d{9}$` after stripping spaces, dashes, dots, parentheses and a
//! `+86` / `0086` / `86` country prefix. Anything else is "not a mobile" (`None`).

/// Characters a human (or a form) puts between digits that carry no meaning.
fn is_separator(c: char) -> bool {
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

/// Normalise `raw` to the 11-digit mainland mobile, or `None` when it is not one.
pub fn normalize_mobile(raw: &str) -> Option<String> {
    // Cheap guard: a mobile with generous formatting is never longer than this.
    if raw.len() > 64 {
        return None;
    }
    let compact: String = raw.chars().filter(|c| !is_separator(*c)).collect();
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
}
