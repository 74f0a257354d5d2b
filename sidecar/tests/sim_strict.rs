//! The vendor-strict simulator over real HTTP, with raw JSON (never through `sidecar::erp`).

use serde_json::{json, Value};
use sidecar::sim::{self, SimConfig, SimHandle};

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type E = Box<dyn std::error::Error + Send + Sync>;

const ADD: &str = "/sysa/mobilephone/salesmanage/custom/add.asp";
const LIST: &str = "/sysa/mobilephone/salesmanage/custom/list.asp";
const PERSON_ADD: &str = "/sysa/mobilephone/salesmanage/person/add.asp";
const PERSON_LIST: &str = "/sysa/mobilephone/salesmanage/person/list.asp";
const REPLY: &str = "/sysa/mobilephone/systemmanage/reply.asp?datatype=tel";
const ORDER: &str = "/sysa/mobilephone/systemmanage/order.asp?datatype=tel";
const WEBAPI_EDIT: &str = "/webapi/v3/sales/customer/edit";

async fn start(cfg: SimConfig) -> Result<SimHandle, E> {
    Ok(sim::spawn(SimConfig {
        port: 0,
        seed: Some(1),
        ..cfg
    })
    .await?)
}

struct Client {
    base: String,
    http: reqwest::Client,
    session: String,
}

fn datas(items: &[(&str, Value)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(id, val)| json!({"id": id, "val": val}))
            .collect(),
    )
}

/// Strip a BOM and parse (strict JSON).
fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    serde_json::from_slice(b)
}

fn status(v: &Value) -> String {
    match &v["header"]["status"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text(v: &Value) -> &str {
    v["body"]["message"]["text"].as_str().unwrap_or("<none>")
}

fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|x| has_key(x, key)),
        Value::Array(a) => a.iter().any(|x| has_key(x, key)),
        _ => false,
    }
}

async fn post_raw(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let r = http.post(url).json(body).send().await?;
    let st = r.status().as_u16();
    Ok((st, r.bytes().await?.to_vec()))
}

async fn login(h: &SimHandle) -> Result<Client, E> {
    let http = reqwest::Client::new();
    let body = json!({"datas": datas(&[("user", json!("txt:demo")), ("password", json!("txt:demo")), ("serialnum", json!("txt:abc123"))])});
    let (_, bytes) = post_raw(
        &http,
        &format!("{}/webapi/v3/ov1/login", h.base_url()),
        &body,
    )
    .await?;
    let v = parse(&bytes)?;
    assert_eq!(status(&v), "0");
    assert_eq!(v["header"]["message"], "API鉴权成功.");
    let session = v["header"]["session"].as_str().unwrap_or("").to_string();
    assert!(!session.is_empty());
    Ok(Client {
        base: h.base_url(),
        http,
        session,
    })
}

impl Client {
    fn body(&self, cmdkey: Option<&str>, items: &[(&str, Value)]) -> Value {
        let mut b = json!({"session": self.session, "datas": datas(items)});
        if let Some(c) = cmdkey {
            b["cmdkey"] = json!(c);
        }
        b
    }

    async fn raw(
        &self,
        path: &str,
        cmdkey: Option<&str>,
        items: &[(&str, Value)],
    ) -> Result<(u16, Vec<u8>), reqwest::Error> {
        post_raw(
            &self.http,
            &format!("{}{path}", self.base),
            &self.body(cmdkey, items),
        )
        .await
    }

    async fn call(
        &self,
        path: &str,
        cmdkey: Option<&str>,
        items: &[(&str, Value)],
    ) -> Result<Value, E> {
        let (_, bytes) = self.raw(path, cmdkey, items).await?;
        Ok(parse(&bytes)?)
    }

    async fn save(&self, path: &str, items: &[(&str, Value)]) -> Result<Value, E> {
        self.call(path, Some("__sys_dosave"), items).await
    }

    async fn allocate(&self) -> Result<(String, Value), E> {
        let v = self.call(ADD, None, &[("intsort", json!("1"))]).await?;
        let ord = v["body"]["bill"]["value"]
            .as_str()
            .unwrap_or("")
            .to_string();
        Ok((ord, v))
    }

