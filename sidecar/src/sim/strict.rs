//! Vendor-strict handlers: replies built as the real VBScript server builds them.
//!
//! - envelope `{"header":{"status":"0"|0,"message":"","session":"…"},"body":{…}}`, always
//!   `text/html; charset=utf-8`;
//! - every write answers a MessageClass `{"model":"message","message":{"title":"","text":"…","url":"",
//!   "wait":"0","target":"","uitype":""}}` with no `result`, success and refusal alike;
//! - every table cell and detail value is a string; list rows come in three shapes.

use std::sync::atomic::Ordering;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::app::{Endpoint, LoginOutcome, Sim};
use super::request::{json_response, refusal_rule, stringify, Req};
use super::rules::{self, Catalog, Fields, ListParams, SaveOpts, WebapiOp};
use super::state::{Customer, Page};
use super::vendor::{self as v, Kind};

/// Handle one parsed request in strict mode.
pub(super) fn process(
    sim: &Sim,
    ep: Endpoint,
    req: &Req,
    headers: &HeaderMap,
    body: &Value,
) -> Response {
    match ep {
        Endpoint::Login => login(sim, req),
        Endpoint::WebapiEdit => webapi(sim, headers, body, WebapiOp::Edit),
        Endpoint::WebapiAdd => webapi(sim, headers, body, WebapiOp::Add),
        _ => {
            if !sim.check_session(&req.session) {
                return envelope(req.seq, 1, "会话已超时，请重新登录", "", None);
            }
            if req.is_write() {
                if let Some(text) = refusal_rule(sim, req) {
                    return refuse(sim, req, &text);
                }
            }
            mobile(sim, ep, req)
        }
    }
}

fn mobile(sim: &Sim, ep: Endpoint, req: &Req) -> Response {
    match ep {
        Endpoint::CustomAdd => custom_add(sim, req),
        Endpoint::CustomList => custom_list(sim, req),
        Endpoint::CustomDelete => custom_delete(sim, req),
        Endpoint::PersonAdd => person_add(sim, req),
        Endpoint::PersonList => person_list(sim, req),
        Endpoint::Order => order(sim, req),
        Endpoint::Reply => reply(sim, req),
        Endpoint::Login | Endpoint::WebapiEdit | Endpoint::WebapiAdd => say(req, "参数错误"),
    }
}

// ------------------------------------------------------------------------------------------ replies

/// `{"header":{"status","message","session"},"body"?}`; the status alternates between a number and a
/// string; login and session-timeout replies carry only the header.
pub(super) fn envelope(
    seq: u64,
    status: i64,
    message: &str,
    session: &str,
    body: Option<Value>,
) -> Response {
    let st = if seq.is_multiple_of(2) {
        json!(status)
    } else {
        json!(status.to_string())
    };
    let mut reply = json!({"header": {"status": st, "message": message, "session": session}});
    if let Some(b) = body {
        reply["body"] = b;
    }
    json_response(StatusCode::OK, &reply, true)
}

fn ok(req: &Req, body: Value) -> Response {
    envelope(req.seq, 0, "", &req.session, Some(body))
}

/// MessageClass: "消息对象，一般用于返回某些操作的执行情况，如保存信息，退出信息等等"; no result flag.
pub fn message_class(text: &str) -> Value {
    json!({"model": "message", "message": {
        "title": "", "text": text, "url": "", "wait": "0", "target": "", "uitype": ""}})
}

/// A MessageClass reply (success or refusal: the shape is the same).
pub(super) fn say(req: &Req, text: &str) -> Response {
    ok(req, message_class(text))
}

fn refuse(sim: &Sim, req: &Req, text: &str) -> Response {
    sim.stats.refusals.fetch_add(1, Ordering::Relaxed);
    say(req, text)
}

fn answer<T>(sim: &Sim, req: &Req, r: Result<T, String>, success: &str) -> Response {
    match r {
        Ok(_) => say(req, success),
        Err(text) => refuse(sim, req, &text),
    }
}

/// The fault-dependent options of a customer save (`not_persisted` is decided here).
fn save_opts(sim: &Sim) -> SaveOpts {
    let (dup, not_persisted) =
        sim.with_faults(|f| (f.duplicate_mobile_rule, f.not_persisted(|| sim.roll())));
    if not_persisted {
        sim.stats.not_persisted.fetch_add(1, Ordering::Relaxed);
    }
    SaveOpts {
        duplicate_mobile_rule: dup,
        persist: !not_persisted,
    }
}

