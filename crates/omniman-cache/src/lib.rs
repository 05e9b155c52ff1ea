//! # omniman-cache
//!
//! [`CachedStore`] wraps any store of the core's ports and keeps in process memory what most
//! requests would otherwise read from the database every time:
//!
//! - **API tokens**, by hash, for [`CacheConfig::token_ttl`] (1 s by default): a token revoked
//!   anywhere, by another instance or by the CLI, stops working everywhere within that time;
//!   a revocation through this store drops every cached token at once.
//! - **Channels**, by code, for [`CacheConfig::channel_ttl`] (1 s): a channel changed elsewhere is
//!   seen within that time; a change through this store is seen at once.
//! - **Sessions**, by channel and key, only as the starting point of a write
//!   ([`SessionStore::load_session_to_write`]). Every write of a session is conditional on the
//!   `version` it started from and bumps it, so a stale entry (another instance or process wrote
//!   since) makes the write's compare-and-set fail: the entry is dropped and the service reads
//!   again. A stale entry costs a retry, never a wrong write. What a client reads
//!   ([`SessionStore::load_session`]) always comes from the store, and refreshes the entry.
//!
//! The cache is never the source of truth: every write goes to the store first and reaches the
//! cache only once the store has accepted it. docs/performance.md measures what it saves.
//!
//! With several instances, [`CachedStore::with_redis`] adds the shared tier ([`shared`]): each
//! write through one instance tells the others, over Redis pub/sub, to drop what they hold of
//! it, and rate limits can be counted in Redis ([`RedisTier::gcra`]). Redis is optional and
//! never needed for a correct answer: when it is down the instance serves from the database
//! (docs/deployment.md).
//!
//! ```
//! use omniman_cache::{CacheConfig, CachedStore};
//! use omniman_core::memory::InMemoryStore;
//! use omniman_core::ports::{ChannelStore, SessionStore};
//! use omniman_core::prelude::*;
//!
//! # futures_executor::block_on(async {
//! let store = CachedStore::new(InMemoryStore::new(), CacheConfig::default());
//! store.upsert_channel(&ChannelSpec::new("pos"), chrono::Utc::now()).await?;
//! let hub = Omniman::new(store.clone(), Extensions::default());
//! let till = Caller::external("till-1");
//! let opened = hub.open_session(OpenSession::on(ChannelCode::parse("pos")?), &till).await?;
//! let at = SessionRef::parse("pos", &opened.session.session_key)?;
//! let ops = Op::parse_batch(&serde_json::json!([{"op": "add_line", "sku": "TEA", "qty": 1, "unit_price_q": 300}]))?;
//! hub.modify(&at, &ops, None, &till).await?;
//! // The modify started from the session the open had cached.
//! assert_eq!(store.counts().session_hits, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod shared;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::Equivalent;
use moka::ops::compute::Op;
use moka::sync::Cache;
use omniman_core::channel::{Channel, ChannelSpec};
use omniman_core::commit::CommitPlan;
use omniman_core::directive::{Directive, DirectiveStatus, DirectiveUpdate, NewDirective};
use omniman_core::idempotency::IdempotencyRecord;
use omniman_core::order::{NewEvent, Order, OrderEvent, TransitionPlan};
use omniman_core::page::{Page, PageRequest};
use omniman_core::ports::{
    ApiToken, ChannelStore, CommitWrite, DirectiveFilter, DirectiveQueue, IdempotencyStore, InsertSession, OrderFilter,
    OrderStore, OrderSummary, SessionFilter, SessionStore, StoreResult, TokenStore, WebhookStore,
};
use omniman_core::session::Session;
use omniman_core::webhook::{Delivery, NewDelivery, Webhook};

pub use crate::shared::{GcraOutcome, RedisConfig, RedisCounts, RedisTier};
use crate::shared::{Level1, Message};

