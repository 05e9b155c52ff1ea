//! The shared tier: Redis, when several instances serve one database.
//!
//! It holds no values (docs/deployment.md says why): it carries
//!
//! - **invalidations**, over pub/sub: a write through one instance tells the others to drop
//!   what their in-process level holds of it (a session written, a channel changed, tokens
//!   revoked). Messages are published in the background, after the database committed, from a
//!   queue the request only pushes to; each instance ignores its own;
//! - **rate limits** shared by every instance ([`RedisTier::gcra`]): one Lua script, atomic.
//!
//! Redis is never needed for a correct answer. When it cannot be reached, the tier is marked
//! down ([`RedisCounts::up`]), requests stop waiting for it (rate limits are counted in process,
//! invalidations are not sent) and a background task keeps trying to reconnect; once it is back,
//! the instance drops its whole in-process level, since it may have missed invalidations
//! meanwhile. While it is down, tokens and channels changed elsewhere are seen within their time
//! to live and a stale session costs a compare-and-set retry, as without Redis.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use moka::ops::compute::Op;
use moka::sync::Cache;
use omniman_core::channel::Channel;
use omniman_core::ports::ApiToken;
use omniman_core::session::Session;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};
use tokio::sync::mpsc;

use crate::{Counters, SessionAt, bump};

/// Where Redis is and how long it may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`, `redis+unix://`).
    pub url: String,
    /// Prepended to every key and channel name, so that several deployments (or tests) can share
    /// one Redis.
    pub prefix: String,
    /// The longest a request waits for Redis before doing without it.
    pub timeout: Duration,
    /// How often a lost connection is tried again.
    pub retry_every: Duration,
}

/// The key prefix used unless another is configured.
pub const DEFAULT_PREFIX: &str = "omniman:";

impl RedisConfig {
    /// `url` with the default prefix (`omniman:`), a 500 ms timeout and a retry every 500 ms.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: Duration::from_millis(500),
            retry_every: Duration::from_millis(500),
        }
    }

    /// The same with another key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> RedisConfig {
        self.prefix = prefix.into();
        self
    }
}

/// What the shared tier did so far (for `/metrics` and readiness).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisCounts {
    /// Whether Redis answers now.
    pub up: bool,
    /// Commands that failed or timed out, and connections lost or refused.
    pub errors: u64,
    /// Invalidations sent to the other instances.
    pub published: u64,
    /// Invalidations received from the other instances.
    pub received: u64,
    /// Invalidations not sent because Redis was down.
    pub unsent: u64,
    /// Rate-limit decisions Redis could not take (the caller counted in process instead).
    pub rate_limit_fallbacks: u64,
    /// Times the in-process level was dropped whole because invalidations may have been missed
    /// (every (re)connection of the subscription).
    pub resyncs: u64,
}

/// One rate-limit decision taken in Redis ([`RedisTier::gcra`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcraOutcome {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Whole requests left in the budget.
    pub remaining: u32,
    /// When refused: how long until one request is allowed.
    pub retry_after: Duration,
    /// How long until the budget is full again.
    pub reset_after: Duration,
}

/// The generic cell rate algorithm: the key holds the theoretical arrival time (TAT, in
/// microseconds of Redis's clock, so that every instance shares one clock). A budget of
/// `limit` requests per `period` allows a request when `TAT + period/limit - period <= now`.
/// Returns `{allowed, remaining, retry_after_us, reset_after_us}`.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000) + 1))
return {1, math.floor((now - allow_at) / interval + 1e-9), 0, math.ceil(new_tat - now)}
";

/// The in-process level: what `CachedStore` keeps, and what the subscription drops from.
#[derive(Clone)]
pub(crate) struct Level1 {
    pub(crate) tokens: Cache<String, ApiToken>,
    pub(crate) channels: Cache<String, Channel>,
    pub(crate) sessions: Cache<(String, String), Session>,
    pub(crate) counters: Arc<Counters>,
}

impl Level1 {
    fn drop_all(&self) {
        self.tokens.invalidate_all();
        self.channels.invalidate_all();
        self.sessions.invalidate_all();
        bump(&self.counters.invalidations);
    }

    /// Applies one message of another instance.
    fn apply(&self, message: &Message<'_>) {
        match message {
            Message::Session { channel, key, version } => {
                let version = *version;
                // Most messages are about sessions this instance does not hold: no allocation then.
                if !self.sessions.contains_key(&SessionAt(channel, key)) {
                    return;
                }
                let mut dropped = false;
                let at = ((*channel).to_owned(), (*key).to_owned());
                self.sessions.entry(at).and_compute_with(|cached| match cached {
                    Some(entry) if entry.value().version < version => {
                        dropped = true;
                        Op::Remove
                    }
                    _ => Op::Nop,
                });
                if dropped {
                    bump(&self.counters.invalidations);
                }
            }
            Message::AllSessions => {
                self.sessions.invalidate_all();
                bump(&self.counters.invalidations);
            }
            Message::Tokens => {
                self.tokens.invalidate_all();
                bump(&self.counters.invalidations);
            }
            Message::Channel(code) => {
                self.channels.invalidate(*code);
                bump(&self.counters.invalidations);
            }
        }
    }
}

