//! The ERP client (`sidecar::erp`) against the simulator (`sidecar::sim`) over real loopback HTTP.
//!
//! Every test runs against the simulator's default **vendor-strict** mode (MessageClass replies
//! without `result`, string cells, fuzzy list filters, required `sort1`/`person_name`, …); only
//! `lenient_spec_shapes_still_parse` uses the older spec-shaped simulator. The tests named after a
//! vendor rule are referenced from `docs/zhibang-protocol.md`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{json, Value};
use sidecar::erp::session::{Secret, SessionStore, StoredSession};
use sidecar::erp::{
    Assignment, CustomerFields, CustomerKind, ErpClient, ErpConfig, Followup, FollowupConfig,
    ListFilter, Person, UpdateMode,
};
use sidecar::sim::{self, SimConfig, SimHandle};
use sidecar::{Error, RetryClass};

type E = Box<dyn std::error::Error + Send + Sync>;
type R = Result<(), E>;

// ------------------------------------------------------------------------------------------ helpers

/// A vendor-strict simulator (the default) on a free port.
async fn start() -> Result<SimHandle, Error> {
    start_with(SimConfig::default()).await
}

async fn start_with(cfg: SimConfig) -> Result<SimHandle, Error> {
    sim::spawn(SimConfig {
        port: 0,
        seed: cfg.seed.or(Some(7)),
        ..cfg
    })
    .await
}

fn cfg_for(h: &SimHandle) -> ErpConfig {
    ErpConfig {
        base_url: h.base_url(),
        username: "demo".into(),
        password: "demo".into(),
        timeout_ms: 5_000,
        relogin_backoff_ms: 200,
        customer_category: "11".into(),
        ..ErpConfig::default()
    }
}

fn client(h: &SimHandle) -> Result<ErpClient, Error> {
    ErpClient::new(cfg_for(h))
}

fn class<T>(r: &Result<T, Error>) -> Option<RetryClass> {
    r.as_ref().err().map(Error::retry_class)
}

async fn read_json(r: reqwest::Response) -> Result<Value, E> {
    let r = r.error_for_status()?;
    if r.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    Ok(r.json().await?)
}

async fn admin_post(h: &SimHandle, path: &str, body: Value) -> Result<Value, E> {
    let r = reqwest::Client::new()
        .post(format!("{}{}", h.base_url(), path))
        .json(&body)
        .send()
        .await?;
    read_json(r).await
}

async fn admin_get(h: &SimHandle, path: &str) -> Result<Value, E> {
    let r = reqwest::Client::new()
        .get(format!("{}{}", h.base_url(), path))
        .send()
        .await?;
    read_json(r).await
}

async fn faults(h: &SimHandle, patch: Value) -> Result<Value, E> {
    admin_post(h, "/_sim/faults", patch).await
}

async fn stat(h: &SimHandle, key: &str) -> Result<u64, E> {
    let v = admin_get(h, "/_sim/stats").await?;
    Ok(v[key]
        .as_u64()
        .ok_or_else(|| format!("no stat {key} in {v}"))?)
}

/// The simulator's request log, only requests whose path contains `path`.
async fn requests(h: &SimHandle, path: &str) -> Result<Vec<Value>, E> {
    let r = reqwest::Client::new()
        .get(format!("{}/_sim/requests", h.base_url()))
        .query(&[("path", path)])
        .send()
        .await?;
    match read_json(r).await? {
        Value::Array(a) => Ok(a),
        other => Err(format!("request log is not an array: {other}").into()),
    }
}

async fn clear_requests(h: &SimHandle) -> R {
    reqwest::Client::new()
        .delete(format!("{}/_sim/requests", h.base_url()))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// What the simulated ERP stores (`/_sim/<what>`), as an array.
async fn stored(h: &SimHandle, what: &str) -> Result<Vec<Value>, E> {
    match admin_get(h, &format!("/_sim/{what}")).await? {
        Value::Array(a) => Ok(a),
        other => Err(format!("/_sim/{what} is not an array: {other}").into()),
    }
}

async fn stored_customer(h: &SimHandle, ord: i64) -> Result<Value, E> {
    stored(h, "customers")
        .await?
        .into_iter()
        .find(|c| c["ord"] == ord)
        .ok_or_else(|| format!("customer {ord} not stored").into())
}

/// A stored field of a `/_sim/customers` (or persons/followups) record.
fn field<'a>(rec: &'a Value, id: &str) -> &'a str {
    rec["fields"][id].as_str().unwrap_or("")
}

