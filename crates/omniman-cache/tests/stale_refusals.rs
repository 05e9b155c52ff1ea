//! A refusal is never decided on a stale entry: when the cached session would refuse a write
//! (no lines to commit, an unknown line, a failed `If-Match`), the store is read before the
//! refusal is answered, and the write goes through when the store's session allows it. Another
//! instance is a second service on the same inner store.

use futures_executor::block_on;
use omniman_cache::{CacheConfig, CachedStore};
use omniman_core::channel::ChannelSpec;
use omniman_core::memory::InMemoryStore;
use omniman_core::ops::Op;
use omniman_core::ports::ChannelStore;
use omniman_core::prelude::*;
use omniman_core::session::Precondition;
use omniman_core::testing;
use serde_json::json;

/// Two instances, each with its own cache, on one store; a session opened through `a`, so that
/// `a` caches it empty, then given a line through `b`.
fn a_session_changed_elsewhere()
-> (Omniman<CachedStore<InMemoryStore>>, Omniman<CachedStore<InMemoryStore>>, SessionRef) {
    let inner = InMemoryStore::new();
    block_on(inner.upsert_channel(&ChannelSpec::new("pos"), chrono::Utc::now())).unwrap();
    let a = Omniman::new(CachedStore::new(inner.clone(), CacheConfig::default()), Extensions::default());
    let b = Omniman::new(CachedStore::new(inner, CacheConfig::default()), Extensions::default());
    let till = Caller::external("till");
    let opened = block_on(a.open_session(OpenSession::on(testing::code("pos")), &till)).unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    let add = Op::parse_batch(&json!([{"op": "add_line", "sku": "TEA", "qty": 1, "unit_price_q": 300}])).unwrap();
    block_on(b.modify(&at, &add, None, &till)).unwrap();
    (a, b, at)
}

#[test]
fn a_session_filled_elsewhere_commits_here() {
    let (a, _, at) = a_session_changed_elsewhere();
    let key = IdempotencyKey::parse("k-1").unwrap();
    let outcome = block_on(a.commit(&at, Some(&key), None, &Caller::external("till")));
    assert!(matches!(outcome, Ok(CommitOutcome::Committed(_))), "{outcome:?}");
}

#[test]
fn a_line_added_elsewhere_can_be_changed_here() {
    let (a, b, at) = a_session_changed_elsewhere();
    let line = block_on(b.get_session(Some(&at.channel), &at.key)).unwrap().items[0].line_id.clone();
    let set = Op::parse_batch(&json!([{"op": "set_qty", "line_id": line, "qty": 3}])).unwrap();
    let session = block_on(a.modify(&at, &set, None, &Caller::external("till"))).unwrap();
    assert_eq!(session.items[0].qty.to_string(), "3.000");
}

#[test]
fn if_match_is_judged_against_the_stored_rev() {
    let (a, _, at) = a_session_changed_elsewhere();
    let add = Op::parse_batch(&json!([{"op": "add_line", "sku": "BUN", "qty": 1, "unit_price_q": 200}])).unwrap();
    // The client saw rev 1 through the other instance; this one cached rev 0.
    let session = block_on(a.modify(&at, &add, Some(&Precondition::Rev(1)), &Caller::external("till"))).unwrap();
    assert_eq!(session.rev, 2);
    let stale = block_on(a.modify(&at, &add, Some(&Precondition::Rev(1)), &Caller::external("till")));
    assert!(matches!(stale, Err(ModifyError::PreconditionFailed { .. })), "{stale:?}");
}
