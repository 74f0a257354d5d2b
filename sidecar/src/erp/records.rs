//! Contact persons, assignment, follow-ups, and the customer form's fields (`login --fields`).
//!
//! Vendor rules implemented here (`../shared/erp_api/README.md`):
//! - `person/add.asp`: `company` (the customer's ord) and `person_name` (50) are required.
//! - `systemmanage/order.asp?datatype=tel`: `member1` (1 公开 / 0 指派) is required, `member2` the user.
//! - `systemmanage/reply.asp?datatype=tel`: `intro` (选择模板, 1000), `sort` (跟进方式) and `plantype`
//!   (日程类型) are required; plantype 1 also needs `@ret_0/@ret_1/@title1/@remind`, plantype 2
//!   `@ret2_0/@ret2_1/@title2/@intro2/@remind`.

use serde_json::Value;

use crate::error::{Error, Result};

use super::client::ErpClient;
use super::customers::clip;
use super::list;
use super::protocol::{self, as_string_loose, item};
use super::types::*;

/// The vendor's limit of the follow-up's text fields (`intro`, `@title*`, `@intro2`).
const FOLLOWUP_TEXT_MAX: usize = 1000;
/// What a schedule's title (`@title1/@title2`, 日程内容) says when the follow-up has no text.
const DEFAULT_SCHEDULE_TITLE: &str = "微信沟通";

fn cut(s: &str, max: usize) -> String {
    s.trim().chars().take(max).collect()
}

impl ErpClient {
    /// Contact persons of a customer (`person/list.asp` filtered by the customer, every page).
    pub async fn list_persons(&self, customer_ord: i64) -> Result<Vec<ErpPerson>> {
        let cfg = self.config();
        let field = cfg.person_customer_field.clone();
        let mut out = Vec::new();
        let mut expected = None;
        let mut pageindex = 1u32;
        loop {
            let d = vec![
                item(&field, customer_ord),
                item("pagesize", cfg.lookup_page_size),
                item("pageindex", pageindex),
            ];
            let env = self
                .mobile(protocol::PERSON_LIST, Some(protocol::CMD_REFRESH), d)
                .await?;
            let t = list::parse_table(&env)?;
            expected.get_or_insert(t.page.recordcount);
            let n = t.rows.len();
            out.extend(t.rows.into_iter().map(|r| list::person_from_row(r, &field)));
            if n == 0 || pageindex >= t.page.pagecount {
                break;
            }
            if pageindex >= cfg.lookup_max_pages {
                return Err(Error::Protocol(format!(
                    "the person list of ord {customer_ord} has more than erp.lookup_max_pages = {} pages",
                    cfg.lookup_max_pages
                )));
            }
            pageindex += 1;
        }
        let expected = expected.unwrap_or(0);
        if (out.len() as u64) < expected {
            return Err(Error::Protocol(format!(
                "person lookup incomplete: the ERP reported {expected} persons of ord {customer_ord} but its pages held {}",
                out.len()
            )));
        }
        // The filter is the customer's id; keep only rows that do not name another customer.
        out.retain(|p| p.customer_ord.is_none_or(|o| o == customer_ord));
        Ok(out)
    }

    /// `person/add.asp` `__sys_dosave`; returns the person's ord when the ERP reports one.
    pub async fn add_person(&self, customer_ord: i64, person: &Person) -> Result<Option<i64>> {
        let mut d = vec![
            item(&self.config().person_customer_field, customer_ord),
            item("person_name", clip("person_name", &person.name).as_ref()),
        ];
        for (id, v) in [
            ("mobile", &person.mobile),
            ("phone", &person.phone),
            ("email", &person.email),
        ] {
            if let Some(v) = v {
                d.push(item(id, clip(id, v).as_ref()));
            }
        }
        let env = self
            .mobile(protocol::PERSON_ADD, Some(protocol::CMD_SAVE), d)
            .await?;
        protocol::write_reply(&env)?.outcome()?;
        Ok(protocol::parse_written_id(&env))
    }

