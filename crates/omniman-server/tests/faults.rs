//! Faults injected into the real `omniman` binary on PostgreSQL, under load:
//!
//! - SIGKILL in the middle of a load of commits, three times: every order has all its lines,
//!   its `created` event and its post-commit directive; every committed session has exactly one
//!   order; every idempotency key replays the same bytes, also those whose first answer was lost
//!   with the process;
//! - the database restarted under load (a private cluster, `initdb` + `pg_ctl` on a free port,
//!   never the shared server): requests fail cleanly (JSON `503 service_unavailable`) during the
//!   outage, readiness flips to 503 and back to 200 within about a second each way, and the same
//!   server process answers again once the database is back.
//!
//! Bounded to well under a minute each. They need PostgreSQL; under `CI=true` they fail instead
//! of skipping when it (or `initdb`) is missing. Figures are printed (`--nocapture`) for
//! docs/reliability.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Running, apply_channels, cli_out, temp_dir};
use omniman_storage::test_support::{TestDb, running_in_ci};
use serde_json::{Value, json};

const LINES: usize = 3;
const PRICE: i64 = 250;
/// SIGKILLs, one per round of load.
const KILLS: usize = 3;
/// Clients committing at once.
const TASKS: usize = 12;

fn channels() -> Value {
    json!([{"code": "pos", "name": "Point of sale", "config": {"post_commit_directives": ["fault.audit"]}}])
}

/// A client that never reuses a connection across a kill and never waits long.
fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).pool_max_idle_per_host(4).build().unwrap()
}

