//! What the cache promises: writes start from memory, a stale entry costs a retry and never a
//! wrong write, what a client reads is current, and tokens and channels changed elsewhere are
//! seen within their time to live. "Elsewhere" is a second service on the same inner store, as
//! another instance or the CLI would be.

use std::time::Duration;

use futures_executor::block_on;
use omniman_cache::{CacheConfig, CachedStore};
use omniman_core::channel::ChannelSpec;
use omniman_core::memory::InMemoryStore;
use omniman_core::ops::Op;
use omniman_core::ports::{ApiToken, ChannelStore, Role, TokenStore};
use omniman_core::prelude::*;
use omniman_core::testing;
use serde_json::json;

struct Two {
    inner: InMemoryStore,
    cached: CachedStore<InMemoryStore>,
    /// The service in front of the cache ("this instance").
    here: Omniman<CachedStore<InMemoryStore>>,
    /// A service on the store itself ("another instance").
    elsewhere: Omniman<InMemoryStore>,
}

fn two(config: CacheConfig) -> Two {
    let inner = InMemoryStore::new();
    block_on(inner.upsert_channel(&ChannelSpec::new("pos"), chrono::Utc::now())).unwrap();
    let cached = CachedStore::new(inner.clone(), config);
    let here = Omniman::new(cached.clone(), Extensions::default());
    let elsewhere = Omniman::new(inner.clone(), Extensions::default());
    Two { inner, cached, here, elsewhere }
}

fn add(sku: &str) -> Vec<Op> {
    Op::parse_batch(&json!([{"op": "add_line", "sku": sku, "qty": 1, "unit_price_q": 100}])).unwrap()
}

fn till() -> Caller {
    Caller::external("till")
}

#[test]
fn a_write_starts_from_the_cached_session_and_keeps_the_one_it_wrote() {
    let t = two(CacheConfig::default());
    let opened = block_on(t.here.open_session(OpenSession::on(testing::code("pos")), &till())).unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    for sku in ["A", "B", "C"] {
        block_on(t.here.modify(&at, &add(sku), None, &till())).unwrap();
    }
    let counts = t.cached.counts();
    assert_eq!((counts.session_hits, counts.session_misses), (3, 0), "{counts:?}");
    let stored = block_on(t.elsewhere.get_session(Some(&at.channel), &at.key)).unwrap();
    assert_eq!((stored.rev, stored.items.len()), (3, 3));
}

#[test]
fn a_stale_session_costs_a_retry_never_a_lost_write() {
    let t = two(CacheConfig::default());
    let opened = block_on(t.here.open_session(OpenSession::on(testing::code("pos")), &till())).unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    block_on(t.here.modify(&at, &add("A"), None, &till())).unwrap();
    // Another instance writes; this one's entry is now a version behind.
    block_on(t.elsewhere.modify(&at, &add("B"), None, &till())).unwrap();
    let after = block_on(t.here.modify(&at, &add("C"), None, &till())).unwrap();
    let skus: Vec<&str> = after.items.iter().map(|i| i.sku.as_str()).collect();
    assert_eq!(skus, ["A", "B", "C"], "B survives");
    assert_eq!(after.rev, 3);
    assert!(t.cached.counts().invalidations >= 1);
    // What a client reads is current even when the cache is behind.
    block_on(t.elsewhere.modify(&at, &add("D"), None, &till())).unwrap();
    let read = block_on(t.here.get_session(Some(&at.channel), &at.key)).unwrap();
    assert_eq!(read.rev, 4);
}

