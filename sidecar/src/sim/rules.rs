//! Vendor-strict business rules over the [`Store`]: what the real VBScript pages check before they
//! store anything, with the vendor's refusal texts. Synchronous; the caller holds the store lock for one
//! call. (Lenient mode keeps the older rules of [`Store`] itself.)

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::state::{now_text, Customer, Page, PersonRec, Store};
use super::vendor::{self as v, Kind};

/// Field id → value as received (stringified).
pub type Fields = BTreeMap<String, String>;

/// The catalogues the simulator is configured with (`--categories`, `--follow-levels`,
/// `--max-page-size`).
#[derive(Debug, Clone)]
pub struct Catalog {
    /// 客户分类 (`sort1` of the form, `sort` of webapi): `(id, text)`.
    pub categories: Vec<(String, String)>,
    /// 跟进程度 (`sort1` of webapi): `(id, text)`.
    pub follow_levels: Vec<(String, String)>,
    pub max_page_size: u64,
}

impl Catalog {
    pub fn from_flags(
        categories: &str,
        follow_levels: &str,
        max_page_size: u64,
    ) -> Result<Self, String> {
        Ok(Self {
            categories: v::parse_options(categories)?,
            follow_levels: v::parse_options(follow_levels)?,
            max_page_size: max_page_size.max(1),
        })
    }

    pub fn is_category(&self, id: &str) -> bool {
        self.categories.iter().any(|(c, _)| c == id.trim())
    }

    pub fn is_follow_level(&self, id: &str) -> bool {
        self.follow_levels.iter().any(|(c, _)| c == id.trim())
    }
}

/// Options of the save that come from the fault settings.
#[derive(Debug, Clone, Copy)]
pub struct SaveOpts {
    /// Refuse a mobile another customer already has.
    pub duplicate_mobile_rule: bool,
    /// `false`: validate and acknowledge without storing (the `not_persisted` fault).
    pub persist: bool,
}

fn text<'a>(f: &'a Fields, id: &str) -> &'a str {
    f.get(id).map_or("", |s| s.trim())
}

fn too_long(s: &str, max: usize) -> bool {
    max > 0 && s.chars().count() > max
}

fn required(f: &Fields, id: &str, refusal: &str) -> Result<(), String> {
    if text(f, id).is_empty() {
        Err(refusal.to_string())
    } else {
        Ok(())
    }
}

/// Only the ids the customer form has: the ASP page reads `Request("id")` for the fields it knows and
/// never looks at any other, so unknown ids are ignored (not refused). `ord`/`intsort` are not fields.
pub fn form_fields(datas: &Fields) -> Fields {
    datas
        .iter()
        .filter(|(k, _)| v::form_field(k).is_some())
        .map(|(k, val)| (k.clone(), val.clone()))
        .collect()
}

/// The checks of 单位客户添加 / 个人客户添加 (the same form for create and update):
/// `name` "客户名称，文本，必填，100字以内"; `sort1` "客户分类，文本，必填，50字以内，来自树结构数据";
/// `person_name` "联系人姓名，文本，必填，50字以内"; every "N字以内" limit; 数字/整型 fields numeric.
pub fn check_customer_form(cat: &Catalog, f: &Fields) -> Result<(), String> {
    required(f, "name", "请填写客户名称")?;
    required(f, "sort1", "请选择客户分类")?;
    if !cat.is_category(text(f, "sort1")) {
        return Err("客户分类无效".into());
    }
    required(f, "person_name", "请填写联系人姓名")?;
    for field in v::CUSTOMER_FORM {
        let val = text(f, field.id);
        if val.is_empty() {
            continue;
        }
        if too_long(val, field.max) {
            return Err(format!("{}不能超过{}个字", field.title, field.max));
        }
        check_kind(field, val)?;
    }
    Ok(())
}

/// 整型 fields must be integers, 数字 (decimal) fields numbers (`1,234.5` accepted).
fn check_kind(field: &v::Field, val: &str) -> Result<(), String> {
    match field.kind {
        Kind::Int if v::parse_i64(val).is_none() => Err(format!("{}必须为整数", field.title)),
        Kind::Money if val.replace(',', "").parse::<f64>().is_err() => {
            Err(format!("{}必须为数字", field.title))
        }
        _ => Ok(()),
    }
}

/// 分配新客户ID: a new ord plus the khid the form comes pre-filled with (`KH<yyyymmdd><nnnn>`).
pub fn allocate(store: &mut Store) -> (i64, String) {
    let ord = store.allocate();
    let khid = next_khid(store);
    store.prefilled_khid.insert(ord, khid.clone());
    (ord, khid)
}

fn next_khid(store: &mut Store) -> String {
    let day: String = now_text()
        .chars()
        .filter(char::is_ascii_digit)
        .take(8)
        .collect();
    loop {
        store.khid_seq += 1;
        let k = format!("KH{day}{:04}", store.khid_seq);
        if store.khid_owner(&k).is_none() && !store.prefilled_khid.values().any(|p| *p == k) {
            return k;
        }
    }
}

