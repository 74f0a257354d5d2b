//! `followup` rows: one 洽谈进展 record per signal, with the template its content selects; in
//! doubt when its reply is lost (see `engine.in_doubt_followups`).

use super::*;

pub(super) async fn followup(
    ctx: &Ctx,
    row: &OutboxRow,
    rc: RowContext,
    fx: &mut Effects,
) -> Result<Verdict> {
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
