//! `assign` rows: the tier of the contact's score and a sales rep of that tier (or the public pool).

use super::*;

pub(super) async fn assign(
    ctx: &Ctx,
    row: &OutboxRow,
    rc: RowContext,
    fx: &mut Effects,
) -> Result<Verdict> {
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
