//! The ERP endpoints: request parsing, logging and fault injection shared by both modes, and the
//! lenient (spec-shaped, pre-strict) handlers. Vendor-strict handlers live in [`super::strict`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Map, Value};

use super::app::{Endpoint, LoggedRequest, LoginOutcome, Sim};
use super::faults::Injected;
use super::request::{json_response, parse_query, refusal_rule, stringify, Req};
use super::state::{ListQuery, Page, CUSTOMER_COLS, PERSON_COLS};
use super::strict;
use super::vendor as p;

type S = State<Arc<Sim>>;

macro_rules! endpoint {
    ($ep:expr, $path:expr) => {
        post(
            move |State(sim): S, RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes| {
                handle(sim, $ep, $path, q, headers, body)
            },
        )
    };
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route(p::LOGIN, endpoint!(Endpoint::Login, p::LOGIN))
        .route(p::CUSTOM_ADD, endpoint!(Endpoint::CustomAdd, p::CUSTOM_ADD))
        .route(
            p::CUSTOM_LIST,
            endpoint!(Endpoint::CustomList, p::CUSTOM_LIST),
        )
        .route(p::PERSON_ADD, endpoint!(Endpoint::PersonAdd, p::PERSON_ADD))
        .route(
            p::PERSON_LIST,
            endpoint!(Endpoint::PersonList, p::PERSON_LIST),
        )
        .route(p::ORDER, endpoint!(Endpoint::Order, p::ORDER))
        .route(p::REPLY, endpoint!(Endpoint::Reply, p::REPLY))
        .route(
            p::WEBAPI_CUSTOMER_EDIT,
            endpoint!(Endpoint::WebapiEdit, p::WEBAPI_CUSTOMER_EDIT),
        )
        .route(
            p::WEBAPI_CUSTOMER_ADD,
            endpoint!(Endpoint::WebapiAdd, p::WEBAPI_CUSTOMER_ADD),
        )
        .route(
            p::CUSTOM_DELETE,
            endpoint!(Endpoint::CustomDelete, p::CUSTOM_DELETE),
        )
        .with_state(sim)
}

/// `{"header":{"status":0|"0","message","session"},"body":…}`; the status type alternates.
fn envelope(seq: u64, status: i64, message: &str, session: &str, body: Value) -> Response {
    let st = match seq % 2 {
        0 => json!(status),
        _ => json!(status.to_string()),
    };
    let mut v = json!({"header": {"status": st, "message": message, "session": session}});
    // Login and session-timeout replies carry only the header.
    if !body.is_null() {
        v["body"] = body;
    }
    json_response(StatusCode::OK, &v, seq % 4 == 1)
}

fn ok(req: &Req, body: Value) -> Response {
    envelope(req.seq, 0, "", &req.session, body)
}

/// `body.model = message`: success alternates between carrying `result` and not; a refusal always does.
fn message(req: &Req, text: &str, success: bool, value: Option<i64>) -> Response {
    let mut m = Map::new();
    m.insert("text".into(), json!(text));
    let with_result = !matches!(req.seq % 3, 0);
    if !success || with_result {
        m.insert("result".into(), json!(u8::from(success)));
    }
    if let Some(v) = value {
        m.insert("value".into(), json!(v));
    }
    ok(req, json!({"model": "message", "message": m}))
}

fn refuse(sim: &Sim, req: &Req, text: &str) -> Response {
    sim.stats
        .refusals
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    message(req, text, false, None)
}

fn table(page: Page, cols: &[&str], rows: Vec<Vec<String>>) -> Value {
    let cols: Vec<Value> = if rows.is_empty() {
        Vec::new()
    } else {
        cols.iter().map(|c| json!({"id": c})).collect()
    };
    json!({"model": "source", "source": {"table": {
        "page": {"pageindex": page.pageindex, "pagecount": page.pagecount, "pagesize": page.pagesize, "recordcount": page.recordcount},
        "cols": cols, "rows": rows}}})
}

