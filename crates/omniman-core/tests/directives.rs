//! Directive processing (docs/reference.md §1.4 and §9): what a run turns a directive into (outcome
//! table, backoff, max attempts), the reaper, manual retry, and the in-memory queue's claim/finish
//! semantics. The worker bullets are exercised through a one-cycle loop assembled from the core's
//! pieces (claim → handler → `decide_outcome` → finish), the same pieces the server's worker uses.
//!
//! Left to other layers:
//! - server: the `worker` / `process_directives` command itself (`--limit`, `--topic`, `--watch`,
//!   `--interval`, `--max-attempts`, `--reap-timeout` flags, printed counts, reaping every 5 cycles).
//! - HTTP layer / server: inline dispatch after commit (only after the transaction commits, never on
//!   rollback, retrying older same-topic directives, skipping handler-created children).
//! - storage: `FOR UPDATE SKIP LOCKED` claiming across processes and LISTEN/NOTIFY wake-ups.
//! - stock and payment extensions: their handlers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use common::{World, chan, obj};
use futures_executor::block_on;
use serde_json::{Map, json};

use omniman_core::directive::{DirectiveUpdate, RunResult, decide_outcome, decide_reap, manual_retry};
use omniman_core::ext::{DirectiveHandler, HandlerCtx, HandlerRegistry};
use omniman_core::ports::DirectiveQueue;
use omniman_core::prelude::*;

fn world() -> World {
    World::new(vec![chan(1, "pos")])
}

fn new_directive(topic: &str, available_at: DateTime<Utc>) -> NewDirective {
    NewDirective { topic: topic.into(), payload: obj(json!({"n": topic})), available_at }
}

fn enqueue(world: &World, directives: &[NewDirective]) -> Vec<i64> {
    block_on(world.store().enqueue(directives)).expect("enqueue")
}

fn stored(world: &World, id: i64) -> Directive {
    block_on(world.store().directive(id)).expect("store").expect("directive exists")
}

fn finish(world: &World, updates: &[DirectiveUpdate]) -> u64 {
    block_on(world.store().finish(updates, world.clock.now())).expect("finish")
}

/// A claimed directive at `attempts`, for the pure decisions.
fn running(attempts: i32, started_at: DateTime<Utc>) -> Directive {
    Directive {
        id: 7,
        topic: "stock.hold".into(),
        status: DirectiveStatus::Running,
        payload: obj(json!({"session_key": "S"})),
        attempts,
        available_at: started_at - TimeDelta::seconds(30),
        last_error: "previous".into(),
        created_at: started_at - TimeDelta::minutes(1),
        started_at: Some(started_at),
        updated_at: started_at,
    }
}

/// A handler that counts its runs and answers with `outcome`.
struct Scripted {
    topic: &'static str,
    runs: Arc<AtomicUsize>,
    outcome: fn() -> Result<HandlerOutcome, HandlerError>,
}

#[async_trait]
impl DirectiveHandler for Scripted {
    fn topic(&self) -> &str {
        self.topic
    }
    async fn handle(&self, directive: &Directive, ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        assert_eq!(directive.status, DirectiveStatus::Running);
        assert_eq!(ctx.actor, "process_directives");
        self.runs.fetch_add(1, Ordering::SeqCst);
        (self.outcome)()
    }
}

fn scripted(
    topic: &'static str,
    outcome: fn() -> Result<HandlerOutcome, HandlerError>,
) -> (Arc<dyn DirectiveHandler>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    (Arc::new(Scripted { topic, runs: runs.clone(), outcome }), runs)
}

/// One worker cycle: claim up to `limit` directives of `topics` (default: every registered topic),
/// run each through its handler, and record the outcomes. Returns (done, failed) counts.
fn run_cycle(world: &World, ext: &HandlerRegistry, topics: Option<Vec<String>>, limit: usize) -> (usize, usize) {
    let topics = topics.unwrap_or_else(|| ext.topics().into_iter().map(str::to_owned).collect());
    if topics.is_empty() {
        return (0, 0);
    }
    let now = world.clock.now();
    let claimed = world.claim(Some(&topics), limit);
    let ctx = HandlerCtx { actor: "process_directives".into(), now };
    let mut updates = Vec::new();
    for directive in &claimed {
        let result = match ext.handler(&directive.topic) {
            None => RunResult::NoHandler,
            Some(handler) => RunResult::Handled(block_on(handler.handle(directive, &ctx))),
        };
        updates.push(decide_outcome(directive, result, &RetryPolicy::default(), now));
    }
    let done = updates.iter().filter(|u| u.status == DirectiveStatus::Done).count();
    let failed = updates.iter().filter(|u| u.status == DirectiveStatus::Failed).count();
    assert_eq!(finish(world, &updates), u64::try_from(updates.len()).unwrap());
    (done, failed)
}

