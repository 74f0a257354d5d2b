//! Customers: exact lookups over the ERP's fuzzy list filters, saves that count only when they read
//! back, deletes that count only when the customer is gone.
//!
//! Vendor rules implemented here (`../shared/erp_api/README.md`):
//! - `custom/list.asp`: `name`, `khid`, `mobile`, `phone`, `address` are 模糊检索 (substring), the
//!   default page size is 20. A lookup reads every page and compares exactly; a lookup that cannot
//!   finish is an error, never "absent".
//! - `custom/add.asp?intsort=1|2` `__sys_dosave`: `name` (100), `sort1` 客户分类 (50) and
//!   `person_name` (50) are required for both kinds; the reply is a MessageClass without `result`.
//! - `/webapi/v3/sales/customer/edit`: `ord`, `sort2` (1 单位 / 2 个人), `name`, `sort` 客户分类,
//!   `sort1` 跟进程度, `person_name` are required.

use std::borrow::Cow;

use serde_json::{Map, Value};
use tracing::warn;

use crate::error::{Error, Result};

use super::client::{ErpClient, Proto};
use super::config::UpdateMode;
use super::list;
use super::protocol::{self, item, WriteReply};
use super::types::*;

/// The vendor's length limits (characters) of the customer fields we send.
const LIMITS: [(&str, usize); 13] = [
    ("name", 100),
    ("khid", 50),
    ("sort1", 50),
    ("mobile", 50),
    ("weixinAcc", 50),
    ("address", 200),
    ("intro", 4000),
    ("product", 4000),
    ("person_name", 50),
    ("phone", 50),
    ("email", 50),
    ("ly", 50),
    ("jz", 50),
];

/// Fields compared after a save when the read-back has them: every field we send. Enumerations
/// (`ly`, `jz`, `sort1`) are compared when they read back as ids (a caption cannot be compared);
/// long texts are compared with their whitespace folded (the server may re-wrap them).
const VERIFIED: [&str; 13] = [
    "name",
    "khid",
    "mobile",
    "weixinAcc",
    "address",
    "person_name",
    "phone",
    "email",
    "intro",
    "product",
    "ly",
    "jz",
    "sort1",
];

/// Cut `v` to the vendor's limit for field `id`.
pub fn clip<'a>(id: &str, v: &'a str) -> Cow<'a, str> {
    let v = v.trim();
    match LIMITS.iter().find(|(f, _)| *f == id) {
        Some((_, max)) if v.chars().count() > *max => Cow::Owned(v.chars().take(*max).collect()),
        _ => Cow::Borrowed(v),
    }
}