    /// `systemmanage/order.asp?datatype=tel`.
    pub async fn assign(&self, ord: i64, to: &Assignment) -> Result<()> {
        let (m1, m2) = match to {
            Assignment::Public => (1, String::new()),
            Assignment::To(u) => (0, u.clone()),
        };
        let endpoint = format!("{}?datatype=tel", protocol::ORDER);
        let d = vec![item("ord", ord), item("member1", m1), item("member2", m2)];
        let env = self.mobile(&endpoint, Some(protocol::CMD_SAVE), d).await?;
        protocol::write_reply(&env)?.outcome().map(|_| ())
    }

    /// The `datas` of a follow-up: template, 跟进方式, 日程类型, content, and the schedule fields
    /// that plantype 1 and 2 require.
    pub fn followup_datas(&self, ord: i64, f: &Followup) -> Vec<Value> {
        let cfg = &self.config().followup;
        let content = cut(&f.content, FOLLOWUP_TEXT_MAX);
        let title = if content.is_empty() {
            DEFAULT_SCHEDULE_TITLE.to_string()
        } else {
            cut(&content, 100)
        };
        let mut d: Vec<(String, Value)> = vec![
            ("ord".into(), Value::from(ord)),
            (cfg.template_field.clone(), Value::from(f.template_id)),
            ("sort".into(), Value::from(cfg.sort)),
            ("plantype".into(), Value::from(cfg.plantype)),
        ];
        match cfg.plantype {
            1 => d.extend([
                ("@ret_0".into(), Value::from(f.date.as_str())),
                ("@ret_1".into(), Value::from(f.date.as_str())),
                ("@title1".into(), Value::from(title)),
                ("@remind".into(), Value::from(cfg.remind)),
            ]),
            2 => d.extend([
                ("@ret2_0".into(), Value::from(f.date.as_str())),
                ("@ret2_1".into(), Value::from(f.date.as_str())),
                ("@title2".into(), Value::from(title)),
                (
                    "@intro2".into(),
                    Value::from(if content.is_empty() {
                        DEFAULT_SCHEDULE_TITLE
                    } else {
                        content.as_str()
                    }),
                ),
                ("@remind".into(), Value::from(cfg.remind)),
            ]),
            _ => {}
        }
        let field = cfg.content_field.trim();
        if !field.is_empty() && !content.is_empty() {
            match d.iter_mut().find(|(k, _)| k == field) {
                Some((_, v)) => *v = Value::from(content),
                None => d.push((field.to_string(), Value::from(content))),
            }
        }
        d.into_iter().map(|(k, v)| item(&k, v)).collect()
    }

    /// `systemmanage/reply.asp?datatype=tel` (洽谈进展).
    pub async fn add_followup(&self, ord: i64, f: &Followup) -> Result<()> {
        let endpoint = format!("{}?datatype=tel", protocol::REPLY);
        let env = self
            .mobile(
                &endpoint,
                Some(protocol::CMD_SAVE),
                self.followup_datas(ord, f),
            )
            .await?;
        protocol::write_reply(&env)?.outcome().map(|_| ())
    }

    /// The fields of the ERP's customer form for `kind` (the allocation reply's `bill.groups`),
    /// for an operator looking for the ids to configure. Allocates (and leaves unused) one ord.
    pub async fn customer_form(&self, kind: CustomerKind) -> Result<Vec<FormField>> {
        let env = self.allocation(kind).await?;
        let bill = env
            .body
            .get("bill")
            .or_else(|| env.root.get("bill"))
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "allocation reply without a bill: {}",
                    protocol::short(&env.root)
                ))
            })?;
        let mut out = Vec::new();
        let groups: Vec<&Value> = match bill.get("groups") {
            Some(Value::Array(g)) => g.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => Vec::new(),
        };
        let mut fields: Vec<&Value> = groups
            .iter()
            .filter_map(|g| g.get("fields"))
            .flat_map(|f| match f {
                Value::Array(a) => a.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .collect();
        if let Some(Value::Array(a)) = bill.get("fields") {
            fields.extend(a.iter());
        }
        for f in fields {
            let Some(id) = f.get("id").and_then(as_string_loose) else {
                continue;
            };
            let text = |keys: &[&str]| {
                keys.iter()
                    .find_map(|k| f.get(*k).and_then(as_string_loose))
            };
            let mut options = Vec::new();
            collect_options(f, 0, &mut options);
            out.push(FormField {
                id,
                caption: text(&["title", "text", "caption", "name"]).unwrap_or_default(),
                value: text(&["value", "val"]).unwrap_or_default(),
                required: text(&["must", "required", "notnull"])
                    .is_some_and(|m| matches!(m.trim(), "1" | "true" | "是")),
                options,
            });
        }
        Ok(out)
    }
}