/// An invalidation, as sent between instances: fields separated by the ASCII unit separator,
/// the session key last (it may hold anything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    /// A session was written at `version`: older copies are stale.
    Session { channel: &'a str, key: &'a str, version: i64 },
    /// Sessions were written in bulk (idle ones abandoned).
    AllSessions,
    /// A token was revoked (tokens are cached by hash, revoked by name: all go).
    Tokens,
    /// A channel was created or changed.
    Channel(&'a str),
}

const SEP: char = '\u{1f}';

impl Message<'_> {
    fn encode(&self, instance: &str) -> String {
        match self {
            Message::Session { channel, key, version } => {
                format!("{instance}{SEP}s{SEP}{version}{SEP}{channel}{SEP}{key}")
            }
            Message::AllSessions => format!("{instance}{SEP}S"),
            Message::Tokens => format!("{instance}{SEP}t"),
            Message::Channel(code) => format!("{instance}{SEP}c{SEP}{code}"),
        }
    }

    /// `(sender, message)`, or `None` for a message this version does not know.
    fn decode(text: &str) -> Option<(&str, Message<'_>)> {
        let (sender, rest) = text.split_once(SEP)?;
        let (kind, rest) = rest.split_once(SEP).unwrap_or((rest, ""));
        let message = match kind {
            "s" => {
                let (version, rest) = rest.split_once(SEP)?;
                let (channel, key) = rest.split_once(SEP)?;
                Message::Session { channel, key, version: version.parse().ok()? }
            }
            "S" => Message::AllSessions,
            "t" => Message::Tokens,
            "c" => Message::Channel(rest),
            _ => return None,
        };
        Some((sender, message))
    }
}

