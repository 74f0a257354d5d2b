//! Masking of personal data (spec §数据脱敏) for logs, views, `sync_log` and outbox errors: the one
//! implementation the extension (`erp_sync.mask_mobile`, `erp_sync.mask_text`,
//! `erp_sync.mask_jsonb`) and the sidecar (log fields, stored ERP texts, `sync_log`
//! request/response) both use.
//!
//! # A mobile value ([`mask_mobile`])
//! A value that is a mainland mobile in any notation ([`normalize_mobile_lenient`]: `+86`,
//! `0086`, `86` prefixes, spaces, dashes, dots, parentheses, full-width digits) becomes first 3 +
//! `****` + last 4 of its normalised 11 digits: `+86 138-1234-5678` → `138****5678`. Any other
//! value shows at most 7 of its characters:
//! * 11+ characters: first 3 + `****` + last 4
//! * 7..=10 characters: first 2 + `****` + last 2
//! * 3..=6 characters: `****` + last 1
//! * 0..=2 characters: `****`
//!
//! # Mobiles inside free text ([`mask_text`])
//! The text is read as *digit groups* (maximal runs of ASCII or full-width digits). Two groups
//! belong to one number when what stands between them is 1 to 3 separator characters (space,
//! tab, `-`, `.`, `(`, `)`, `+`, no-break and ideographic space, en/em dash, full-width
//! parentheses, hyphen, plus and full stop). A run of consecutive groups of one number whose
//! digits are exactly a mobile (`1[3-9]` + 9 digits), or `86` / `0086` followed by one, is a
//! mobile: the part from its first mobile digit to its last digit is replaced by the masked form
//! (`+86 139-0000-0779` → `+86 139****0779`, `手机13900000779已存在` → `手机139****0779已存在`,
//! `１３９０００００７７９` → `139****0779`). Letters, CJK text, quotes and any other character
//! end a number, so mobiles next to them are found too.
//!
//! What is left alone: a mobile's digits inside a longer digit group (`202401013900000779`,
//! an order id or timestamp, is not a mobile), numbers that do not normalise to a mobile
//! (`010-12345678`, `2026-11-29 13:45:00`, `123456789012`), and everything that is not a digit.
//! The rule errs on the side of hiding: any digits with separators that read as a mobile are
//! masked, whatever they were meant to be. Masking is idempotent.

use crate::mobile::{digit_value, is_separator, normalize_mobile_lenient};
use serde_json::Value;

/// `138****1234` from a normalised 11-digit mobile.
fn masked_mobile(digits: &[u8]) -> String {
    let mut out = String::with_capacity(11);
    out.extend(digits[..3].iter().map(|d| char::from(b'0' + d)));
    out.push_str("****");
    out.extend(
        digits[digits.len() - 4..]
            .iter()
            .map(|d| char::from(b'0' + d)),
    );
    out
}

/// Mask one phone value (see the module documentation).
pub fn mask_mobile(raw: &str) -> String {
    if let Some(m) = normalize_mobile_lenient(raw) {
        let digits: Vec<u8> = m.bytes().map(|b| b - b'0').collect();
        return masked_mobile(&digits);
    }
    let chars: Vec<char> = raw.chars().collect();
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

/// At most this many separator characters between two digit groups of one number (`) (`, ` - `).
const MAX_GAP: usize = 3;
/// The longest digit string that can hold a mobile: `0086` + 11 digits.
const MAX_DIGITS: usize = 15;

/// What may stand between the digit groups of one number.
fn is_gap_char(c: char) -> bool {
    is_separator(c) || matches!(c, '+' | '\u{ff0b}' | '\u{ff0e}')
}

/// A maximal run of digits: each digit's byte offset and value, and the byte offset after it.
struct Group {
    digits: Vec<(usize, u8)>,
    end: usize,
    /// Only separators (1..=MAX_GAP of them) stand between this group and the previous one.
    joined: bool,
}

fn digit_groups(s: &str) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut current: Option<Group> = None;
    // Characters since the last group ended, and whether all were separators.
    let (mut gap, mut gap_ok) = (0usize, true);
    for (i, c) in s.char_indices() {
        match digit_value(c) {
            Some(d) => {
                let g = current.get_or_insert_with(|| Group {
                    digits: Vec::new(),
                    end: i,
                    joined: !groups.is_empty() && gap_ok && (1..=MAX_GAP).contains(&gap),
                });
                g.digits.push((i, d));
                g.end = i + c.len_utf8();
            }
            None => {
                if let Some(g) = current.take() {
                    groups.push(g);
                    (gap, gap_ok) = (0, true);
                }
                gap += 1;
                gap_ok &= is_gap_char(c);
            }
        }
    }
    groups.extend(current);
    groups
}

