//! The operator page end to end, in headless Chromium driven over the DevTools protocol (real
//! mouse clicks and typing): contacts rejected at admission are listed with their reasons; a
//! click without signing in is refused and changes nothing; a wrong token is refused; signed in,
//! a search by mobile finds the contact with its mobile masked, "sync now" on a contact whose
//! sync failed makes it synced — on the page and in SQL — and the action is audited with the
//! operator's name; "retry" revives the dead row and "roll back" undoes the create in the ERP
//! (the sidecar's role may run both); requests without the CSRF token or from another origin are refused. Times
//! are shown at the configured offset, labelled. The sidecar runs as a role granted only
//! `erp_sync_worker`.

mod sync_util;

use anyhow::{Context, Result};
use e2e::browser::Browser;
use e2e::free_port;
use serde_json::json;
use std::time::Duration;
use sync_util::{mobile, NewContact, World};

const TOKEN: &str = "op-token-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

fn state_in_sql(w: &World, id: i64) -> Result<String> {
    let rows = w.query(
        "SELECT sync_state FROM erp_sync.contact_status WHERE contact_id::text = $1",
        &[&id.to_string()],
    )?;
    Ok(rows
        .first()
        .context("contact in contact_status")?
        .try_get(0)?)
}

#[test]
fn operator_searches_syncs_now_and_is_audited() -> Result<()> {
    let w = World::start()?;
    let listen = format!("127.0.0.1:{}", free_port());
    // The ERP refuses this name: the contact's create fails and its row ends dead.
    w.faults(json!({"refuse": [{"field": "name", "value": "待修复客户", "text": "保存失败：客户名称不允许"}]}))?;
    let s = w.sidecar(
        "op1",
        &[
            ("ERP_SYNC_HTTP_LISTEN_ADDR", listen.as_str()),
            ("ERP_SYNC_HTTP_ADMIN_TOKEN", TOKEN),
        ],
    )?;
    let failed = w.contact(&NewContact::personal("待修复客户", &mobile(701)))?;
    let rejected = w.contact(&NewContact {
        verified: false,
        ..NewContact::personal("未验证客户", &mobile(702))
    })?;
    w.settle(WAIT, &[&s])?;
    assert_eq!(state_in_sql(&w, failed)?, "failed");
    assert_eq!(state_in_sql(&w, rejected)?, "rejected");
    let customer_rows = format!(
        "SELECT count(*) FROM erp_sync.outbox WHERE contact_id::text = '{failed}' AND kind = 'customer'"
    );
    let outbox_before = w.count(&customer_rows)?;

    let base = format!("http://{listen}");
    let mut b = Browser::launch()?;
    b.navigate(&format!("{base}/"))?;
    assert!(
        b.wait_for("document.body.dataset.loaded === '1'", WAIT)?,
        "status page did not load: {}",
        s.proc.output()
    );

    // ---- rejected contacts are listed with their reasons; times are labelled with the offset ----
    assert_eq!(b.text("#rejected-count")?.as_deref(), Some("1"));
    let reasons = b
        .text(&format!("#rejections-table tr[data-contact='{rejected}']"))?
        .context("the rejected contact is listed")?;
    assert!(
        reasons.contains("phone_verified: phone not verified"),
        "{reasons}"
    );
    assert_eq!(b.text(".tz-label")?.as_deref(), Some("UTC+08:00"));

    // ---- search by mobile (another notation): found, mobile masked ----
    b.type_into("#search-q", &format!("+86 138-0000-0{}", 701))?;
    b.click("#search-btn")?;
    let row = format!("#search-table tr[data-contact='{failed}']");
    assert!(
        b.wait_for(&format!("!!document.querySelector(\"{row}\")"), WAIT)?,
        "search found nothing"
    );
    let shown = b.text(&row)?.unwrap_or_default();
    assert!(
        shown.contains("138****0701"),
        "masked mobile shown: {shown}"
    );
    assert!(shown.contains("failed"), "{shown}");
    let dom = b.eval("document.body.innerHTML")?;
    assert!(
        !dom.as_str().unwrap_or("").contains(&mobile(701)),
        "an unmasked mobile on the page"
    );

    // ---- a click without signing in is refused and changes nothing ----
    w.faults(json!({"refuse": []}))?;
    let sync_btn = format!("{row} button[data-action='sync_now']");
    b.click(&sync_btn)?;
    assert!(b.wait_for("document.body.dataset.lastAction === 'refused'", WAIT)?);
    let msg = b.text("#action-msg")?.unwrap_or_default();
    assert!(msg.contains("401") && msg.contains("sign in"), "{msg}");
    assert_eq!(state_in_sql(&w, failed)?, "failed");
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.operator_actions")?,
        0
    );

    // ---- a wrong token is refused ----
    b.type_into("#login-operator", "张三")?;
    b.type_into("#login-token", "not-the-token-at-all")?;
    b.click("#login-btn")?;
    assert!(b.wait_for(
        "document.getElementById('action-msg').textContent.includes('sign-in refused (401)')",
        WAIT
    )?);
    assert!(b.wait_for("document.getElementById('who-box').hidden", WAIT)?);

    // ---- signed in: sync now → synced, on the page and in SQL, audited ----
    b.type_into("#login-token", TOKEN)?;
    b.click("#login-btn")?;
    assert!(
        b.wait_for(
            "document.getElementById('who').textContent === '张三'",
            WAIT
        )?,
        "sign-in did not take: {:?}",
        b.text("#action-msg")?
    );
    b.click(&sync_btn)?;
    assert!(
        b.wait_for("document.body.dataset.lastAction === 'ok'", WAIT)?,
        "{:?}",
        b.text("#action-msg")?
    );
    // the page re-reads after the action; the sidecar needs a moment for the ERP call
    let synced = format!("document.querySelector(\"{row}\")?.dataset.state === 'synced'");
    let mut on_page = false;
    for _ in 0..30 {
        b.click("#search-btn")?;
        if b.wait_for(&synced, Duration::from_secs(1))? {
            on_page = true;
            break;
        }
    }
    assert!(
        on_page,
        "the row never showed synced: {:?} / {}",
        b.text(&row)?,
        s.proc.output()
    );
    assert_eq!(state_in_sql(&w, failed)?, "synced");
    assert!(
        w.erp_ord(failed)?.is_some(),
        "the contact has its ERP customer now"
    );
    assert_eq!(
        w.count(&customer_rows)?,
        outbox_before + 1,
        "sync now queued exactly one customer row (its create then queues the assignment): {:?}",
        w.rows_of(failed)?
    );
    let audit = w.query(
        "SELECT operator, action, contact_id, ok, result FROM erp_sync.operator_actions ORDER BY id",
        &[],
    )?;
    assert_eq!(audit.len(), 1, "one audited action");
    let (op, action, contact, ok, result): (String, String, Option<String>, bool, Option<String>) = (
        audit[0].get(0),
        audit[0].get(1),
        audit[0].get(2),
        audit[0].get(3),
        audit[0].get(4),
    );
    assert_eq!(
        (op.as_str(), action.as_str(), contact, ok),
        ("张三", "sync_now", Some(failed.to_string()), true)
    );
    assert_eq!(result.as_deref(), Some("queued"));

    // ---- the timeline shows the rows, the ERP ord and the audit ----
    b.click(&format!(
        "{row} button[data-contact='{failed}']:not([data-action])"
    ))?;
    assert!(b.wait_for(
        &format!("document.body.dataset.timeline === '{failed}'"),
        WAIT
    )?);
    let tl = b.text("#timeline")?.unwrap_or_default();
    assert!(
        tl.contains("张三")
            && tl.contains("sync_now")
            && tl.contains("dead")
            && tl.contains("done"),
        "{tl}"
    );
    let shot = std::path::Path::new("/tmp/erp_sync_operator.png");
    assert!(b.screenshot(shot)? > 10_000, "screenshot");

    // ---- retry the dead row, roll back the create: the sidecar's role may do both ----
    let act = |b: &mut Browser, selector: &str| -> Result<String> {
        b.eval("delete document.body.dataset.lastAction")?;
        b.click(selector)?;
        assert!(
            b.wait_for("document.body.dataset.lastAction === 'ok'", WAIT)?,
            "{selector}: {:?}",
            b.text("#action-msg")?
        );
        Ok(b.text("#action-msg")?.unwrap_or_default())
    };
    let msg = act(&mut b, "#tl-outbox button[data-action='retry']")?;
    assert!(msg.contains("1 dead row(s) back to pending"), "{msg}");
    w.settle(WAIT, &[&s])?;
    assert_eq!(
        w.count(&format!("SELECT count(*) FROM erp_sync.outbox WHERE contact_id::text = '{failed}' AND status = 'dead'"))?,
        0
    );
    let create = w.count(&format!(
        "SELECT id FROM erp_sync.sync_log WHERE contact_id::text = '{failed}' AND action = 'create' AND outcome = 'success'"
    ))?;
    b.click(&format!(
        "{row} button[data-contact='{failed}']:not([data-action])"
    ))?;
    assert!(b.wait_for(
        &format!("!!document.querySelector(\"#tl-log button[data-log='{create}']\")"),
        WAIT
    )?);
    let msg = act(&mut b, &format!("#tl-log button[data-log='{create}']"))?;
    assert!(msg.contains("rollback queued"), "{msg}");
    w.settle(WAIT, &[&s])?;
    assert_eq!(
        w.count(&format!("SELECT count(*) FROM erp_sync.sync_log WHERE id = {create} AND rolled_back_at IS NOT NULL"))?,
        1,
        "the create was rolled back: {}",
        s.proc.output()
    );
    assert!(
        w.erp_by_khid(&format!("WX{failed}"))?.is_empty(),
        "the ERP customer is gone"
    );

    // ---- without the CSRF token, or from another origin: refused ----
    let cookie = b
        .call("Network.getAllCookies", json!({}))?
        .get("cookies")
        .and_then(|c| c.as_array())
        .and_then(|c| c.iter().find(|c| c["name"] == "erp_sync_session"))
        .and_then(|c| c["value"].as_str())
        .map(str::to_string)
        .context("the session cookie")?;
    let http = reqwest::blocking::Client::new();
    let body = json!({"action": "sync_now", "contact_id": failed.to_string()});
    let r = http
        .post(format!("{base}/api/actions"))
        .header("Cookie", format!("erp_sync_session={cookie}"))
        .json(&body)
        .send()?;
    assert_eq!(r.status().as_u16(), 403, "no CSRF token");
    let csrf = b.eval("SESSION.csrf")?.as_str().unwrap_or("").to_string();
    let r = http
        .post(format!("{base}/api/actions"))
        .header("Cookie", format!("erp_sync_session={cookie}"))
        .header("X-CSRF-Token", &csrf)
        .header("Origin", "http://evil.example")
        .json(&body)
        .send()?;
    assert_eq!(r.status().as_u16(), 403, "another origin");
    assert_eq!(
        w.count("SELECT count(*) FROM erp_sync.operator_actions")?,
        3,
        "sync_now, retry, rollback; refused requests did nothing"
    );
    drop(s);
    Ok(())
}