/// Whitespace folded to single spaces, for comparing texts the server may re-wrap.
fn folded(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Digits only, for comparing phone numbers however they are written.
fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

impl ErpClient {
    // ------------------------------------------------------------------ lookups

    /// `custom/list.asp` `refresh`: one page.
    pub async fn list_customers(&self, filter: &ListFilter) -> Result<ListPage> {
        let mut d = Vec::new();
        for (id, v) in [
            ("khid", &filter.khid),
            ("ly", &filter.ly),
            ("mobile", &filter.mobile),
            ("name", &filter.name),
        ] {
            if let Some(v) = v {
                d.push(item(id, v.as_str()));
            }
        }
        if filter.pagesize > 0 {
            d.push(item("pagesize", filter.pagesize));
        }
        if filter.pageindex > 0 {
            d.push(item("pageindex", filter.pageindex));
        }
        if let Some(s) = &filter.sort {
            d.push(item("_rpt_sort", s.as_str()));
        }
        let env = self
            .mobile(protocol::CUSTOM_LIST, Some(protocol::CMD_REFRESH), d)
            .await?;
        list::customer_page(&env)
    }

    /// Every customer of the (fuzzy) `filter` for which `keep` holds: all pages, at
    /// `erp.lookup_page_size` rows each. The scan is complete or an error: a page that fails, more
    /// than `erp.lookup_max_pages` pages, or fewer rows than the ERP's `recordcount` are errors
    /// (retryable); a `recordcount` that changes between pages restarts the scan (twice at most).
    pub async fn scan_customers(
        &self,
        filter: &ListFilter,
        keep: impl Fn(&ErpCustomer) -> bool,
    ) -> Result<Vec<ErpCustomer>> {
        let cfg = self.config();
        'scan: for _ in 0..3 {
            let mut out: Vec<ErpCustomer> = Vec::new();
            let mut expected: Option<u64> = None;
            let mut read = 0u64;
            let mut pageindex = 1u32;
            loop {
                let f = ListFilter {
                    pagesize: cfg.lookup_page_size,
                    pageindex,
                    ..filter.clone()
                };
                let page = self.list_customers(&f).await?;
                match expected {
                    None => expected = Some(page.page.recordcount),
                    Some(n) if n != page.page.recordcount => continue 'scan,
                    Some(_) => {}
                }
                read += page.rows.len() as u64;
                let empty = page.rows.is_empty();
                for c in page.rows.into_iter().filter(|c| keep(c)) {
                    if !out.iter().any(|o| o.ord == c.ord) {
                        out.push(c);
                    }
                }
                if empty || pageindex >= page.page.pagecount {
                    break;
                }
                if pageindex >= cfg.lookup_max_pages {
                    return Err(Error::Protocol(format!(
                        "lookup needs more than erp.lookup_max_pages = {} pages of {} rows ({} records match the ERP's fuzzy filter)",
                        cfg.lookup_max_pages,
                        cfg.lookup_page_size,
                        expected.unwrap_or(0)
                    )));
                }
                pageindex += 1;
            }
            let expected = expected.unwrap_or(0);
            if read < expected {
                return Err(Error::Protocol(format!(
                    "lookup incomplete: the ERP reported {expected} records but its pages held {read}"
                )));
            }
            return Ok(out);
        }
        Err(Error::Protocol(
            "lookup incomplete: the ERP's customer list kept changing while it was read".into(),
        ))
    }

    /// The customer whose `khid` is exactly `khid` (lowest ord if several).
    pub async fn find_by_khid(&self, khid: &str) -> Result<Option<ErpCustomer>> {
        let want = khid.trim();
        let filter = ListFilter {
            khid: Some(want.to_string()),
            ..ListFilter::default()
        };
        let found = self
            .scan_customers(&filter, |c| c.khid.as_deref().map(str::trim) == Some(want))
            .await?;
        Ok(found.into_iter().min_by_key(|c| c.ord))
    }

    /// Customers whose `mobile` is `mobile` (compared by its digits).
    pub async fn find_by_mobile(&self, mobile: &str) -> Result<Vec<ErpCustomer>> {
        let want = digits(mobile);
        if want.is_empty() {
            return Ok(Vec::new());
        }
        // The ERP's filter is a substring match: send the digits we compare by.
        let filter = ListFilter {
            mobile: Some(want.clone()),
            ..ListFilter::default()
        };
        self.scan_customers(&filter, |c| {
            c.mobile.as_deref().map(digits).as_deref() == Some(want.as_str())
        })
        .await
    }

    /// `custom/add.asp?edit=1`: details, `None` when the reply holds no customer.
    pub async fn customer_detail(&self, ord: i64) -> Result<Option<CustomerDetail>> {
        let endpoint = format!("{}?edit=1", protocol::CUSTOM_ADD);
        let env = self.mobile(&endpoint, None, vec![item("ord", ord)]).await?;
        list::parse_detail(&env, ord)
    }

    /// What the ERP holds for `ord`: its details, else its row in the exact khid lookup.
    pub async fn read_back(&self, ord: i64, khid: Option<&str>) -> Result<Option<ErpCustomer>> {
        if let Some(d) = self.customer_detail(ord).await? {
            let mut raw = d.values();
            raw.insert("ord".into(), Value::from(ord));
            return list::customer_from_row(raw).map(Some);
        }
        match khid.filter(|k| !k.trim().is_empty()) {
            Some(k) => Ok(self.find_by_khid(k).await?.filter(|c| c.ord == ord)),
            None => Ok(None),
        }
    }

    // ------------------------------------------------------------------ saves

    /// `custom/add.asp` without cmdkey (分配新客户ID): the reply holds a new ord and the form.
    pub(super) async fn allocation(&self, kind: CustomerKind) -> Result<protocol::Envelope> {
        self.mobile(
            protocol::CUSTOM_ADD,
            None,
            vec![item("intsort", kind.intsort())],
        )
        .await
    }

    /// A new ord (`body.bill.value`, a string on the real server).
    pub async fn allocate_ord(&self, kind: CustomerKind) -> Result<i64> {
        protocol::parse_allocate(&self.allocation(kind).await?)
    }

    /// The `(id, value)` pairs a customer save sends, in the vendor's ids and limits, with the
    /// required `sort1` (configured category) and `person_name` (the name) filled in.
    pub fn customer_datas(
        &self,
        kind: CustomerKind,
        fields: &CustomerFields,
    ) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = fields
            .pairs()
            .into_iter()
            .map(|(id, v)| (id, clip(id, v).into_owned()))
            .collect();
        let has =
            |out: &[(&str, String)], id: &str| out.iter().any(|(k, v)| *k == id && !v.is_empty());
        if !has(&out, "sort1") {
            out.retain(|(k, _)| *k != "sort1");
            out.push((
                "sort1",
                clip("sort1", self.config().category(kind)).into_owned(),
            ));
        }
        if !has(&out, "person_name") && !fields.name.trim().is_empty() {
            out.retain(|(k, _)| *k != "person_name");
            out.push((
                "person_name",
                clip("person_name", &fields.name).into_owned(),
            ));
        }
        out
    }

    async fn dosave(
        &self,
        kind: CustomerKind,
        ord: i64,
        sent: &[(&str, String)],
    ) -> Result<WriteReply> {
        let endpoint = format!("{}?intsort={}", protocol::CUSTOM_ADD, kind.intsort());
        let mut d = vec![item("ord", ord)];
        d.extend(sent.iter().map(|(id, v)| item(id, v.as_str())));
        let env = self.mobile(&endpoint, Some(protocol::CMD_SAVE), d).await?;
        protocol::write_reply(&env)
    }

    /// Create a customer: allocate an ord when `fields.ord` is `None`, then `__sys_dosave`; it
    /// counts when it reads back with the fields sent (see [`ErpClient::verify_save`]).
    pub async fn save_customer(
        &self,
        kind: CustomerKind,
        fields: &CustomerFields,
    ) -> Result<SaveResult> {
        let ord = match fields.ord {
            Some(o) => o,
            None => self.allocate_ord(kind).await?,
        };
        let sent = self.customer_datas(kind, fields);
        let reply = self.dosave(kind, ord, &sent).await?;
        let verified = self.verify_save(ord, &sent, &reply).await?;
        Ok(SaveResult {
            ord,
            message: reply.text,
            verified,
        })
    }

    /// A save counts when the customer reads back (by ord, then by khid) with every compared field
    /// as sent. Otherwise: an acknowledged save (`result` 1 or a success text) is a retryable
    /// `Protocol` error ("acknowledged but not stored"); anything else is `Business` with the
    /// ERP's text verbatim (a refusal: the row is dead at once); no text at all is retryable.
    pub async fn verify_save(
        &self,
        ord: i64,
        sent: &[(&str, String)],
        reply: &WriteReply,
    ) -> Result<ErpCustomer> {
        let refused = || {
            if reply.text.trim().is_empty() && reply.result.is_none() {
                Error::Protocol(format!(
                    "the save of ord {ord} got a reply without a message and does not read back"
                ))
            } else {
                Error::Business(if reply.text.trim().is_empty() {
                    "refused (result 0, no text)".into()
                } else {
                    reply.text.clone()
                })
            }
        };
        if reply.result == Some(false) {
            return Err(refused());
        }
        let khid = sent
            .iter()
            .find(|(k, _)| *k == "khid")
            .map(|(_, v)| v.as_str());
        let back = self.read_back(ord, khid).await?;
        let diff = match &back {
            Some(c) => differing(sent, &c.raw),
            None => Vec::new(),
        };
        match back {
            Some(c) if diff.is_empty() => Ok(c),
            _ if !reply.acknowledged() => Err(refused()),
            None => {
                warn!(ord, "erp acknowledged a save that it did not persist");
                Err(Error::Protocol(format!(
                    "ERP acknowledged the save of ord {ord} ({}) but read-back found nothing (not persisted)",
                    reply.text
                )))
            }
            Some(_) => Err(Error::Protocol(format!(
                "ERP acknowledged the save of ord {ord} ({}) but reads back different {}",
                reply.text,
                diff.join(", ")
            ))),
        }
    }

    /// Update an existing customer (`fields.ord` required) through `update_mode`; it counts when
    /// it reads back with the fields sent.
    pub async fn edit_customer(
        &self,
        kind: CustomerKind,
        fields: &CustomerFields,
    ) -> Result<ErpCustomer> {
        let ord = fields
            .ord
            .ok_or_else(|| Error::Config("edit_customer needs fields.ord".into()))?;
        let sent = self.customer_datas(kind, fields);
        let reply = match self.config().update_mode {
            UpdateMode::Save => self.dosave(kind, ord, &sent).await?,
            UpdateMode::Webapi => self.webapi_edit(kind, ord, &sent).await?,
        };
        self.verify_save(ord, &sent, &reply).await
    }

    /// `/webapi/v3/sales/customer/edit`: `sort` = 客户分类, `sort1` = 跟进程度, `sort2` = the kind.
    async fn webapi_edit(
        &self,
        kind: CustomerKind,
        ord: i64,
        sent: &[(&str, String)],
    ) -> Result<WriteReply> {
        let mut m = Map::new();
        m.insert("ord".into(), Value::from(ord));
        m.insert("sort2".into(), Value::from(kind.intsort()));
        for (id, v) in sent {
            // add.asp's `sort1` (客户分类) is the webapi's `sort`.
            let key = if *id == "sort1" { "sort" } else { id };
            m.insert(key.into(), Value::String(v.clone()));
        }
        m.insert(
            "sort1".into(),
            Value::String(self.config().follow_level.trim().to_string()),
        );
        let env = self
            .call(
                protocol::WEBAPI_CUSTOMER_EDIT,
                Proto::Webapi {
                    body: Value::Object(m),
                },
            )
            .await?;
        // Code 200 (anything else is an error already): acknowledged.
        Ok(WriteReply {
            text: env.message.unwrap_or_default(),
            result: Some(true),
        })
    }

    /// Delete a customer (rollback of a create) through `erp.delete_endpoint`: `Ok(true)` once it
    /// no longer reads back, `Ok(false)` when it did not exist before.
    pub async fn delete_customer(&self, ord: i64, khid: Option<&str>) -> Result<bool> {
        if self.read_back(ord, khid).await?.is_none() {
            return Ok(false);
        }
        let cfg = self.config();
        let env = self
            .mobile(
                &cfg.delete_endpoint,
                Some(&cfg.delete_cmdkey),
                vec![item("id", ord), item("ord", ord)],
            )
            .await?;
        let reply = protocol::write_reply(&env)?;
        if self.read_back(ord, khid).await?.is_none() {
            return Ok(true);
        }
        if reply.acknowledged() || reply.text.trim().is_empty() {
            Err(Error::Protocol(format!(
                "the ERP answered the delete of ord {ord} with {:?} but the customer still reads back",
                reply.text
            )))
        } else {
            Err(Error::Business(reply.text))
        }
    }
}

