//! The directive queue end to end, with real `Worker`s: throughput of 10,000 no-op directives
//! drained by 1, 2 and 4 workers (each on its own pool, as separate processes would be), the
//! latency from `enqueue` to the handler starting on an idle worker woken by PostgreSQL's
//! `LISTEN/NOTIFY`, and where one worker cycle's time goes (`claim` and `finish` timed apart).
//!
//! On PostgreSQL every figure is taken with the workers' pools as shipped and again with the
//! pools' connections set to `synchronous_commit = off` (through the URL's `options`), and the
//! cycle breakdown also without the pool's liveness check on checkout: configuration-only
//! variants that show what those changes would buy.
//!
//! A plain `main` that prints Markdown tables: criterion's repeated sampling is a poor fit for
//! 10,000-directive runs. PostgreSQL is the subject; SQLite runs alongside for comparison. When
//! PostgreSQL cannot be reached its sections are skipped with a loud line and the exit status
//! stays 0. See `docs/benchmarks.md` for the figures and the goals they are held to.
//!
//! ```sh
//! cargo bench -p omniman-benches --bench queue
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use omniman_core::directive::{
    Directive, DirectiveStatus, DirectiveUpdate, HandlerError, HandlerOutcome, NewDirective, RetryPolicy, RunResult,
    decide_outcome,
};
use omniman_core::ext::{DirectiveHandler, HandlerCtx, HandlerRegistry};
use omniman_core::ports::DirectiveQueue;
use omniman_storage::test_support::TestDb;
use omniman_storage::{Database, StatementCounter, StorageConfig};
use omniman_worker::{Worker, WorkerConfig};
use serde_json::Map;
use tokio::sync::{Notify, mpsc};

/// Topic of every directive here.
const TOPIC: &str = "bench.noop";
/// Directives drained per throughput run.
const TOTAL: usize = 10_000;
/// Directives per `enqueue` call when filling the queue (one multi-row insert each).
const ENQUEUE_CHUNK: usize = 1_000;
/// Workers per throughput run.
const WORKER_COUNTS: [usize; 3] = [1, 2, 4];
/// Directives claimed per worker cycle.
const BATCH_SIZE: usize = 100;
/// Handlers a worker runs at once.
const CONCURRENCY: usize = 8;
/// Connections in each worker's pool (a worker uses one at a time; the rest is headroom).
const WORKER_POOL_SIZE: usize = 4;
/// Timed wake-ups per latency run, after [`LATENCY_WARMUP`] untimed ones.
const LATENCY_RUNS: usize = 50;
const LATENCY_WARMUP: usize = 5;
/// The idle poll interval of the latency runs: long, so only a wake-up explains a short latency.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// Batches timed per size in the cycle breakdown.
const BREAKDOWN_BATCHES: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}

/// How the workers' pools are configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tuning {
    /// `StorageConfig::new(url)`: every commit waits for the WAL flush, and every checkout of a
    /// reused connection runs `SELECT 1` first.
    Shipped,
    /// PostgreSQL only: `synchronous_commit = off` on the workers' connections.
    AsyncCommit,
    /// PostgreSQL only: no `SELECT 1` on checkout (`check_on_checkout = false`).
    NoCheckoutCheck,
}

impl Tuning {
    fn label(self) -> &'static str {
        match self {
            Tuning::Shipped => "as shipped",
            Tuning::AsyncCommit => "`synchronous_commit = off`",
            Tuning::NoCheckoutCheck => "no `SELECT 1` on checkout",
        }
    }

    /// The variants worth running on `backend` (SQLite has neither knob).
    fn for_backend(backend: Backend) -> &'static [Tuning] {
        match backend {
            Backend::Postgres => &[Tuning::Shipped, Tuning::AsyncCommit],
            Backend::Sqlite => &[Tuning::Shipped],
        }
    }
}

/// A fresh migrated database; `None` (after a loud line) when PostgreSQL is unreachable.
async fn fresh(backend: Backend) -> Option<TestDb> {
    match backend {
        Backend::Sqlite => Some(TestDb::sqlite().await),
        Backend::Postgres => {
            let db = TestDb::postgres().await;
            if db.is_none() {
                println!("\n*** SKIPPED: PostgreSQL is unreachable; its queue benchmarks did not run ***\n");
            }
            db
        }
    }
}