/// The connection to Redis shared by a [`CachedStore`](crate::CachedStore) and the rate limiter.
/// Cloning is cheap and shares it. Made by [`CachedStore::with_redis`](crate::CachedStore::with_redis).
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<Tier>,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.inner.prefix)
            .field("up", &self.inner.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Tier {
    client: Client,
    manager: ConnectionManager,
    prefix: String,
    channel: String,
    /// This instance's name in its messages (random).
    instance: String,
    timeout: Duration,
    retry_every: Duration,
    up: AtomicBool,
    errors: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    unsent: AtomicU64,
    fallbacks: AtomicU64,
    resyncs: AtomicU64,
    outbox: mpsc::Sender<String>,
    gcra: Script,
}

/// Invalidations waiting to be sent; past this, new ones are dropped (and counted as unsent).
const OUTBOX: usize = 8192;

fn random_instance() -> String {
    use std::hash::{BuildHasher, Hasher};
    // A randomly keyed hash of the pid and the time: unique enough to tell instances apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{:016x}", hasher.finish())
}

impl Tier {
    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        bump(&self.errors);
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(%error, "Redis {what} failed: serving without it until it answers again");
        }
    }

    /// `PING` on the command connection, within the timeout.
    async fn ping(&self) -> Result<(), String> {
        let mut manager = self.manager.clone();
        match tokio::time::timeout(self.timeout, redis::cmd("PING").query_async::<()>(&mut manager)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

impl RedisTier {
    /// Connects (lazily: an unreachable Redis is not an error here, only down) and starts the
    /// background tasks. Must run inside a tokio runtime.
    pub(crate) fn start(config: &RedisConfig, level1: Level1) -> Result<RedisTier, RedisError> {
        let client = Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(config.retry_every);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)?;
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let tier = Arc::new(Tier {
            client,
            manager,
            channel: format!("{}invalidate", config.prefix),
            prefix: config.prefix.clone(),
            instance: random_instance(),
            timeout: config.timeout,
            retry_every: config.retry_every,
            up: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            unsent: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
            outbox,
            gcra: Script::new(GCRA),
        });
        tokio::spawn(publish(Arc::downgrade(&tier), queued));
        tokio::spawn(subscribe(Arc::downgrade(&tier), level1));
        Ok(RedisTier { inner: tier })
    }

    /// Whether Redis answers now.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// What the tier did so far.
    pub fn counts(&self) -> RedisCounts {
        let t = &self.inner;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        RedisCounts {
            up: self.is_up(),
            errors: get(&t.errors),
            published: get(&t.published),
            received: get(&t.received),
            unsent: get(&t.unsent),
            rate_limit_fallbacks: get(&t.fallbacks),
            resyncs: get(&t.resyncs),
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// Queues an invalidation for the other instances (never waits).
    pub(crate) fn send(&self, message: &Message<'_>) {
        if !self.is_up() || self.inner.outbox.try_send(message.encode(&self.inner.instance)).is_err() {
            bump(&self.inner.unsent);
        }
    }

    /// Takes one request from the budget `key` of `requests` per `per`, shared by every instance
    /// using this Redis and prefix. `None` when Redis is down or fails to answer within the
    /// timeout: the caller then counts in process (counted in
    /// [`RedisCounts::rate_limit_fallbacks`]).
    pub async fn gcra(&self, key: &str, requests: u32, per: Duration) -> Option<GcraOutcome> {
        let tier = &self.inner;
        if !self.is_up() {
            bump(&tier.fallbacks);
            return None;
        }
        let period_us = u64::try_from(per.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut invocation = tier.gcra.key(format!("{}rl:{key}", tier.prefix));
        invocation.arg(period_us).arg(requests.max(1));
        let mut manager = tier.manager.clone();
        let answer = tokio::time::timeout(tier.timeout, invocation.invoke_async::<(i64, i64, i64, i64)>(&mut manager));
        match answer.await {
            Ok(Ok((allowed, remaining, retry_us, reset_us))) => {
                let micros = |n: i64| Duration::from_micros(u64::try_from(n).unwrap_or(0));
                Some(GcraOutcome {
                    allowed: allowed == 1,
                    remaining: u32::try_from(remaining).unwrap_or(0),
                    retry_after: micros(retry_us),
                    reset_after: micros(reset_us),
                })
            }
            Ok(Err(e)) => {
                tier.failed("rate limiting", &e);
                bump(&tier.fallbacks);
                None
            }
            Err(_) => {
                tier.failed("rate limiting", &"no answer within the timeout");
                bump(&tier.fallbacks);
                None
            }
        }
    }
}

/// Sends queued invalidations, in batches (one pipeline per wake-up), until the tier is gone.
async fn publish(tier: Weak<Tier>, mut queued: mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(256);
    while queued.recv_many(&mut batch, 256).await > 0 {
        let Some(tier) = tier.upgrade() else { return };
        let sent = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        if tier.up.load(Ordering::Relaxed) {
            let mut pipe = redis::pipe();
            for message in batch.drain(..) {
                pipe.cmd("PUBLISH").arg(&tier.channel).arg(message).ignore();
            }
            let mut manager = tier.manager.clone();
            match tokio::time::timeout(tier.timeout, pipe.query_async::<()>(&mut manager)).await {
                Ok(Ok(())) => {
                    tier.published.fetch_add(sent, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    tier.unsent.fetch_add(sent, Ordering::Relaxed);
                    tier.failed("publish", &e);
                }
                Err(_) => {
                    tier.unsent.fetch_add(sent, Ordering::Relaxed);
                    tier.failed("publish", &"no answer within the timeout");
                }
            }
        } else {
            batch.clear();
            tier.unsent.fetch_add(sent, Ordering::Relaxed);
        }
    }
}

/// Keeps a subscription to the other instances' invalidations, reconnecting when it is lost,
/// and decides when the tier is up: subscribed, and the command connection answers.
async fn subscribe(weak: Weak<Tier>, level1: Level1) {
    loop {
        let Some(tier) = weak.upgrade() else { return };
        let retry_every = tier.retry_every;
        let connect = async {
            let mut pubsub = tier.client.get_async_pubsub().await.map_err(|e| e.to_string())?;
            pubsub.subscribe(&tier.channel).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(pubsub)
        };
        let subscribed = match tokio::time::timeout(tier.timeout, connect).await {
            Ok(Ok(pubsub)) => tier.ping().await.map(|()| pubsub),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("no answer within the timeout".to_owned()),
        };
        match subscribed {
            Err(error) => tier.failed("connection", &error),
            Ok(pubsub) => {
                // Whatever was published while this instance was not listening is lost: start afresh.
                level1.drop_all();
                bump(&tier.resyncs);
                if !tier.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(prefix = %tier.prefix, "Redis answers: invalidations and rate limits shared");
                }
                let instance = tier.instance.clone();
                drop(tier);
                let mut messages = pubsub.into_on_message();
                let mut probe = tokio::time::interval(retry_every);
                probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            let Some(tier) = weak.upgrade() else { return };
                            let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else { continue };
                            if let Some((sender, message)) = Message::decode(text) {
                                if sender != instance {
                                    bump(&tier.received);
                                    level1.apply(&message);
                                }
                            }
                        }
                        _ = probe.tick() => {
                            // A command that failed marked the tier down; it comes back when
                            // the command connection answers again.
                            let Some(tier) = weak.upgrade() else { return };
                            if !tier.up.load(Ordering::Relaxed) && tier.ping().await.is_ok() {
                                tier.up.store(true, Ordering::Relaxed);
                                tracing::info!("Redis answers again");
                            }
                        }
                    }
                }
                let Some(tier) = weak.upgrade() else { return };
                tier.failed("subscription", &"connection lost");
            }
        }
        tokio::time::sleep(retry_every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Message;

    #[test]
    fn messages_round_trip() {
        for message in [
            Message::Session { channel: "pos", key: "K\u{1f}1 x", version: 7 },
            Message::AllSessions,
            Message::Tokens,
            Message::Channel("web"),
        ] {
            let text = message.encode("abc");
            assert_eq!(Message::decode(&text), Some(("abc", message)));
        }
        assert_eq!(Message::decode("abc\u{1f}z"), None);
        assert_eq!(Message::decode("abc"), None);
    }
}