/// Option lists under a form field, wherever the page puts them (`source.options`, `options`,
/// tree nodes): `(value, caption)` pairs.
fn collect_options(v: &Value, depth: usize, out: &mut Vec<(String, String)>) {
    if depth > 4 {
        return;
    }
    let Value::Object(o) = v else { return };
    for (k, child) in o {
        match (k.as_str(), child) {
            ("options" | "nodes" | "trees" | "items" | "children", Value::Array(items)) => {
                for it in items {
                    let get = |keys: &[&str]| {
                        keys.iter()
                            .find_map(|k| it.get(*k).and_then(as_string_loose))
                    };
                    if let (Some(val), Some(cap)) = (
                        get(&["value", "id", "ord"]),
                        get(&["text", "title", "name"]),
                    ) {
                        out.push((val, cap));
                    }
                    collect_options(it, depth + 1, out);
                }
            }
            (_, Value::Object(_)) => collect_options(child, depth + 1, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erp::{ErpConfig, FollowupConfig};
    use serde_json::json;

    fn client(followup: FollowupConfig) -> ErpClient {
        match ErpClient::new(ErpConfig {
            followup,
            ..ErpConfig::default()
        }) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    fn as_map(d: &[Value]) -> serde_json::Map<String, Value> {
        d.iter()
            .filter_map(|i| Some((i.get("id")?.as_str()?.to_string(), i.get("val")?.clone())))
            .collect()
    }

    fn followup(content: &str) -> Followup {
        Followup {
            template_id: 106,
            content: content.into(),
            date: "2026-12-01 10:00:00".into(),
        }
    }

    #[test]
    fn followup_plantype_0() {
        let m = as_map(&client(FollowupConfig::default()).followup_datas(7, &followup("想要报价")));
        assert_eq!(m["ord"], 7);
        assert_eq!(m["intro"], 106);
        assert_eq!(m["sort"], 484);
        assert_eq!(m["plantype"], 0);
        assert_eq!(m["@intro2"], "想要报价");
        assert!(!m.contains_key("c1") && !m.contains_key("date1") && !m.contains_key("@ret2_0"));
    }

    #[test]
    fn followup_plantype_1_and_2_send_the_schedule() {
        let one = client(FollowupConfig {
            plantype: 1,
            sort: 481,
            ..FollowupConfig::default()
        });
        let m = as_map(&one.followup_datas(7, &followup("")));
        for k in ["@ret_0", "@ret_1", "@title1", "@remind"] {
            assert!(m.contains_key(k), "{k}: {m:?}");
        }
        assert_eq!(
            (m["sort"].clone(), m["@title1"].clone()),
            (json!(481), json!("微信沟通"))
        );
        let two = client(FollowupConfig {
            plantype: 2,
            ..FollowupConfig::default()
        });
        let long = "长".repeat(1500);
        let m = as_map(&two.followup_datas(7, &followup(&long)));
        for k in ["@ret2_0", "@ret2_1", "@title2", "@intro2", "@remind"] {
            assert!(m.contains_key(k), "{k}: {m:?}");
        }
        assert_eq!(m["@ret2_0"], "2026-12-01 10:00:00");
        assert_eq!(m["@intro2"].as_str().map(|s| s.chars().count()), Some(1000));
        assert_eq!(m["@title2"].as_str().map(|s| s.chars().count()), Some(100));
    }

    #[test]
    fn form_options_anywhere() {
        let f = json!({"id":"sort1","title":"客户分类","source":{"type_":"options","options":[{"value":"11","text":"微信客户"},{"id":"12","name":"网站"}]}});
        let mut o = Vec::new();
        collect_options(&f, 0, &mut o);
        assert_eq!(
            o,
            [
                ("11".to_string(), "微信客户".to_string()),
                ("12".into(), "网站".into())
            ]
        );
    }
}