/// Seed customers as if typed into the ERP by hand; their ords in order.
async fn seed(h: &SimHandle, list: Vec<Value>) -> Result<Vec<i64>, E> {
    let n = list.len();
    let v = admin_post(h, "/_sim/customers", Value::Array(list)).await?;
    let ords: Vec<i64> = v["ords"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if ords.len() != n {
        return Err(format!("seeded {n}, got {v}").into());
    }
    Ok(ords)
}

fn seed_row(khid: &str, mobile: &str) -> Value {
    json!({"intsort": 1, "fields": {"name": format!("客户{khid}"), "khid": khid, "sort1": "11",
        "person_name": "张三", "mobile": mobile}})
}

/// Wait (bounded: 500 polls, 5 s) until at least `n` requests to `path` are logged, then apply
/// the fault `patch`: aims a fault at the (n+1)-th request of a running multi-page lookup.
async fn aim(h: &SimHandle, path: &str, n: usize, patch: Value) -> R {
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..500 {
        if requests(h, path).await?.len() >= n {
            faults(h, patch).await?;
            return Ok(());
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(format!("{n} requests to {path} never arrived").into())
}

fn company(khid: &str, mobile: &str) -> CustomerFields {
    CustomerFields {
        name: format!("公司{khid}"),
        khid: Some(khid.into()),
        ly: Some("171".into()),
        mobile: Some(mobile.into()),
        weixin_acc: Some(format!("wx_{khid}")),
        address: Some("上海".into()),
        jz: Some("175".into()),
        intro: Some("来自微信中台，评分: 92".into()),
        product: Some("摘要".into()),
        person_name: Some("张三".into()),
        phone: Some("021-1234567".into()),
        email: Some("a@b.c".into()),
        ..CustomerFields::default()
    }
}

fn personal(name: &str, khid: &str, mobile: &str) -> CustomerFields {
    CustomerFields {
        name: name.into(),
        khid: Some(khid.into()),
        mobile: Some(mobile.into()),
        ..CustomerFields::default()
    }
}

fn followup(content: &str) -> Followup {
    Followup {
        template_id: 106,
        content: content.into(),
        date: "2025-10-19 12:00:00".into(),
    }
}

// ------------------------------------------------------------------------------------------ login

#[tokio::test]
async fn login_ok_bad_and_lockout() -> R {
    let h = start().await?;
    let good = client(&h)?;
    good.login().await?;
    assert_eq!(good.login_count(), 1);
    assert_eq!(good.session_generation(), 1);

    let bad = ErpClient::new(ErpConfig {
        password: "wrong".into(),
        ..cfg_for(&h)
    })?;
    let e = bad.list_customers(&ListFilter::default()).await;
    assert!(
        matches!(&e, Err(Error::LoginFailed(m)) if m == "用户名或密码错误"),
        "the server's text verbatim: {e:?}"
    );
    assert_eq!(class(&e), Some(RetryClass::Fatal));
    // A second call inside the backoff does not hit the server.
    let e = bad.list_customers(&ListFilter::default()).await;
    assert!(
        matches!(&e, Err(Error::LoginFailed(m)) if m.contains("backoff")),
        "{e:?}"
    );
    assert_eq!(stat(&h, "logins_failed").await?, 1);
    // After the backoff, one more automatic attempt; then automatic logins stop (max_login_failures 2).
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(bad.list_customers(&ListFilter::default()).await.is_err());
    assert_eq!(stat(&h, "logins_failed").await?, 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = bad.list_customers(&ListFilter::default()).await;
    assert!(
        matches!(&e, Err(Error::LoginFailed(m)) if m.contains("disabled")),
        "{e:?}"
    );
    assert_eq!(stat(&h, "logins_failed").await?, 2);
    // Explicit logins always try: two more failures lock the account (more than 3).
    assert!(bad.login().await.is_err());
    assert!(bad.login().await.is_err());
    assert_eq!(stat(&h, "logins_failed").await?, 4);
    let fresh = client(&h)?;
    let e = fresh.login().await;
    assert!(
        matches!(&e, Err(Error::LoginFailed(m)) if m.contains("验证码")),
        "{e:?}"
    );
    assert_eq!(stat(&h, "logins_locked").await?, 1);
    admin_post(&h, "/_sim/reset", json!({})).await?;
    fresh.login().await?;
    assert_eq!(fresh.login_count(), 1);
    h.shutdown().await?;
    Ok(())
}

// ------------------------------------------------------------------------------------------ saves

#[tokio::test]
async fn create_company_and_personal_then_lookup() -> R {
    let h = start().await?;
    let c = client(&h)?;
    let ord = c.allocate_ord(CustomerKind::Company).await?;
    let res = c
        .save_customer(
            CustomerKind::Company,
            &CustomerFields {
                ord: Some(ord),
                ..company("WX1", "13800000001")
            },
        )
        .await?;
    assert_eq!(res.ord, ord);
    assert_eq!(res.message, "保存成功");
    assert_eq!(res.verified.ord, ord);
    assert_eq!(res.verified.khid.as_deref(), Some("WX1"));
    assert_eq!(res.verified.name.as_deref(), Some("公司WX1"));

    // Personal, ord allocated implicitly, no khid: the form's pre-filled khid is kept.
    let p = CustomerFields {
        name: "李四".into(),
        mobile: Some("13900000002".into()),
        ..CustomerFields::default()
    };
    let res2 = c.save_customer(CustomerKind::Personal, &p).await?;
    assert!(res2.ord > ord);
    let gen_khid = res2.verified.khid.clone().ok_or("no khid")?;
    assert!(
        gen_khid.starts_with("KH") && gen_khid.len() == 14,
        "pre-filled KH<yyyymmdd><nnnn>: {gen_khid}"
    );
    assert_eq!(stored_customer(&h, res2.ord).await?["intsort"], 2);

    let found = c.find_by_khid("WX1").await?.ok_or("not found")?;
    assert_eq!(found.ord, ord);
    assert_eq!(found.name.as_deref(), Some("公司WX1"));
    assert_eq!(found.mobile.as_deref(), Some("13800000001"));
    assert_eq!(found.weixin_acc.as_deref(), Some("wx_WX1"));
    assert_eq!(found.address.as_deref(), Some("上海"));
    assert!(found.add_date.is_some_and(|d| d.len() == 19));
    assert!(c.find_by_khid("WX404").await?.is_none());
    let by_mobile = c.find_by_mobile("13900000002").await?;
    assert_eq!(
        by_mobile.iter().map(|x| x.ord).collect::<Vec<_>>(),
        [res2.ord]
    );

    let d = c.customer_detail(ord).await?.ok_or("no detail")?;
    assert_eq!(d.ord, ord);
    assert_eq!(d.value("khid"), Some("WX1"));
    assert_eq!(d.value("person_name"), Some("张三"));
    assert_eq!(d.value("sort1"), Some("11"));
    assert!(c.customer_detail(999_999).await?.is_none());

    // What the ERP saw: the vendor's ids, intsort in the query.
    let reqs = requests(&h, "intsort=1").await?;
    let last = reqs.last().ok_or("no request")?;
    assert_eq!(last["cmdkey"], "__sys_dosave");
    assert_eq!(last["datas"]["weixinAcc"], "wx_WX1");
    assert_eq!(last["datas"]["jz"], "175");
    assert_eq!(last["datas"]["ord"], ord);

    // Update through __sys_dosave with the existing ord.
    let v = c
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                ord: Some(ord),
                name: "公司WX1改".into(),
                person_name: Some("张三".into()),
                ..CustomerFields::default()
            },
        )
        .await?;
    assert_eq!(v.name.as_deref(), Some("公司WX1改"));
    let after = c.find_by_khid("WX1").await?.ok_or("gone")?;
    assert_eq!(
        (after.name.as_deref(), after.weixin_acc.as_deref()),
        (Some("公司WX1改"), Some("wx_WX1")),
        "unsent fields keep their stored value"
    );
    // The vendor requires 客户名称 on every save, updates included: without it the ERP refuses.
    let e = c
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                ord: Some(ord),
                weixin_acc: Some("wx_new".into()),
                ..CustomerFields::default()
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "请填写客户名称"),
        "{e:?}"
    );
    assert_eq!(
        field(&stored_customer(&h, ord).await?, "weixinAcc"),
        "wx_WX1"
    );
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn vendor_required_fields_are_sent() -> R {
    let h = start().await?;
    let c = ErpClient::new(ErpConfig {
        customer_category_personal: "12".into(),
        ..cfg_for(&h)
    })?;
    // Company with a contact person; company without one (person_name = its name); personal.
    let a = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?
        .ord;
    let b = c
        .save_customer(
            CustomerKind::Company,
            &CustomerFields {
                person_name: None,
                ..company("WX2", "13800000002")
            },
        )
        .await?
        .ord;
    let p = c
        .save_customer(
            CustomerKind::Personal,
            &personal("王小二", "WX3", "13800000003"),
        )
        .await?
        .ord;
    let (sa, sb, sp) = (
        stored_customer(&h, a).await?,
        stored_customer(&h, b).await?,
        stored_customer(&h, p).await?,
    );
    assert_eq!(
        (field(&sa, "sort1"), field(&sa, "person_name")),
        ("11", "张三")
    );
    assert_eq!(
        (field(&sb, "sort1"), field(&sb, "person_name")),
        ("11", "公司WX2")
    );
    assert_eq!(
        (
            field(&sp, "sort1"),
            field(&sp, "person_name"),
            sp["intsort"].clone()
        ),
        ("12", "王小二", json!(2)),
        "personal override of the category; person_name = the name"
    );
    // What the client sends is what customer_datas says.
    let d = c.customer_datas(CustomerKind::Personal, &personal("王小二", "WX3", "138"));
    assert!(d.contains(&("sort1", "12".into())) && d.contains(&("person_name", "王小二".into())));
    let saves = requests(&h, "intsort=2").await?;
    let sent = &saves.last().ok_or("no personal save")?["datas"];
    assert_eq!(
        (sent["sort1"].clone(), sent["person_name"].clone()),
        (json!("12"), json!("王小二"))
    );

    // A person add sends company + person_name.
    c.add_person(
        a,
        &Person {
            name: "李四".into(),
            mobile: Some("13700000000".into()),
            ..Person::default()
        },
    )
    .await?;
    let padd = requests(&h, "person/add.asp").await?;
    let sent = &padd.last().ok_or("no person add")?["datas"];
    assert_eq!(sent["company"], a);
    assert_eq!(sent["person_name"], "李四");
    let persons = stored(&h, "persons").await?;
    assert!(
        persons
            .iter()
            .any(|x| x["company"] == a && field(x, "person_name") == "李四"),
        "{persons:?}"
    );

    // A follow-up (defaults: sort 484, plantype 0, content in @intro2).
    c.add_followup(a, &followup("很好，发合同")).await?;
    // plantype 2: a completed schedule with every field the vendor requires for it.
    let c2 = ErpClient::new(ErpConfig {
        followup: FollowupConfig {
            plantype: 2,
            sort: 481,
            ..FollowupConfig::default()
        },
        ..cfg_for(&h)
    })?;
    c2.add_followup(b, &followup("已上门拜访")).await?;
    let f = stored(&h, "followups").await?;
    assert_eq!(f.len(), 2, "{f:?}");
    let (f0, f1) = (&f[0], &f[1]);
    assert_eq!(f0["ord"], a);
    assert_eq!(
        (
            field(f0, "intro"),
            field(f0, "sort"),
            field(f0, "plantype"),
            field(f0, "@intro2")
        ),
        ("106", "484", "0", "很好，发合同")
    );
    assert_eq!(f1["ord"], b);
    assert_eq!(
        (field(f1, "intro"), field(f1, "sort"), field(f1, "plantype")),
        ("106", "481", "2")
    );
    assert_eq!(field(f1, "@ret2_0"), "2025-10-19 12:00:00");
    assert_eq!(field(f1, "@ret2_1"), "2025-10-19 12:00:00");
    assert_eq!(field(f1, "@title2"), "已上门拜访");
    assert_eq!(field(f1, "@intro2"), "已上门拜访");
    assert_eq!(field(f1, "@remind"), "1");
    // The spec's c1/date1 are not in the vendor's list: never sent.
    for rec in &f {
        for k in ["c1", "date1"] {
            assert!(rec["fields"].get(k).is_none(), "{k} stored: {rec}");
        }
    }
    for r in requests(&h, "reply.asp").await? {
        assert!(
            r["datas"].get("c1").is_none() && r["datas"].get("date1").is_none(),
            "{r}"
        );
    }
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn refusal_text_is_kept_verbatim() -> R {
    let h = start().await?;
    // A category the ERP does not have.
    let bad_category = ErpClient::new(ErpConfig {
        customer_category: "99".into(),
        ..cfg_for(&h)
    })?;
    let e = bad_category
        .save_customer(CustomerKind::Company, &company("WX9", "13800000009"))
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "客户分类无效"),
        "{e:?}"
    );
    assert_eq!(class(&e), Some(RetryClass::Fatal));
    assert!(stored(&h, "customers").await?.is_empty());

    let c = client(&h)?;
    let ord = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?
        .ord;
    // Refusal rules set at run time: with a text, and the default text.
    faults(
        &h,
        json!({"refuse": [{"field": "ly", "value": "999", "text": "客户来源不允许"},
                          {"field": "name", "value": "坏"}]}),
    )
    .await?;
    let e = c
        .save_customer(
            CustomerKind::Company,
            &CustomerFields {
                ly: Some("999".into()),
                ..company("WX4", "13800000004")
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "客户来源不允许"),
        "{e:?}"
    );
    assert_eq!(class(&e), Some(RetryClass::Fatal));
    let e = c
        .save_customer(
            CustomerKind::Personal,
            &personal("坏", "WX5", "13800000005"),
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "保存失败：name=坏 不允许"),
        "{e:?}"
    );
    // The ERP's own uniqueness rules.
    let e = c
        .save_customer(CustomerKind::Company, &company("WX2", "13800000001"))
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "该手机号码已存在，不能重复添加客户"),
        "{e:?}"
    );
    let e = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000008"))
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "客户编号[WX1]已存在，不能重复添加"),
        "{e:?}"
    );
    // Writes that cannot be read back: their text decides, verbatim.
    let e = c
        .add_person(
            999_999,
            &Person {
                name: "x".into(),
                ..Person::default()
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "关联客户不存在"),
        "{e:?}"
    );
    let e = c.add_followup(999_999, &followup("x")).await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "该客户不存在或已被删除"),
        "{e:?}"
    );
    let e = c.assign(ord, &Assignment::To(String::new())).await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "请选择指派用户"),
        "{e:?}"
    );
    assert_eq!(stored(&h, "customers").await?.len(), 1);
    h.shutdown().await?;
    Ok(())
}

