//! Thread score → ERP value assessment (`jz`), from the spec's `map_score_to_value`.

/// ≥90 → 175 (很高), ≥75 → 289 (较高), ≥60 → 176 (一般), ≥45 → 177 (较低), else 290 (很低;
/// also NaN). Fractional scores compare as they are (89.9 → 289).
pub fn score_to_value(score: f64) -> i32 {
    if score >= 90.0 {
        175
    } else if score >= 75.0 {
        289
    } else if score >= 60.0 {
        176
    } else if score >= 45.0 {
        177
    } else {
        290
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_boundaries() {
        for (score, jz) in [
            (100.0, 175),
            (95.0, 175),
            (90.0, 175),
            (89.9, 289),
            (89.0, 289),
            (75.0, 289),
            (74.0, 176),
            (60.0, 176),
            (59.0, 177),
            (45.0, 177),
            (44.0, 290),
            (0.0, 290),
            (-5.0, 290),
            (f64::NAN, 290),
            (f64::INFINITY, 175),
        ] {
            assert_eq!(score_to_value(score), jz, "{score}");
        }
    }
}
