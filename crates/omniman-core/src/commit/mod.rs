//! The commit decision (docs/reference.md §6) as a pure function producing every row to write.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use crate::channel::Channel;
use crate::context::Ctx;
use crate::data_path::is_reserved_root;
use crate::directive::NewDirective;
use crate::error::{Code, DomainError, ErrorCode, ErrorKind, FieldErrors, Rejection, StoreError, ctx};
use crate::ext::{Extensions, ValidatorStage};
use crate::idempotency::IdempotencyRecord;
use crate::ids::IdGen;
use crate::modify::{ModifyError, ensure_open};
use crate::order::{NewEvent, Order, OrderFlow, OrderItem, StatusTimestamps};
use crate::session::{Precondition, Session, SessionState};

mod outcome;
pub use outcome::{CommitOutcome, CommitReceipt, StoredAnswer};

/// A refused commit.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CommitError {
    /// A session-level refusal (not found, abandoned, `If-Match`, committed without an order…).
    #[error(transparent)]
    Session(#[from] ModifyError),
    /// A required check has no result.
    #[error("check '{check_code}' has not run for this session")]
    MissingCheck {
        /// Check code.
        check_code: String,
    },
    /// A required check ran against an older rev.
    #[error("check '{check_code}' is stale (rev {check_rev} vs {session_rev})")]
    StaleCheck {
        /// Check code.
        check_code: String,
        /// Rev the check saw.
        check_rev: Value,
        /// Current rev.
        session_rev: i64,
    },
    /// A hold of a required check has lapsed.
    #[error("a hold of check '{check_code}' expired at {expires_at}")]
    HoldExpired {
        /// Check code.
        check_code: String,
        /// Expiry as stored.
        expires_at: String,
        /// The hold, when a single hold expired.
        hold_id: Option<Value>,
    },
    /// Blocking issues remain.
    #[error("the session has blocking issues")]
    BlockingIssues {
        /// Those issues.
        issues: Vec<Value>,
    },
    /// No lines.
    #[error("session {session_key} has no items")]
    EmptySession {
        /// The session.
        session_key: String,
    },
    /// A commit validator or check refused.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Another commit with this key is running.
    #[error("a commit with this idempotency key is in progress")]
    InProgress {
        /// The key.
        idempotency_key: String,
    },
    /// The key was used for another session.
    #[error("this idempotency key was used for another session")]
    IdempotencyConflict {
        /// The key.
        idempotency_key: String,
    },
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CommitError {
    /// A shape error on the request.
    pub fn validation(errors: FieldErrors) -> CommitError {
        CommitError::Session(ModifyError::Validation(errors))
    }
}

impl DomainError for CommitError {
    fn code(&self) -> ErrorCode<'_> {
        match self {
            CommitError::Session(e) => e.code(),
            CommitError::MissingCheck { .. } => Code::MissingCheck.into(),
            CommitError::StaleCheck { .. } => Code::StaleCheck.into(),
            CommitError::HoldExpired { .. } => Code::HoldExpired.into(),
            CommitError::BlockingIssues { .. } => Code::BlockingIssues.into(),
            CommitError::EmptySession { .. } => Code::EmptySession.into(),
            CommitError::Rejected(e) => e.code(),
            CommitError::InProgress { .. } => Code::InProgress.into(),
            CommitError::IdempotencyConflict { .. } => Code::IdempotencyConflict.into(),
            CommitError::Store(e) => e.code(),
        }
    }

    fn context(&self) -> Map<String, Value> {
        match self {
            CommitError::Session(e) => e.context(),
            CommitError::MissingCheck { check_code } => ctx([("check_code", check_code.as_str().into())]),
            CommitError::StaleCheck { check_code, check_rev, session_rev } => ctx([
                ("check_code", check_code.as_str().into()),
                ("check_rev", check_rev.clone()),
                ("session_rev", (*session_rev).into()),
            ]),
            CommitError::HoldExpired { check_code, expires_at, hold_id } => {
                let mut c =
                    ctx([("check_code", check_code.as_str().into()), ("expires_at", expires_at.as_str().into())]);
                if let Some(hold_id) = hold_id {
                    c.insert("hold_id".into(), hold_id.clone());
                }
                c
            }
            CommitError::BlockingIssues { issues } => ctx([("issues", issues.clone().into())]),
            CommitError::EmptySession { session_key } => ctx([("session_key", session_key.as_str().into())]),
            CommitError::Rejected(e) => e.context(),
            CommitError::InProgress { idempotency_key } | CommitError::IdempotencyConflict { idempotency_key } => {
                ctx([("idempotency_key", idempotency_key.as_str().into())])
            }
            CommitError::Store(e) => e.context(),
        }
    }

    // A rejection may carry a family of its own; the code alone would not tell it.
    fn kind(&self) -> ErrorKind {
        match self {
            CommitError::Session(e) => e.kind(),
            CommitError::Rejected(e) => e.kind(),
            _ => self.code().kind(),
        }
    }
}

