//! One handler per outbox kind. A handler reads the CURRENT platform state through the extension's
//! payload functions, talks to the ERP through the rate/concurrency-limited context, and returns a
//! verdict plus the effects to write back (sync_log entries, customer_link changes) — the write-back
//! itself happens in one transaction in [`super::worker`].

use std::time::Instant;

use serde_json::{json, Value};

use super::Ctx;
use crate::config::InDoubtFollowups;
use crate::db::{self, Effects, LinkChange, LinkWrite, LogEntry, OutboxRow, RowContext};
use crate::erp::{Assignment, CustomerKind, ErpClient, Exchange, Followup};
use crate::error::{Error, Result};
use crate::mapping::{self, ContactView};
use crate::telemetry::masked;

/// How a row ends when the handler returns normally.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Done,
    /// Nothing to do, with the reason (kept in `outbox.last_error`).
    Skipped(String),
    /// Cannot ever succeed as things are, with the reason.
    Dead(String),
    /// A follow-up that was perhaps sent (its reply was lost): waits for a person, with the reason.
    InDoubt(String),
}

/// Process one row; `rc` is what [`db::row_context`] read for it.
pub async fn process(
    ctx: &Ctx,
    row: &OutboxRow,
    rc: RowContext,
    fx: &mut Effects,
) -> Result<Verdict> {
    match row.kind.as_str() {
        "customer" => customer(ctx, row, rc, fx).await,
        "followup" => followup(ctx, row, rc, fx).await,
        "assign" => assign(ctx, row, rc, fx).await,
        "rollback" => rollback(ctx, row, fx).await,
        other => Ok(Verdict::Dead(format!("unknown outbox kind {other:?}"))),
    }
}

/// sync_log request/response from the exchanges of one step.
pub fn exchanges_json(ex: &[Exchange]) -> (Option<Value>, Option<Value>, i32) {
    if ex.is_empty() {
        return (None, None, 0);
    }
    let req = ex
        .iter()
        .map(|e| json!({"endpoint": e.endpoint, "cmdkey": e.cmdkey, "body": e.request}))
        .collect::<Vec<_>>();
    let resp = ex
        .iter()
        .map(|e| {
            json!({"endpoint": e.endpoint, "http_status": e.http_status, "body": e.response,
                   "error": e.error, "elapsed_ms": e.elapsed_ms})
        })
        .collect::<Vec<_>>();
    let ms: u64 = ex.iter().map(|e| e.elapsed_ms).sum();
    (
        Some(Value::Array(req)),
        Some(Value::Array(resp)),
        i32::try_from(ms).unwrap_or(i32::MAX),
    )
}

/// Record one ERP step (success or failure) from the traced client's exchanges.
fn log_step(
    fx: &mut Effects,
    t: &ErpClient,
    action: &'static str,
    erp_ord: Option<i64>,
    started: Instant,
    err: Option<&Error>,
) {
    let ex = t.take_exchanges();
    let (request, response, mut ms) = exchanges_json(&ex);
    if ex.is_empty() {
        ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    }
    fx.logs.push(LogEntry {
        action,
        erp_ord,
        request,
        response,
        outcome: if err.is_some() { "failed" } else { "success" },
        error: err.map(ToString::to_string),
        duration_ms: ms,
        old_data: None,
    });
}

/// Run one ERP step: limits, tracing, and a sync_log entry for failures (and for successes when
/// `action` is given).
async fn step<T, F>(
    ctx: &Ctx,
    fx: &mut Effects,
    t: &ErpClient,
    action: &'static str,
    erp_ord: Option<i64>,
    log_success: bool,
    fut: F,
) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let started = Instant::now();
    let res = ctx.erp_call(fut).await;
    match &res {
        Ok(_) if log_success => log_step(fx, t, action, erp_ord, started, None),
        Ok(_) => {
            // Lookups are not logged on success; drop their exchanges.
            let _discarded: Vec<Exchange> = t.take_exchanges();
        }
        Err(e) => log_step(fx, t, action, erp_ord, started, Some(e)),
    }
    res
}

