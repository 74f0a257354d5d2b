//! `rollback` rows: undo one `sync_log` entry (the operator's `erp_sync.rollback`).

use super::*;

/// Undo one `sync_log` entry (`ref_id`): a `create` deletes the ERP customer, an `update` or
/// `supplement` writes the `old_data` back.
pub(super) async fn rollback(ctx: &Ctx, row: &OutboxRow, fx: &mut Effects) -> Result<Verdict> {
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
    let link = db::link_get(&c, &row.contact_id).await?;
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
                entry.contact_id.unwrap_or_else(|| row.contact_id.clone()),
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
