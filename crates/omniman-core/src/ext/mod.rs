//! Extension points (docs/reference.md §8) and the immutable registry that holds them.
//!
//! Everything is registered once at start-up through [`ExtensionsBuilder`]; the resulting
//! [`Extensions`] is shared read-only by every request.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::channel::Channel;
use crate::context::Ctx;
use crate::directive::{Directive, HandlerError, HandlerOutcome};
use crate::error::Rejection;
use crate::money::{Qty, qty_or_zero};
use crate::ops::Op;
use crate::order::Order;
use crate::session::Session;

mod bundled;
pub use bundled::{ActionResolver, ChannelPrices, ItemPricingModifier, PriceList, SessionTotalModifier};

/// Changes a draft session during modify: prices, discounts, derived data. Deterministic, no IO.
pub trait Modifier: Send + Sync {
    /// Unique code (`pricing.*` codes always run).
    fn code(&self) -> &str;
    /// Run order, ascending; ties keep registration order.
    fn order(&self) -> i32;
    /// Changes the draft; an error aborts the modify.
    fn apply(&self, channel: &Channel, draft: &mut Session, ctx: &Ctx) -> Result<(), Rejection>;
}

/// When a validator runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValidatorStage {
    /// After modifiers in every modify.
    Draft,
    /// In commit, after checks and issues.
    Commit,
    /// In the import path.
    Import,
}

/// A pure gate: refuses a draft with its own code. No mutation, no IO.
pub trait Validator: Send + Sync {
    /// Unique code.
    fn code(&self) -> &str;
    /// When it runs.
    fn stage(&self) -> ValidatorStage;
    /// `Err` refuses the operation.
    fn validate(&self, channel: &Channel, session: &Session, ctx: &Ctx) -> Result<(), Rejection>;
}

/// A check (shopman): the directive topic that computes it, and a commit-time validation of its result.
pub trait Check: Send + Sync {
    /// Check code, as listed in `required_checks_on_commit`.
    fn code(&self) -> &str;
    /// Topic of the directive that computes the check.
    fn topic(&self) -> &str;
    /// Validates the stored result (`data.checks.<code>`) at commit.
    fn validate(
        &self,
        channel: &Channel,
        session: &Session,
        entry: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        let _ = (channel, session, entry, now);
        Ok(())
    }
}

/// Context handed to directive handlers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerCtx {
    /// `process_directives`, `signal_dispatch`, or an admin's name.
    pub actor: String,
    /// Claim time.
    pub now: DateTime<Utc>,
}

/// Runs the directives of one topic. May do IO; must be idempotent (delivery is at-least-once).
#[async_trait]
pub trait DirectiveHandler: Send + Sync {
    /// The topic it owns.
    fn topic(&self) -> &str;
    /// `Ok(Done)`, `Ok(Failed)` (permanent) or `Err` (transient, retried).
    async fn handle(&self, directive: &Directive, ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError>;
}

/// Why a resolver could not produce ops.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResolverFailure {
    /// A coded refusal; keeps its code and context.
    #[error(transparent)]
    Coded(#[from] Rejection),
    /// Anything else; reported as `resolver_error`.
    #[error("{0}")]
    Other(String),
}

/// Resolves issues raised by one source: turns a chosen action into ops the service then applies
/// with modify (which checks state, policy and rev).
#[async_trait]
pub trait IssueResolver: Send + Sync {
    /// The issue source it owns (a check code).
    fn source(&self) -> &str;
    /// The ops that carry out `action_id` of `issue`.
    async fn resolve(
        &self,
        session: &Session,
        issue: &Value,
        action_id: &str,
        ctx: &Ctx,
    ) -> Result<Vec<Op>, ResolverFailure>;
}

/// Observers called after a transaction commits. Best-effort: they cannot change the answer;
/// durable effects belong in directives.
pub trait Hooks: Send + Sync {
    /// An order was created or changed status.
    fn order_changed(&self, order: &Order, event_type: &str, actor: &str) {
        let _ = (order, event_type, actor);
    }
    /// A session was committed into `order`.
    fn session_committed(&self, session: &Session, order: &Order) {
        let _ = (session, order);
    }
    /// A modify was stored.
    fn session_modified(&self, session: &Session) {
        let _ = session;
    }
    /// A session was abandoned.
    fn session_abandoned(&self, session: &Session) {
        let _ = session;
    }
}

/// Prices SKUs for `pricing.item`.
pub trait PricingBackend: Send + Sync {
    /// Unit price in quanta, or `None` for an unknown SKU.
    fn get_price(&self, sku: &str, channel: &Channel) -> Option<i64>;
}

/// Availability of a SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Whether the requested quantity can be had.
    pub available: bool,
    /// How much can be had; `None` when nothing can.
    pub available_qty: Option<Qty>,
    /// Backend message.
    pub message: Option<String>,
}

