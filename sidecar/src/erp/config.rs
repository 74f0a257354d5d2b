//! `[erp]` section of `erp-sync.toml`: where the ERP is, how to log in, the values the vendor's
//! reference requires that the platform does not have (客户分类, 跟进程度, 跟进方式, 日程类型), and
//! the knobs for the parts of the protocol that are not documented (session lifetime, update
//! endpoint, delete endpoint). `docs/zhibang-protocol.md` lists every field we send and its key.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::types::CustomerKind;

/// How [`crate::erp::ErpClient::edit_customer`] updates an existing customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpdateMode {
    /// `custom/add.asp?intsort=N` with `cmdkey "__sys_dosave"` and the existing `ord` (default).
    #[default]
    Save,
    /// `/webapi/v3/sales/customer/edit` with the `ZBAPI-Token` header.
    Webapi,
}

/// Configuration of the ERP client. `Debug` redacts the password.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ErpConfig {
    /// Base URL, e.g. `http://erp.example.com:46088` (no trailing path).
    pub base_url: String,
    pub username: String,
    pub password: String,
    /// Device label sent at login (up to 20 letters/digits). Empty: 20 random alphanumerics per client.
    pub serialnum: String,
    /// Timeout of every HTTP call, whole request including the body (ms).
    pub timeout_ms: u64,
    /// Assumed session lifetime: the client logs in again proactively after this (ms). Expiry reported
    /// by the server earlier is handled anyway.
    pub session_ttl_ms: u64,
    /// After a failed login, automatic re-logins are refused for this long (ms), doubling per failure.
    pub relogin_backoff_ms: u64,
    /// Cap of the doubling backoff (ms).
    pub relogin_backoff_max_ms: u64,
    /// After this many consecutive failed logins the client stops logging in automatically (the real
    /// server asks for a captcha after more than 3); only an explicit `login()` tries again.
    pub max_login_failures: u32,
    /// Update endpoint, see [`UpdateMode`].
    pub update_mode: UpdateMode,
    /// 客户分类: a node id of the ERP's own category tree. Required by the vendor for every customer
    /// save (`sort1` on `custom/add.asp`, `sort` on the webapi). No default: find it with
    /// `erp-sync login --fields`. Env `ERP_SYNC_ERP_CUSTOMER_CATEGORY`.
    pub customer_category: String,
    /// Override of `customer_category` for 单位客户 (`intsort=1`); empty = `customer_category`.
    pub customer_category_company: String,
    /// Override of `customer_category` for 个人客户 (`intsort=2`); empty = `customer_category`.
    pub customer_category_personal: String,
    /// 跟进程度: webapi `sort1` (required there; only used with `update_mode = "webapi"`).
    pub follow_level: String,
    /// Follow-up (洽谈进展) fields.
    pub followup: FollowupConfig,
    /// Endpoint (path and query) and cmdkey of a customer delete (rollback of a create). Not
    /// documented for customers; the default follows the vendor's pattern `…list.asp?__msgid=delete`
    /// with cmdkey `delete` (删除合同明细). A copy of the server also has `custom/delete.asp`.
    pub delete_endpoint: String,
    pub delete_cmdkey: String,
    /// Field id on `person/add.asp` / `person/list.asp` that carries the customer's ord.
    pub person_customer_field: String,
    /// `pagesize` of the exact lookups (khid, mobile, persons) over the ERP's fuzzy list filters.
    pub lookup_page_size: u32,
    /// A lookup that would need more pages than this fails (retryable) instead of answering "absent".
    pub lookup_max_pages: u32,
}

/// Fields of `systemmanage/reply.asp?datatype=tel` (洽谈进展).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FollowupConfig {
    /// Field that carries the template id (vendor: `intro` 选择模板, required).
    pub template_field: String,
    /// Field that carries the conversation's content (see docs/zhibang-protocol.md for the choice).
    /// Empty = the content is not sent.
    pub content_field: String,
    /// 跟进方式 (vendor `sort`, required): 481 电话, 482 邮件, 483 上门, 484 其他.
    pub sort: i64,
    /// 日程类型 (vendor `plantype`, required): 0 不生成, 1 待完成日程, 2 已完成日程. 1 and 2 also send
    /// the schedule fields (`@ret_0/@ret_1/@title1` or `@ret2_0/@ret2_1/@title2/@intro2`, `@remind`).
    pub plantype: i64,
    /// `@remind` of a schedule (vendor: 0 提醒, 1 不提醒).
    pub remind: i64,
}