async fn handle(
    sim: Arc<Sim>,
    ep: Endpoint,
    path: &'static str,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seq = sim.next_seq();
    sim.count(ep);
    let full_path = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let mut req = Req {
        seq,
        path: full_path,
        query: parse_query(query.as_deref()),
        session: String::new(),
        cmdkey: None,
        datas: BTreeMap::new(),
    };
    let mut logged = Map::new();
    if let Some(Value::Object(o)) = &parsed {
        req.session = o.get("session").map(stringify).unwrap_or_default();
        req.cmdkey = o.get("cmdkey").map(stringify).filter(|c| !c.is_empty());
        if let Some(Value::Array(items)) = o.get("datas") {
            for it in items {
                let (Some(id), Some(val)) = (it.get("id").map(stringify), it.get("val")) else {
                    continue;
                };
                let shown = if ep == Endpoint::Login && id == "password" {
                    json!("<redacted>")
                } else {
                    val.clone()
                };
                logged.insert(id.clone(), shown);
                let mut s = stringify(val);
                if ep == Endpoint::Login {
                    if let Some(rest) = s.strip_prefix("txt:") {
                        s = rest.to_string();
                    }
                }
                req.datas.insert(id, s);
            }
        }
    }
    let (inj, latency) = sim.decide(&req.path);
    if sim.cfg().request_log > 0 {
        let webapi_body = matches!(ep, Endpoint::WebapiEdit | Endpoint::WebapiAdd)
            .then(|| parsed.clone().unwrap_or(Value::Null));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        sim.log_request(LoggedRequest {
            seq,
            at_ms: now.as_millis() as u64,
            at_us: now.as_micros() as u64,
            endpoint: ep.name(),
            path: req.path.clone(),
            cmdkey: req.cmdkey.clone(),
            datas: logged,
            body: webapi_body,
            fault: (inj != Injected::None).then(|| format!("{inj:?}")),
        });
    }
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if inj != Injected::None {
        sim.stats
            .faults
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return injected(&sim, ep, &req, inj).await;
    }
    let write = req.is_write() || matches!(ep, Endpoint::WebapiEdit | Endpoint::WebapiAdd);
    let resp = process(&sim, ep, &req, &headers, parsed);
    finish(&sim, &req, write, resp).await
}

/// The reply of a request-level fault (the request is not processed).
async fn injected(sim: &Sim, ep: Endpoint, req: &Req, inj: Injected) -> Response {
    let webapi = matches!(ep, Endpoint::WebapiEdit | Endpoint::WebapiAdd);
    match inj {
        Injected::None | Injected::HttpError(_) => {
            let code = match inj {
                Injected::HttpError(c) => c,
                _ => 503,
            };
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (
                status,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>Service Unavailable</h1></body></html>",
            )
                .into_response()
        }
        Injected::Hang(ms) => {
            let mut rx = sim.shutdown_rx();
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _changed = rx.changed() => {}
            }
            (StatusCode::GATEWAY_TIMEOUT, "hung").into_response()
        }
        Injected::Malformed => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"header\":{\"status\":0,\"message\":\"\",\"sess",
        )
            .into_response(),
        Injected::Status11 => {
            sim.stats
                .status11
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            json_response(
                StatusCode::OK,
                &json!({"header": {"status": "11", "message": "数据库连接超时"}}),
                true,
            )
        }
        Injected::ServerException if webapi => json_response(
            StatusCode::OK,
            &json!({"Code": 500, "Msg": "服务器异常：模拟的服务器错误"}),
            !sim.cfg().lenient,
        ),
        Injected::ServerException if sim.cfg().lenient => ok(
            req,
            json!({"model": "message", "message": {"text": "服务器异常：对象关闭时，不允许操作。(模拟)"}}),
        ),
        Injected::ServerException => strict::say(req, "服务器异常：对象关闭时，不允许操作。"),
    }
}

/// Route a processed request to the strict or the lenient handlers.
fn process(
    sim: &Sim,
    ep: Endpoint,
    req: &Req,
    headers: &HeaderMap,
    parsed: Option<Value>,
) -> Response {
    let lenient = sim.cfg().lenient;
    let Some(v) = parsed else {
        if lenient {
            return envelope(req.seq, 2, "请求数据格式错误", "", Value::Null);
        }
        return strict::envelope(req.seq, 2, "请求数据格式错误", "", None);
    };
    if !lenient {
        return strict::process(sim, ep, req, headers, &v);
    }
    match ep {
        Endpoint::Login => login(sim, req),
        Endpoint::WebapiEdit => webapi_edit(sim, headers, &v),
        // Not served before strict mode existed: answered the strict way.
        Endpoint::WebapiAdd | Endpoint::CustomDelete => strict::process(sim, ep, req, headers, &v),
        _ => {
            if !sim.check_session(&req.session) {
                return envelope(req.seq, 1, "会话已超时，请重新登录", "", Value::Null);
            }
            dispatch(sim, ep, req)
        }
    }
}

