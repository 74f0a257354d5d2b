//! Parsing of list tables (`body.source.table`) and details (`body.bill.groups[].fields[]`).

use serde_json::{Map, Value};

use super::protocol::{as_i64_loose, as_string_loose, short, Envelope};
use super::types::{CustomerDetail, DetailField, ErpCustomer, ErpPerson, ListPage, PageInfo};
use crate::error::{Error, Result};

/// A parsed table: page info and rows as `id → value` maps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub page: PageInfo,
    pub rows: Vec<Map<String, Value>>,
}

/// `body.source.table` (or top-level `source.table`, or `body.table`). Rows are positional arrays
/// mapped through `cols[n].id` (a col may also be a bare string; `ord` may be any column), objects
/// keyed by column id, or `{"ord": …, "value": [cells…]}` objects whose cells are positional; `rows`
/// may also be one row object instead of a list. Every value is kept as received (the server prints
/// every cell as a string). `cols` may be empty when there are no rows.
pub fn parse_table(env: &Envelope) -> Result<Table> {
    let table = [
        env.body.get("source").and_then(|s| s.get("table")),
        env.root.get("source").and_then(|s| s.get("table")),
        env.body.get("table"),
    ]
    .into_iter()
    .flatten()
    .find(|t| !t.is_null())
    .ok_or_else(|| {
        Error::Protocol(format!(
            "list reply without source.table: {}",
            short(&env.root)
        ))
    })?;
    let Value::Object(t) = table else {
        return Err(Error::Protocol(format!(
            "source.table is not an object: {}",
            short(table)
        )));
    };
    let cols: Vec<String> = match t.get("cols") {
        Some(Value::Array(c)) => c
            .iter()
            .map(|c| match c {
                Value::Object(o) => o.get("id").and_then(as_string_loose).unwrap_or_default(),
                other => as_string_loose(other).unwrap_or_default(),
            })
            .collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(Error::Protocol(format!(
                "table.cols is not an array: {}",
                short(other)
            )))
        }
    };
    let rows_v: &[Value] = match t.get("rows") {
        Some(Value::Array(r)) => r,
        Some(one @ Value::Object(_)) => std::slice::from_ref(one),
        None | Some(Value::Null) => &[],
        Some(other) => {
            return Err(Error::Protocol(format!(
                "table.rows is not an array: {}",
                short(other)
            )))
        }
    };
    let mut rows = Vec::with_capacity(rows_v.len());
    for (i, r) in rows_v.iter().enumerate() {
        match r {
            Value::Array(cells) => rows.push(positional(i, &cols, cells)?),
            Value::Object(o) => match o.get("value") {
                // `{"ord": "12", "value": ["甲", "WX1", …]}`: the cells follow `cols`.
                Some(Value::Array(cells)) if !cols.is_empty() => {
                    let mut m = positional(i, &cols, cells)?;
                    for (k, v) in o.iter().filter(|(k, _)| k.as_str() != "value") {
                        m.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                    rows.push(m);
                }
                _ => rows.push(o.clone()),
            },
            other => {
                return Err(Error::Protocol(format!(
                    "row {i} is neither array nor object: {}",
                    short(other)
                )))
            }
        }
    }
    let page = match t.get("page") {
        Some(Value::Object(p)) => {
            let g = |k: &str| p.get(k).and_then(as_i64_loose).unwrap_or(0).max(0);
            PageInfo {
                pageindex: g("pageindex") as u32,
                pagecount: g("pagecount") as u32,
                pagesize: g("pagesize") as u32,
                recordcount: g("recordcount") as u64,
            }
        }
        _ => PageInfo {
            pageindex: 1,
            pagecount: u32::from(!rows.is_empty()),
            pagesize: rows.len() as u32,
            recordcount: rows.len() as u64,
        },
    };
    Ok(Table { page, rows })
}

/// One positional row mapped through the column ids.
fn positional(i: usize, cols: &[String], cells: &[Value]) -> Result<Map<String, Value>> {
    if cols.is_empty() && !cells.is_empty() {
        return Err(Error::Protocol(format!(
            "positional row {i} but table has no cols"
        )));
    }
    if cells.len() > cols.len() {
        return Err(Error::Protocol(format!(
            "row {i} has {} cells for {} cols",
            cells.len(),
            cols.len()
        )));
    }
    let mut m = Map::with_capacity(cols.len());
    for (c, v) in cols.iter().zip(cells.iter()) {
        if !c.is_empty() {
            m.insert(c.clone(), v.clone());
        }
    }
    Ok(m)
}