fn ext_with(handlers: Vec<Arc<dyn DirectiveHandler>>) -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    for handler in handlers {
        registry = registry.register(handler).expect("distinct topics");
    }
    registry
}

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

#[test]
fn done_clears_the_error_and_merges_the_payload_patch() {
    let now = common::t0();
    let patch = obj(json!({"holds": [{"hold_id": "H-1"}]}));
    let update = decide_outcome(
        &running(1, now),
        RunResult::Handled(Ok(HandlerOutcome::Done { patch: patch.clone() })),
        &RetryPolicy::default(),
        now,
    );
    assert_eq!((update.status, update.last_error.as_str(), update.attempts), (DirectiveStatus::Done, "", 1));
    assert_eq!(update.payload_patch, patch);
    assert_eq!(update.claimed_attempts, 1);
}

#[test]
fn a_permanent_failure_is_failed_at_once_with_its_reason() {
    let now = common::t0();
    let update = decide_outcome(
        &running(1, now),
        RunResult::Handled(Ok(HandlerOutcome::failed("Stale directive: expected rev 2, found 3"))),
        &RetryPolicy::default(),
        now,
    );
    assert_eq!(update.status, DirectiveStatus::Failed);
    assert_eq!(update.last_error, "Stale directive: expected rev 2, found 3");
}

#[test]
fn transient_errors_back_off_2_4_8_16_seconds_from_the_claim_then_fail_at_the_5th() {
    let claim = common::t0();
    let later = claim + TimeDelta::seconds(40);
    let policy = RetryPolicy::default();
    assert_eq!(policy.max_attempts, 5);
    for (attempts, wait) in [(1, 2), (2, 4), (3, 8), (4, 16)] {
        let update = decide_outcome(
            &running(attempts, claim),
            RunResult::Handled(Err(HandlerError("timeout".into()))),
            &policy,
            later,
        );
        assert_eq!(update.status, DirectiveStatus::Queued, "attempt {attempts}");
        assert_eq!(update.attempts, attempts, "attempts are counted by claims");
        assert_eq!(update.available_at, claim + TimeDelta::seconds(wait));
        assert_eq!(update.last_error, "timeout");
    }
    let update =
        decide_outcome(&running(5, claim), RunResult::Handled(Err(HandlerError("timeout".into()))), &policy, later);
    assert_eq!((update.status, update.last_error.as_str()), (DirectiveStatus::Failed, "timeout"));
}

#[test]
fn backoff_is_capped() {
    let policy = RetryPolicy { max_attempts: 100, cap: TimeDelta::seconds(3600) };
    assert_eq!(policy.backoff(11).num_seconds(), 2048);
    assert_eq!(policy.backoff(12).num_seconds(), 3600);
    assert_eq!(policy.backoff(64).num_seconds(), 3600);
    let small = RetryPolicy { max_attempts: 5, cap: TimeDelta::seconds(5) };
    assert_eq!(small.backoff(3).num_seconds(), 5);
}

#[test]
fn errors_are_truncated_to_500_characters() {
    let now = common::t0();
    let long = "é".repeat(900);
    for result in [
        RunResult::Handled(Err(HandlerError(long.clone()))),
        RunResult::Handled(Ok(HandlerOutcome::failed(long.clone()))),
    ] {
        let update = decide_outcome(&running(5, now), result, &RetryPolicy::default(), now);
        assert_eq!(update.last_error.chars().count(), 500);
    }
}

#[test]
fn no_handler_goes_back_to_queued_without_counting_the_attempt() {
    let now = common::t0();
    let update = decide_outcome(&running(3, now), RunResult::NoHandler, &RetryPolicy::default(), now);
    assert_eq!((update.status, update.attempts, update.claimed_attempts), (DirectiveStatus::Queued, 2, 3));
    assert_eq!(update.last_error, "previous");
}

// ---------------------------------------------------------------------------------------------
// Reaper and manual retry
// ---------------------------------------------------------------------------------------------