fn skip_log(fx: &mut Effects, reason: &str, request: Option<Value>) {
    fx.logs.push(LogEntry {
        action: "skip",
        outcome: "skipped",
        error: Some(reason.to_string()),
        request,
        ..LogEntry::default()
    });
}

fn kind_name(k: CustomerKind) -> &'static str {
    match k {
        CustomerKind::Company => "company",
        CustomerKind::Personal => "personal",
    }
}

/// The fields as stored in sync_log (mobiles masked by the ERP module's redaction).
fn fields_json(v: &ContactView) -> Value {
    let obj: serde_json::Map<String, Value> = v
        .fields
        .pairs()
        .into_iter()
        .map(|(k, val)| (k.to_string(), Value::String(val.to_string())))
        .collect();
    crate::erp::mask::redact(&json!({"intsort": v.kind.intsort(), "fields": obj}))
}

async fn customer(ctx: &Ctx, row: &OutboxRow, rc: RowContext, fx: &mut Effects) -> Result<Verdict> {
    let RowContext { payload, link, .. } = rc;
    let Some(payload) = payload else {
        let r = "contact no longer exists";
        skip_log(fx, r, None);
        return Ok(Verdict::Skipped(r.into()));
    };
    let view = match mapping::contact_view(&payload) {
        Ok(v) => v,
        Err(e) => return Ok(Verdict::Dead(format!("cannot map contact: {e}"))),
    };
    if !view.admission.passed {
        let r = format!(
            "admission not passed: {}",
            view.admission.reasons.join(", ")
        );
        skip_log(fx, &r, Some(fields_json(&view)));
        return Ok(Verdict::Skipped(r));
    }
    let hash = mapping::fields_hash(view.kind, &view.fields, view.person.as_ref());
    let t = ctx.erp.traced();
    tracing::debug!(outbox_id = row.id, contact_id = row.contact_id, khid = %view.khid,
        mobile = %masked(view.fields.mobile.as_deref()), "customer: looking up khid");

    let existing = step(
        ctx,
        fx,
        &t,
        "create",
        None,
        false,
        t.find_by_khid(&view.khid),
    )
    .await?;
    let ord = match existing {
        None => {
            if let Some(m) = view.fields.mobile.as_deref() {
                let owners = step(ctx, fx, &t, "create", None, false, t.find_by_mobile(m)).await?;
                if let Some(v) = mobile_taken(row, &view, m, &owners, None, fx) {
                    return Ok(v);
                }
            }
            let mut fields = view.fields.clone();
            fields.ord = None;
            let saved = match step(
                ctx,
                fx,
                &t,
                "create",
                None,
                true,
                t.save_customer(view.kind, &fields),
            )
            .await
            {
                Err(e @ Error::Business(_)) => {
                    return refused_for_mobile(ctx, row, &view, &t, e, fx).await
                }
                other => other?,
            };
            if let Some(l) = fx.logs.last_mut() {
                l.erp_ord = Some(saved.ord);
            }
            tracing::info!(outbox_id = row.id, contact_id = row.contact_id, erp_ord = saved.ord,
                khid = %view.khid, kind = kind_name(view.kind), "customer created");
            saved.ord
        }
        Some(found) => {
            let ord = found.ord;
            let unchanged = link.as_ref().is_some_and(|l| {
                l.erp_ord == Some(ord)
                    && l.last_payload_hash.as_deref() == Some(hash.as_str())
                    && (view.person.is_none() || l.person_synced)
            });
            if unchanged {
                let r = "unchanged since the last sync";
                return Ok(Verdict::Skipped(r.into()));
            }
            let detail = step(
                ctx,
                fx,
                &t,
                "update",
                Some(ord),
                false,
                t.customer_detail(ord),
            )
            .await?;
            // Unmasked on purpose: a rollback restores exactly this (views mask it for readers).
            let old_data = detail.as_ref().map(|d| Value::Object(d.values()));
            let erp_wx = found
                .weixin_acc
                .clone()
                .or_else(|| {
                    detail
                        .as_ref()
                        .and_then(|d| d.value("weixinAcc"))
                        .map(str::to_string)
                })
                .filter(|s| !s.trim().is_empty());
            let action = if erp_wx.is_none() && view.wechat_id.is_some() {
                "supplement"
            } else {
                "update"
            };
            let mut fields = view.fields.clone();
            fields.ord = Some(ord);
            // The vendor requires 客户分类 on every save: keep the one the ERP has (a salesperson
            // may have reclassified the customer); the configured one only for a customer without.
            fields.sort1 = detail
                .as_ref()
                .and_then(|d| d.value("sort1"))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            match step(
                ctx,
                fx,
                &t,
                action,
                Some(ord),
                true,
                t.edit_customer(view.kind, &fields),
            )
            .await
            {
                Err(e @ Error::Business(_)) => {
                    return refused_for_mobile(ctx, row, &view, &t, e, fx).await
                }
                other => other.map(|_| ())?,
            }
            if let Some(l) = fx.logs.last_mut() {
                l.old_data = old_data;
            }
            tracing::info!(
                outbox_id = row.id,
                contact_id = row.contact_id,
                erp_ord = ord,
                action,
                "customer updated"
            );
            ord
        }
    };
    // The link is known from here on: record it even if the person step fails (a retry then
    // finds the customer by khid anyway).
    let mut written = LinkWrite {
        khid: view.khid.clone(),
        erp_ord: ord,
        customer_type: kind_name(view.kind),
        person_synced: view.person.is_none(),
        payload_hash: None,
    };
    fx.link = Some(LinkChange::Upsert(written.clone()));
    if let Some(person) = &view.person {
        let already = link
            .as_ref()
            .is_some_and(|l| l.person_synced && l.erp_ord == Some(ord));
        if !already {
            let persons =
                step(ctx, fx, &t, "person", Some(ord), false, t.list_persons(ord)).await?;
            if persons.iter().any(|p| mapping::person_matches(p, person)) {
                tracing::debug!(
                    outbox_id = row.id,
                    contact_id = row.contact_id,
                    erp_ord = ord,
                    "contact person already in the ERP"
                );
            } else {
                step(
                    ctx,
                    fx,
                    &t,
                    "person",
                    Some(ord),
                    true,
                    t.add_person(ord, person),
                )
                .await?;
                tracing::info!(
                    outbox_id = row.id,
                    contact_id = row.contact_id,
                    erp_ord = ord,
                    "contact person added"
                );
            }
        }
        written.person_synced = true;
    }
    written.payload_hash = Some(hash);
    fx.link = Some(LinkChange::Upsert(written));
    Ok(Verdict::Done)
}

