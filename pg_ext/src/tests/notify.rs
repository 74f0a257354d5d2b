//! `#[pg_test]`s: NOTIFY: who is woken, when, and only at COMMIT.

#[pgrx::pg_schema]
mod tests {
    use crate::capture::wake::{self, notifies_sent};
    use crate::tests::tests::*;
    use pgrx::prelude::*;

    #[pg_test]
    fn notify_once_per_transaction_when_a_worker_is_idle() {
        serial();
        platform();
        wake::reset_for_tests();
        run("INSERT INTO erp_sync.workers (worker_id, idle, heartbeat_at) VALUES ('w1', true, now())");
        let before = notifies_sent();
        for id in 1..=5 {
            good_contact(id);
        }
        run("INSERT INTO mp.signals (contact_id, content) VALUES (1, 'a'), (2, 'b')");
        assert_eq!(outbox("status = 'pending'"), 7);
        assert_eq!(notifies_sent() - before, 1);
    }

    #[pg_test]
    fn notify_once_per_idle_period_per_backend() {
        serial();
        platform();
        wake::reset_for_tests();
        run("INSERT INTO erp_sync.workers (worker_id, idle, idle_since, heartbeat_at) VALUES ('w1', true, now(), now())");
        let start = notifies_sent();
        good_contact(1);
        assert_eq!(notifies_sent() - start, 1);
        wake::pretend_commit();
        // later transactions, same idle period: this backend already told the sidecar
        good_contact(2);
        wake::pretend_commit();
        run("UPDATE mp.contacts SET notes = 'x' WHERE id = 1");
        assert_eq!(notifies_sent() - start, 1);
        wake::pretend_commit();
        // the worker got busy and went idle again: a new idle period, one more wake-up
        run("UPDATE erp_sync.workers SET idle_since = now() + interval '1 second'");
        good_contact(3);
        assert_eq!(notifies_sent() - start, 2);
        wake::pretend_commit();
        good_contact(4);
        assert_eq!(notifies_sent() - start, 2);
        // busy again: nothing
        run("UPDATE erp_sync.workers SET idle = false, idle_since = NULL");
        wake::pretend_commit();
        good_contact(5);
        assert_eq!(notifies_sent() - start, 2);
        assert_eq!(outbox("status = 'pending'"), 5);
    }

    #[pg_test]
    fn rolled_back_wake_up_is_not_consumed() {
        serial();
        platform();
        wake::reset_for_tests();
        run("INSERT INTO erp_sync.workers (worker_id, idle, idle_since, heartbeat_at) VALUES ('w1', true, now(), now())");
        let start = notifies_sent();
        // the statement and its NOTIFY are rolled back (like ROLLBACK TO SAVEPOINT)
        let rolled_back = crate::capture::guard::protected(|| {
            good_contact(1);
            Err::<(), String>("roll back".into())
        });
        assert!(rolled_back.is_err());
        assert_eq!(outbox("true"), 0);
        assert_eq!(notifies_sent() - start, 1);
        // so the next capture checks again and NOTIFYs
        good_contact(2);
        assert_eq!(notifies_sent() - start, 2);
        wake::pretend_commit();
        good_contact(3);
        assert_eq!(notifies_sent() - start, 2);
    }

    #[pg_test]
    fn worker_upsert_tracks_idle_since() {
        serial();
        let upsert = include_str!("../../../sidecar/queries/worker_upsert.sql");
        let set = |idle: bool| {
            Spi::run_with_args(
                upsert,
                &["w1".into(), idle.into(), Option::<String>::None.into()],
            )
            .unwrap_or_else(|e| panic!("worker_upsert: {e}"));
        };
        let since = || {
            one::<bool>("SELECT idle_since = now() FROM erp_sync.workers WHERE worker_id = 'w1'")
        };
        set(false);
        assert_eq!(since(), None);
        set(true);
        assert_eq!(since(), Some(true));
        run("UPDATE erp_sync.workers SET idle_since = now() - interval '1 hour'");
        set(true); // idle -> idle: kept
        assert_eq!(since(), Some(false));
        set(false);
        assert_eq!(since(), None);
        set(true); // busy -> idle: a new idle period
        assert_eq!(since(), Some(true));
    }