/// Another pool on the same database, as another process would open.
async fn another_pool(test_db: &TestDb, tuning: Tuning) -> Database {
    let url = match tuning {
        Tuning::AsyncCommit => format!("{}?options=-c%20synchronous_commit%3Doff", test_db.url()),
        Tuning::Shipped | Tuning::NoCheckoutCheck => test_db.url().to_owned(),
    };
    let mut config = StorageConfig::new(url).with_pool_size(WORKER_POOL_SIZE);
    config.check_on_checkout = tuning != Tuning::NoCheckoutCheck;
    Database::connect(&config).await.expect("a second pool on the test database")
}

fn directives(n: usize) -> Vec<NewDirective> {
    let now = Utc::now();
    (0..n).map(|_| NewDirective { topic: TOPIC.into(), payload: Map::new(), available_at: now }).collect()
}

fn worker_config(interval: Duration) -> WorkerConfig {
    WorkerConfig { batch_size: BATCH_SIZE, concurrency: CONCURRENCY, interval, ..WorkerConfig::default() }
}

/// Finishes at once, counting its runs.
struct Noop {
    runs: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl DirectiveHandler for Noop {
    fn topic(&self) -> &str {
        TOPIC
    }

    async fn handle(&self, _directive: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        self.runs.fetch_add(1, Ordering::Relaxed);
        Ok(HandlerOutcome::done())
    }
}

/// Records the instant it starts, then finishes.
struct Stamp {
    started: mpsc::UnboundedSender<Instant>,
}

#[async_trait::async_trait]
impl DirectiveHandler for Stamp {
    fn topic(&self) -> &str {
        TOPIC
    }

    async fn handle(&self, _directive: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        let _ = self.started.send(Instant::now());
        Ok(HandlerOutcome::done())
    }
}

fn registry(handler: Arc<dyn DirectiveHandler>) -> Arc<HandlerRegistry> {
    Arc::new(HandlerRegistry::new().register(handler).expect("one handler"))
}

fn count(counts: &[(DirectiveStatus, i64)], status: DirectiveStatus) -> usize {
    counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| usize::try_from(*n).unwrap_or(0))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[expect(clippy::cast_precision_loss)] // counts far below 2^52
fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Nearest-rank percentile of sorted samples.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    percentile(samples, 50.0)
}

// ---------------------------------------------------------------------------------------------
// Throughput: 10,000 directives, N workers
// ---------------------------------------------------------------------------------------------

struct ThroughputRow {
    workers: usize,
    enqueue: Duration,
    drain: Duration,
    per_worker: Vec<usize>,
}