/// The ERP refused a create or update. When the contact's mobile now belongs to another ERP
/// customer (another contact with the same mobile was created concurrently, or the contact moved
/// onto a mobile already in use), the row is skipped with that reason, as the lookup before a
/// create would have; any other refusal stays the row's fatal error.
async fn refused_for_mobile(
    ctx: &Ctx,
    row: &OutboxRow,
    view: &ContactView,
    t: &ErpClient,
    refusal: Error,
    fx: &mut Effects,
) -> Result<Verdict> {
    let Some(m) = view.fields.mobile.as_deref() else {
        return Err(refusal);
    };
    let owners = step(ctx, fx, t, "create", None, false, t.find_by_mobile(m)).await?;
    match mobile_taken(row, view, m, &owners, Some(&refusal), fx) {
        Some(v) => Ok(v),
        None => Err(refusal),
    }
}

/// `Skipped` (with its sync_log entry) when `mobile` belongs to an ERP customer other than the
/// contact's own (by khid); `refusal` is the ERP's answer that revealed it, if any.
fn mobile_taken(
    row: &OutboxRow,
    view: &ContactView,
    mobile: &str,
    owners: &[crate::erp::ErpCustomer],
    refusal: Option<&Error>,
    fx: &mut Effects,
) -> Option<Verdict> {
    let o = owners
        .iter()
        .find(|o| o.khid.as_deref() != Some(view.khid.as_str()))?;
    let mut r = format!(
        "mobile {} already belongs to ERP customer ord {} (khid {})",
        masked(Some(mobile)),
        o.ord,
        o.khid.as_deref().unwrap_or("-")
    );
    if let Some(e) = refusal {
        r.push_str(&format!("; the ERP refused: {e}"));
    }
    tracing::info!(outbox_id = row.id, contact_id = row.contact_id, erp_ord = o.ord, reason = %r, "customer skipped");
    fx.logs.push(LogEntry {
        action: "skip",
        erp_ord: Some(o.ord),
        request: Some(fields_json(view)),
        outcome: "skipped",
        error: Some(r.clone()),
        ..LogEntry::default()
    });
    Some(Verdict::Skipped(r))
}

