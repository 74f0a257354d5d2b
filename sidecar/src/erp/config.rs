//! `[erp]` section of `erp-sync.toml`: where the ERP is, how to log in, and the knobs for the parts of
//! the protocol that are not documented (session lifetime, update endpoint, delete cmdkey, field ids).

use serde::{Deserialize, Serialize};

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
    /// cmdkey used on `custom/add.asp` to delete a customer (undocumented; assumed `delete`).
    pub delete_cmdkey: String,
    /// Field ids of `systemmanage/reply.asp` (follow-ups).
    pub followup: FollowupFields,
    /// Field id on `person/add.asp` / `person/list.asp` that carries the customer's ord.
    pub person_customer_field: String,
    /// Category ids required by `/webapi/v3/sales/customer/edit` (`sort`, `sort1`, `sort2`).
    pub webapi_sort: String,
    pub webapi_sort1: String,
    pub webapi_sort2: String,
    /// After a successful create, read the customer back (by khid, else by ord) and fail with a
    /// `Protocol` error when the ERP acknowledged a save it did not persist.
    pub verify_creates: bool,
}

/// Field ids of the follow-up call. Defaults are the spec's (`intro`, `c1`, `date1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FollowupFields {
    pub template_field: String,
    pub content_field: String,
    pub date_field: String,
    /// Optional vendor field (`sort`: 481 phone / 482 email / 483 visit / 484 other). Sent only when set
    /// here and the follow-up has a `sort` value.
    pub sort_field: Option<String>,
}

impl Default for FollowupFields {
    fn default() -> Self {
        Self {
            template_field: "intro".into(),
            content_field: "c1".into(),
            date_field: "date1".into(),
            sort_field: None,
        }
    }
}

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
            delete_cmdkey: "delete".into(),
            followup: FollowupFields::default(),
            person_customer_field: "company".into(),
            webapi_sort: "1".into(),
            webapi_sort1: "1".into(),
            webapi_sort2: "1".into(),
            verify_creates: true,
        }
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
            .field("relogin_backoff_ms", &self.relogin_backoff_ms)
            .field("relogin_backoff_max_ms", &self.relogin_backoff_max_ms)
            .field("max_login_failures", &self.max_login_failures)
            .field("update_mode", &self.update_mode)
            .field("delete_cmdkey", &self.delete_cmdkey)
            .field("followup", &self.followup)
            .field("person_customer_field", &self.person_customer_field)
            .field("webapi_sort", &self.webapi_sort)
            .field("webapi_sort1", &self.webapi_sort1)
            .field("webapi_sort2", &self.webapi_sort2)
            .field("verify_creates", &self.verify_creates)
            .finish()
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
        let cfg: ErpConfig = toml::from_str("base_url = \"http://x\"\nupdate_mode = \"webapi\"\n[followup]\nsort_field = \"sort\"\n")?;
        assert_eq!(cfg.update_mode, UpdateMode::Webapi);
        assert_eq!(cfg.timeout_ms, 30_000);
        assert_eq!(cfg.followup.content_field, "c1");
        assert_eq!(cfg.followup.sort_field.as_deref(), Some("sort"));
        assert!(toml::from_str::<ErpConfig>("bogus = 1").is_err());
        Ok(())
    }
}
