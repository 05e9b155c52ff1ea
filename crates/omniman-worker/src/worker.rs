use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use omniman_core::clock::{Clock, SystemClock};
use omniman_core::directive::{
    Directive, DirectiveStatus, DirectiveUpdate, HandlerError, RetryPolicy, RunResult, decide_outcome, decide_reap,
    renew_claim,
};
use omniman_core::error::StoreError;
use omniman_core::ext::{HandlerCtx, HandlerRegistry};
use omniman_core::ports::DirectiveQueue;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::liveness::WorkerLiveness;

/// Worker settings; the defaults are those of docs/reference.md §9.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Topics to run; `None` = every topic with a registered handler. Forcing a topic without a
    /// handler leaves its directives `queued`.
    pub topics: Option<Vec<String>>,
    /// Most directives claimed per batch (default 50).
    pub batch_size: usize,
    /// How many handlers run at once (default 2).
    pub concurrency: usize,
    /// Poll interval when idle; wake-ups cut it short (default 2 s, at least 0.5 s).
    pub interval: Duration,
    /// Retry policy.
    pub policy: RetryPolicy,
    /// A `running` directive whose claim went unrenewed for longer than this is reaped (default
    /// 10 min; zero turns reaping off). The worker renews the claims it holds every quarter of
    /// this (of 10 min when it is zero), so every worker on a database should use the same value.
    pub reap_timeout: TimeDelta,
    /// Longest a single handler may run before it counts as a transient failure (default 60 s).
    pub handler_timeout: Duration,
    /// Longest a shutdown waits for running handlers before interrupting them (default 30 s).
    pub drain_timeout: Duration,
    /// `ctx.actor` handed to handlers.
    pub actor: String,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            topics: None,
            batch_size: 50,
            concurrency: 2,
            interval: Duration::from_secs(2),
            policy: RetryPolicy::default(),
            reap_timeout: TimeDelta::minutes(10),
            handler_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(30),
            actor: "process_directives".into(),
        }
    }
}

/// Counts of one cycle (or a whole `run_once`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Directives claimed.
    pub claimed: usize,
    /// Finished `done`.
    pub done: usize,
    /// Finished `failed`.
    pub failed: usize,
    /// Put back to `queued` (retry or no handler).
    pub requeued: usize,
    /// Reaped from `running`.
    pub reaped: usize,
}

impl CycleReport {
    fn count(&mut self, update: &DirectiveUpdate) {
        match update.status {
            DirectiveStatus::Done => self.done += 1,
            DirectiveStatus::Failed => self.failed += 1,
            DirectiveStatus::Queued | DirectiveStatus::Running => self.requeued += 1,
        }
    }

    fn add(&mut self, other: CycleReport) {
        self.claimed += other.claimed;
        self.done += other.done;
        self.failed += other.failed;
        self.requeued += other.requeued;
        self.reaped += other.reaped;
    }
}

/// Claims and runs directives from a [`DirectiveQueue`].
pub struct Worker<Q> {
    queue: Arc<Q>,
    handlers: Arc<HandlerRegistry>,
    config: WorkerConfig,
    clock: Arc<dyn Clock>,
    wakeup: Arc<Notify>,
    liveness: WorkerLiveness,
}

impl<Q> std::fmt::Debug for Worker<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("config", &self.config).finish_non_exhaustive()
    }
}

/// A running worker loop.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<CycleReport>,
    liveness: WorkerLiveness,
}

impl WorkerHandle {
    /// Stops claiming, lets running handlers finish (up to the drain timeout), records their
    /// outcomes, and returns the totals of the worker's life.
    pub async fn shutdown(self) -> CycleReport {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }

    /// Whether the loop's task is still alive (it ends on shutdown, or when it panics).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// A cloneable view of the loop's health, for readiness probes.
    pub fn liveness(&self) -> WorkerLiveness {
        self.liveness.clone()
    }
}

/// First wait before retrying a write of an outcome that failed; it doubles up to
/// [`RECORD_RETRY_MAX`].
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two tries of a write of an outcome.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(5);

/// The text a panic carried (`panic!("…")` gives a `&str` or a `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}