// ------------------------------------------------------------------------------------------ login

fn login(sim: &Sim, req: &Req) -> Response {
    let user = req.get("user").unwrap_or("");
    let pw = req.get("password").unwrap_or("");
    match sim.login(user, pw) {
        LoginOutcome::Ok(token) => envelope(req.seq, 0, "API鉴权成功.", &token, None),
        LoginOutcome::BadCredentials => envelope(req.seq, 2, "用户名或密码错误", "", None),
        LoginOutcome::Locked => envelope(
            req.seq,
            3,
            "登录失败次数过多，请输入验证码后再登录",
            "",
            None,
        ),
    }
}

// ------------------------------------------------------------------------------------------ customers

/// `intsort` "客户类型，1: 单位客户、2: 个人客户，该参数也可在URL中定义".
fn intsort(req: &Req) -> Option<u8> {
    req.query("intsort")
        .or_else(|| req.get("intsort"))
        .and_then(v::parse_i64)
        .and_then(|i| u8::try_from(i).ok())
        .filter(|i| matches!(i, 1 | 2))
}

fn custom_add(sim: &Sim, req: &Req) -> Response {
    let edit = req.query("edit") == Some("1") || req.get("edit").map(str::trim) == Some("1");
    match req.cmdkey.as_deref() {
        None | Some("") if edit => detail(sim, req),
        None | Some("") => allocate(sim, req),
        Some(v::CMD_SAVE) => {
            let (ord, it) = (req.num("ord"), intsort(req));
            let opts = save_opts(sim);
            let r = sim
                .with_store(|s| rules::save_customer(s, sim.catalog(), it, ord, &req.datas, opts));
            answer(sim, req, r, "保存成功")
        }
        Some(_) => say(req, "参数错误"),
    }
}

/// 分配新客户ID: a BillClass whose `value` is the new ord (a string) and whose groups are the form,
/// with `khid` pre-filled.
fn allocate(sim: &Sim, req: &Req) -> Response {
    let (ord, khid) = sim.with_store(rules::allocate);
    let title = if intsort(req) == Some(2) {
        "添加个人客户"
    } else {
        "添加单位客户"
    };
    let groups = form_groups(sim.catalog(), |f| {
        if f.id == "khid" {
            khid.clone()
        } else {
            String::new()
        }
    });
    ok(
        req,
        json!({"model": "bill", "bill": {"title": title, "value": ord.to_string(), "groups": groups}}),
    )
}

/// The form's groups; `value(field)` gives each field's value.
fn form_groups(cat: &Catalog, value: impl Fn(&v::Field) -> String) -> Vec<Value> {
    v::GROUPS
        .iter()
        .enumerate()
        .map(|(gi, (gid, gtitle))| {
            let fields: Vec<Value> = v::CUSTOMER_FORM
                .iter()
                .filter(|f| f.group == gi)
                .map(|f| form_field(cat, f, value(f)))
                .collect();
            json!({"id": gid, "title": gtitle, "fields": fields})
        })
        .collect()
}

/// `{"id","title","type","value","must":"1"|"0"}` plus `source` options for enum fields.
fn form_field(cat: &Catalog, f: &v::Field, value: String) -> Value {
    let mut m = json!({"id": f.id, "title": f.title, "type": f.kind.type_name(), "value": value,
        "must": if f.must { "1" } else { "0" }});
    let options: Option<Vec<Value>> = match f.kind {
        Kind::Enum(o) => Some(
            o.iter()
                .map(|(v, t)| json!({"value": v, "text": t}))
                .collect(),
        ),
        Kind::Category => Some(
            cat.categories
                .iter()
                .map(|(v, t)| json!({"value": v, "text": t}))
                .collect(),
        ),
        _ => None,
    };
    if let Some(o) = options {
        m["source"] = json!({"type_": "options", "options": o});
    }
    m
}

fn plain_field(id: &str, title: &str, value: String) -> Value {
    json!({"id": id, "title": title, "type": "text", "value": value, "must": "0"})
}

/// 客户详情: the stored customer as the form (values as strings, money as `1,234.00`), plus a 系统信息
/// group with ord, intsort, catename and any stored field the form does not have.
fn detail(sim: &Sim, req: &Req) -> Response {
    let ord = req.num("ord");
    let bill = sim.with_store(|s| s.customers.get(&ord).map(|c| detail_bill(sim.catalog(), c)));
    match bill {
        Some(b) => ok(req, b),
        None => say(req, "该客户不存在或已被删除"),
    }
}