/// khid "客户编号 … 客户的唯一编号" is unique; mobile unique when the duplicate rule is on.
fn check_unique(store: &Store, ord: i64, f: &Fields, dup_mobile: bool) -> Result<(), String> {
    let khid = text(f, "khid");
    if !khid.is_empty() && store.khid_owner(khid).is_some_and(|o| o != ord) {
        return Err(format!("客户编号[{khid}]已存在，不能重复添加"));
    }
    let mobile = text(f, "mobile");
    if dup_mobile && !mobile.is_empty() && store.mobile_taken_by_other(mobile, ord) {
        return Err("该手机号码已存在，不能重复添加客户".into());
    }
    Ok(())
}

/// `__sys_dosave` of 单位客户添加 / 个人客户添加. `ord` "添加新客户需要传【分配新客户ID】接口返回的标识值，
/// 修改客户资料时传已经存在的客户资料标识". `Ok(created)`; `Err(text)` = refusal.
pub fn save_customer(
    store: &mut Store,
    cat: &Catalog,
    intsort: Option<u8>,
    ord: i64,
    datas: &Fields,
    opts: SaveOpts,
) -> Result<bool, String> {
    let existing = store
        .customers
        .get(&ord)
        .map(|c| (c.intsort, c.get("khid")));
    if existing.is_none() && !store.allocated.contains(&ord) {
        return Err("该客户不存在或已被删除".into());
    }
    let intsort = match (intsort, &existing) {
        (Some(i @ (1 | 2)), _) => i,
        (_, Some((i, _))) => *i,
        _ => return Err("请选择客户类型".into()),
    };
    let mut f = form_fields(datas);
    check_customer_form(cat, &f)?;
    if text(&f, "khid").is_empty() {
        // The form's khid field comes pre-filled: a client that sends none keeps that value.
        let kept = match &existing {
            Some((_, k)) => Some(k.clone()),
            None => store.prefilled_khid.get(&ord).cloned(),
        };
        let khid = match kept {
            Some(k) => k,
            None => next_khid(store),
        };
        f.insert("khid".into(), khid);
    }
    check_unique(store, ord, &f, opts.duplicate_mobile_rule)?;
    if !opts.persist {
        return Ok(existing.is_none());
    }
    Ok(store_customer(store, ord, intsort, f))
}

/// Create or merge-update a customer; on create the contact section also becomes the customer's first
/// contact person (`company` = ord), as the real form does. `Ok(created)`.
fn store_customer(store: &mut Store, ord: i64, intsort: u8, mut f: Fields) -> bool {
    let date1 = f.remove("date1").filter(|d| !d.trim().is_empty());
    let catename = f.remove("catename");
    if let Some(old) = store.customers.get(&ord).cloned() {
        let (k, m) = (old.get("khid"), old.get("mobile"));
        store.unindex(ord, &k, &m);
        let mut c = old;
        c.fields.extend(f);
        if let Some(d) = date1 {
            c.date1 = d;
        }
        if let Some(n) = catename {
            c.catename = n;
        }
        c.saves += 1;
        let (k, m) = (c.get("khid"), c.get("mobile"));
        store.customers.insert(ord, c);
        store.index(ord, &k, &m);
        return false;
    }
    let contact: Fields = v::CONTACT_FIELDS
        .iter()
        .filter_map(|id| f.get(*id).map(|val| (id.to_string(), val.clone())))
        .collect();
    let c = Customer {
        ord,
        intsort,
        fields: f,
        date1: date1.unwrap_or_else(now_text),
        catename: catename.unwrap_or_default(),
        public: false,
        saves: 1,
    };
    let (k, m) = (c.get("khid"), c.get("mobile"));
    store.customers.insert(ord, c);
    store.allocated.remove(&ord);
    store.prefilled_khid.remove(&ord);
    store.index(ord, &k, &m);
    let pord = store.next_person;
    store.next_person += 1;
    store.persons.insert(
        pord,
        PersonRec {
            ord: pord,
            company: ord,
            fields: contact,
        },
    );
    true
}

/// Delete a customer (and its contact persons).
pub fn delete_customer(store: &mut Store, ord: i64) -> Result<(), String> {
    if store.delete_customer(ord) {
        Ok(())
    } else {
        Err("该客户不存在或已被删除".into())
    }
}

// ------------------------------------------------------------------------------------------ lists

/// Columns of 客户列表 in strict mode, `(id, title)`; `ord` deliberately not first.
pub const CUSTOMER_COLS: [(&str, &str); 16] = [
    ("name", "客户名称"),
    ("khid", "客户编号"),
    ("ord", "客户ID"),
    ("intsort", "客户类型"),
    ("sort1", "客户分类"),
    ("ly", "客户来源"),
    ("jz", "价值评估"),
    ("mobile", "手机"),
    ("phone", "办公电话"),
    ("weixinAcc", "微信"),
    ("address", "客户地址"),
    ("person_name", "联系人"),
    ("email", "电子邮件"),
    ("hk_xz", "到款限制"),
    ("date1", "添加时间"),
    ("catename", "销售人员"),
];

