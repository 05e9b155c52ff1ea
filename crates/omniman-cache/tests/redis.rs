//! The shared tier on a real Redis: two `CachedStore`s over one store stand for two instances
//! over one database. Each test uses its own key prefix, so tests (and developers) sharing one
//! Redis do not see each other.
//!
//! Redis: `OMNIMAN_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). Unreachable: the test is
//! skipped with a loud message, except under `CI=true`, where it fails. The outage test starts
//! its own `redis-server` on a free port and kills it.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use omniman_cache::{CacheConfig, CachedStore, RedisConfig};
use omniman_core::channel::ChannelSpec;
use omniman_core::memory::InMemoryStore;
use omniman_core::ops::Op;
use omniman_core::ports::{ApiToken, ChannelStore, Role, TokenStore};
use omniman_core::prelude::*;
use omniman_core::testing;
use serde_json::json;

fn redis_url() -> String {
    std::env::var("OMNIMAN_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The test Redis URL, or `None` (after a loud message) when it does not answer outside CI.
fn redis_or_skip() -> Option<String> {
    let url = redis_url();
    let answers = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .map_err(|e| e.to_string());
    match answers {
        Ok(_) => Some(url),
        Err(e) => {
            assert!(!in_ci(), "Redis unreachable at {url} ({e}); CI=true requires it (set OMNIMAN_TEST_REDIS_URL)");
            let _ = writeln!(std::io::stderr(), "*** SKIPPED: Redis unreachable at {url} ({e}) ***");
            None
        }
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A prefix no other test uses.
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("omniman-test:{}:{nanos}:{}:", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

type Cached = CachedStore<InMemoryStore>;

/// Long times to live: whatever is dropped here was dropped by a message.
fn long_ttls() -> CacheConfig {
    CacheConfig { token_ttl: Duration::from_secs(60), channel_ttl: Duration::from_secs(60), ..CacheConfig::default() }
}

fn instance(inner: &InMemoryStore, config: &RedisConfig) -> Cached {
    CachedStore::new(inner.clone(), long_ttls()).with_redis(config).unwrap()
}

async fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn up(stores: &[&Cached]) {
    wait_until("Redis up", Duration::from_secs(5), || stores.iter().all(|s| s.redis().unwrap().is_up())).await;
}

fn add(sku: &str) -> Vec<Op> {
    Op::parse_batch(&json!([{"op": "add_line", "sku": sku, "qty": 1, "unit_price_q": 100}])).unwrap()
}

fn till() -> Caller {
    Caller::external("till")
}

fn token(name: &str) -> ApiToken {
    ApiToken {
        id: 0,
        name: name.into(),
        token_hash: format!("hash-{name}"),
        role: Role::Client,
        channels: None,
        created_at: chrono::Utc::now(),
        revoked_at: None,
        rate_limits: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_drops_the_other_s_copy() {
    let Some(url) = redis_or_skip() else { return };
    let config = RedisConfig::new(url).with_prefix(unique_prefix());
    let inner = InMemoryStore::new();
    inner.upsert_channel(&ChannelSpec::new("pos"), chrono::Utc::now()).await.unwrap();
    let (a, b) = (instance(&inner, &config), instance(&inner, &config));
    up(&[&a, &b]).await;
    let (hub_a, hub_b) =
        (Omniman::new(a.clone(), Extensions::default()), Omniman::new(b.clone(), Extensions::default()));

    let opened = hub_a.open_session(OpenSession::on(testing::code("pos")), &till()).await.unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    hub_b.modify(&at, &add("A"), None, &till()).await.unwrap();
    // B now holds the session at the version it wrote; A writes after it.
    let received = b.redis().unwrap().counts().received;
    hub_a.modify(&at, &add("B"), None, &till()).await.unwrap();
    wait_until("B hears of A's write", Duration::from_secs(2), || b.redis().unwrap().counts().received > received)
        .await;
    // B's next write reads the store (a miss) instead of starting from a stale copy (a hit whose
    // compare-and-set fails, then a miss).
    let before = b.counts();
    let a_received = a.redis().unwrap().counts().received;
    let after = hub_b.modify(&at, &add("C"), None, &till()).await.unwrap();
    let counts = b.counts();
    assert_eq!((counts.session_hits - before.session_hits, counts.session_misses - before.session_misses), (0, 1));
    let skus: Vec<&str> = after.items.iter().map(|i| i.sku.as_str()).collect();
    assert_eq!((skus, after.rev), (vec!["A", "B", "C"], 3));
    // A ignores its own messages: its copy stays, and its next write starts from it.
    wait_until("A hears of B's write", Duration::from_secs(2), || a.redis().unwrap().counts().received > a_received)
        .await;
    let before = a.counts();
    hub_a.modify(&at, &add("D"), None, &till()).await.unwrap();
    assert_eq!(a.counts().session_misses - before.session_misses, 1, "A's copy was dropped by B's write");
    let before = a.counts();
    hub_a.modify(&at, &add("E"), None, &till()).await.unwrap();
    assert_eq!(a.counts().session_hits - before.session_hits, 1, "A's own write keeps its copy");
    // A sent its three writes (B, D, E; an open is not sent: no other instance can hold a new session).
    wait_until("A's writes sent", Duration::from_secs(2), || a.redis().unwrap().counts().published >= 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_and_a_changed_channel_are_dropped_everywhere_at_once() {
    let Some(url) = redis_or_skip() else { return };
    let config = RedisConfig::new(url).with_prefix(unique_prefix());
    let inner = InMemoryStore::new();
    inner.upsert_channel(&ChannelSpec::new("pos"), chrono::Utc::now()).await.unwrap();
    inner.create_token(&token("till")).await.unwrap();
    let (a, b) = (instance(&inner, &config), instance(&inner, &config));
    up(&[&a, &b]).await;
    assert!(b.token_by_hash("hash-till").await.unwrap().is_some());
    assert_ne!(b.channel_by_code("pos").await.unwrap().unwrap().name, "Point of sale");

    assert!(a.revoke_token("till", chrono::Utc::now()).await.unwrap());
    let mut spec = ChannelSpec::new("pos");
    spec.name = "Point of sale".into();
    a.upsert_channel(&spec, chrono::Utc::now()).await.unwrap();
    // Within a 60 s time to live: only the messages can make B see these.
    let started = Instant::now();
    loop {
        let token = b.token_by_hash("hash-till").await.unwrap();
        let channel = b.channel_by_code("pos").await.unwrap().unwrap();
        if token.is_none() && channel.name == "Point of sale" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "B still trusts {token:?} / {channel:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_rate_limit_budget() {
    let Some(url) = redis_or_skip() else { return };
    let config = RedisConfig::new(url).with_prefix(unique_prefix());
    let inner = InMemoryStore::new();
    let (a, b) = (instance(&inner, &config), instance(&inner, &config));
    up(&[&a, &b]).await;
    let (ra, rb) = (a.redis().unwrap(), b.redis().unwrap());
    let per = Duration::from_secs(60);
    let mut remaining = Vec::new();
    for i in 0..5 {
        let tier = if i % 2 == 0 { ra } else { rb };
        let outcome = tier.gcra("commit:till", 5, per).await.expect("Redis answers");
        assert!(outcome.allowed, "request {i}: {outcome:?}");
        remaining.push(outcome.remaining);
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    for tier in [ra, rb] {
        let refused = tier.gcra("commit:till", 5, per).await.unwrap();
        assert!(!refused.allowed);
        // One request comes back every 12 s; the budget is full again within a minute.
        assert!(refused.retry_after > Duration::from_secs(11) && refused.retry_after <= Duration::from_secs(12));
        assert!(refused.reset_after > Duration::from_secs(59) && refused.reset_after <= per);
    }
    // Another budget is untouched.
    assert_eq!(rb.gcra("commit:web", 5, per).await.unwrap().remaining, 4);
    assert_eq!(ra.counts().rate_limit_fallbacks + rb.counts().rate_limit_fallbacks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_everything_works_from_the_store_and_says_so() {
    // Nothing listens there (a port just released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = RedisConfig::new(format!("redis://127.0.0.1:{port}")).with_prefix(unique_prefix());
    let inner = InMemoryStore::new();
    inner.upsert_channel(&ChannelSpec::new("pos"), chrono::Utc::now()).await.unwrap();
    let a = instance(&inner, &config);
    let hub = Omniman::new(a.clone(), Extensions::default());
    let started = Instant::now();
    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &till()).await.unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    for sku in ["A", "B", "C"] {
        hub.modify(&at, &add(sku), None, &till()).await.unwrap();
    }
    assert!(a.redis().unwrap().gcra("commit:till", 5, Duration::from_secs(60)).await.is_none());
    assert!(started.elapsed() < Duration::from_secs(1), "nothing waits for Redis: {:?}", started.elapsed());
    wait_until("errors counted", Duration::from_secs(3), || a.redis().unwrap().counts().errors > 0).await;
    let counts = a.redis().unwrap().counts();
    assert!(!counts.up);
    assert_eq!(counts.rate_limit_fallbacks, 1);
    assert!(counts.unsent >= 3, "{counts:?}");
    assert_eq!(a.counts().session_hits, 3, "the in-process level works alone");
}

/// A private `redis-server` on a free port, killed on drop.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install it: apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child, port }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server_or_skip() -> bool {
    let found = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(!in_ci(), "redis-server is not installed; CI=true requires it");
        let _ = writeln!(std::io::stderr(), "*** SKIPPED: redis-server is not installed ***");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_the_tier_reconnects_and_starts_afresh() {
    if !redis_server_or_skip() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = PrivateRedis::start(port);
    let config = RedisConfig::new(format!("redis://127.0.0.1:{}", server.port)).with_prefix(unique_prefix());
    let inner = InMemoryStore::new();
    inner.upsert_channel(&ChannelSpec::new("pos"), chrono::Utc::now()).await.unwrap();
    let (a, b) = (instance(&inner, &config), instance(&inner, &config));
    up(&[&a, &b]).await;
    let hub = Omniman::new(a.clone(), Extensions::default());
    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &till()).await.unwrap();
    let at = testing::at("pos", &opened.session.session_key);

    drop(server);
    wait_until("down", Duration::from_secs(3), || !a.redis().unwrap().is_up() && !b.redis().unwrap().is_up()).await;
    // Writes and rate limits go on without it.
    hub.modify(&at, &add("A"), None, &till()).await.unwrap();
    assert!(a.redis().unwrap().gcra("other:till", 5, Duration::from_secs(1)).await.is_none());

    let _server = PrivateRedis::start(port);
    up(&[&a, &b]).await;
    for store in [&a, &b] {
        assert!(store.redis().unwrap().counts().resyncs >= 2, "{:?}", store.redis().unwrap().counts());
    }
    assert!(a.redis().unwrap().gcra("other:till", 5, Duration::from_secs(1)).await.is_some());
    // B's copies went with the outage (it may have missed messages meanwhile).
    assert_eq!(b.counts().session_hits, 0);
}
