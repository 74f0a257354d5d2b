//! The vendor's vocabulary, written from the vendor's own API reference
//! (`/work/shared/erp_api/README.md`, `zhibang_api_reference.json`): paths, cmdkeys, the customer
//! form (ids, titles, kinds, required flags, length limits) and the enum options.
//!
//! The simulator is the independent check of the ERP client: nothing here comes from `crate::erp`.

use serde_json::Value;

/// 系统登录接口.
pub const LOGIN: &str = "/webapi/v3/ov1/login";
/// 分配新客户ID / 单位客户添加 / 个人客户添加 / 客户详情.
pub const CUSTOM_ADD: &str = "/sysa/mobilephone/salesmanage/custom/add.asp";
/// 客户列表 (and `?__msgid=delete`).
pub const CUSTOM_LIST: &str = "/sysa/mobilephone/salesmanage/custom/list.asp";
/// Customer delete page (undocumented; accepted besides `list.asp?__msgid=delete`).
pub const CUSTOM_DELETE: &str = "/sysa/mobilephone/salesmanage/custom/delete.asp";
/// 联系人添加.
pub const PERSON_ADD: &str = "/sysa/mobilephone/salesmanage/person/add.asp";
/// 联系人列表.
pub const PERSON_LIST: &str = "/sysa/mobilephone/salesmanage/person/list.asp";
/// 客户指派 (`?datatype=tel`).
pub const ORDER: &str = "/sysa/mobilephone/systemmanage/order.asp";
/// 洽谈进展 (`?datatype=tel`).
pub const REPLY: &str = "/sysa/mobilephone/systemmanage/reply.asp";
/// 客户修改 (webapi).
pub const WEBAPI_CUSTOMER_EDIT: &str = "/webapi/v3/sales/customer/edit";
/// 客户添加 (webapi).
pub const WEBAPI_CUSTOMER_ADD: &str = "/webapi/v3/sales/customer/add";

/// `cmdkey` of every save (`"cmdkey" : "__sys_dosave"`).
pub const CMD_SAVE: &str = "__sys_dosave";
/// `cmdkey` of a list query (`"cmdkey" : "refresh"`).
pub const CMD_REFRESH: &str = "refresh";
/// `cmdkey` of a delete (`"cmdkey" : "delete"`, as in 删除合同明细).
pub const CMD_DELETE: &str = "delete";

/// An integer from a JSON value that may be a number or a numeric string (`"val": 0` or `"0"`).
pub fn loose_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => parse_i64(s),
        _ => None,
    }
}

/// An integer from text (`"12"`, `" 12 "`, `"12.0"`); `None` for anything else.
pub fn parse_i64(s: &str) -> Option<i64> {
    let t = s.trim();
    t.parse::<i64>().ok().or_else(|| {
        t.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
    })
}

/// `ly` 客户来源: "枚举类型，如：173:陌生开发、171:网站注册、977:VIP、174:广告宣传、172:朋友介绍".
pub const LY_OPTIONS: &[(&str, &str)] = &[
    ("171", "网站注册"),
    ("173", "陌生开发"),
    ("977", "VIP"),
    ("174", "广告宣传"),
    ("172", "朋友介绍"),
];
/// `jz` 价值评估: "175:很高、289:较高、176:一般、177:较低、290:很低".
pub const JZ_OPTIONS: &[(&str, &str)] = &[
    ("175", "很高"),
    ("289", "较高"),
    ("176", "一般"),
    ("177", "较低"),
    ("290", "很低"),
];
/// `trade` 客户行业: "139:印刷、137:银行、968:电表、967:交流接触器、966:防水头".
pub const TRADE_OPTIONS: &[(&str, &str)] = &[
    ("139", "印刷"),
    ("137", "银行"),
    ("968", "电表"),
    ("967", "交流接触器"),
    ("966", "防水头"),
];
/// `jf2` 是否积分: "1:积分、0:不积分".
pub const JF2_OPTIONS: &[(&str, &str)] = &[("1", "积分"), ("0", "不积分")];
/// `bz` 客户币种: "14:人民币".
pub const BZ_OPTIONS: &[(&str, &str)] = &[("14", "人民币")];
/// `sex` 性别: "男:男、女:女".
pub const SEX_OPTIONS: &[(&str, &str)] = &[("男", "男"), ("女", "女")];

