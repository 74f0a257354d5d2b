//! The ERP client against the simulator over real HTTP (loopback, port 0).

use std::time::Duration;

use serde_json::{json, Value};
use sidecar::erp::{
    Assignment, CustomerFields, CustomerKind, ErpClient, ErpConfig, Followup, ListFilter, Person,
    UpdateMode,
};
use sidecar::sim::{self, SimConfig, SimHandle};
use sidecar::{Error, RetryClass};

type R = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn start() -> Result<SimHandle, Error> {
    start_with(SimConfig {
        port: 0,
        seed: Some(7),
        ..SimConfig::default()
    })
    .await
}

async fn start_with(cfg: SimConfig) -> Result<SimHandle, Error> {
    sim::spawn(cfg).await
}

fn cfg_for(h: &SimHandle) -> ErpConfig {
    ErpConfig {
        base_url: h.base_url(),
        username: "demo".into(),
        password: "demo".into(),
        timeout_ms: 5_000,
        relogin_backoff_ms: 200,
        ..ErpConfig::default()
    }
}

fn client(h: &SimHandle) -> Result<ErpClient, Error> {
    ErpClient::new(cfg_for(h))
}

async fn admin_post(h: &SimHandle, path: &str, body: Value) -> Result<Value, reqwest::Error> {
    let r = reqwest::Client::new()
        .post(format!("{}{}", h.base_url(), path))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    if r.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    r.json().await
}