/// Server-wide commit settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitSettings {
    /// Default ISO 4217 currency of channels without `config.currency` (default `BRL`).
    pub currency: String,
    /// Time zone that dates order refs and pre-orders.
    pub business_tz: Tz,
    /// Whether pre-orders get a `notification.send` reminder the day before.
    pub preorder_reminders: bool,
}

impl Default for CommitSettings {
    fn default() -> CommitSettings {
        CommitSettings { currency: "BRL".into(), business_tz: Tz::UTC, preorder_reminders: true }
    }
}

/// Every row a commit writes, in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitPlan {
    /// The order to insert (id 0; the store assigns it).
    pub order: Order,
    /// The `created` event.
    pub event: NewEvent,
    /// The session as it becomes (`committed`).
    pub session: Session,
    /// The write is conditional on the session still being at this version and open.
    pub expected_version: i64,
    /// Post-commit directives.
    pub directives: Vec<NewDirective>,
    /// Idempotency scope (`commit:<channel>`).
    pub idempotency_scope: String,
    /// Idempotency key.
    pub idempotency_key: String,
    /// Decision time.
    pub now: DateTime<Utc>,
}

impl CommitPlan {
    /// The outcome once the store has assigned the order's id.
    pub fn outcome(&self, order_id: i64) -> CommitOutcome {
        CommitOutcome::Committed(CommitReceipt { order_id, ..CommitReceipt::of(&self.order) })
    }

    /// The `done` record the store writes in the commit transaction.
    pub fn idempotency_record(&self, order_id: i64) -> IdempotencyRecord {
        self.outcome(order_id).record(
            self.idempotency_scope.clone(),
            self.idempotency_key.clone(),
            &self.session.session_key,
            self.now,
        )
    }
}

/// Parses an ISO-8601 instant; no offset means UTC.
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(|d| d.and_time(NaiveTime::MIN)))
        .map(|n| n.and_utc())
}

fn expired(value: Option<&Value>, now: DateTime<Utc>) -> Option<String> {
    let raw = value?.as_str()?;
    let at = parse_instant(raw)?;
    (at <= now).then(|| raw.to_owned())
}

/// JSON truthiness, as the original evaluated `blocking`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Step 5: every required check present, fresh and unexpired.
fn verify_checks(
    session: &Session,
    channel: &Channel,
    ext: &Extensions,
    now: DateTime<Utc>,
) -> Result<(), CommitError> {
    let empty = Map::new();
    let checks = session.checks().unwrap_or(&empty);
    for code in &channel.config.required_checks_on_commit {
        let Some(entry) = checks.get(code) else {
            return Err(CommitError::MissingCheck { check_code: code.clone() });
        };
        let check_rev = entry.get("rev").cloned().unwrap_or(Value::Null);
        if check_rev.as_i64() != Some(session.rev) {
            return Err(CommitError::StaleCheck { check_code: code.clone(), check_rev, session_rev: session.rev });
        }
        let result = entry.get("result");
        if let Some(expires_at) = expired(result.and_then(|r| r.get("hold_expires_at")), now) {
            return Err(CommitError::HoldExpired { check_code: code.clone(), expires_at, hold_id: None });
        }
        let holds = result.and_then(|r| r.get("holds")).and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        for hold in holds {
            if let Some(expires_at) = expired(hold.get("expires_at"), now) {
                return Err(CommitError::HoldExpired {
                    check_code: code.clone(),
                    expires_at,
                    hold_id: Some(hold.get("hold_id").cloned().unwrap_or(Value::Null)),
                });
            }
        }
        if let Some(check) = ext.check(code) {
            check.validate(channel, session, entry, now)?;
        }
    }
    Ok(())
}

/// `order.data`: every root of the session's `data` except the reserved ones (`checks`, `issues`,
/// …), or only the roots the channel lists in `order_data_keys`; plus `is_preorder` when
/// `delivery_date` is an ISO date (shopman's pre-order rule). Returns the pre-order's date.
fn order_data(session: &Session, channel: &Channel, today: NaiveDate) -> (Map<String, Value>, Option<NaiveDate>) {
    let wanted = |root: &str| match &channel.config.order_data_keys {
        Some(keys) => keys.iter().any(|k| k == root),
        None => true,
    };
    let mut data: Map<String, Value> = session
        .data
        .iter()
        .filter(|(root, _)| !is_reserved_root(root) && wanted(root))
        .map(|(root, value)| (root.clone(), value.clone()))
        .collect();
    let delivery = session
        .data
        .get("delivery_date")
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
    let mut preorder = None;
    if let Some(date) = delivery {
        data.insert("is_preorder".into(), (date > today).into());
        preorder = (date > today).then_some(date);
    }
    (data, preorder)
}

