//! Storage ports: the async traits a backend implements (docs/architecture.md, "The core" and "Concurrency").
//!
//! Every write is a compare-and-set on what the service read; a method that reports `false`
//! (or a `*Changed` variant) wrote nothing, and the service re-reads and decides again.
//! Methods return `impl Future + Send` so the traits need no runtime and no boxing.
//!
//! Statement budget per call (docs/reference.md §12), which backends must keep: `load_session` 1;
//! `update_session` ≤ 2 (the update, plus one multi-row directive insert when there are
//! directives); `commit` ≤ 6; `order_by_ref` 1; `transition` 2; any list page 1.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::{Channel, ChannelSpec};
use crate::commit::CommitPlan;
use crate::directive::{Directive, DirectiveStatus, DirectiveUpdate, NewDirective};
use crate::error::StoreError;
use crate::idempotency::IdempotencyRecord;
use crate::order::{NewEvent, Order, OrderEvent, TransitionPlan};
use crate::page::{Page, PageRequest};
use crate::session::{Session, SessionState};
use crate::webhook::{Delivery, NewDelivery, Webhook};

/// Result alias for port calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Channels.
pub trait ChannelStore: Send + Sync {
    /// The channel with this code.
    fn channel_by_code(&self, code: &str) -> impl Future<Output = StoreResult<Option<Channel>>> + Send;
    /// Every channel, by (`display_order`, `id`), inactive ones included.
    fn list_channels(&self) -> impl Future<Output = StoreResult<Vec<Channel>>> + Send;
    /// Creates the channel or updates the one with the same code.
    fn upsert_channel(
        &self,
        spec: &ChannelSpec,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Channel>> + Send;
}

/// Why a session could not be inserted.
#[derive(Clone, Debug, PartialEq)]
pub enum InsertSession {
    /// Stored; carries the assigned id.
    Inserted(Session),
    /// `(channel, session_key)` is taken.
    KeyTaken,
    /// An open session already holds this handle (partial unique index).
    HandleTaken,
}

/// Filters of the session list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only these channels (`None` = all).
    pub channel_ids: Option<Vec<i64>>,
    /// Only this state.
    pub state: Option<SessionState>,
    /// Only this handle type.
    pub handle_type: Option<String>,
    /// Only this handle ref.
    pub handle_ref: Option<String>,
}