fn detail_bill(cat: &Catalog, c: &Customer) -> Value {
    let mut groups = form_groups(cat, |f| match f.kind {
        Kind::Money => v::money(c.field(f.id)),
        _ => c.get(f.id),
    });
    let mut sys = vec![
        plain_field("ord", "客户ID", c.ord.to_string()),
        plain_field("intsort", "客户类型", c.intsort.to_string()),
        plain_field("catename", "销售人员", c.catename.clone()),
    ];
    sys.extend(
        c.fields
            .iter()
            .filter(|(k, _)| v::form_field(k).is_none())
            .map(|(k, val)| plain_field(k, k, val.clone())),
    );
    groups.push(json!({"id": "sys", "title": "系统信息", "fields": sys}));
    json!({"model": "bill", "bill": {"title": "客户详情", "value": c.ord.to_string(), "groups": groups}})
}

fn custom_list(sim: &Sim, req: &Req) -> Response {
    if req.query("__msgid") == Some("delete") || req.cmdkey.as_deref() == Some(v::CMD_DELETE) {
        return custom_delete(sim, req);
    }
    let get = |id: &str| req.get(id).map(str::to_string);
    let q = if req.cmdkey.as_deref() == Some(v::CMD_REFRESH) {
        ListParams::from_request(
            get,
            &rules::CUSTOMER_FUZZY,
            &rules::CUSTOMER_MULTI,
            "telord",
        )
    } else {
        // No cmdkey: the page skeleton (first page, no filters).
        ListParams::default()
    };
    let max = sim.catalog().max_page_size;
    let (page, rows) = sim.with_store(|s| {
        let (page, rows) = rules::list_customers(s, &q, max);
        let rows: Vec<(i64, Vec<String>)> = rows
            .into_iter()
            .map(|c| {
                let cells = rules::CUSTOMER_COLS
                    .iter()
                    .map(|(id, _)| rules::customer_cell(c, id))
                    .collect();
                (c.ord, cells)
            })
            .collect();
        (page, rows)
    });
    ok(
        req,
        table(req.seq, "客户列表", page, &rules::CUSTOMER_COLS, rows),
    )
}

/// A SourceClass table. Row shapes vary by request seq: positional arrays (most), `{"ord","value"}`
/// objects (every 4th), and — when the page holds exactly one row, every 3rd — `rows` is that one
/// row object instead of a list.
fn table(
    seq: u64,
    title: &str,
    page: Page,
    cols: &[(&str, &str)],
    rows: Vec<(i64, Vec<String>)>,
) -> Value {
    let cols: Vec<Value> = cols
        .iter()
        .map(|(id, t)| json!({"id": id, "title": t}))
        .collect();
    let single = rows.len() == 1 && seq.is_multiple_of(3);
    let objects = seq.is_multiple_of(4);
    let row = |(ord, cells): (i64, Vec<String>)| {
        if objects || single {
            json!({"ord": ord.to_string(), "value": cells})
        } else {
            json!(cells)
        }
    };
    let rows_json = if single {
        rows.into_iter().next().map(row).unwrap_or(Value::Null)
    } else {
        Value::Array(rows.into_iter().map(row).collect())
    };
    json!({"model": "source", "source": {"type_": "table", "title": title, "uitype": "", "table": {
        "page": {"pageindex": page.pageindex.to_string(), "pagecount": page.pagecount.to_string(),
                 "pagesize": page.pagesize.to_string(), "recordcount": page.recordcount.to_string()},
        "cols": cols, "rows": rows_json}}})
}

/// Customer delete (undocumented): `custom/list.asp?__msgid=delete` with datas `id` (or `ord`), or
/// `custom/delete.asp` with `ord`; cmdkey `delete`.
fn custom_delete(sim: &Sim, req: &Req) -> Response {
    if req.cmdkey.as_deref() != Some(v::CMD_DELETE) {
        return say(req, "参数错误");
    }
    let ord = req
        .get("id")
        .filter(|s| !s.trim().is_empty())
        .or_else(|| req.get("ord"))
        .and_then(v::parse_i64)
        .unwrap_or(0);
    let r = sim.with_store(|s| rules::delete_customer(s, ord));
    answer(sim, req, r, "删除成功")
}

// ------------------------------------------------------------------------------------------ persons