/// Where the mobile starts in `digits`, when they are a mobile or `86` / `0086` + a mobile.
fn mobile_start(digits: &[u8]) -> Option<usize> {
    let is_mobile = |d: &[u8]| d.len() == 11 && d[0] == 1 && (3..=9).contains(&d[1]);
    match digits.len() {
        11 if is_mobile(digits) => Some(0),
        13 if digits[..2] == [8, 6] && is_mobile(&digits[2..]) => Some(2),
        15 if digits[..4] == [0, 0, 8, 6] && is_mobile(&digits[4..]) => Some(4),
        _ => None,
    }
}

/// The mobiles in `s` (see the module documentation): byte range of each (from its first mobile
/// digit to its last digit) and its 11 digits, in text order, not overlapping.
pub fn find_mobiles(s: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut found = Vec::new();
    if !s.chars().any(|c| digit_value(c).is_some()) {
        return found;
    }
    let groups = digit_groups(s);
    let mut i = 0;
    while i < groups.len() {
        let mut digits: Vec<(usize, u8)> = Vec::with_capacity(MAX_DIGITS);
        let mut hit = None;
        for (j, g) in groups.iter().enumerate().skip(i) {
            if j > i && !g.joined {
                break;
            }
            digits.extend_from_slice(&g.digits);
            if digits.len() > MAX_DIGITS {
                break;
            }
            let values: Vec<u8> = digits.iter().map(|(_, d)| *d).collect();
            if let Some(start) = mobile_start(&values) {
                hit = Some((j, start));
                break;
            }
        }
        match hit {
            Some((j, start)) => {
                let mobile: String = digits[start..]
                    .iter()
                    .map(|(_, d)| char::from(b'0' + d))
                    .collect();
                found.push((digits[start].0..groups[j].end, mobile));
                i = j + 1;
            }
            None => i += 1,
        }
    }
    found
}

