//! Business rules from the spec: pure functions (unit-tested with plain `#[test]`) plus their thin
//! SQL wrappers in [`sql`].

pub mod admission;
pub mod assignment;
pub mod mask;
pub mod mobile;
pub mod score;
pub mod settings;
pub mod templates;

pub mod sql;

/// `WX{id}`: the ERP customer number (khid) of a platform contact.
pub fn khid(contact_id: i64) -> String {
    format!("WX{contact_id}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn khid_format() {
        assert_eq!(super::khid(42), "WX42");
    }
}