/// Why a contact has no ERP customer, as the verdict of a dependent row (follow-up, assignment).
async fn no_customer_verdict(ctx: &Ctx, row: &OutboxRow, fx: &mut Effects) -> Result<Verdict> {
    let c = ctx.db().await?;
    if let Some(reasons) = db::rejection(&c, row.contact_id).await? {
        let r = format!("contact rejected at admission: {reasons}");
        skip_log(fx, &r, None);
        return Ok(Verdict::Skipped(r));
    }
    if let Some(p) = db::contact_payload(&c, row.contact_id).await? {
        let adm = mapping::admission(&p);
        if !adm.passed {
            let r = format!("contact rejected at admission: {}", adm.reasons.join(", "));
            skip_log(fx, &r, None);
            return Ok(Verdict::Skipped(r));
        }
    } else {
        let r = "contact no longer exists";
        skip_log(fx, r, None);
        return Ok(Verdict::Skipped(r.into()));
    }
    if let Some((status, err)) = db::prior_customer_row(&c, row.contact_id, row.id).await? {
        if status == "skipped" {
            let r = format!("customer was skipped: {}", err.unwrap_or_default());
            skip_log(fx, &r, None);
            return Ok(Verdict::Skipped(r));
        }
    }
    Ok(Verdict::Dead("customer not synced yet".into()))
}

async fn followup(ctx: &Ctx, row: &OutboxRow, rc: RowContext, fx: &mut Effects) -> Result<Verdict> {
    if row.ref_id.is_none() {
        return Ok(Verdict::Dead("follow-up row without a signal id".into()));
    }
    let Some(ord) = rc.link.and_then(|l| l.erp_ord) else {
        return no_customer_verdict(ctx, row, fx).await;
    };
    let Some(signal) = rc.signal else {
        let r = "signal no longer exists";
        skip_log(fx, r, None);
        return Ok(Verdict::Skipped(r.into()));
    };
    let content = signal
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let date = signal_date(signal.get("ts"));
    let template_id = i64::from(
        row.template_id
            .unwrap_or(erp_sync_rules::DEFAULT_TEMPLATE_ID),
    );
    let t = ctx.erp.traced();
    let f = Followup {
        template_id,
        content,
        date,
    };
    let hold = ctx.cfg.in_doubt_followups == InDoubtFollowups::Hold;
    if hold {
        // Log in first, so that what can fail from here on is the follow-up's own request.
        step(
            ctx,
            fx,
            &t,
            "followup",
            Some(ord),
            false,
            t.ensure_session(),
        )
        .await?;
    }
    // Inside the ERP call's permit (so not while waiting for one): record, durably, that the send
    // begins, then send. A row found so after a crash was perhaps sent: it is in doubt.
    let send = async {
        if hold {
            let c = ctx.db().await?;
            if !db::mark_send_started(&c, row.id, &ctx.worker).await? {
                // not sent; the write-back will find the lease lost and discard this result
                return Err(Error::Pool(format!(
                    "outbox row {} is no longer leased to this worker: follow-up not sent",
                    row.id
                )));
            }
        }
        t.add_followup(ord, &f).await
    };
    match step(ctx, fx, &t, "followup", Some(ord), true, send).await {
        Ok(()) => {}
        Err(e) if hold && e.may_have_reached_server() => {
            let r = format!(
                "in doubt: the ERP's answer to this follow-up was lost ({e}), so it may be in the ERP \
                 already; check customer ord {ord} in the ERP, then SELECT erp_sync.resolve_in_doubt({}, sent)",
                row.id
            );
            tracing::warn!(outbox_id = row.id, contact_id = row.contact_id, erp_ord = ord, reason = %r, "follow-up in doubt");
            return Ok(Verdict::InDoubt(r));
        }
        Err(e) => return Err(e),
    }
    tracing::info!(
        outbox_id = row.id,
        contact_id = row.contact_id,
        erp_ord = ord,
        template_id,
        "follow-up added"
    );
    Ok(Verdict::Done)
}