/// The currency of a channel's money: its `config.currency`, else the server's default.
///
/// ```
/// use omniman_core::commit::{CommitSettings, channel_currency};
/// let mut channel = omniman_core::testing::channel("pos");
/// let settings = CommitSettings { currency: "EUR".into(), ..CommitSettings::default() };
/// assert_eq!(channel_currency(&channel, &settings), "EUR");
/// channel.config = serde_json::from_value(serde_json::json!({"currency": "USD"})).unwrap();
/// assert_eq!(channel_currency(&channel, &settings), "USD");
/// ```
pub fn channel_currency<'a>(channel: &'a Channel, settings: &'a CommitSettings) -> &'a str {
    channel.config.currency.as_deref().unwrap_or(&settings.currency)
}

/// An order's currency: the one its session was opened in, else the channel's.
fn order_currency(session: &Session, channel: &Channel, settings: &CommitSettings) -> String {
    session.currency().unwrap_or_else(|| channel_currency(channel, settings)).to_owned()
}

fn preorder_reminder(order: &Order, session: &Session, delivery: NaiveDate, tz: Tz) -> NewDirective {
    let customer_name = session
        .data
        .get("customer")
        .and_then(|c| c.get("name"))
        .or_else(|| session.data.get("customer_name"))
        .cloned()
        .unwrap_or(Value::from(""));
    let items_summary = order
        .items
        .iter()
        .take(5)
        .map(|i| {
            let label = if i.name.is_empty() { &i.sku } else { &i.name };
            let qty = i.qty.to_string();
            let qty = qty.trim_end_matches('0').trim_end_matches('.');
            format!("{qty}x {label}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let nine_am =
        delivery.pred_opt().unwrap_or(delivery).and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN));
    let available_at =
        tz.from_local_datetime(&nine_am).earliest().map_or_else(|| nine_am.and_utc(), |t| t.with_timezone(&Utc));
    let payload = ctx([
        ("order_ref", order.reference.as_str().into()),
        ("template", "preorder_reminder".into()),
        (
            "context",
            json!({
                "customer_name": customer_name,
                "delivery_date": delivery.format("%Y-%m-%d").to_string(),
                "delivery_time_slot": session.data.get("delivery_time_slot").cloned().unwrap_or(Value::Null),
                "items_summary": items_summary,
                "fulfillment_type": session.data.get("fulfillment_type").cloned().unwrap_or(Value::from("pickup")),
            }),
        ),
    ]);
    NewDirective { topic: "notification.send".into(), payload, available_at }
}

/// Decides a commit of an open session (docs/reference.md §6 steps 3–12): state, `If-Match`, checks, issues,
/// commit validators, emptiness, then the order, its event, the session change and directives.
///
/// The caller has already applied the idempotency decision and handled a committed session.
///
/// `session` is a `Session` or a `&Session`. Given by value (as the service does with the session
/// it has just loaded), it becomes the plan's committed session without a copy; a borrowed one is
/// copied once.
///
/// ```
/// use omniman_core::commit::{CommitSettings, plan_commit};
/// use omniman_core::prelude::*;
/// let channel = omniman_core::testing::channel("pos");
/// let mut session = omniman_core::testing::session(&channel, "S1");
/// let ops = Op::parse_batch(&serde_json::json!([{"op": "add_line", "sku": "TEA", "qty": 2, "unit_price_q": 300}])).unwrap();
/// let ctx = Ctx::new(Caller::internal("test"), chrono::Utc::now());
/// let (ext, settings, mut ids) = (Extensions::default(), CommitSettings::default(), RandomIds::seeded(1));
/// session = apply_ops(session, &channel, &ops, None, &ext, &ctx, &mut ids).unwrap().session;
/// let version = session.version;
/// let plan = plan_commit(session, &channel, "k-1", None, &ext, &settings, &ctx, &mut ids).unwrap();
/// assert_eq!((plan.order.total_q, plan.order.status.as_str()), (600, "new"));
/// assert_eq!((plan.expected_version, plan.session.version), (version, version + 1));
/// assert_eq!(plan.session.state, SessionState::Committed);
/// ```
#[expect(clippy::too_many_arguments)] // each is a distinct input of the decision
pub fn plan_commit<'s>(
    session: impl Into<Cow<'s, Session>>,
    channel: &Channel,
    idempotency_key: &str,
    precondition: Option<&Precondition>,
    ext: &Extensions,
    settings: &CommitSettings,
    ctx: &Ctx,
    ids: &mut dyn IdGen,
) -> Result<CommitPlan, CommitError> {
    decide_commit(session.into(), channel, idempotency_key, precondition, ext, settings, ctx, ids)
}

