//! Worker behaviour (docs/reference.md §9) on the in-memory queue.
//!
//! Tests about timeouts, concurrency and draining run on paused Tokio time
//! (`start_paused = true`): the clock jumps to the next timer whenever every task waits, so a
//! handler that "sleeps" a minute costs nothing and the elapsed times asserted are exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use chrono::{TimeDelta, Utc};
use omniman_core::directive::{Directive, DirectiveStatus, HandlerError, HandlerOutcome, NewDirective};
use omniman_core::ext::{DirectiveHandler, HandlerCtx, HandlerRegistry};
use omniman_core::memory::InMemoryStore;
use omniman_core::ports::DirectiveQueue;
use omniman_worker::{Worker, WorkerConfig};
use serde_json::{Map, Value};

/// A handler that counts runs and behaves as told.
struct Probe {
    topic: &'static str,
    runs: Arc<AtomicUsize>,
    behaviour: Behaviour,
}

#[derive(Clone, Copy)]
enum Behaviour {
    Done,
    Fail,
    Transient,
    Sleep(Duration),
}

#[async_trait::async_trait]
impl DirectiveHandler for Probe {
    fn topic(&self) -> &str {
        self.topic
    }

    async fn handle(&self, _d: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.behaviour {
            Behaviour::Done => {
                let mut patch = Map::new();
                patch.insert("handled".into(), Value::Bool(true));
                Ok(HandlerOutcome::Done { patch })
            }
            Behaviour::Fail => Ok(HandlerOutcome::failed("no_intent_id")),
            Behaviour::Transient => Err(HandlerError("backend down".into())),
            Behaviour::Sleep(d) => {
                tokio::time::sleep(d).await;
                Ok(HandlerOutcome::done())
            }
        }
    }
}

fn probe(topic: &'static str, behaviour: Behaviour) -> (Arc<HandlerRegistry>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(Probe { topic, runs: runs.clone(), behaviour });
    (Arc::new(HandlerRegistry::new().register(handler).unwrap()), runs)
}

async fn enqueue(store: &InMemoryStore, topic: &str, n: usize) {
    let now = Utc::now() - TimeDelta::seconds(1);
    let batch: Vec<NewDirective> =
        (0..n).map(|_| NewDirective { topic: topic.into(), payload: Map::new(), available_at: now }).collect();
    store.enqueue(&batch).await.unwrap();
}

fn statuses(store: &InMemoryStore) -> Vec<DirectiveStatus> {
    store.all_directives().iter().map(|d| d.status).collect()
}

#[tokio::test]
async fn handler_runs_once_and_directive_is_done_with_patch() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "greet", 1).await;
    let (handlers, runs) = probe("greet", Behaviour::Done);
    let report = Worker::new(store.clone(), handlers, WorkerConfig::default()).run_once().await.unwrap();
    assert_eq!((report.claimed, report.done), (1, 1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let d = &store.all_directives()[0];
    assert_eq!((d.status, d.attempts, d.last_error.as_str()), (DirectiveStatus::Done, 1, ""));
    assert_eq!(d.payload["handled"], Value::Bool(true));
}

#[tokio::test]
async fn limit_two_handles_two_of_three() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "greet", 3).await;
    let (handlers, _) = probe("greet", Behaviour::Done);
    let config = WorkerConfig { batch_size: 2, ..WorkerConfig::default() };
    let report = Worker::new(store.clone(), handlers, config).run_once().await.unwrap();
    assert_eq!(report.done, 2);
    assert_eq!(statuses(&store), [DirectiveStatus::Done, DirectiveStatus::Done, DirectiveStatus::Queued]);
}

#[tokio::test]
async fn topic_filter_only_claims_that_topic() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "greet", 1).await;
    enqueue(&store, "other", 1).await;
    let (handlers, _) = probe("greet", Behaviour::Done);
    let config = WorkerConfig { topics: Some(vec!["greet".into()]), ..WorkerConfig::default() };
    Worker::new(store.clone(), handlers, config).run_once().await.unwrap();
    assert_eq!(statuses(&store), [DirectiveStatus::Done, DirectiveStatus::Queued]);
}

