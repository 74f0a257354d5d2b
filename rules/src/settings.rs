//! Documented defaults for `erp_sync.setting(key)`. Rows in `erp_sync.settings` override them;
//! `erp_sync.settings_effective` shows both. Keep this list and pg_ext/sql/README.md in step.

pub struct SettingDefault {
    pub key: &'static str,
    pub default: &'static str,
    pub description: &'static str,
}

pub const DEFAULTS: &[SettingDefault] = &[
    SettingDefault { key: "admission.min_name_chars", default: "2", description: "has_name passes when the name has MORE than this many characters (spec: 长度 > 2)" },
    SettingDefault { key: "admission.min_score", default: "60", description: "score_pass passes when score >= this (spec: 白名单评分 >= 60)" },
    SettingDefault { key: "admission.require_address", default: "false", description: "true: admission also needs a non-blank address (spec: 有详细地址); off by default" },
    SettingDefault { key: "admission.require_wechat", default: "false", description: "true: admission also needs a non-blank wechat_id (spec: 有微信号); off by default" },
    SettingDefault { key: "admission.require_conversation", default: "false", description: "true: admission also needs at least one signal of the contact (spec: 有沟通记录); a new signal then admits a contact held back only for this; off by default" },
    SettingDefault { key: "assign.top_min", default: "80", description: "thread score >= this: assign to a top rep" },
    SettingDefault { key: "assign.regular_min", default: "60", description: "thread score >= this (and < assign.top_min): assign to a regular rep; below: public pool" },
    SettingDefault { key: "customer.khid_format", default: crate::customer::DEFAULT_KHID_FORMAT, description: "the ERP customer number (khid) of a contact: {key} is replaced by the contact's key (its id as text); at most 50 characters, else the contact is rejected" },
    SettingDefault { key: "template.default", default: crate::templates::DEFAULT_TEMPLATE_SETTING, description: "follow-up template when no keyword matches" },
    SettingDefault { key: "capture.mode", default: "direct", description: "direct: the capture trigger decides (admission, outbox rows, rejections) in the writing statement; log: it writes one narrow capture-log row per statement and erp_sync.expand() (run by every claim) decides off the write path" },
    SettingDefault { key: "capture.log_rotate_xids", default: "65536", description: "capture.mode = log: transaction ids per capture-log table; a table all of whose rows are expanded is truncated once writers have moved to the other" },
    SettingDefault { key: "notify.channel", default: "erp_sync", description: "NOTIFY channel the capture trigger wakes idle sidecars on" },
    SettingDefault { key: "notify.idle_fresh", default: "30 seconds", description: "a worker counts as alive when its heartbeat is younger than this (wake-ups of idle workers, alert erp_login_failed, contact_status of rows waiting for a login)" },
    SettingDefault { key: "retention.done_days", default: "30", description: "finished outbox rows (done/skipped) older than this may be deleted by the sidecar" },
    SettingDefault { key: "retention.sync_log_days", default: "365", description: "sync_log rows older than this may be deleted by the sidecar" },
    SettingDefault { key: "alerts.window", default: "1 hour", description: "erp_sync.alerts: window of the success-rate and failure-count rules (spec: last hour)" },
    SettingDefault { key: "alerts.min_success_rate", default: "80", description: "erp_sync.alerts low_success_rate (critical) when the window's success rate in percent is below this" },
    SettingDefault { key: "alerts.max_failures", default: "10", description: "erp_sync.alerts too_many_failures (warning) when the window has MORE failed syncs than this" },
    SettingDefault { key: "alerts.no_success_after", default: "2 hours", description: "erp_sync.alerts no_recent_success (info) when there is work or history but no successful sync for this long" },
    SettingDefault { key: "alerts.max_dead", default: "0", description: "erp_sync.alerts dead_rows (warning) when MORE outbox rows than this are dead" },
    SettingDefault { key: "alerts.stuck_after", default: "30 minutes", description: "erp_sync.alerts stuck_queue (critical) when the oldest pending/running outbox row is older than this" },
];

pub fn default_for(key: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|d| d.key == key).map(|d| d.default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_unique_and_known() {
        let mut keys: Vec<_> = DEFAULTS.iter().map(|d| d.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), DEFAULTS.len());
        assert_eq!(default_for("admission.min_score"), Some("60"));
        assert_eq!(default_for("nope"), None);
    }
}