#[test]
fn the_reaper_requeues_or_fails_runs_stuck_longer_than_the_timeout() {
    let policy = RetryPolicy::default();
    let started = common::t0();
    let timeout = TimeDelta::minutes(10);
    assert_eq!(decide_reap(&running(1, started), &policy, timeout, started + timeout), None);
    let now = started + TimeDelta::minutes(11);
    let requeued = decide_reap(&running(2, started), &policy, timeout, now).expect("stuck");
    assert_eq!((requeued.status, requeued.available_at, requeued.attempts), (DirectiveStatus::Queued, now, 2));
    assert_eq!(requeued.last_error, "Stuck in 'running' for >10min (reaped, will retry)");
    let failed = decide_reap(&running(5, started), &policy, timeout, now).expect("stuck");
    assert_eq!(failed.status, DirectiveStatus::Failed);
    assert_eq!(failed.last_error, "Stuck in 'running' for >10min (reaped after 5 attempts)");
    // Zero turns the reaper off; rows not running are never reaped.
    assert_eq!(decide_reap(&running(1, started), &policy, TimeDelta::zero(), now + TimeDelta::days(9)), None);
    let mut done = running(1, started);
    done.status = DirectiveStatus::Done;
    assert_eq!(decide_reap(&done, &policy, timeout, now), None);
}

#[test]
fn reaping_through_the_queue_requeues_stuck_rows_and_a_late_finish_is_ignored() {
    let world = world();
    let [id] = enqueue(&world, &[new_directive("t", world.clock.now())])[..] else { panic!("one id") };
    let claimed = world.claim(None, 10);
    assert_eq!(claimed.len(), 1);
    world.clock.advance(TimeDelta::minutes(11));
    let now = world.clock.now();
    let stuck = block_on(world.store().stuck_directives(now - TimeDelta::minutes(10))).unwrap();
    assert_eq!(stuck.iter().map(|d| d.id).collect::<Vec<_>>(), [id]);
    let reap: Vec<DirectiveUpdate> =
        stuck.iter().filter_map(|d| decide_reap(d, &RetryPolicy::default(), TimeDelta::minutes(10), now)).collect();
    assert_eq!(finish(&world, &reap), 1);
    let d = stored(&world, id);
    assert_eq!((d.status, d.attempts, d.available_at), (DirectiveStatus::Queued, 1, now));

    // The original run finally ends: its claim is gone, so nothing changes.
    let late =
        decide_outcome(&claimed[0], RunResult::Handled(Ok(HandlerOutcome::done())), &RetryPolicy::default(), now);
    assert_eq!(finish(&world, &[late]), 0);
    assert_eq!(stored(&world, id).status, DirectiveStatus::Queued);
}

#[test]
fn manual_retry_requeues_now_keeping_attempts_and_refuses_running_rows() {
    let world = world();
    let [id] = enqueue(&world, &[new_directive("t", world.clock.now())])[..] else { panic!("one id") };
    let claimed = world.claim(None, 1).remove(0);
    assert!(manual_retry(&claimed, world.clock.now()).is_none(), "running rows are not retried");
    let fail = decide_outcome(
        &claimed,
        RunResult::Handled(Ok(HandlerOutcome::failed("no"))),
        &RetryPolicy::default(),
        world.clock.now(),
    );
    finish(&world, &[fail]);
    let failed = stored(&world, id);
    assert_eq!(failed.status, DirectiveStatus::Failed);

    world.clock.advance(TimeDelta::hours(2));
    let retry = manual_retry(&failed, world.clock.now()).expect("failed rows may be retried");
    assert!(block_on(world.store().requeue(&retry, world.clock.now())).unwrap());
    let d = stored(&world, id);
    assert_eq!((d.status, d.attempts, d.available_at), (DirectiveStatus::Queued, 1, world.clock.now()));
    assert_eq!(world.claim(None, 1).len(), 1, "claimable again");
    // The store refuses to requeue a running row even if asked.
    assert!(!block_on(world.store().requeue(&retry, world.clock.now())).unwrap());
}

// ---------------------------------------------------------------------------------------------
// The in-memory queue
// ---------------------------------------------------------------------------------------------

#[test]
fn enqueued_directives_start_queued_with_no_attempts() {
    let world = world();
    let ids = enqueue(&world, &[new_directive("a", world.clock.now()), new_directive("b", world.clock.now())]);
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    let d = stored(&world, ids[0]);
    assert_eq!((d.status, d.attempts, d.last_error.as_str(), d.started_at), (DirectiveStatus::Queued, 0, "", None));
    assert_eq!(d.payload, obj(json!({"n": "a"})));
}

#[test]
fn claim_takes_at_most_limit_oldest_first_and_marks_them_running() {
    let world = world();
    let now = world.clock.now();
    let ids = enqueue(
        &world,
        &[
            new_directive("t", now - TimeDelta::seconds(1)),
            new_directive("t", now - TimeDelta::seconds(3)),
            new_directive("t", now - TimeDelta::seconds(2)),
        ],
    );
    let claimed = world.claim(None, 2);
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1], ids[2]]);
    for d in &claimed {
        assert_eq!((d.status, d.attempts, d.started_at), (DirectiveStatus::Running, 1, Some(now)));
        assert_eq!(stored(&world, d.id), *d);
    }
    assert_eq!(stored(&world, ids[0]).status, DirectiveStatus::Queued);
}

