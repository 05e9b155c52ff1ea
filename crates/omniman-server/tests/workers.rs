//! Two directive workers, each with its own connection pool (as two `omniman worker` processes
//! would have), on one PostgreSQL database, with handlers slower than the reap timeout allows a
//! whole batch: neither reaps what the other holds, every directive ends `done`, and each
//! handler runs once per claim.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use omniman_core::directive::{Directive, DirectiveStatus, HandlerError, HandlerOutcome, NewDirective};
use omniman_core::ext::{DirectiveHandler, HandlerCtx, HandlerRegistry};
use omniman_core::ports::DirectiveQueue;
use omniman_storage::test_support::TestDb;
use omniman_storage::{Database, StorageConfig};
use omniman_worker::{Worker, WorkerConfig};
use serde_json::Map;

/// Sleeps, then answers `done`, counting runs per directive.
struct Slow(Mutex<HashMap<i64, usize>>);

#[async_trait::async_trait]
impl DirectiveHandler for Slow {
    fn topic(&self) -> &str {
        "webhook.post"
    }

    async fn handle(&self, d: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        *self.0.lock().unwrap().entry(d.id).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(600)).await;
        Ok(HandlerOutcome::done())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_postgres_run_each_directive_once() {
    let Some(test_db) = TestDb::postgres().await else { return };
    let now = Utc::now() - TimeDelta::seconds(1);
    let batch: Vec<NewDirective> = (0..20)
        .map(|_| NewDirective { topic: "webhook.post".into(), payload: Map::new(), available_at: now })
        .collect();
    let ids = test_db.db().enqueue(&batch).await.unwrap();

    let handler = Arc::new(Slow(Mutex::new(HashMap::new())));
    let handlers = Arc::new(HandlerRegistry::new().register(handler.clone()).unwrap());
    // A batch of 20, two at a time, 0.6 s each: about 6 s for the worker that claims it, three
    // times the 2 s reap timeout of the other, which reaps every 5 idle cycles (about 2.5 s).
    // Each worker renews its claims every 0.5 s.
    let config = WorkerConfig {
        interval: Duration::from_millis(500),
        reap_timeout: TimeDelta::seconds(2),
        ..WorkerConfig::default()
    };
    let second_db = Database::connect(&StorageConfig::new(test_db.url())).await.unwrap();
    let first = Worker::new(Arc::new(test_db.db().clone()), handlers.clone(), config.clone()).spawn();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = Worker::new(Arc::new(second_db), handlers, config).spawn();

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = test_db.db().directive_counts().await.unwrap();
        if counts == [(DirectiveStatus::Done, 20)] || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Both workers go on reaping for a while: nothing more happens.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (a, b) = (first.shutdown().await, second.shutdown().await);
    assert_eq!((a.reaped, b.reaped), (0, 0), "nothing was reaped");
    for id in &ids {
        let d = test_db.db().directive(*id).await.unwrap().unwrap();
        assert_eq!((d.status, d.attempts), (DirectiveStatus::Done, 1), "{d:?}");
    }
    let runs = handler.0.lock().unwrap().clone();
    assert!(ids.iter().all(|id| runs.get(id) == Some(&1)), "each handler ran once: {runs:?}");
}
