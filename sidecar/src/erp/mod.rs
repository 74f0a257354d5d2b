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
//! [`Exchange`] (session/token/password removed, mobiles masked with `erp_sync_rules::mask`).
//! `take_exchanges()` drains the buffer. Clones made with `clone()` share the buffer; the untraced
//! client records nothing.
//!
//! ```ignore
//! let t = client.traced();
//! let res = t.save_customer(CustomerKind::Company, &fields).await;
//! let exchanges = t.take_exchanges(); // -> sync_log.request / response / duration_ms
//! ```
//!
//! ## The vendor's protocol
//! Requests follow the vendor's reference (`../shared/erp_api/`); `docs/zhibang-protocol.md` lists,
//! per endpoint, every field we send, where its value comes from and which key changes it.
//! Replies are read leniently (BOM, raw control characters, string cells, any content type, rows
//! as arrays / objects / one object). What counts is what the ERP holds:
//! - a customer save (create or update) succeeds only when it reads back with the fields sent
//!   ([`ErpClient::verify_save`]); a refusal carries the ERP's text verbatim (`Business`);
//! - a lookup (khid, mobile, persons) reads every page of the ERP's fuzzy filter and compares
//!   exactly; a lookup that cannot finish is an error, never "absent" ([`ErpClient::scan_customers`]);
//! - a delete counts when the customer no longer reads back.
//!
//! Assumptions (undocumented parts, all configurable in [`ErpConfig`]): the delete endpoint
//! (`delete_endpoint`, `delete_cmdkey`), the session lifetime (`session_ttl_ms`), the field that
//! carries a follow-up's content (`followup.content_field`).

pub mod client;
pub mod config;
pub mod customers;
pub mod list;
pub mod mask;
pub mod protocol;
pub mod records;
pub mod session;
pub mod types;

pub use client::ErpClient;
pub use config::{ErpConfig, FollowupConfig, UpdateMode};
pub use types::*;
