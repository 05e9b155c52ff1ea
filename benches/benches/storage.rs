//! Storage round trips on SQLite and PostgreSQL: `Omniman::modify` and a whole sale through
//! `Omniman` (open, modify, commit), and the directive queue's claim path (`claim` + `finish`) in
//! batches of 1, 10 and 100, each iteration draining ten batches (at least 100 directives) that
//! were enqueued outside the timed part.
//!
//! Each backend gets a throw-away migrated database (`TestDb`); PostgreSQL is skipped with a loud
//! line when it cannot be reached. The calls run on a multi-threaded Tokio runtime (the storage
//! ports spawn a task per call) and are timed with `iter_custom`, so the untimed set-up of each
//! iteration (removing the line just added, enqueueing the directives to claim) stays outside the
//! figure. See `docs/benchmarks.md` for the figures and the goals they are held to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, black_box, criterion_group, criterion_main};
use omniman_core::Omniman;
use omniman_core::channel::ChannelSpec;
use omniman_core::context::Caller;
use omniman_core::directive::{DirectiveUpdate, HandlerOutcome, NewDirective, RetryPolicy, RunResult, decide_outcome};
use omniman_core::ext::Extensions;
use omniman_core::input::{ChannelCode, IdempotencyKey, SessionRef};
use omniman_core::ops::Op;
use omniman_core::ports::{ChannelStore, DirectiveQueue};
use omniman_core::service::OpenSession;
use omniman_storage::Database;
use omniman_storage::test_support::TestDb;
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;

/// Channel code used throughout.
const CHANNEL: &str = "pos";

/// Topic of the directives the claim benches enqueue.
const TOPIC: &str = "bench.noop";

/// Directives enqueued (and then drained) per iteration of the claim bench with batches of
/// `batch`: ten full batches, and at least 100 directives.
fn drain_size(batch: usize) -> usize {
    (10 * batch).max(100)
}

/// Catalogue the sessions draw from: (sku, unit price in quanta); the same SKUs as `core.rs`.
const CATALOGUE: &[(&str, i64)] = &[
    ("ESPRESSO", 450),
    ("CAPPUCCINO", 650),
    ("LATTE", 700),
    ("TEA", 400),
    ("CROISSANT", 550),
    ("PAO-QUEIJO", 300),
    ("BROWNIE", 800),
    ("JUICE", 900),
    ("WATER", 350),
    ("SANDWICH", 1_800),
    ("SALAD", 2_200),
    ("COOKIE", 500),
];

/// The SKU the modify bench adds (not among the session's ten lines).
const ADDED_SKU: &str = "COOKIE";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("Tokio runtime")
}

fn caller() -> Caller {
    Caller::external("till-1")
}

fn parse(ops: &Value) -> Vec<Op> {
    Op::parse_batch(ops).expect("well-formed ops")
}

/// The databases to bench: SQLite always, PostgreSQL when reachable.
fn databases(rt: &Runtime) -> Vec<(&'static str, TestDb)> {
    let mut dbs = vec![("sqlite", rt.block_on(TestDb::sqlite()))];
    match rt.block_on(TestDb::postgres()) {
        Some(pg) => dbs.push(("postgres", pg)),
        None => eprintln!("*** SKIPPED: the PostgreSQL storage benches (PostgreSQL unreachable) ***"),
    }
    for (_, db) in &dbs {
        let spec: ChannelSpec = serde_json::from_value(json!({"code": CHANNEL, "config": {}})).expect("channel spec");
        rt.block_on(db.upsert_channel(&spec, Utc::now())).expect("channel");
    }
    dbs
}

/// A hub on `db` with the system clock and random ids, as the server runs it.
fn hub(db: &Database) -> Omniman<Database> {
    Omniman::new(db.clone(), Extensions::default())
}

/// Opens a session and gives it ten client-priced lines; returns its key.
async fn ten_line_session(hub: &Omniman<Database>) -> SessionRef {
    let caller = caller();
    let opened = hub.open_session(open_request(), &caller).await.expect("open");
    let at = SessionRef::parse(CHANNEL, &opened.session.session_key).expect("a session ref");
    let lines: Vec<Value> = CATALOGUE[..10]
        .iter()
        .map(|(sku, price)| json!({"op": "add_line", "sku": sku, "qty": 1, "unit_price_q": price}))
        .collect();
    hub.modify(&at, &parse(&Value::Array(lines)), None, &caller).await.expect("ten lines");
    at
}

/// A new session on the benches' channel.
fn open_request() -> OpenSession {
    OpenSession::on(ChannelCode::parse(CHANNEL).expect("a channel code"))
}

/// A sale as one request: eight lines and two data fields, valid on a fresh session (as `core.rs`).
fn sale_ops() -> Vec<Op> {
    let mut ops: Vec<Value> = CATALOGUE[..8]
        .iter()
        .enumerate()
        .map(|(i, (sku, price))| json!({"op": "add_line", "sku": sku, "qty": 1 + i % 2, "unit_price_q": price}))
        .collect();
    ops.push(json!({"op": "set_data", "path": "customer.name", "value": "Ana Souza"}));
    ops.push(json!({"op": "set_data", "path": "table", "value": "12"}));
    parse(&Value::Array(ops))
}