/// Sessions.
pub trait SessionStore: Send + Sync {
    /// The session and its channel, in one read.
    fn load_session(
        &self,
        channel_code: &str,
        session_key: &str,
    ) -> impl Future<Output = StoreResult<Option<(Channel, Session)>>> + Send;
    /// The session a write is about to be conditional on, with its channel. A store may answer
    /// from a cache: every write of a session bumps its `version` and is conditional on the one
    /// read, so a stale answer costs a retry of the compare-and-set, never a wrong write (the
    /// service reads again after a lost compare-and-set, and a caching store drops the entry).
    /// By default, [`load_session`](Self::load_session).
    fn load_session_to_write(
        &self,
        channel_code: &str,
        session_key: &str,
    ) -> impl Future<Output = StoreResult<Option<(Channel, Session)>>> + Send {
        self.load_session(channel_code, session_key)
    }
    /// Every session with this key, across channels (for addressing without `channel_code`).
    fn sessions_by_key(&self, session_key: &str) -> impl Future<Output = StoreResult<Vec<Session>>> + Send;
    /// The open session holding a handle on a channel.
    fn open_session_by_handle(
        &self,
        channel_id: i64,
        handle_type: &str,
        handle_ref: &str,
    ) -> impl Future<Output = StoreResult<Option<Session>>> + Send;
    /// Inserts a new session (its `id` is ignored).
    fn insert_session(&self, session: &Session) -> impl Future<Output = StoreResult<InsertSession>> + Send;
    /// Replaces the stored session by `session` and enqueues `directives`, in one transaction,
    /// only if the stored row is still open at `expected_version`. `false`: nothing written.
    fn update_session(
        &self,
        session: &Session,
        expected_version: i64,
        directives: &[NewDirective],
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// A page of sessions, newest first.
    fn list_sessions(
        &self,
        filter: &SessionFilter,
        page: &PageRequest,
    ) -> impl Future<Output = StoreResult<Page<Session>>> + Send;
    /// Marks open sessions not updated since `idle_since` as abandoned (version +1); returns how many.
    fn abandon_idle_sessions(
        &self,
        idle_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// How a commit write ended.
#[derive(Clone, Debug, PartialEq)]
pub enum CommitWrite {
    /// Everything was written; the stored order (with its id).
    Committed(Order),
    /// The session is no longer open at the expected version: re-read and decide again.
    SessionChanged,
    /// A record holds the idempotency key: read it, and replay or refuse as it says.
    KeyTaken,
    /// The order ref collided: plan again with a new ref.
    RefTaken,
}

/// An order without its lines, for lists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// Id.
    pub id: i64,
    /// Ref.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Channel id.
    pub channel_id: i64,
    /// Channel code.
    pub channel_code: String,
    /// Status.
    pub status: String,
    /// Currency.
    pub currency: String,
    /// Total.
    pub total_q: i64,
    /// Number of lines.
    pub items_count: i64,
    /// Handle type.
    pub handle_type: Option<String>,
    /// Handle ref.
    pub handle_ref: Option<String>,
    /// External ref.
    pub external_ref: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Filters of the order list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only these channels (`None` = all).
    pub channel_ids: Option<Vec<i64>>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this handle type.
    pub handle_type: Option<String>,
    /// Only this handle ref.
    pub handle_ref: Option<String>,
    /// Only this external ref.
    pub external_ref: Option<String>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
}

/// Orders and their events.
pub trait OrderStore: Send + Sync {
    /// Writes a [`CommitPlan`] in one transaction: order, items (one insert), `created` event,
    /// session (conditional on `expected_version` and `open`), directives (one insert) and the
    /// idempotency record from [`CommitPlan::idempotency_record`] (inserted, or replacing a record
    /// that [`replaceable`](crate::idempotency::replaceable) lets go; any other means
    /// [`CommitWrite::KeyTaken`]). Any refusal rolls back all.
    fn commit(&self, plan: &CommitPlan) -> impl Future<Output = StoreResult<CommitWrite>> + Send;
    /// The order with its lines and its channel, in one read.
    fn order_by_ref(&self, order_ref: &str) -> impl Future<Output = StoreResult<Option<(Channel, Order)>>> + Send;
    /// The order a session was committed into.
    fn order_for_session(
        &self,
        channel_id: i64,
        session_key: &str,
    ) -> impl Future<Output = StoreResult<Option<Order>>> + Send;
    /// Writes a transition if the order's status is still `plan.expected_status`: status,
    /// timestamps and `updated_at`, plus the event. `false`: nothing written.
    fn transition(&self, plan: &TransitionPlan) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Appends an event with the next `seq` of the order.
    fn append_event(&self, order_id: i64, event: &NewEvent) -> impl Future<Output = StoreResult<OrderEvent>> + Send;
    /// Every event of an order, by `seq`.
    fn list_events(&self, order_id: i64) -> impl Future<Output = StoreResult<Vec<OrderEvent>>> + Send;
    /// A page of orders, newest first.
    fn list_orders(
        &self,
        filter: &OrderFilter,
        page: &PageRequest,
    ) -> impl Future<Output = StoreResult<Page<OrderSummary>>> + Send;
    /// Up to `limit` orders with `id > since`, ascending (the polling stream).
    fn orders_after(&self, since: i64, limit: usize) -> impl Future<Output = StoreResult<Vec<OrderSummary>>> + Send;
    /// The highest order id, 0 when there is none.
    fn max_order_id(&self) -> impl Future<Output = StoreResult<i64>> + Send;
}

/// Filters of the directive list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirectiveFilter {
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this status.
    pub status: Option<DirectiveStatus>,
}

/// The directive queue.
pub trait DirectiveQueue: Send + Sync {
    /// Enqueues directives in one insert; returns their ids in order.
    fn enqueue(&self, directives: &[NewDirective]) -> impl Future<Output = StoreResult<Vec<i64>>> + Send;
    /// Claims up to `limit` queued directives with `available_at ≤ now` (and a topic in `topics`
    /// when given), oldest first, skipping rows other claimers hold: `running`, `attempts + 1`,
    /// `started_at = now`. Each directive is claimed by exactly one caller.
    fn claim(
        &self,
        topics: Option<&[String]>,
        limit: usize,
        now: DateTime<Utc>,
    ) -> impl Future<Output = StoreResult<Vec<Directive>>> + Send;
    /// Applies run outcomes, claim renewals or reaps; each only if the row is still `running` with
    /// `attempts = update.claimed_attempts`, and each sets `updated_at = now`. Payload patches are
    /// merged key by key. An update to `running` (see `directive::renew_claim`) renews the claim's
    /// lease: only `updated_at` moves. Updates apply in order, so of two for one directive only the
    /// first can match. Returns how many rows changed.
    fn finish(&self, updates: &[DirectiveUpdate], now: DateTime<Utc>) -> impl Future<Output = StoreResult<u64>> + Send;
    /// `running` directives whose claim was last written (claimed or renewed: `updated_at`)
    /// before `seen_before` (reaper input).
    fn stuck_directives(&self, seen_before: DateTime<Utc>) -> impl Future<Output = StoreResult<Vec<Directive>>> + Send;
    /// Manual retry: applies `update` only if the row is not `running`.
    fn requeue(&self, update: &DirectiveUpdate, now: DateTime<Utc>) -> impl Future<Output = StoreResult<bool>> + Send;
    /// One directive.
    fn directive(&self, id: i64) -> impl Future<Output = StoreResult<Option<Directive>>> + Send;
    /// A page of directives, newest first.
    fn list_directives(
        &self,
        filter: &DirectiveFilter,
        page: &PageRequest,
    ) -> impl Future<Output = StoreResult<Page<Directive>>> + Send;
    /// How many directives are in each status.
    fn directive_counts(&self) -> impl Future<Output = StoreResult<Vec<(DirectiveStatus, i64)>>> + Send;
}

/// Idempotency records outside the commit transaction.
pub trait IdempotencyStore: Send + Sync {
    /// The record for `(scope, key)`.
    fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<IdempotencyRecord>>> + Send;
    /// Stores `record` unless a `done` record holds the key; `false` when one does.
    fn save_idempotency_record(&self, record: &IdempotencyRecord) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes records past `expires_at`; returns how many.
    fn delete_expired_idempotency(&self, now: DateTime<Utc>) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// A caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sessions and orders of its channels.
    Client,
    /// Everything, including imports and directives.
    Admin,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }
}

