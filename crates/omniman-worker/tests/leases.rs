//! Claims, leases and outcome writes (docs/directives.md, "Claims and leases") on the in-memory
//! queue, on paused Tokio time.
//!
//! The workers here read the time from [`PausedClock`], which follows Tokio's (paused) clock, so
//! the reaper sees directives age exactly as the handlers' sleeps make time pass.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use omniman_core::clock::Clock;
use omniman_core::directive::{
    Directive, DirectiveStatus, DirectiveUpdate, HandlerError, HandlerOutcome, NewDirective,
};
use omniman_core::error::StoreError;
use omniman_core::ext::{DirectiveHandler, HandlerCtx, HandlerRegistry};
use omniman_core::memory::InMemoryStore;
use omniman_core::page::{Page, PageRequest};
use omniman_core::ports::{DirectiveFilter, DirectiveQueue, StoreResult};
use omniman_worker::{Worker, WorkerConfig, WorkerState};
use serde_json::Map;
use tokio::time::Instant;

/// Wall-clock time that moves with Tokio's clock (paused in these tests).
struct PausedClock {
    origin: DateTime<Utc>,
    start: Instant,
}

impl PausedClock {
    fn new() -> Arc<PausedClock> {
        Arc::new(PausedClock { origin: "2026-12-01T12:00:00Z".parse().unwrap(), start: Instant::now() })
    }
}

impl Clock for PausedClock {
    fn now(&self) -> DateTime<Utc> {
        self.origin + TimeDelta::from_std(self.start.elapsed()).unwrap()
    }
}

/// A handler that sleeps, then answers `done`, counting its runs per directive.
struct Slow {
    sleep: Duration,
    runs: Mutex<HashMap<i64, usize>>,
    finished: AtomicUsize,
}

impl Slow {
    fn new(sleep: Duration) -> Arc<Slow> {
        Arc::new(Slow { sleep, runs: Mutex::new(HashMap::new()), finished: AtomicUsize::new(0) })
    }