    async fn list(&self, path: &str, items: &[(&str, Value)]) -> Result<Value, E> {
        let v = self.call(path, Some("refresh"), items).await?;
        Ok(v["body"]["source"]["table"].clone())
    }

    async fn webapi(&self, path: &str, body: Value) -> Result<Value, E> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("ZBAPI-Token", &self.session)
            .json(&body)
            .send()
            .await?;
        Ok(parse(&r.bytes().await?)?)
    }
}

async fn admin(h: &SimHandle, path: &str, body: Option<Value>) -> Result<Value, E> {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", h.base_url());
    let r = match body {
        Some(b) => http.post(url).json(&b).send().await?,
        None => http.get(url).send().await?,
    };
    let r = r.error_for_status()?;
    if r.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    Ok(r.json().await?)
}

async fn seed(h: &SimHandle, khids: &[&str]) -> Result<Vec<i64>, E> {
    let list: Vec<Value> = khids
        .iter()
        .map(|k| json!({"intsort": 1, "fields": {"name": format!("客户{k}"), "khid": k, "sort1": "11", "person_name": "张三"}}))
        .collect();
    let v = admin(h, "/_sim/customers", Some(json!(list))).await?;
    Ok(v["ords"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default())
}

/// Rows of a table whatever their shape: `[[…]]`, `[{"ord","value":[…]}]`, or one `{"ord","value"}`.
fn rows(table: &Value) -> Vec<Vec<Value>> {
    let one = |r: &Value| -> Vec<Value> {
        match r {
            Value::Array(a) => a.clone(),
            other => other["value"].as_array().cloned().unwrap_or_default(),
        }
    };
    match &table["rows"] {
        Value::Array(a) => a.iter().map(one).collect(),
        Value::Object(_) => vec![one(&table["rows"])],
        _ => Vec::new(),
    }
}

fn col(table: &Value, id: &str) -> Option<usize> {
    table["cols"].as_array()?.iter().position(|c| c["id"] == id)
}

fn customer_items<'a>(ord: &str, extra: &[(&'a str, Value)]) -> Vec<(&'a str, Value)> {
    let mut v = vec![
        ("ord", json!(ord)),
        ("name", json!("微信客户甲")),
        ("sort1", json!("11")),
        ("person_name", json!("张三")),
        ("mobile", json!("13800000001")),
    ];
    for (k, val) in extra {
        v.retain(|(id, _)| id != k);
        v.push((k, val.clone()));
    }
    v
}

