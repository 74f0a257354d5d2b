//! `customer` rows: create or update the ERP customer of a contact (khid lookup first, then the
//! mobile; read back what was sent), add its contact person, supplement the WeChat id.

use super::*;

pub(super) async fn customer(
    ctx: &Ctx,
    row: &OutboxRow,
    rc: RowContext,
    fx: &mut Effects,
) -> Result<Verdict> {
    let RowContext { payload, link, .. } = rc;
    let Some(payload) = payload else {
        let r = "contact no longer exists";
        skip_log(fx, r, None);
        return Ok(Verdict::Skipped(r.into()));
    };
    let view = match mapping::plan_customer(&payload) {
        mapping::CustomerPlan::Send(v) => v,
        mapping::CustomerPlan::NotAdmitted(r, view) => {
            skip_log(fx, &r, view.as_ref().map(fields_json));
            return Ok(Verdict::Skipped(r));
        }
        mapping::CustomerPlan::Unmappable(r) => return Ok(Verdict::Dead(r)),
    };
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
            // 客户来源 is the ERP's fact about where the customer came from: set (171, WeChat)
            // only when the platform creates the customer, never changed by an update (an
            // ERP-born customer brought home by erp_sync.import_erp_customers() keeps its own).
            fields.ly = None;
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