#[tokio::test]
async fn forced_unknown_topic_stays_queued_without_counting_an_attempt() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "mystery", 1).await;
    let (handlers, _) = probe("greet", Behaviour::Done);
    let config = WorkerConfig { topics: Some(vec!["mystery".into()]), ..WorkerConfig::default() };
    let report = Worker::new(store.clone(), handlers, config).run_once().await.unwrap();
    assert_eq!((report.claimed, report.requeued), (1, 1));
    let d = &store.all_directives()[0];
    assert_eq!((d.status, d.attempts), (DirectiveStatus::Queued, 0));
}

#[tokio::test]
async fn no_handlers_or_empty_queue_is_not_an_error() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "greet", 1).await;
    let report = Worker::new(store.clone(), Arc::new(HandlerRegistry::default()), WorkerConfig::default())
        .run_once()
        .await
        .unwrap();
    assert_eq!(report.claimed, 0);
    assert_eq!(statuses(&store), [DirectiveStatus::Queued]);
    let (handlers, _) = probe("greet", Behaviour::Done);
    let empty = Arc::new(InMemoryStore::new());
    assert_eq!(Worker::new(empty, handlers, WorkerConfig::default()).run_once().await.unwrap().claimed, 0);
}

#[tokio::test]
async fn permanent_failure_is_failed_with_reason() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "pay", 1).await;
    let (handlers, _) = probe("pay", Behaviour::Fail);
    let report = Worker::new(store.clone(), handlers, WorkerConfig::default()).run_once().await.unwrap();
    assert_eq!(report.failed, 1);
    let d = &store.all_directives()[0];
    assert_eq!((d.status, d.last_error.as_str()), (DirectiveStatus::Failed, "no_intent_id"));
}

#[tokio::test]
async fn transient_errors_back_off_then_fail_after_max_attempts() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "flaky", 1).await;
    let (handlers, runs) = probe("flaky", Behaviour::Transient);
    let worker = Worker::new(store.clone(), handlers, WorkerConfig::default());
    worker.run_once().await.unwrap();
    let d = store.all_directives()[0].clone();
    assert_eq!((d.status, d.attempts, d.last_error.as_str()), (DirectiveStatus::Queued, 1, "backend down"));
    let wait = d.available_at - d.started_at.unwrap();
    assert_eq!(wait, TimeDelta::seconds(2));
    // Not available yet: a second run claims nothing.
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    // Make it available four more times: the fifth failure is final.
    for _ in 0..4 {
        let id = store.all_directives()[0].id;
        let d = store.directive(id).await.unwrap().unwrap();
        let retry = omniman_core::directive::manual_retry(&d, Utc::now() - TimeDelta::seconds(1)).unwrap();
        store.requeue(&retry, Utc::now()).await.unwrap();
        worker.run_once().await.unwrap();
    }
    let d = &store.all_directives()[0];
    assert_eq!((d.status, d.attempts), (DirectiveStatus::Failed, 5));
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn handler_timeout_counts_as_transient_failure() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "slow", 1).await;
    let (handlers, _) = probe("slow", Behaviour::Sleep(Duration::from_secs(3600)));
    let started = Instant::now();
    Worker::new(store.clone(), handlers, WorkerConfig::default()).run_once().await.unwrap();
    // The default handler timeout, not the handler's hour.
    assert_eq!(started.elapsed(), WorkerConfig::default().handler_timeout);
    let d = &store.all_directives()[0];
    assert_eq!(d.status, DirectiveStatus::Queued);
    assert!(d.last_error.contains("timed out"), "{}", d.last_error);
}

