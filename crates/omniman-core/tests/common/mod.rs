//! Shared fixtures of the acceptance tests: a service over the in-memory store with a manual clock
//! and seeded ids, channel builders, and small JSON helpers.

#![allow(dead_code)] // not `expect`: each test binary uses a different subset, some use them all

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_executor::block_on;
use serde_json::{Map, Value};

use omniman_core::memory::InMemoryStore;
use omniman_core::ports::{ChannelStore, DirectiveQueue};
use omniman_core::prelude::*;
use omniman_core::testing;

/// The service under test.
pub(crate) type Hub = Omniman<InMemoryStore>;

/// The fixed start instant of every test: 2026-11-21T12:00:00Z.
pub(crate) fn t0() -> DateTime<Utc> {
    testing::epoch()
}

/// An API caller (bound by the external `set_data` allow-list).
pub(crate) fn api() -> Caller {
    Caller::external("till-1")
}

/// An in-process caller.
pub(crate) fn internal() -> Caller {
    Caller::internal("tester")
}

pub(crate) use omniman_core::testing::{at, idem};

/// Any parsed input type from a literal (`parsed::<SessionKey>("S1")`); panics when malformed.
pub(crate) fn parsed<T>(raw: &str) -> T
where
    T: for<'a> TryFrom<&'a str, Error = omniman_core::input::InvalidInput>,
{
    T::try_from(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
}

/// A commit's answer as the HTTP layer sends it: status and body.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Answer {
    pub(crate) code: u16,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn of(outcome: &CommitOutcome) -> Answer {
        Answer { code: outcome.http_status(), body: outcome.to_json() }
    }

    /// The order ref in the body.
    pub(crate) fn order_ref(&self) -> Option<&str> {
        self.body.get("order_ref").and_then(Value::as_str)
    }
}

/// A batch of ops from JSON; panics on shape errors.
pub(crate) fn ops(batch: &Value) -> Vec<Op> {
    Op::parse_batch(batch).expect("well-formed ops")
}

/// A JSON object literal as a map.
pub(crate) fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// An internally priced, open, active channel with an empty config.
pub(crate) fn chan(id: i64, code: &str) -> Channel {
    Channel { id, ..testing::channel(code) }
}

/// `chan` with a configuration object.
pub(crate) fn chan_with(id: i64, code: &str, config: Value) -> Channel {
    Channel { id, ..testing::channel_with(code, config) }
}

/// The service, its store and its clock.
pub(crate) struct World {
    pub(crate) hub: Hub,
    pub(crate) clock: Arc<ManualClock>,
}

impl World {
    /// A world holding `channels`, with no extensions.
    pub(crate) fn new(channels: Vec<Channel>) -> World {
        World::with_ext(channels, Extensions::default())
    }

    /// A world holding `channels` and `ext`.
    pub(crate) fn with_ext(channels: Vec<Channel>, ext: Extensions) -> World {
        World::with_settings(channels, ext, CommitSettings::default())
    }

    /// A world with explicit commit settings.
    pub(crate) fn with_settings(channels: Vec<Channel>, ext: Extensions, settings: CommitSettings) -> World {
        let store = InMemoryStore::new();
        for channel in channels {
            store.put_channel(channel);
        }
        let clock = Arc::new(ManualClock::at(t0()));
        let hub = Omniman::new(store, ext)
            .with_clock(clock.clone())
            .with_ids(Box::new(RandomIds::seeded(1)))
            .with_settings(settings);
        World { hub, clock }
    }

    /// The store.
    pub(crate) fn store(&self) -> &InMemoryStore {
        self.hub.store()
    }

    /// Opens a session with a generated key.
    pub(crate) fn open(&self, channel_code: &str) -> Session {
        let request = OpenSession::on(ChannelCode::parse(channel_code).expect("a channel code"));
        block_on(self.hub.open_session(request, &api())).expect("open session").session
    }