impl Availability {
    /// The answer to a request for `requested` of `sku` when `available_millis` thousandths can
    /// be had (zero or less: none). Stock backends share it so that they word it alike.
    ///
    /// ```
    /// use omniman_core::ext::Availability;
    /// use omniman_core::money::Qty;
    /// let two = Qty::from_units(2).unwrap();
    /// assert!(Availability::for_request("COFFEE", two, 5_000).available);
    /// let short = Availability::for_request("COFFEE", two, 1_500);
    /// assert_eq!(short.available_qty, Qty::from_millis(1_500));
    /// assert_eq!(short.message.as_deref(), Some("Only 1.500 of COFFEE available"));
    /// assert_eq!(Availability::for_request("COFFEE", two, -3_000).available_qty, None);
    /// ```
    pub fn for_request(sku: &str, requested: Qty, available_millis: i64) -> Availability {
        // More than a quantity can say is plenty for any request.
        let available = Qty::from_millis(available_millis.min(Qty::MAX.millis()));
        let enough = available.is_some_and(|a| a >= requested);
        Availability {
            available: enough,
            available_qty: available,
            message: (!enough).then(|| format!("Only {} of {sku} available", qty_or_zero(available))),
        }
    }
}

/// The answer to a hold request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldResult {
    /// Whether the hold was created.
    pub success: bool,
    /// The hold's id.
    pub hold_id: Option<String>,
    /// Why not.
    pub error_code: Option<String>,
    /// Backend message.
    pub message: Option<String>,
    /// When the hold lapses.
    pub expires_at: Option<DateTime<Utc>>,
}

impl HoldResult {
    /// A hold was created.
    pub fn held(hold_id: String, expires_at: Option<DateTime<Utc>>) -> HoldResult {
        HoldResult { success: true, hold_id: Some(hold_id), error_code: None, message: None, expires_at }
    }

    /// Refused: not enough of `sku` is available (`error_code` `insufficient_stock`).
    ///
    /// ```
    /// let refused = omniman_core::ext::HoldResult::insufficient("COFFEE");
    /// assert_eq!((refused.success, refused.error_code.as_deref()), (false, Some("insufficient_stock")));
    /// ```
    pub fn insufficient(sku: &str) -> HoldResult {
        HoldResult {
            success: false,
            hold_id: None,
            error_code: Some("insufficient_stock".into()),
            message: Some(format!("Not enough {sku} in stock")),
            expires_at: None,
        }
    }
}

/// An alternative product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alternative {
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Available quantity; `None` when nothing is available.
    pub available_qty: Option<Qty>,
}

/// An error from a backend's IO.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Stock levels and holds, used by the stock check flow (docs/reference.md §7).
#[async_trait]
pub trait StockBackend: Send + Sync {
    /// Whether `qty` of `sku` can be had (on `date`, for pre-orders).
    async fn check_availability(
        &self,
        sku: &str,
        qty: Qty,
        date: Option<NaiveDate>,
    ) -> Result<Availability, BackendError>;
    /// Reserves `qty` of `sku`.
    async fn create_hold(
        &self,
        sku: &str,
        qty: Qty,
        expires_at: Option<DateTime<Utc>>,
        reference: Option<&str>,
    ) -> Result<HoldResult, BackendError>;
    /// Frees a hold; `false` when unknown.
    async fn release_hold(&self, hold_id: &str) -> Result<bool, BackendError>;
    /// Turns a hold into a sale; `false` when unknown or already released.
    async fn fulfill_hold(&self, hold_id: &str, reference: Option<&str>) -> Result<bool, BackendError>;
    /// Substitutes for an unavailable SKU.
    async fn get_alternatives(&self, sku: &str, qty: Qty) -> Result<Vec<Alternative>, BackendError>;
    /// Frees every hold made under `reference`; returns how many.
    async fn release_holds_for_reference(&self, reference: &str) -> Result<u64, BackendError>;
}

/// A registration refused because its key is taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} '{key}' is already registered")]
pub struct DuplicateRegistration {
    /// What was registered (`handler topic`, `resolver source`…).
    pub kind: &'static str,
    /// The key.
    pub key: String,
}

/// Builds an [`Extensions`] registry.
///
/// ```
/// use omniman_core::ext::{ExtensionsBuilder, SessionTotalModifier};
/// let ext = ExtensionsBuilder::new().modifier(SessionTotalModifier).build();
/// assert_eq!(ext.modifiers().count(), 1);
/// ```
#[derive(Default)]
pub struct ExtensionsBuilder {
    modifiers: Vec<Arc<dyn Modifier>>,
    validators: Vec<Arc<dyn Validator>>,
    checks: Vec<Arc<dyn Check>>,
    resolvers: HashMap<String, Arc<dyn IssueResolver>>,
    hooks: Vec<Arc<dyn Hooks>>,
}

impl fmt::Debug for ExtensionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtensionsBuilder").finish_non_exhaustive()
    }
}

impl ExtensionsBuilder {
    /// An empty builder.
    pub fn new() -> ExtensionsBuilder {
        ExtensionsBuilder::default()
    }

    /// Adds a modifier.
    pub fn modifier(mut self, modifier: impl Modifier + 'static) -> ExtensionsBuilder {
        self.modifiers.push(Arc::new(modifier));
        self
    }