/// Reply-level faults of a processed request: a lost reply (the write is already stored), raw control
/// characters inside a JSON string, a UTF-8 BOM.
async fn finish(sim: &Sim, req: &Req, write: bool, resp: Response) -> Response {
    let after = sim.decide_after(&req.path, write);
    if after.lost {
        return lost_reply(sim, req.seq);
    }
    if !after.control_chars && !after.bom {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let count = |a: &std::sync::atomic::AtomicU64, name: &str| {
        a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sim.stats
            .faults
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sim.mark_fault(req.seq, name);
    };
    let mut out = bytes.to_vec();
    if after.control_chars {
        count(&sim.stats.control_chars, "ControlChars");
        out = with_control_chars(&out);
    }
    if after.bom {
        count(&sim.stats.bom, "Bom");
        out.splice(0..0, [0xEF, 0xBB, 0xBF]);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}

/// A marker put into a string value, replaced by raw control characters after serialisation.
const CC_MARK: &str = "\u{E000}sim-cc\u{E000}";

/// The JSON reply with a raw TAB and a raw 0x01 inside a string value (the message title, else the
/// first cell of the first row, else the header message / `Msg`), as the VBScript server emits them
/// unescaped. Non-JSON replies are returned unchanged.
pub(super) fn with_control_chars(bytes: &[u8]) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(bytes) else {
        return bytes.to_vec();
    };
    mark_a_string(&mut v);
    match serde_json::to_string(&v) {
        Ok(s) => s.replace(CC_MARK, "\t\u{1}").into_bytes(),
        Err(_) => bytes.to_vec(),
    }
}

fn mark_a_string(v: &mut Value) {
    if let Some(t) = v.pointer_mut("/body/message/title") {
        *t = json!(format!("{}{CC_MARK}", stringify(t)));
        return;
    }
    if let Some(cell) = v
        .pointer_mut("/body/source/table/rows")
        .and_then(first_cell)
    {
        *cell = json!(format!("{}{CC_MARK}", stringify(cell)));
        return;
    }
    for p in ["/header/message", "/Msg"] {
        if let Some(m) = v.pointer_mut(p) {
            *m = json!(format!("{CC_MARK}{}", stringify(m)));
            return;
        }
    }
}

/// The first cell of the first row, whatever the row shape (`[[…]]`, `[{"value":[…]}]`, `{"value":[…]}`).
fn first_cell(rows: &mut Value) -> Option<&mut Value> {
    let row = if rows.is_array() {
        rows.as_array_mut()?.first_mut()?
    } else {
        rows
    };
    let cells = if row.is_array() {
        row
    } else {
        row.get_mut("value")?
    };
    cells.as_array_mut()?.first_mut()
}

/// The write is stored but the client gets no reply: alternately an HTTP 502 from a gateway and a
/// connection dropped mid-response (a streamed body that fails, so hyper aborts the connection).
fn lost_reply(sim: &Sim, seq: u64) -> Response {
    let n = sim
        .stats
        .lost_replies
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sim.stats
        .faults
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sim.mark_fault(seq, "LostReply");
    if n.is_multiple_of(2) {
        return (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response();
    }
    let chunks: Vec<std::result::Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"{\"header\":{\"status\":\"0\",")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated lost reply",
        )),
    ];
    let mut r = Response::new(axum::body::Body::from_stream(futures::stream::iter(chunks)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn login(sim: &Sim, req: &Req) -> Response {
    let user = req.get("user").unwrap_or("");
    let pw = req.get("password").unwrap_or("");
    match sim.login(user, pw) {
        LoginOutcome::Ok(token) => envelope(req.seq, 0, "API鉴权成功.", &token, Value::Null),
        LoginOutcome::BadCredentials => envelope(req.seq, 2, "用户名或密码错误", "", Value::Null),
        LoginOutcome::Locked => envelope(
            req.seq,
            3,
            "登录失败次数过多，请输入验证码后再登录",
            "",
            Value::Null,
        ),
    }
}

fn dispatch(sim: &Sim, ep: Endpoint, req: &Req) -> Response {
    if req.is_write() {
        if let Some(text) = refusal_rule(sim, req) {
            return refuse(sim, req, &text);
        }
    }
    match ep {
        Endpoint::CustomAdd => custom_add(sim, req),
        Endpoint::CustomList => custom_list(sim, req),
        Endpoint::PersonAdd => person_add(sim, req),
        Endpoint::PersonList => person_list(sim, req),
        Endpoint::Order => order(sim, req),
        Endpoint::Reply => reply(sim, req),
        Endpoint::Login | Endpoint::WebapiEdit | Endpoint::WebapiAdd | Endpoint::CustomDelete => {
            message(req, "无效的请求", false, None)
        }
    }
}

fn customer_fields(req: &Req) -> BTreeMap<String, String> {
    req.datas
        .iter()
        .filter(|(k, _)| k.as_str() != "ord" && k.as_str() != "intsort")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn custom_add(sim: &Sim, req: &Req) -> Response {
    if req.query.get("edit").map(String::as_str) == Some("1") {
        let ord = req.num("ord");
        let detail = sim.with_store(|s| s.customers.get(&ord).map(|c| c.detail_fields()));
        return match detail {
            Some(fields) => ok(
                req,
                json!({"model": "bill", "bill": {"value": ord, "title": "客户详情",
                "groups": [{"id": "base", "title": "基本信息", "fields": fields}]}}),
            ),
            None => ok(
                req,
                json!({"model": "message", "message": {"text": "该客户不存在或已被删除"}}),
            ),
        };
    }
    match req.cmdkey.as_deref() {
        None => {
            let ord = sim.with_store(|s| s.allocate());
            ok(
                req,
                json!({"model": "bill", "bill": {"value": ord, "title": "添加客户", "groups": []}}),
            )
        }
        Some(p::CMD_SAVE) => {
            let intsort = req
                .query
                .get("intsort")
                .and_then(|v| v.parse::<u8>().ok())
                .or_else(|| req.get("intsort").and_then(|v| v.trim().parse().ok()));
            let Some(intsort @ (1 | 2)) = intsort else {
                return refuse(sim, req, "客户类型无效（intsort 应为 1 或 2）");
            };
            let ord = req.num("ord");
            let fields = customer_fields(req);
            let (dup, not_persisted) =
                sim.with_faults(|f| (f.duplicate_mobile_rule, f.not_persisted(|| sim.roll())));
            if not_persisted {
                sim.stats
                    .not_persisted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            match sim.with_store(|s| s.save_customer(intsort, ord, &fields, dup, !not_persisted)) {
                Ok(_) => message(req, "保存成功", true, Some(ord)),
                Err(text) => refuse(sim, req, &text),
            }
        }
        Some("delete") => {
            let ord = req.num("ord");
            if sim.with_store(|s| s.delete_customer(ord)) {
                message(req, "删除成功", true, None)
            } else {
                ok(
                    req,
                    json!({"model": "message", "message": {"text": "该客户不存在或已被删除"}}),
                )
            }
        }
        Some(other) => message(req, &format!("无效的cmdkey：{other}"), false, None),
    }
}

fn custom_list(sim: &Sim, req: &Req) -> Response {
    if req.cmdkey.as_deref() != Some(p::CMD_REFRESH) {
        // No cmdkey: the page skeleton.
        return ok(
            req,
            json!({"model": "source", "source": {"title": "客户列表", "table": {
            "page": {"pageindex": 1, "pagecount": 0, "pagesize": 20, "recordcount": 0}, "cols": [], "rows": []}}}),
        );
    }
    let opt = |id: &str| req.get(id).map(str::to_string);
    let q = ListQuery {
        khid: opt("khid"),
        ly: opt("ly"),
        mobile: opt("mobile"),
        name: opt("name"),
        pagesize: req.num("pagesize").max(0) as u64,
        pageindex: req.num("pageindex").max(0) as u64,
        sort: opt("_rpt_sort"),
    };
    let (page, rows) = sim.with_store(|s| {
        let (page, rows) = s.list(&q);
        (
            page,
            rows.into_iter()
                .map(|c| {
                    CUSTOMER_COLS
                        .iter()
                        .map(|id| c.get(id))
                        .collect::<Vec<String>>()
                })
                .collect::<Vec<_>>(),
        )
    });
    ok(req, table(page, &CUSTOMER_COLS, rows))
}

fn person_add(sim: &Sim, req: &Req) -> Response {
    if req.cmdkey.as_deref() != Some(p::CMD_SAVE) {
        return ok(
            req,
            json!({"model": "bill", "bill": {"value": 0, "title": "添加联系人", "groups": []}}),
        );
    }
    let company = req.num("company");
    let fields: BTreeMap<String, String> = req
        .datas
        .iter()
        .filter(|(k, _)| k.as_str() != "company" && k.as_str() != "ord")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match sim.with_store(|s| s.add_person(company, fields)) {
        Ok(ord) => message(req, "保存成功", true, Some(ord)),
        Err(text) => refuse(sim, req, &text),
    }
}

fn person_list(sim: &Sim, req: &Req) -> Response {
    let company = req
        .get("company")
        .and_then(|v| v.trim().parse::<i64>().ok());
    let (page, rows) = sim.with_store(|s| {
        let (page, rows) = s.list_persons(
            company,
            req.num("pagesize").max(0) as u64,
            req.num("pageindex").max(0) as u64,
        );
        (
            page,
            rows.into_iter()
                .map(|r| {
                    PERSON_COLS
                        .iter()
                        .map(|id| r.get(id))
                        .collect::<Vec<String>>()
                })
                .collect::<Vec<_>>(),
        )
    });
    ok(req, table(page, &PERSON_COLS, rows))
}

fn order(sim: &Sim, req: &Req) -> Response {
    if req.cmdkey.as_deref() != Some(p::CMD_SAVE) {
        return message(req, "无效的cmdkey", false, None);
    }
    let ord = req.num("ord");
    let (m1, m2) = (
        req.get("member1").unwrap_or("").to_string(),
        req.get("member2").unwrap_or("").to_string(),
    );
    match sim.with_store(|s| s.assign(ord, &m1, &m2)) {
        Ok(()) => message(req, "指派成功", true, None),
        Err(text) => refuse(sim, req, &text),
    }
}

fn reply(sim: &Sim, req: &Req) -> Response {
    if req.cmdkey.as_deref() != Some(p::CMD_SAVE) {
        return message(req, "无效的cmdkey", false, None);
    }
    let ord = req.num("ord");
    let fields: BTreeMap<String, String> = req
        .datas
        .iter()
        .filter(|(k, _)| k.as_str() != "ord")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    match sim.with_store(|s| s.add_followup(ord, fields)) {
        Ok(()) => message(req, "保存成功", true, None),
        Err(text) => refuse(sim, req, &text),
    }
}

fn webapi(code: u16, msg: &str) -> Response {
    json_response(StatusCode::OK, &json!({"Code": code, "Msg": msg}), false)
}

fn webapi_edit(sim: &Sim, headers: &HeaderMap, body: &Value) -> Response {
    let token = headers
        .get("ZBAPI-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if token.is_empty() || !sim.check_session(token) {
        return webapi(400, "token无效或已过期，请重新登录");
    }
    let Value::Object(o) = body else {
        return webapi(300, "请求数据格式错误");
    };
    for k in ["ord", "name", "sort", "sort1", "sort2", "person_name"] {
        if o.get(k).is_none_or(|v| v.is_null()) {
            return webapi(300, &format!("参数{k}不能为空"));
        }
    }
    let ord = o.get("ord").and_then(p::loose_i64).unwrap_or(0);
    let fields: BTreeMap<String, String> = o
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "ord" | "sort" | "sort1" | "sort2" | "intsort"))
        .map(|(k, v)| (k.clone(), stringify(v)))
        .collect();
    let rule = sim.with_faults(|f| f.refusal(p::WEBAPI_CUSTOMER_EDIT, |k| fields.get(k).cloned()));
    if let Some(text) = rule {
        sim.stats
            .refusals
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return webapi(300, &text);
    }
    let (dup, not_persisted) =
        sim.with_faults(|f| (f.duplicate_mobile_rule, f.not_persisted(|| sim.roll())));
    let res = sim.with_store(|s| match s.customers.get(&ord).map(|c| c.intsort) {
        Some(intsort) => s.save_customer(intsort, ord, &fields, dup, !not_persisted),
        None => Err("客户不存在或已被删除".into()),
    });
    match res {
        Ok(_) => webapi(200, "修改成功"),
        Err(text) => {
            sim.stats
                .refusals
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            webapi(300, &text)
        }
    }
}