/// 客户列表 filters documented as "模糊检索条件" (substring).
pub const CUSTOMER_FUZZY: [&str; 9] = [
    "name", "khid", "mobile", "phone", "address", "pym", "intro", "fax", "url",
];
/// 客户列表 filters documented as "多选项检索条件…多个值之间用逗号隔开": `(request id, stored field)`.
pub const CUSTOMER_MULTI: [(&str, &str); 6] = [
    ("ly", "ly"),
    ("jz", "jz"),
    ("area", "area"),
    ("trade", "trade"),
    ("telsort", "sort1"),
    ("khly", "ly"),
];

/// Columns of 联系人列表 in strict mode; `ord` not first.
pub const PERSON_COLS: [(&str, &str); 6] = [
    ("person_name", "联系人姓名"),
    ("company", "关联客户"),
    ("ord", "联系人ID"),
    ("mobile", "手机"),
    ("phone", "办公电话"),
    ("email", "电子邮件"),
];
/// 联系人列表 "模糊检索条件" on the person's own fields.
pub const PERSON_FUZZY: [&str; 9] = [
    "person_name",
    "pym",
    "part1",
    "job",
    "mobile",
    "phone",
    "fax",
    "qq",
    "email",
];

/// A list request: filters, search, sort and page.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// `(field, needle)`: the field contains the needle.
    pub fuzzy: Vec<(String, String)>,
    /// `(field, allowed values)`: the field is one of them.
    pub multi: Vec<(String, Vec<String>)>,
    /// `telord` (客户id) / `company` (客户ID): exact.
    pub exact_ord: Option<i64>,
    /// `name` of 联系人列表 (客户名称, fuzzy over the related customer).
    pub company_name: Option<String>,
    /// `searchKey` "对返回列表中所有文本列进行匹配筛选".
    pub search_key: Option<String>,
    pub pagesize: i64,
    pub pageindex: i64,
    /// `_rpt_sort`: a column id, `-` prefix = descending.
    pub sort: Option<String>,
}

impl ListParams {
    /// Build from `get(id)` (a datas lookup); empty values mean "no filter".
    pub fn from_request(
        get: impl Fn(&str) -> Option<String>,
        fuzzy: &[&str],
        multi: &[(&str, &str)],
        exact: &str,
    ) -> Self {
        let nonempty = |id: &str| {
            get(id)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        Self {
            fuzzy: fuzzy
                .iter()
                .filter_map(|id| nonempty(id).map(|n| (id.to_string(), n)))
                .collect(),
            multi: multi
                .iter()
                .filter_map(|(id, field)| {
                    nonempty(id).map(|n| {
                        let vals = n
                            .split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect();
                        (field.to_string(), vals)
                    })
                })
                .collect(),
            exact_ord: nonempty(exact).and_then(|s| v::parse_i64(&s)),
            company_name: None,
            search_key: nonempty("searchKey"),
            pagesize: nonempty("pagesize")
                .and_then(|s| v::parse_i64(&s))
                .unwrap_or(0),
            pageindex: nonempty("pageindex")
                .and_then(|s| v::parse_i64(&s))
                .unwrap_or(0),
            sort: nonempty("_rpt_sort"),
        }
    }
}

/// A customer list cell, always a string (money printed like `1,234.00`).
pub fn customer_cell(c: &Customer, id: &str) -> String {
    match id {
        "hk_xz" | "zijin" => v::money(c.field(id)),
        other => c.get(other),
    }
}

/// A person list cell, always a string.
pub fn person_cell(p: &PersonRec, id: &str) -> String {
    p.get(id)
}

fn keep_customer(c: &Customer, q: &ListParams) -> bool {
    q.exact_ord.is_none_or(|o| c.ord == o)
        && q.fuzzy
            .iter()
            .all(|(id, n)| c.field(id).contains(n.as_str()))
        && q.multi
            .iter()
            .all(|(id, vals)| vals.iter().any(|x| x == c.field(id)))
        && q.search_key.as_deref().is_none_or(|k| {
            CUSTOMER_COLS
                .iter()
                .any(|(id, _)| customer_cell(c, id).contains(k))
        })
}

/// 客户列表 `refresh`: fuzzy/multi-select/exact filters, `searchKey`, `_rpt_sort` (ties by ord; default
/// newest first), pages of `pagesize` (default 20, capped at `max_page_size`).
pub fn list_customers<'a>(
    store: &'a Store,
    q: &ListParams,
    max_page_size: u64,
) -> (Page, Vec<&'a Customer>) {
    let mut rows: Vec<&Customer> = store
        .customers
        .values()
        .filter(|c| keep_customer(c, q))
        .collect();
    sort_rows(&mut rows, q.sort.as_deref(), |c| c.ord, |c, id| c.get(id));
    page(rows, q.pagesize, q.pageindex, max_page_size)
}

