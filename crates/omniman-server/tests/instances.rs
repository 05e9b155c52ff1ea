//! Two `omniman serve` processes on one PostgreSQL database, with and without one Redis
//! (docs/deployment.md): what one instance writes, the other serves at once; one idempotency
//! key gives one order whichever instance answers; a token revoked through the CLI stops
//! working on both within a second; rate limits are one budget across both (with Redis); and
//! an outage of Redis under load loses no request.
//!
//! Each test has its own PostgreSQL database (`TestDb`) and its own Redis key prefix. Redis:
//! `OMNIMAN_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); unreachable, the test is
//! skipped loudly, except under `CI=true`, where it fails. The outage test starts and kills
//! its own `redis-server` on a free port.

mod common;

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Api, Running, apply_channels, cli_out, temp_dir};
use omniman_storage::test_support::{TestDb, running_in_ci};
use serde_json::{Value, json};

fn redis_url() -> String {
    std::env::var("OMNIMAN_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

/// `host:port` of a `redis://` URL.
fn redis_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:6379") }
}

/// The test Redis, or `None` (after a loud message) when it does not answer outside CI.
fn redis_or_skip() -> Option<String> {
    let url = redis_url();
    let address = redis_address(&url);
    let reachable = address
        .parse()
        .map_err(|e| format!("{e}"))
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).map_err(|e| e.to_string()));
    match reachable {
        Ok(_) => Some(url),
        Err(e) => {
            assert!(!running_in_ci(), "Redis unreachable at {url} ({e}); CI=true requires it");
            let _ = writeln!(std::io::stderr(), "*** SKIPPED: Redis unreachable at {url} ({e}) ***");
            None
        }
    }
}

/// A key prefix no other test uses.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("omniman-test:{}:{nanos}:{test}:", std::process::id())
}

/// Where the instances meet, besides the database.
#[derive(Clone, Debug)]
enum Shared {
    /// Nothing: each instance caches and counts alone.
    Nothing,
    /// Redis at this URL, under this prefix.
    Redis(String, String),
}

impl Shared {
    fn redis(test: &str) -> Option<Shared> {
        redis_or_skip().map(|url| Shared::Redis(url, unique_prefix(test)))
    }

    fn args(&self) -> Vec<String> {
        match self {
            Shared::Nothing => Vec::new(),
            Shared::Redis(url, prefix) => {
                vec!["--redis-url".into(), url.clone(), "--redis-prefix".into(), prefix.clone()]
            }
        }
    }
}

/// A migrated database with a `pos` channel and a client token, and two instances on it.
struct Pair {
    _db: TestDb,
    url: String,
    token: String,
    admin: String,
    a: Running,
    b: Running,
}

async fn pair(shared: &Shared, extra: &[&str]) -> Option<Pair> {
    let db = TestDb::postgres().await?;
    let url = db.url().to_owned();
    let dir = temp_dir();
    apply_channels(&url, dir.path(), &json!([{"code": "pos", "name": "Point of sale", "pricing_policy": "external"}]));
    let token = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let admin = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let mut args: Vec<String> = vec!["--workers".into(), "0".into()];
    args.extend(shared.args());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Running::serve(&url, &args).await;
    let b = Running::serve(&url, &args).await;
    if let Shared::Redis(..) = shared {
        for server in [&a, &b] {
            wait_ready(server, "ok", Duration::from_secs(10)).await;
        }
    }
    Some(Pair { _db: db, url, token, admin, a, b })
}