impl Default for FollowupConfig {
    fn default() -> Self {
        Self {
            template_field: "intro".into(),
            content_field: "@intro2".into(),
            sort: 484,
            plantype: 0,
            remind: 1,
        }
    }
}

/// Vendor enumeration of `sort` (跟进方式).
pub const FOLLOWUP_SORTS: [i64; 4] = [481, 482, 483, 484];

impl Default for ErpConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:46088".into(),
            username: String::new(),
            password: String::new(),
            serialnum: String::new(),
            timeout_ms: 30_000,
            session_ttl_ms: 7_200_000,
            relogin_backoff_ms: 5_000,
            relogin_backoff_max_ms: 300_000,
            max_login_failures: 2,
            update_mode: UpdateMode::Save,
            customer_category: String::new(),
            customer_category_company: String::new(),
            customer_category_personal: String::new(),
            follow_level: String::new(),
            followup: FollowupConfig::default(),
            delete_endpoint: "/sysa/mobilephone/salesmanage/custom/list.asp?__msgid=delete".into(),
            delete_cmdkey: "delete".into(),
            person_customer_field: "company".into(),
            lookup_page_size: 100,
            lookup_max_pages: 200,
        }
    }
}

impl ErpConfig {
    /// The 客户分类 id for a customer of `kind` (empty when not configured).
    pub fn category(&self, kind: CustomerKind) -> &str {
        let specific = match kind {
            CustomerKind::Company => &self.customer_category_company,
            CustomerKind::Personal => &self.customer_category_personal,
        };
        let s = specific.trim();
        if s.is_empty() {
            self.customer_category.trim()
        } else {
            s
        }
    }