/// The compared fields whose read-back value differs from what was sent (ids only: values may be
/// personal data).
fn differing(sent: &[(&str, String)], back: &Map<String, Value>) -> Vec<String> {
    sent.iter()
        .filter(|(id, _)| VERIFIED.contains(id))
        .filter_map(|(id, v)| {
            let got = back.get(*id).and_then(protocol::as_string_loose)?;
            let same = match *id {
                "mobile" | "phone" => digits(&got) == digits(v),
                "ly" | "jz" | "sort1" if got.trim().parse::<i64>().is_err() => true,
                "intro" | "product" | "address" => folded(&got) == folded(v),
                _ => got.trim() == v.trim(),
            };
            (!same).then(|| (*id).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erp::ErpConfig;
    use serde_json::json;

    fn client(category: &str) -> ErpClient {
        match ErpClient::new(ErpConfig {
            customer_category: category.into(),
            customer_category_personal: "12".into(),
            ..ErpConfig::default()
        }) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn datas_carry_the_required_fields() {
        let c = client("11");
        let f = CustomerFields {
            name: "甲".into(),
            weixin_acc: Some("wx".into()),
            khid: Some("WX1".into()),
            ..Default::default()
        };
        let d = c.customer_datas(CustomerKind::Company, &f);
        let get = |id: &str| d.iter().find(|(k, _)| *k == id).map(|(_, v)| v.as_str());
        assert_eq!(get("name"), Some("甲"));
        assert_eq!(get("sort1"), Some("11"));
        assert_eq!(get("person_name"), Some("甲"), "falls back to the name");
        assert_eq!(get("weixinAcc"), Some("wx"));
        assert_eq!(get("mobile"), None, "unset fields are not sent");
        let d = c.customer_datas(CustomerKind::Personal, &f);
        assert!(d.contains(&("sort1", "12".into())), "{d:?}");
        // A category chosen for this customer wins; so does a contact person.
        let g = CustomerFields {
            sort1: Some("13".into()),
            person_name: Some("李四".into()),
            ..f
        };
        let d = c.customer_datas(CustomerKind::Company, &g);
        assert!(d.contains(&("sort1", "13".into())) && d.contains(&("person_name", "李四".into())));
        assert_eq!(d.iter().filter(|(k, _)| *k == "sort1").count(), 1);
    }

    #[test]
    fn datas_respect_the_vendors_limits() {
        let c = client("11");
        let long = "名".repeat(150);
        let f = CustomerFields {
            name: long.clone(),
            khid: Some(format!(" {} ", "K".repeat(60))),
            ..Default::default()
        };
        let d = c.customer_datas(CustomerKind::Company, &f);
        let get = |id: &str| {
            d.iter()
                .find(|(k, _)| *k == id)
                .map(|(_, v)| v.chars().count())
        };
        assert_eq!(get("name"), Some(100));
        assert_eq!(get("khid"), Some(50));
        assert_eq!(get("person_name"), Some(50));
        assert_eq!(clip("intro", "  a  "), "a");
    }

    #[test]
    fn differing_fields() {
        let sent = vec![
            ("name", "甲".to_string()),
            ("mobile", "13800000001".to_string()),
            ("jz", "175".to_string()),
            ("address", "上海".to_string()),
        ];
        let back = json!({"name":" 甲 ","mobile":"138-0000-0001","jz":"很高"});
        let Value::Object(m) = back else { panic!() };
        assert!(
            differing(&sent, &m).is_empty(),
            "captions and absent fields are not compared"
        );
        let back = json!({"name":"乙","mobile":"13800000002","address":"上海","jz":"289"});
        let Value::Object(m) = back else { panic!() };
        assert_eq!(differing(&sent, &m), ["name", "mobile", "jz"]);
        let sent = vec![("intro", "来自微信中台，\n评分: 92".to_string())];
        let Value::Object(m) = json!({"intro":"来自微信中台，\r\n评分: 92 "}) else {
            panic!()
        };
        assert!(
            differing(&sent, &m).is_empty(),
            "re-wrapped text is the same text"
        );
        let Value::Object(m) = json!({"intro":"旧备注"}) else {
            panic!()
        };
        assert_eq!(differing(&sent, &m), ["intro"]);
    }
}