#[expect(clippy::too_many_arguments)] // see `plan_commit`
fn decide_commit(
    session: Cow<'_, Session>,
    channel: &Channel,
    idempotency_key: &str,
    precondition: Option<&Precondition>,
    ext: &Extensions,
    settings: &CommitSettings,
    ctx: &Ctx,
    ids: &mut dyn IdGen,
) -> Result<CommitPlan, CommitError> {
    let now = ctx.now;
    ensure_open(&session)?;
    if let Some(pre) = precondition {
        pre.check(&session)?;
    }
    verify_checks(&session, channel, ext, now)?;
    let blocking: Vec<Value> =
        session.issues().iter().filter(|i| i.get("blocking").is_some_and(truthy)).cloned().collect();
    if !blocking.is_empty() {
        return Err(CommitError::BlockingIssues { issues: blocking });
    }
    for validator in ext.validators(ValidatorStage::Commit).filter(|v| channel.config.allows_validator(v.code())) {
        validator.validate(channel, &session, ctx)?;
    }
    if session.items.is_empty() {
        return Err(CommitError::EmptySession { session_key: session.session_key.clone() });
    }
    session.check_amounts()?;

    let today = now.with_timezone(&settings.business_tz).date_naive();
    let status = OrderFlow::for_channel(channel).initial_status().to_owned();
    let mut timestamps = StatusTimestamps::default();
    timestamps.enter(&status, now);
    let items: Vec<OrderItem> = session.items.iter().map(OrderItem::from).collect();
    let (data, preorder) = order_data(&session, channel, today);
    let order = Order {
        id: 0,
        reference: ids.order_ref(today),
        channel_id: channel.id,
        channel_code: channel.code.clone(),
        session_key: session.session_key.clone(),
        handle_type: session.handle_type.clone(),
        handle_ref: session.handle_ref.clone(),
        external_ref: None,
        status,
        snapshot: snapshot(&session),
        data,
        currency: order_currency(&session, channel, settings),
        total_q: session.total_q(),
        items,
        created_at: now,
        updated_at: now,
        timestamps,
    };
    let event = NewEvent {
        event_type: "created".into(),
        actor: ctx.actor().to_owned(),
        payload: ctx_map([("from_session", session.session_key.as_str().into())]),
        created_at: now,
    };

    // Read in place; each `stock.commit` payload gets its own copy.
    let holds = session
        .data
        .get("checks")
        .and_then(|c| c.get("stock"))
        .and_then(|s| s.get("result"))
        .and_then(|r| r.get("holds"))
        .filter(|h| h.as_array().is_some_and(|a| !a.is_empty()));
    let mut directives: Vec<NewDirective> = channel
        .config
        .post_commit_directives
        .iter()
        .map(|topic| {
            let mut payload = ctx_map([
                ("order_ref", order.reference.as_str().into()),
                ("channel_code", channel.code.as_str().into()),
                ("session_key", session.session_key.as_str().into()),
            ]);
            if topic == "stock.commit" {
                if let Some(holds) = holds {
                    payload.insert("holds".into(), holds.clone());
                }
            }
            NewDirective { topic: topic.clone(), payload, available_at: now }
        })
        .collect();
    if let (Some(delivery), true) = (preorder, settings.preorder_reminders) {
        directives.push(preorder_reminder(&order, &session, delivery, settings.business_tz));
    }

    let expected_version = session.version;
    let mut committed = session.into_owned();
    committed.state = SessionState::Committed;
    committed.committed_at = Some(now);
    committed.commit_token = Some(idempotency_key.to_owned());
    committed.version += 1;
    committed.updated_at = now;

    Ok(CommitPlan {
        order,
        event,
        session: committed,
        expected_version,
        directives,
        idempotency_scope: crate::idempotency::commit_scope(&channel.code),
        idempotency_key: idempotency_key.to_owned(),
        now,
    })
}

/// `order.snapshot`: `{"_v": 1, "items", "data", "pricing", "rev"}`, the session as committed.
/// Built directly rather than through `json!`, which would re-serialise `data` and `pricing`.
fn snapshot(session: &Session) -> Value {
    let mut snapshot = Map::with_capacity(5);
    snapshot.insert("_v".into(), 1.into());
    snapshot.insert("items".into(), session.items_json());
    snapshot.insert("data".into(), Value::Object(session.data.clone()));
    snapshot.insert("pricing".into(), Value::Object(session.pricing.clone()));
    snapshot.insert("rev".into(), session.rev.into());
    Value::Object(snapshot)
}

fn ctx_map<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    ctx(pairs)
}