/// `YYYY-MM-DD HH:MM:SS` in the offset the database rendered the timestamp with.
pub fn signal_date(ts: Option<&Value>) -> String {
    let fmt = "%Y-%m-%d %H:%M:%S";
    let Some(s) = ts.and_then(Value::as_str) else {
        return chrono::Local::now().format(fmt).to_string();
    };
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(s) {
        return d.format(fmt).to_string();
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(d) = chrono::DateTime::parse_from_str(s, f) {
            return d.format(fmt).to_string();
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return d.format(fmt).to_string();
        }
    }
    s.chars().take(19).collect()
}

async fn assign(ctx: &Ctx, row: &OutboxRow, rc: RowContext, fx: &mut Effects) -> Result<Verdict> {
    let Some((ord, link)) = rc.link.and_then(|l| l.erp_ord.map(|o| (o, l))) else {
        return no_customer_verdict(ctx, row, fx).await;
    };
    let Some(payload) = rc.payload else {
        let r = "contact no longer exists";
        skip_log(fx, r, None);
        return Ok(Verdict::Skipped(r.into()));
    };
    // The contact may have stopped passing admission since its customer was created (e.g. its
    // name and company were cleared): nothing to assign, like any dependent row of a rejected one.
    let adm = mapping::admission(&payload);
    if !adm.passed {
        let r = format!("contact rejected at admission: {}", adm.reasons.join(", "));
        skip_log(fx, &r, None);
        return Ok(Verdict::Skipped(r));
    }
    let view = match mapping::contact_view(&payload) {
        Ok(v) => v,
        Err(e) => return Ok(Verdict::Dead(format!("cannot map contact: {e}"))),
    };
    let c = ctx.db().await?;
    let (tier, to) = db::assign_target(&c, view.score, link.assigned_tier.as_deref()).await?;
    drop(c);
    if link.assigned_tier.as_deref() == Some(tier.as_str()) {
        return Ok(Verdict::Skipped(format!("assignment unchanged ({tier})")));
    }
    let note = (to.is_none() && tier != erp_sync_rules::assignment::PUBLIC)
        .then(|| format!("no active {tier} rep: put in the public pool"));
    let target = match &to {
        Some(rep) => Assignment::To(rep.clone()),
        None => Assignment::Public,
    };
    let t = ctx.erp.traced();
    step(
        ctx,
        fx,
        &t,
        "assign",
        Some(ord),
        true,
        t.assign(ord, &target),
    )
    .await?;
    if let (Some(n), Some(l)) = (&note, fx.logs.last_mut()) {
        l.error = Some(n.clone());
    }
    tracing::info!(outbox_id = row.id, contact_id = row.contact_id, erp_ord = ord, %tier,
        assigned_to = to.as_deref().unwrap_or(erp_sync_rules::assignment::PUBLIC), "customer assigned");
    fx.link = Some(LinkChange::Assign(tier, to));
    Ok(Verdict::Done)
}