/// How a form field is typed and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Textarea,
    /// 整型.
    Int,
    /// 数字 (decimal), printed like `1,234.00`.
    Money,
    /// 日期.
    Date,
    /// 枚举类型 with fixed options.
    Enum(&'static [(&'static str, &'static str)]),
    /// 客户分类 (来自树结构数据): the simulator's `--categories`.
    Category,
}

impl Kind {
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Textarea => "textarea",
            Kind::Int => "number",
            Kind::Money => "money",
            Kind::Date => "date",
            Kind::Enum(_) | Kind::Category => "select",
        }
    }
}

/// One field of the customer form (单位客户添加 / 个人客户添加).
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub id: &'static str,
    pub title: &'static str,
    pub kind: Kind,
    /// 是 = required.
    pub must: bool,
    /// "N字以内" (0 = no limit given).
    pub max: usize,
    /// Index into [`GROUPS`].
    pub group: usize,
}

const fn f(id: &'static str, title: &'static str, kind: Kind, max: usize, group: usize) -> Field {
    Field {
        id,
        title,
        kind,
        must: false,
        max,
        group,
    }
}

const fn must(
    id: &'static str,
    title: &'static str,
    kind: Kind,
    max: usize,
    group: usize,
) -> Field {
    Field {
        id,
        title,
        kind,
        must: true,
        max,
        group,
    }
}

/// Groups of the customer form: `(id, title)`.
pub const GROUPS: [(&str, &str); 3] = [
    ("base", "基本信息"),
    ("person", "联系人信息"),
    ("other", "其他信息"),
];

