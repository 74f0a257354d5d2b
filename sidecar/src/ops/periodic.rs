//! The one periodic-service loop of `erp-sync run`.
//!
//! Alerts, retention and the cron schedules are [`Service`]s (assembled by
//! [`super::spawn_periodic`]; this file knows none of them): each says when it is first due and,
//! after a run, when it is due next. One loop sleeps until the earliest due time, starts every
//! due service as a task, and never runs one service twice at once (a due time that finds the
//! previous run still going is skipped and logged). At shutdown the running tasks see the stop
//! signal and get the deadline given to [`spawn`] (`schedule.shutdown_deadline_ms`); what still
//! runs after it is abandoned. A service that panics
//! is logged and keeps its place in the loop.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Something that runs now and then.
pub trait Service: Send + Sync + 'static {
    /// Its name in logs.
    fn name(&self) -> &str;
    /// When it is first due, given the start-up time (`None`: never). Default: at start-up.
    fn first(self: Arc<Self>, now: DateTime<Utc>) -> BoxFuture<'static, Option<DateTime<Utc>>> {
        futures::future::ready(Some(now)).boxed()
    }
    /// When it is due after the run that was due at `at` and started at `now`.
    fn next(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>>;
    /// One run, for the period due at `at`. It should return soon after `stop` turns true.
    fn run(
        self: Arc<Self>,
        at: DateTime<Utc>,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'static, ()>;
}

/// A service due at start-up and then every `period` (measured between due times; a run that
/// outlasts its period makes the next due time be skipped, not bunched).
pub fn next_every(
    period: Duration,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let period = chrono::Duration::from_std(period).ok()?;
    let next = at + period;
    Some(if next > now { next } else { now + period })
}

/// Runs `services` until `stop` turns true; then waits up to `deadline` for running ones.
pub async fn run(
    services: Vec<Arc<dyn Service>>,
    mut stop: watch::Receiver<bool>,
    deadline: Duration,
) {
    let start = Utc::now();
    let mut due = Vec::with_capacity(services.len());
    for s in &services {
        let first = s.clone().first(start).await;
        tracing::info!(service = s.name(), first_due = ?first.map(|t| t.to_rfc3339()), "periodic service");
        due.push(first);
    }
    let mut busy = vec![false; services.len()];
    let mut tasks: JoinSet<usize> = JoinSet::new();
    while !*stop.borrow() {
        let now = Utc::now();
        for (i, s) in services.iter().enumerate() {
            let Some(at) = due[i].filter(|at| *at <= now) else {
                continue;
            };
            if busy[i] {
                tracing::warn!(service = s.name(), due = %at.to_rfc3339(), "previous run still going: this one skipped");
            } else {
                busy[i] = true;
                let run = AssertUnwindSafe(s.clone().run(at, stop.clone())).catch_unwind();
                let name = s.name().to_string();
                tasks.spawn(async move {
                    if run.await.is_err() {
                        tracing::error!(service = %name, "periodic service panicked (it runs again when due)");
                    }
                    i
                });
            }
            due[i] = s.next(at, now);
        }
        let wait = due
            .iter()
            .flatten()
            .min()
            .map(|t| (*t - Utc::now()).to_std().unwrap_or(Duration::ZERO));
        tokio::select! {
            _ = sleep_or_forever(wait) => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                Ok(i) => busy[i] = false,
                Err(e) => tracing::warn!(error = %e, "periodic service task ended abnormally"),
            },
            r = stop.changed() => if r.is_err() { break },
        }
    }
    if tasks.is_empty() {
        return;
    }
    tracing::info!(
        running = tasks.len(),
        deadline_ms = deadline.as_millis() as u64,
        "waiting for periodic services"
    );
    let limit = tokio::time::sleep(deadline);
    tokio::pin!(limit);
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Err(e)) => tracing::warn!(error = %e, "periodic service task ended abnormally"),
                Some(Ok(_)) => {}
            },
            _ = &mut limit => {
                tracing::warn!(running = tasks.len(), "abandoning periodic services at the shutdown deadline");
                tasks.abort_all();
                break;
            }
        }
    }
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(w) => tokio::time::sleep(w).await,
        None => futures::future::pending::<()>().await,
    }
}

/// The loop running next to the engine.
pub struct PeriodicHandle {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    deadline: Duration,
}

/// Start the loop over `services` (nothing to start when there are none). It stops when `signal`
/// turns true or at [`PeriodicHandle::stop`]; running services then get `deadline`.
pub fn spawn(
    services: Vec<Arc<dyn Service>>,
    deadline: Duration,
    mut signal: watch::Receiver<bool>,
) -> PeriodicHandle {
    let (tx, rx) = watch::channel(false);
    if services.is_empty() {
        return PeriodicHandle {
            stop: tx,
            task: None,
            deadline,
        };
    }
    let forward = tx.clone();
    let task = tokio::spawn(async move {
        let fwd = tokio::spawn(async move {
            while !*signal.borrow() {
                if signal.changed().await.is_err() {
                    return;
                }
            }
            if forward.send(true).is_err() {
                tracing::debug!("periodic services already stopped");
            }
        });
        run(services, rx, deadline).await;
        fwd.abort();
        tracing::info!("periodic services stopped");
    });
    PeriodicHandle {
        stop: tx,
        task: Some(task),
        deadline,
    }
}

