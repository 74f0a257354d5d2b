//! Numbers as they are written in texts (admission reasons, the ERP's `intro`).

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
    fn whole_and_fractional() {
        assert_eq!(format_number(85.0), "85");
        assert_eq!(format_number(85.5), "85.5");
        assert_eq!(format_number(-3.0), "-3");
        assert_eq!(format_number(1e20), "100000000000000000000");
    }
}