async fn throughput(backend: Backend, workers: usize, tuning: Tuning) -> Option<ThroughputRow> {
    let test_db = fresh(backend).await?;
    let start = Instant::now();
    for _ in 0..TOTAL / ENQUEUE_CHUNK {
        test_db.enqueue(&directives(ENQUEUE_CHUNK)).await.expect("enqueue");
    }
    let enqueue = start.elapsed();

    let mut pools = Vec::with_capacity(workers);
    for _ in 0..workers {
        pools.push(another_pool(&test_db, tuning).await);
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let handlers = registry(Arc::new(Noop { runs: runs.clone() }));

    let start = Instant::now();
    let handles: Vec<_> = pools
        .iter()
        .map(|db| Worker::new(Arc::new(db.clone()), handlers.clone(), worker_config(Duration::from_secs(1))).spawn())
        .collect();
    // Wait in-process until every handler ran (cheap), then poll the table until all are `done`.
    while runs.load(Ordering::Relaxed) < TOTAL {
        assert!(start.elapsed() < Duration::from_secs(500), "workers stalled at {} runs", runs.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    loop {
        let counts = test_db.directive_counts().await.expect("counts");
        assert_eq!(count(&counts, DirectiveStatus::Failed), 0, "no directive fails");
        if count(&counts, DirectiveStatus::Done) == TOTAL {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain = start.elapsed();

    let mut per_worker = Vec::with_capacity(workers);
    for handle in handles {
        per_worker.push(handle.shutdown().await.done);
    }
    for db in &pools {
        db.close();
    }
    assert_eq!(per_worker.iter().sum::<usize>(), TOTAL);
    Some(ThroughputRow { workers, enqueue, drain, per_worker })
}

async fn throughput_table(backend: Backend) {
    println!("\n### End-to-end throughput, {} ({TOTAL} no-op directives)\n", backend.name());
    println!(
        "Each worker: own pool of {WORKER_POOL_SIZE}, batch size {BATCH_SIZE}, concurrency {CONCURRENCY}. \
         Timed from spawning the workers until `directive_counts()` shows all {TOTAL} `done`.\n"
    );
    println!(
        "| Worker pools | Workers | Drain time | Directives/s | Done per worker | Enqueue ({} inserts of {ENQUEUE_CHUNK}) |",
        TOTAL / ENQUEUE_CHUNK
    );
    println!("| --- | ---: | ---: | ---: | --- | ---: |");
    for &tuning in Tuning::for_backend(backend) {
        for workers in WORKER_COUNTS {
            let Some(row) = throughput(backend, workers, tuning).await else { return };
            let split: Vec<String> = row.per_worker.iter().map(ToString::to_string).collect();
            println!(
                "| {} | {} | {:.0} ms | {:.0} | {} | {:.0} ms ({:.0}/s) |",
                tuning.label(),
                row.workers,
                ms(row.drain),
                per_second(TOTAL, row.drain),
                split.join(" / "),
                ms(row.enqueue),
                per_second(TOTAL, row.enqueue),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Latency: enqueue → handler start on an idle worker
// ---------------------------------------------------------------------------------------------

async fn latency(backend: Backend, tuning: Tuning) {
    let Some(test_db) = fresh(backend).await else { return };
    // The worker has its own pool (and LISTEN connection), as in another process; the enqueuing
    // pool is always as shipped.
    let worker_db = another_pool(&test_db, tuning).await;
    let wakeup = Arc::new(Notify::new());
    // PostgreSQL: NOTIFY → LISTEN connection → the worker's `Notify`, as the server forwards it.
    // SQLite has no LISTEN: the embedding process wakes its worker itself after the write.
    let forwarder = worker_db.listen_directives().await.expect("LISTEN").map(|mut wakeups| {
        let wakeup = wakeup.clone();
        tokio::spawn(async move {
            while wakeups.wait().await {
                wakeup.notify_one();
            }
        })
    });
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let worker = Worker::new(
        Arc::new(worker_db.clone()),
        registry(Arc::new(Stamp { started: started_tx })),
        worker_config(IDLE_POLL),
    )
    .with_wakeup(wakeup.clone())
    .spawn();
    tokio::time::sleep(Duration::from_millis(300)).await; // first (empty) cycle done: idle

    let mut to_start = Vec::with_capacity(LATENCY_RUNS);
    let mut enqueue_calls = Vec::with_capacity(LATENCY_RUNS);
    for run in 0..LATENCY_WARMUP + LATENCY_RUNS {
        let start = Instant::now();
        let ids = test_db.enqueue(&directives(1)).await.expect("enqueue");
        let enqueued = Instant::now();
        if forwarder.is_none() {
            wakeup.notify_one();
        }
        let started = tokio::time::timeout(IDLE_POLL / 3, started_rx.recv())
            .await
            .expect("the idle worker is woken long before its poll interval")
            .expect("handler alive");
        // Let the run finish and the worker go back to waiting.
        loop {
            let directive = test_db.directive(ids[0]).await.expect("read").expect("exists");
            if directive.status == DirectiveStatus::Done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if run >= LATENCY_WARMUP {
            to_start.push(started.saturating_duration_since(start));
            enqueue_calls.push(enqueued - start);
        }
    }
    worker.shutdown().await;
    if let Some(forwarder) = forwarder {
        forwarder.abort();
    }
    worker_db.close();

    to_start.sort_unstable();
    let wake = if backend == Backend::Postgres { "LISTEN/NOTIFY" } else { "in-process `Notify` after the write" };
    println!(
        "| {} ({wake}) | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
        backend.name(),
        tuning.label(),
        ms(percentile(&to_start, 50.0)),
        ms(percentile(&to_start, 95.0)),
        ms(to_start[0]),
        ms(to_start[to_start.len() - 1]),
        ms(median(&mut enqueue_calls)),
    );
}

// ---------------------------------------------------------------------------------------------
// Where a cycle's time goes: claim and finish timed apart, one caller
// ---------------------------------------------------------------------------------------------

async fn breakdown(backend: Backend) {
    let Some(test_db) = fresh(backend).await else { return };
    let tunings: &[Tuning] = match backend {
        Backend::Postgres => &[Tuning::Shipped, Tuning::NoCheckoutCheck, Tuning::AsyncCommit],
        Backend::Sqlite => &[Tuning::Shipped],
    };
    println!("\n{}:\n", backend.name());
    println!(
        "| Pool | Primary-key read | Batch | `claim` median | `finish` median | `finish` statements | Per directive | \
         Directives/s |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &tuning in tunings {
        let db = another_pool(&test_db, tuning).await;
        breakdown_rows(&db, tuning).await;
        db.close();
    }
}

/// One caller: the floor (a single-row read by primary key, one statement), then `claim` and
/// `finish` of [`BREAKDOWN_BATCHES`] batches of 1, 10 and 100, timed apart.
async fn breakdown_rows(db: &Database, tuning: Tuning) {
    let topics = vec![TOPIC.to_owned()];
    let policy = RetryPolicy::default();
    let id = db.enqueue(&directives(1)).await.expect("enqueue")[0];
    db.claim(Some(&topics), 1, Utc::now()).await.expect("claim the probe");
    let mut reads = Vec::with_capacity(200);
    for _ in 0..200 {
        let start = Instant::now();
        db.directive(id).await.expect("read");
        reads.push(start.elapsed());
    }
    let read = median(&mut reads);
    for batch in [1_usize, 10, 100] {
        db.enqueue(&directives(batch * (BREAKDOWN_BATCHES + 1))).await.expect("enqueue");
        let (mut claims, mut finishes) = (Vec::new(), Vec::new());
        for _ in 0..BREAKDOWN_BATCHES {
            let start = Instant::now();
            let claimed = db.claim(Some(&topics), batch, Utc::now()).await.expect("claim");
            claims.push(start.elapsed());
            let updates = done_updates(&claimed, batch, &policy);
            let start = Instant::now();
            let finished = db.finish(&updates, Utc::now()).await.expect("finish");
            finishes.push(start.elapsed());
            assert_eq!(finished, u64::try_from(batch).expect("small"));
        }
        // One more batch, untimed, to count `finish`'s statements (recording them costs time).
        let claimed = db.claim(Some(&topics), batch, Utc::now()).await.expect("claim");
        let updates = done_updates(&claimed, batch, &policy);
        let (finished, counter) = StatementCounter::measure(db.finish(&updates, Utc::now())).await;
        assert_eq!(finished.expect("finish"), u64::try_from(batch).expect("small"));
        let (claim, finish) = (median(&mut claims), median(&mut finishes));
        let per_directive = (claim + finish) / u32::try_from(batch).expect("small");
        println!(
            "| {} | {:.3} ms | {batch} | {:.2} ms | {:.2} ms | {} | {:.3} ms | {:.0} |",
            tuning.label(),
            ms(read),
            ms(claim),
            ms(finish),
            counter.count(),
            ms(per_directive),
            per_second(batch, claim + finish),
        );
    }
}

/// A no-op `done` for each of `claimed`, which must hold `batch` directives.
fn done_updates(claimed: &[Directive], batch: usize, policy: &RetryPolicy) -> Vec<DirectiveUpdate> {
    assert_eq!(claimed.len(), batch);
    let now = Utc::now();
    claimed.iter().map(|d| decide_outcome(d, RunResult::Handled(Ok(HandlerOutcome::done())), policy, now)).collect()
}

async fn run() {
    println!("# Directive queue benchmarks");
    println!(
        "\n{} CPUs visible; the database server runs on the same machine.",
        std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get)
    );
    for backend in [Backend::Postgres, Backend::Sqlite] {
        throughput_table(backend).await;
    }

    println!(
        "\n### Idle-worker latency: enqueue → handler start ({LATENCY_RUNS} runs after {LATENCY_WARMUP} untimed)\n"
    );
    println!("Poll interval {} s, so only a wake-up explains a short latency.\n", IDLE_POLL.as_secs());
    println!("| Backend (wake-up) | Worker pool | Median | p95 | Min | Max | `enqueue` call alone (median) |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for backend in [Backend::Postgres, Backend::Sqlite] {
        for &tuning in Tuning::for_backend(backend) {
            latency(backend, tuning).await;
        }
    }

    println!("\n### Where a worker cycle's time goes ({BREAKDOWN_BATCHES} batches per size, one caller)");
    println!(
        "\n`finish` statements: counted by `StatementCounter` (transaction control and the checkout check excluded)."
    );
    for backend in [Backend::Postgres, Backend::Sqlite] {
        breakdown(backend).await;
    }
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("Tokio runtime");
    runtime.block_on(run());
}