#[test]
fn without_an_admin_token_the_page_is_read_only() -> Result<()> {
    let w = World::start()?;
    let listen = format!("127.0.0.1:{}", free_port());
    let s = w.sidecar("op2", &[("ERP_SYNC_HTTP_LISTEN_ADDR", listen.as_str())])?;
    let id = w.contact(&NewContact::personal("只读客户", &mobile(711)))?;
    w.settle(WAIT, &[&s])?;
    let base = format!("http://{listen}");
    let http = reqwest::blocking::Client::new();
    let session: serde_json::Value = http.get(format!("{base}/api/session")).send()?.json()?;
    assert_eq!(session["actions_enabled"], false);
    let r = http
        .post(format!("{base}/api/login"))
        .json(&json!({"token": "", "operator": "x"}))
        .send()?;
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .post(format!("{base}/api/actions"))
        .json(&json!({"action": "sync_now", "contact_id": id.to_string()}))
        .send()?;
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text()?.contains("http.admin_token"));
    // reading still works, mobiles masked
    let found: serde_json::Value = http
        .get(format!("{base}/api/contacts"))
        .query(&[("q", "只读")])
        .send()?
        .json()?;
    assert_eq!(found["contacts"][0]["contact_id"], id.to_string());
    assert_eq!(found["contacts"][0]["mobile"], "138****0711");
    drop(s);
    Ok(())
}