// ------------------------------------------------------------------------------------------ lookups

/// 250 customers; 113 of them match the fuzzy `khid=WX12` filter and 113 the fuzzy
/// `mobile=13900000012` filter; exactly one has khid WX12, exactly two have that mobile (one
/// written with spaces). Returns (ord of WX12, ord of the spaced mobile).
async fn seed_fuzzy(h: &SimHandle) -> Result<(i64, i64), E> {
    let target = "13900000012";
    let mut list = vec![
        seed_row("WX12", target),
        seed_row("M1", &format!(" {target} ")),
        seed_row("AWX12", &format!("0{target}")),
        seed_row("WX12A", "13800000000"),
    ];
    for d in 0..10 {
        list.push(seed_row(&format!("WX12{d}"), &format!("{target}{d}")));
    }
    for i in 0..100 {
        list.push(seed_row(&format!("WX12{i:02}"), &format!("{target}{i:02}")));
    }
    let mut i = 0;
    while list.len() < 250 {
        list.push(seed_row(&format!("K{i}"), &format!("137{i:08}")));
        i += 1;
    }
    let ords = seed(h, list).await?;
    Ok((ords[0], ords[1]))
}

#[tokio::test]
async fn exact_lookup_over_fuzzy_filters() -> R {
    let h = start().await?;
    let (wx12, spaced) = seed_fuzzy(&h).await?;
    let c = ErpClient::new(ErpConfig {
        lookup_page_size: 20,
        ..cfg_for(&h)
    })?;
    // The premise: the ERP's filter is fuzzy and spans more than two pages.
    let p1 = c
        .list_customers(&ListFilter {
            khid: Some("WX12".into()),
            pagesize: 20,
            ..ListFilter::default()
        })
        .await?;
    assert_eq!((p1.page.recordcount, p1.page.pagecount), (113, 6));
    assert!(p1.rows.iter().all(|r| r.khid.as_deref() != Some("WX12")));
    let last = c
        .list_customers(&ListFilter {
            khid: Some("WX12".into()),
            pagesize: 20,
            pageindex: 6,
            ..ListFilter::default()
        })
        .await?;
    assert_eq!(last.rows.len(), 13);
    assert!(
        last.rows.iter().any(|r| r.ord == wx12),
        "WX12 (the oldest) is on the last page"
    );

    clear_requests(&h).await?;
    let found = c.find_by_khid("WX12").await?.ok_or("WX12 not found")?;
    assert_eq!(found.ord, wx12);
    assert_eq!(found.khid.as_deref(), Some("WX12"));
    let pages: Vec<Value> = requests(&h, "custom/list.asp")
        .await?
        .iter()
        .map(|r| r["datas"]["pageindex"].clone())
        .collect();
    assert_eq!(
        pages,
        (1..=6).map(|i| json!(i)).collect::<Vec<_>>(),
        "every page read"
    );
    assert_eq!(
        requests(&h, "custom/list.asp").await?[0]["datas"]["pagesize"],
        20
    );

    for k in ["WX120", "WX1299", "AWX12", "WX12A"] {
        let got = c.find_by_khid(k).await?.ok_or(k)?;
        assert_eq!(got.khid.as_deref(), Some(k));
    }
    assert!(c.find_by_khid("WX999999").await?.is_none());
    assert!(
        c.find_by_khid("WX1").await?.is_none(),
        "a prefix is not a match"
    );

    // Mobiles: compared by their digits over the fuzzy mobile filter.
    let mut m: Vec<i64> = c
        .find_by_mobile("13900000012")
        .await?
        .iter()
        .map(|x| x.ord)
        .collect();
    m.sort_unstable();
    assert_eq!(m, [wx12, spaced]);
    assert!(c.find_by_mobile("13900000099").await?.is_empty());
    assert!(c.find_by_mobile("").await?.is_empty());
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn lookup_that_cannot_finish_is_an_error() -> R {
    let h = start().await?;
    let (wx12, _) = seed_fuzzy(&h).await?;
    let c = ErpClient::new(ErpConfig {
        lookup_page_size: 20,
        ..cfg_for(&h)
    })?;
    c.login().await?;
    const LIST: &str = "custom/list.asp";
    // Slow pages so that a fault can be aimed at a later page of a running lookup.
    faults(&h, json!({"latency_ms": 250, "paths": [LIST]})).await?;

    // status 11 on page 2.
    clear_requests(&h).await?;
    let task = tokio::spawn({
        let c = c.clone();
        async move { c.find_by_khid("WX12").await }
    });
    aim(&h, LIST, 1, json!({"status11_next": 1})).await?;
    let r = task.await?;
    assert!(
        matches!(&r, Err(Error::ServerException(m)) if m.contains("数据库连接超时")),
        "never Ok(None): {r:?}"
    );
    assert_eq!(class(&r), Some(RetryClass::Retry));
    let log = requests(&h, LIST).await?;
    let hit: Vec<&Value> = log.iter().filter(|r| r["fault"] == "Status11").collect();
    assert_eq!(hit.len(), 1, "{log:?}");
    assert_eq!(hit[0]["datas"]["pageindex"], 2, "aimed at page 2");
    assert_eq!(log.len(), 2, "the lookup stops at the failed page");

    // HTTP 503 on page 3.
    clear_requests(&h).await?;
    let task = tokio::spawn({
        let c = c.clone();
        async move { c.find_by_khid("WX12").await }
    });
    aim(&h, LIST, 2, json!({"error_next": 1})).await?;
    let r = task.await?;
    assert!(
        matches!(&r, Err(Error::HttpStatus { status: 503 })),
        "never Ok(None): {r:?}"
    );
    assert_eq!(class(&r), Some(RetryClass::Retry));
    let log = requests(&h, LIST).await?;
    let hit: Vec<&Value> = log
        .iter()
        .filter(|r| r["fault"] == "HttpError(503)")
        .collect();
    assert_eq!(hit.len(), 1, "{log:?}");
    assert_eq!(hit[0]["datas"]["pageindex"], 3, "aimed at page 3");

    // A list that grows while it is read: the scan restarts and still finds the customer.
    clear_requests(&h).await?;
    let task = tokio::spawn({
        let c = c.clone();
        async move { c.find_by_khid("WX12").await }
    });
    // Page 2 logged = page 1 answered: the new customer changes the recordcount mid-scan.
    for _ in 0..500 {
        if requests(&h, LIST).await?.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seed(&h, vec![seed_row("WX12NEW", "13600000000")]).await?;
    let r = task.await?;
    assert_eq!(r?.map(|x| x.ord), Some(wx12));
    let firsts = requests(&h, LIST)
        .await?
        .iter()
        .filter(|r| r["datas"]["pageindex"] == 1)
        .count();
    assert_eq!(firsts, 2, "restarted once after the recordcount changed");

    // More pages than erp.lookup_max_pages.
    faults(&h, json!({"latency_ms": 0, "paths": []})).await?;
    clear_requests(&h).await?;
    let capped = ErpClient::new(ErpConfig {
        lookup_page_size: 20,
        lookup_max_pages: 2,
        ..cfg_for(&h)
    })?;
    let r = capped.find_by_khid("WX12").await;
    assert!(
        matches!(&r, Err(Error::Protocol(m)) if m.contains("lookup_max_pages")),
        "{r:?}"
    );
    assert_eq!(class(&r), Some(RetryClass::Retry));
    assert_eq!(requests(&h, LIST).await?.len(), 2);
    let r = capped.find_by_mobile("13900000012").await;
    assert!(matches!(&r, Err(Error::Protocol(_))), "{r:?}");
    // A lookup that fits is unaffected.
    assert!(capped.find_by_khid("WX1299").await?.is_some());
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn status_11_is_retried_not_absent() -> R {
    let h = start().await?;
    let ords = seed(&h, vec![seed_row("S11", "13800000011")]).await?;
    let ord = ords[0];
    let c = client(&h)?;
    c.login().await?;

    faults(&h, json!({"status11_next": 1})).await?;
    let r = c.find_by_khid("S11").await;
    assert!(
        matches!(&r, Err(Error::ServerException(m)) if m.contains("数据库连接超时")),
        "not absent: {r:?}"
    );
    assert_eq!(class(&r), Some(RetryClass::Retry));
    assert_eq!(c.find_by_khid("S11").await?.map(|x| x.ord), Some(ord));

    faults(&h, json!({"status11_next": 1})).await?;
    let r = c.customer_detail(ord).await;
    assert!(matches!(&r, Err(Error::ServerException(_))), "{r:?}");
    assert!(c.customer_detail(ord).await?.is_some());

    // A delete whose first read fails does not report "did not exist".
    faults(&h, json!({"status11_next": 1})).await?;
    let r = c.delete_customer(ord, Some("S11")).await;
    assert!(matches!(&r, Err(Error::ServerException(_))), "{r:?}");
    assert!(stored_customer(&h, ord).await.is_ok());

    // On the save itself: nothing was processed; the retry stores it once.
    faults(&h, json!({"status11_next": 1, "paths": ["intsort=1"]})).await?;
    let r = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await;
    assert!(matches!(&r, Err(Error::ServerException(_))), "{r:?}");
    assert_eq!(class(&r), Some(RetryClass::Retry));
    assert_eq!(stored(&h, "customers").await?.len(), 1);
    c.save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?;
    assert_eq!(stored(&h, "customers").await?.len(), 2);
    assert_eq!(stat(&h, "status11").await?, 4);
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn vendor_reply_quirks() -> R {
    let h = start().await?;
    let ords = seed(
        &h,
        vec![
            seed_row("SHAPE1", "13800000001"),
            seed_row("SHAPE2", "13800000002"),
        ],
    )
    .await?;
    let c = client(&h)?;
    c.login().await?;
    let all = ListFilter::default();

    // A UTF-8 BOM before the JSON.
    faults(&h, json!({"bom_next": 1})).await?;
    assert_eq!(c.list_customers(&all).await?.rows.len(), 2);
    // Raw TAB and 0x01 inside a string (the first cell of the first row: the name).
    faults(&h, json!({"control_chars_next": 1})).await?;
    let p = c.list_customers(&all).await?;
    assert_eq!(p.rows.len(), 2);
    assert!(
        p.rows[0]
            .name
            .as_deref()
            .is_some_and(|n| n.contains('\t') && n.contains('\u{1}')),
        "the raw characters are kept: {:?}",
        p.rows[0].name
    );
    // Details, allocation and a save, each with both quirks at once.
    faults(&h, json!({"bom_next": 1, "control_chars_next": 1})).await?;
    let d = c.customer_detail(ords[0]).await?.ok_or("no detail")?;
    assert_eq!(d.value("khid"), Some("SHAPE1"));
    faults(&h, json!({"bom_next": 1, "control_chars_next": 1})).await?;
    let ord = c.allocate_ord(CustomerKind::Company).await?;
    assert!(ord > ords[1]);
    faults(&h, json!({"bom_next": 1, "control_chars_next": 1})).await?;
    let res = c
        .save_customer(
            CustomerKind::Company,
            &CustomerFields {
                ord: Some(ord),
                ..company("WX1", "13800000009")
            },
        )
        .await?;
    assert_eq!((res.ord, res.message.as_str()), (ord, "保存成功"));
    assert_eq!(
        (stat(&h, "bom").await?, stat(&h, "control_chars").await?),
        (4, 4),
        "every quirk was served"
    );
    let faulted: Vec<Value> = requests(&h, "")
        .await?
        .into_iter()
        .filter_map(|r| r["fault"].as_str().map(|f| json!([r["path"], f])))
        .collect();
    assert!(
        faulted
            .iter()
            .any(|f| f[0].as_str().is_some_and(|p| p.contains("intsort=1"))
                && f[1] == "ControlChars,Bom"),
        "{faulted:?}"
    );

    // Row shapes vary by request: arrays, {ord,value} objects, one object instead of a list.
    let t = c.traced();
    let one = ListFilter {
        khid: Some("SHAPE2".into()),
        ..ListFilter::default()
    };
    let mut shapes = BTreeSet::new();
    for _ in 0..12 {
        let p = t.list_customers(&one).await?;
        assert_eq!(p.rows.len(), 1);
        assert_eq!(
            (p.rows[0].ord, p.rows[0].khid.as_deref()),
            (ords[1], Some("SHAPE2"))
        );
        assert_eq!(p.rows[0].mobile.as_deref(), Some("13800000002"));
        assert_eq!(p.page.recordcount, 1);
    }
    for ex in t.take_exchanges() {
        let rows = &ex.response["body"]["source"]["table"]["rows"];
        shapes.insert(match rows {
            Value::Object(_) => "single",
            Value::Array(a) if a.first().is_some_and(Value::is_object) => "objects",
            Value::Array(_) => "arrays",
            _ => "other",
        });
    }
    assert_eq!(
        shapes.into_iter().collect::<Vec<_>>(),
        ["arrays", "objects", "single"]
    );
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn lost_reply_then_lookup_finds_the_customer() -> R {
    let h = start().await?;
    let c = client(&h)?;
    faults(&h, json!({"lost_reply_next": 1})).await?;
    let r = c
        .save_customer(CustomerKind::Company, &company("WX77", "13800000077"))
        .await;
    assert!(
        matches!(&r, Err(Error::HttpStatus { status: 502 })),
        "{r:?}"
    );
    assert_eq!(class(&r), Some(RetryClass::Retry));
    let all = stored(&h, "customers").await?;
    assert_eq!(all.len(), 1, "the write was stored: {all:?}");
    let found = c
        .find_by_khid("WX77")
        .await?
        .ok_or("lookup misses the stored customer")?;
    assert_eq!(found.ord, all[0]["ord"].as_i64().ok_or("no ord")?);
    // The retry updates the customer found instead of creating a second one.
    c.edit_customer(
        CustomerKind::Company,
        &CustomerFields {
            ord: Some(found.ord),
            ..company("WX77", "13800000077")
        },
    )
    .await?;
    assert_eq!(stored(&h, "customers").await?.len(), 1);

    // The second lost reply is a connection dropped mid-response.
    faults(&h, json!({"lost_reply_next": 1})).await?;
    let r = c
        .save_customer(
            CustomerKind::Personal,
            &personal("赵六", "WX78", "13800000078"),
        )
        .await;
    assert!(matches!(&r, Err(Error::Transport(_))), "{r:?}");
    assert_eq!(class(&r), Some(RetryClass::Retry));
    // a lost reply: the save may have been processed (it was)
    assert!(r.as_ref().err().is_some_and(Error::may_have_reached_server));
    assert!(c.find_by_khid("WX78").await?.is_some());
    assert_eq!(stored(&h, "customers").await?.len(), 2);
    assert_eq!(stat(&h, "lost_replies").await?, 2);
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn not_persisted_is_detected() -> R {
    let h = start().await?;
    let c = client(&h)?;
    faults(&h, json!({"not_persisted_next": 1})).await?;
    let e = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await;
    assert!(
        matches!(&e, Err(Error::Protocol(m)) if m.contains("not persisted")),
        "{e:?}"
    );
    assert_eq!(class(&e), Some(RetryClass::Retry));
    // Without a khid the read-back goes through the details only.
    faults(&h, json!({"not_persisted_next": 1})).await?;
    let e = c
        .save_customer(
            CustomerKind::Company,
            &CustomerFields {
                khid: None,
                ..company("x", "13800000002")
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Protocol(m)) if m.contains("not persisted")),
        "{e:?}"
    );
    assert!(stored(&h, "customers").await?.is_empty());
    // The retry succeeds.
    c.save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?;
    assert_eq!(stored(&h, "customers").await?.len(), 1);
    assert_eq!(stat(&h, "not_persisted").await?, 2);
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn update_counts_when_it_reads_back() -> R {
    let h = start().await?;
    let c = client(&h)?;
    let ord = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?
        .ord;
    let edit = CustomerFields {
        ord: Some(ord),
        name: "新名字".into(),
        address: Some("北京".into()),
        person_name: Some("张三".into()),
        ..CustomerFields::default()
    };
    let v = c.edit_customer(CustomerKind::Company, &edit).await?;
    assert_eq!(
        (v.ord, v.name.as_deref(), v.address.as_deref()),
        (ord, Some("新名字"), Some("北京"))
    );
    let s = stored_customer(&h, ord).await?;
    assert_eq!(
        (field(&s, "name"), field(&s, "address")),
        ("新名字", "北京")
    );

    // Acknowledged (保存成功) but the ERP still holds the old name: not counted, retryable.
    faults(&h, json!({"not_persisted_next": 1})).await?;
    let e = c
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                name: "又一个名字".into(),
                ..edit.clone()
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Protocol(m)) if m.contains("reads back different name")),
        "{e:?}"
    );
    assert_eq!(class(&e), Some(RetryClass::Retry));

    // Refused by a rule: the ERP's text verbatim, nothing changed.
    faults(
        &h,
        json!({"refuse": [{"field": "name", "value": "坏名字", "text": "客户名称含敏感词"}]}),
    )
    .await?;
    let e = c
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                name: "坏名字".into(),
                ..edit.clone()
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "客户名称含敏感词"),
        "{e:?}"
    );
    assert_eq!(class(&e), Some(RetryClass::Fatal));
    assert_eq!(field(&stored_customer(&h, ord).await?, "name"), "新名字");
    // Refused for a field other than the name (备注, 客户来源): the rest reads back as before, but
    // what was sent does not, so the refusal is not taken for a success.
    for (fld, val, text) in [
        ("intro", "坏备注", "备注不允许"),
        ("ly", "999", "客户来源无效"),
    ] {
        faults(
            &h,
            json!({"refuse": [{"field": fld, "value": val, "text": text}]}),
        )
        .await?;
        let mut f = edit.clone();
        match fld {
            "intro" => f.intro = Some(val.into()),
            _ => f.ly = Some(val.into()),
        }
        let e = c.edit_customer(CustomerKind::Company, &f).await;
        assert!(
            matches!(&e, Err(Error::Business(t)) if t == text),
            "{fld}: {e:?}"
        );
        assert_ne!(field(&stored_customer(&h, ord).await?, fld), val);
    }
    let e = c
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                ord: None,
                ..edit.clone()
            },
        )
        .await;
    assert!(matches!(&e, Err(Error::Config(_))), "{e:?}");

    // webapi: sort2 = the kind, sort = 客户分类, sort1 = 跟进程度.
    faults(&h, json!({"refuse": []})).await?;
    let w = ErpClient::new(ErpConfig {
        update_mode: UpdateMode::Webapi,
        follow_level: "1".into(),
        customer_category_personal: "12".into(),
        ..cfg_for(&h)
    })?;
    let v = w
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                name: "网页改名".into(),
                ..edit.clone()
            },
        )
        .await?;
    assert_eq!(v.name.as_deref(), Some("网页改名"));
    let body = requests(&h, "/webapi/v3/sales/customer/edit")
        .await?
        .last()
        .map(|r| r["body"].clone())
        .ok_or("no webapi request")?;
    assert_eq!(
        (
            body["ord"].clone(),
            body["sort2"].clone(),
            body["sort"].clone(),
            body["sort1"].clone()
        ),
        (json!(ord), json!(1), json!("11"), json!("1"))
    );
    assert_eq!(body["person_name"], "张三");
    let s = stored_customer(&h, ord).await?;
    assert_eq!(
        (field(&s, "name"), field(&s, "sort1"), field(&s, "follow")),
        ("网页改名", "11", "1")
    );

    let p = c
        .save_customer(
            CustomerKind::Personal,
            &personal("王五", "WX2", "13800000002"),
        )
        .await?
        .ord;
    let pedit = CustomerFields {
        ord: Some(p),
        ..personal("王五改", "WX2", "13800000002")
    };
    let v = w.edit_customer(CustomerKind::Personal, &pedit).await?;
    assert_eq!(v.name.as_deref(), Some("王五改"));
    let body = requests(&h, "/webapi/v3/sales/customer/edit")
        .await?
        .last()
        .map(|r| r["body"].clone())
        .ok_or("no webapi request")?;
    assert_eq!(
        (body["sort2"].clone(), body["sort"].clone()),
        (json!(2), json!("12"))
    );
    // A personal customer edited as a company: the ERP refuses (Code 300), verbatim.
    let e = w
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                name: "变成公司".into(),
                ..pedit.clone()
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "客户属性与原客户不一致"),
        "{e:?}"
    );
    let body = requests(&h, "/webapi/v3/sales/customer/edit")
        .await?
        .last()
        .map(|r| r["body"].clone())
        .ok_or("no webapi request")?;
    assert_eq!(
        (body["sort2"].clone(), body["sort"].clone()),
        (json!(1), json!("11"))
    );
    let s = stored_customer(&h, p).await?;
    assert_eq!(
        (s["intsort"].clone(), field(&s, "name")),
        (json!(2), "王五改")
    );
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn delete_counts_when_gone() -> R {
    let h = start().await?;
    let c = client(&h)?;
    let ord = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?
        .ord;
    let keep = c
        .save_customer(CustomerKind::Company, &company("WX2", "13800000002"))
        .await?
        .ord;
    assert!(c.delete_customer(ord, Some("WX1")).await?);
    assert!(c.customer_detail(ord).await?.is_none());
    assert!(c.find_by_khid("WX1").await?.is_none());
    assert!(stored_customer(&h, ord).await.is_err());
    assert!(stored_customer(&h, keep).await.is_ok());
    assert!(!c.delete_customer(ord, Some("WX1")).await?, "already gone");
    assert!(!c.delete_customer(999_999, None).await?);
    let del = requests(&h, "__msgid=delete").await?;
    assert_eq!(
        del.len(),
        1,
        "nothing sent for a customer that is not there: {del:?}"
    );
    assert_eq!(
        del[0]["path"],
        "/sysa/mobilephone/salesmanage/custom/list.asp?__msgid=delete"
    );
    assert_eq!(del[0]["cmdkey"], "delete");
    assert_eq!(
        (
            del[0]["datas"]["id"].clone(),
            del[0]["datas"]["ord"].clone()
        ),
        (json!(ord), json!(ord))
    );
    // The other endpoint a copy of the server has, by configuration.
    let alt = ErpClient::new(ErpConfig {
        delete_endpoint: "/sysa/mobilephone/salesmanage/custom/delete.asp".into(),
        ..cfg_for(&h)
    })?;
    assert!(alt.delete_customer(keep, None).await?);
    assert!(stored(&h, "customers").await?.is_empty());
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn customer_form_lists_the_categories() -> R {
    let h = start().await?;
    let c = client(&h)?;
    let form = c.customer_form(CustomerKind::Company).await?;
    let get = |id: &str| form.iter().find(|f| f.id == id);
    let sort1 = get("sort1").ok_or("no sort1")?;
    assert!(sort1.required);
    assert_eq!(sort1.caption, "客户分类");
    assert!(
        sort1
            .options
            .contains(&("11".to_string(), "微信客户".to_string())),
        "{:?}",
        sort1.options
    );
    assert!(get("name").is_some_and(|f| f.required));
    assert!(get("person_name").is_some_and(|f| f.required));
    assert!(get("mobile").is_some_and(|f| !f.required));
    assert!(
        get("khid").is_some_and(|f| f.value.starts_with("KH")),
        "pre-filled khid"
    );
    assert!(get("jz").is_some_and(|f| f.options.iter().any(|(v, _)| v == "175")));
    let personal = c.customer_form(CustomerKind::Personal).await?;
    assert!(personal.iter().any(|f| f.id == "sort1" && f.required));
    h.shutdown().await?;

    // The categories are the ERP's own.
    let h = start_with(SimConfig {
        categories: "21:展会客户,22:老客户".into(),
        ..SimConfig::default()
    })
    .await?;
    let form = client(&h)?.customer_form(CustomerKind::Company).await?;
    let sort1 = form.iter().find(|f| f.id == "sort1").ok_or("no sort1")?;
    assert_eq!(
        sort1.options,
        [
            ("21".to_string(), "展会客户".to_string()),
            ("22".into(), "老客户".into())
        ]
    );
    h.shutdown().await?;
    Ok(())
}

// ------------------------------------------------------------------------------------------ lists

#[tokio::test]
async fn list_paging_sorting_filters() -> R {
    let h = start().await?;
    let seeds: Vec<Value> = (0..45)
        .map(|i| json!({"intsort": 1 + (i % 2), "date1": format!("2025-01-{:02} 10:00:00", 1 + i % 28),
            "fields": {"name": format!("客户{i:02}"), "khid": format!("WX{i}"), "ly": if i % 3 == 0 {"171"} else {"5"},
                       "sort1": "11", "person_name": "张三", "mobile": format!("138{:08}", i)}}))
        .collect();
    seed(&h, seeds).await?;
    let c = client(&h)?;

    let p1 = c.list_customers(&ListFilter::default()).await?;
    assert_eq!(
        (
            p1.page.pageindex,
            p1.page.pagesize,
            p1.page.pagecount,
            p1.page.recordcount
        ),
        (1, 20, 3, 45),
        "vendor default page size 20"
    );
    assert_eq!(p1.rows.len(), 20);
    assert!(
        p1.rows.windows(2).all(|w| w[0].ord > w[1].ord),
        "default order: newest first"
    );
    let p3 = c
        .list_customers(&ListFilter {
            pageindex: 3,
            ..ListFilter::default()
        })
        .await?;
    assert_eq!(p3.rows.len(), 5);
    let big = c
        .list_customers(&ListFilter {
            pagesize: 100,
            sort: Some("name".into()),
            ..ListFilter::default()
        })
        .await?;
    assert_eq!(big.rows.len(), 45);
    assert_eq!(big.rows[0].name.as_deref(), Some("客户00"));
    assert!(big.rows.windows(2).all(|w| w[0].name <= w[1].name));
    let capped = c
        .list_customers(&ListFilter {
            pagesize: 500,
            ..ListFilter::default()
        })
        .await?;
    assert_eq!(
        (capped.page.pagesize, capped.rows.len()),
        (100, 45),
        "capped page size"
    );
    let by_date = c
        .list_customers(&ListFilter {
            pagesize: 100,
            sort: Some("-date1".into()),
            ..ListFilter::default()
        })
        .await?;
    let dates: Vec<String> = by_date
        .rows
        .iter()
        .filter_map(|r| r.add_date.clone())
        .collect();
    assert_eq!(dates.len(), 45);
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    // ly is a multi-select (exact values), name a fuzzy filter.
    let ly = c
        .list_customers(&ListFilter {
            ly: Some("171".into()),
            pagesize: 100,
            ..ListFilter::default()
        })
        .await?;
    assert_eq!(ly.rows.len(), 15);
    assert!(ly.rows.iter().all(|r| r.ly.as_deref() == Some("171")));
    let ly2 = c
        .list_customers(&ListFilter {
            ly: Some("171,5".into()),
            pagesize: 100,
            ..ListFilter::default()
        })
        .await?;
    assert_eq!(ly2.rows.len(), 45);
    let named = c
        .list_customers(&ListFilter {
            name: Some("客户1".into()),
            pagesize: 100,
            ..ListFilter::default()
        })
        .await?;
    assert_eq!(named.rows.len(), 10);
    let m = c.find_by_mobile("13800000007").await?;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].khid.as_deref(), Some("WX7"));
    assert!(m[0].raw.contains_key("catename"));
    assert!(
        m[0].raw.values().all(Value::is_string),
        "string cells: {:?}",
        m[0].raw
    );

    // Without a session the ERP answers status 1 and nothing else.
    let raw = reqwest::Client::new()
        .post(format!(
            "{}/sysa/mobilephone/salesmanage/custom/list.asp",
            h.base_url()
        ))
        .json(&json!({"session": "x", "cmdkey": "refresh", "datas": []}))
        .send()
        .await?
        .bytes()
        .await?;
    let raw: Value = serde_json::from_slice(&raw)?;
    assert_eq!(raw["header"]["status"].to_string().trim_matches('"'), "1");
    assert!(raw.get("body").is_none());
    let empty = c
        .list_customers(&ListFilter {
            khid: Some("nope".into()),
            ..ListFilter::default()
        })
        .await?;
    assert!(empty.rows.is_empty());
    assert_eq!((empty.page.recordcount, empty.page.pagecount), (0, 0));
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn persons_followups_assignment() -> R {
    let h = start().await?;
    let c = ErpClient::new(ErpConfig {
        lookup_page_size: 10,
        ..cfg_for(&h)
    })?;
    let ord = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?
        .ord;
    // The customer form's contact is the first person.
    let persons = c.list_persons(ord).await?;
    assert_eq!(persons.len(), 1, "{persons:?}");
    assert_eq!(persons[0].name.as_deref(), Some("张三"));

    c.add_person(
        ord,
        &Person {
            name: "王五".into(),
            mobile: Some("13700000000".into()),
            phone: None,
            email: Some("w@x.y".into()),
        },
    )
    .await?;
    let persons = c.list_persons(ord).await?;
    let wang = persons
        .iter()
        .find(|p| p.name.as_deref() == Some("王五"))
        .ok_or("王五 not listed")?;
    assert_eq!(wang.customer_ord, Some(ord));
    assert_eq!(wang.mobile.as_deref(), Some("13700000000"));
    assert_eq!(wang.email.as_deref(), Some("w@x.y"));
    assert!(wang.ord.is_some());
    // Every page of the person list (page size 10).
    for i in 0..23 {
        c.add_person(
            ord,
            &Person {
                name: format!("联系人{i}"),
                ..Person::default()
            },
        )
        .await?;
    }
    assert_eq!(c.list_persons(ord).await?.len(), 25);
    assert!(c.list_persons(ord + 1000).await?.is_empty());

    c.add_followup(ord, &followup("很好，发合同")).await?;
    let f = stored(&h, "followups").await?;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["ord"], ord);
    assert_eq!(field(&f[0], "intro"), "106");
    assert_eq!(field(&f[0], "@intro2"), "很好，发合同");
    // No content configured: only the required fields.
    let quiet = ErpClient::new(ErpConfig {
        followup: FollowupConfig {
            content_field: String::new(),
            ..FollowupConfig::default()
        },
        ..cfg_for(&h)
    })?;
    quiet.add_followup(ord, &followup("不发送")).await?;
    let f = stored(&h, "followups").await?;
    assert_eq!(f.len(), 2);
    assert!(f[1]["fields"].get("@intro2").is_none(), "{}", f[1]);
    // plantype 1: a pending schedule.
    let pending = ErpClient::new(ErpConfig {
        followup: FollowupConfig {
            plantype: 1,
            ..FollowupConfig::default()
        },
        ..cfg_for(&h)
    })?;
    pending.add_followup(ord, &followup("")).await?;
    let f = stored(&h, "followups").await?;
    assert_eq!(
        (
            field(&f[2], "plantype"),
            field(&f[2], "@ret_0"),
            field(&f[2], "@title1"),
            field(&f[2], "@remind")
        ),
        ("1", "2025-10-19 12:00:00", "微信沟通", "1")
    );

    c.assign(ord, &Assignment::To("u42".into())).await?;
    assert_eq!(
        c.find_by_khid("WX1").await?.and_then(|x| x.sales_person),
        Some("u42".into())
    );
    c.assign(ord, &Assignment::Public).await?;
    let a = stored(&h, "assignments").await?;
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0]["member1"].clone(), a[0]["member2"].clone()),
        (json!("0"), json!("u42"))
    );
    assert_eq!(a[1]["member1"], "1");
    assert_eq!(
        c.find_by_khid("WX1").await?.and_then(|x| x.sales_person),
        None,
        "public: no sales person"
    );
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn webapi_edit_codes() -> R {
    let h = start().await?;
    let c = ErpClient::new(ErpConfig {
        update_mode: UpdateMode::Webapi,
        follow_level: "1".into(),
        ..cfg_for(&h)
    })?;
    let ord = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?
        .ord;
    let edit = CustomerFields {
        ord: Some(ord),
        name: "新名字".into(),
        address: Some("北京".into()),
        ..CustomerFields::default()
    };
    // 200.
    c.edit_customer(CustomerKind::Company, &edit).await?;
    let got = c.find_by_khid("WX1").await?.ok_or("gone")?;
    assert_eq!(
        (got.name.as_deref(), got.address.as_deref()),
        (Some("新名字"), Some("北京"))
    );
    let reqs = requests(&h, "/webapi/v3/sales").await?;
    let body = &reqs.first().ok_or("no webapi request")?["body"];
    for k in ["ord", "name", "sort", "sort1", "sort2", "person_name"] {
        assert!(body.get(k).is_some(), "{k} missing in {body}");
    }
    // 300: business failure, Msg verbatim.
    faults(
        &h,
        json!({"refuse": [{"field": "name", "value": "坏名字"}]}),
    )
    .await?;
    let e = c
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                name: "坏名字".into(),
                ..edit.clone()
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "保存失败：name=坏名字 不允许"),
        "{e:?}"
    );
    let e = c
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                ord: Some(999_999),
                ..edit.clone()
            },
        )
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "客户不存在或已被删除"),
        "{e:?}"
    );
    // 300 for a 跟进程度 the ERP does not have.
    let bad_level = ErpClient::new(ErpConfig {
        update_mode: UpdateMode::Webapi,
        follow_level: "9".into(),
        ..cfg_for(&h)
    })?;
    let e = bad_level.edit_customer(CustomerKind::Company, &edit).await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t == "跟进程度无效"),
        "{e:?}"
    );
    // 400: token invalid → one re-login, transparent.
    let before = stat(&h, "logins_ok").await?;
    faults(&h, json!({"expire_next": 1})).await?;
    c.edit_customer(CustomerKind::Company, &edit).await?;
    assert_eq!(stat(&h, "logins_ok").await?, before + 1);
    // 500: server error → retryable.
    faults(&h, json!({"server_exception_next": 1})).await?;
    let e = c.edit_customer(CustomerKind::Company, &edit).await;
    assert!(
        matches!(&e, Err(Error::ServerException(t)) if t.starts_with("服务器异常")),
        "{e:?}"
    );
    assert_eq!(class(&e), Some(RetryClass::Retry));
    h.shutdown().await?;
    Ok(())
}

