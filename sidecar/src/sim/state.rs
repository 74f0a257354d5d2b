//! The simulator's records and the operations on them (synchronous; callers hold the store lock only
//! for the duration of one operation, never across an await).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Customer field ids the simulator lists (positional `cols`, in this order).
pub const CUSTOMER_COLS: [&str; 16] = [
    "ord",
    "name",
    "khid",
    "intsort",
    "ly",
    "mobile",
    "weixinAcc",
    "address",
    "jz",
    "intro",
    "product",
    "person_name",
    "phone",
    "email",
    "date1",
    "catename",
];
pub const PERSON_COLS: [&str; 6] = ["ord", "name", "company", "mobile", "phone", "email"];

/// Labels shown as `text` in details.
fn label(id: &str) -> &'static str {
    match id {
        "name" => "客户名称",
        "khid" => "客户编号",
        "ly" => "客户来源",
        "mobile" => "手机",
        "weixinAcc" => "微信号",
        "address" => "客户地址",
        "jz" => "价值评估",
        "intro" => "备注",
        "product" => "客户简介",
        "person_name" => "联系人",
        "phone" => "电话",
        "email" => "电子邮件",
        "date1" => "添加时间",
        "catename" => "销售人员",
        "intsort" => "客户类型",
        _ => "",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub ord: i64,
    pub intsort: u8,
    /// Every field saved (spec ids), `ord` excluded.
    pub fields: BTreeMap<String, String>,
    pub date1: String,
    pub catename: String,
    pub public: bool,
    pub saves: u32,
}

impl Customer {
    /// A stored text field (not `ord`/`intsort`), borrowed; "" when unset.
    pub fn field(&self, id: &str) -> &str {
        match id {
            "date1" => &self.date1,
            "catename" => &self.catename,
            other => self.fields.get(other).map_or("", String::as_str),
        }
    }

    pub fn get(&self, id: &str) -> String {
        match id {
            "ord" => self.ord.to_string(),
            "intsort" => self.intsort.to_string(),
            "date1" => self.date1.clone(),
            "catename" => self.catename.clone(),
            other => self.fields.get(other).cloned().unwrap_or_default(),
        }
    }

