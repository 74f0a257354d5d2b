//! Thread score → ERP value assessment (`jz`), from the spec's `map_score_to_value`.

/// ≥90 → 175 (很高), ≥75 → 289 (较高), ≥60 → 176 (一般), ≥45 → 177 (较低), else 290 (很低).
pub fn score_to_value(score: i64) -> i32 {
    match score {
        90.. => 175,
        75..=89 => 289,
        60..=74 => 176,
        45..=59 => 177,
        _ => 290,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_boundaries() {
        assert_eq!(score_to_value(100), 175);
        assert_eq!(score_to_value(90), 175);
        assert_eq!(score_to_value(89), 289);
        assert_eq!(score_to_value(75), 289);
        assert_eq!(score_to_value(74), 176);
        assert_eq!(score_to_value(60), 176);
        assert_eq!(score_to_value(59), 177);
        assert_eq!(score_to_value(45), 177);
        assert_eq!(score_to_value(44), 290);
        assert_eq!(score_to_value(-5), 290);
    }
}
