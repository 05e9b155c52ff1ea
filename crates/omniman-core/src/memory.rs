//! An in-memory store implementing every port.
//!
//! It is the reference for the ports' semantics and what the core's tests and the embedding
//! example run on. It is not a production backend: nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};

use crate::channel::{Channel, ChannelSpec};
use crate::commit::CommitPlan;
use crate::directive::{Directive, DirectiveStatus, DirectiveUpdate, NewDirective};
use crate::idempotency::{IdempotencyRecord, IdempotencyStatus, replaceable};
use crate::order::{NewEvent, Order, OrderEvent, TransitionPlan};
use crate::page::{Direction, Page, PageRequest};
use crate::ports::{
    ApiToken, ChannelStore, CommitWrite, DirectiveFilter, DirectiveQueue, IdempotencyStore, InsertSession, OrderFilter,
    OrderStore, OrderSummary, SessionFilter, SessionStore, StoreResult, TokenStore, WebhookStore,
};
use crate::session::{Session, SessionState};
use crate::webhook::{Delivery, NewDelivery, Webhook};

#[derive(Debug, Default)]
struct State {
    channels: BTreeMap<i64, Channel>,
    sessions: BTreeMap<i64, Session>,
    orders: BTreeMap<i64, Order>,
    events: BTreeMap<i64, Vec<OrderEvent>>,
    directives: BTreeMap<i64, Directive>,
    idempotency: BTreeMap<(String, String), IdempotencyRecord>,
    tokens: BTreeMap<String, ApiToken>,
    webhooks: BTreeMap<i64, Webhook>,
    /// Delivery records by directive id: (subscription, event id, event type).
    deliveries: BTreeMap<i64, (i64, Option<i64>, String)>,
    dispatch_position: i64,
    next_id: i64,
}

impl State {
    fn enqueue_deliveries(&mut self, deliveries: &[NewDelivery]) -> Vec<i64> {
        let directives: Vec<NewDirective> = deliveries.iter().map(|d| d.directive.clone()).collect();
        let now = directives.first().map_or_else(Utc::now, |d| d.available_at);
        let ids = self.enqueue(&directives, now);
        for (id, d) in ids.iter().zip(deliveries) {
            self.deliveries.insert(*id, (d.webhook_id, d.event_id, d.event_type.clone()));
        }
        ids
    }

    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn channel(&self, id: i64) -> Option<&Channel> {
        self.channels.get(&id)
    }

    fn enqueue(&mut self, directives: &[NewDirective], now: DateTime<Utc>) -> Vec<i64> {
        directives
            .iter()
            .map(|d| {
                let id = self.next_id();
                self.directives.insert(
                    id,
                    Directive {
                        id,
                        topic: d.topic.clone(),
                        status: DirectiveStatus::Queued,
                        payload: d.payload.clone(),
                        attempts: 0,
                        available_at: d.available_at,
                        last_error: String::new(),
                        created_at: now,
                        started_at: None,
                        updated_at: now,
                    },
                );
                id
            })
            .collect()
    }
}

/// The in-memory store. Cloning it gives another handle to the same data, as cloning a
/// connection pool would, so a service and its workers can share one store.
///
/// ```
/// use omniman_core::memory::InMemoryStore;
/// let store = InMemoryStore::new();
/// store.put_channel(omniman_core::testing::channel("web"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct InMemoryStore {
    state: Arc<Mutex<State>>,
}

/// Keyset paging over rows already sorted newest first.
fn page_of<T: Clone>(rows: Vec<T>, request: &PageRequest, key: impl Fn(&T) -> (DateTime<Utc>, i64)) -> Page<T> {
    let fetched: Vec<T> = match request.cursor {
        None => rows.into_iter().take(request.fetch_limit()).collect(),
        Some(c) if c.direction == Direction::Forward => {
            rows.into_iter().filter(|r| key(r) < (c.created_at, c.id)).take(request.fetch_limit()).collect()
        }
        Some(c) => {
            rows.into_iter().rev().filter(|r| key(r) > (c.created_at, c.id)).take(request.fetch_limit()).collect()
        }
    };
    Page::from_rows(fetched, request, key)
}