#[test]
fn a_commit_from_a_stale_session_commits_what_is_stored() {
    let t = two(CacheConfig::default());
    let opened = block_on(t.here.open_session(OpenSession::on(testing::code("pos")), &till())).unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    block_on(t.here.modify(&at, &add("A"), None, &till())).unwrap();
    block_on(t.elsewhere.modify(&at, &add("B"), None, &till())).unwrap();
    let outcome = block_on(t.here.commit(&at, Some(&testing::idem("k1")), None, &till())).unwrap();
    assert_eq!(outcome.receipt().unwrap().items_count, 2, "the order has both lines");
    // The same key again, through either instance, replays the first answer.
    let again = block_on(t.here.commit(&at, Some(&testing::idem("k1")), None, &till())).unwrap();
    let there = block_on(t.elsewhere.commit(&at, Some(&testing::idem("k1")), None, &till())).unwrap();
    assert_eq!((again.to_json(), there.to_json()), (outcome.to_json(), outcome.to_json()));
    assert_eq!(t.inner.order_count(), 1);
}

#[test]
fn a_session_abandoned_elsewhere_is_not_modified_here() {
    let t = two(CacheConfig::default());
    let opened = block_on(t.here.open_session(OpenSession::on(testing::code("pos")), &till())).unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    block_on(t.elsewhere.abandon(&at, None, &till())).unwrap();
    let refused = block_on(t.here.modify(&at, &add("A"), None, &till())).unwrap_err();
    assert_eq!(refused.code().as_str(), "already_abandoned");
}

fn token(hash: &str) -> ApiToken {
    ApiToken {
        id: 0,
        name: format!("t-{hash}"),
        token_hash: hash.into(),
        role: Role::Client,
        channels: None,
        created_at: chrono::Utc::now(),
        revoked_at: None,
        rate_limits: None,
    }
}

#[test]
fn a_token_revoked_elsewhere_stops_working_within_its_time_to_live() {
    let ttl = Duration::from_millis(200);
    let t = two(CacheConfig { token_ttl: ttl, ..CacheConfig::default() });
    block_on(t.inner.create_token(&token("h1"))).unwrap();
    assert!(block_on(t.cached.token_by_hash("h1")).unwrap().is_some());
    block_on(t.inner.revoke_token("t-h1", chrono::Utc::now())).unwrap();
    assert!(block_on(t.cached.token_by_hash("h1")).unwrap().is_some(), "trusted for its time to live");
    std::thread::sleep(ttl + Duration::from_millis(50));
    assert!(block_on(t.cached.token_by_hash("h1")).unwrap().is_none(), "then refused");
    let counts = t.cached.counts();
    assert_eq!((counts.token_hits, counts.token_misses), (1, 2));
}

#[test]
fn a_token_revoked_here_stops_working_at_once() {
    let t = two(CacheConfig { token_ttl: Duration::from_secs(3600), ..CacheConfig::default() });
    block_on(t.inner.create_token(&token("h2"))).unwrap();
    assert!(block_on(t.cached.token_by_hash("h2")).unwrap().is_some());
    assert!(block_on(t.cached.revoke_token("t-h2", chrono::Utc::now())).unwrap());
    assert!(block_on(t.cached.token_by_hash("h2")).unwrap().is_none());
}

#[test]
fn a_channel_changed_here_is_seen_at_once_and_elsewhere_within_its_time_to_live() {
    let ttl = Duration::from_millis(200);
    let t = two(CacheConfig { channel_ttl: ttl, ..CacheConfig::default() });
    let locked = |name: &str| {
        serde_json::from_value::<ChannelSpec>(json!({"code": "pos", "name": name, "edit_policy": "locked"})).unwrap()
    };
    assert_eq!(block_on(t.cached.channel_by_code("pos")).unwrap().unwrap().name, "");
    block_on(t.cached.upsert_channel(&locked("Here"), chrono::Utc::now())).unwrap();
    assert_eq!(block_on(t.cached.channel_by_code("pos")).unwrap().unwrap().name, "Here");
    block_on(t.inner.upsert_channel(&locked("Elsewhere"), chrono::Utc::now())).unwrap();
    assert_eq!(block_on(t.cached.channel_by_code("pos")).unwrap().unwrap().name, "Here", "within its time to live");
    std::thread::sleep(ttl + Duration::from_millis(50));
    assert_eq!(block_on(t.cached.channel_by_code("pos")).unwrap().unwrap().name, "Elsewhere");
}