    /// `[{id, text, value}]` of the detail view.
    pub fn detail_fields(&self) -> Vec<serde_json::Value> {
        CUSTOMER_COLS
            .iter()
            .map(|id| serde_json::json!({"id": id, "text": label(id), "value": self.get(id)}))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonRec {
    pub ord: i64,
    pub company: i64,
    pub fields: BTreeMap<String, String>,
}

impl PersonRec {
    pub fn get(&self, id: &str) -> String {
        match id {
            "ord" => self.ord.to_string(),
            "company" => self.company.to_string(),
            other => self.fields.get(other).cloned().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowupRec {
    pub ord: i64,
    /// Every `datas` item as received (stringified).
    pub fields: BTreeMap<String, String>,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignmentRec {
    pub ord: i64,
    pub member1: String,
    pub member2: String,
    pub at: String,
}

/// Everything the simulated ERP stores (also the snapshot format).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Store {
    pub next_ord: i64,
    pub next_person: i64,
    pub allocated: HashSet<i64>,
    pub customers: BTreeMap<i64, Customer>,
    pub persons: BTreeMap<i64, PersonRec>,
    pub followups: Vec<FollowupRec>,
    pub assignments: Vec<AssignmentRec>,
    /// Strict mode: the khid pre-filled in the allocation form of each allocated ord.
    pub prefilled_khid: BTreeMap<i64, String>,
    /// Strict mode: the counter of generated khids (`KH<yyyymmdd><nnnn>`).
    pub khid_seq: u64,
    #[serde(skip)]
    by_khid: HashMap<String, i64>,
    #[serde(skip)]
    by_mobile: HashMap<String, BTreeSet<i64>>,
}

/// Sort and page request of a list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub khid: Option<String>,
    pub ly: Option<String>,
    pub mobile: Option<String>,
    pub name: Option<String>,
    pub pagesize: u64,
    pub pageindex: u64,
    pub sort: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Page {
    pub pageindex: u64,
    pub pagecount: u64,
    pub pagesize: u64,
    pub recordcount: u64,
}

pub fn now_text() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(8))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

impl Store {
    pub fn new(start_ord: i64) -> Self {
        Self {
            next_ord: start_ord,
            next_person: start_ord,
            ..Self::default()
        }
    }

    /// Rebuild the indexes (after loading a snapshot).
    pub fn reindex(&mut self) {
        self.by_khid.clear();
        self.by_mobile.clear();
        let entries: Vec<(i64, String, String)> = self
            .customers
            .values()
            .map(|c| (c.ord, c.get("khid"), c.get("mobile")))
            .collect();
        for (ord, khid, mobile) in entries {
            self.index(ord, &khid, &mobile);
        }
        let max = self
            .customers
            .keys()
            .chain(self.allocated.iter())
            .max()
            .copied()
            .unwrap_or(0);
        self.next_ord = self.next_ord.max(max + 1);
        let maxp = self.persons.keys().max().copied().unwrap_or(0);
        self.next_person = self.next_person.max(maxp + 1);
    }

    pub(super) fn index(&mut self, ord: i64, khid: &str, mobile: &str) {
        if !khid.is_empty() {
            self.by_khid.insert(khid.to_string(), ord);
        }
        if !mobile.is_empty() {
            self.by_mobile
                .entry(mobile.to_string())
                .or_default()
                .insert(ord);
        }
    }

    pub(super) fn unindex(&mut self, ord: i64, khid: &str, mobile: &str) {
        if self.by_khid.get(khid) == Some(&ord) {
            self.by_khid.remove(khid);
        }
        if let Some(s) = self.by_mobile.get_mut(mobile) {
            s.remove(&ord);
            if s.is_empty() {
                self.by_mobile.remove(mobile);
            }
        }
    }

    /// The customer that has khid `khid` (exact).
    pub fn khid_owner(&self, khid: &str) -> Option<i64> {
        self.by_khid.get(khid).copied()
    }

    /// Whether a customer other than `ord` has mobile `mobile`.
    pub fn mobile_taken_by_other(&self, mobile: &str, ord: i64) -> bool {
        self.by_mobile
            .get(mobile)
            .is_some_and(|s| s.iter().any(|o| *o != ord))
    }

    pub fn allocate(&mut self) -> i64 {
        let ord = self.next_ord;
        self.next_ord += 1;
        self.allocated.insert(ord);
        ord
    }

    /// `__sys_dosave` of a customer. `Ok(created)`; `Err(text)` = business refusal.
    /// `persist = false` validates and acknowledges without storing ("ok but not persisted").
    pub fn save_customer(
        &mut self,
        intsort: u8,
        ord: i64,
        fields: &BTreeMap<String, String>,
        duplicate_mobile_rule: bool,
        persist: bool,
    ) -> Result<bool, String> {
        let existing = self.customers.get(&ord).cloned();
        if existing.is_none() && !self.allocated.contains(&ord) {
            return Err(format!("客户ord无效：{ord}（请先分配新客户ID）"));
        }
        let get = |id: &str| -> String {
            fields
                .get(id)
                .cloned()
                .unwrap_or_else(|| existing.as_ref().map(|c| c.get(id)).unwrap_or_default())
        };
        let name = get("name");
        if name.trim().is_empty() {
            return Err("客户名称不能为空".into());
        }
        if existing.is_none() && intsort == 1 && get("person_name").trim().is_empty() {
            return Err("联系人姓名不能为空".into());
        }
        let khid = get("khid");
        if !khid.is_empty() {
            if let Some(&other) = self.by_khid.get(&khid) {
                if other != ord {
                    return Err(format!("客户编号[{khid}]已存在，不能重复添加"));
                }
            }
        }
        let mobile = get("mobile");
        if duplicate_mobile_rule && !mobile.is_empty() {
            if let Some(s) = self.by_mobile.get(&mobile) {
                if s.iter().any(|o| *o != ord) {
                    return Err("该手机号码已存在，不能重复添加客户".into());
                }
            }
        }
        if !persist {
            return Ok(existing.is_none());
        }
        match existing {
            Some(old) => {
                self.unindex(ord, &old.get("khid"), &old.get("mobile"));
                let c = self.customers.entry(ord).or_insert(old);
                for (k, v) in fields {
                    c.fields.insert(k.clone(), v.clone());
                }
                c.saves += 1;
                let (k, m) = (c.get("khid"), c.get("mobile"));
                self.index(ord, &k, &m);
                Ok(false)
            }
            None => {
                let mut f = fields.clone();
                let khid = if khid.is_empty() {
                    format!("KH{ord}")
                } else {
                    khid
                };
                f.insert("khid".into(), khid.clone());
                let c = Customer {
                    ord,
                    intsort,
                    fields: f,
                    date1: now_text(),
                    catename: String::new(),
                    public: false,
                    saves: 1,
                };
                self.customers.insert(ord, c);
                self.allocated.remove(&ord);
                self.index(ord, &khid, &mobile);
                Ok(true)
            }
        }
    }

    /// Insert a customer directly (admin seeding): allocates the ord, generates khid/date1 when missing.
    pub fn seed_customer(&mut self, mut c: Customer) -> Result<i64, String> {
        let ord = if c.ord > 0 && !self.customers.contains_key(&c.ord) {
            c.ord
        } else {
            self.allocate()
        };
        self.allocated.remove(&ord);
        c.ord = ord;
        c.fields.remove("ord");
        let khid = c
            .fields
            .get("khid")
            .cloned()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| format!("KH{ord}"));
        if self.by_khid.contains_key(&khid) {
            return Err(format!("客户编号[{khid}]已存在"));
        }
        c.fields.insert("khid".into(), khid.clone());
        if c.date1.is_empty() {
            c.date1 = now_text();
        }
        if c.intsort == 0 {
            c.intsort = 1;
        }
        let mobile = c.get("mobile");
        self.customers.insert(ord, c);
        self.index(ord, &khid, &mobile);
        self.next_ord = self.next_ord.max(ord + 1);
        Ok(ord)
    }

    pub fn delete_customer(&mut self, ord: i64) -> bool {
        match self.customers.remove(&ord) {
            Some(c) => {
                self.unindex(ord, &c.get("khid"), &c.get("mobile"));
                self.persons.retain(|_, p| p.company != ord);
                true
            }
            None => false,
        }
    }

    /// Filter (khid/ly/mobile exact, name contains), sort (`_rpt_sort` `[-]field`, ties by ord) and page.
    pub fn list(&self, q: &ListQuery) -> (Page, Vec<&Customer>) {
        let nonempty = |o: &Option<String>| {
            o.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let (khid, ly, mobile, name) = (
            nonempty(&q.khid),
            nonempty(&q.ly),
            nonempty(&q.mobile),
            nonempty(&q.name),
        );
        let candidates: Vec<&Customer> = if let Some(k) = &khid {
            self.by_khid
                .get(k)
                .and_then(|o| self.customers.get(o))
                .into_iter()
                .collect()
        } else if let Some(m) = &mobile {
            self.by_mobile
                .get(m)
                .map(|s| s.iter().filter_map(|o| self.customers.get(o)).collect())
                .unwrap_or_default()
        } else {
            self.customers.values().collect()
        };
        let mut rows: Vec<&Customer> = candidates
            .into_iter()
            .filter(|c| ly.as_deref().is_none_or(|l| c.field("ly") == l))
            .filter(|c| mobile.as_deref().is_none_or(|m| c.field("mobile") == m))
            .filter(|c| name.as_deref().is_none_or(|n| c.field("name").contains(n)))
            .collect();
        let (desc, field) = match q.sort.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => match s.strip_prefix('-') {
                Some(f) => (true, f),
                None => (false, s.trim_start_matches('+')),
            },
            None => (true, "ord"),
        };
        match field {
            // candidates come in ord order already
            "ord" => {
                if desc {
                    rows.reverse();
                }
            }
            "intsort" => rows.sort_by(|a, b| {
                let o = a.intsort.cmp(&b.intsort).then(a.ord.cmp(&b.ord));
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }),
            f => rows.sort_by(|a, b| {
                let o = a.field(f).cmp(b.field(f)).then(a.ord.cmp(&b.ord));
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }),
        }
        page(rows, q.pagesize, q.pageindex)
    }

    pub fn add_person(
        &mut self,
        company: i64,
        fields: BTreeMap<String, String>,
    ) -> Result<i64, String> {
        if !self.customers.contains_key(&company) {
            return Err("客户不存在，不能添加联系人".into());
        }
        if fields.get("name").is_none_or(|n| n.trim().is_empty()) {
            return Err("联系人姓名不能为空".into());
        }
        let ord = self.next_person;
        self.next_person += 1;
        self.persons.insert(
            ord,
            PersonRec {
                ord,
                company,
                fields,
            },
        );
        Ok(ord)
    }

    pub fn list_persons(
        &self,
        company: Option<i64>,
        pagesize: u64,
        pageindex: u64,
    ) -> (Page, Vec<&PersonRec>) {
        let rows: Vec<&PersonRec> = self
            .persons
            .values()
            .filter(|p| company.is_none_or(|c| p.company == c))
            .collect();
        page(rows, pagesize, pageindex)
    }

    pub fn assign(&mut self, ord: i64, member1: &str, member2: &str) -> Result<(), String> {
        let Some(c) = self.customers.get_mut(&ord) else {
            return Err("客户不存在或已被删除".into());
        };
        match member1.trim() {
            "1" => {
                c.public = true;
                c.catename = String::new();
            }
            "0" => {
                if member2.trim().is_empty() {
                    return Err("指派失败：请选择指派人员".into());
                }
                c.public = false;
                c.catename = member2.to_string();
            }
            other => return Err(format!("指派失败：member1={other} 无效")),
        }
        self.assignments.push(AssignmentRec {
            ord,
            member1: member1.into(),
            member2: member2.into(),
            at: now_text(),
        });
        Ok(())
    }

    pub fn add_followup(
        &mut self,
        ord: i64,
        fields: BTreeMap<String, String>,
    ) -> Result<(), String> {
        if !self.customers.contains_key(&ord) {
            return Err("客户不存在或已被删除".into());
        }
        self.followups.push(FollowupRec {
            ord,
            fields,
            at: now_text(),
        });
        Ok(())
    }
}

fn page<T>(rows: Vec<T>, pagesize: u64, pageindex: u64) -> (Page, Vec<T>) {
    let pagesize = if pagesize == 0 {
        20
    } else {
        pagesize.min(1000)
    };
    let pageindex = pageindex.max(1);
    let recordcount = rows.len() as u64;
    let pagecount = recordcount.div_ceil(pagesize);
    let start = ((pageindex - 1) * pagesize).min(recordcount) as usize;
    let end = (start as u64 + pagesize).min(recordcount) as usize;
    let rows: Vec<T> = rows.into_iter().skip(start).take(end - start).collect();
    (
        Page {
            pageindex,
            pagecount,
            pagesize,
            recordcount,
        },
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_update_duplicates() {
        let mut s = Store::new(100);
        let a = s.allocate();
        assert_eq!(
            s.save_customer(
                1,
                a,
                &f(&[
                    ("name", "甲"),
                    ("person_name", "张"),
                    ("mobile", "13800000001")
                ]),
                true,
                true
            ),
            Ok(true)
        );
        assert_eq!(s.customers[&a].get("khid"), format!("KH{a}"));
        let b = s.allocate();
        let dup = s.save_customer(
            2,
            b,
            &f(&[("name", "乙"), ("mobile", "13800000001")]),
            true,
            true,
        );
        assert!(dup.is_err_and(|t| t.contains("已存在")));
        assert_eq!(
            s.save_customer(
                2,
                b,
                &f(&[("name", "乙"), ("mobile", "13800000001")]),
                false,
                true
            ),
            Ok(true)
        );
        assert_eq!(
            s.save_customer(1, a, &f(&[("address", "x")]), false, true),
            Ok(false)
        );
        assert_eq!(s.customers[&a].get("name"), "甲");
        assert!(s
            .save_customer(1, 999, &f(&[("name", "x")]), true, true)
            .is_err());
        let c = s.allocate();
        assert!(s
            .save_customer(1, c, &f(&[("name", "丙")]), true, true)
            .is_err_and(|t| t.contains("联系人")));
        assert!(s
            .save_customer(
                2,
                c,
                &f(&[("name", "丙"), ("khid", &format!("KH{a}"))]),
                true,
                true
            )
            .is_err());
        assert_eq!(
            s.save_customer(2, c, &f(&[("name", "丙")]), true, false),
            Ok(true)
        );
        assert!(!s.customers.contains_key(&c));
    }

    #[test]
    fn list_filter_sort_page() {
        let mut s = Store::new(1);
        for i in 0..45 {
            let o = s.allocate();
            let ly = if i % 2 == 0 { "171" } else { "5" };
            let khid = format!("WX{i}");
            let r = s.save_customer(
                2,
                o,
                &f(&[
                    ("name", &format!("客户{i:02}")),
                    ("ly", ly),
                    ("khid", &khid),
                ]),
                true,
                true,
            );
            assert!(r.is_ok());
        }
        let (p, rows) = s.list(&ListQuery::default());
        assert_eq!(
            p,
            Page {
                pageindex: 1,
                pagecount: 3,
                pagesize: 20,
                recordcount: 45
            }
        );
        assert_eq!(rows[0].ord, 45);
        let (p, rows) = s.list(&ListQuery {
            pageindex: 3,
            ..Default::default()
        });
        assert_eq!((p.pageindex, rows.len()), (3, 5));
        let (_, rows) = s.list(&ListQuery {
            ly: Some("171".into()),
            sort: Some("name".into()),
            pagesize: 100,
            ..Default::default()
        });
        assert_eq!(rows.len(), 23);
        assert_eq!(rows[0].get("name"), "客户00");
        let (_, rows) = s.list(&ListQuery {
            khid: Some("WX7".into()),
            ..Default::default()
        });
        assert_eq!(rows.len(), 1);
        let (p, rows) = s.list(&ListQuery {
            pageindex: 9,
            ..Default::default()
        });
        assert_eq!((p.recordcount, rows.len()), (45, 0));
        assert!(s.delete_customer(1));
        assert!(!s.delete_customer(1));
        let (_, rows) = s.list(&ListQuery {
            khid: Some("WX0".into()),
            ..Default::default()
        });
        assert!(rows.is_empty());
    }
}