    fn runs(&self) -> HashMap<i64, usize> {
        self.runs.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl DirectiveHandler for Slow {
    fn topic(&self) -> &str {
        "webhook.post"
    }

    async fn handle(&self, d: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        *self.runs.lock().unwrap().entry(d.id).or_default() += 1;
        tokio::time::sleep(self.sleep).await;
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(HandlerOutcome::done())
    }
}

async fn enqueue(store: &impl DirectiveQueue, clock: &PausedClock, n: usize) -> Vec<i64> {
    let at = clock.now() - TimeDelta::seconds(1);
    let batch: Vec<NewDirective> =
        (0..n).map(|_| NewDirective { topic: "webhook.post".into(), payload: Map::new(), available_at: at }).collect();
    store.enqueue(&batch).await.unwrap()
}

fn registry(handler: Arc<Slow>) -> Arc<HandlerRegistry> {
    Arc::new(HandlerRegistry::new().register(handler).unwrap())
}

fn count(store: &InMemoryStore, status: DirectiveStatus) -> usize {
    store.all_directives().iter().filter(|d| d.status == status).count()
}

/// Two workers on one queue, a reap timeout far shorter than a batch takes: neither reaps what
/// the other holds, so every directive runs once and ends `done`.
#[tokio::test(start_paused = true)]
async fn workers_do_not_reap_each_others_live_batches() {
    let store = Arc::new(InMemoryStore::new());
    let clock = PausedClock::new();
    let ids = enqueue(store.as_ref(), &clock, 30).await;
    let handler = Slow::new(Duration::from_secs(4));
    let config = WorkerConfig {
        interval: Duration::from_secs(1),
        reap_timeout: TimeDelta::milliseconds(15_000),
        ..WorkerConfig::default()
    };
    // One batch of 30, two at a time: 60 s for the worker that claims it, four times the timeout.
    let first = Worker::new(store.clone(), registry(handler.clone()), config.clone()).with_clock(clock.clone()).spawn();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let second = Worker::new(store.clone(), registry(handler.clone()), config).with_clock(clock.clone()).spawn();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let (a, b) = (first.shutdown().await, second.shutdown().await);
    assert_eq!((a.reaped, b.reaped), (0, 0), "nothing was reaped");
    assert_eq!(count(&store, DirectiveStatus::Done), ids.len(), "{:?}", store.all_directives());
    let runs = handler.runs();
    assert!(ids.iter().all(|id| runs.get(id) == Some(&1)), "each handler ran once: {runs:?}");
    assert!(store.all_directives().iter().all(|d| d.attempts == 1));
}

/// A worker's outcomes are written as each handler ends, not when its batch ends.
#[tokio::test(start_paused = true)]
async fn each_outcome_is_written_when_its_handler_ends() {
    let store = Arc::new(InMemoryStore::new());
    let clock = PausedClock::new();
    enqueue(store.as_ref(), &clock, 6).await;
    let handler = Slow::new(Duration::from_secs(10));
    let handle = Worker::new(store.clone(), registry(handler), WorkerConfig::default()).with_clock(clock).spawn();
    // Two at a time: after 25 s, four have ended, two run.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!((count(&store, DirectiveStatus::Done), count(&store, DirectiveStatus::Running)), (4, 2));
    handle.shutdown().await;
    assert_eq!(count(&store, DirectiveStatus::Done), 6);
}

/// A worker killed mid-batch (its future dropped: nothing more is written) leaves `running` only
/// what it had not finished; what its handlers had completed stays `done` and never runs again.
#[tokio::test(start_paused = true)]
async fn a_killed_worker_leaves_only_unfinished_directives_to_reap() {
    let store = Arc::new(InMemoryStore::new());
    let clock = PausedClock::new();
    let ids = enqueue(store.as_ref(), &clock, 10).await;
    let handler = Slow::new(Duration::from_secs(1));
    let config = WorkerConfig { reap_timeout: TimeDelta::seconds(30), ..WorkerConfig::default() };
    let worker = Worker::new(store.clone(), registry(handler.clone()), config.clone()).with_clock(clock.clone());
    let batch = tokio::spawn(async move { worker.run_once().await });
    // Two at a time, 1 s each: at 3.5 s six have completed, two are in flight, two wait.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    batch.abort();
    assert!(batch.await.unwrap_err().is_cancelled());
    assert_eq!(handler.finished.load(Ordering::SeqCst), 6);
    assert_eq!((count(&store, DirectiveStatus::Done), count(&store, DirectiveStatus::Running)), (6, 4));

    // Nobody renews the dead worker's claims: once they lapse, another worker reaps and runs them.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let report =
        Worker::new(store.clone(), registry(handler.clone()), config).with_clock(clock).run_once().await.unwrap();
    assert_eq!((report.reaped, report.claimed, report.done), (4, 4, 4));
    assert_eq!(count(&store, DirectiveStatus::Done), ids.len());
    // Ran twice: only the two that were in flight when the worker died.
    let runs = handler.runs();
    let twice = ids.iter().filter(|id| runs.get(id) == Some(&2)).count();
    let once = ids.iter().filter(|id| runs.get(id) == Some(&1)).count();
    assert_eq!((once, twice), (8, 2), "{runs:?}");
}

/// The in-memory queue, with writes of outcomes failing while `down` is set (a database outage).
struct Outage {
    inner: InMemoryStore,
    down: AtomicBool,
    failed_writes: AtomicUsize,
}

impl DirectiveQueue for Outage {
    async fn enqueue(&self, directives: &[NewDirective]) -> StoreResult<Vec<i64>> {
        self.inner.enqueue(directives).await
    }
    async fn claim(&self, topics: Option<&[String]>, limit: usize, now: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
        self.inner.claim(topics, limit, now).await
    }
    async fn finish(&self, updates: &[DirectiveUpdate], now: DateTime<Utc>) -> StoreResult<u64> {
        if self.down.load(Ordering::SeqCst) {
            self.failed_writes.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.inner.finish(updates, now).await
    }
    async fn stuck_directives(&self, seen_before: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
        self.inner.stuck_directives(seen_before).await
    }
    async fn requeue(&self, update: &DirectiveUpdate, now: DateTime<Utc>) -> StoreResult<bool> {
        self.inner.requeue(update, now).await
    }
    async fn directive(&self, id: i64) -> StoreResult<Option<Directive>> {
        self.inner.directive(id).await
    }
    async fn list_directives(&self, filter: &DirectiveFilter, page: &PageRequest) -> StoreResult<Page<Directive>> {
        self.inner.list_directives(filter, page).await
    }
    async fn directive_counts(&self) -> StoreResult<Vec<(DirectiveStatus, i64)>> {
        self.inner.directive_counts().await
    }
}

/// Outcomes that cannot be written are retried until they are, and meanwhile the worker's
/// liveness says it is not healthy.
#[tokio::test(start_paused = true)]
async fn outcomes_are_retried_through_an_outage_and_liveness_reports_it() {
    let queue = Arc::new(Outage {
        inner: InMemoryStore::new(),
        down: AtomicBool::new(true),
        failed_writes: AtomicUsize::new(0),
    });
    let clock = PausedClock::new();
    let ids = enqueue(queue.as_ref(), &clock, 3).await;
    let handler = Slow::new(Duration::from_secs(1));
    let handle =
        Worker::new(queue.clone(), registry(handler.clone()), WorkerConfig::default()).with_clock(clock).spawn();
    let liveness = handle.liveness();
    // Two handlers (both slots) are done within 1 s; their outcomes cannot be written, and the
    // slots stay taken until they are: the third waits.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(handler.finished.load(Ordering::SeqCst), 2);
    assert!(queue.failed_writes.load(Ordering::SeqCst) > 2, "the writes were retried");
    assert_eq!(count(&queue.inner, DirectiveStatus::Running), 3);
    let state = liveness.state();
    assert!(!state.is_healthy(), "{state:?}");
    assert!(matches!(state, WorkerState::Failing { .. }), "{state:?}");

    // The database is back: the outcomes are written without running the handlers again.
    queue.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(count(&queue.inner, DirectiveStatus::Done), 3, "{:?}", queue.inner.all_directives());
    assert!(ids.iter().all(|id| handler.runs().get(id) == Some(&1)));
    let state = liveness.state();
    assert!(state.is_healthy(), "{state:?}");
    handle.shutdown().await;
}