/// Undo one `sync_log` entry (`ref_id`): a `create` deletes the ERP customer, an `update` or
/// `supplement` writes the `old_data` back.
async fn rollback(ctx: &Ctx, row: &OutboxRow, fx: &mut Effects) -> Result<Verdict> {
    let Some(log_id) = row.ref_id else {
        return Ok(Verdict::Dead("rollback row without a sync_log id".into()));
    };
    let c = ctx.db().await?;
    let Some(entry) = db::sync_log_get(&c, log_id).await? else {
        return Ok(Verdict::Skipped(format!(
            "sync_log #{log_id} does not exist"
        )));
    };
    if entry.rolled_back {
        return Ok(Verdict::Skipped(format!(
            "sync_log #{log_id} is already rolled back"
        )));
    }
    if entry.outcome != "success" {
        return Ok(Verdict::Skipped(format!(
            "sync_log #{log_id} has outcome {}: nothing to undo",
            entry.outcome
        )));
    }
    let Some(ord) = entry.erp_ord else {
        return Ok(Verdict::Dead(format!("sync_log #{log_id} has no ERP ord")));
    };
    let link = db::link_get(&c, row.contact_id).await?;
    drop(c);
    let t = ctx.erp.traced();
    match entry.action.as_str() {
        "create" => {
            step(
                ctx,
                fx,
                &t,
                "delete",
                Some(ord),
                true,
                t.delete_customer(ord, link.as_ref().and_then(|l| l.khid.as_deref())),
            )
            .await?;
            fx.link = Some(LinkChange::Unlink(
                entry.contact_id.unwrap_or(row.contact_id),
                ord,
            ));
        }
        "update" | "supplement" => {
            let Some(old) = entry.old_data.as_ref().and_then(Value::as_object) else {
                return Ok(Verdict::Dead(format!(
                    "sync_log #{log_id} has no old data to restore"
                )));
            };
            let kind = match link.as_ref().and_then(|l| l.customer_type.as_deref()) {
                Some("company") => CustomerKind::Company,
                _ => CustomerKind::Personal,
            };
            let get = |k: &str| old.get(k).and_then(Value::as_str).map(str::to_string);
            let Some(name) = get("name") else {
                return Ok(Verdict::Dead(format!(
                    "sync_log #{log_id}: old data has no name"
                )));
            };
            let fields = crate::erp::CustomerFields {
                ord: Some(ord),
                name,
                khid: get("khid"),
                sort1: get("sort1").filter(|s| !s.trim().is_empty()),
                ly: get("ly"),
                mobile: get("mobile"),
                weixin_acc: Some(get("weixinAcc").unwrap_or_default()),
                address: get("address"),
                jz: get("jz"),
                intro: get("intro"),
                product: get("product"),
                person_name: get("person_name"),
                phone: get("phone"),
                email: get("email"),
            };
            step(
                ctx,
                fx,
                &t,
                "restore",
                Some(ord),
                true,
                t.edit_customer(kind, &fields),
            )
            .await
            .map(|_| ())?;
        }
        other => {
            return Ok(Verdict::Skipped(format!(
                "sync_log action {other} cannot be rolled back"
            )))
        }
    }
    fx.rolled_back = Some(log_id);
    tracing::info!(
        outbox_id = row.id,
        contact_id = row.contact_id,
        erp_ord = ord,
        sync_log_id = log_id,
        "rolled back"
    );
    Ok(Verdict::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(
            signal_date(Some(&json!("2025-10-19T12:43:10+08:00"))),
            "2025-10-19 12:43:10"
        );
        assert_eq!(
            signal_date(Some(&json!("2025-10-19T12:43:10.123456+00:00"))),
            "2025-10-19 12:43:10"
        );
        assert_eq!(
            signal_date(Some(&json!("2025-10-19 12:43:10+08"))),
            "2025-10-19 12:43:10"
        );
        assert_eq!(
            signal_date(Some(&json!("2025-10-19T12:43:10"))),
            "2025-10-19 12:43:10"
        );
    }
}