/// POST; `None` when no answer came (connection refused or broken).
async fn post(client: &reqwest::Client, base: &str, token: &str, path: &str, body: &Value) -> Option<(u16, String)> {
    let r = client.post(format!("{base}/api{path}")).bearer_auth(token).json(body).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

async fn get(client: &reqwest::Client, base: &str, token: &str, path: &str) -> (u16, Value) {
    let r = client.get(format!("{base}/api{path}")).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Every item of a paginated list, following `next`.
async fn all(client: &reqwest::Client, base: &str, token: &str, first: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let path = path.strip_prefix("/api").unwrap_or(&path).to_owned();
        let (status, page) = get(client, base, token, &path).await;
        assert_eq!(status, 200, "{path}: {page}");
        items.extend(page["results"].as_array().unwrap().iter().cloned());
        next = page["next"].as_str().map(str::to_owned);
    }
    items
}

/// One session of the load: opened, filled, and committed with its key (if it got that far).
#[derive(Debug, Clone)]
struct Attempt {
    session_key: String,
    idempotency_key: String,
    /// The commit's answer, `None` when the process died before answering.
    answer: Option<(u16, String)>,
}

/// Opens, fills and commits sessions until `stop`; returns the sessions that reached their commit.
async fn load(base: String, token: String, worker: usize, stop: Arc<AtomicBool>) -> Vec<Attempt> {
    let client = client();
    let mut attempts = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let Some((201, opened)) = post(&client, &base, &token, "/sessions", &json!({"channel_code": "pos"})).await
        else {
            break;
        };
        let key = serde_json::from_str::<Value>(&opened).unwrap()["session_key"].as_str().unwrap().to_owned();
        let ops: Vec<Value> = (0..LINES)
            .map(|n| json!({"op": "add_line", "sku": format!("S{n}"), "qty": 1, "unit_price_q": PRICE}))
            .collect();
        let modify = json!({"channel_code": "pos", "ops": ops});
        let Some((200, _)) = post(&client, &base, &token, &format!("/sessions/{key}/modify"), &modify).await else {
            break;
        };
        let idempotency_key = format!("w{worker}-{i}-{key}");
        let commit = json!({"channel_code": "pos", "idempotency_key": idempotency_key});
        let answer = post(&client, &base, &token, &format!("/sessions/{key}/commit"), &commit).await;
        if let Some((status, body)) = &answer {
            assert_eq!(*status, 201, "{body}");
        }
        let died = answer.is_none();
        attempts.push(Attempt { session_key: key, idempotency_key, answer });
        if died {
            break;
        }
    }
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_load_loses_and_duplicates_nothing() {
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url().to_owned();
    let dir = temp_dir();
    apply_channels(&url, dir.path(), &channels());
    let token = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let admin = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    // No workers: the post-commit directives stay `pending`, where they can be counted.
    let serve_args = ["--workers", "0"];

    let mut attempts: Vec<Attempt> = Vec::new();
    for round in 0..KILLS {
        let server = Running::serve(&url, &serve_args).await;
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..TASKS)
            .map(|w| tokio::spawn(load(server.base.clone(), token.clone(), round * TASKS + w, stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill_hard();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            attempts.extend(task.await.unwrap());
        }
    }
    let lost = attempts.iter().filter(|a| a.answer.is_none()).count();

    let server = Running::serve(&url, &serve_args).await;
    let client = client();
    let base = server.base.clone();
    // A commit whose answer was lost is sent again with its key: it answers now, once.
    for attempt in attempts.iter_mut().filter(|a| a.answer.is_none()) {
        let commit = json!({"channel_code": "pos", "idempotency_key": attempt.idempotency_key});
        let answer = post(&client, &base, &token, &format!("/sessions/{}/commit", attempt.session_key), &commit).await;
        let (status, body) = answer.expect("the restarted server answers");
        assert_eq!(status, 201, "{body}");
        attempt.answer = Some((status, body));
    }
    // Every key replays the bytes of its answer.
    let mut orders_of_sessions: BTreeMap<String, String> = BTreeMap::new();
    for attempt in &attempts {
        let commit = json!({"channel_code": "pos", "idempotency_key": attempt.idempotency_key});
        let again = post(&client, &base, &token, &format!("/sessions/{}/commit", attempt.session_key), &commit).await;
        assert_eq!(again.as_ref(), attempt.answer.as_ref(), "{} replays its answer", attempt.idempotency_key);
        let (_, body) = attempt.answer.as_ref().unwrap();
        let order_ref = serde_json::from_str::<Value>(body).unwrap()["order_ref"].as_str().unwrap().to_owned();
        assert!(orders_of_sessions.insert(attempt.session_key.clone(), order_ref).is_none());
    }

    // The orders: exactly one per committed session, each whole.
    let orders = all(&client, &base, &admin, "/orders?page_size=100").await;
    let refs: BTreeSet<String> = orders.iter().map(|o| o["ref"].as_str().unwrap().to_owned()).collect();
    assert_eq!(refs.len(), orders.len(), "no order is listed twice");
    let committed: BTreeSet<String> = orders_of_sessions.values().cloned().collect();
    assert_eq!(refs, committed, "the orders are exactly those the commits answered");
    let sessions = all(&client, &base, &admin, "/sessions?page_size=100&state=committed").await;
    let committed_sessions: BTreeSet<String> =
        sessions.iter().map(|s| s["session_key"].as_str().unwrap().to_owned()).collect();
    assert_eq!(committed_sessions, orders_of_sessions.keys().cloned().collect(), "one order per committed session");
    for order_ref in &refs {
        let (status, order) = get(&client, &base, &admin, &format!("/orders/{order_ref}")).await;
        assert_eq!(status, 200, "{order}");
        assert_eq!(order["items"].as_array().unwrap().len(), LINES, "{order}");
        assert_eq!(order["total_q"], json!(PRICE * i64::try_from(LINES).unwrap()), "{order}");
        assert_eq!(orders_of_sessions.get(order["session_key"].as_str().unwrap()), Some(order_ref));
        let events = all(&client, &base, &admin, &format!("/orders/{order_ref}/events")).await;
        assert_eq!(events.iter().filter(|e| e["type"] == "created").count(), 1, "{events:?}");
    }
    // The post-commit directives: one per order.
    let directives = all(&client, &base, &admin, "/directives?topic=fault.audit&page_size=100").await;
    let mut audited: Vec<String> = Vec::new();
    for d in &directives {
        let (_, detail) = get(&client, &base, &admin, &format!("/directives/{}", d["id"])).await;
        audited.push(detail["payload"]["order_ref"].as_str().unwrap().to_owned());
    }
    audited.sort();
    assert_eq!(audited, refs.iter().cloned().collect::<Vec<_>>(), "each order has its one directive");
    eprintln!(
        "FAULTS sigkill: {KILLS} SIGKILLs, {} commits, {lost} answers lost with the process and replayed, {} orders \
         checked (lines, event, directive), 0 lost, 0 duplicated",
        attempts.len(),
        refs.len()
    );
    assert!(attempts.len() > KILLS * TASKS, "the load committed something in each round");
}

// ---------------------------------------------------------------------------------------------
// A private PostgreSQL cluster, restarted under load
// ---------------------------------------------------------------------------------------------

/// Where `initdb` and `pg_ctl` are: `OMNIMAN_TEST_PG_BINDIR`, `pg_config --bindir`, or the
/// newest `/usr/lib/postgresql/*/bin`.
fn pg_bindir() -> Option<PathBuf> {
    let has_tools = |dir: &PathBuf| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("OMNIMAN_TEST_PG_BINDIR").map(PathBuf::from) {
        return has_tools(&dir).then_some(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_tools(&dir) {
            return Some(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(has_tools)
        .collect();
    found.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    found.pop()
}

/// A throwaway cluster on a free port, owned by this test (stopped and deleted on drop).
struct Cluster {
    bindir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// `postgres` refuses to run as root: then every command runs as the `postgres` user.
    as_user: Option<&'static str>,
}

impl Cluster {
    fn command(&self, tool: &str) -> Command {
        let path = self.bindir.join(tool);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn create(bindir: PathBuf) -> Cluster {
        let root =
            Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::tempdir().unwrap();
        let cluster = Cluster { bindir, dir, port: common::free_port(), as_user: root.then_some("postgres") };
        if root {
            let ok = Command::new("chown").args(["-R", "postgres"]).arg(cluster.dir.path()).status().unwrap();
            assert!(ok.success(), "chown of the cluster directory");
        }
        let out = cluster
            .command("initdb")
            .args(["-U", "postgres", "--auth=trust", "-N", "-D"])
            .arg(cluster.data())
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        cluster.start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .args(["-D"])
            .arg(self.data())
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("postgres.log"))
            .args(["-w", "-t", "30"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn start(&self) {
        self.pg_ctl(&["start"]);
    }

    /// An abrupt stop: every connection is cut, as when the database host fails.
    fn stop(&self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-D"]).arg(self.data()).args(["-m", "immediate", "-w", "stop"]).output();
    }
}

/// What the load saw: answers by status and error code, and transport failures.
#[derive(Default, Debug)]
struct Seen {
    by_status: BTreeMap<(u16, String), usize>,
    broken: usize,
}

/// Counts one answer of the load (outside any `await`: the lock is never held across one).
fn record(seen: &Mutex<Seen>, succeeded: &AtomicUsize, answer: Option<(u16, String)>) {
    let mut seen = seen.lock().unwrap();
    match answer {
        Some((status, _)) if status < 300 => {
            succeeded.fetch_add(1, Ordering::Relaxed);
        }
        Some((status, body)) => {
            let code = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|b| b["error"]["code"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("not a JSON error: {body}"));
            *seen.by_status.entry((status, code)).or_default() += 1;
        }
        None => seen.broken += 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restarted_under_load_is_clean_503s_then_success_without_a_server_restart() {
    let Some(bindir) = pg_bindir() else {
        assert!(!running_in_ci(), "initdb/pg_ctl not found; CI=true requires them (set OMNIMAN_TEST_PG_BINDIR)");
        eprintln!("*** SKIPPED: initdb/pg_ctl not found; set OMNIMAN_TEST_PG_BINDIR ***");
        return;
    };
    let cluster = Cluster::create(bindir);
    let url = cluster.url();
    let dir = temp_dir();
    common::cli(&url, &["migrate"]);
    apply_channels(&url, dir.path(), &channels());
    let token = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client"]);
    // Its output is captured: the outage fills it with one warning per refused request.
    let bind = format!("127.0.0.1:{}", common::free_port());
    let command = common::command(
        &["serve", "--bind", &bind, "--database-url", &url, "--workers", "0", "--http-threads", "2"],
        &[("OMNIMAN_LOG", "warn")],
    );
    let mut server = Running::spawn_captured(command, &bind).await.server;
    let base = server.base.clone();

    // Readiness, polled every 20 ms: (instant, status).
    let stop = Arc::new(AtomicBool::new(false));
    let readiness: Arc<Mutex<Vec<(Instant, u16)>>> = Arc::default();
    let poller = {
        let (stop, readiness, base) = (stop.clone(), readiness.clone(), base.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let status = match client.get(format!("{base}/api/health/ready")).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                readiness.lock().unwrap().push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Load: sessions opened and modified over and over.
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let succeeded = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, seen, succeeded, base, token) =
                (stop.clone(), seen.clone(), succeeded.clone(), base.clone(), token.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                let line = json!({"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 5});
                let ops = json!({"channel_code": "pos", "ops": [line]});
                while !stop.load(Ordering::Relaxed) {
                    let answer = match post(&client, &base, &token, "/sessions", &json!({"channel_code": "pos"})).await
                    {
                        Some((201, body)) => {
                            let key = serde_json::from_str::<Value>(&body).unwrap()["session_key"]
                                .as_str()
                                .unwrap()
                                .to_owned();
                            post(&client, &base, &token, &format!("/sessions/{key}/modify"), &ops).await
                        }
                        other => other,
                    };
                    record(&seen, &succeeded, answer);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = succeeded.load(Ordering::Relaxed);
    let down_at = Instant::now();
    cluster.stop();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let during = succeeded.load(Ordering::Relaxed);
    cluster.start();
    let up_at = Instant::now();
    // Success again, from the same server process, within 15 s.
    let deadline = up_at + Duration::from_secs(15);
    while succeeded.load(Ordering::Relaxed) < during + 20 {
        assert!(Instant::now() < deadline, "no success after the database came back: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered_after = up_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    poller.await.unwrap();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let readiness = readiness.lock().unwrap().clone();
    let first = |from: Instant, wanted: u16| {
        readiness.iter().find(|(at, s)| *at >= from && *s == wanted).map(|(at, _)| *at - from)
    };
    let unready_after = first(down_at, 503).expect("readiness went 503 during the outage");
    let ready_after = first(up_at, 200).expect("readiness went back to 200");
    assert!(before > 0, "the load ran before the outage");
    assert!(unready_after < Duration::from_millis(1500), "readiness took {unready_after:?} to say 503");
    assert!(ready_after < Duration::from_millis(1500), "readiness took {ready_after:?} to say 200");
    // Every failure is an answer, JSON, and says the database is unavailable; no connection is
    // dropped and no 500 is sent.
    assert_eq!(seen.broken, 0, "{seen:?}");
    let failures: usize = seen.by_status.values().sum();
    assert!(failures > 0, "the outage was seen");
    for (status, code) in seen.by_status.keys() {
        assert_eq!((*status, code.as_str()), (503, "service_unavailable"), "{seen:?}");
    }
    assert!(server.child.try_wait().unwrap().is_none(), "the same server process answered throughout");
    eprintln!(
        "FAULTS restart: 1 database restart (immediate stop, 2.5 s down); {} requests succeeded, {failures} \
         answered 503 service_unavailable, 0 other errors, 0 broken connections; readiness 503 after {:?}, \
         200 after {:?} from the restart; first successes {:?} after it",
        succeeded.load(Ordering::Relaxed),
        unready_after,
        ready_after,
        recovered_after
    );
}
