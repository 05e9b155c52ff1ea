//! The seed workload: virtual users in a closed loop, each drawing its next task by weight.
//!
//! | Task | Weight | Request |
//! | --- | ---: | --- |
//! | `create_session` | 3 | `POST /api/sessions` `{"channel_code": C}`; the new key joins the user's open sessions |
//! | `modify_session` | 5 | `POST /api/sessions/{key}/modify`, one client-priced `add_line` of `COFFEE`, on one of them |
//! | `commit_session` | 2 | `POST /api/sessions/{key}/commit` with a unique `idempotency_key`, on one that has a line; it leaves the list |
//!
//! A user with no open session modifies nothing: it creates one instead, and so does a user
//! none of whose sessions has a line yet when it draws a commit (an empty session cannot be
//! committed: `409 empty_session`). Sessions are picked uniformly at random. Every user has
//! one request in flight at a time and sends the next as soon as the answer's body is read.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::Instant;

use super::Interrupt;
use super::stats::{Failure, Stats};

/// A user's pause after a transport error, so that a server that is down is not hammered by a
/// busy loop of refused connections.
const TRANSPORT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// What a virtual user does in one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Open a session.
    CreateSession,
    /// Add a line to one of the user's open sessions.
    ModifySession,
    /// Commit one of the user's open sessions that has a line.
    CommitSession,
}

impl Task {
    /// Every task, in the workload's order.
    pub const ALL: [Task; 3] = [Task::CreateSession, Task::ModifySession, Task::CommitSession];

    /// The sum of the tasks' weights.
    pub const TOTAL_WEIGHT: u32 = 10;

    /// The name used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Task::CreateSession => "create_session",
            Task::ModifySession => "modify_session",
            Task::CommitSession => "commit_session",
        }
    }

    /// How often the task is drawn, out of [`TOTAL_WEIGHT`](Self::TOTAL_WEIGHT).
    pub const fn weight(self) -> u32 {
        match self {
            Task::CreateSession => 3,
            Task::ModifySession => 5,
            Task::CommitSession => 2,
        }
    }

    /// The task that a roll in `0..TOTAL_WEIGHT` draws.
    pub fn from_roll(roll: u32) -> Task {
        let mut below = 0;
        for task in Task::ALL {
            below += task.weight();
            if roll < below {
                return task;
            }
        }
        Task::CommitSession
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

/// How long a pooled connection may stay idle before the tool drops it: less than the server's
/// keep-alive timeout (actix-web's default, 5 s).
pub(crate) const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(4);

/// Builds the HTTP client every user shares: HTTP/1.1 with keep-alive, one pooled connection
/// per user (each has one request in flight), the token and the content type sent with every
/// request, and no proxy (the server is addressed directly).
pub(crate) fn client(token: &str, users: u32, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    let mut auth = HeaderValue::try_from(format!("Bearer {token}")).context("the token is not a valid header value")?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reqwest::Client::builder()
        .default_headers(headers)
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::try_from(users).unwrap_or(usize::MAX))
        // Below the server's keep-alive (5 s): an idle connection is dropped here before the
        // server closes it, never reused at the moment it does (which fails the request sent
        // on it as a `request` transport error). The users share the pool, so with many users
        // some connections idle that long while others serve.
        .pool_idle_timeout(IDLE_CONNECTION_TIMEOUT)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .build()
        .context("cannot build the HTTP client")
}

/// What every user shares: the client, the URLs and bodies built once, the measured period
/// and the figures.
#[derive(Debug)]
pub(crate) struct Workload {
    client: reqwest::Client,
    /// One per instance; each user sends its requests to them in turn.
    targets: Vec<Target>,
    create_body: Bytes,
    modify_body: Bytes,
    /// The commit body up to the idempotency key's unique tail.
    commit_prefix: String,
    measure_from: Instant,
    deadline: Instant,
    interrupt: Arc<Interrupt>,
    stats: Mutex<Stats>,
    committed: AtomicU64,
    committed_in_run: AtomicU64,
}

/// The part of a created session the workload reads.
#[derive(Deserialize)]
struct Created<'a> {
    #[serde(borrow)]
    session_key: Cow<'a, str>,
}