    /// `erp_sync.retry`, the one owner of "is this failure an attempt, and is it the last": a
    /// failure that counts uses an attempt (the claim counted a head's already) and dies at
    /// max_attempts; one that does not count gives the claim's attempt back; this attempt's failed
    /// sync_log entries become `retry` unless the row died; a pending twin takes over.
    #[pg_test]
    fn retry_counts_attempts_gives_them_back_and_relabels_the_log() {
        serial();
        let row = |attempts: i32| -> i64 {
            int(&format!(
                "INSERT INTO erp_sync.outbox (contact_id, kind, ref_id, status, attempts, lease_owner, lease_expires_at)
                 VALUES ({attempts} + 100, 'followup', 1, 'running', {attempts}, 'w', now() + interval '1 minute')
                 RETURNING id"
            ))
        };
        let log = |id: i64| {
            run(&format!(
                "INSERT INTO erp_sync.sync_log (outbox_id, contact_id, action, outcome, error)
                 VALUES ({id}, 1, 'followup', 'failed', 'HTTP 503')"
            ))
        };
        let retry = |id: i64, counts: bool, counted: bool| -> Option<String> {
            one::<String>(&format!(
                "SELECT erp_sync.retry({id}, 'w', 1000, 'HTTP 503', 3, {counts}, {counted})"
            ))
        };
        let state = |id: i64| -> String {
            text(&format!(
                "SELECT o.status || ' ' || o.attempts || ' ' || coalesce(string_agg(l.outcome, ','), '')
                 FROM erp_sync.outbox o LEFT JOIN erp_sync.sync_log l ON l.outbox_id = o.id
                 WHERE o.id = {id} GROUP BY o.status, o.attempts"
            ))
        };
        // a head (counted at claim) on its 2nd of 3 attempts: pending, the log entry is a retry
        let a = row(2);
        log(a);
        assert_eq!(retry(a, true, true).as_deref(), Some("pending"));
        assert_eq!(state(a), "pending 2 retry");
        // on its 3rd of 3: dead, the entry stays failed (the sync failed)
        let b = row(3);
        log(b);
        assert_eq!(retry(b, true, true).as_deref(), Some("dead"));
        assert_eq!(state(b), "dead 3 failed");
        // not the row's fault (a refused login): the claim's attempt is given back
        let c = row(3);
        assert_eq!(retry(c, false, true).as_deref(), Some("pending"));
        assert_eq!(state(c), "pending 2 ");
        // a chain row (not counted at claim) is counted when it fails
        let d = row(1);
        assert_eq!(retry(d, true, false).as_deref(), Some("pending"));
        assert_eq!(state(d), "pending 2 ");
        // not leased to this worker any more: nothing changes
        assert_eq!(
            one::<String>(&format!(
                "SELECT erp_sync.retry({d}, 'w', 1000, 'x', 3, true, false)"
            )),
            None
        );
        // a pending twin of a customer row takes over: attempts and backoff move to it
        let e = int(
            "INSERT INTO erp_sync.outbox (contact_id, kind, status, attempts, lease_owner, lease_expires_at)
             VALUES (900, 'customer', 'running', 1, 'w', now() + interval '1 minute') RETURNING id",
        );
        let twin = int(
            "INSERT INTO erp_sync.outbox (contact_id, kind) VALUES (900, 'customer') RETURNING id",
        );
        assert_eq!(retry(e, true, true).as_deref(), Some("pending"));
        assert_eq!(
            text(&format!(
                "SELECT status || ' ' || last_error FROM erp_sync.outbox WHERE id = {e}"
            )),
            format!("skipped coalesced into outbox row #{twin} after: HTTP 503")
        );
        assert_eq!(
            text(&format!("SELECT status || ' ' || attempts || ' ' || (next_attempt_at > now()) FROM erp_sync.outbox WHERE id = {twin}")),
            "pending 1 true"
        );
    }

    /// The heartbeat carries the ERP login state: a refusal keeps its start across heartbeats,
    /// fires `erp_login_failed` while the worker is alive, and a working login clears both.
    #[pg_test]
    fn worker_upsert_reports_a_refused_login_and_alerts() {
        serial();
        let upsert = include_str!("../../../sidecar/queries/worker_upsert.sql");
        let beat = |refused: Option<&str>| {
            Spi::run_with_args(
                upsert,
                &["w1".into(), true.into(), refused.map(String::from).into()],
            )
            .unwrap_or_else(|e| panic!("worker_upsert: {e}"));
        };
        let alert = || {
            one::<String>(
                "SELECT (SELECT message_en FROM erp_sync.alerts WHERE code = 'erp_login_failed')",
            )
        };
        beat(None);
        assert_eq!(alert(), None);
        beat(Some("用户名或密码错误"));
        let msg = alert().unwrap_or_default();
        assert!(
            msg.contains("w1") && msg.contains("用户名或密码错误"),
            "{msg}"
        );
        run("UPDATE erp_sync.workers SET erp_login_failed_since = now() - interval '1 hour'");
        beat(Some("用户名或密码错误"));
        assert_eq!(
            one::<bool>("SELECT erp_login_failed_since < now() - interval '59 minutes' FROM erp_sync.workers"),
            Some(true),
            "the refusal keeps its start"
        );
        // a worker whose heartbeat is older than notify.idle_fresh is not alive: no alert for it
        run("UPDATE erp_sync.workers SET heartbeat_at = now() - interval '1 hour'");
        assert_eq!(alert(), None);
        beat(Some("用户名或密码错误"));
        assert!(alert().is_some());
        beat(None);
        assert_eq!(alert(), None);
        assert_eq!(
            one::<bool>("SELECT erp_login_error IS NULL AND erp_login_failed_since IS NULL FROM erp_sync.workers"),
            Some(true)
        );
    }

    #[pg_test]
    fn broken_wake_up_setting_keeps_the_outbox_row() {
        serial();
        platform();
        run("INSERT INTO erp_sync.settings (key, value) VALUES ('notify.idle_fresh', 'not an interval')");
        run("INSERT INTO erp_sync.workers (worker_id, idle, heartbeat_at) VALUES ('w1', true, now())");
        good_contact(1);
        assert_eq!(outbox("contact_id = '1' AND status = 'pending'"), 1);
    }

    #[pg_test]
    fn no_notify_when_workers_are_busy_or_stale() {
        serial();
        platform();
        run(
            "INSERT INTO erp_sync.workers (worker_id, idle, heartbeat_at) VALUES
             ('busy', false, now()), ('stale', true, now() - interval '1 hour')",
        );
        let before = notifies_sent();
        good_contact(1);
        good_contact(2);
        assert_eq!(outbox("status = 'pending'"), 2);
        assert_eq!(notifies_sent() - before, 0);
    }
}