fn summary(order: &Order) -> OrderSummary {
    OrderSummary {
        id: order.id,
        reference: order.reference.clone(),
        channel_id: order.channel_id,
        channel_code: order.channel_code.clone(),
        status: order.status.clone(),
        currency: order.currency.clone(),
        total_q: order.total_q,
        items_count: i64::try_from(order.items.len()).unwrap_or(i64::MAX),
        handle_type: order.handle_type.clone(),
        handle_ref: order.handle_ref.clone(),
        external_ref: order.external_ref.clone(),
        created_at: order.created_at,
        updated_at: order.updated_at,
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> InMemoryStore {
        InMemoryStore::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a channel as given (its id is kept; ids handed out later stay above it).
    pub fn put_channel(&self, channel: Channel) {
        let mut state = self.state();
        state.next_id = state.next_id.max(channel.id);
        state.channels.insert(channel.id, channel);
    }

    /// Every directive, oldest first (for tests).
    pub fn all_directives(&self) -> Vec<Directive> {
        self.state().directives.values().cloned().collect()
    }

    /// How many orders exist (for tests).
    pub fn order_count(&self) -> usize {
        self.state().orders.len()
    }

    /// Changes a stored session directly, bypassing every rule (for tests that need odd states).
    pub fn tamper_session(&self, channel_code: &str, session_key: &str, f: impl FnOnce(&mut Session)) {
        let mut state = self.state();
        if let Some(s) =
            state.sessions.values_mut().find(|s| s.channel_code == channel_code && s.session_key == session_key)
        {
            f(s);
        }
    }
}

impl ChannelStore for InMemoryStore {
    async fn channel_by_code(&self, code: &str) -> StoreResult<Option<Channel>> {
        Ok(self.state().channels.values().find(|c| c.code == code).cloned())
    }

    async fn list_channels(&self) -> StoreResult<Vec<Channel>> {
        let mut channels: Vec<Channel> = self.state().channels.values().cloned().collect();
        channels.sort_by_key(|c| (c.display_order, c.id));
        Ok(channels)
    }

    async fn upsert_channel(&self, spec: &ChannelSpec, now: DateTime<Utc>) -> StoreResult<Channel> {
        let mut state = self.state();
        let existing = state.channels.values().find(|c| c.code == spec.code).map(|c| (c.id, c.created_at));
        let (id, created_at) = existing.unwrap_or_else(|| (state.next_id(), now));
        let channel = Channel {
            id,
            code: spec.code.clone(),
            name: spec.name.clone(),
            pricing_policy: spec.pricing_policy,
            edit_policy: spec.edit_policy,
            display_order: spec.display_order,
            config: spec.config.clone(),
            is_active: spec.is_active,
            created_at,
        };
        state.channels.insert(id, channel.clone());
        Ok(channel)
    }
}

impl SessionStore for InMemoryStore {
    async fn load_session(&self, channel_code: &str, session_key: &str) -> StoreResult<Option<(Channel, Session)>> {
        let state = self.state();
        let Some(channel) = state.channels.values().find(|c| c.code == channel_code) else {
            return Ok(None);
        };
        Ok(state
            .sessions
            .values()
            .find(|s| s.channel_id == channel.id && s.session_key == session_key)
            .map(|s| (channel.clone(), s.clone())))
    }

    async fn sessions_by_key(&self, session_key: &str) -> StoreResult<Vec<Session>> {
        Ok(self.state().sessions.values().filter(|s| s.session_key == session_key).cloned().collect())
    }

    async fn open_session_by_handle(
        &self,
        channel_id: i64,
        handle_type: &str,
        handle_ref: &str,
    ) -> StoreResult<Option<Session>> {
        Ok(self
            .state()
            .sessions
            .values()
            .find(|s| {
                s.channel_id == channel_id
                    && s.state == SessionState::Open
                    && s.handle_type.as_deref() == Some(handle_type)
                    && s.handle_ref.as_deref() == Some(handle_ref)
            })
            .cloned())
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<InsertSession> {
        let mut state = self.state();
        if state.sessions.values().any(|s| s.channel_id == session.channel_id && s.session_key == session.session_key) {
            return Ok(InsertSession::KeyTaken);
        }
        let handle_taken = session.handle_type.is_some()
            && session.handle_ref.is_some()
            && state.sessions.values().any(|s| {
                s.channel_id == session.channel_id
                    && s.state == SessionState::Open
                    && s.handle_type == session.handle_type
                    && s.handle_ref == session.handle_ref
            });
        if handle_taken {
            return Ok(InsertSession::HandleTaken);
        }
        let mut stored = session.clone();
        stored.id = state.next_id();
        if let Some(channel) = state.channel(stored.channel_id) {
            stored.channel_code.clone_from(&channel.code);
        }
        state.sessions.insert(stored.id, stored.clone());
        Ok(InsertSession::Inserted(stored))
    }

    async fn update_session(
        &self,
        session: &Session,
        expected_version: i64,
        directives: &[NewDirective],
    ) -> StoreResult<bool> {
        let mut state = self.state();
        match state.sessions.get(&session.id) {
            Some(current) if current.version == expected_version && current.state == SessionState::Open => {}
            _ => return Ok(false),
        }
        state.sessions.insert(session.id, session.clone());
        state.enqueue(directives, session.updated_at);
        Ok(true)
    }

    async fn list_sessions(&self, filter: &SessionFilter, page: &PageRequest) -> StoreResult<Page<Session>> {
        let state = self.state();
        let mut rows: Vec<Session> = state
            .sessions
            .values()
            .filter(|s| filter.channel_ids.as_ref().is_none_or(|ids| ids.contains(&s.channel_id)))
            .filter(|s| filter.state.is_none_or(|st| s.state == st))
            .filter(|s| filter.handle_type.is_none() || s.handle_type == filter.handle_type)
            .filter(|s| filter.handle_ref.is_none() || s.handle_ref == filter.handle_ref)
            .cloned()
            .collect();
        rows.sort_by_key(|s| std::cmp::Reverse((s.opened_at, s.id)));
        Ok(page_of(rows, page, |s| (s.opened_at, s.id)))
    }

    async fn abandon_idle_sessions(&self, idle_since: DateTime<Utc>, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut count = 0;
        for s in self.state().sessions.values_mut() {
            if s.state == SessionState::Open && s.updated_at < idle_since {
                s.state = SessionState::Abandoned;
                s.version += 1;
                s.updated_at = now;
                count += 1;
            }
        }
        Ok(count)
    }
}

impl OrderStore for InMemoryStore {
    async fn commit(&self, plan: &CommitPlan) -> StoreResult<CommitWrite> {
        let mut state = self.state();
        let scope_key = (plan.idempotency_scope.clone(), plan.idempotency_key.clone());
        if state.idempotency.get(&scope_key).is_some_and(|r| !replaceable(r, &plan.session.session_key, plan.now)) {
            return Ok(CommitWrite::KeyTaken);
        }
        match state.sessions.get(&plan.session.id) {
            Some(current) if current.version == plan.expected_version && current.state == SessionState::Open => {}
            _ => return Ok(CommitWrite::SessionChanged),
        }
        if state.orders.values().any(|o| o.reference == plan.order.reference) {
            return Ok(CommitWrite::RefTaken);
        }
        let mut order = plan.order.clone();
        order.id = state.next_id();
        state.orders.insert(order.id, order.clone());
        let created = OrderEvent {
            seq: 0,
            event_type: plan.event.event_type.clone(),
            actor: plan.event.actor.clone(),
            payload: plan.event.payload.clone(),
            created_at: plan.event.created_at,
        };
        state.events.insert(order.id, vec![created]);
        state.sessions.insert(plan.session.id, plan.session.clone());
        state.enqueue(&plan.directives, plan.now);
        state.idempotency.insert(scope_key, plan.idempotency_record(order.id));
        Ok(CommitWrite::Committed(order))
    }

    async fn order_by_ref(&self, order_ref: &str) -> StoreResult<Option<(Channel, Order)>> {
        let state = self.state();
        Ok(state
            .orders
            .values()
            .find(|o| o.reference == order_ref)
            .and_then(|o| state.channel(o.channel_id).map(|c| (c.clone(), o.clone()))))
    }

    async fn order_for_session(&self, channel_id: i64, session_key: &str) -> StoreResult<Option<Order>> {
        Ok(self.state().orders.values().find(|o| o.channel_id == channel_id && o.session_key == session_key).cloned())
    }

    async fn transition(&self, plan: &TransitionPlan) -> StoreResult<bool> {
        let mut state = self.state();
        match state.orders.get(&plan.order.id) {
            Some(current) if current.status == plan.expected_status => {}
            _ => return Ok(false),
        }
        state.orders.insert(plan.order.id, plan.order.clone());
        let events = state.events.entry(plan.order.id).or_default();
        let seq = i64::try_from(events.len()).unwrap_or(i64::MAX);
        events.push(OrderEvent {
            seq,
            event_type: plan.event.event_type.clone(),
            actor: plan.event.actor.clone(),
            payload: plan.event.payload.clone(),
            created_at: plan.event.created_at,
        });
        Ok(true)
    }

    async fn append_event(&self, order_id: i64, event: &NewEvent) -> StoreResult<OrderEvent> {
        let mut state = self.state();
        let events = state.events.entry(order_id).or_default();
        let stored = OrderEvent {
            seq: i64::try_from(events.len()).unwrap_or(i64::MAX),
            event_type: event.event_type.clone(),
            actor: event.actor.clone(),
            payload: event.payload.clone(),
            created_at: event.created_at,
        };
        events.push(stored.clone());
        Ok(stored)
    }

    async fn list_events(&self, order_id: i64) -> StoreResult<Vec<OrderEvent>> {
        Ok(self.state().events.get(&order_id).cloned().unwrap_or_default())
    }

    async fn list_orders(&self, filter: &OrderFilter, page: &PageRequest) -> StoreResult<Page<OrderSummary>> {
        let state = self.state();
        let mut rows: Vec<OrderSummary> = state
            .orders
            .values()
            .filter(|o| filter.channel_ids.as_ref().is_none_or(|ids| ids.contains(&o.channel_id)))
            .filter(|o| filter.status.as_ref().is_none_or(|s| &o.status == s))
            .filter(|o| filter.handle_type.is_none() || o.handle_type == filter.handle_type)
            .filter(|o| filter.handle_ref.is_none() || o.handle_ref == filter.handle_ref)
            .filter(|o| filter.external_ref.is_none() || o.external_ref == filter.external_ref)
            .filter(|o| filter.created_after.is_none_or(|t| o.created_at >= t))
            .filter(|o| filter.created_before.is_none_or(|t| o.created_at < t))
            .map(summary)
            .collect();
        rows.sort_by_key(|o| std::cmp::Reverse((o.created_at, o.id)));
        Ok(page_of(rows, page, |o| (o.created_at, o.id)))
    }

    async fn orders_after(&self, since: i64, limit: usize) -> StoreResult<Vec<OrderSummary>> {
        Ok(self.state().orders.range(since + 1..).take(limit).map(|(_, o)| summary(o)).collect())
    }

    async fn max_order_id(&self) -> StoreResult<i64> {
        Ok(self.state().orders.keys().next_back().copied().unwrap_or(0))
    }
}

impl DirectiveQueue for InMemoryStore {
    async fn enqueue(&self, directives: &[NewDirective]) -> StoreResult<Vec<i64>> {
        let now = directives.first().map_or_else(Utc::now, |d| d.available_at);
        Ok(self.state().enqueue(directives, now))
    }

    async fn claim(&self, topics: Option<&[String]>, limit: usize, now: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
        let mut state = self.state();
        let mut ready: Vec<(DateTime<Utc>, i64)> = state
            .directives
            .values()
            .filter(|d| d.status == DirectiveStatus::Queued && d.available_at <= now)
            .filter(|d| topics.is_none_or(|t| t.contains(&d.topic)))
            .map(|d| (d.available_at, d.id))
            .collect();
        ready.sort_unstable();
        let mut claimed = Vec::new();
        for (_, id) in ready.into_iter().take(limit) {
            if let Some(d) = state.directives.get_mut(&id) {
                d.status = DirectiveStatus::Running;
                d.attempts += 1;
                d.started_at = Some(now);
                d.updated_at = now;
                claimed.push(d.clone());
            }
        }
        Ok(claimed)
    }

    async fn finish(&self, updates: &[DirectiveUpdate], now: DateTime<Utc>) -> StoreResult<u64> {
        let mut state = self.state();
        let mut changed = 0;
        for u in updates {
            if let Some(d) = state.directives.get_mut(&u.id) {
                if d.status == DirectiveStatus::Running && d.attempts == u.claimed_attempts {
                    d.status = u.status;
                    d.attempts = u.attempts;
                    d.available_at = u.available_at;
                    d.last_error.clone_from(&u.last_error);
                    d.payload.extend(u.payload_patch.clone());
                    d.updated_at = now;
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }

    async fn stuck_directives(&self, seen_before: DateTime<Utc>) -> StoreResult<Vec<Directive>> {
        Ok(self
            .state()
            .directives
            .values()
            .filter(|d| d.status == DirectiveStatus::Running && d.updated_at < seen_before)
            .cloned()
            .collect())
    }

    async fn requeue(&self, update: &DirectiveUpdate, now: DateTime<Utc>) -> StoreResult<bool> {
        let mut state = self.state();
        match state.directives.get_mut(&update.id) {
            Some(d) if d.status != DirectiveStatus::Running => {
                d.status = update.status;
                d.available_at = update.available_at;
                d.updated_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn directive(&self, id: i64) -> StoreResult<Option<Directive>> {
        Ok(self.state().directives.get(&id).cloned())
    }

    async fn list_directives(&self, filter: &DirectiveFilter, page: &PageRequest) -> StoreResult<Page<Directive>> {
        let state = self.state();
        let mut rows: Vec<Directive> = state
            .directives
            .values()
            .filter(|d| filter.topic.as_ref().is_none_or(|t| &d.topic == t))
            .filter(|d| filter.status.is_none_or(|s| d.status == s))
            .cloned()
            .collect();
        rows.sort_by_key(|d| std::cmp::Reverse((d.created_at, d.id)));
        Ok(page_of(rows, page, |d| (d.created_at, d.id)))
    }

    async fn directive_counts(&self) -> StoreResult<Vec<(DirectiveStatus, i64)>> {
        let mut counts: BTreeMap<&'static str, (DirectiveStatus, i64)> = BTreeMap::new();
        for d in self.state().directives.values() {
            counts.entry(d.status.as_str()).or_insert((d.status, 0)).1 += 1;
        }
        Ok(counts.into_values().collect())
    }
}

impl IdempotencyStore for InMemoryStore {
    async fn idempotency_record(&self, scope: &str, key: &str) -> StoreResult<Option<IdempotencyRecord>> {
        Ok(self.state().idempotency.get(&(scope.to_owned(), key.to_owned())).cloned())
    }

    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> StoreResult<bool> {
        let mut state = self.state();
        let key = (record.scope.clone(), record.key.clone());
        if state.idempotency.get(&key).is_some_and(|r| r.status == IdempotencyStatus::Done) {
            return Ok(false);
        }
        state.idempotency.insert(key, record.clone());
        Ok(true)
    }

    async fn delete_expired_idempotency(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut state = self.state();
        let before = state.idempotency.len();
        state.idempotency.retain(|_, r| r.expires_at.is_none_or(|e| e > now));
        Ok((before - state.idempotency.len()) as u64)
    }
}

impl TokenStore for InMemoryStore {
    async fn create_token(&self, token: &ApiToken) -> StoreResult<bool> {
        let mut state = self.state();
        if state.tokens.contains_key(&token.name) {
            return Ok(false);
        }
        let mut stored = token.clone();
        stored.id = state.next_id();
        state.tokens.insert(token.name.clone(), stored);
        Ok(true)
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        Ok(self.state().tokens.values().find(|t| t.token_hash == token_hash && t.revoked_at.is_none()).cloned())
    }

    async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        Ok(self.state().tokens.values().cloned().collect())
    }

    async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> StoreResult<bool> {
        match self.state().tokens.get_mut(name) {
            Some(t) if t.revoked_at.is_none() => {
                t.revoked_at = Some(now);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl WebhookStore for InMemoryStore {
    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<Webhook> {
        let mut state = self.state();
        // This store keeps no event log: its end is always 0.
        let stored = Webhook { id: state.next_id(), start_after: 0, ..webhook.clone() };
        state.webhooks.insert(stored.id, stored.clone());
        Ok(stored)
    }

    async fn webhook(&self, id: i64) -> StoreResult<Option<Webhook>> {
        Ok(self.state().webhooks.get(&id).cloned())
    }

    async fn list_webhooks(&self, page: &PageRequest) -> StoreResult<Page<Webhook>> {
        let mut rows: Vec<Webhook> = self.state().webhooks.values().cloned().collect();
        rows.sort_by_key(|w| std::cmp::Reverse((w.created_at, w.id)));
        Ok(page_of(rows, page, |w| (w.created_at, w.id)))
    }

    async fn active_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        Ok(self.state().webhooks.values().filter(|w| w.active).cloned().collect())
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<bool> {
        let mut state = self.state();
        let Some(stored) = state.webhooks.get_mut(&webhook.id) else { return Ok(false) };
        stored.url.clone_from(&webhook.url);
        stored.events.clone_from(&webhook.events);
        stored.channels.clone_from(&webhook.channels);
        stored.active = webhook.active;
        stored.updated_at = webhook.updated_at;
        Ok(true)
    }

    async fn delete_webhook(&self, id: i64) -> StoreResult<bool> {
        let mut state = self.state();
        state.deliveries.retain(|_, (webhook_id, _, _)| *webhook_id != id);
        Ok(state.webhooks.remove(&id).is_some())
    }

    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> StoreResult<Vec<i64>> {
        Ok(self.state().enqueue_deliveries(deliveries))
    }

    async fn list_deliveries(&self, webhook_id: i64, page: &PageRequest) -> StoreResult<Page<Delivery>> {
        let state = self.state();
        let mut rows: Vec<Delivery> = state
            .deliveries
            .iter()
            .filter(|(_, (hook, _, _))| *hook == webhook_id)
            .filter_map(|(id, (hook, event_id, event_type))| {
                Some(Delivery::of(state.directives.get(id)?, *hook, *event_id, event_type))
            })
            .collect();
        rows.sort_by_key(|d| std::cmp::Reverse((d.created_at, d.id)));
        Ok(page_of(rows, page, |d| (d.created_at, d.id)))
    }

    async fn dispatch_position(&self) -> StoreResult<i64> {
        Ok(self.state().dispatch_position)
    }

    async fn advance_dispatch(&self, from: i64, to: i64, deliveries: &[NewDelivery]) -> StoreResult<bool> {
        let mut state = self.state();
        if state.dispatch_position != from {
            return Ok(false);
        }
        state.dispatch_position = to;
        state.enqueue_deliveries(deliveries);
        Ok(true)
    }
}