/// How long entries live and how many sessions are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a token read from the store is trusted: the longest a token revoked elsewhere
    /// keeps working here.
    pub token_ttl: Duration,
    /// How long a channel read from the store is trusted: the longest a change made elsewhere
    /// takes to be seen here.
    pub channel_ttl: Duration,
    /// How long an untouched session stays cached.
    pub session_ttl: Duration,
    /// At most this many sessions are cached (the least recently used go first).
    pub max_sessions: u64,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            token_ttl: Duration::from_secs(1),
            channel_ttl: Duration::from_secs(1),
            session_ttl: Duration::from_secs(15 * 60),
            max_sessions: 100_000,
        }
    }
}

/// Hits, misses and invalidations so far, by kind of entry (for `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Tokens answered from memory.
    pub token_hits: u64,
    /// Tokens read from the store.
    pub token_misses: u64,
    /// Channels answered from memory.
    pub channel_hits: u64,
    /// Channels read from the store.
    pub channel_misses: u64,
    /// Sessions a write started from without reading the store.
    pub session_hits: u64,
    /// Sessions a write had to read from the store.
    pub session_misses: u64,
    /// Entries dropped because the store said they were stale, or because a write through this
    /// store changed what they hold.
    pub invalidations: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    token_hits: AtomicU64,
    token_misses: AtomicU64,
    channel_hits: AtomicU64,
    channel_misses: AtomicU64,
    session_hits: AtomicU64,
    session_misses: AtomicU64,
    pub(crate) invalidations: AtomicU64,
}

/// A session's key in the cache, borrowed: looking a session up allocates nothing. Hashes as
/// the `(String, String)` it stands for (a tuple hashes its fields in order).
#[derive(Hash)]
pub(crate) struct SessionAt<'a>(pub(crate) &'a str, pub(crate) &'a str);

impl Equivalent<(String, String)> for SessionAt<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// `key`'s entry while it is fresh, else what `read` finds in the store (kept for next time;
/// an absence is not kept), counting the hit or the miss. `read` runs only on a miss.
async fn read_through<V: Clone + Send + Sync + 'static>(
    cache: &Cache<String, V>,
    key: &str,
    (hits, misses): (&AtomicU64, &AtomicU64),
    read: impl Future<Output = StoreResult<Option<V>>>,
) -> StoreResult<Option<V>> {
    if let Some(value) = cache.get(key) {
        bump(hits);
        return Ok(Some(value));
    }
    bump(misses);
    let found = read.await?;
    if let Some(value) = &found {
        cache.insert(key.to_owned(), value.clone());
    }
    Ok(found)
}

/// A store of the core's ports with tokens, channels and sessions kept in memory. See the
/// [crate documentation](crate). Cloning is cheap and shares the cache.
#[derive(Clone)]
pub struct CachedStore<S> {
    inner: S,
    /// The in-process level, shared with the tier's subscription, which applies the other
    /// instances' invalidations to it.
    memory: Level1,
    tier: Option<RedisTier>,
}

impl<S> std::fmt::Debug for CachedStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("tokens", &self.memory.tokens.entry_count())
            .field("channels", &self.memory.channels.entry_count())
            .field("sessions", &self.memory.sessions.entry_count())
            .field("redis", &self.tier)
            .finish_non_exhaustive()
    }
}