/// 联系人列表 `refresh`: `company` exact, person fields fuzzy, `name` fuzzy over the customer name.
pub fn list_persons<'a>(
    store: &'a Store,
    q: &ListParams,
    max_page_size: u64,
) -> (Page, Vec<&'a PersonRec>) {
    let company_name = |p: &PersonRec| {
        store
            .customers
            .get(&p.company)
            .map_or("", |c| c.field("name"))
    };
    let mut rows: Vec<&PersonRec> = store
        .persons
        .values()
        .filter(|p| q.exact_ord.is_none_or(|o| p.company == o))
        .filter(|p| q.fuzzy.iter().all(|(id, n)| p.get(id).contains(n.as_str())))
        .filter(|p| {
            q.company_name
                .as_deref()
                .is_none_or(|n| company_name(p).contains(n))
        })
        .filter(|p| {
            q.search_key
                .as_deref()
                .is_none_or(|k| PERSON_COLS.iter().any(|(id, _)| p.get(id).contains(k)))
        })
        .collect();
    sort_rows(&mut rows, q.sort.as_deref(), |p| p.ord, |p, id| p.get(id));
    page(rows, q.pagesize, q.pageindex, max_page_size)
}

fn sort_rows<T>(
    rows: &mut [&T],
    sort: Option<&str>,
    ord: impl Fn(&T) -> i64,
    key: impl Fn(&T, &str) -> String,
) {
    let (desc, field) = match sort.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => match s.strip_prefix('-') {
            Some(f) => (true, f.trim()),
            None => (false, s.trim_start_matches('+').trim()),
        },
        None => (true, "ord"),
    };
    rows.sort_by(|a, b| {
        let o = if field == "ord" {
            ord(a).cmp(&ord(b))
        } else {
            let (ka, kb) = (key(a, field), key(b, field));
            match (ka.parse::<f64>(), kb.parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => ka.cmp(&kb),
            }
        };
        let o = if desc { o.reverse() } else { o };
        o.then(ord(a).cmp(&ord(b)))
    });
}

