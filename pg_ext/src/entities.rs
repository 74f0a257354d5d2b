//! The platform entities the extension tracks and their spec field names: what `track()` maps,
//! what the capture trigger reads (in this order: its arguments), what the payload functions and
//! the error hints name. Used by `capture` and `config` alike.

pub const CONTACT_FIELDS: &[&str] = &[
    "id",
    "type",
    "name",
    "company",
    "phone",
    "phone_verified",
    "score",
    "list_status",
    "wechat_id",
    "address",
    "contact_person",
    "contact_phone",
    "email",
    "notes",
];
pub const THREAD_FIELDS: &[&str] = &["id", "contact_id", "score", "summary"];
pub const SIGNAL_FIELDS: &[&str] = &["id", "contact_id", "content", "ts"];
/// A sync trigger: a row of any other table (an order, a payment) asks for a sync of its contact;
/// `condition`, when mapped, is a boolean column and only a row where it is (or turns) true asks.
pub const TRIGGER_FIELDS: &[&str] = &["contact_id", "condition"];
pub const ENTITIES: &[&str] = &["contact", "thread", "signal", "trigger"];

/// Spec field names of an entity (empty for an unknown entity).
pub fn fields(entity: &str) -> &'static [&'static str] {
    match entity {
        "contact" => CONTACT_FIELDS,
        "thread" => THREAD_FIELDS,
        "signal" => SIGNAL_FIELDS,
        "trigger" => TRIGGER_FIELDS,
        _ => &[],
    }
}

/// Fields that must map to a column.
pub fn required(entity: &str) -> &'static [&'static str] {
    match entity {
        "contact" => &["id"],
        "thread" | "signal" => &["id", "contact_id"],
        "trigger" => &["contact_id"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_required() {
        // The spec's fields in trigger-argument order: the triggers of tables tracked before pass
        // their columns in this order, so it may only grow at the end.
        assert_eq!(
            fields("contact"),
            &[
                "id",
                "type",
                "name",
                "company",
                "phone",
                "phone_verified",
                "score",
                "list_status",
                "wechat_id",
                "address",
                "contact_person",
                "contact_phone",
                "email",
                "notes"
            ]
        );
        assert_eq!(fields("thread"), &["id", "contact_id", "score", "summary"]);
        assert_eq!(fields("signal"), &["id", "contact_id", "content", "ts"]);
        assert_eq!(fields("trigger"), &["contact_id", "condition"]);
        assert_eq!(required("trigger"), &["contact_id"]);
        assert!(fields("nope").is_empty());
        assert_eq!(required("contact"), &["id"]);
        assert_eq!(required("thread"), &["id", "contact_id"]);
        assert_eq!(required("signal"), &["id", "contact_id"]);
        assert!(required("nope").is_empty());
    }
}