#[tokio::test]
async fn allocation_save_and_detail() -> R {
    let h = start(SimConfig::default()).await?;
    let c = login(&h).await?;
    let (ord, alloc) = c.allocate().await?;
    assert!(
        ord.parse::<i64>().is_ok(),
        "ord is a numeric string: {alloc}"
    );
    let fields: Vec<Value> = alloc["body"]["bill"]["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .flat_map(|g| g["fields"].as_array().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let khid = fields
        .iter()
        .find(|f| f["id"] == "khid")
        .map(|f| f["value"].clone());
    let khid = khid
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    assert!(
        khid.starts_with("KH") && khid.len() == 14,
        "pre-filled khid {khid}"
    );
    let sort1 = fields
        .iter()
        .find(|f| f["id"] == "sort1")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(sort1["must"], "1");
    assert_eq!(
        sort1["source"]["options"][0],
        json!({"value": "11", "text": "微信客户"})
    );

    for (missing, refusal) in [
        ("sort1", "请选择客户分类"),
        ("person_name", "请填写联系人姓名"),
        ("name", "请填写客户名称"),
    ] {
        let mut items = customer_items(&ord, &[]);
        items.retain(|(id, _)| *id != missing);
        let v = c.save(&format!("{ADD}?intsort=1"), &items).await?;
        assert_eq!(text(&v), refusal);
        assert!(!has_key(&v["body"], "result"), "no result flag: {v}");
        assert_eq!(v["body"]["message"]["title"], "");
    }
    let v = c
        .save(
            &format!("{ADD}?intsort=2"),
            &customer_items(&ord, &[("sort1", json!("99"))]),
        )
        .await?;
    assert_eq!(text(&v), "客户分类无效");
    let v = c
        .save(
            &format!("{ADD}?intsort=2"),
            &customer_items(&ord, &[("hk_xz", json!(1234)), ("unknown_x", json!("y"))]),
        )
        .await?;
    assert_eq!(text(&v), "保存成功");
    assert!(!has_key(&v["body"], "result"));
    assert_eq!(v["body"]["message"]["wait"], "0");

    let stored = admin(&h, "/_sim/customers", None).await?;
    assert_eq!(stored[0]["fields"]["khid"], khid.as_str());
    assert_eq!(stored[0]["intsort"], 2);
    assert!(stored[0]["fields"].get("unknown_x").is_none());
    let persons = admin(&h, "/_sim/persons", None).await?;
    assert_eq!(persons[0]["company"].to_string(), ord);
    assert_eq!(persons[0]["fields"]["person_name"], "张三");

    // A second customer with the same khid is refused; update keeps working.
    let (ord2, _) = c.allocate().await?;
    let v = c
        .save(
            &format!("{ADD}?intsort=1"),
            &customer_items(&ord2, &[("khid", json!(khid)), ("mobile", json!("139"))]),
        )
        .await?;
    assert_eq!(text(&v), format!("客户编号[{khid}]已存在，不能重复添加"));
    let v = c
        .save(&format!("{ADD}?intsort=1"), &customer_items(&ord2, &[]))
        .await?;
    assert_eq!(text(&v), "该手机号码已存在，不能重复添加客户");

    let d = c
        .call(&format!("{ADD}?edit=1"), None, &[("ord", json!(ord))])
        .await?;
    assert_eq!(d["body"]["bill"]["value"], ord.as_str());
    let all: Vec<Value> = d["body"]["bill"]["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .flat_map(|g| g["fields"].as_array().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(all.iter().all(|f| f["value"].is_string()), "{d}");
    let val = |id: &str| {
        all.iter()
            .find(|f| f["id"] == id)
            .map(|f| f["value"].clone())
    };
    assert_eq!(val("name"), Some(json!("微信客户甲")));
    assert_eq!(val("hk_xz"), Some(json!("1,234.00")));
    assert_eq!(val("ord"), Some(json!(ord)));
    assert!(val("date1")
        .and_then(|d| d.as_str().map(|s| s.len() == 19))
        .unwrap_or(false));
    let d = c
        .call(&format!("{ADD}?edit=1"), None, &[("ord", json!(99_999))])
        .await?;
    assert_eq!(text(&d), "该客户不存在或已被删除");
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn lists_fuzzy_paging_and_cells() -> R {
    let h = start(SimConfig::default()).await?;
    let c = login(&h).await?;
    seed(&h, &["WX1", "WX12", "WX120"]).await?;
    let t = c.list(LIST, &[("khid", json!("WX12"))]).await?;
    assert_eq!(t["page"]["recordcount"], "2");
    assert_eq!(rows(&t).len(), 2);
    let t = c.list(LIST, &[("khid", json!("WX1"))]).await?;
    assert_eq!(t["page"]["recordcount"], "3");

    let many: Vec<String> = (0..150).map(|i| format!("K{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    seed(&h, &refs).await?;
    let t = c.list(LIST, &[("pagesize", json!(500))]).await?;
    assert_eq!(t["page"]["pagesize"], "100");
    assert_eq!(t["page"]["recordcount"], "153");
    assert_eq!(t["page"]["pagecount"], "2");
    assert_eq!(rows(&t).len(), 100);
    let t = c.list(LIST, &[("pagesize", json!(0))]).await?;
    assert_eq!(
        (t["page"]["pagesize"].clone(), rows(&t).len()),
        (json!("20"), 20)
    );
    assert_ne!(t["cols"][0]["id"], "ord");
    let ord_col = col(&t, "ord").unwrap_or(0);
    assert!(ord_col > 0);
    for r in rows(&t) {
        assert!(r.iter().all(Value::is_string), "string cells: {r:?}");
    }
    // newest first
    let first: i64 = rows(&t)[0][ord_col]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(first > 10_100);
    let t = c
        .list(
            LIST,
            &[("_rpt_sort", json!("khid")), ("pagesize", json!(3))],
        )
        .await?;
    let kc = col(&t, "khid").unwrap_or(0);
    let ks: Vec<Value> = rows(&t).into_iter().map(|r| r[kc].clone()).collect();
    assert_eq!(ks, [json!("K0"), json!("K1"), json!("K10")]);

    // Every row shape shows up over a few requests of a one-row page.
    let mut shapes = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let t = c.list(LIST, &[("khid", json!("WX120"))]).await?;
        shapes.insert(match &t["rows"] {
            Value::Object(_) => "single",
            Value::Array(a) if a.first().is_some_and(Value::is_object) => "objects",
            _ => "arrays",
        });
        assert_eq!(rows(&t).len(), 1);
    }
    assert_eq!(shapes.len(), 3, "{shapes:?}");
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn persons_followups_assign_webapi_delete() -> R {
    let h = start(SimConfig::default()).await?;
    let c = login(&h).await?;
    let ords = seed(&h, &["P1"]).await?;
    let ord = ords.first().copied().unwrap_or(0);

    let v = c
        .save(
            PERSON_ADD,
            &[("company", json!(99_999)), ("person_name", json!("李四"))],
        )
        .await?;
    assert_eq!(text(&v), "关联客户不存在");
    let v = c
        .save(
            PERSON_ADD,
            &[("company", json!(ord)), ("mobile", json!("13911112222"))],
        )
        .await?;
    assert_eq!(text(&v), "请填写联系人姓名");
    let v = c
        .save(
            PERSON_ADD,
            &[
                ("company", json!(ord.to_string())),
                ("person_name", json!("李四")),
                ("mobile", json!("13911112222")),
            ],
        )
        .await?;
    assert_eq!(text(&v), "保存成功");
    assert!(!has_key(&v["body"], "result"));
    let t = c
        .list(
            PERSON_LIST,
            &[("company", json!(ord)), ("person_name", json!("李"))],
        )
        .await?;
    assert_eq!(t["page"]["recordcount"], "1");
    assert_ne!(t["cols"][0]["id"], "ord");
    let r = rows(&t);
    assert_eq!(r[0][col(&t, "mobile").unwrap_or(0)], "13911112222");
    assert_eq!(
        r[0][col(&t, "company").unwrap_or(0)],
        ord.to_string().as_str()
    );

    let base = [
        ("ord", json!(ord)),
        ("intro", json!("谈得很好")),
        ("sort", json!(481)),
    ];
    let with = |extra: &[(&'static str, Value)]| {
        let mut v: Vec<(&str, Value)> = base.to_vec();
        v.extend(extra.iter().cloned());
        v
    };
    assert_eq!(text(&c.save(REPLY, &with(&[])).await?), "请选择日程类型");
    assert_eq!(
        text(&c.save(REPLY, &with(&[("plantype", json!(0))])).await?),
        "保存成功"
    );
    assert_eq!(
        text(&c.save(REPLY, &with(&[("plantype", json!(1))])).await?),
        "请填写开始时间"
    );
    let plan1 = [
        ("plantype", json!("1")),
        ("@ret_0", json!("2026-12-01 10:20:30")),
        ("@ret_1", json!("2026-12-01 11:20:30")),
        ("@title1", json!("回访")),
        ("@remind", json!(1)),
    ];
    assert_eq!(
        text(&c.save(REPLY, &with(&plan1[..4])).await?),
        "请选择是否提醒"
    );
    assert_eq!(text(&c.save(REPLY, &with(&plan1)).await?), "保存成功");
    let plan2 = [
        ("plantype", json!(2)),
        ("@ret2_0", json!("2026-12-01 10:20:30")),
        ("@ret2_1", json!("2026-12-01 11:20:30")),
        ("@title2", json!("上门拜访")),
        ("@intro2", json!("已完成")),
        ("@remind", json!(0)),
    ];
    assert_eq!(
        text(&c.save(REPLY, &with(&plan2[..3])).await?),
        "请填写日程内容"
    );
    assert_eq!(
        text(&c.save(REPLY, &with(&plan2[..4])).await?),
        "请填写完成情况"
    );
    assert_eq!(text(&c.save(REPLY, &with(&plan2)).await?), "保存成功");
    let mut bad_sort = with(&plan2);
    bad_sort[2] = ("sort", json!(9));
    assert_eq!(text(&c.save(REPLY, &bad_sort).await?), "跟进方式无效");
    let f = admin(&h, "/_sim/followups", None).await?;
    assert_eq!(f.as_array().map(Vec::len), Some(3));
    assert_eq!(f[2]["fields"]["@intro2"], "已完成");
    assert_eq!(f[1]["fields"]["@remind"], "1");

    let v = c
        .save(ORDER, &[("ord", json!(ord)), ("member1", json!(0))])
        .await?;
    assert_eq!(text(&v), "请选择指派用户");
    let v = c
        .save(
            ORDER,
            &[
                ("ord", json!(ord)),
                ("member1", json!(0)),
                ("member2", json!("63")),
            ],
        )
        .await?;
    assert_eq!(text(&v), "指派成功");

    let body = |sort2: i64| json!({"ord": ord, "sort2": sort2, "name": "改名", "sort": "12", "sort1": "2", "person_name": "王五"});
    let v = c.webapi(WEBAPI_EDIT, body(2)).await?;
    assert_eq!(
        (v["Code"].clone(), v["Msg"].clone()),
        (json!(300), json!("客户属性与原客户不一致"))
    );
    let v = c.webapi(WEBAPI_EDIT, body(1)).await?;
    assert_eq!(
        (v["Code"].clone(), v["Msg"].clone()),
        (json!(200), json!("修改成功"))
    );
    let mut no_name = body(1);
    no_name["name"] = Value::Null;
    assert_eq!(c.webapi(WEBAPI_EDIT, no_name).await?["Code"], 300);
    let v = c
        .webapi(
            "/webapi/v3/sales/customer/add",
            json!({"sort2": 2, "name": "新", "sort": "13", "sort1": "1", "person_name": "赵"}),
        )
        .await?;
    assert_eq!(v["Code"], 200);
    let bad = reqwest::Client::new()
        .post(format!("{}{WEBAPI_EDIT}", h.base_url()))
        .header("ZBAPI-Token", "nope")
        .json(&body(1))
        .send()
        .await?
        .bytes()
        .await?;
    assert_eq!(parse(&bad)?["Code"], 400);

    let del = format!("{LIST}?__msgid=delete");
    let v = c
        .call(&del, Some("delete"), &[("id", json!(ord.to_string()))])
        .await?;
    assert_eq!(text(&v), "删除成功");
    let v = c
        .call(&del, Some("delete"), &[("id", json!(ord.to_string()))])
        .await?;
    assert_eq!(text(&v), "该客户不存在或已被删除");
    let added = seed(&h, &["P2"]).await?;
    let v = c
        .call(
            "/sysa/mobilephone/salesmanage/custom/delete.asp",
            Some("delete"),
            &[("ord", json!(added[0]))],
        )
        .await?;
    assert_eq!(text(&v), "删除成功");
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn reply_faults() -> R {
    let h = start(SimConfig::default()).await?;
    let c = login(&h).await?;
    admin(&h, "/_sim/faults", Some(json!({"lost_reply_next": 2}))).await?;
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let (ord, _) = c.allocate().await?;
        let items = customer_items(&ord, &[("mobile", json!(format!("1380000{ord}")))]);
        outcomes.push(
            match c
                .raw(&format!("{ADD}?intsort=1"), Some("__sys_dosave"), &items)
                .await
            {
                Ok((502, body)) => {
                    assert!(String::from_utf8_lossy(&body).contains("502"));
                    "502"
                }
                Ok((st, body)) => panic!(
                    "expected a lost reply, got {st} {}",
                    String::from_utf8_lossy(&body)
                ),
                Err(_) => "dropped",
            },
        );
    }
    outcomes.sort_unstable();
    assert_eq!(outcomes, ["502", "dropped"]);
    let stored = admin(&h, "/_sim/customers", None).await?;
    assert_eq!(
        stored.as_array().map(Vec::len),
        Some(2),
        "both writes stored"
    );
    let stats = admin(&h, "/_sim/stats", None).await?;
    assert_eq!(stats["lost_replies"], 2);
    // reads are not writes: no lost reply
    admin(&h, "/_sim/faults", Some(json!({"lost_reply_next": 1}))).await?;
    assert!(c.list(LIST, &[]).await?.is_object());

    admin(
        &h,
        "/_sim/faults",
        Some(json!({"lost_reply_next": 0, "status11_next": 1})),
    )
    .await?;
    let v = c.call(LIST, Some("refresh"), &[]).await?;
    assert_eq!(
        v,
        json!({"header": {"status": "11", "message": "数据库连接超时"}})
    );

    admin(&h, "/_sim/faults", Some(json!({"bom_next": 1}))).await?;
    let (_, bytes) = c.raw(LIST, Some("refresh"), &[]).await?;
    assert_eq!(&bytes[..3], &[0xEF, 0xBB, 0xBF]);
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    assert!(parse(&bytes).is_ok());

    admin(&h, "/_sim/faults", Some(json!({"control_chars_next": 2}))).await?;
    let (_, bytes) = c.raw(LIST, Some("refresh"), &[]).await?;
    assert!(
        bytes.contains(&0x09) && bytes.contains(&0x01),
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    let (_, bytes) = c
        .raw(ADD, Some("__sys_dosave"), &[("ord", json!(1))])
        .await?;
    assert!(bytes.contains(&0x09) && bytes.contains(&0x01));
    let stats = admin(&h, "/_sim/stats", None).await?;
    assert_eq!(
        (
            stats["status11"].clone(),
            stats["bom"].clone(),
            stats["control_chars"].clone()
        ),
        (json!(1), json!(1), json!(2))
    );
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn single_session_logs_out_the_first() -> R {
    let h = start(SimConfig {
        single_session: true,
        ..SimConfig::default()
    })
    .await?;
    let a = login(&h).await?;
    assert_eq!(status(&a.call(LIST, Some("refresh"), &[]).await?), "0");
    let b = login(&h).await?;
    let v = a.call(LIST, Some("refresh"), &[]).await?;
    assert_eq!(status(&v), "1");
    assert_eq!(v["header"]["message"], "会话已超时，请重新登录");
    assert!(v.get("body").is_none());
    assert_eq!(status(&b.call(LIST, Some("refresh"), &[]).await?), "0");
    assert_eq!(
        admin(&h, "/_sim/stats", None).await?["sessions_replaced"],
        1
    );
    h.shutdown().await?;

    // Without the flag both sessions live on.
    let h = start(SimConfig::default()).await?;
    let a = login(&h).await?;
    let _b = login(&h).await?;
    assert_eq!(status(&a.call(LIST, Some("refresh"), &[]).await?), "0");
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn lenient_keeps_result_and_exact_khid() -> R {
    let h = start(SimConfig {
        lenient: true,
        ..SimConfig::default()
    })
    .await?;
    let c = login(&h).await?;
    seed(&h, &["WX1", "WX12", "WX120"]).await?;
    let t = c.list(LIST, &[("khid", json!("WX12"))]).await?;
    assert_eq!(t["page"]["recordcount"], 1);
    assert_eq!(t["cols"][0]["id"], "ord");
    let (alloc_ord, alloc) = c.allocate().await?;
    assert!(alloc_ord.is_empty(), "lenient ord is a number: {alloc}");
    let ord = alloc["body"]["bill"]["value"].as_i64().unwrap_or(0);
    let v = c
        .save(&format!("{ADD}?intsort=2"), &[("ord", json!(ord))])
        .await?;
    assert_eq!(v["body"]["message"]["result"], 0);
    let v = c
        .save(
            &format!("{ADD}?intsort=2"),
            &[("ord", json!(ord)), ("name", json!("个人"))],
        )
        .await?;
    assert!(text(&v).contains("保存成功"));
    h.shutdown().await?;
    Ok(())
}
