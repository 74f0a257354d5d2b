//! Follow-up template selection (spec scenario 2, `select_template`): the first template, in
//! priority order, with a keyword contained in the message wins; otherwise the default (120).

/// The default follow-up template (setting `template.default`, and what a follow-up row without
/// a template id is sent with).
pub const DEFAULT_TEMPLATE_ID: i32 = 120;
/// [`DEFAULT_TEMPLATE_ID`] as the documented default of the setting `template.default`.
pub const DEFAULT_TEMPLATE_SETTING: &str = "120";

/// One row of `erp_sync.followup_templates`, already sorted by (priority, template_id).
#[derive(Debug, Clone)]
pub struct Template {
    pub template_id: i32,
    pub keywords: Vec<String>,
}

pub fn pick_template(content: &str, templates: &[Template], default: i32) -> i32 {
    templates
        .iter()
        .find(|t| {
            t.keywords
                .iter()
                .any(|k| !k.is_empty() && content.contains(k.as_str()))
        })
        .map_or(default, |t| t.template_id)
}

/// The spec's keyword lists in the spec's order (also seeded into the table by dump.sql).
pub fn spec_templates() -> Vec<Template> {
    let t = |id, words: &[&str]| Template {
        template_id: id,
        keywords: words.iter().map(|w| w.to_string()).collect(),
    };
    vec![
        t(106, &["很好", "发合同", "签约"]),
        t(107, &["无人接听", "未接"]),
        t(108, &["还没考虑", "再等等"]),
        t(109, &["面谈", "见面"]),
        t(120, &["考虑中", "研究一下"]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        let t = spec_templates();
        assert_eq!(pick_template("客户说很好，请发合同", &t, 120), 106);
        assert_eq!(pick_template("电话无人接听", &t, 120), 107);
        assert_eq!(pick_template("还没考虑好", &t, 120), 108);
        assert_eq!(pick_template("约了下周见面", &t, 120), 109);
        assert_eq!(pick_template("还在研究一下", &t, 120), 120);
        assert_eq!(pick_template("hello 👋", &t, 120), 120);
        assert_eq!(pick_template("", &t, 999), 999);
        // priority: 106 beats 109 when both match
        assert_eq!(pick_template("见面后说很好", &t, 120), 106);
    }

    #[test]
    fn default_template_constants_agree() {
        assert_eq!(
            DEFAULT_TEMPLATE_SETTING.parse::<i32>(),
            Ok(DEFAULT_TEMPLATE_ID)
        );
        assert_eq!(
            crate::settings::default_for("template.default"),
            Some(DEFAULT_TEMPLATE_SETTING)
        );
    }

    #[test]
    fn empty_keywords_never_match() {
        let t = vec![Template {
            template_id: 1,
            keywords: vec![String::new()],
        }];
        assert_eq!(pick_template("anything", &t, 120), 120);
    }
}
