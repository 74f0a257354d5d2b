//! The one error type of the rules crate: why a rule refuses its input.

/// Why a rule refuses (each message says what to change).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `customer.khid_format` does not contain `{key}`: every contact would get the same khid.
    #[error("khid: the format {format:?} (setting customer.khid_format) has no {{key}}, so every contact would get the same ERP customer number")]
    KhidFormatWithoutKey { format: String },
    /// The contact key is empty or has surrounding whitespace (the ERP trims its fields, so an
    /// exact khid lookup would never find the customer again).
    #[error("khid: the contact key {key:?} is empty or has surrounding whitespace, which the ERP would not keep as sent")]
    KeyNotUsable { key: String },
    /// The khid is longer than the ERP allows (客户编号，50字以内).
    #[error("khid: the format {format:?} (setting customer.khid_format) gives {chars} characters for this contact; the ERP allows 50 (客户编号，50字以内)")]
    KhidTooLong { chars: usize, format: String },
    /// A khid (not formed here) is longer than the ERP allows.
    #[error("khid: {chars} characters; the ERP allows 50 (客户编号，50字以内)")]
    KhidOverLimit { chars: usize },
    /// The khid is empty or has surrounding whitespace.
    #[error("khid: {khid:?} is empty or has surrounding whitespace, which the ERP would not keep as sent (setting customer.khid_format)")]
    KhidNotUsable { khid: String },
}