impl<S> CachedStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, config: CacheConfig) -> CachedStore<S> {
        let memory = Level1 {
            tokens: Cache::builder().time_to_live(config.token_ttl).max_capacity(10_000).build(),
            channels: Cache::builder().time_to_live(config.channel_ttl).max_capacity(10_000).build(),
            sessions: Cache::builder().time_to_idle(config.session_ttl).max_capacity(config.max_sessions).build(),
            counters: Arc::default(),
        };
        CachedStore { inner, memory, tier: None }
    }

    /// Adds the shared tier: invalidations sent to and received from the other instances using
    /// the same Redis and key prefix (see [`shared`]). Connects in the background: an
    /// unreachable Redis is not an error (the tier is down until it answers); a malformed URL is.
    /// Must run inside a tokio runtime.
    pub fn with_redis(mut self, config: &RedisConfig) -> Result<CachedStore<S>, redis::RedisError> {
        self.tier = Some(RedisTier::start(config, self.memory.clone())?);
        Ok(self)
    }

    /// The shared tier, when [`with_redis`](Self::with_redis) added one.
    pub fn redis(&self) -> Option<&RedisTier> {
        self.tier.as_ref()
    }

    /// Tells the other instances (when there is a shared tier).
    fn tell_others(&self, message: &Message<'_>) {
        if let Some(tier) = &self.tier {
            tier.send(message);
        }
    }

    /// The wrapped store, for what the ports do not cover (pool status, stock levels…).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Hits, misses and invalidations so far.
    pub fn counts(&self) -> CacheCounts {
        let c = &self.memory.counters;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        CacheCounts {
            token_hits: get(&c.token_hits),
            token_misses: get(&c.token_misses),
            channel_hits: get(&c.channel_hits),
            channel_misses: get(&c.channel_misses),
            session_hits: get(&c.session_hits),
            session_misses: get(&c.session_misses),
            invalidations: get(&c.invalidations),
        }
    }

    fn session_key(session: &Session) -> (String, String) {
        (session.channel_code.clone(), session.session_key.clone())
    }

    /// Caches `session` unless a newer version of it is cached already (two writers that both
    /// succeeded, one after the other, may report back in either order).
    fn keep_session(&self, session: &Session) {
        self.memory.sessions.entry(Self::session_key(session)).and_compute_with(|cached| match cached {
            Some(entry) if entry.value().version >= session.version => Op::Nop,
            _ => Op::Put(session.clone()),
        });
    }

    fn forget_session(&self, channel_code: &str, session_key: &str) {
        self.memory.sessions.invalidate(&SessionAt(channel_code, session_key));
        bump(&self.memory.counters.invalidations);
    }
}

impl<S: ChannelStore> CachedStore<S> {
    /// The channel, from memory while it is fresh.
    async fn cached_channel(&self, code: &str) -> StoreResult<Option<Channel>> {
        let counts = (&self.memory.counters.channel_hits, &self.memory.counters.channel_misses);
        read_through(&self.memory.channels, code, counts, self.inner.channel_by_code(code)).await
    }
}

impl<S: ChannelStore> ChannelStore for CachedStore<S> {
    async fn channel_by_code(&self, code: &str) -> StoreResult<Option<Channel>> {
        self.cached_channel(code).await
    }

    async fn list_channels(&self) -> StoreResult<Vec<Channel>> {
        self.inner.list_channels().await
    }

    async fn upsert_channel(&self, spec: &ChannelSpec, now: DateTime<Utc>) -> StoreResult<Channel> {
        let channel = self.inner.upsert_channel(spec, now).await?;
        self.memory.channels.insert(channel.code.clone(), channel.clone());
        bump(&self.memory.counters.invalidations);
        self.tell_others(&Message::Channel(&channel.code));
        Ok(channel)
    }
}

impl<S: SessionStore + ChannelStore> SessionStore for CachedStore<S> {
    async fn load_session(&self, channel_code: &str, session_key: &str) -> StoreResult<Option<(Channel, Session)>> {
        let found = self.inner.load_session(channel_code, session_key).await?;
        match &found {
            Some((channel, session)) => {
                // Warms the channel for the next write; a fresh entry is left as it is.
                if !self.memory.channels.contains_key(channel.code.as_str()) {
                    self.memory.channels.insert(channel.code.clone(), channel.clone());
                }
                self.keep_session(session);
            }
            None => self.memory.sessions.invalidate(&SessionAt(channel_code, session_key)),
        }
        Ok(found)
    }

