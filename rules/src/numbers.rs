//! Numbers as they are written in texts (admission reasons, the ERP's `intro`), and numbers a
//! platform stores as text (`'85'`, `' 85 '`, `'85.0'`).

/// A number a platform wrote as text: surrounding blanks ignored, decimal or exponent notation;
/// `None` for anything else, and for NaN or infinities (`'NaN'`, `'inf'` are not scores).
pub fn parse_number(s: &str) -> Option<f64> {
    let n: f64 = s.trim().parse().ok()?;
    n.is_finite().then_some(n)
}

/// `85` for 85.0, `85.5` for 85.5 (whole numbers without a fraction, others as Rust prints them).
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_given_as_text() {
        for (text, n) in [
            ("85", 85.0),
            (" 85 ", 85.0),
            ("85.0", 85.0),
            ("\t-3.5\n", -3.5),
            ("1e2", 100.0),
            ("+7", 7.0),
        ] {
            assert_eq!(parse_number(text), Some(n), "{text:?}");
        }
        for text in [
            "",
            " ",
            "85分",
            "八十五",
            "NaN",
            "inf",
            "-infinity",
            "1,000",
            "0x55",
            "85 90",
        ] {
            assert_eq!(parse_number(text), None, "{text:?}");
        }
    }

    #[test]
    fn whole_and_fractional() {
        assert_eq!(format_number(85.0), "85");
        assert_eq!(format_number(85.5), "85.5");
        assert_eq!(format_number(-3.0), "-3");
        assert_eq!(format_number(1e20), "100000000000000000000");
    }
}