    /// Adds a validator.
    pub fn validator(mut self, validator: impl Validator + 'static) -> ExtensionsBuilder {
        self.validators.push(Arc::new(validator));
        self
    }

    /// Adds a check.
    pub fn check(mut self, check: impl Check + 'static) -> ExtensionsBuilder {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds hooks.
    pub fn hooks(mut self, hooks: impl Hooks + 'static) -> ExtensionsBuilder {
        self.hooks.push(Arc::new(hooks));
        self
    }

    /// Adds an issue resolver; a source may have only one.
    pub fn resolver(mut self, resolver: Arc<dyn IssueResolver>) -> Result<ExtensionsBuilder, DuplicateRegistration> {
        let source = resolver.source().to_owned();
        if self.resolvers.contains_key(&source) {
            return Err(DuplicateRegistration { kind: "resolver source", key: source });
        }
        self.resolvers.insert(source, resolver);
        Ok(self)
    }

    /// Forgets everything registered so far.
    pub fn clear(self) -> ExtensionsBuilder {
        ExtensionsBuilder::default()
    }

    /// Freezes the registry; modifiers are sorted by `order`, stable for ties.
    pub fn build(mut self) -> Extensions {
        self.modifiers.sort_by_key(|m| m.order());
        Extensions {
            modifiers: self.modifiers,
            validators: self.validators,
            checks: self.checks,
            resolvers: self.resolvers,
            hooks: self.hooks,
        }
    }
}

/// The immutable registry of the service's extensions: what modify, commit and resolve call.
/// Directive handlers live in a [`HandlerRegistry`], the one a worker runs.
#[derive(Clone, Default)]
pub struct Extensions {
    modifiers: Vec<Arc<dyn Modifier>>,
    validators: Vec<Arc<dyn Validator>>,
    checks: Vec<Arc<dyn Check>>,
    resolvers: HashMap<String, Arc<dyn IssueResolver>>,
    hooks: Vec<Arc<dyn Hooks>>,
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("modifiers", &self.modifiers.iter().map(|m| m.code()).collect::<Vec<_>>())
            .field("validators", &self.validators.iter().map(|v| v.code()).collect::<Vec<_>>())
            .field("resolvers", &self.resolvers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Extensions {
    /// Modifiers in run order.
    pub fn modifiers(&self) -> impl Iterator<Item = &dyn Modifier> {
        self.modifiers.iter().map(AsRef::as_ref)
    }

    /// Validators of one stage, in registration order.
    pub fn validators(&self, stage: ValidatorStage) -> impl Iterator<Item = &dyn Validator> {
        self.validators.iter().map(AsRef::as_ref).filter(move |v| v.stage() == stage)
    }

    /// The check registered for a code.
    pub fn check(&self, code: &str) -> Option<&dyn Check> {
        self.checks.iter().map(AsRef::as_ref).find(|c| c.code() == code)
    }

    /// The resolver of an issue source.
    pub fn resolver(&self, source: &str) -> Option<&Arc<dyn IssueResolver>> {
        self.resolvers.get(source)
    }

    /// Every registered hooks object.
    pub fn hooks(&self) -> impl Iterator<Item = &dyn Hooks> {
        self.hooks.iter().map(AsRef::as_ref)
    }
}

/// The directive handlers a worker runs, one per topic. Kept apart from the service's
/// [`Extensions`] so that a handler can only be registered where a worker looks for it.
///
/// ```
/// use std::sync::Arc;
/// use omniman_core::directive::{Directive, HandlerError, HandlerOutcome};
/// use omniman_core::ext::{DirectiveHandler, HandlerCtx, HandlerRegistry};
///
/// struct Noop;
/// #[async_trait::async_trait]
/// impl DirectiveHandler for Noop {
///     fn topic(&self) -> &str { "noop" }
///     async fn handle(&self, _: &Directive, _: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
///         Ok(HandlerOutcome::done())
///     }
/// }
/// let registry = HandlerRegistry::new().register(Arc::new(Noop)).unwrap();
/// assert_eq!(registry.topics(), ["noop"]);
/// assert!(registry.register(Arc::new(Noop)).is_err(), "one handler per topic");
/// ```
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: HashMap<String, Arc<dyn DirectiveHandler>>,
}

impl fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerRegistry").field("topics", &self.topics()).finish()
    }
}

impl HandlerRegistry {
    /// An empty registry.
    pub fn new() -> HandlerRegistry {
        HandlerRegistry::default()
    }

    /// Adds a handler; a topic may have only one.
    pub fn register(mut self, handler: Arc<dyn DirectiveHandler>) -> Result<HandlerRegistry, DuplicateRegistration> {
        let topic = handler.topic().to_owned();
        if self.handlers.contains_key(&topic) {
            return Err(DuplicateRegistration { kind: "handler topic", key: topic });
        }
        self.handlers.insert(topic, handler);
        Ok(self)
    }

    /// The handler of a topic.
    pub fn handler(&self, topic: &str) -> Option<&Arc<dyn DirectiveHandler>> {
        self.handlers.get(topic)
    }

    /// Every topic with a handler, sorted.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        topics.sort_unstable();
        topics
    }
}