    async fn load_session_to_write(
        &self,
        channel_code: &str,
        session_key: &str,
    ) -> StoreResult<Option<(Channel, Session)>> {
        if let Some(session) = self.memory.sessions.get(&SessionAt(channel_code, session_key)) {
            if let Some(channel) = self.cached_channel(channel_code).await? {
                bump(&self.memory.counters.session_hits);
                return Ok(Some((channel, session)));
            }
        }
        bump(&self.memory.counters.session_misses);
        self.load_session(channel_code, session_key).await
    }

    async fn sessions_by_key(&self, session_key: &str) -> StoreResult<Vec<Session>> {
        self.inner.sessions_by_key(session_key).await
    }

    async fn open_session_by_handle(
        &self,
        channel_id: i64,
        handle_type: &str,
        handle_ref: &str,
    ) -> StoreResult<Option<Session>> {
        self.inner.open_session_by_handle(channel_id, handle_type, handle_ref).await
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<InsertSession> {
        let inserted = self.inner.insert_session(session).await?;
        if let InsertSession::Inserted(stored) = &inserted {
            self.keep_session(stored);
        }
        Ok(inserted)
    }

    async fn update_session(
        &self,
        session: &Session,
        expected_version: i64,
        directives: &[NewDirective],
    ) -> StoreResult<bool> {
        let written = self.inner.update_session(session, expected_version, directives).await;
        match written {
            Ok(true) => {
                self.keep_session(session);
                self.tell_others(&Message::Session {
                    channel: &session.channel_code,
                    key: &session.session_key,
                    version: session.version,
                });
            }
            // Stale (or unknown after an error): the next write reads the store.
            _ => self.forget_session(&session.channel_code, &session.session_key),
        }
        written
    }

    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> StoreResult<Page<Session>> {
        self.inner.list_sessions(filter, page).await
    }

    async fn abandon_idle_sessions(&self, idle_since: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<u64> {
        let abandoned = self.inner.abandon_idle_sessions(idle_since, now).await?;
        if abandoned > 0 {
            // Which ones is not reported; their cached versions are stale either way.
            self.memory.sessions.invalidate_all();
            bump(&self.memory.counters.invalidations);
            self.tell_others(&Message::AllSessions);
        }
        Ok(abandoned)
    }
}

impl<S: OrderStore> OrderStore for CachedStore<S> {
    async fn commit(&self, plan: &CommitPlan) -> StoreResult<CommitWrite> {
        let written = self.inner.commit(plan).await;
        match &written {
            Ok(CommitWrite::Committed(_)) => {
                let session = &plan.session;
                self.keep_session(session);
                self.tell_others(&Message::Session {
                    channel: &session.channel_code,
                    key: &session.session_key,
                    version: session.version,
                });
            }
            // The session, the key and the ref are as they were.
            Ok(CommitWrite::KeyTaken | CommitWrite::RefTaken) => {}
            Ok(CommitWrite::SessionChanged) | Err(_) => {
                self.forget_session(&plan.session.channel_code, &plan.session.session_key);
            }
        }
        written
    }

    async fn order_by_ref(&self, order_ref: &str) -> StoreResult<Option<(Channel, Order)>> {
        self.inner.order_by_ref(order_ref).await
    }

    async fn order_for_session(&self, channel_id: i64, session_key: &str) -> StoreResult<Option<Order>> {
        self.inner.order_for_session(channel_id, session_key).await
    }

    async fn transition(&self, plan: &TransitionPlan) -> StoreResult<bool> {
        self.inner.transition(plan).await
    }

    async fn append_event(&self, order_id: i64, event: &NewEvent) -> StoreResult<OrderEvent> {
        self.inner.append_event(order_id, event).await
    }

    async fn list_events(&self, order_id: i64) -> StoreResult<Vec<OrderEvent>> {
        self.inner.list_events(order_id).await
    }

    async fn list_orders(&self, filter: &OrderFilter, page: &PageRequest) -> StoreResult<Page<OrderSummary>> {
        self.inner.list_orders(filter, page).await
    }

    async fn orders_after(&self, since: i64, limit: usize) -> StoreResult<Vec<OrderSummary>> {
        self.inner.orders_after(since, limit).await
    }

    async fn max_order_id(&self) -> StoreResult<i64> {
        self.inner.max_order_id().await
    }
}

impl<S: DirectiveQueue> DirectiveQueue for CachedStore<S> {
    async fn enqueue(&self, directives: &[NewDirective]) -> StoreResult<Vec<i64>> {
        self.inner.enqueue(directives).await
    }

    async fn claim(&self, topics: Option<&[String]>, limit: usize, now: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
        self.inner.claim(topics, limit, now).await
    }

    async fn finish(&self, updates: &[DirectiveUpdate], now: DateTime<Utc>) -> StoreResult<u64> {
        self.inner.finish(updates, now).await
    }

    async fn stuck_directives(&self, started_before: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
        self.inner.stuck_directives(started_before).await
    }

    async fn requeue(&self, update: &DirectiveUpdate, now: DateTime<Utc>) -> StoreResult<bool> {
        self.inner.requeue(update, now).await
    }

    async fn directive(&self, id: i64) -> StoreResult<Option<Directive>> {
        self.inner.directive(id).await
    }

    async fn list_directives(&self, filter: &DirectiveFilter, page: &PageRequest) -> StoreResult<Page<Directive>> {
        self.inner.list_directives(filter, page).await
    }

    async fn directive_counts(&self) -> StoreResult<Vec<(DirectiveStatus, i64)>> {
        self.inner.directive_counts().await
    }
}

impl<S: IdempotencyStore> IdempotencyStore for CachedStore<S> {
    async fn idempotency_record(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        self.inner.idempotency_record(scope, key).await
    }

    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> StoreResult<bool> {
        self.inner.save_idempotency_record(record).await
    }

    async fn delete_expired_idempotency(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.inner.delete_expired_idempotency(now).await
    }
}

impl<S: TokenStore> TokenStore for CachedStore<S> {
    async fn create_token(&self, token: &ApiToken) -> StoreResult<bool> {
        self.inner.create_token(token).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let counts = (&self.memory.counters.token_hits, &self.memory.counters.token_misses);
        read_through(&self.memory.tokens, token_hash, counts, self.inner.token_by_hash(token_hash)).await
    }

    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        self.inner.list_tokens().await
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        let revoked = self.inner.revoke_token(name, now).await?;
        if revoked {
            // Cached by hash, not by name: drop them all.
            self.memory.tokens.invalidate_all();
            bump(&self.memory.counters.invalidations);
            self.tell_others(&Message::Tokens);
        }
        Ok(revoked)
    }
}

/// Subscriptions are read by the dispatcher and the admin API only, never on a hot path: every
/// call goes to the store.
impl<S: WebhookStore> WebhookStore for CachedStore<S> {
    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<Webhook> {
        self.inner.create_webhook(webhook).await
    }

    async fn webhook(&self, id: i64) -> StoreResult<Option<Webhook>> {
        self.inner.webhook(id).await
    }

    async fn list_webhooks(&self, page: &PageRequest) -> StoreResult<Page<Webhook>> {
        self.inner.list_webhooks(page).await
    }

    async fn active_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.inner.active_webhooks().await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<bool> {
        self.inner.update_webhook(webhook).await
    }

    async fn delete_webhook(&self, id: i64) -> StoreResult<bool> {
        self.inner.delete_webhook(id).await
    }

    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> StoreResult<Vec<i64>> {
        self.inner.enqueue_deliveries(deliveries).await
    }

    async fn list_deliveries(&self, webhook_id: i64, page: &PageRequest) -> StoreResult<Page<Delivery>> {
        self.inner.list_deliveries(webhook_id, page).await
    }

    async fn dispatch_position(&self) -> StoreResult<i64> {
        self.inner.dispatch_position().await
    }

    async fn advance_dispatch(&self, from: i64, to: i64, deliveries: &[NewDelivery]) -> StoreResult<bool> {
        self.inner.advance_dispatch(from, to, deliveries).await
    }
}