#[test]
fn claim_skips_directives_not_yet_available_and_filters_by_topic() {
    let world = world();
    let now = world.clock.now();
    let ids = enqueue(
        &world,
        &[
            new_directive("stock.hold", now),
            new_directive("later", now + TimeDelta::seconds(5)),
            new_directive("mail", now),
        ],
    );
    let topics = vec!["stock.hold".to_owned(), "later".to_owned()];
    assert_eq!(world.claim(Some(&topics), 10).iter().map(|d| d.id).collect::<Vec<_>>(), [ids[0]]);
    world.clock.advance(TimeDelta::seconds(5));
    assert_eq!(world.claim(Some(&topics), 10).iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1]]);
    assert_eq!(stored(&world, ids[2]).status, DirectiveStatus::Queued);
    assert!(world.claim(Some(&[]), 10).is_empty());
}

#[test]
fn each_directive_is_claimed_exactly_once_by_concurrent_claimers() {
    let world = world();
    let now = world.clock.now();
    let batch: Vec<NewDirective> = (0..400).map(|i| new_directive(if i % 2 == 0 { "a" } else { "b" }, now)).collect();
    enqueue(&world, &batch);
    let seen = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                loop {
                    let claimed = block_on(world.store().claim(None, 7, now)).unwrap();
                    if claimed.is_empty() {
                        break;
                    }
                    seen.lock().unwrap().extend(claimed.into_iter().map(|d| (d.id, d.attempts)));
                }
            });
        }
    });
    let mut seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 400);
    assert!(seen.iter().all(|&(_, attempts)| attempts == 1));
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 400);
}

#[test]
fn finish_applies_only_to_the_run_that_claimed_and_merges_patches_key_by_key() {
    let world = world();
    let [id] = enqueue(&world, &[new_directive("t", world.clock.now())])[..] else { panic!("one id") };
    let claimed = world.claim(None, 1).remove(0);
    let mut wrong = decide_outcome(
        &claimed,
        RunResult::Handled(Ok(HandlerOutcome::done())),
        &RetryPolicy::default(),
        world.clock.now(),
    );
    wrong.claimed_attempts = 2;
    assert_eq!(finish(&world, &[wrong]), 0);
    assert_eq!(stored(&world, id).status, DirectiveStatus::Running);

    let patch = obj(json!({"holds": ["H-1"], "n": "patched"}));
    let right = decide_outcome(
        &claimed,
        RunResult::Handled(Ok(HandlerOutcome::Done { patch })),
        &RetryPolicy::default(),
        world.clock.now(),
    );
    assert_eq!(finish(&world, std::slice::from_ref(&right)), 1);
    let d = stored(&world, id);
    assert_eq!(d.status, DirectiveStatus::Done);
    assert_eq!(d.payload, obj(json!({"n": "patched", "holds": ["H-1"]})));
    // Not running any more: a repeated finish changes nothing.
    assert_eq!(finish(&world, &[right]), 0);
}

#[test]
fn pending_counts_only_queued_directives() {
    let world = world();
    let now = world.clock.now();
    enqueue(
        &world,
        &[new_directive("a", now), new_directive("a", now), new_directive("a", now), new_directive("a", now)],
    );
    let claimed = world.claim(None, 2);
    let done =
        decide_outcome(&claimed[0], RunResult::Handled(Ok(HandlerOutcome::done())), &RetryPolicy::default(), now);
    finish(&world, &[done]);
    let counts: Map<String, serde_json::Value> = block_on(world.store().directive_counts())
        .unwrap()
        .into_iter()
        .map(|(status, n)| (status.as_str().to_owned(), n.into()))
        .collect();
    assert_eq!(serde_json::Value::Object(counts), json!({"queued": 2, "running": 1, "done": 1}));
}

// ---------------------------------------------------------------------------------------------
// Worker bullets, on one cycle assembled from the core's pieces
// ---------------------------------------------------------------------------------------------