// ---------------------------------------------------------------------------------------------
// Service round trips
// ---------------------------------------------------------------------------------------------

fn bench_service(c: &mut Criterion, rt: &Runtime, dbs: &[(&'static str, TestDb)]) {
    let caller = caller();
    let add = parse(&json!([{"op": "add_line", "sku": ADDED_SKU, "qty": 2, "unit_price_q": 500}]));
    let sale = sale_ops();
    let keys = AtomicU64::new(0);
    for (backend, db) in dbs {
        let hub = hub(db);
        let mut group = c.benchmark_group(format!("storage/{backend}"));

        // One modify (a one-op add_line batch) of a stored 10-line session: load, decide, write.
        // The line is removed again outside the timed part, so every iteration sees ten lines.
        let key = rt.block_on(ten_line_session(&hub));
        group.bench_function("modify_add_line_10_lines", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut timed = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let session = hub.modify(&key, black_box(&add), None, &caller).await.expect("modify");
                        timed += start.elapsed();
                        let added = session.items.iter().find(|i| i.sku == ADDED_SKU).expect("added line");
                        let remove = parse(&json!([{"op": "remove_line", "line_id": added.line_id}]));
                        hub.modify(&key, &remove, None, &caller).await.expect("remove");
                    }
                    timed
                })
            });
        });

        // A whole sale: open a session, one 10-op modify, commit with an idempotency key.
        group.bench_function("open_modify_commit", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let opened = hub.open_session(open_request(), &caller).await.expect("open");
                        let at = SessionRef::parse(CHANNEL, &opened.session.session_key).expect("a session ref");
                        hub.modify(&at, black_box(&sale), None, &caller).await.expect("modify");
                        let raw = format!("till-1-{}", keys.fetch_add(1, Ordering::Relaxed));
                        let idempotency_key = IdempotencyKey::parse(raw).expect("an idempotency key");
                        let outcome = hub.commit(&at, Some(&idempotency_key), None, &caller).await.expect("commit");
                        assert_eq!(outcome.http_status(), 201);
                    }
                    start.elapsed()
                })
            });
        });
        group.finish();
    }
}

// ---------------------------------------------------------------------------------------------
// Directive queue: claim + finish
// ---------------------------------------------------------------------------------------------

/// Enqueues `n` directives of [`TOPIC`], ready now, in one insert.
async fn enqueue(db: &Database, n: usize) {
    let now = Utc::now();
    let batch: Vec<NewDirective> =
        (0..n).map(|_| NewDirective { topic: TOPIC.into(), payload: Map::new(), available_at: now }).collect();
    let ids = db.enqueue(&batch).await.expect("enqueue");
    assert_eq!(ids.len(), n);
}

/// Claims in batches of `batch` and records a no-op `done` for each, until nothing is left;
/// returns how many directives were claimed.
async fn drain(db: &Database, topics: &[String], batch: usize, policy: &RetryPolicy) -> usize {
    let mut drained = 0;
    loop {
        let claimed = db.claim(Some(topics), batch, Utc::now()).await.expect("claim");
        if claimed.is_empty() {
            return drained;
        }
        let now = Utc::now();
        let updates: Vec<DirectiveUpdate> = claimed
            .iter()
            .map(|d| decide_outcome(d, RunResult::Handled(Ok(HandlerOutcome::done())), policy, now))
            .collect();
        let finished = db.finish(&updates, now).await.expect("finish");
        assert_eq!(finished, u64::try_from(updates.len()).expect("small"));
        drained += claimed.len();
    }
}

fn bench_claim(c: &mut Criterion, rt: &Runtime, dbs: &[(&'static str, TestDb)]) {
    let topics = vec![TOPIC.to_owned()];
    let policy = RetryPolicy::default();
    for (backend, db) in dbs {
        let mut group = c.benchmark_group(format!("directives/{backend}/claim_finish"));
        // An iteration takes up to half a second on PostgreSQL: a fixed number of iterations per
        // sample keeps the run short.
        group.sampling_mode(SamplingMode::Flat);
        for batch in [1_usize, 10, 100] {
            let n = drain_size(batch);
            group.throughput(Throughput::Elements(u64::try_from(n).expect("small")));
            group.bench_with_input(BenchmarkId::new("batch", batch), &batch, |b, &batch| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut timed = Duration::ZERO;
                        for _ in 0..iters {
                            enqueue(db, n).await;
                            let start = Instant::now();
                            let drained = drain(db, &topics, batch, &policy).await;
                            timed += start.elapsed();
                            assert_eq!(drained, n);
                        }
                        timed
                    })
                });
            });
        }
        group.finish();
    }
}

fn bench_storage(c: &mut Criterion) {
    let rt = runtime();
    let dbs = databases(&rt);
    bench_service(c, &rt, &dbs);
    bench_claim(c, &rt, &dbs);
    // Dropping the `TestDb`s removes the SQLite file and drops the PostgreSQL database.
    drop(dbs);
}

fn config() -> Criterion {
    // A shared two-core machine that also runs the database: few samples, short measurements.
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5)).sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_storage
}
criterion_main!(benches);
