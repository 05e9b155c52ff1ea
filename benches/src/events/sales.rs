//! The paced (open-loop) load: sale i is due at i / R seconds from the start, and a few tasks
//! make the sales as they come due. A sale is what the load tool's users do to one session:
//! open it, add a client-priced line, commit it with a unique idempotency key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::json;

use crate::load::stats::{Failure, HIGHEST_US};
use crate::load::workload::{self, drain};

/// A commit answered `201 Created`.
#[derive(Clone, Debug)]
pub(crate) struct Committed {
    /// The session that became an order.
    pub(crate) session_key: String,
    /// When the commit request was sent.
    pub(crate) sent: Instant,
    /// When its answer's status line and headers arrived.
    pub(crate) answered: Instant,
}

/// What a paced run did.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Sales started.
    pub(crate) started: u64,
    /// Their commits answered `201`.
    pub(crate) committed: Vec<Committed>,
    /// Failed steps, as `create: HTTP 503`, `commit: transport timeout`.
    pub(crate) failures: BTreeMap<String, u64>,
    /// From the start until the last sale finished.
    pub(crate) elapsed: Duration,
    /// How late sales started after they came due, in microseconds.
    pub(crate) lateness: Histogram<u64>,
}

/// The requests of a sale, built once.
#[derive(Debug)]
pub(crate) struct Sales {
    client: reqwest::Client,
    sessions_url: Url,
    create_body: Bytes,
    modify_body: Bytes,
    /// The commit body up to the idempotency key's unique tail.
    commit_prefix: String,
    /// Sales started in this process so far: the tail of the next idempotency key.
    counter: AtomicU64,
}

#[derive(Deserialize)]
struct Created {
    session_key: String,
}

impl Sales {
    /// Sales through `client` (which sends the token and the content type) on `channel` of the
    /// server at `base_url`; `run` sets this run's idempotency keys apart from others'.
    pub(crate) fn new(client: reqwest::Client, base_url: &str, channel: &str, run: u64) -> anyhow::Result<Sales> {
        let sessions_url = Url::parse(&format!("{base_url}/api/sessions")).context("invalid base URL")?;
        let modify = json!({
            "channel_code": channel,
            "ops": [{"op": "add_line", "sku": "COFFEE", "qty": 1, "unit_price_q": 500}],
        });
        Ok(Sales {
            client,
            sessions_url,
            create_body: Bytes::from(serde_json::to_vec(&json!({"channel_code": channel}))?),
            modify_body: Bytes::from(serde_json::to_vec(&modify)?),
            commit_prefix: format!(
                r#"{{"channel_code":{},"idempotency_key":"eventbench-{run:016x}-"#,
                serde_json::to_string(channel)?
            ),
            counter: AtomicU64::new(0),
        })
    }

    /// Runs sales at `rate` per second for `duration` from `concurrency` tasks; returns once
    /// the last one has finished.
    pub(crate) async fn run_paced(self: &Arc<Self>, rate: f64, duration: Duration, concurrency: u32) -> Outcome {
        let state = Arc::new(Paced {
            start: Instant::now(),
            end_offset: duration,
            interval: Duration::from_secs_f64(1.0 / rate),
            next: AtomicU64::new(0),
            record: Mutex::new(Record {
                committed: Vec::new(),
                failures: BTreeMap::new(),
                lateness: Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds"),
            }),
        });
        let tasks: Vec<_> =
            (0..concurrency).map(|_| tokio::spawn(sale_task(Arc::clone(self), Arc::clone(&state)))).collect();
        for task in tasks {
            // A task that panicked lost its sales' records; the counts below show it.
            let _ = task.await;
        }
        let elapsed = state.start.elapsed();
        let started = state.next.load(Ordering::Relaxed).saturating_sub(u64::from(concurrency));
        let record = std::mem::replace(
            &mut *state.record.lock().unwrap_or_else(PoisonError::into_inner),
            Record { committed: Vec::new(), failures: BTreeMap::new(), lateness: Histogram::new(3).expect("valid") },
        );
        Outcome { started, committed: record.committed, failures: record.failures, elapsed, lateness: record.lateness }
    }