impl PeriodicHandle {
    /// Stop the loop and wait for it (running services get the deadline given to [`spawn`]).
    pub async fn stop(mut self) {
        if self.stop.send(true).is_err() {
            tracing::debug!("periodic services already stopped");
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(self.deadline + Duration::from_secs(1), task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "periodic services task ended abnormally"),
                Err(_) => tracing::warn!("periodic services did not stop in time"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Due at start-up and every `period`; each run takes `takes` and counts itself.
    struct Probe {
        period: Duration,
        takes: Duration,
        runs: AtomicUsize,
        running: AtomicUsize,
        max_running: AtomicUsize,
        panics: bool,
    }

    impl Probe {
        fn new(period_ms: u64, takes_ms: u64, panics: bool) -> Arc<Self> {
            Arc::new(Self {
                period: Duration::from_millis(period_ms),
                takes: Duration::from_millis(takes_ms),
                runs: AtomicUsize::new(0),
                running: AtomicUsize::new(0),
                max_running: AtomicUsize::new(0),
                panics,
            })
        }
    }

    impl Service for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        fn next(&self, at: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
            next_every(self.period, at, now)
        }
        fn run(
            self: Arc<Self>,
            _at: DateTime<Utc>,
            mut stop: watch::Receiver<bool>,
        ) -> BoxFuture<'static, ()> {
            async move {
                let n = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_running.fetch_max(n, Ordering::SeqCst);
                self.runs.fetch_add(1, Ordering::SeqCst);
                if self.panics {
                    self.running.fetch_sub(1, Ordering::SeqCst);
                    panic!("probe panics on purpose");
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.takes) => {}
                    _ = stop.changed() => {}
                }
                self.running.fetch_sub(1, Ordering::SeqCst);
            }
            .boxed()
        }
    }

    async fn wait_for_runs(p: &Probe, n: usize) -> usize {
        for _ in 0..400 {
            if p.runs.load(Ordering::SeqCst) >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        p.runs.load(Ordering::SeqCst)
    }

    #[test]
    fn next_every_skips_missed_periods_instead_of_bunching() {
        let at = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        let p = Duration::from_secs(10);
        let on_time = at + chrono::Duration::seconds(1);
        assert_eq!(
            next_every(p, at, on_time),
            Some(at + chrono::Duration::seconds(10))
        );
        let late = at + chrono::Duration::seconds(35);
        assert_eq!(
            next_every(p, at, late),
            Some(late + chrono::Duration::seconds(10))
        );
    }

    #[tokio::test]
    async fn runs_each_service_again_and_never_twice_at_once() {
        let fast = Probe::new(5, 1, false);
        let slow = Probe::new(5, 40, false); // outlasts its period: due times are skipped
        let (tx, rx) = watch::channel(false);
        let services: Vec<Arc<dyn Service>> = vec![fast.clone(), slow.clone()];
        let loop_ = tokio::spawn(run(services, rx, Duration::from_secs(2)));
        assert!(
            wait_for_runs(&fast, 5).await >= 5,
            "the fast service ran again and again"
        );
        assert!(
            wait_for_runs(&slow, 2).await >= 2,
            "the slow service ran again after finishing"
        );
        tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), loop_)
            .await
            .expect("loop stops")
            .expect("no panic");
        assert_eq!(
            slow.max_running.load(Ordering::SeqCst),
            1,
            "never two runs of one service at once"
        );
        assert_eq!(fast.max_running.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panicking_service_runs_again_and_others_go_on() {
        let bad = Probe::new(5, 0, true);
        let good = Probe::new(5, 1, false);
        let (tx, rx) = watch::channel(false);
        let loop_ = tokio::spawn(run(
            vec![bad.clone() as Arc<dyn Service>, good.clone()],
            rx,
            Duration::from_secs(2),
        ));
        assert!(
            wait_for_runs(&bad, 3).await >= 3,
            "the panicking service is started again when due"
        );
        assert!(wait_for_runs(&good, 3).await >= 3);
        tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), loop_)
            .await
            .expect("loop stops")
            .expect("no panic");
    }

    #[tokio::test]
    async fn shutdown_waits_for_a_run_that_stops_and_abandons_one_that_does_not() {
        // `takes` of an hour, but the run returns when it sees the stop: shutdown waits for it.
        let polite = Probe::new(3_600_000, 3_600_000, false);
        let (tx, rx) = watch::channel(false);
        let loop_ = tokio::spawn(run(
            vec![polite.clone() as Arc<dyn Service>],
            rx,
            Duration::from_secs(30),
        ));
        assert_eq!(wait_for_runs(&polite, 1).await, 1);
        tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), loop_)
            .await
            .expect("stops well before the deadline")
            .expect("no panic");
        assert_eq!(
            polite.running.load(Ordering::SeqCst),
            0,
            "the run finished, it was not abandoned"
        );

        /// Ignores the stop signal.
        struct Stubborn;
        impl Service for Stubborn {
            fn name(&self) -> &str {
                "stubborn"
            }
            fn next(&self, _: DateTime<Utc>, _: DateTime<Utc>) -> Option<DateTime<Utc>> {
                None
            }
            fn run(
                self: Arc<Self>,
                _: DateTime<Utc>,
                _: watch::Receiver<bool>,
            ) -> BoxFuture<'static, ()> {
                tokio::time::sleep(Duration::from_secs(3_600)).boxed()
            }
        }
        let (tx, rx) = watch::channel(false);
        let loop_ = tokio::spawn(run(
            vec![Arc::new(Stubborn) as Arc<dyn Service>],
            rx,
            Duration::from_millis(50),
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), loop_)
            .await
            .expect("abandoned at the deadline")
            .expect("no panic");
    }
}
