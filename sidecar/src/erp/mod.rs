//! Zhibang ERP (智邦国际ERP) client.
//!
//! [`ErpClient`] is cheap to clone (an `Arc` inside) and shares one session across concurrent calls.
//! Every method returns [`crate::error::Result`]; errors are classified by
//! [`crate::Error::retry_class`]. A session timeout (`header.status` 1, webapi `Code` 400) triggers
//! exactly one re-login shared by every call that saw the same expired session (generation counter,
//! single flight), then the call is repeated once.
//!
//! ## Recording exchanges for `sync_log`
//! `client.traced()` returns a clone of the client with its own, empty exchange buffer: every HTTP
//! exchange made through that clone (including failed ones and the re-login retry) is appended as an
//! [`Exchange`] (session/token/password removed, mobiles masked with [`mask::mask_mobile`]).
//! `take_exchanges()` drains the buffer. Clones made with `clone()` share the buffer; the untraced
//! client records nothing.
//!
//! ```ignore
//! let t = client.traced();
//! let res = t.save_customer(CustomerKind::Company, &fields).await;
//! let exchanges = t.take_exchanges(); // -> sync_log.request / response / duration_ms
//! ```
//!
//! ## Assumptions (undocumented parts of the protocol, all configurable in [`ErpConfig`])
//! - Delete: `cmdkey "delete"` with `ord` on `custom/add.asp` (`delete_cmdkey`).
//! - Session lifetime 2 h (`session_ttl_ms`); expiry reported earlier by the server is handled anyway.
//! - Save success: `body.message` with `result` 1/true, or without `result` and no refusal keyword
//!   (失败, 已存在, 重复, 不能, 不允许, 错误, 无权, 不存在) in its text; otherwise `Business(text)`.
//! - Persons are attached to a customer through the field `company` (`person_customer_field`).

pub mod client;
pub mod config;
pub mod list;
pub mod mask;
pub mod protocol;
pub mod session;
pub mod types;

pub use client::ErpClient;
pub use config::{ErpConfig, FollowupFields, UpdateMode};
pub use mask::mask_mobile;
pub use types::*;