/// The customer form, field by field as the vendor documents it (是 = `must`).
pub const CUSTOMER_FORM: &[Field] = &[
    must("name", "客户名称", Kind::Text, 100, 0),
    f("pym", "拼音码", Kind::Text, 200, 0),
    f("khid", "客户编号", Kind::Text, 50, 0),
    must("sort1", "客户分类", Kind::Category, 50, 0),
    f("ly", "客户来源", Kind::Enum(LY_OPTIONS), 0, 0),
    f("jf2", "是否积分", Kind::Enum(JF2_OPTIONS), 0, 0),
    f("area", "客户区域", Kind::Text, 0, 0),
    f("trade", "客户行业", Kind::Enum(TRADE_OPTIONS), 0, 0),
    f("jz", "价值评估", Kind::Enum(JZ_OPTIONS), 0, 0),
    f("credit", "信用等级", Kind::Text, 50, 0),
    f("url", "客户网址", Kind::Text, 100, 0),
    f("bz", "客户币种", Kind::Enum(BZ_OPTIONS), 50, 0),
    f("hk_xz", "到款限制", Kind::Money, 0, 0),
    f("address", "客户地址", Kind::Text, 200, 0),
    f("lng", "经度", Kind::Text, 50, 0),
    f("lat", "纬度", Kind::Text, 50, 0),
    f("zip", "邮编", Kind::Text, 10, 0),
    f("faren", "法人代表", Kind::Text, 50, 0),
    f("zijin", "注册资本", Kind::Money, 0, 0),
    f("pernum1", "人员数量-销售", Kind::Int, 0, 0),
    f("pernum2", "人员数量-技术", Kind::Int, 0, 0),
    f("date1", "添加时间", Kind::Date, 0, 0),
    must("person_name", "联系人姓名", Kind::Text, 50, 1),
    f("@personpym", "拼音码", Kind::Text, 50, 1),
    f("sex", "性别", Kind::Enum(SEX_OPTIONS), 0, 1),
    f("age", "年龄", Kind::Int, 0, 1),
    f("year1", "生日", Kind::Date, 0, 1),
    f("part1", "部门", Kind::Text, 50, 1),
    f("job", "职务", Kind::Text, 50, 1),
    f("phone", "办公电话", Kind::Text, 50, 1),
    f("fax", "传真", Kind::Text, 50, 1),
    f("mobile", "手机", Kind::Text, 50, 1),
    f("phone2", "家庭电话", Kind::Text, 50, 1),
    f("email", "电子邮件", Kind::Text, 50, 1),
    f("qq", "QQ", Kind::Text, 20, 1),
    f("weixinAcc", "微信", Kind::Text, 50, 1),
    f("XiQueIntro", "喜鹊声声", Kind::Text, 50, 1),
    f("msn", "MSN", Kind::Text, 50, 1),
    f("jg", "籍贯", Kind::Text, 50, 1),
    f("product", "客户简介", Kind::Textarea, 4000, 2),
    f("c2", "合作现状", Kind::Textarea, 4000, 2),
    f("c3", "合作前景", Kind::Textarea, 4000, 2),
    f("c4", "跟进策略", Kind::Textarea, 4000, 2),
    f("intro", "备注", Kind::Textarea, 4000, 2),
    f("bank_1", "开户银行1", Kind::Text, 50, 2),
    f("bank_2", "开户名称1", Kind::Text, 50, 2),
    f("bank_7", "银行行号1", Kind::Text, 50, 2),
    f("bank_3", "银行账号1", Kind::Text, 50, 2),
    f("bank_4", "税号1", Kind::Text, 50, 2),
    f("bank_5", "地址1", Kind::Text, 50, 2),
    f("bank_6", "电话1", Kind::Text, 50, 2),
    f("bank2_1", "开户银行2", Kind::Text, 50, 2),
    f("bank2_2", "开户名称2", Kind::Text, 50, 2),
    f("bank2_7", "银行行号2", Kind::Text, 50, 2),
    f("bank2_3", "银行账号2", Kind::Text, 50, 2),
    f("bank2_4", "税号2", Kind::Text, 50, 2),
    f("bank2_5", "地址2", Kind::Text, 50, 2),
    f("bank2_6", "电话2", Kind::Text, 50, 2),
    f("fkdays", "账期", Kind::Int, 0, 2),
    f("fkdate", "结算日期", Kind::Int, 0, 2),
];

/// The form field `id`, if the form has one.
pub fn form_field(id: &str) -> Option<&'static Field> {
    CUSTOMER_FORM.iter().find(|f| f.id == id)
}

/// The contact section of the customer form: on create it also becomes the customer's first
/// contact person ("联系人信息").
pub const CONTACT_FIELDS: [&str; 8] = [
    "person_name",
    "mobile",
    "phone",
    "email",
    "weixinAcc",
    "qq",
    "sex",
    "job",
];

/// Fields of 联系人添加 (`person/add.asp`) besides `ord` and `company`, with their "N字以内" limit.
pub const PERSON_FORM: &[(&str, &str, usize)] = &[
    ("person_name", "联系人姓名", 50),
    ("pym", "拼音码", 50),
    ("sex", "性别", 50),
    ("age", "年龄", 0),
    ("year1", "生日", 0),
    ("part1", "部门", 50),
    ("job", "职务", 50),
    ("phone", "办公电话", 50),
    ("fax", "传真", 50),
    ("mobile", "手机", 50),
    ("mobile2", "手机2", 50),
    ("phone2", "家庭电话", 50),
    ("email", "电子邮件", 50),
    ("qq", "QQ", 20),
    ("weixinAcc", "微信", 50),
    ("XiQueIntro", "喜鹊声声", 50),
    ("msn", "MSN", 50),
    ("jg", "籍贯", 50),
    ("zip", "邮编", 10),
    ("joy", "爱好特长", 3000),
    ("intro", "备注", 5000),
];