/// A stored API token (only its hash is kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Id.
    pub id: i64,
    /// Principal name, recorded as the actor of events.
    pub name: String,
    /// Hex SHA-256 of the secret.
    pub token_hash: String,
    /// Role.
    pub role: Role,
    /// Allowed channel codes (`None` = all).
    pub channels: Option<Vec<String>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The token's own rate limits as `class=N/unit` pairs (`modify=300/min,commit=60/min`),
    /// overriding the server's defaults class by class; `None`: the defaults apply. The HTTP
    /// adapter gives the text its meaning and checks it before a token is stored.
    pub rate_limits: Option<String>,
}

/// API tokens.
pub trait TokenStore: Send + Sync {
    /// Stores a token; `false` when the name is taken.
    fn create_token(&self, token: &ApiToken) -> impl Future<Output = StoreResult<bool>> + Send;
    /// The unrevoked token with this hash.
    fn token_by_hash(&self, token_hash: &str) -> impl Future<Output = StoreResult<Option<ApiToken>>> + Send;
    /// Every token, revoked ones included.
    fn list_tokens(&self) -> impl Future<Output = StoreResult<Vec<ApiToken>>> + Send;
    /// Revokes the token with this name; `false` when there is none to revoke.
    fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Webhook subscriptions, their deliveries, and the dispatcher's position in the event log
/// (docs/webhooks.md).
pub trait WebhookStore: Send + Sync {
    /// Stores a new subscription (its `id` and `start_after` are ignored) and returns it as
    /// stored: with its id, and `start_after` set to the highest event id written so far, read
    /// in the insert's own statement, so that it never receives history.
    fn create_webhook(&self, webhook: &Webhook) -> impl Future<Output = StoreResult<Webhook>> + Send;
    /// One subscription.
    fn webhook(&self, id: i64) -> impl Future<Output = StoreResult<Option<Webhook>>> + Send;
    /// A page of subscriptions, newest first.
    fn list_webhooks(&self, page: &PageRequest) -> impl Future<Output = StoreResult<Page<Webhook>>> + Send;
    /// Every active subscription (what the dispatcher matches events against).
    fn active_webhooks(&self) -> impl Future<Output = StoreResult<Vec<Webhook>>> + Send;
    /// Replaces the stored subscription's `url`, `events`, `channels`, `active` and
    /// `updated_at`; `false` when there is none with its id.
    fn update_webhook(&self, webhook: &Webhook) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes a subscription and its delivery records (directives already queued stay, and find
    /// it gone); `false` when there was none.
    fn delete_webhook(&self, id: i64) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Enqueues deliveries (their directives and their records) in one transaction; returns the
    /// delivery ids (the directives' ids), in order.
    fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> impl Future<Output = StoreResult<Vec<i64>>> + Send;
    /// A page of a subscription's deliveries, newest first.
    fn list_deliveries(
        &self,
        webhook_id: i64,
        page: &PageRequest,
    ) -> impl Future<Output = StoreResult<Page<Delivery>>> + Send;
    /// The dispatcher's position: every event up to this id has been dispatched (0: none).
    fn dispatch_position(&self) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Moves the dispatcher's position from `from` to `to` and enqueues `deliveries`, in one
    /// transaction, only if the position is still `from`. `false`: another dispatcher moved it
    /// first, and nothing was written; so no event is ever dispatched twice.
    fn advance_dispatch(
        &self,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Everything the service needs from storage.
pub trait Store:
    ChannelStore + SessionStore + OrderStore + DirectiveQueue + IdempotencyStore + TokenStore + WebhookStore
{
}

impl<T> Store for T where
    T: ChannelStore + SessionStore + OrderStore + DirectiveQueue + IdempotencyStore + TokenStore + WebhookStore
{
}