// ------------------------------------------------------------------------------------------ transport

#[tokio::test]
async fn transport_faults() -> R {
    let h = start().await?;
    let c = ErpClient::new(ErpConfig {
        timeout_ms: 300,
        ..cfg_for(&h)
    })?;
    c.login().await?;
    let lf = ListFilter::default();

    faults(&h, json!({"error_next": 1})).await?;
    let e = c.list_customers(&lf).await;
    assert!(matches!(e, Err(Error::HttpStatus { status: 503 })), "{e:?}");
    assert_eq!(class(&e), Some(RetryClass::Retry));

    faults(&h, json!({"hang_next": 1, "hang_ms": 5000})).await?;
    let t0 = Instant::now();
    let e = c.list_customers(&lf).await;
    assert!(
        matches!(e, Err(Error::Timeout { timeout_ms: 300 })),
        "{e:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(class(&e), Some(RetryClass::Retry));

    faults(&h, json!({"malformed_next": 1})).await?;
    let e = c.list_customers(&lf).await;
    assert!(matches!(e, Err(Error::Protocol(_))), "{e:?}");
    assert_eq!(class(&e), Some(RetryClass::Retry));

    faults(&h, json!({"server_exception_next": 1})).await?;
    let e = c.list_customers(&lf).await;
    assert!(
        matches!(&e, Err(Error::ServerException(t)) if t.starts_with("服务器异常")),
        "{e:?}"
    );

    // Path-scoped rates: only list.asp fails.
    faults(
        &h,
        json!({"error_rate": 1.0, "error_status": 502, "paths": ["list.asp"]}),
    )
    .await?;
    assert!(matches!(
        c.list_customers(&lf).await,
        Err(Error::HttpStatus { status: 502 })
    ));
    assert!(c.allocate_ord(CustomerKind::Personal).await.is_ok());
    faults(&h, json!({"error_rate": 0.0, "paths": []})).await?;
    c.list_customers(&lf).await?;

    // Latency.
    faults(&h, json!({"latency_ms": 100})).await?;
    let t0 = Instant::now();
    c.list_customers(&lf).await?;
    assert!(t0.elapsed() >= Duration::from_millis(100));
    faults(&h, json!({"latency_ms": 0})).await?;

    // Connection refused → Connect: retryable, and certainly not processed by the ERP.
    let dead = ErpClient::new(ErpConfig {
        base_url: "http://127.0.0.1:1".into(),
        ..cfg_for(&h)
    })?;
    let e = dead.login().await;
    assert!(matches!(e, Err(Error::Connect(_))), "{e:?}");
    assert_eq!(class(&e), Some(RetryClass::Retry));
    assert!(e
        .as_ref()
        .err()
        .is_some_and(|e| !e.may_have_reached_server()));
    h.shutdown().await?;
    Ok(())
}

// ------------------------------------------------------------------------------------------ sessions

#[tokio::test]
async fn session_expiry_relogin_is_transparent() -> R {
    let h = start_with(SimConfig {
        session_ttl_ms: 300,
        ..SimConfig::default()
    })
    .await?;
    let c = client(&h)?;
    c.list_customers(&ListFilter::default()).await?;
    assert_eq!(c.login_count(), 1);
    // expire on the next call
    faults(&h, json!({"expire_next": 1})).await?;
    c.list_customers(&ListFilter::default()).await?;
    assert_eq!(c.login_count(), 2);
    assert_eq!(c.session_generation(), 2);
    // server-side ttl
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.allocate_ord(CustomerKind::Company).await?;
    assert_eq!(c.login_count(), 3);
    assert_eq!(stat(&h, "logins_ok").await?, 3);
    assert_eq!(stat(&h, "session_expired").await?, 2);
    // expired twice in a row → SessionExpired surfaces (Relogin class), no loop.
    faults(&h, json!({"expire_next": 2})).await?;
    let e = c.list_customers(&ListFilter::default()).await;
    assert!(matches!(e, Err(Error::SessionExpired)), "{e:?}");
    assert_eq!(class(&e), Some(RetryClass::Relogin));
    assert_eq!(stat(&h, "logins_ok").await?, 4);
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn concurrent_calls_on_expired_session_relogin_once() -> R {
    let h = start().await?;
    let c = client(&h)?;
    c.login().await?;
    faults(&h, json!({"expire_sessions_now": true, "latency_ms": 30})).await?;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.list_customers(&ListFilter::default()).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    assert_eq!(stat(&h, "logins_ok").await?, 2, "exactly one re-login");
    assert_eq!(c.login_count(), 2);
    let expired = stat(&h, "session_expired").await?;
    assert!((1..=10).contains(&expired), "{expired}");
    h.shutdown().await?;
    Ok(())
}

/// The fleet's session store of the tests: one `tokio::sync::Mutex` is the fleet-wide login lock,
/// the sessions are kept per account.
#[derive(Default)]
struct MemStore {
    lock: tokio::sync::Mutex<()>,
    sessions: Mutex<HashMap<String, (Secret, i64, Instant)>>,
    logins: AtomicU64,
}

impl MemStore {
    fn get(&self, account: &str) -> Option<StoredSession> {
        let g = match self.sessions.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(account).map(|(token, generation, at)| StoredSession {
            token: token.clone(),
            generation: *generation,
            age_ms: at.elapsed().as_millis() as u64,
        })
    }

    fn put(&self, account: &str, token: Secret) -> StoredSession {
        let mut g = match self.sessions.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let generation = g.get(account).map_or(1, |(_, gen, _)| gen + 1);
        g.insert(
            account.to_string(),
            (token.clone(), generation, Instant::now()),
        );
        StoredSession {
            token,
            generation,
            age_ms: 0,
        }
    }
}

impl SessionStore for MemStore {
    fn load<'a>(&'a self, account: &'a str) -> BoxFuture<'a, Result<Option<StoredSession>, Error>> {
        Box::pin(async move { Ok(self.get(account)) })
    }

    fn login_locked<'a>(
        &'a self,
        account: &'a str,
        stale: Option<i64>,
        max_age_ms: u64,
        login: BoxFuture<'a, Result<Secret, Error>>,
    ) -> BoxFuture<'a, Result<StoredSession, Error>> {
        Box::pin(async move {
            let _fleet = self.lock.lock().await;
            if let Some(s) = self.get(account) {
                if Some(s.generation) != stale && s.age_ms < max_age_ms {
                    return Ok(s);
                }
            }
            let token = login.await?;
            self.logins.fetch_add(1, Ordering::SeqCst);
            Ok(self.put(account, token))
        })
    }
}