    /// One sale; the commit that was answered `201`, or the step that failed and why.
    async fn sell(&self) -> Result<Committed, (&'static str, Failure)> {
        let response =
            self.post(self.sessions_url.clone(), self.create_body.clone()).await.map_err(|f| ("create", f))?;
        let body = response.bytes().await.map_err(|e| ("create", Failure::transport(&e)))?;
        let created: Created = serde_json::from_slice(&body).map_err(|_| ("create", Failure::InvalidBody))?;
        let key = created.session_key;
        let modify = self.session_url(&key, "modify").map_err(|f| ("modify", f))?;
        drain(self.post(modify, self.modify_body.clone()).await.map_err(|f| ("modify", f))?)
            .await
            .map_err(|f| ("modify", f))?;
        let commit = self.session_url(&key, "commit").map_err(|f| ("commit", f))?;
        let nth = self.counter.fetch_add(1, Ordering::Relaxed);
        let body = Bytes::from(format!("{}{nth}\"}}", self.commit_prefix));
        let sent = Instant::now();
        let response = self.post(commit, body).await.map_err(|f| ("commit", f))?;
        let answered = Instant::now();
        let status = response.status();
        drain(response).await.map_err(|f| ("commit", f))?;
        if status != StatusCode::CREATED {
            // A replay (200) made no new order.
            return Err(("commit", Failure::Status(status.as_u16())));
        }
        Ok(Committed { session_key: key, sent, answered })
    }

    fn session_url(&self, key: &str, action: &str) -> Result<Url, Failure> {
        Url::parse(&format!("{}/{key}/{action}", self.sessions_url)).map_err(|_| Failure::InvalidBody)
    }

    async fn post(&self, url: Url, body: Bytes) -> Result<reqwest::Response, Failure> {
        workload::post(&self.client, url, body).await
    }
}

/// The schedule the sale tasks share.
#[derive(Debug)]
struct Paced {
    start: Instant,
    end_offset: Duration,
    interval: Duration,
    /// The next sale to make.
    next: AtomicU64,
    record: Mutex<Record>,
}

#[derive(Debug)]
struct Record {
    committed: Vec<Committed>,
    failures: BTreeMap<String, u64>,
    lateness: Histogram<u64>,
}

impl Paced {
    /// When sale `i` is due, as an offset from the start.
    fn due(&self, i: u64) -> Duration {
        self.interval.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX))
    }
}

/// Takes the next sale, waits until it is due, makes it; until the schedule ends.
async fn sale_task(sales: Arc<Sales>, paced: Arc<Paced>) {
    loop {
        let i = paced.next.fetch_add(1, Ordering::Relaxed);
        let due = paced.due(i);
        if due >= paced.end_offset {
            return;
        }
        let due_at = paced.start + due;
        tokio::time::sleep_until(due_at.into()).await;
        let late = Instant::now().saturating_duration_since(due_at);
        let outcome = sales.sell().await;
        let mut record = paced.record.lock().unwrap_or_else(PoisonError::into_inner);
        record.lateness.saturating_record(u64::try_from(late.as_micros()).unwrap_or(u64::MAX).max(1));
        match outcome {
            Ok(committed) => record.committed.push(committed),
            Err((step, failure)) => {
                let why = match failure {
                    Failure::Status(status) => format!("{step}: HTTP {status}"),
                    Failure::Transport(kind) => format!("{step}: transport {kind}"),
                    Failure::InvalidBody => format!("{step}: invalid body"),
                };
                *record.failures.entry(why).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sales_are_due_at_regular_intervals() {
        let paced = Paced {
            start: Instant::now(),
            end_offset: Duration::from_secs(1),
            interval: Duration::from_secs_f64(1.0 / 100.0),
            next: AtomicU64::new(0),
            record: Mutex::new(Record {
                committed: Vec::new(),
                failures: BTreeMap::new(),
                lateness: Histogram::new(3).unwrap(),
            }),
        };
        assert_eq!(paced.due(0), Duration::ZERO);
        assert_eq!(paced.due(50), Duration::from_millis(500));
        // 100 sales fit in one second at 100/s: 0 … 99.
        assert!(paced.due(99) < paced.end_offset && paced.due(100) >= paced.end_offset);
    }

    #[test]
    fn bodies_are_the_api_s() {
        let sales = Sales::new(reqwest::Client::new(), "http://127.0.0.1:1", "web", 0xab).unwrap();
        let create: serde_json::Value = serde_json::from_slice(&sales.create_body).unwrap();
        assert_eq!(create, json!({"channel_code": "web"}));
        let commit: serde_json::Value = serde_json::from_str(&format!("{}{}\"}}", sales.commit_prefix, 7)).unwrap();
        assert_eq!(commit, json!({"channel_code": "web", "idempotency_key": "eventbench-00000000000000ab-7"}));
        assert_eq!(sales.session_url("S-1", "commit").unwrap().as_str(), "http://127.0.0.1:1/api/sessions/S-1/commit");
    }
}