/// "每页记录数 … 默认为空，则每页显示20条记录" (0/absent → 20, capped); "数据页标 … 默认为空，则返回第1页".
fn page<T>(rows: Vec<T>, pagesize: i64, pageindex: i64, max: u64) -> (Page, Vec<T>) {
    let pagesize = if pagesize <= 0 { 20 } else { pagesize as u64 }.min(max.max(1));
    let pageindex = if pageindex <= 0 { 1 } else { pageindex as u64 };
    let recordcount = rows.len() as u64;
    let pagecount = recordcount.div_ceil(pagesize);
    let start = pageindex
        .saturating_sub(1)
        .saturating_mul(pagesize)
        .min(recordcount) as usize;
    let rows: Vec<T> = rows
        .into_iter()
        .skip(start)
        .take(pagesize as usize)
        .collect();
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

// ------------------------------------------------------------------------------------------ persons

/// 联系人添加 `__sys_dosave`: `company` "关联客户，整型，必填" must be an existing customer;
/// `person_name` "联系人姓名，文本，必填，50字以内"; the other "N字以内" limits. `ord` of an existing
/// person updates it. Unknown ids are ignored. `Ok(person ord)`.
pub fn save_person(
    store: &mut Store,
    ord: i64,
    company: i64,
    datas: &Fields,
) -> Result<i64, String> {
    if company <= 0 || !store.customers.contains_key(&company) {
        return Err("关联客户不存在".into());
    }
    let f: Fields = v::PERSON_FORM
        .iter()
        .filter_map(|(id, _, _)| datas.get(*id).map(|val| (id.to_string(), val.clone())))
        .collect();
    required(&f, "person_name", "请填写联系人姓名")?;
    for (id, title, max) in v::PERSON_FORM {
        if too_long(text(&f, id), *max) {
            return Err(format!("{title}不能超过{max}个字"));
        }
    }
    if let Some(p) = store.persons.get_mut(&ord) {
        p.company = company;
        p.fields.extend(f);
        return Ok(ord);
    }
    let pord = store.next_person;
    store.next_person += 1;
    store.persons.insert(
        pord,
        PersonRec {
            ord: pord,
            company,
            fields: f,
        },
    );
    Ok(pord)
}

// ------------------------------------------------------------------------------------------ order / reply

/// 客户指派: `ord` an existing customer; `member1` "指派方式，整型，必填，枚举类型，如：1:对所有用户公开、
/// 0:指派给以下用户"; `member2` "指派用户，文本，50字以内" (needed to assign to users).
pub fn assign(store: &mut Store, ord: i64, member1: &str, member2: &str) -> Result<(), String> {
    if !store.customers.contains_key(&ord) {
        return Err("该客户不存在或已被删除".into());
    }
    match member1.trim() {
        "" => return Err("请选择指派方式".into()),
        "0" | "1" => {}
        _ => return Err("指派方式无效".into()),
    }
    if member1.trim() == "0" && member2.trim().is_empty() {
        return Err("请选择指派用户".into());
    }
    if too_long(member2.trim(), 50) {
        return Err("指派用户不能超过50个字".into());
    }
    store.assign(ord, member1.trim(), member2.trim())
}

fn datetime(f: &Fields, id: &str, title: &str) -> Result<chrono::NaiveDateTime, String> {
    let s = text(f, id);
    if s.is_empty() {
        return Err(format!("请填写{title}"));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .map_err(|_| format!("{title}格式不正确"))
}

fn span(f: &Fields, from: &str, to: &str) -> Result<(), String> {
    let a = datetime(f, from, "开始时间")?;
    let b = datetime(f, to, "结束时间")?;
    if b < a {
        return Err("结束时间不能早于开始时间".into());
    }
    Ok(())
}

fn text_max(f: &Fields, id: &str, missing: &str, title: &str, max: usize) -> Result<(), String> {
    required(f, id, missing)?;
    if too_long(text(f, id), max) {
        return Err(format!("{title}不能超过{max}个字"));
    }
    Ok(())
}

fn remind(f: &Fields) -> Result<(), String> {
    match text(f, "@remind") {
        "" => Err("请选择是否提醒".into()),
        "0" | "1" => Ok(()),
        _ => Err("是否提醒无效".into()),
    }
}

/// 洽谈进展: `intro` "必填，1000字以内"; `sort` "跟进方式，整型，必填 … 484:其他、483:上门、482:邮件、
/// 481:电话"; `plantype` "日程类型，整型，必填 … 2:已完成日程、1:待完成日程、0:不生成"; plantype 1 needs
/// `@ret_0`/`@ret_1` (datetime, 必填), `@title1` (日程内容, 必填, 1000字以内), `@remind` (必填); plantype 2
/// needs `@ret2_0`/`@ret2_1`, `@title2`, `@intro2` (完成情况, 必填, 1000字以内), `@remind`.
pub fn check_followup(f: &Fields) -> Result<(), String> {
    text_max(f, "intro", "请填写洽谈内容", "洽谈内容", 1000)?;
    match text(f, "sort") {
        "" => return Err("请选择跟进方式".into()),
        s if !v::FOLLOWUP_SORTS.contains(&s) => return Err("跟进方式无效".into()),
        _ => {}
    }
    match text(f, "plantype") {
        "" => Err("请选择日程类型".into()),
        "0" => Ok(()),
        "1" => {
            span(f, "@ret_0", "@ret_1")?;
            text_max(f, "@title1", "请填写日程内容", "日程内容", 1000)?;
            remind(f)
        }
        "2" => {
            span(f, "@ret2_0", "@ret2_1")?;
            text_max(f, "@title2", "请填写日程内容", "日程内容", 1000)?;
            text_max(f, "@intro2", "请填写完成情况", "完成情况", 1000)?;
            remind(f)
        }
        s if !v::PLAN_TYPES.contains(&s) => Err("日程类型无效".into()),
        _ => Ok(()),
    }
}

/// 洽谈进展 `__sys_dosave` on customer `ord`; every datas item but `ord` is stored as received.
pub fn add_followup(store: &mut Store, ord: i64, fields: Fields) -> Result<(), String> {
    if !store.customers.contains_key(&ord) {
        return Err("该客户不存在或已被删除".into());
    }
    check_followup(&fields)?;
    store.add_followup(ord, fields)
}

// ------------------------------------------------------------------------------------------ webapi

/// Which webapi customer call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebapiOp {
    Add,
    Edit,
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// 客户添加 / 客户修改 (webapi): `ord` "单据ID" (是, edit); `sort2` "客户属性 1单位客户,2个人客户" (是; on
/// edit it must equal the stored customer's); `name` (是); `sort` "客户分类 必填"; `sort1` "跟进程度 必填";
/// `person_name` (是). `Ok(ord)`; `Err(Msg)` is answered with Code 300.
pub fn webapi_save(
    store: &mut Store,
    cat: &Catalog,
    op: WebapiOp,
    body: &Map<String, Value>,
    opts: SaveOpts,
) -> Result<i64, String> {
    let b: Fields = body
        .iter()
        .map(|(k, val)| (k.clone(), json_text(val)))
        .collect();
    let ord = match op {
        WebapiOp::Add => 0,
        WebapiOp::Edit => {
            required(&b, "ord", "单据ID不能为空")?;
            v::parse_i64(text(&b, "ord")).ok_or("单据ID无效")?
        }
    };
    required(&b, "sort2", "客户属性不能为空")?;
    let sort2: u8 = match text(&b, "sort2") {
        "1" => 1,
        "2" => 2,
        _ => return Err("客户属性无效".into()),
    };
    required(&b, "name", "客户名称不能为空")?;
    required(&b, "sort", "客户分类不能为空")?;
    if !cat.is_category(text(&b, "sort")) {
        return Err("客户分类无效".into());
    }
    required(&b, "sort1", "跟进程度不能为空")?;
    if !cat.is_follow_level(text(&b, "sort1")) {
        return Err("跟进程度无效".into());
    }
    required(&b, "person_name", "联系人姓名不能为空")?;
    if op == WebapiOp::Edit {
        let Some(c) = store.customers.get(&ord) else {
            return Err("客户不存在或已被删除".into());
        };
        if c.intsort != sort2 {
            return Err("客户属性与原客户不一致".into());
        }
    }
    let f = webapi_fields(&b)?;
    check_unique(store, ord, &f, opts.duplicate_mobile_rule)?;
    if !opts.persist {
        return Ok(ord);
    }
    let ord = match op {
        WebapiOp::Edit => ord,
        WebapiOp::Add => store.allocate(),
    };
    let mut f = f;
    if op == WebapiOp::Add && text(&f, "khid").is_empty() {
        let k = next_khid(store);
        f.insert("khid".into(), k);
    }
    store_customer(store, ord, sort2, f);
    Ok(ord)
}

/// The stored fields of a webapi body (unknown ids ignored), with the length limits of the form.
fn webapi_fields(b: &Fields) -> Result<Fields, String> {
    let mut f: Fields = v::WEBAPI_FIELDS
        .iter()
        .filter_map(|id| b.get(*id).map(|val| (id.to_string(), val.clone())))
        .collect();
    f.insert("sort1".into(), text(b, "sort").to_string());
    f.insert("follow".into(), text(b, "sort1").to_string());
    if !text(b, "Date1").is_empty() {
        f.insert("date1".into(), text(b, "Date1").to_string());
    }
    if !text(b, "cateName").is_empty() {
        f.insert("catename".into(), text(b, "cateName").to_string());
    }
    for (id, val) in &f {
        if let Some(field) = v::form_field(id) {
            if too_long(val.trim(), field.max) {
                return Err(format!("{}不能超过{}个字", field.title, field.max));
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cat() -> Catalog {
        Catalog::from_flags(
            "11:微信客户,12:网站客户,13:代理商",
            "1:初步接触,2:意向明确",
            100,
        )
        .unwrap_or_else(|_| Catalog {
            categories: Vec::new(),
            follow_levels: Vec::new(),
            max_page_size: 100,
        })
    }

    const OPTS: SaveOpts = SaveOpts {
        duplicate_mobile_rule: true,
        persist: true,
    };

    fn seed(s: &mut Store, name: &str, khid: &str) -> i64 {
        let (ord, _) = allocate(s);
        let r = save_customer(
            s,
            &cat(),
            Some(1),
            ord,
            &f(&[
                ("name", name),
                ("sort1", "11"),
                ("person_name", "张三"),
                ("khid", khid),
            ]),
            OPTS,
        );
        assert_eq!(r, Ok(true));
        ord
    }

    #[test]
    fn required_fields_of_the_customer_form() {
        let c = cat();
        let ok = f(&[("name", "甲"), ("sort1", "11"), ("person_name", "张")]);
        assert_eq!(check_customer_form(&c, &ok), Ok(()));
        let without = |id: &str| {
            let mut m = ok.clone();
            m.remove(id);
            check_customer_form(&c, &m)
        };
        assert_eq!(without("name"), Err("请填写客户名称".into()));
        assert_eq!(without("sort1"), Err("请选择客户分类".into()));
        assert_eq!(without("person_name"), Err("请填写联系人姓名".into()));
        let mut m = ok.clone();
        m.insert("sort1".into(), "99".into());
        assert_eq!(check_customer_form(&c, &m), Err("客户分类无效".into()));
        m.insert("sort1".into(), "12".into());
        m.insert("name".into(), "名".repeat(101));
        assert_eq!(
            check_customer_form(&c, &m),
            Err("客户名称不能超过100个字".into())
        );
        m.insert("name".into(), "名".repeat(100));
        m.insert("hk_xz".into(), "abc".into());
        assert!(check_customer_form(&c, &m).is_err());
        m.insert("hk_xz".into(), "1,234.5".into());
        m.insert("nonsense_field".into(), "x".repeat(5000));
        assert_eq!(check_customer_form(&c, &m), Ok(()));
    }

    /// 客户编号 "文本，50字以内": a longer khid is refused, whole, by both save paths (characters,
    /// not bytes); the simulator's own field table, not the client's rule.
    #[test]
    fn khid_over_50_characters_is_refused() {
        let c = cat();
        let mut m = f(&[("name", "甲"), ("sort1", "11"), ("person_name", "张")]);
        m.insert("khid".into(), format!("WX{}", "k".repeat(48)));
        assert_eq!(check_customer_form(&c, &m), Ok(()));
        m.insert("khid".into(), "客".repeat(50));
        assert_eq!(check_customer_form(&c, &m), Ok(()));
        m.insert("khid".into(), format!("WX{}", "k".repeat(49)));
        assert_eq!(
            check_customer_form(&c, &m),
            Err("客户编号不能超过50个字".into())
        );
        let mut b = f(&[("name", "甲"), ("sort", "11"), ("sort1", "1")]);
        b.insert("khid".into(), "k".repeat(51));
        assert_eq!(webapi_fields(&b), Err("客户编号不能超过50个字".into()));
    }

    #[test]
    fn prefilled_khid_and_first_contact() {
        let mut s = Store::new(100);
        let (ord, khid) = allocate(&mut s);
        assert!(khid.starts_with("KH") && khid.len() == 14, "{khid}");
        let datas = f(&[
            ("name", "甲"),
            ("sort1", "11"),
            ("person_name", "张"),
            ("mobile", "13800000001"),
            ("bogus", "ignored"),
        ]);
        assert_eq!(
            save_customer(&mut s, &cat(), Some(2), ord, &datas, OPTS),
            Ok(true)
        );
        let c = &s.customers[&ord];
        assert_eq!(c.get("khid"), khid);
        assert!(!c.fields.contains_key("bogus"));
        let p: Vec<&PersonRec> = s.persons.values().filter(|p| p.company == ord).collect();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].get("person_name"), "张");
        assert_eq!(p[0].get("mobile"), "13800000001");
        // update: same required fields, khid kept when not sent
        assert_eq!(
            save_customer(&mut s, &cat(), None, ord, &f(&[("name", "乙")]), OPTS),
            Err("请选择客户分类".into())
        );
        let upd = f(&[("name", "乙"), ("sort1", "12"), ("person_name", "张")]);
        assert_eq!(
            save_customer(&mut s, &cat(), None, ord, &upd, OPTS),
            Ok(false)
        );
        assert_eq!(s.customers[&ord].get("khid"), khid);
        assert_eq!(s.persons.len(), 1);
        // not allocated
        assert!(save_customer(&mut s, &cat(), Some(1), 999, &upd, OPTS).is_err());
        // duplicate khid / mobile
        let (o2, _) = allocate(&mut s);
        let mut d2 = upd.clone();
        d2.insert("khid".into(), khid.clone());
        assert_eq!(
            save_customer(&mut s, &cat(), Some(1), o2, &d2, OPTS),
            Err(format!("客户编号[{khid}]已存在，不能重复添加"))
        );
        let mut d3 = upd.clone();
        d3.insert("mobile".into(), "13800000001".into());
        assert_eq!(
            save_customer(&mut s, &cat(), Some(1), o2, &d3, OPTS),
            Err("该手机号码已存在，不能重复添加客户".into())
        );
    }

    #[test]
    fn fuzzy_and_multi_select_filters() {
        let mut s = Store::new(1);
        for k in ["WX1", "WX12", "WX120", "AWX12", "WX2"] {
            seed(&mut s, &format!("客户{k}"), k);
        }
        let get = |pairs: &'static [(&'static str, &'static str)]| {
            move |id: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == id)
                    .map(|(_, v)| v.to_string())
            }
        };
        let q = ListParams::from_request(
            get(&[("khid", "WX12")]),
            &CUSTOMER_FUZZY,
            &CUSTOMER_MULTI,
            "telord",
        );
        let (p, rows) = list_customers(&s, &q, 100);
        assert_eq!(p.recordcount, 3);
        let mut k: Vec<String> = rows.iter().map(|c| c.get("khid")).collect();
        k.sort();
        assert_eq!(k, ["AWX12", "WX12", "WX120"]);
        let ords: Vec<i64> = s.customers.keys().copied().collect();
        s.customers.entry(ords[0]).and_modify(|c| {
            c.fields.insert("ly".into(), "171".into());
        });
        s.customers.entry(ords[1]).and_modify(|c| {
            c.fields.insert("ly".into(), "173".into());
        });
        let q = ListParams::from_request(
            get(&[("ly", "171, 173")]),
            &CUSTOMER_FUZZY,
            &CUSTOMER_MULTI,
            "telord",
        );
        assert_eq!(list_customers(&s, &q, 100).0.recordcount, 2);
        let q = ListParams::from_request(
            get(&[("ly", "17")]),
            &CUSTOMER_FUZZY,
            &CUSTOMER_MULTI,
            "telord",
        );
        assert_eq!(list_customers(&s, &q, 100).0.recordcount, 0);
        let q = ListParams::from_request(
            get(&[("searchKey", "WX2")]),
            &CUSTOMER_FUZZY,
            &CUSTOMER_MULTI,
            "telord",
        );
        assert_eq!(list_customers(&s, &q, 100).0.recordcount, 1);
        let tel = ords[2].to_string();
        let q = ListParams {
            exact_ord: v::parse_i64(&tel),
            ..ListParams::default()
        };
        assert_eq!(list_customers(&s, &q, 100).1[0].ord, ords[2]);
    }

    #[test]
    fn paging_caps_and_sort() {
        let mut s = Store::new(1);
        for i in 0..45 {
            seed(&mut s, &format!("客户{i:02}"), &format!("K{i}"));
        }
        let (p, rows) = list_customers(&s, &ListParams::default(), 100);
        assert_eq!(
            (p.pagesize, p.pagecount, p.recordcount, rows.len()),
            (20, 3, 45, 20)
        );
        assert_eq!(rows[0].ord, 45, "newest first");
        let q = ListParams {
            pagesize: 500,
            ..ListParams::default()
        };
        let (p, rows) = list_customers(&s, &q, 30);
        assert_eq!((p.pagesize, rows.len(), p.pagecount), (30, 30, 2));
        let q = ListParams {
            pagesize: 20,
            pageindex: 3,
            sort: Some("name".into()),
            ..ListParams::default()
        };
        let (p, rows) = list_customers(&s, &q, 100);
        assert_eq!((p.pageindex, rows.len()), (3, 5));
        assert_eq!(rows[0].get("name"), "客户40");
        let q = ListParams {
            sort: Some("-name".into()),
            ..ListParams::default()
        };
        assert_eq!(list_customers(&s, &q, 100).1[0].get("name"), "客户44");
    }

    #[test]
    fn persons_assign_followups() {
        let mut s = Store::new(1);
        let c = seed(&mut s, "甲", "K1");
        assert_eq!(
            save_person(&mut s, 0, 999, &f(&[("person_name", "李")])),
            Err("关联客户不存在".into())
        );
        assert_eq!(
            save_person(&mut s, 0, c, &f(&[("mobile", "1")])),
            Err("请填写联系人姓名".into())
        );
        assert!(save_person(&mut s, 0, c, &f(&[("person_name", &"李".repeat(51))])).is_err());
        assert!(save_person(
            &mut s,
            0,
            c,
            &f(&[("person_name", "李"), ("mobile", "139")])
        )
        .is_ok());
        let q = ListParams {
            exact_ord: Some(c),
            fuzzy: vec![("person_name".into(), "李".into())],
            ..ListParams::default()
        };
        assert_eq!(list_persons(&s, &q, 100).0.recordcount, 1);

        assert_eq!(assign(&mut s, c, "", ""), Err("请选择指派方式".into()));
        assert_eq!(assign(&mut s, c, "0", ""), Err("请选择指派用户".into()));
        assert_eq!(assign(&mut s, c, "2", ""), Err("指派方式无效".into()));
        assert_eq!(assign(&mut s, c, "0", "63"), Ok(()));
        assert_eq!(
            assign(&mut s, c + 100, "1", ""),
            Err("该客户不存在或已被删除".into())
        );

        let base = [("intro", "谈得好"), ("sort", "481"), ("plantype", "0")];
        assert_eq!(add_followup(&mut s, c, f(&base)), Ok(()));
        assert_eq!(
            check_followup(&f(&[("sort", "481"), ("plantype", "0")])),
            Err("请填写洽谈内容".into())
        );
        assert_eq!(
            check_followup(&f(&[("intro", "x"), ("plantype", "0")])),
            Err("请选择跟进方式".into())
        );
        assert_eq!(
            check_followup(&f(&[("intro", "x"), ("sort", "480"), ("plantype", "0")])),
            Err("跟进方式无效".into())
        );
        assert_eq!(
            check_followup(&f(&[("intro", "x"), ("sort", "481")])),
            Err("请选择日程类型".into())
        );
        let p1 = [("intro", "x"), ("sort", "482"), ("plantype", "1")];
        assert_eq!(check_followup(&f(&p1)), Err("请填写开始时间".into()));
        let mut m = f(&p1);
        m.insert("@ret_0".into(), "2026-12-01 10:00:00".into());
        m.insert("@ret_1".into(), "2026-12-01".into());
        assert_eq!(check_followup(&m), Err("结束时间格式不正确".into()));
        m.insert("@ret_1".into(), "2026-12-01 11:00:00".into());
        assert_eq!(check_followup(&m), Err("请填写日程内容".into()));
        m.insert("@title1".into(), "回访".into());
        assert_eq!(check_followup(&m), Err("请选择是否提醒".into()));
        m.insert("@remind".into(), "1".into());
        assert_eq!(check_followup(&m), Ok(()));
        let mut m = f(&[("intro", "x"), ("sort", "483"), ("plantype", "2")]);
        m.insert("@ret2_0".into(), "2026-12-01 10:00:00".into());
        m.insert("@ret2_1".into(), "2026-12-01 09:00:00".into());
        assert_eq!(check_followup(&m), Err("结束时间不能早于开始时间".into()));
        m.insert("@ret2_1".into(), "2026-12-01 12:00:00".into());
        m.insert("@title2".into(), "上门".into());
        assert_eq!(check_followup(&m), Err("请填写完成情况".into()));
        m.insert("@intro2".into(), "已完成".into());
        m.insert("@remind".into(), "0".into());
        assert_eq!(check_followup(&m), Ok(()));
    }

    #[test]
    fn webapi_rules() {
        let mut s = Store::new(1);
        let c = seed(&mut s, "甲", "K1");
        let body = |sort2: &str| {
            let v = serde_json::json!({"ord": c, "sort2": sort2, "name": "乙", "sort": "12", "sort1": 2, "person_name": "王"});
            match v {
                Value::Object(m) => m,
                _ => Map::new(),
            }
        };
        assert_eq!(
            webapi_save(&mut s, &cat(), WebapiOp::Edit, &body("2"), OPTS),
            Err("客户属性与原客户不一致".into())
        );
        assert_eq!(
            webapi_save(&mut s, &cat(), WebapiOp::Edit, &body("1"), OPTS),
            Ok(c)
        );
        assert_eq!(s.customers[&c].get("sort1"), "12");
        assert_eq!(s.customers[&c].get("follow"), "2");
        let mut b = body("1");
        b.insert("sort1".into(), Value::from("9"));
        assert_eq!(
            webapi_save(&mut s, &cat(), WebapiOp::Edit, &b, OPTS),
            Err("跟进程度无效".into())
        );
        let added = webapi_save(&mut s, &cat(), WebapiOp::Add, &body("2"), OPTS);
        assert!(added.is_ok_and(|o| s.customers.get(&o).is_some_and(|x| x.intsort == 2)));
    }
}
