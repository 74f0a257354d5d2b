//! Assignment tier from the thread score (spec scenario 3): `top` (≥ assign.top_min, default 80)
//! goes to a gold sales rep, `regular` (≥ assign.regular_min, default 60) to an ordinary rep,
//! anything else to the public pool (`public`, member1 = 1 in the ERP).

pub const TOP: &str = "top";
pub const REGULAR: &str = "regular";
/// The public pool: no rep (member1 = 1 in the ERP).
pub const PUBLIC: &str = "public";
pub const TIERS: [&str; 3] = [TOP, REGULAR, PUBLIC];

pub fn tier_for(score: Option<i64>, top_min: i64, regular_min: i64) -> &'static str {
    match score {
        Some(s) if s >= top_min => TOP,
        Some(s) if s >= regular_min => REGULAR,
        _ => PUBLIC,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(tier_for(Some(80), 80, 60), "top");
        assert_eq!(tier_for(Some(79), 80, 60), "regular");
        assert_eq!(tier_for(Some(60), 80, 60), "regular");
        assert_eq!(tier_for(Some(59), 80, 60), "public");
        assert_eq!(tier_for(None, 80, 60), "public");
        assert_eq!(tier_for(Some(95), 90, 70), "top");
    }
}