/// The URLs of one instance.
#[derive(Debug)]
struct Target {
    sessions_url: Url,
    /// `{base}/api/sessions/`, to which a key and `/modify` or `/commit` are appended.
    session_prefix: String,
}

/// URLs of one open session, through each instance (in the order of the workload's targets).
#[derive(Debug)]
struct OpenSession {
    modify: Vec<Url>,
    commit: Vec<Url>,
}

impl Workload {
    /// A workload on the instances at `base_urls` (without a trailing `/`) and `channel`,
    /// measuring from `measure_from` until `deadline`; `run` tells idempotency keys of different
    /// runs apart.
    pub(crate) fn new(
        client: reqwest::Client,
        base_urls: &[String],
        channel: &str,
        run: u64,
        (measure_from, deadline): (Instant, Instant),
        interrupt: Arc<Interrupt>,
    ) -> anyhow::Result<Workload> {
        anyhow::ensure!(!base_urls.is_empty(), "no base URL");
        let targets = base_urls
            .iter()
            .map(|base_url| {
                let sessions_url = Url::parse(&format!("{base_url}/api/sessions")).context("invalid base URL")?;
                Ok(Target { session_prefix: format!("{sessions_url}/"), sessions_url })
            })
            .collect::<anyhow::Result<Vec<Target>>>()?;
        let create_body = json!({"channel_code": channel});
        let modify_body = json!({
            "channel_code": channel,
            "ops": [{"op": "add_line", "sku": "COFFEE", "qty": 1, "unit_price_q": 500}],
        });
        let channel_json = serde_json::to_string(channel)?;
        Ok(Workload {
            client,
            targets,
            create_body: Bytes::from(serde_json::to_vec(&create_body)?),
            modify_body: Bytes::from(serde_json::to_vec(&modify_body)?),
            commit_prefix: format!(r#"{{"channel_code":{channel_json},"idempotency_key":"load-{run:016x}-"#),
            measure_from,
            deadline,
            interrupt,
            stats: Mutex::new(Stats::default()),
            committed: AtomicU64::new(0),
            committed_in_run: AtomicU64::new(0),
        })
    }

    /// Whether users should stop: the measured period is over, or the run was interrupted.
    fn finished(&self) -> bool {
        self.interrupt.is_set() || Instant::now() >= self.deadline
    }

    /// The figures so far, and the commits answered `201` in the measured period and in the
    /// whole run.
    pub(crate) fn take_results(&self) -> (Stats, u64, u64) {
        let stats = std::mem::take(&mut *self.stats.lock().unwrap_or_else(PoisonError::into_inner));
        (stats, self.committed.load(Ordering::Relaxed), self.committed_in_run.load(Ordering::Relaxed))
    }

    fn open_session(&self, key: &str) -> Option<OpenSession> {
        let urls = |action: &str| -> Option<Vec<Url>> {
            self.targets.iter().map(|t| Url::parse(&format!("{}{key}/{action}", t.session_prefix)).ok()).collect()
        };
        Some(OpenSession { modify: urls("modify")?, commit: urls("commit")? })
    }

    fn commit_body(&self, user: u32, nth: u64) -> Bytes {
        Bytes::from(format!("{}{user}-{nth}\"}}", self.commit_prefix))
    }

    async fn post(&self, url: Url, body: Bytes) -> Result<reqwest::Response, Failure> {
        post(&self.client, url, body).await
    }
}

/// POSTs `body` to `url`; an answer outside 2xx is read to its end (so that the connection can
/// be reused) and returned as a failure. Shared with the event benchmark's sales.
pub(crate) async fn post(client: &reqwest::Client, url: Url, body: Bytes) -> Result<reqwest::Response, Failure> {
    let response = client.post(url).body(body).send().await.map_err(|e| Failure::transport(&e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    drain(response).await?;
    Err(Failure::Status(status.as_u16()))
}

/// Reads a body to its end without keeping it, so that the connection can be reused.
pub(crate) async fn drain(mut response: reqwest::Response) -> Result<(), Failure> {
    while response.chunk().await.map_err(|e| Failure::transport(&e))?.is_some() {}
    Ok(())
}

/// One virtual user.
#[derive(Debug)]
struct User {
    id: u32,
    rng: SmallRng,
    /// Open sessions without a line yet.
    empty: Vec<OpenSession>,
    /// Open sessions with at least one line: the ones that can be committed.
    filled: Vec<OpenSession>,
    commits: u64,
    /// Requests sent so far: which instance the next one goes to.
    sent: usize,
}

/// Runs user `id` until the workload is finished. `seed` makes its choices reproducible.
pub(crate) async fn run_user(workload: Arc<Workload>, id: u32, seed: u64) {
    let mut user = User {
        id,
        rng: SmallRng::seed_from_u64(seed),
        empty: Vec::new(),
        filled: Vec::new(),
        commits: 0,
        // Users start on different instances, so that each gets its share from the start.
        sent: id as usize,
    };
    while !workload.finished() {
        user.step(&workload).await;
    }
}

impl User {
    /// The instance the next request goes to (its index in the workload's targets).
    fn next_target(&mut self, workload: &Workload) -> usize {
        self.sent = self.sent.wrapping_add(1);
        self.sent % workload.targets.len()
    }

    /// The task to run when `drawn` was drawn, given the user's open sessions.
    fn plan(&self, drawn: Task) -> Task {
        match drawn {
            Task::ModifySession if self.empty.is_empty() && self.filled.is_empty() => Task::CreateSession,
            Task::CommitSession if self.filled.is_empty() => Task::CreateSession,
            task => task,
        }
    }

    async fn step(&mut self, workload: &Workload) {
        let drawn = Task::from_roll(self.rng.random_range(0..Task::TOTAL_WEIGHT));
        let task = self.plan(drawn);
        let started = Instant::now();
        let measured = started >= workload.measure_from;
        let outcome = match task {
            Task::CreateSession => self.create(workload).await,
            Task::ModifySession => self.modify(workload).await,
            Task::CommitSession => self.commit(workload, measured).await,
        };
        let latency = started.elapsed();
        if measured {
            workload.stats.lock().unwrap_or_else(PoisonError::into_inner).record(task, latency, outcome);
        }
        if let Err(Failure::Transport(_)) = outcome {
            tokio::time::sleep(TRANSPORT_ERROR_PAUSE).await;
        }
    }

    async fn create(&mut self, workload: &Workload) -> Result<(), Failure> {
        let target = self.next_target(workload);
        let response =
            workload.post(workload.targets[target].sessions_url.clone(), workload.create_body.clone()).await?;
        let body = response.bytes().await.map_err(|e| Failure::transport(&e))?;
        let created: Created<'_> = serde_json::from_slice(&body).map_err(|_| Failure::InvalidBody)?;
        let session = workload.open_session(&created.session_key).ok_or(Failure::InvalidBody)?;
        self.empty.push(session);
        Ok(())
    }

    async fn modify(&mut self, workload: &Workload) -> Result<(), Failure> {
        let target = self.next_target(workload);
        let pick = self.rng.random_range(0..self.empty.len() + self.filled.len());
        if pick < self.empty.len() {
            let session = self.empty.swap_remove(pick);
            let outcome = send_modify(workload, &session, target).await;
            if outcome.is_ok() {
                self.filled.push(session);
            } else {
                self.empty.push(session);
            }
            outcome
        } else {
            send_modify(workload, &self.filled[pick - self.empty.len()], target).await
        }
    }

    async fn commit(&mut self, workload: &Workload, measured: bool) -> Result<(), Failure> {
        let target = self.next_target(workload);
        let pick = self.rng.random_range(0..self.filled.len());
        let mut session = self.filled.swap_remove(pick);
        self.commits += 1;
        let url = session.commit.swap_remove(target);
        let response = workload.post(url, workload.commit_body(self.id, self.commits)).await?;
        if response.status() == StatusCode::CREATED {
            workload.committed_in_run.fetch_add(1, Ordering::Relaxed);
            if measured {
                workload.committed.fetch_add(1, Ordering::Relaxed);
            }
        }
        drain(response).await
    }
}

async fn send_modify(workload: &Workload, session: &OpenSession, target: usize) -> Result<(), Failure> {
    drain(workload.post(session.modify[target].clone(), workload.modify_body.clone()).await?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolls_draw_the_tasks_by_weight() {
        let drawn: Vec<Task> = (0..Task::TOTAL_WEIGHT).map(Task::from_roll).collect();
        for task in Task::ALL {
            assert_eq!(drawn.iter().filter(|t| **t == task).count(), task.weight() as usize, "{task:?}");
        }
        assert_eq!(Task::ALL.iter().map(|t| t.weight()).sum::<u32>(), Task::TOTAL_WEIGHT);
        assert_eq!(Task::ALL.map(Task::index), [0, 1, 2]);
        assert_eq!(serde_json::to_value(Task::CommitSession).unwrap(), Task::CommitSession.name());
    }

    fn workload() -> Workload {
        let now = Instant::now();
        Workload::new(
            reqwest::Client::new(),
            &["http://127.0.0.1:8000".to_owned(), "http://127.0.0.2:8001".to_owned()],
            "web\"shop",
            0xab,
            (now, now),
            Arc::new(Interrupt::default()),
        )
        .unwrap()
    }

    #[test]
    fn a_user_sends_its_requests_to_each_instance_in_turn() {
        let workload = workload();
        let mut user =
            User { id: 1, rng: SmallRng::seed_from_u64(1), empty: Vec::new(), filled: Vec::new(), commits: 0, sent: 1 };
        let turns: Vec<usize> = (0..4).map(|_| user.next_target(&workload)).collect();
        assert_eq!(turns, [0, 1, 0, 1]);
    }

    #[test]
    fn bodies_are_built_once_as_the_api_reads_them() {
        let workload = workload();
        let create: serde_json::Value = serde_json::from_slice(&workload.create_body).unwrap();
        assert_eq!(create, json!({"channel_code": "web\"shop"}));
        let modify: serde_json::Value = serde_json::from_slice(&workload.modify_body).unwrap();
        assert_eq!(modify["ops"][0], json!({"op": "add_line", "sku": "COFFEE", "qty": 1, "unit_price_q": 500}));
        let commit: serde_json::Value = serde_json::from_slice(&workload.commit_body(3, 17)).unwrap();
        assert_eq!(commit, json!({"channel_code": "web\"shop", "idempotency_key": "load-00000000000000ab-3-17"}));
        let session = workload.open_session("SESS-ABC:1.x").unwrap();
        assert_eq!(session.modify[0].as_str(), "http://127.0.0.1:8000/api/sessions/SESS-ABC:1.x/modify");
        assert_eq!(session.commit[0].as_str(), "http://127.0.0.1:8000/api/sessions/SESS-ABC:1.x/commit");
        assert_eq!(session.modify[1].as_str(), "http://127.0.0.2:8001/api/sessions/SESS-ABC:1.x/modify");
        assert_eq!(workload.targets[0].sessions_url.as_str(), "http://127.0.0.1:8000/api/sessions");
        assert_eq!(workload.targets[1].sessions_url.as_str(), "http://127.0.0.2:8001/api/sessions");
    }

    #[test]
    fn a_user_creates_when_it_has_nothing_to_modify_or_commit() {
        let workload = workload();
        let mut user =
            User { id: 0, rng: SmallRng::seed_from_u64(1), empty: Vec::new(), filled: Vec::new(), commits: 0, sent: 0 };
        assert_eq!(user.plan(Task::ModifySession), Task::CreateSession);
        assert_eq!(user.plan(Task::CommitSession), Task::CreateSession);
        user.empty.push(workload.open_session("A").unwrap());
        assert_eq!(user.plan(Task::ModifySession), Task::ModifySession);
        assert_eq!(user.plan(Task::CommitSession), Task::CreateSession, "an empty session is never committed");
        user.filled.push(workload.open_session("B").unwrap());
        assert_eq!(user.plan(Task::CommitSession), Task::CommitSession);
        assert_eq!(user.plan(Task::CreateSession), Task::CreateSession);
    }
}