    /// Opens a session holding a handle.
    pub(crate) fn open_handle(&self, channel_code: &str, handle_type: &str, handle_ref: &str) -> Opened {
        let request = OpenSession {
            handle_type: Some(HandleType::parse(handle_type).expect("a handle type")),
            handle_ref: Some(HandleRef::parse(handle_ref).expect("a handle ref")),
            ..OpenSession::on(ChannelCode::parse(channel_code).expect("a channel code"))
        };
        block_on(self.hub.open_session(request, &api())).expect("open session")
    }

    /// Applies a batch as an internal caller.
    pub(crate) fn modify(&self, channel_code: &str, key: &str, batch: &Value) -> Result<Session, ModifyError> {
        block_on(self.hub.modify(&at(channel_code, key), &ops(batch), None, &internal()))
    }

    /// Applies a batch that must succeed.
    pub(crate) fn modify_ok(&self, channel_code: &str, key: &str, batch: &Value) -> Session {
        self.modify(channel_code, key, batch).expect("modify succeeds")
    }

    /// Opens a session and fills it with `batch`.
    pub(crate) fn open_with(&self, channel_code: &str, batch: &Value) -> Session {
        let session = self.open(channel_code);
        self.modify_ok(channel_code, &session.session_key, batch)
    }

    /// The stored session.
    pub(crate) fn session(&self, channel_code: &str, key: &str) -> Session {
        let at = at(channel_code, key);
        block_on(self.hub.get_session(Some(&at.channel), &at.key)).expect("session exists")
    }

    /// Commits with a key.
    pub(crate) fn commit(&self, channel_code: &str, key: &str, idem_key: &str) -> Result<Answer, CommitError> {
        block_on(self.hub.commit(&at(channel_code, key), Some(&idem(idem_key)), None, &api())).map(|o| Answer::of(&o))
    }

    /// Commits and returns the order.
    pub(crate) fn commit_order(&self, channel_code: &str, key: &str, idem: &str) -> Order {
        let answer = self.commit(channel_code, key, idem).expect("commit succeeds");
        self.order(answer.order_ref().expect("order_ref"))
    }

    /// The stored order.
    pub(crate) fn order(&self, order_ref: &str) -> Order {
        block_on(self.hub.order(order_ref)).expect("order exists").1
    }

    /// Moves an order.
    pub(crate) fn transition(
        &self,
        order_ref: &str,
        status: &str,
        actor: &str,
    ) -> Result<Transitioned, TransitionError> {
        block_on(self.hub.transition_order(order_ref, status, None, &Caller::internal(actor)))
    }

    /// Every event of an order.
    pub(crate) fn events(&self, order_ref: &str) -> Vec<OrderEvent> {
        block_on(self.hub.order_events(order_ref)).expect("events")
    }

    /// Every directive, oldest first.
    pub(crate) fn directives(&self) -> Vec<Directive> {
        self.store().all_directives()
    }

    /// Directives of one topic.
    pub(crate) fn directives_of(&self, topic: &str) -> Vec<Directive> {
        self.directives().into_iter().filter(|d| d.topic == topic).collect()
    }

    /// Replaces a stored channel (same id).
    pub(crate) fn put_channel(&self, channel: Channel) {
        self.store().put_channel(channel);
    }

    /// A channel as stored.
    pub(crate) fn channel(&self, code: &str) -> Channel {
        block_on(self.store().channel_by_code(code)).expect("store").expect("channel exists")
    }

    /// Claims queued directives at the clock's time.
    pub(crate) fn claim(&self, topics: Option<&[String]>, limit: usize) -> Vec<Directive> {
        block_on(self.store().claim(topics, limit, self.clock.now())).expect("claim")
    }
}

/// A session item as stored, for tampering fixtures.
pub(crate) fn item(line_id: &str, sku: &str, qty: &str, unit_price_q: i64) -> Item {
    let qty: Qty = qty.parse().expect("valid qty");
    Item {
        line_id: line_id.into(),
        sku: sku.into(),
        name: String::new(),
        qty,
        unit_price_q: Some(unit_price_q),
        line_total_q: Some(monetary_mult(qty, unit_price_q)),
        meta: Map::new(),
    }
}

/// The error's code, context and kind, for compact assertions.
pub(crate) fn code_of(error: &impl DomainError) -> String {
    error.code().to_string()
}