fn get_str(m: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| m.get(*k).and_then(as_string_loose))
        .filter(|s| !s.is_empty())
}

fn get_i64(m: &Map<String, Value>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| m.get(*k).and_then(as_i64_loose))
}

/// A customer row; a row without a numeric `ord` is a protocol violation.
pub fn customer_from_row(row: Map<String, Value>) -> Result<ErpCustomer> {
    let ord = get_i64(&row, &["ord", "id"]).ok_or_else(|| {
        Error::Protocol(format!(
            "customer row without ord: {}",
            short(&Value::Object(row.clone()))
        ))
    })?;
    Ok(ErpCustomer {
        ord,
        name: get_str(&row, &["name"]),
        khid: get_str(&row, &["khid"]),
        ly: get_str(&row, &["ly"]),
        mobile: get_str(&row, &["mobile"]),
        weixin_acc: get_str(&row, &["weixinAcc", "weixinacc", "weixin_acc"]),
        address: get_str(&row, &["address"]),
        add_date: get_str(&row, &["date1", "adddate", "date7"]),
        sales_person: get_str(&row, &["catename", "cateid_name"]),
        raw: row,
    })
}

pub fn customer_page(env: &Envelope) -> Result<ListPage> {
    let t = parse_table(env)?;
    let rows = t
        .rows
        .into_iter()
        .map(customer_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(ListPage { page: t.page, rows })
}

pub fn person_from_row(row: Map<String, Value>, customer_field: &str) -> ErpPerson {
    ErpPerson {
        ord: get_i64(&row, &["ord", "id"]),
        customer_ord: get_i64(&row, &[customer_field, "company"]),
        name: get_str(&row, &["name", "person_name"]),
        phone: get_str(&row, &["phone", "phone1"]),
        mobile: get_str(&row, &["mobile"]),
        email: get_str(&row, &["email"]),
        raw: row,
    }
}

/// `body.bill.groups[].fields[{id,title|text,value}]` (also `body.bill.fields`). The ord is
/// `bill.value`, falling back to the field `ord`, then to `fallback_ord`. `None` when the reply holds
/// no customer: a message instead of a bill (what the server answers for an unknown ord), or a bill
/// whose `name` and `khid` are both empty (an empty form). No text of the reply is interpreted.
pub fn parse_detail(env: &Envelope, fallback_ord: i64) -> Result<Option<CustomerDetail>> {
    let bill = match env.body.get("bill") {
        Some(b @ Value::Object(_)) => b,
        None | Some(Value::Null) if env.body.get("message").is_some() => return Ok(None),
        _ => {
            return Err(Error::Protocol(format!(
                "detail reply without body.bill: {}",
                short(&env.root)
            )))
        }
    };
    let mut fields = Vec::new();
    let mut push_fields = |arr: &Value| -> Result<()> {
        let Value::Array(a) = arr else {
            return Err(Error::Protocol(format!(
                "bill fields is not an array: {}",
                short(arr)
            )));
        };
        for f in a {
            let Value::Object(o) = f else { continue };
            let Some(id) = o.get("id").and_then(as_string_loose) else {
                continue;
            };
            fields.push(DetailField {
                id,
                text: o
                    .get("title")
                    .or_else(|| o.get("text"))
                    .and_then(as_string_loose),
                value: o
                    .get("value")
                    .or_else(|| o.get("val"))
                    .and_then(as_string_loose),
            });
        }
        Ok(())
    };
    if let Some(groups) = bill.get("groups") {
        let Value::Array(gs) = groups else {
            return Err(Error::Protocol(format!(
                "bill.groups is not an array: {}",
                short(groups)
            )));
        };
        for g in gs {
            if let Some(fs) = g.get("fields") {
                push_fields(fs)?;
            }
        }
    }
    if let Some(fs) = bill.get("fields") {
        push_fields(fs)?;
    }
    let ord = bill
        .get("value")
        .and_then(as_i64_loose)
        .or_else(|| {
            fields
                .iter()
                .find(|f| f.id == "ord")
                .and_then(|f| f.value.as_deref())
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(fallback_ord);
    let d = CustomerDetail { ord, fields };
    let blank = |id: &str| d.value(id).is_none_or(|v| v.trim().is_empty());
    if blank("name") && blank("khid") {
        return Ok(None);
    }
    Ok(Some(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erp::protocol::parse_envelope;
    use serde_json::json;

    fn env(v: Value) -> Envelope {
        match parse_envelope(v) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn positional_rows() -> Result<()> {
        let e = env(
            json!({"header":{"status":0},"body":{"model":"source","source":{"table":{
            "page":{"pageindex":"1","pagecount":3,"pagesize":"2","recordcount":"5"},
            "cols":[{"id":"ord"},{"id":"name"},{"id":"khid"},{"id":"mobile"},{"id":"weixinAcc"},{"id":"date1"},{"id":"catename"}],
            "rows":[["12","甲公司","WX1","13800000001","wx_a","2025-01-01 10:00:00","张三"],["13","乙","WX2","","","",""]]}}}}),
        );
        let p = customer_page(&e)?;
        assert_eq!(
            p.page,
            PageInfo {
                pageindex: 1,
                pagecount: 3,
                pagesize: 2,
                recordcount: 5
            }
        );
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].ord, 12);
        assert_eq!(p.rows[0].weixin_acc.as_deref(), Some("wx_a"));
        assert_eq!(p.rows[0].sales_person.as_deref(), Some("张三"));
        assert_eq!(p.rows[1].mobile, None);
        assert_eq!(p.rows[1].raw.get("khid"), Some(&json!("WX2")));
        Ok(())
    }

    #[test]
    fn object_rows_and_toplevel_source() -> Result<()> {
        let e = env(json!({"source":{"table":{"rows":[{"ord":5,"name":"x","khid":"WX5"}]}}}));
        let p = customer_page(&e)?;
        assert_eq!(p.rows[0].ord, 5);
        assert_eq!(p.page.recordcount, 1);
        Ok(())
    }

    #[test]
    fn empty_cols_no_rows() -> Result<()> {
        let e = env(
            json!({"header":{"status":"0"},"body":{"source":{"table":{"page":{"pageindex":1,"pagecount":0,"pagesize":20,"recordcount":0},"cols":[],"rows":[]}}}}),
        );
        let p = customer_page(&e)?;
        assert!(p.rows.is_empty());
        assert_eq!(p.page.pagesize, 20);
        let e2 = env(
            json!({"header":{"status":0},"body":{"source":{"table":{"cols":null,"rows":null}}}}),
        );
        assert!(customer_page(&e2)?.rows.is_empty());
        Ok(())
    }

    #[test]
    fn bad_tables() {
        let no_table = env(json!({"header":{"status":0},"body":{"model":"source"}}));
        assert!(matches!(customer_page(&no_table), Err(Error::Protocol(_))));
        let no_cols = env(
            json!({"header":{"status":0},"body":{"source":{"table":{"cols":[],"rows":[["1"]]}}}}),
        );
        assert!(matches!(customer_page(&no_cols), Err(Error::Protocol(_))));
        let too_many = env(
            json!({"header":{"status":0},"body":{"source":{"table":{"cols":["ord"],"rows":[["1","2"]]}}}}),
        );
        assert!(matches!(customer_page(&too_many), Err(Error::Protocol(_))));
        let no_ord = env(
            json!({"header":{"status":0},"body":{"source":{"table":{"cols":["name"],"rows":[["x"]]}}}}),
        );
        assert!(matches!(customer_page(&no_ord), Err(Error::Protocol(_))));
        let scalar_row = env(
            json!({"header":{"status":0},"body":{"source":{"table":{"cols":["ord"],"rows":[3]}}}}),
        );
        assert!(matches!(
            customer_page(&scalar_row),
            Err(Error::Protocol(_))
        ));
    }

    #[test]
    fn vendor_row_shapes() -> Result<()> {
        let cols = json!([{"id":"name"},{"id":"khid"},{"id":"ord"},{"id":"hk_xz"}]);
        // ord in the third column, every cell a string, money as the vendor prints it.
        let arrays = env(
            json!({"header":{"status":"0"},"body":{"source":{"table":{"cols":cols,"rows":[["甲","WX12","10001","1,234.00"]]}}}}),
        );
        let p = customer_page(&arrays)?;
        assert_eq!(
            (p.rows[0].ord, p.rows[0].khid.as_deref()),
            (10001, Some("WX12"))
        );
        assert_eq!(p.rows[0].raw.get("hk_xz"), Some(&json!("1,234.00")));
        // `{"ord": …, "value": [cells]}` rows.
        let ord_value = env(
            json!({"header":{"status":"0"},"body":{"source":{"table":{"cols":[{"id":"name"},{"id":"khid"}],"rows":[{"ord":"10002","value":["乙","WX120"]}]}}}}),
        );
        let p = customer_page(&ord_value)?;
        assert_eq!(
            (p.rows[0].ord, p.rows[0].khid.as_deref()),
            (10002, Some("WX120"))
        );
        // One row object instead of a list.
        let one = env(
            json!({"header":{"status":"0"},"body":{"source":{"table":{"page":{"pageindex":"1","pagecount":"1","pagesize":"20","recordcount":"1"},"cols":cols,"rows":{"ord":"10003","value":["丙","WX1200","10003","0.00"]}}}}}),
        );
        let p = customer_page(&one)?;
        assert_eq!(
            (p.rows.len(), p.rows[0].ord, p.page.recordcount),
            (1, 10003, 1)
        );
        let plain_obj = env(
            json!({"header":{"status":"0"},"body":{"source":{"table":{"cols":cols,"rows":{"ord":"4","khid":"WX4"}}}}}),
        );
        assert_eq!(
            customer_page(&plain_obj)?.rows[0].khid.as_deref(),
            Some("WX4")
        );
        Ok(())
    }

    #[test]
    fn short_rows_are_padded_by_absence() -> Result<()> {
        let e = env(
            json!({"header":{"status":0},"body":{"source":{"table":{"cols":["ord","name","khid"],"rows":[["9"]]}}}}),
        );
        let p = customer_page(&e)?;
        assert_eq!(p.rows[0].ord, 9);
        assert_eq!(p.rows[0].name, None);
        Ok(())
    }

    #[test]
    fn persons() -> Result<()> {
        let e = env(
            json!({"header":{"status":0},"body":{"source":{"table":{"cols":[{"id":"ord"},{"id":"name"},{"id":"company"},{"id":"mobile"}],"rows":[["3","李四","12","13911112222"]]}}}}),
        );
        let t = parse_table(&e)?;
        let p: Vec<ErpPerson> = t
            .rows
            .into_iter()
            .map(|r| person_from_row(r, "company"))
            .collect();
        assert_eq!(p[0].ord, Some(3));
        assert_eq!(p[0].customer_ord, Some(12));
        assert_eq!(p[0].mobile.as_deref(), Some("13911112222"));
        Ok(())
    }

    #[test]
    fn details() -> Result<()> {
        let e = env(
            json!({"header":{"status":0},"body":{"model":"bill","bill":{"value":"42","groups":[
            {"id":"base","fields":[{"id":"name","text":"客户名称","value":"甲"},{"id":"khid","text":"客户编号","value":"WX1"}]},
            {"id":"more","fields":[{"id":"mobile","text":"手机","value":13800000000_i64}, "junk", {"text":"no id"}]}]}}}),
        );
        let d = parse_detail(&e, 0)?.ok_or(Error::Protocol("none".into()))?;
        assert_eq!(d.ord, 42);
        assert_eq!(d.value("name"), Some("甲"));
        assert_eq!(d.value("mobile"), Some("13800000000"));
        assert_eq!(d.fields[0].text.as_deref(), Some("客户名称"));
        assert_eq!(d.fields.len(), 3);
        let flat = env(
            json!({"header":{"status":0},"body":{"bill":{"fields":[{"id":"ord","value":"7"},{"id":"khid","value":"WX7"}]}}}),
        );
        assert_eq!(parse_detail(&flat, 0)?.map(|d| d.ord), Some(7));
        // The vendor's shape: `title` captions, every value a string.
        let vendor = env(
            json!({"header":{"status":"0"},"body":{"model":"bill","bill":{"value":"9","groups":[{"fields":[{"id":"name","title":"客户名称","value":"乙"}]}]}}}),
        );
        let d = parse_detail(&vendor, 0)?.ok_or(Error::Protocol("none".into()))?;
        assert_eq!(
            (d.ord, d.value("name"), d.fields[0].text.as_deref()),
            (9, Some("乙"), Some("客户名称"))
        );
        // No customer: a message instead of a bill, or an empty form. No text is interpreted.
        let msg = env(
            json!({"header":{"status":0},"body":{"model":"message","message":{"text":"该客户不存在或已被删除"}}}),
        );
        assert_eq!(parse_detail(&msg, 1)?, None);
        let empty_form = env(
            json!({"header":{"status":0},"body":{"bill":{"value":"3","groups":[{"fields":[{"id":"name","value":""},{"id":"khid","value":""}]}]}}}),
        );
        assert_eq!(parse_detail(&empty_form, 3)?, None);
        let none = env(json!({"header":{"status":0},"body":{"model":"bill"}}));
        assert!(matches!(parse_detail(&none, 1), Err(Error::Protocol(_))));
        let bad = env(json!({"header":{"status":0},"body":{"bill":{"groups":{}}}}));
        assert!(matches!(parse_detail(&bad, 1), Err(Error::Protocol(_))));
        Ok(())
    }
}
