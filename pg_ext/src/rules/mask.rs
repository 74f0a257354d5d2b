//! Masking of personal data for logs, views and the ERP audit trail.
//!
//! Rule: never show more than about half of the characters.
//! * 11+ characters (a mobile): first 3 + `****` + last 4 (`138****1234`)
//! * 7..=10 characters: first 2 + `****` + last 2
//! * 3..=6 characters: `****` + last 1
//! * 0..=2 characters: `****`
//!
//! Input that normalises to a mainland mobile is normalised first (`+86 138-0013-8000` → `138****8000`).

use super::mobile::normalize_mobile;

pub fn mask_mobile(raw: &str) -> String {
    let normalized = normalize_mobile(raw);
    let s = normalized.as_deref().unwrap_or(raw);
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        11.. => (3, 4),
        7..=10 => (2, 2),
        3..=6 => (0, 1),
        _ => (0, 0),
    };
    let mut out: String = chars[..head].iter().collect();
    out.push_str("****");
    out.extend(&chars[n - tail..]);
    out
}

/// Bank / account numbers: `****` + last 4 (only `****` when there are 4 characters or fewer).
pub fn mask_account(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().filter(|c| !c.is_whitespace()).collect();
    let n = chars.len();
    let mut out = String::from("****");
    if n > 4 {
        out.extend(&chars[n - 4..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_mobiles() {
        assert_eq!(mask_mobile("13812341234"), "138****1234");
        assert_eq!(mask_mobile("+86 138-1234-1234"), "138****1234");
        assert_eq!(mask_mobile("1380013"), "13****13");
        assert_eq!(mask_mobile("12345"), "****5");
        assert_eq!(mask_mobile("12"), "****");
        assert_eq!(mask_mobile(""), "****");
        assert_eq!(
            mask_mobile("电话号码是一二三四五六七"),
            "电话号****四五六七"
        );
    }

    #[test]
    fn masks_accounts() {
        assert_eq!(mask_account("6222021234567890"), "****7890");
        assert_eq!(mask_account("6222 0212 3456 7890"), "****7890");
        assert_eq!(mask_account("1234"), "****");
        assert_eq!(mask_account(""), "****");
    }
}
