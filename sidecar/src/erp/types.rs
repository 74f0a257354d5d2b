//! Typed requests and replies of the ERP client.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `intsort` of a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerKind {
    /// 单位客户 (`intsort=1`).
    Company = 1,
    /// 个人客户 (`intsort=2`).
    Personal = 2,
}

impl CustomerKind {
    pub fn intsort(self) -> u8 {
        self as u8
    }
    pub fn from_intsort(v: i64) -> Option<Self> {
        match v {
            1 => Some(Self::Company),
            2 => Some(Self::Personal),
            _ => None,
        }
    }
}

/// Fields of `custom/add.asp?intsort=N` `__sys_dosave`, serialised to `datas` with the vendor's ids
/// (`weixin_acc` → `weixinAcc`). `None` fields are not sent (an update leaves them unchanged);
/// `Some("")` clears a field. The vendor's required `sort1` (客户分类) and `person_name` are filled
/// in by the client when `None` (configured category; the customer's name).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerFields {
    /// The customer's ord: allocated (create) or existing (update). `None` on `save_customer` = allocate first.
    pub ord: Option<i64>,
    /// 客户名称; empty = not sent.
    pub name: String,
    pub khid: Option<String>,
    /// 客户分类 (vendor `sort1`); `None` = `erp.customer_category` for the customer's kind.
    pub sort1: Option<String>,
    /// 客户来源 (e.g. `171`).
    pub ly: Option<String>,
    pub mobile: Option<String>,
    pub weixin_acc: Option<String>,
    pub address: Option<String>,
    /// 价值评估 (175/289/176/177/290).
    pub jz: Option<String>,
    pub intro: Option<String>,
    pub product: Option<String>,
    pub person_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl CustomerFields {
    /// `(vendor id, value)` pairs of the set fields, `ord` excluded. An empty `name` is not sent:
    /// the vendor requires it on every save, so the ERP refuses such a save with its own text.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        let mut v: Vec<(&'static str, &str)> = Vec::with_capacity(12);
        if !self.name.is_empty() {
            v.push(("name", self.name.as_str()));
        }
        let opt = [
            ("khid", &self.khid),
            ("sort1", &self.sort1),
            ("ly", &self.ly),
            ("mobile", &self.mobile),
            ("weixinAcc", &self.weixin_acc),
            ("address", &self.address),
            ("jz", &self.jz),
            ("intro", &self.intro),
            ("product", &self.product),
            ("person_name", &self.person_name),
            ("phone", &self.phone),
            ("email", &self.email),
        ];
        for (id, val) in opt {
            if let Some(s) = val {
                v.push((id, s.as_str()));
            }
        }
        v
    }
}

/// One customer as the ERP lists it (`custom/list.asp` row or details).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErpCustomer {
    pub ord: i64,
    pub name: Option<String>,
    pub khid: Option<String>,
    pub ly: Option<String>,
    pub mobile: Option<String>,
    pub weixin_acc: Option<String>,
    pub address: Option<String>,
    /// 添加时间 (`date1`), as the ERP formats it.
    pub add_date: Option<String>,
    /// 销售人员 (`catename`).
    pub sales_person: Option<String>,
    /// The row as received (every column, by id).
    pub raw: Map<String, Value>,
}

/// Filters of `custom/list.asp` `refresh`. `None`/0 = not sent (ERP defaults: pagesize 20, pageindex 1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListFilter {
    pub khid: Option<String>,
    pub ly: Option<String>,
    pub mobile: Option<String>,
    pub name: Option<String>,
    pub pagesize: u32,
    pub pageindex: u32,
    /// `_rpt_sort`, e.g. `-date1`.
    pub sort: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    pub pageindex: u32,
    pub pagecount: u32,
    pub pagesize: u32,
    pub recordcount: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T = ErpCustomer> {
    pub page: PageInfo,
    pub rows: Vec<T>,
}

/// `systemmanage/order.asp?datatype=tel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Assignment {
    /// `member1 = 1`: public to all users (公海).
    Public,
    /// `member1 = 0, member2 = user id`.
    To(String),
}

/// `systemmanage/reply.asp?datatype=tel` (洽谈进展). `sort`, `plantype` and the schedule fields
/// come from [`crate::erp::FollowupConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Followup {
    /// Template id, sent as `intro` (`erp.followup.template_field`).
    pub template_id: i64,
    /// The conversation's text, sent as `erp.followup.content_field` (vendor limit 1000 characters).
    pub content: String,
    /// When it happened, `YYYY-MM-DD HH:MM:SS`: the schedule's start and end (plantype 1 and 2).
    pub date: String,
}

/// A contact person to add to a customer (`person/add.asp`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
}

/// A contact person as listed by `person/list.asp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErpPerson {
    pub ord: Option<i64>,
    pub customer_ord: Option<i64>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub raw: Map<String, Value>,
}

/// One field of `custom/add.asp?edit=1` (`body.bill.groups[].fields[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetailField {
    pub id: String,
    /// The caption (`title`, or `text` in the spec's shape).
    pub text: Option<String>,
    /// The value, stringified.
    pub value: Option<String>,
}

/// Details of one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerDetail {
    pub ord: i64,
    pub fields: Vec<DetailField>,
}

impl CustomerDetail {
    /// Value of the field `id` (never its caption).
    pub fn value(&self, id: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.id == id)
            .and_then(|f| f.value.as_deref())
    }

    /// Every field's value by id (fields without a value as null).
    pub fn values(&self) -> serde_json::Map<String, Value> {
        self.fields
            .iter()
            .map(|f| {
                (
                    f.id.clone(),
                    f.value.clone().map_or(Value::Null, Value::String),
                )
            })
            .collect()
    }
}

/// Result of [`crate::erp::ErpClient::save_customer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaveResult {
    pub ord: i64,
    /// The ERP's message text (e.g. `保存成功`).
    pub message: String,
    /// The customer as read back after the save (a save counts only when it reads back).
    pub verified: ErpCustomer,
}

/// One HTTP exchange with the ERP, for `sync_log`: session/token/password removed, mobiles masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Path and query, e.g. `/sysa/mobilephone/salesmanage/custom/add.asp?intsort=1`.
    pub endpoint: String,
    pub cmdkey: Option<String>,
    pub request: Value,
    /// The parsed reply (masked), or `{"unparsed": "<first bytes>"}`, or null when none arrived.
    pub response: Value,
    pub http_status: Option<u16>,
    /// The error this exchange ended in, if any.
    pub error: Option<String>,
    pub elapsed_ms: u64,
}

/// One field of the ERP's customer form (the allocation reply's `bill.groups[].fields[]`), as
/// `erp-sync login --fields` prints it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FormField {
    pub id: String,
    pub caption: String,
    /// The pre-filled value (e.g. a generated khid).
    pub value: String,
    pub required: bool,
    /// `(value, caption)` of an enumeration or tree.
    pub options: Vec<(String, String)>,
}