async fn admin_get(h: &SimHandle, path: &str) -> Result<Value, reqwest::Error> {
    reqwest::Client::new()
        .get(format!("{}{}", h.base_url(), path))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

async fn faults(h: &SimHandle, patch: Value) -> Result<Value, reqwest::Error> {
    admin_post(h, "/_sim/faults", patch).await
}

async fn stat(h: &SimHandle, key: &str) -> Result<u64, reqwest::Error> {
    Ok(admin_get(h, "/_sim/stats").await?[key]
        .as_u64()
        .unwrap_or(u64::MAX))
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

#[tokio::test]
async fn login_ok_bad_and_lockout() -> R {
    let h = start().await?;
    let good = client(&h)?;
    good.login().await?;
    assert_eq!(good.login_count(), 1);

    let bad = ErpClient::new(ErpConfig {
        password: "wrong".into(),
        ..cfg_for(&h)
    })?;
    let e = bad.list_customers(&ListFilter::default()).await;
    assert!(
        matches!(&e, Err(Error::LoginFailed(m)) if m.contains("密码")),
        "{e:?}"
    );
    assert_eq!(
        e.as_ref().err().map(Error::retry_class),
        Some(RetryClass::Fatal)
    );
    // A second call inside the backoff does not hit the server.
    assert!(matches!(
        bad.list_customers(&ListFilter::default()).await,
        Err(Error::LoginFailed(_))
    ));
    assert_eq!(stat(&h, "logins_failed").await?, 1);
    // After the backoff, one more automatic attempt; then automatic logins stop (max_login_failures 2).
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(bad.list_customers(&ListFilter::default()).await.is_err());
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
    h.shutdown().await?;
    Ok(())
}

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
    let v = res.verified.ok_or("not verified")?;
    assert_eq!(v.khid.as_deref(), Some("WX1"));

    // Personal, ord allocated implicitly, no khid: the ERP generates one.
    let p = CustomerFields {
        name: "李四".into(),
        mobile: Some("13900000002".into()),
        ..CustomerFields::default()
    };
    let res2 = c.save_customer(CustomerKind::Personal, &p).await?;
    assert!(res2.ord > ord);
    let gen_khid = res2
        .verified
        .as_ref()
        .and_then(|v| v.khid.clone())
        .ok_or("no khid")?;
    assert_eq!(gen_khid, format!("KH{}", res2.ord));

    let found = c.find_by_khid("WX1").await?.ok_or("not found")?;
    assert_eq!(found.ord, ord);
    assert_eq!(found.name.as_deref(), Some("公司WX1"));
    assert_eq!(found.mobile.as_deref(), Some("13800000001"));
    assert_eq!(found.weixin_acc.as_deref(), Some("wx_WX1"));
    assert_eq!(found.address.as_deref(), Some("上海"));
    assert!(found.add_date.is_some());
    assert!(c.find_by_khid("WX404").await?.is_none());
    assert_eq!(c.find_by_mobile("13900000002").await?.len(), 1);

    let d = c.customer_detail(ord).await?.ok_or("no detail")?;
    assert_eq!(d.ord, ord);
    assert_eq!(d.get("khid"), Some("WX1"));
    assert_eq!(d.get("person_name"), Some("张三"));
    assert!(c.customer_detail(999_999).await?.is_none());

    // What the ERP saw: the spec's ids, intsort in the query.
    let reqs = admin_get(&h, "/_sim/requests?path=intsort=1").await?;
    let last = reqs.as_array().and_then(|a| a.last()).ok_or("no request")?;
    assert_eq!(last["cmdkey"], "__sys_dosave");
    assert_eq!(last["datas"]["weixinAcc"], "wx_WX1");
    assert_eq!(last["datas"]["jz"], "175");
    assert_eq!(last["datas"]["ord"], ord);

    // Update through __sys_dosave with the existing ord.
    c.edit_customer(
        CustomerKind::Company,
        &CustomerFields {
            ord: Some(ord),
            name: "公司WX1改".into(),
            ..CustomerFields::default()
        },
    )
    .await?;
    assert_eq!(
        c.find_by_khid("WX1").await?.and_then(|x| x.name),
        Some("公司WX1改".into())
    );
    // Supplement: only the WeChat id; the empty name is not sent, the stored one stays.
    c.edit_customer(
        CustomerKind::Company,
        &CustomerFields {
            ord: Some(ord),
            weixin_acc: Some("wx_new".into()),
            ..CustomerFields::default()
        },
    )
    .await?;
    let after = c.find_by_khid("WX1").await?.ok_or("gone")?;
    assert_eq!(
        (after.name.as_deref(), after.weixin_acc.as_deref()),
        (Some("公司WX1改"), Some("wx_new"))
    );
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn business_refusals() -> R {
    let h = start().await?;
    let c = client(&h)?;
    c.save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?;
    // Duplicate mobile.
    let e = c
        .save_customer(CustomerKind::Company, &company("WX2", "13800000001"))
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t.contains("手机号码已存在")),
        "{e:?}"
    );
    assert_eq!(
        e.as_ref().err().map(Error::retry_class),
        Some(RetryClass::Fatal)
    );
    // Duplicate khid.
    let e = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000009"))
        .await;
    assert!(
        matches!(&e, Err(Error::Business(t)) if t.contains("客户编号")),
        "{e:?}"
    );
    // Company without a contact person.
    let e = c
        .save_customer(
            CustomerKind::Company,
            &CustomerFields {
                person_name: None,
                ..company("WX3", "13800000003")
            },
        )
        .await;
    assert!(matches!(&e, Err(Error::Business(_))), "{e:?}");
    // Refusal rule set at run time.
    faults(
        &h,
        json!({"refuse": [{"field": "ly", "value": "999", "text": "客户来源不允许"}]}),
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
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn list_paging_sorting_filters() -> R {
    let h = start().await?;
    let seeds: Vec<Value> = (0..45)
        .map(|i| json!({"intsort": 1 + (i % 2), "date1": format!("2025-01-{:02} 10:00:00", 1 + i % 28),
            "fields": {"name": format!("客户{i:02}"), "khid": format!("WX{i}"), "ly": if i % 3 == 0 {"171"} else {"5"},
                       "mobile": format!("138{:08}", i)}}))
        .collect();
    let ords = admin_post(&h, "/_sim/customers", Value::Array(seeds)).await?;
    assert_eq!(ords["ords"].as_array().map(Vec::len), Some(45));
    let c = client(&h)?;

    let p1 = c.list_customers(&ListFilter::default()).await?;
    assert_eq!(
        (
            p1.page.pageindex,
            p1.page.pagesize,
            p1.page.pagecount,
            p1.page.recordcount
        ),
        (1, 20, 3, 45)
    );
    assert_eq!(p1.rows.len(), 20);
    assert!(
        p1.rows.windows(2).all(|w| w[0].ord > w[1].ord),
        "default order -ord"
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
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    let ly = c
        .list_customers(&ListFilter {
            ly: Some("171".into()),
            pagesize: 100,
            ..ListFilter::default()
        })
        .await?;
    assert_eq!(ly.rows.len(), 15);
    assert!(ly.rows.iter().all(|r| r.ly.as_deref() == Some("171")));
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

    // Raw shapes: positional rows of strings; empty result has empty cols.
    let session_body =
        |cmd: &str, datas: Value| json!({"session": "x", "cmdkey": cmd, "datas": datas});
    let raw: Value = reqwest::Client::new()
        .post(format!(
            "{}/sysa/mobilephone/salesmanage/custom/list.asp",
            h.base_url()
        ))
        .json(&session_body("refresh", json!([])))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        raw["header"]["status"]
            .as_i64()
            .or_else(|| raw["header"]["status"]
                .as_str()
                .and_then(|s| s.parse().ok())),
        Some(1)
    );
    c.login().await?;
    let empty = c
        .list_customers(&ListFilter {
            khid: Some("nope".into()),
            ..ListFilter::default()
        })
        .await?;
    assert!(empty.rows.is_empty());
    assert_eq!(empty.page.recordcount, 0);
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn persons_followups_assignment_delete() -> R {
    let h = start().await?;
    let c = client(&h)?;
    let ord = c
        .save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?
        .ord;

    let pid = c
        .add_person(
            ord,
            &Person {
                name: "王五".into(),
                mobile: Some("13700000000".into()),
                phone: None,
                email: Some("w@x.y".into()),
            },
        )
        .await?;
    assert!(pid.is_some());
    let persons = c.list_persons(ord).await?;
    assert_eq!(persons.len(), 1);
    assert_eq!(persons[0].name.as_deref(), Some("王五"));
    assert_eq!(persons[0].customer_ord, Some(ord));
    assert!(c.list_persons(ord + 1000).await?.is_empty());
    assert!(matches!(
        c.add_person(
            999_999,
            &Person {
                name: "x".into(),
                ..Person::default()
            }
        )
        .await,
        Err(Error::Business(_))
    ));

    c.add_followup(
        ord,
        &Followup {
            template_id: 106,
            content: "很好，发合同".into(),
            date: "2025-10-19 12:00:00".into(),
            sort: Some(481),
        },
    )
    .await?;
    let f = admin_get(&h, "/_sim/followups").await?;
    assert_eq!(f[0]["ord"], ord);
    assert_eq!(f[0]["fields"]["intro"], "106");
    assert_eq!(f[0]["fields"]["c1"], "很好，发合同");
    assert_eq!(f[0]["fields"]["date1"], "2025-10-19 12:00:00");
    assert!(
        f[0]["fields"].get("sort").is_none(),
        "sort only when configured"
    );
    assert!(matches!(
        c.add_followup(
            999_999,
            &Followup {
                template_id: 1,
                content: "x".into(),
                date: "2025-01-01 00:00:00".into(),
                sort: None
            }
        )
        .await,
        Err(Error::Business(_))
    ));

    c.assign(ord, &Assignment::To("u42".into())).await?;
    assert_eq!(
        c.find_by_khid("WX1").await?.and_then(|x| x.sales_person),
        Some("u42".into())
    );
    c.assign(ord, &Assignment::Public).await?;
    let a = admin_get(&h, "/_sim/assignments").await?;
    assert_eq!(a.as_array().map(Vec::len), Some(2));
    assert_eq!(a[1]["member1"], "1");
    assert!(matches!(
        c.assign(ord, &Assignment::To(String::new())).await,
        Err(Error::Business(_))
    ));

    assert!(c.delete_customer(ord).await?);
    assert!(!c.delete_customer(ord).await?);
    assert!(c.find_by_khid("WX1").await?.is_none());
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn webapi_edit_codes() -> R {
    let h = start().await?;
    let c = ErpClient::new(ErpConfig {
        update_mode: UpdateMode::Webapi,
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
    c.edit_customer(CustomerKind::Company, &edit).await?;
    let got = c.find_by_khid("WX1").await?.ok_or("gone")?;
    assert_eq!(
        (got.name.as_deref(), got.address.as_deref()),
        (Some("新名字"), Some("北京"))
    );
    let reqs = admin_get(&h, "/_sim/requests?path=/webapi/v3/sales").await?;
    let body = &reqs[0]["body"];
    for k in ["ord", "name", "sort", "sort1", "sort2", "person_name"] {
        assert!(body.get(k).is_some(), "{k} missing in {body}");
    }
    // 300: business failure.
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
    assert!(matches!(&e, Err(Error::Business(_))), "{e:?}");
    let e = c
        .edit_customer(
            CustomerKind::Company,
            &CustomerFields {
                ord: Some(999_999),
                ..edit.clone()
            },
        )
        .await;
    assert!(matches!(&e, Err(Error::Business(_))), "{e:?}");
    // 400: token invalid → one re-login, transparent.
    let before = stat(&h, "logins_ok").await?;
    faults(&h, json!({"expire_next": 1})).await?;
    c.edit_customer(CustomerKind::Company, &edit).await?;
    assert_eq!(stat(&h, "logins_ok").await?, before + 1);
    // 500: server error → retryable.
    faults(&h, json!({"server_exception_next": 1})).await?;
    let e = c.edit_customer(CustomerKind::Company, &edit).await;
    assert!(matches!(&e, Err(Error::ServerException(_))), "{e:?}");
    assert_eq!(
        e.as_ref().err().map(Error::retry_class),
        Some(RetryClass::Retry)
    );
    h.shutdown().await?;
    Ok(())
}

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
    assert_eq!(
        e.as_ref().err().map(Error::retry_class),
        Some(RetryClass::Retry)
    );

    faults(&h, json!({"hang_next": 1, "hang_ms": 5000})).await?;
    let t0 = std::time::Instant::now();
    let e = c.list_customers(&lf).await;
    assert!(
        matches!(e, Err(Error::Timeout { timeout_ms: 300 })),
        "{e:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(
        e.as_ref().err().map(Error::retry_class),
        Some(RetryClass::Retry)
    );

    faults(&h, json!({"malformed_next": 1})).await?;
    let e = c.list_customers(&lf).await;
    assert!(matches!(e, Err(Error::Protocol(_))), "{e:?}");

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

    // Latency.
    faults(&h, json!({"latency_ms": 100})).await?;
    let t0 = std::time::Instant::now();
    c.list_customers(&lf).await?;
    assert!(t0.elapsed() >= Duration::from_millis(100));
    faults(&h, json!({"latency_ms": 0})).await?;

    // Connection refused → Transport.
    let dead = ErpClient::new(ErpConfig {
        base_url: "http://127.0.0.1:1".into(),
        ..cfg_for(&h)
    })?;
    let e = dead.login().await;
    assert!(matches!(e, Err(Error::Transport(_))), "{e:?}");
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
    // Without a khid the read-back goes through the details.
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
    assert!(matches!(&e, Err(Error::Protocol(_))), "{e:?}");
    // The retry succeeds.
    c.save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?;
    assert_eq!(stat(&h, "not_persisted").await?, 2);
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn session_expiry_relogin_is_transparent() -> R {
    let h = start_with(SimConfig {
        port: 0,
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
    // server-side ttl
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.allocate_ord(CustomerKind::Company).await?;
    assert_eq!(c.login_count(), 3);
    assert_eq!(stat(&h, "logins_ok").await?, 3);
    // expired twice in a row → SessionExpired surfaces (Relogin class), no loop.
    faults(&h, json!({"expire_next": 2})).await?;
    let e = c.list_customers(&ListFilter::default()).await;
    assert!(matches!(e, Err(Error::SessionExpired)), "{e:?}");
    assert_eq!(
        e.as_ref().err().map(Error::retry_class),
        Some(RetryClass::Relogin)
    );
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

#[tokio::test]
async fn traced_exchanges_are_masked() -> R {
    let h = start_with(SimConfig {
        port: 0,
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
        &CustomerFields {
            name: "赵六".into(),
            khid: Some("WX9".into()),
            mobile: Some("13812345678".into()),
            ..CustomerFields::default()
        },
    )
    .await?;
    let ex = t.take_exchanges();
    // login, allocate, save, verify (list)
    assert_eq!(ex.len(), 4, "{ex:#?}");
    let all = serde_json::to_string(&ex)?;
    assert!(!all.contains("13812345678"), "{all}");
    assert!(all.contains("138****5678"));
    assert!(!all.contains("pw-s3cret"));
    assert!(!format!("{c:?}").contains("pw-s3cret"));
    let session_like = ex[0].response["header"]["session"].clone();
    assert_eq!(session_like, json!("<redacted>"));
    assert_eq!(ex[2].cmdkey.as_deref(), Some("__sys_dosave"));
    assert!(ex[2].endpoint.ends_with("add.asp?intsort=2"));
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
    h.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn snapshot_roundtrip() -> R {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sim.json");
    let h = start_with(SimConfig {
        port: 0,
        snapshot: Some(path.clone()),
        ..SimConfig::default()
    })
    .await?;
    let c = client(&h)?;
    c.save_customer(CustomerKind::Company, &company("WX1", "13800000001"))
        .await?;
    h.shutdown().await?;
    assert!(path.exists());
    let h2 = start_with(SimConfig {
        port: 0,
        snapshot: Some(path.clone()),
        ..SimConfig::default()
    })
    .await?;
    let c2 = client(&h2)?;
    assert!(c2.find_by_khid("WX1").await?.is_some());
    let next = c2.allocate_ord(CustomerKind::Company).await?;
    assert!(next > 10_001);
    h2.shutdown().await?;
    Ok(())
}
