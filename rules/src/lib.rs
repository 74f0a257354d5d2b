//! The business rules of erp_sync, in one place (spec: 准入检查, 数据脱敏, `map_score_to_value`,
//! `select_template`, khid (`WX{key}` by default), 客户来源 171, assignment tiers). Pure functions, unit-tested
//! here; the extension (`pg_ext`, as thin `#[pg_extern]` wrappers in `pg_ext/src/rules/sql.rs`)
//! and the sidecar call them. Nothing here is copied elsewhere: change a rule here and both
//! sides change. The ERP simulator (`sidecar/src/sim`) deliberately does not use this crate.
//!
//! | module | rule |
//! |---|---|
//! | [`mobile`] | mainland mobile normalisation (`+86 138-0013-8000` → `13800138000`), comparison key |
//! | [`mask`] | masking: a mobile in any notation → `138****1234`, mobiles inside free text and JSON, accounts |
//! | [`admission`] | may a contact be created in the ERP (the six checks, with reasons) |
//! | [`score`] | thread score → ERP value assessment `jz` |
//! | [`customer`] | khid (`customer.khid_format`, default `WX{key}`, at most 50 characters), customer source `ly` = 171 |
//! | [`error`] | why a rule refuses its input (the crate's one error type) |
//! | [`templates`] | follow-up template by keyword, default 120 |
//! | [`assignment`] | assignment tier from the thread score |
//! | [`settings`] | documented defaults of `erp_sync.setting(key)` |
//! | [`numbers`] | how a score is written in texts (`85`, `85.5`) |

pub mod admission;
pub mod assignment;
pub mod customer;
pub mod error;
pub mod mask;
pub mod mobile;
pub mod numbers;
pub mod score;
pub mod settings;
pub mod templates;

pub use customer::{khid, DEFAULT_KHID_FORMAT, KHID_FORMAT_SETTING, KHID_MAX_CHARS, LY_WECHAT};
pub use error::Error;
pub use mask::{mask_account, mask_json, mask_mobile, mask_text};
pub use mobile::normalize_mobile;
pub use numbers::parse_number;
pub use score::score_to_value;
pub use templates::DEFAULT_TEMPLATE_ID;