#[test]
fn worker_runs_the_handler_once_and_marks_the_directive_done() {
    let world = world();
    let (handler, runs) = scripted("stock.hold", || Ok(HandlerOutcome::done()));
    let ext = ext_with(vec![handler]);
    let [id] = enqueue(&world, &[new_directive("stock.hold", world.clock.now())])[..] else { panic!("one id") };
    assert_eq!(run_cycle(&world, &ext, None, 50), (1, 0));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let d = stored(&world, id);
    assert_eq!((d.status, d.attempts, d.last_error.as_str()), (DirectiveStatus::Done, 1, ""));
    // Another cycle finds nothing to do.
    assert_eq!(run_cycle(&world, &ext, None, 50), (0, 0));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[test]
fn worker_with_limit_2_handles_2_of_3() {
    let world = world();
    let (handler, runs) = scripted("t", || Ok(HandlerOutcome::done()));
    let ext = ext_with(vec![handler]);
    let now = world.clock.now();
    enqueue(&world, &[new_directive("t", now), new_directive("t", now), new_directive("t", now)]);
    assert_eq!(run_cycle(&world, &ext, None, 2), (2, 0));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let queued = world.directives().into_iter().filter(|d| d.status == DirectiveStatus::Queued).count();
    assert_eq!(queued, 1);
}

#[test]
fn worker_topic_filter_runs_only_those_topics() {
    let world = world();
    let (hold, hold_runs) = scripted("stock.hold", || Ok(HandlerOutcome::done()));
    let (mail, mail_runs) = scripted("mail.send", || Ok(HandlerOutcome::done()));
    let ext = ext_with(vec![hold, mail]);
    let now = world.clock.now();
    enqueue(&world, &[new_directive("stock.hold", now), new_directive("mail.send", now)]);
    assert_eq!(run_cycle(&world, &ext, Some(vec!["mail.send".into()]), 50), (1, 0));
    assert_eq!((hold_runs.load(Ordering::SeqCst), mail_runs.load(Ordering::SeqCst)), (0, 1));
    assert_eq!(world.directives_of("stock.hold")[0].status, DirectiveStatus::Queued);
}

#[test]
fn worker_forced_onto_an_unknown_topic_leaves_it_queued() {
    let world = world();
    let ext = HandlerRegistry::default();
    let [id] = enqueue(&world, &[new_directive("nobody.handles", world.clock.now())])[..] else { panic!("one id") };
    assert_eq!(run_cycle(&world, &ext, Some(vec!["nobody.handles".into()]), 50), (0, 0));
    let d = stored(&world, id);
    assert_eq!((d.status, d.attempts), (DirectiveStatus::Queued, 0));
}

#[test]
fn worker_without_handlers_or_with_an_empty_queue_does_nothing_without_error() {
    let world = world();
    enqueue(&world, &[new_directive("t", world.clock.now())]);
    assert_eq!(run_cycle(&world, &HandlerRegistry::default(), None, 50), (0, 0));
    assert_eq!(world.directives()[0].status, DirectiveStatus::Queued);
    let (handler, runs) = scripted("other", || Ok(HandlerOutcome::done()));
    assert_eq!(run_cycle(&world, &ext_with(vec![handler]), None, 50), (0, 0));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[test]
fn worker_retries_transient_failures_with_backoff_and_fails_on_the_5th() {
    let world = world();
    let (handler, runs) = scripted("flaky", || Err(HandlerError("connection refused".into())));
    let ext = ext_with(vec![handler]);
    let [id] = enqueue(&world, &[new_directive("flaky", world.clock.now())])[..] else { panic!("one id") };
    for (attempt, wait) in [(1, 2), (2, 4), (3, 8), (4, 16)] {
        let claim_time = world.clock.now();
        assert_eq!(run_cycle(&world, &ext, None, 50), (0, 0));
        let d = stored(&world, id);
        assert_eq!((d.status, d.attempts), (DirectiveStatus::Queued, attempt));
        assert_eq!(d.available_at, claim_time + TimeDelta::seconds(wait));
        assert_eq!(d.last_error, "connection refused");
        // Not before its time.
        world.clock.advance(TimeDelta::seconds(wait - 1));
        assert_eq!(run_cycle(&world, &ext, None, 50), (0, 0));
        world.clock.advance(TimeDelta::seconds(1));
    }
    assert_eq!(run_cycle(&world, &ext, None, 50), (0, 1));
    let d = stored(&world, id);
    assert_eq!((d.status, d.attempts), (DirectiveStatus::Failed, 5));
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

#[test]
fn worker_records_a_permanent_failure() {
    let world = world();
    let (handler, _) = scripted("t", || Ok(HandlerOutcome::failed("no_intent_id")));
    let ext = ext_with(vec![handler]);
    let [id] = enqueue(&world, &[new_directive("t", world.clock.now())])[..] else { panic!("one id") };
    assert_eq!(run_cycle(&world, &ext, None, 50), (0, 1));
    let d = stored(&world, id);
    assert_eq!((d.status, d.last_error.as_str()), (DirectiveStatus::Failed, "no_intent_id"));
}