impl<Q: DirectiveQueue + 'static> Worker<Q> {
    /// A worker over `queue`, running `handlers`.
    pub fn new(queue: Arc<Q>, handlers: Arc<HandlerRegistry>, config: WorkerConfig) -> Worker<Q> {
        let config = WorkerConfig {
            batch_size: config.batch_size.max(1),
            concurrency: config.concurrency.max(1),
            interval: config.interval.max(Duration::from_millis(500)),
            ..config
        };
        let liveness = WorkerLiveness::new(&config);
        Worker { queue, handlers, config, clock: Arc::new(SystemClock), wakeup: Arc::new(Notify::new()), liveness }
    }

    /// The health of this worker's loop once [`spawn`](Worker::spawn)ed (`Stopped` before).
    pub fn liveness(&self) -> WorkerLiveness {
        self.liveness.clone()
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Worker<Q> {
        self.clock = clock;
        self
    }

    /// Shares a wake-up signal: `notify_one()` on it (after an enqueue, or from PostgreSQL's
    /// `LISTEN`) makes an idle worker claim at once instead of at its next poll.
    pub fn with_wakeup(mut self, wakeup: Arc<Notify>) -> Worker<Q> {
        self.wakeup = wakeup;
        self
    }

    /// The wake-up signal this worker listens to.
    pub fn wakeup(&self) -> Arc<Notify> {
        self.wakeup.clone()
    }

    /// The topics this worker claims, or `None` when there is nothing to run.
    fn topics(&self) -> Option<Vec<String>> {
        match &self.config.topics {
            Some(forced) if !forced.is_empty() => Some(forced.clone()),
            _ => {
                let registered: Vec<String> = self.handlers.topics().into_iter().map(str::to_owned).collect();
                (!registered.is_empty()).then_some(registered)
            }
        }
    }

    /// How often the claims this worker holds are renewed: a quarter of the reap timeout (of its
    /// default when reaping is off), so a live worker's claims never look stuck to any reaper.
    fn renew_every(&self) -> Duration {
        let lease = if self.config.reap_timeout > TimeDelta::zero() {
            self.config.reap_timeout
        } else {
            WorkerConfig::default().reap_timeout
        };
        (lease.to_std().unwrap_or(Duration::from_secs(600)) / 4).max(Duration::from_millis(50))
    }

    /// Renews the claims this worker holds (best effort: a failed renewal is tried again at the
    /// next tick, well before the claims lapse).
    async fn renew(&self, held: &[DirectiveUpdate]) {
        if held.is_empty() {
            return;
        }
        match self.queue.finish(held, self.clock.now()).await {
            Ok(renewed) if usize::try_from(renewed).is_ok_and(|n| n == held.len()) => {}
            Ok(renewed) => {
                tracing::warn!(renewed, held = held.len(), "some claims were taken over (reaped or retried by force)");
            }
            Err(error) => {
                tracing::error!(%error, held = held.len(), "could not renew the claims of running directives");
            }
        }
    }

    /// Writes one run's outcome, retrying with backoff until it is written (or the future is
    /// dropped, when a shutdown's drain deadline passes). While it cannot be written, the
    /// worker's liveness reports the failure.
    async fn record(&self, update: &DirectiveUpdate) {
        let mut wait = RECORD_RETRY_FIRST;
        let mut failing = None;
        loop {
            match self.queue.finish(std::slice::from_ref(update), self.clock.now()).await {
                Ok(0) => {
                    tracing::warn!(directive = update.id, "outcome not recorded: the claim was taken over");
                    return;
                }
                Ok(_) => return,
                Err(error) => {
                    failing.get_or_insert_with(|| self.liveness.failing_write());
                    tracing::error!(directive = update.id, %error, retry_in = ?wait, "could not record a directive outcome");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RECORD_RETRY_MAX);
                }
            }
        }
    }

    /// Runs one directive and records its outcome as soon as its handler ends.
    async fn run_and_record(&self, directive: Directive) -> DirectiveUpdate {
        let update = self.run(directive).await;
        self.record(&update).await;
        update
    }

    /// Reaps `running` directives whose claim went unrenewed for longer than the reap timeout.
    pub async fn reap(&self) -> Result<usize, StoreError> {
        if self.config.reap_timeout <= TimeDelta::zero() {
            return Ok(0);
        }
        let now = self.clock.now();
        let stuck = self.queue.stuck_directives(now - self.config.reap_timeout).await?;
        let updates: Vec<DirectiveUpdate> =
            stuck.iter().filter_map(|d| decide_reap(d, &self.config.policy, self.config.reap_timeout, now)).collect();
        if updates.is_empty() {
            return Ok(0);
        }
        let reaped = self.queue.finish(&updates, now).await?;
        tracing::warn!(reaped, "reaped directives stuck in running");
        Ok(usize::try_from(reaped).unwrap_or(usize::MAX))
    }

    /// Runs one directive's handler with the timeout.
    async fn run(&self, directive: Directive) -> DirectiveUpdate {
        let ctx = HandlerCtx { actor: self.config.actor.clone(), now: self.clock.now() };
        let result = match self.handlers.handler(&directive.topic) {
            None => RunResult::NoHandler,
            Some(handler) => {
                // A panicking handler is a failed attempt like any other error (retried under the
                // policy), not the end of the loop that runs every other directive.
                let run = AssertUnwindSafe(handler.handle(&directive, &ctx)).catch_unwind();
                match tokio::time::timeout(self.config.handler_timeout, run).await {
                    Ok(Ok(result)) => RunResult::Handled(result),
                    Ok(Err(panic)) => {
                        let message = panic_message(panic.as_ref());
                        tracing::error!(directive = directive.id, topic = %directive.topic, %message, "handler panicked");
                        RunResult::Handled(Err(HandlerError(format!("handler panicked: {message}"))))
                    }
                    Err(_) => RunResult::Handled(Err(HandlerError(format!(
                        "handler timed out after {}s",
                        self.config.handler_timeout.as_secs_f64()
                    )))),
                }
            }
        };
        decide_outcome(&directive, result, &self.config.policy, self.clock.now())
    }

    /// Claims one batch and runs it with bounded concurrency, recording each outcome as soon as
    /// its handler ends and renewing the claims it still holds (running or waiting) every
    /// [`renew_every`](Worker::renew_every).
    ///
    /// When `stop` fires mid-batch, unstarted directives are handed back untouched and running
    /// handlers get up to the drain timeout; those still running then are interrupted and
    /// recorded as a transient failure, so nothing is left `running`.
    async fn cycle(
        &self,
        topics: &[String],
        mut stop: Option<&mut watch::Receiver<bool>>,
    ) -> Result<CycleReport, StoreError> {
        let claimed = self.queue.claim(Some(topics), self.config.batch_size, self.clock.now()).await?;
        let mut report = CycleReport { claimed: claimed.len(), ..CycleReport::default() };
        if claimed.is_empty() {
            return Ok(report);
        }
        let mut pending: Vec<Directive> = claimed;
        pending.reverse(); // pop() then takes them oldest first
        let mut in_flight: HashMap<i64, Directive> = HashMap::new();
        let mut running = FuturesUnordered::new();
        let mut drain_deadline: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let renew_every = self.renew_every();
        let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while drain_deadline.is_none() && running.len() < self.config.concurrency {
                let Some(d) = pending.pop() else { break };
                in_flight.insert(d.id, d.clone());
                running.push(self.run_and_record(d));
            }
            if running.is_empty() {
                break;
            }
            let stop_signal = async {
                match stop.as_mut() {
                    Some(s) => {
                        let _ = s.wait_for(|stopped| *stopped).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let draining = drain_deadline.is_some();
            let deadline = async {
                match drain_deadline.as_mut() {
                    Some(sleep) => sleep.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(update) = running.next() => {
                    self.liveness.beat();
                    in_flight.remove(&update.id);
                    report.count(&update);
                }
                _ = renewals.tick() => {
                    let held: Vec<DirectiveUpdate> = pending.iter().chain(in_flight.values()).map(renew_claim).collect();
                    self.renew(&held).await;
                }
                () = stop_signal, if !draining => {
                    drain_deadline = Some(Box::pin(tokio::time::sleep(self.config.drain_timeout)));
                }
                () = deadline => break,
            }
        }
        drop(running);
        if pending.is_empty() && in_flight.is_empty() {
            return Ok(report);
        }
        let now = self.clock.now();
        // Never started: the claim is undone (`queued`, attempt not counted).
        let mut updates: Vec<DirectiveUpdate> =
            pending.iter().map(|d| decide_outcome(d, RunResult::NoHandler, &self.config.policy, now)).collect();
        // Started but cut off by the drain deadline (their handler, or the write of their
        // outcome): a transient failure, retried by the policy. If this write fails too, their
        // claims lapse and the reaper takes them.
        updates.extend(in_flight.values().map(|d| {
            let interrupted = RunResult::Handled(Err(HandlerError("interrupted by worker shutdown".into())));
            decide_outcome(d, interrupted, &self.config.policy, now)
        }));
        for u in &updates {
            report.count(u);
        }
        self.queue.finish(&updates, now).await?;
        Ok(report)
    }

    /// One-shot mode: reap, then one cycle (docs/reference.md §9).
    pub async fn run_once(&self) -> Result<CycleReport, StoreError> {
        let reaped = self.reap().await?;
        let Some(topics) = self.topics() else {
            tracing::warn!("no directive handlers registered and no --topic given: nothing to run");
            return Ok(CycleReport { reaped, ..CycleReport::default() });
        };
        let mut report = self.cycle(&topics, None).await?;
        report.reaped = reaped;
        Ok(report)
    }

    /// Starts the loop on the current runtime: claims while there is work, sleeps `interval` (or
    /// until woken) when idle, reaps on cycles 0, 5, 10…
    pub fn spawn(self) -> WorkerHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let liveness = self.liveness.clone();
        // Marked running before the task starts, so a handle is never `Stopped` before its loop ran.
        let guard = liveness.enter();
        let task = tokio::spawn(async move {
            let _guard = guard;
            self.run_loop(stop_rx).await
        });
        WorkerHandle { stop: stop_tx, task, liveness }
    }

    async fn run_loop(self, mut stop: watch::Receiver<bool>) -> CycleReport {
        let mut total = CycleReport::default();
        let Some(topics) = self.topics() else {
            tracing::warn!("no directive handlers registered and no --topic given: worker idle");
            // Nothing to run is not a failure: keep beating until stopped.
            while !*stop.borrow() {
                self.liveness.beat();
                tokio::select! {
                    () = tokio::time::sleep(self.config.interval) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
            return total;
        };
        let mut cycle_no: u64 = 0;
        while !*stop.borrow() {
            self.liveness.beat();
            if cycle_no % 5 == 0 {
                match self.reap().await {
                    Ok(n) => total.reaped += n,
                    Err(error) => tracing::error!(%error, "reaper failed"),
                }
            }
            cycle_no += 1;
            let report = match self.cycle(&topics, Some(&mut stop)).await {
                Ok(report) => report,
                Err(error) => {
                    tracing::error!(%error, "directive cycle failed");
                    CycleReport::default()
                }
            };
            total.add(report);
            if report.claimed == self.config.batch_size {
                continue; // a full batch: there is probably more
            }
            tokio::select! {
                () = self.wakeup.notified() => {}
                () = tokio::time::sleep(self.config.interval) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use chrono::{DateTime, Utc};
    use omniman_core::directive::{
        Directive, DirectiveStatus, DirectiveUpdate, HandlerError, HandlerOutcome, NewDirective,
    };
    use omniman_core::ext::{DirectiveHandler, HandlerCtx, HandlerRegistry};
    use omniman_core::memory::InMemoryStore;
    use omniman_core::page::{Page, PageRequest};
    use omniman_core::ports::{DirectiveFilter, DirectiveQueue, StoreResult};

    use std::time::Instant;

    use super::{Worker, WorkerConfig};
    use crate::liveness::WorkerState;

    struct Panics;

    #[async_trait]
    impl DirectiveHandler for Panics {
        fn topic(&self) -> &str {
            "boom"
        }

        async fn handle(&self, _d: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
            panic!("handler bug");
        }
    }

    struct Fine;

    #[async_trait]
    impl DirectiveHandler for Fine {
        fn topic(&self) -> &str {
            "fine"
        }

        async fn handle(&self, _d: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
            Ok(HandlerOutcome::done())
        }
    }

    fn registry() -> Arc<HandlerRegistry> {
        Arc::new(HandlerRegistry::new().register(Arc::new(Panics)).unwrap().register(Arc::new(Fine)).unwrap())
    }

    fn directive(topic: &str) -> NewDirective {
        NewDirective { topic: topic.into(), payload: serde_json::Map::new(), available_at: Utc::now() }
    }

    fn config() -> WorkerConfig {
        WorkerConfig {
            interval: Duration::from_millis(500),
            handler_timeout: Duration::from_secs(1),
            ..WorkerConfig::default()
        }
    }

    async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        done()
    }

    #[tokio::test]
    async fn a_spawned_loop_is_running_until_it_is_shut_down() {
        let worker = Worker::new(Arc::new(InMemoryStore::new()), registry(), config());
        assert_eq!(worker.liveness().state(), WorkerState::Stopped, "not spawned yet");
        let handle = worker.spawn();
        let liveness = handle.liveness();
        assert!(handle.is_running());
        assert!(liveness.state().is_healthy(), "{:?}", liveness.state());
        assert_eq!(liveness.stall_after(), Duration::from_millis(2500), "handler timeout + 3 intervals");
        // An idle loop beats at least once per poll interval.
        tokio::time::sleep(Duration::from_secs(2)).await;
        match liveness.state() {
            WorkerState::Running { since_last_beat } => {
                assert!(since_last_beat < Duration::from_millis(1200), "{since_last_beat:?}");
            }
            other => panic!("expected running, got {other:?}"),
        }
        handle.shutdown().await;
        assert_eq!(liveness.state(), WorkerState::Stopped);
    }

    #[tokio::test]
    async fn no_beat_for_longer_than_stall_after_is_stalled() {
        let handle = Worker::new(Arc::new(InMemoryStore::new()), registry(), config()).spawn();
        let liveness = handle.liveness();
        let later = Instant::now() + liveness.stall_after() + Duration::from_secs(1);
        assert!(
            matches!(liveness.state_at(later), WorkerState::Stalled { since_last_beat } if since_last_beat > liveness.stall_after())
        );
        assert!(!liveness.state_at(later).is_healthy());
        handle.shutdown().await;
        assert_eq!(liveness.state_at(later), WorkerState::Stopped, "a stopped loop is stopped, not stalled");
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_failed_attempt_and_the_loop_goes_on() {
        let store = Arc::new(InMemoryStore::new());
        let handle = Worker::new(store.clone(), registry(), config()).spawn();
        let liveness = handle.liveness();
        let ids = store.enqueue(&[directive("boom"), directive("fine")]).await.unwrap();
        let settled = wait_until(Duration::from_secs(5), || {
            let boom = futures_executor::block_on(store.directive(ids[0])).unwrap().unwrap();
            let fine = futures_executor::block_on(store.directive(ids[1])).unwrap().unwrap();
            boom.attempts >= 1 && boom.status != DirectiveStatus::Running && fine.status == DirectiveStatus::Done
        })
        .await;
        assert!(settled, "both directives were run and recorded");
        let boom = store.directive(ids[0]).await.unwrap().unwrap();
        assert_eq!(boom.status, DirectiveStatus::Queued, "retried under the policy");
        assert_eq!(boom.last_error, "handler panicked: handler bug");
        assert!(liveness.state().is_healthy(), "{:?}", liveness.state());
        handle.shutdown().await;
    }

    /// A queue whose claim panics: a bug in the loop itself, not in a handler.
    struct ClaimPanics(InMemoryStore);

    impl DirectiveQueue for ClaimPanics {
        async fn enqueue(&self, directives: &[NewDirective]) -> StoreResult<Vec<i64>> {
            self.0.enqueue(directives).await
        }
        async fn claim(&self, _: Option<&[String]>, _: usize, _: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
            panic!("claim bug")
        }
        async fn finish(&self, updates: &[DirectiveUpdate], now: DateTime<Utc>) -> StoreResult<u64> {
            self.0.finish(updates, now).await
        }
        async fn stuck_directives(&self, started_before: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
            self.0.stuck_directives(started_before).await
        }
        async fn requeue(&self, update: &DirectiveUpdate, now: DateTime<Utc>) -> StoreResult<bool> {
            self.0.requeue(update, now).await
        }
        async fn directive(&self, id: i64) -> StoreResult<Option<Directive>> {
            self.0.directive(id).await
        }
        async fn list_directives(&self, filter: &DirectiveFilter, page: &PageRequest) -> StoreResult<Page<Directive>> {
            self.0.list_directives(filter, page).await
        }
        async fn directive_counts(&self) -> StoreResult<Vec<(DirectiveStatus, i64)>> {
            self.0.directive_counts().await
        }
    }

    #[tokio::test]
    async fn a_panic_in_the_loop_itself_shows_as_stopped() {
        let handle = Worker::new(Arc::new(ClaimPanics(InMemoryStore::new())), registry(), config()).spawn();
        let liveness = handle.liveness();
        assert!(
            wait_until(Duration::from_secs(5), || liveness.state() == WorkerState::Stopped).await,
            "the loop's task died with the panic"
        );
        assert!(!handle.is_running());
        assert!(!liveness.is_running());
    }
}
