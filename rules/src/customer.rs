//! How a platform contact is known in the ERP.

/// `WX{id}`: the ERP customer number (khid) of a platform contact. Every create is preceded by an
/// exact lookup of it, which makes creates idempotent.
pub fn khid(contact_id: i64) -> String {
    format!("WX{contact_id}")
}

/// Customer source (`ly`) of the customers the platform creates: 171 = 网站注册 (WeChat); also
/// the source the daily pull lists by default.
pub const LY_WECHAT: &str = "171";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn khid_format() {
        assert_eq!(khid(42), "WX42");
        assert_eq!(khid(0), "WX0");
        assert_eq!(khid(-1), "WX-1");
        assert_eq!(LY_WECHAT, "171");
    }
}