/// `GET /api/health/ready`: (HTTP status, body).
async fn ready(server: &Running) -> (u16, Value) {
    let r = reqwest::get(format!("{}/api/health/ready", server.base)).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The status of the `cache` readiness check.
fn cache_status(body: &Value) -> Option<String> {
    body["checks"].as_array()?.iter().find(|c| c["name"] == "cache").map(|c| c["status"].as_str().unwrap().to_owned())
}

async fn wait_ready(server: &Running, cache: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = ready(server).await;
        if status == 200 && body["status"] == "ready" && cache_status(&body).as_deref() == Some(cache) {
            return body;
        }
        assert!(Instant::now() < deadline, "readiness with cache {cache} not reached in {within:?}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn add(sku: &str) -> Value {
    json!({"channel_code": "pos", "ops": [{"op": "add_line", "sku": sku, "qty": 1, "unit_price_q": 500}]})
}

async fn open(api: &Api) -> String {
    let (status, body) = api.post("/sessions", &json!({"channel_code": "pos"})).await;
    assert_eq!(status, 201, "{body}");
    body["session_key"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------

async fn a_write_through_one_is_read_through_the_other_at_once(shared: Shared) {
    let Some(p) = pair(&shared, &[]).await else { return };
    let (a, b) = (Api::new(&p.a.base, &p.token), Api::new(&p.b.base, &p.token));
    let key = open(&a).await;
    let path = format!("/sessions/{key}?channel_code=pos");
    for round in 1..=10_i64 {
        // Alternate: each instance writes from the copy its last write left, which the other
        // has since made stale.
        let (writer, reader) = if round % 2 == 1 { (&a, &b) } else { (&b, &a) };
        let (status, written) = writer.post(&format!("/sessions/{key}/modify"), &add(&format!("S{round}"))).await;
        assert_eq!(status, 200, "{written}");
        assert_eq!(written["rev"], json!(round), "{written}");
        let (status, read) = reader.get(&path).await;
        assert_eq!((status, &read["rev"]), (200, &json!(round)), "{shared:?} round {round}: {read}");
        assert_eq!(read["items"].as_array().unwrap().len(), usize::try_from(round).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_is_read_through_the_other_at_once_with_redis() {
    let Some(shared) = Shared::redis("rev") else { return };
    a_write_through_one_is_read_through_the_other_at_once(shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_is_read_through_the_other_at_once_without_redis() {
    a_write_through_one_is_read_through_the_other_at_once(Shared::Nothing).await;
}

// ---------------------------------------------------------------------------------------------

async fn one_key_gives_one_order_across_instances(shared: Shared) {
    let Some(p) = pair(&shared, &[]).await else { return };
    let (a, b) = (Api::new(&p.a.base, &p.token), Api::new(&p.b.base, &p.token));
    let key = open(&a).await;
    // Both instances hold the session in memory before the race.
    assert_eq!(a.post(&format!("/sessions/{key}/modify"), &add("COFFEE")).await.0, 200);
    assert_eq!(b.post(&format!("/sessions/{key}/modify"), &add("TEA")).await.0, 200);
    let body = json!({"channel_code": "pos", "idempotency_key": "one-key"});
    let mut racers = Vec::new();
    for i in 0..100 {
        let api = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (path, body) = (format!("/sessions/{key}/commit"), body.clone());
        racers.push(tokio::spawn(async move { api.post(&path, &body).await }));
    }
    let mut answers = Vec::new();
    for racer in racers {
        answers.push(racer.await.unwrap());
    }
    let first = answers[0].clone();
    assert_eq!(first.0, 201, "{shared:?}: {first:?}");
    for answer in &answers {
        assert_eq!(answer, &first, "{shared:?}: every answer is the first one's");
    }
    let (status, orders) = a.get("/orders?channel_code=pos").await;
    assert_eq!(status, 200);
    let orders = orders["results"].as_array().unwrap();
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["ref"], first.1["order_ref"]);
    assert_eq!(orders[0]["items_count"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_gives_one_order_across_instances_with_redis() {
    let Some(shared) = Shared::redis("commit") else { return };
    one_key_gives_one_order_across_instances(shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_gives_one_order_across_instances_without_redis() {
    one_key_gives_one_order_across_instances(Shared::Nothing).await;
}

// ---------------------------------------------------------------------------------------------

async fn a_token_revoked_through_the_cli_is_refused_by_both_within_a_second(shared: Shared) {
    let Some(p) = pair(&shared, &[]).await else { return };
    let (a, b) = (Api::new(&p.a.base, &p.token), Api::new(&p.b.base, &p.token));
    // Both instances trust the token from memory now.
    for api in [&a, &b] {
        assert_eq!(api.get("/channels").await.0, 200);
    }
    cli_out(&p.url, &["tokens", "revoke", "till"]);
    let revoked = Instant::now();
    let mut refused = [None, None];
    while refused.iter().any(Option::is_none) {
        for (i, api) in [&a, &b].into_iter().enumerate() {
            if refused[i].is_none() && api.get("/channels").await.0 == 401 {
                refused[i] = Some(revoked.elapsed());
            }
        }
        assert!(revoked.elapsed() < Duration::from_secs(3), "{shared:?}: still accepted after 3 s: {refused:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The tokens' time to live is 1 s; the rest is this loop's own pace on a busy machine.
    for elapsed in refused.into_iter().flatten() {
        assert!(elapsed < Duration::from_millis(1300), "{shared:?}: refused only after {elapsed:?}");
    }
    // And it stays refused.
    for api in [&a, &b] {
        assert_eq!(api.get("/channels").await.0, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_the_cli_is_refused_by_both_within_a_second_with_redis() {
    let Some(shared) = Shared::redis("revoke") else { return };
    a_token_revoked_through_the_cli_is_refused_by_both_within_a_second(shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_the_cli_is_refused_by_both_within_a_second_without_redis() {
    a_token_revoked_through_the_cli_is_refused_by_both_within_a_second(Shared::Nothing).await;
}

// ---------------------------------------------------------------------------------------------

/// GET with the `RateLimit-Remaining` and `Retry-After` headers.
async fn limited_get(client: &reqwest::Client, base: &str, token: &str) -> (u16, Option<u64>, Option<u64>) {
    let r = client.get(format!("{base}/api/channels")).bearer_auth(token).send().await.unwrap();
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (r.status().as_u16(), header("ratelimit-remaining"), header("retry-after"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_one_budget_across_instances_with_redis() {
    let Some(shared) = Shared::redis("limits") else { return };
    let Some(p) = pair(&shared, &["--rate-limit-default", "other=6/min"]).await else { return };
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 { &p.a.base } else { &p.b.base };
        seen.push(limited_get(&client, base, &p.token).await);
    }
    let statuses: Vec<u16> = seen.iter().map(|s| s.0).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429], "{seen:?}");
    let remaining: Vec<Option<u64>> = seen.iter().take(6).map(|s| s.1).collect();
    assert_eq!(remaining, [Some(5), Some(4), Some(3), Some(2), Some(1), Some(0)]);
    // One request comes back every 10 s.
    for refused in &seen[6..] {
        assert!(refused.2.is_some_and(|s| (1..=10).contains(&s)), "{refused:?}");
    }
}

// ---------------------------------------------------------------------------------------------

/// A private `redis-server`, killed on drop.
struct PrivateRedis(Child);

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis(child)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of an unlabelled sample on `/metrics`.
async fn metric(server: &Running, admin: &str, name: &str) -> f64 {
    let client = reqwest::Client::new();
    let response = client.get(format!("{}/metrics", server.base)).bearer_auth(admin).send().await.unwrap();
    let text = response.text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not on /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_under_load_loses_no_request() {
    let installed = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if !installed {
        assert!(!running_in_ci(), "redis-server is not installed; CI=true requires it");
        let _ = writeln!(std::io::stderr(), "*** SKIPPED: redis-server is not installed ***");
        return;
    }
    let port = common::free_port();
    let redis = PrivateRedis::start(port);
    let shared = Shared::Redis(format!("redis://127.0.0.1:{port}"), unique_prefix("outage"));
    // Limits high enough never to refuse: every request still asks Redis for its budget.
    let limits = ["--rate-limit-default", "modify=100000/min,commit=100000/min,other=100000/min"];
    let Some(p) = pair(&shared, &limits).await else { return };
    let apis = [Api::new(&p.a.base, &p.token), Api::new(&p.b.base, &p.token)];

    let stop = Arc::new(AtomicBool::new(false));
    let mut users = Vec::new();
    for user in 0..8 {
        let api = apis[user % 2].clone();
        let other = apis[(user + 1) % 2].clone();
        let stop = Arc::clone(&stop);
        users.push(tokio::spawn(async move {
            let key = open(&api).await;
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // Writes alternate between the instances; each reads back through the other.
                let writer = if n % 2 == 0 { &api } else { &other };
                let reader = if n % 2 == 0 { &other } else { &api };
                let (status, body) = writer.post(&format!("/sessions/{key}/modify"), &add("COFFEE")).await;
                answers.push((status, body.to_string()));
                let (status, body) = reader.get(&format!("/sessions/{key}?channel_code=pos")).await;
                answers.push((status, body.to_string()));
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(redis);
    for server in [&p.a, &p.b] {
        let body = wait_ready(server, "degraded", Duration::from_secs(5)).await;
        assert_eq!(body["status"], "ready", "{body}");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _redis = PrivateRedis::start(port);
    for server in [&p.a, &p.b] {
        wait_ready(server, "ok", Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for user in users {
        for (status, body) in user.await.unwrap() {
            assert!((200..300).contains(&status), "a request failed during the outage: {status} {body}");
            total += 1;
        }
    }
    assert!(total > 50, "too little load to prove anything: {total} requests");
    eprintln!("outage under load: {total} requests, all 2xx");
    for server in [&p.a, &p.b] {
        assert!(metric(server, &p.admin, "omniman_cache_redis_errors_total").await >= 1.0);
        assert!((metric(server, &p.admin, "omniman_cache_redis_up").await - 1.0).abs() < f64::EPSILON);
    }
    let fallbacks = metric(&p.a, &p.admin, "omniman_rate_limit_fallbacks_total").await
        + metric(&p.b, &p.admin, "omniman_rate_limit_fallbacks_total").await;
    assert!(fallbacks >= 1.0, "requests during the outage were counted in process");
}