    /// The checks that must pass before the sidecar writes to the ERP (`erp-sync run`,
    /// `erp-sync check-config`): every value the vendor requires has a source. Each message names
    /// the key and the vendor field.
    pub fn validate_for_writes(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        for kind in [CustomerKind::Company, CustomerKind::Personal] {
            if self.category(kind).is_empty() {
                let key = match kind {
                    CustomerKind::Company => "erp.customer_category_company",
                    CustomerKind::Personal => "erp.customer_category_personal",
                };
                return bad(format!(
                    "erp.customer_category is not set (nor {key}): the ERP requires 客户分类 \
                     (custom/add.asp `sort1`, webapi `sort`) on every customer save. Find the \
                     category id with `erp-sync login --fields` and set erp.customer_category \
                     (env ERP_SYNC_ERP_CUSTOMER_CATEGORY)"
                ));
            }
        }
        if self.update_mode == UpdateMode::Webapi && self.follow_level.trim().is_empty() {
            return bad(
                "erp.follow_level is not set: with erp.update_mode = \"webapi\" the ERP requires \
                 跟进程度 (webapi /sales/customer/edit `sort1`). Set erp.follow_level \
                 (env ERP_SYNC_ERP_FOLLOW_LEVEL)"
                    .into(),
            );
        }
        let f = &self.followup;
        if f.template_field.trim().is_empty() {
            return bad("erp.followup.template_field is empty: the ERP requires the template (reply.asp `intro`)".into());
        }
        if !FOLLOWUP_SORTS.contains(&f.sort) {
            return bad(format!(
                "erp.followup.sort = {}: the ERP's 跟进方式 (reply.asp `sort`) is one of 481 电话, 482 邮件, 483 上门, 484 其他",
                f.sort
            ));
        }
        if !(0..=2).contains(&f.plantype) {
            return bad(format!(
                "erp.followup.plantype = {}: the ERP's 日程类型 (reply.asp `plantype`) is 0 不生成, 1 待完成日程 or 2 已完成日程",
                f.plantype
            ));
        }
        if !(0..=1).contains(&f.remind) {
            return bad(format!(
                "erp.followup.remind = {}: the ERP's 是否提醒 (reply.asp `@remind`) is 0 提醒 or 1 不提醒",
                f.remind
            ));
        }
        if self.lookup_page_size == 0 || self.lookup_max_pages == 0 {
            return bad("erp.lookup_page_size and erp.lookup_max_pages must be > 0".into());
        }
        if !self.delete_endpoint.starts_with('/') {
            return bad(format!(
                "erp.delete_endpoint must be a path starting with /, got {:?}",
                self.delete_endpoint
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for ErpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpConfig")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("serialnum", &self.serialnum)
            .field("timeout_ms", &self.timeout_ms)
            .field("session_ttl_ms", &self.session_ttl_ms)
            .field("update_mode", &self.update_mode)
            .field("customer_category", &self.customer_category)
            .field("customer_category_company", &self.customer_category_company)
            .field(
                "customer_category_personal",
                &self.customer_category_personal,
            )
            .field("follow_level", &self.follow_level)
            .field("followup", &self.followup)
            .field("delete_endpoint", &self.delete_endpoint)
            .field("delete_cmdkey", &self.delete_cmdkey)
            .field("person_customer_field", &self.person_customer_field)
            .field("lookup_page_size", &self.lookup_page_size)
            .field("lookup_max_pages", &self.lookup_max_pages)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let cfg = ErpConfig {
            password: "s3cret-pw".into(),
            ..ErpConfig::default()
        };
        let s = format!("{cfg:?}");
        assert!(!s.contains("s3cret-pw"));
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn toml_defaults_and_unknown_fields() -> Result<(), Box<dyn std::error::Error>> {
        let cfg: ErpConfig = toml::from_str(
            "base_url = \"http://x\"\nupdate_mode = \"webapi\"\n[followup]\nsort = 481\n",
        )?;
        assert_eq!(cfg.update_mode, UpdateMode::Webapi);
        assert_eq!(cfg.timeout_ms, 30_000);
        assert_eq!(cfg.followup.sort, 481);
        assert_eq!(cfg.followup.plantype, 0);
        assert_eq!(cfg.followup.template_field, "intro");
        assert!(toml::from_str::<ErpConfig>("bogus = 1").is_err());
        // The spec-era keys are gone: a config that still has them is told so.
        assert!(toml::from_str::<ErpConfig>("webapi_sort2 = \"1\"").is_err());
        Ok(())
    }

    #[test]
    fn category_per_kind() {
        let cfg = ErpConfig {
            customer_category: " 11 ".into(),
            customer_category_personal: "12".into(),
            ..ErpConfig::default()
        };
        assert_eq!(cfg.category(CustomerKind::Company), "11");
        assert_eq!(cfg.category(CustomerKind::Personal), "12");
    }

    #[test]
    fn writes_need_a_category_and_valid_enums() {
        let none = ErpConfig::default();
        let msg = none.validate_for_writes().map_err(|e| e.to_string());
        assert!(
            matches!(&msg, Err(m) if m.contains("erp.customer_category") && m.contains("sort1")),
            "{msg:?}"
        );
        // One override is not enough: the other kind has no category.
        let half = ErpConfig {
            customer_category_company: "11".into(),
            ..ErpConfig::default()
        };
        let msg = half.validate_for_writes().map_err(|e| e.to_string());
        assert!(
            matches!(&msg, Err(m) if m.contains("erp.customer_category_personal")),
            "{msg:?}"
        );
        let ok = ErpConfig {
            customer_category: "11".into(),
            ..ErpConfig::default()
        };
        assert!(ok.validate_for_writes().is_ok());
        let webapi = ErpConfig {
            update_mode: UpdateMode::Webapi,
            ..ok.clone()
        };
        let msg = webapi.validate_for_writes().map_err(|e| e.to_string());
        assert!(
            matches!(&msg, Err(m) if m.contains("erp.follow_level") && m.contains("sort1")),
            "{msg:?}"
        );
        for (sort, plantype, remind) in [(480, 0, 1), (484, 3, 1), (484, 1, 2)] {
            let c = ErpConfig {
                followup: FollowupConfig {
                    sort,
                    plantype,
                    remind,
                    ..FollowupConfig::default()
                },
                ..ok.clone()
            };
            assert!(
                c.validate_for_writes().is_err(),
                "{sort} {plantype} {remind}"
            );
        }
    }
}