/// Mask every mobile inside free text (see the module documentation).
pub fn mask_text(s: &str) -> String {
    let found = find_mobiles(s);
    if found.is_empty() {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for (range, mobile) in found {
        out.push_str(&s[at..range.start]);
        let digits: Vec<u8> = mobile.bytes().map(|b| b - b'0').collect();
        out.push_str(&masked_mobile(&digits));
        at = range.end;
    }
    out.push_str(&s[at..]);
    out
}

/// Mask every mobile in a JSON value: strings and object keys through [`mask_text`]; a number
/// that reads as a mobile (`13900000779`, `8613900000779`) becomes its masked string.
pub fn mask_json(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(mask_text(s)),
        Value::Number(n) => {
            let text = n.to_string();
            let masked = mask_text(&text);
            if masked == text {
                v.clone()
            } else {
                Value::String(masked)
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(mask_json).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, val)| (mask_text(k), mask_json(val)))
                .collect(),
        ),
        Value::Null | Value::Bool(_) => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_mobiles() {
        assert_eq!(mask_mobile("13812341234"), "138****1234");
        assert_eq!(mask_mobile("+86 138-1234-1234"), "138****1234");
        assert_eq!(mask_mobile("+8613812345678"), "138****5678");
        assert_eq!(mask_mobile("0086 13812345678"), "138****5678");
        assert_eq!(mask_mobile("(+86)139.0000.0779"), "139****0779");
        assert_eq!(mask_mobile("１３９０００００７７９"), "139****0779");
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

    /// The notations of the issue (and a few more), each inside a sentence.
    #[test]
    fn masks_every_common_notation_in_text() {
        let cases = [
            ("13900000779", "139****0779"),
            ("+86 139-0000-0779", "+86 139****0779"),
            ("+86-139 0000 0779", "+86-139****0779"),
            ("0086 13900000779", "0086 139****0779"),
            ("(+86)139.0000.0779", "(+86)139****0779"),
            ("（+86）139 0000 0779", "（+86）139****0779"),
            ("139 0000 0779", "139****0779"),
            ("139-0000-0779", "139****0779"),
            ("139.0000.0779", "139****0779"),
            ("1390 000 0779", "139****0779"),
            ("86-13900000779", "86-139****0779"),
            ("8613900000779", "86139****0779"),
            ("+8613900000779", "+86139****0779"),
            ("008613900000779", "0086139****0779"),
            ("１３９０００００７７９", "139****0779"),
            ("＋８６ １３９－００００－０７７９", "＋８６ 139****0779"),
            ("139\u{3000}0000\u{3000}0779", "139****0779"),
            ("139\u{a0}0000\u{a0}0779", "139****0779"),
            ("139 - 0000 - 0779", "139****0779"),
        ];
        for (notation, masked) in cases {
            assert_eq!(mask_text(notation), masked, "{notation}");
            assert_eq!(
                mask_text(&format!("ERP refused: 手机{notation}已存在。")),
                format!("ERP refused: 手机{masked}已存在。"),
                "{notation}"
            );
        }
    }

    #[test]
    fn masks_next_to_text_and_inside_json() {
        assert_eq!(mask_text("手机13812345678已存在"), "手机138****5678已存在");
        assert_eq!(mask_text("tel:13812345678;"), "tel:138****5678;");
        assert_eq!(
            mask_text("13900000779/13800001111,13700002222"),
            "139****0779/138****1111,137****2222"
        );
        assert_eq!(
            mask_text(r#"{"mobile":"+86 139-0000-0779","n":13800001111}"#),
            r#"{"mobile":"+86 139****0779","n":138****1111}"#
        );
        assert_eq!(
            mask_text("13900000779 13800001111"),
            "139****0779 138****1111"
        );
    }

    #[test]
    fn leaves_other_numbers_alone() {
        for s in [
            "",
            "短",
            "ord 123456789012",
            "订单号202401013900000779",
            "order 12345678901",
            "010-12345678",
            "2026-11-29 13:45:00.123456+08",
            "2026-11-29T13:45:00Z",
            "ERP ord 50013 at 1732867200",
            "12800138000",
            "23800138000",
            "138001380001",
            "1380013800",
            "price 1,390,000,0779",
            "v1.3.9 build 20240615",
            "IP 139.200.10.77",
            "139****0779",
        ] {
            assert_eq!(mask_text(s), s, "{s}");
        }
    }

    #[test]
    fn masking_is_idempotent() {
        for s in [
            "+86 139-0000-0779",
            "86 86 13900000779",
            "0086 0086 13900000779",
            "手机１３９０００００７７９",
        ] {
            let once = mask_text(s);
            assert_eq!(mask_text(&once), once, "{s}");
        }
    }

    #[test]
    fn masks_json_values() {
        let v = json!({"error": "手机 +86 139-0000-0779 已存在", "mobile": 13800001111u64,
                       "intl": 8613700002222u64, "ord": 5001, "list": ["13600003333", null, true],
                       "13500004444": "key"});
        let m = mask_json(&v);
        assert_eq!(m["error"], "手机 +86 139****0779 已存在");
        assert_eq!(m["mobile"], "138****1111");
        assert_eq!(m["intl"], "86137****2222");
        assert_eq!(m["ord"], 5001);
        assert_eq!(m["list"], json!(["136****3333", null, true]));
        assert_eq!(m["135****4444"], "key");
    }

    /// xorshift64*: deterministic pseudo-random numbers (no test flakes, no dependency).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[self.below(xs.len())]
        }
    }

    fn full_width(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '0'..='9' => char::from_u32(0xff10 + (c as u32 - '0' as u32)).unwrap_or(c),
                '+' => '＋',
                '-' => '－',
                _ => c,
            })
            .collect()
    }

    /// A random mobile written in a random notation.
    fn notation(rng: &mut Rng, mobile: &str) -> String {
        const PREFIXES: [&str; 10] = [
            "", "", "+86 ", "+86-", "+86", "0086 ", "0086", "86-", "86 ", "(+86)",
        ];
        const SEPS: [&str; 7] = ["", " ", "-", ".", " - ", "\u{3000}", "\u{a0}"];
        const SPLITS: [&[usize]; 5] = [&[11], &[3, 4, 4], &[3, 8], &[4, 3, 4], &[3, 3, 5]];
        let split = SPLITS[rng.below(SPLITS.len())];
        let sep = rng.pick(&SEPS);
        let mut body = String::new();
        let mut at = 0;
        for (k, len) in split.iter().enumerate() {
            if k > 0 {
                body.push_str(sep);
            }
            body.push_str(&mobile[at..at + len]);
            at += len;
        }
        let prefix = rng.pick(&PREFIXES);
        let mut s = match rng.below(3) {
            0 => format!("({}){}", prefix.trim(), body),
            _ => format!("{prefix}{body}"),
        };
        if rng.below(4) == 0 {
            s = full_width(&s);
        }
        s
    }

    /// The digits of `s` (full-width folded) with separators dropped: `*` and other text break runs.
    fn digit_projection(s: &str) -> String {
        s.chars()
            .filter(|c| !is_gap_char(*c))
            .map(|c| digit_value(c).map_or(c, |d| char::from(b'0' + d)))
            .collect()
    }

    /// Property: for random mobiles in random notations and contexts, the masked text never
    /// holds 7 or more consecutive digits of the mobile, keeps its first 3 and last 4, and
    /// leaves the context alone.
    #[test]
    fn random_mobiles_in_random_notations_never_leak() {
        const CONTEXTS: [(&str, &str); 9] = [
            ("", ""),
            ("手机", "已存在"),
            ("ERP refused: 客户手机号 ", " 重复"),
            (r#"{"error":"mobile "#, r#" exists","ord":5001}"#),
            ("tel:", ";"),
            ("2026-11-29 10:00:00 联系人 ", " 已添加"),
            ("ord 202611290001: ", "."),
            ("[", "]"),
            ("Mobile ", ", ext 12"),
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let mobile = format!("1{}{:09}", 3 + rng.below(7), rng.next() % 1_000_000_000);
            let written = notation(&mut rng, &mobile);
            let (before, after) = CONTEXTS[rng.below(CONTEXTS.len())];
            let text = format!("{before}{written}{after}");
            let masked = mask_text(&text);
            let projected = digit_projection(&masked);
            for w in 0..=4 {
                let window = &mobile[w..w + 7];
                assert!(
                    !projected.contains(window),
                    "{text:?} → {masked:?} still holds {window}"
                );
            }
            let expected = format!("{}****{}", &mobile[..3], &mobile[7..]);
            assert!(masked.contains(&expected), "{text:?} → {masked:?}");
            assert!(
                masked.starts_with(before) && masked.ends_with(after),
                "{text:?} → {masked:?}"
            );
            assert_eq!(mask_text(&masked), masked, "idempotent: {text:?}");
            assert_eq!(mask_mobile(&written), expected, "{written:?}");
        }
    }

    /// Property: text without a mobile-shaped number comes back unchanged, whatever else it holds.
    #[test]
    fn random_non_mobiles_are_unchanged() {
        let mut rng = Rng(42);
        for _ in 0..5_000 {
            // 1-10 or 12 digits, or 11 digits not starting 1[3-9]
            let n = match rng.below(3) {
                0 => format!("{}", rng.next() % 10_000_000_000),
                1 => format!("{:012}", rng.next() % 1_000_000_000_000),
                _ => format!("{}{:010}", 2 + rng.below(8), rng.next() % 10_000_000_000),
            };
            if n.len() == 11 && n.starts_with('1') {
                continue;
            }
            let text = format!("订单{n}已处理 at 2026-11-29 13:45:00");
            assert_eq!(mask_text(&text), text);
        }
    }

    #[test]
    fn finds_spans() {
        let s = "a +86 139-0000-0779 b １３８００００１１１１";
        let found = find_mobiles(s);
        assert_eq!(found.len(), 2);
        assert_eq!(&s[found[0].0.clone()], "139-0000-0779");
        assert_eq!(found[0].1, "13900000779");
        assert_eq!(found[1].1, "13800001111");
        assert!(find_mobiles("no digits").is_empty());
    }

    #[test]
    fn huge_inputs_are_linear_and_safe() {
        let s = "1 ".repeat(100_000);
        assert_eq!(mask_text(&s), s);
        let s = format!("{}13900000779", "x".repeat(100_000));
        assert!(mask_text(&s).ends_with("139****0779"));
    }
}