fn person_add(sim: &Sim, req: &Req) -> Response {
    if req.cmdkey.as_deref() != Some(v::CMD_SAVE) {
        let fields: Vec<Value> = v::PERSON_FORM
            .iter()
            .map(|(id, title, _)| {
                let must = if *id == "person_name" { "1" } else { "0" };
                json!({"id": id, "title": title, "type": "text", "value": "", "must": must})
            })
            .collect();
        return ok(
            req,
            json!({"model": "bill", "bill": {"title": "添加联系人", "value": "",
            "groups": [{"id": "base", "title": "基本信息", "fields": fields}]}}),
        );
    }
    let (ord, company) = (req.num("ord"), req.num("company"));
    let r = sim.with_store(|s| rules::save_person(s, ord, company, &req.datas));
    answer(sim, req, r, "保存成功")
}

fn person_list(sim: &Sim, req: &Req) -> Response {
    let get = |id: &str| req.get(id).map(str::to_string);
    let mut q = ListParams::from_request(get, &rules::PERSON_FUZZY, &[], "company");
    q.company_name = req
        .get("name")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let max = sim.catalog().max_page_size;
    let (page, rows) = sim.with_store(|s| {
        let (page, rows) = rules::list_persons(s, &q, max);
        let rows: Vec<(i64, Vec<String>)> = rows
            .into_iter()
            .map(|p| {
                let cells = rules::PERSON_COLS
                    .iter()
                    .map(|(id, _)| rules::person_cell(p, id))
                    .collect();
                (p.ord, cells)
            })
            .collect();
        (page, rows)
    });
    ok(
        req,
        table(req.seq, "联系人列表", page, &rules::PERSON_COLS, rows),
    )
}

// ------------------------------------------------------------------------------------------ order / reply

fn order(sim: &Sim, req: &Req) -> Response {
    if req.cmdkey.as_deref() != Some(v::CMD_SAVE) {
        return say(req, "参数错误");
    }
    let ord = req.num("ord");
    let (m1, m2) = (
        req.get("member1").unwrap_or(""),
        req.get("member2").unwrap_or(""),
    );
    let r = sim.with_store(|s| rules::assign(s, ord, m1, m2));
    answer(sim, req, r, "指派成功")
}

fn reply(sim: &Sim, req: &Req) -> Response {
    if req.cmdkey.as_deref() != Some(v::CMD_SAVE) {
        return say(req, "参数错误");
    }
    let ord = req.num("ord");
    let fields: Fields = req
        .datas
        .iter()
        .filter(|(k, _)| k.as_str() != "ord")
        .map(|(k, val)| (k.clone(), val.clone()))
        .collect();
    let r = sim.with_store(|s| rules::add_followup(s, ord, fields));
    answer(sim, req, r, "保存成功")
}

// ------------------------------------------------------------------------------------------ webapi

fn webapi_reply(code: u16, msg: &str) -> Response {
    json_response(StatusCode::OK, &json!({"Code": code, "Msg": msg}), true)
}

/// 客户添加 / 客户修改: `ZBAPI-Token` header; `Code` "请求成功=200；请求失败=300；token验证失败=400".
fn webapi(sim: &Sim, headers: &HeaderMap, body: &Value, op: WebapiOp) -> Response {
    let token = headers
        .get("ZBAPI-Token")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if token.is_empty() || !sim.check_session(token) {
        return webapi_reply(400, "token无效或已过期，请重新登录");
    }
    let Value::Object(o) = body else {
        return webapi_reply(300, "请求数据格式错误");
    };
    let path = match op {
        WebapiOp::Add => v::WEBAPI_CUSTOMER_ADD,
        WebapiOp::Edit => v::WEBAPI_CUSTOMER_EDIT,
    };
    let rule = sim.with_faults(|f| f.refusal(path, |k| o.get(k).map(stringify)));
    let r = match rule {
        Some(text) => Err(text),
        None => webapi_save(sim, op, o),
    };
    match (r, op) {
        (Ok(_), WebapiOp::Add) => webapi_reply(200, "添加成功"),
        (Ok(_), WebapiOp::Edit) => webapi_reply(200, "修改成功"),
        (Err(text), _) => {
            sim.stats.refusals.fetch_add(1, Ordering::Relaxed);
            webapi_reply(300, &text)
        }
    }
}

fn webapi_save(sim: &Sim, op: WebapiOp, o: &Map<String, Value>) -> Result<i64, String> {
    let opts = save_opts(sim);
    sim.with_store(|s| rules::webapi_save(s, sim.catalog(), op, o, opts))
}