#[tokio::test]
async fn reaper_requeues_directives_stuck_in_running() {
    let store = Arc::new(InMemoryStore::new());
    let an_hour_ago = Utc::now() - TimeDelta::hours(1);
    store
        .enqueue(&[NewDirective { topic: "greet".into(), payload: Map::new(), available_at: an_hour_ago }])
        .await
        .unwrap();
    // A worker that died mid-run: claimed 20 minutes ago, never finished.
    store.claim(None, 10, Utc::now() - TimeDelta::minutes(20)).await.unwrap();
    let (handlers, runs) = probe("greet", Behaviour::Done);
    let report = Worker::new(store.clone(), handlers, WorkerConfig::default()).run_once().await.unwrap();
    assert_eq!(report.reaped, 1);
    // One-shot mode reaps, then runs a cycle: the reaped directive ran again and is done.
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let d = &store.all_directives()[0];
    assert_eq!((d.status, d.attempts), (DirectiveStatus::Done, 2));
}

#[tokio::test(start_paused = true)]
async fn runs_handlers_concurrently_up_to_the_limit() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "slow", 6).await;
    let (handlers, _) = probe("slow", Behaviour::Sleep(Duration::from_secs(10)));
    let config = WorkerConfig { concurrency: 3, ..WorkerConfig::default() };
    let started = Instant::now();
    let report = Worker::new(store.clone(), handlers, config).run_once().await.unwrap();
    assert_eq!(report.done, 6);
    // Six 10 s handlers, three at a time: two rounds (one at a time would take 60 s, all at once 10 s).
    assert_eq!(started.elapsed(), Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn idle_worker_wakes_on_signal_and_drains_on_shutdown() {
    let store = Arc::new(InMemoryStore::new());
    let (handlers, runs) = probe("greet", Behaviour::Done);
    let config = WorkerConfig { interval: Duration::from_secs(30), ..WorkerConfig::default() };
    let worker = Worker::new(store.clone(), handlers, config);
    let wakeup = worker.wakeup();
    let handle = worker.spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    enqueue(&store, "greet", 3).await;
    let signalled = Instant::now();
    wakeup.notify_one();
    while runs.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Far less than the 30 s poll interval: the signal woke it, not the poll.
    assert!(signalled.elapsed() < Duration::from_secs(1), "{:?}", signalled.elapsed());
    let total = handle.shutdown().await;
    assert_eq!(total.done, 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_running_handlers_finish() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "slow", 1).await;
    let (handlers, _) = probe("slow", Behaviour::Sleep(Duration::from_secs(20)));
    let handle = Worker::new(store.clone(), handlers, WorkerConfig::default()).spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(statuses(&store), [DirectiveStatus::Running]);
    handle.shutdown().await;
    assert_eq!(statuses(&store), [DirectiveStatus::Done]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_past_the_drain_timeout_leaves_nothing_running() {
    let store = Arc::new(InMemoryStore::new());
    enqueue(&store, "stuck", 3).await;
    let (handlers, _) = probe("stuck", Behaviour::Sleep(Duration::from_secs(3600)));
    let config = WorkerConfig { concurrency: 1, handler_timeout: Duration::from_secs(7200), ..WorkerConfig::default() };
    let handle = Worker::new(store.clone(), handlers, config).spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shutting_down = Instant::now();
    handle.shutdown().await;
    // It waited the drain timeout (30 s by default), not the hour the handler wanted.
    assert_eq!(shutting_down.elapsed(), WorkerConfig::default().drain_timeout);
    let all = store.all_directives();
    assert!(all.iter().all(|d| d.status == DirectiveStatus::Queued), "{all:?}");
    // The interrupted one counted its attempt; the two never started did not.
    let mut attempts: Vec<i32> = all.iter().map(|d| d.attempts).collect();
    attempts.sort_unstable();
    assert_eq!(attempts, [0, 0, 1]);
    assert!(all.iter().any(|d| d.last_error.contains("interrupted")));
}