/// Fields of webapi 客户添加 / 客户修改 that are stored under the same id as the mobile form's.
/// `sort` (客户分类) is stored as `sort1`, `sort1` (跟进程度) as `follow`, `sort2` is the intsort,
/// `Date1` sets the add time and `cateName` the sales person.
pub const WEBAPI_FIELDS: &[&str] = &[
    "name",
    "khid",
    "ly",
    "area",
    "trade",
    "jz",
    "credit",
    "url",
    "hk_xz",
    "pernum1",
    "pernum2",
    "address",
    "zip",
    "faren",
    "zijin",
    "product",
    "c2",
    "c3",
    "c4",
    "intro",
    "bank_1",
    "bank_2",
    "bank_7",
    "bank_3",
    "bank_4",
    "bank_5",
    "bank_6",
    "bank2_1",
    "bank2_2",
    "bank2_7",
    "bank2_3",
    "bank2_4",
    "bank2_5",
    "bank2_6",
    "fkdays",
    "fkdate",
    "sort98",
    "reply",
    "person_name",
    "sex",
    "year1",
    "jg",
    "part1",
    "job",
    "role",
    "phone",
    "fax",
    "mobile",
    "email",
    "sphone",
    "smobile",
    "sarea",
    "saddress",
    "szip",
    "qq",
    "weixinAcc",
    "msn",
    "Cateadd",
];

/// 跟进方式 (`sort`): "484:其他、483:上门、482:邮件、481:电话".
pub const FOLLOWUP_SORTS: [&str; 4] = ["481", "482", "483", "484"];
/// 日程类型 (`plantype`): "2:已完成日程、1:待完成日程、0:不生成".
pub const PLAN_TYPES: [&str; 3] = ["0", "1", "2"];

/// `id:text` pairs from a `"11:微信客户,12:网站客户"` flag.
pub fn parse_options(spec: &str) -> Result<Vec<(String, String)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once(':') {
            Some((id, text)) if !id.trim().is_empty() => {
                Ok((id.trim().to_string(), text.trim().to_string()))
            }
            _ => Err(format!("bad option {item:?} (expected id:text)")),
        })
        .collect()
}

/// A decimal printed as the VBScript server prints money: `1234.5` → `"1,234.50"` (`""` stays `""`).
pub fn money(raw: &str) -> String {
    let t = raw.trim().replace(',', "");
    if t.is_empty() {
        return String::new();
    }
    let Ok(v) = t.parse::<f64>() else {
        return raw.to_string();
    };
    let cents = (v.abs() * 100.0).round() as u128;
    let digits = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    let sign = if v < 0.0 && cents > 0 { "-" } else { "" };
    format!("{sign}{grouped}.{:02}", cents % 100)
}

/// Whether `s` is a `YYYY-MM-DD HH:MM:SS` datetime (vendor type `datetime`).
pub fn is_datetime(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn money_and_numbers() {
        assert_eq!(money("1234"), "1,234.00");
        assert_eq!(money("1234567.5"), "1,234,567.50");
        assert_eq!(money("0"), "0.00");
        assert_eq!(money("-12.345"), "-12.35");
        assert_eq!(money(""), "");
        assert_eq!(loose_i64(&json!("12")), Some(12));
        assert_eq!(loose_i64(&json!(12.0)), Some(12));
        assert_eq!(loose_i64(&json!("x")), None);
        assert!(is_datetime("2026-12-01 10:20:30"));
        assert!(!is_datetime("2026-12-01"));
    }

    #[test]
    fn options() {
        let o = parse_options("11:微信客户, 12:网站客户").unwrap_or_default();
        assert_eq!(o.len(), 2);
        assert_eq!(o[1], ("12".to_string(), "网站客户".to_string()));
        assert!(parse_options("x").is_err());
        assert!(form_field("sort1").is_some_and(|f| f.must));
    }
}