/// `per_client` concurrent calls (lists, lookups, details) on each client; every result.
async fn burst(clients: &[ErpClient], per_client: usize, ord: i64) -> Vec<Result<(), Error>> {
    let mut tasks = Vec::new();
    for c in clients {
        for i in 0..per_client {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                match i % 3 {
                    0 => c.list_customers(&ListFilter::default()).await.map(|_| ()),
                    1 => c.find_by_khid("F1").await.and_then(|f| {
                        f.map(|_| ())
                            .ok_or_else(|| Error::Protocol("F1 not found".into()))
                    }),
                    _ => c.customer_detail(ord).await.and_then(|d| {
                        d.map(|_| ())
                            .ok_or_else(|| Error::Protocol("no detail".into()))
                    }),
                }
            }));
        }
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(match t.await {
            Ok(r) => r,
            Err(e) => Err(Error::Protocol(format!("task failed: {e}"))),
        });
    }
    out
}

#[tokio::test]
async fn fleet_shares_one_session() -> R {
    let single = || SimConfig {
        single_session: true,
        ..SimConfig::default()
    };
    let h = start_with(single()).await?;
    let ord = seed(&h, vec![seed_row("F1", "13800000001")]).await?[0];
    faults(&h, json!({"latency_ms": 20})).await?;
    let store = Arc::new(MemStore::default());
    let fleet: Vec<ErpClient> = (0..3)
        .map(|_| {
            let c = client(&h)?;
            c.share_session(store.clone());
            Ok(c)
        })
        .collect::<Result<_, Error>>()?;

    // Everybody starts at once: one login for the fleet.
    let r = burst(&fleet, 8, ord).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert_eq!(stat(&h, "logins_ok").await?, 1);
    // Every session dropped at once: still one login for the fleet.
    faults(&h, json!({"expire_sessions_now": true})).await?;
    let r = burst(&fleet, 8, ord).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert_eq!(stat(&h, "logins_ok").await?, 2);
    // One call finds its session expired: the one who saw it logs in, the others take it over.
    faults(&h, json!({"expire_next": 1})).await?;
    let r = burst(&fleet, 8, ord).await;
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    let logins = stat(&h, "logins_ok").await?;
    assert!(logins <= 3, "{logins}");
    assert_eq!(logins, 3);
    assert_eq!(
        stat(&h, "sessions_replaced").await?,
        0,
        "nobody logged anybody out"
    );
    assert_eq!(store.logins.load(Ordering::SeqCst), logins);
    assert_eq!(
        fleet.iter().map(ErpClient::login_count).sum::<u64>(),
        logins
    );
    assert_eq!(stat(&h, "live_sessions").await?, 1);
    h.shutdown().await?;

    // Contrast: the same three clients without the store log each other out.
    let h = start_with(single()).await?;
    let ord = seed(&h, vec![seed_row("F1", "13800000001")]).await?[0];
    let lone: Vec<ErpClient> = (0..3).map(|_| client(&h)).collect::<Result<_, Error>>()?;
    for c in &lone {
        c.list_customers(&ListFilter::default()).await?;
    }
    assert_eq!(
        (
            stat(&h, "logins_ok").await?,
            stat(&h, "sessions_replaced").await?
        ),
        (3, 2)
    );
    // The first one's session is gone: it logs in again and ends the third one's.
    lone[0].customer_detail(ord).await?;
    assert_eq!(lone[0].login_count(), 2);
    assert_eq!(
        (
            stat(&h, "logins_ok").await?,
            stat(&h, "sessions_replaced").await?
        ),
        (4, 3)
    );
    let _ = burst(&lone, 4, ord).await;
    let (logins, replaced) = (
        stat(&h, "logins_ok").await?,
        stat(&h, "sessions_replaced").await?,
    );
    assert!(logins >= 6, "the 2nd and 3rd must log in again: {logins}");
    assert_eq!(
        replaced,
        logins - 1,
        "every login ended the previous session"
    );
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn traced_exchanges_are_masked() -> R {
    let h = start_with(SimConfig {
        password: "pw-s3cret".into(),
        ..SimConfig::default()
    })
    .await?;
    let c = ErpClient::new(ErpConfig {
        password: "pw-s3cret".into(),
        ..cfg_for(&h)
    })?;
    let t = c.traced();
    t.save_customer(
        CustomerKind::Personal,
        &personal("赵六", "WX9", "13812345678"),
    )
    .await?;
    let ex = t.take_exchanges();
    // login, allocate, save, verify (details)
    assert_eq!(ex.len(), 4, "{ex:#?}");
    let all = serde_json::to_string(&ex)?;
    assert!(!all.contains("13812345678"), "{all}");
    assert!(all.contains("138****5678"));
    assert!(!all.contains("pw-s3cret"));
    assert!(!format!("{c:?}").contains("pw-s3cret"));
    assert_eq!(ex[0].response["header"]["session"], json!("<redacted>"));
    for e in &ex[1..] {
        assert_eq!(e.request["session"], json!("<redacted>"), "{e:?}");
        assert_eq!(
            e.response["header"]["session"],
            json!("<redacted>"),
            "{e:?}"
        );
    }
    assert_eq!(ex[2].cmdkey.as_deref(), Some("__sys_dosave"));
    assert!(ex[2].endpoint.ends_with("add.asp?intsort=2"));
    assert!(ex[3].endpoint.ends_with("add.asp?edit=1"));
    assert_eq!(ex[2].response["body"]["message"]["text"], "保存成功");
    assert!(ex
        .iter()
        .all(|e| e.http_status == Some(200) && e.error.is_none()));
    assert!(t.take_exchanges().is_empty());
    assert!(
        c.take_exchanges().is_empty(),
        "the untraced client records nothing"
    );
    // failed exchanges are recorded too
    faults(&h, json!({"error_next": 1})).await?;
    assert!(t.allocate_ord(CustomerKind::Personal).await.is_err());
    let ex = t.take_exchanges();
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].http_status, Some(503));
    assert!(ex[0].error.is_some());
    // …and the re-login retry.
    faults(&h, json!({"expire_next": 1})).await?;
    t.list_customers(&ListFilter::default()).await?;
    let ex = t.take_exchanges();
    assert_eq!(ex.len(), 3, "expired call, login, repeated call: {ex:#?}");
    assert_eq!(ex[0].error.as_deref(), Some("ERP session expired"));
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn snapshot_roundtrip() -> R {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sim.json");
    let h = start_with(SimConfig {
        snapshot: Some(path.clone()),
        ..SimConfig::default()
    })
    .await?;
    let c = client(&h)?;
    let ord = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?
        .ord;
    h.shutdown().await?;
    assert!(path.exists());
    let h2 = start_with(SimConfig {
        snapshot: Some(path.clone()),
        ..SimConfig::default()
    })
    .await?;
    let c2 = client(&h2)?;
    let found = c2.find_by_khid("WX1").await?.ok_or("not restored")?;
    assert_eq!(found.ord, ord);
    assert_eq!(c2.list_persons(ord).await?.len(), 1);
    let next = c2.allocate_ord(CustomerKind::Company).await?;
    assert!(next > ord);
    h2.shutdown().await?;
    Ok(())
}

/// The one test about the spec's simplified shapes (`result` flags, numeric cells, exact filters):
/// the client still reads them.
#[tokio::test]
async fn lenient_spec_shapes_still_parse() -> R {
    let h = start_with(SimConfig {
        lenient: true,
        ..SimConfig::default()
    })
    .await?;
    let c = client(&h)?;
    let res = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?;
    assert!(res.message.contains("保存成功"));
    assert_eq!(res.verified.khid.as_deref(), Some("WX1"));
    assert_eq!(c.find_by_khid("WX1").await?.map(|x| x.ord), Some(res.ord));
    assert!(c.find_by_khid("WX").await?.is_none());
    assert_eq!(c.find_by_mobile("13800000001").await?.len(), 1);
    assert!(c.customer_detail(res.ord).await?.is_some());
    h.shutdown().await?;
    Ok(())
}
