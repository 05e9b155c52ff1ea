//! The modify pipeline (docs/reference.md §5) as a pure function, plus session-level refusals shared with
//! commit, abandon and resolve.

use serde_json::{Map, Value};

use crate::channel::{Channel, EditPolicy};
use crate::context::Ctx;
use crate::directive::NewDirective;
use crate::error::{Code, DomainError, ErrorCode, ErrorKind, FieldErrors, Rejection, StoreError, ctx};
use crate::ext::{Extensions, ValidatorStage};
use crate::fields::{FieldReader, MAX_DATA_BYTES, MAX_META_BYTES, check_json_object};
use crate::ids::IdGen;
use crate::ops::{Op, OpApplier, OpError};
use crate::session::{MAX_LINES_PER_SESSION, Precondition, Session, SessionState, set_key};

/// A refused modify, or a session-level refusal of another operation (lookup, abandon).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModifyError {
    /// The batch's shape is wrong.
    #[error("{0}")]
    Validation(FieldErrors),
    /// The request names a channel that does not exist.
    #[error("there is no channel '{channel_code}'")]
    UnknownChannel {
        /// The code asked for.
        channel_code: String,
    },
    /// No such session.
    #[error("session {session_key} not found")]
    SessionNotFound {
        /// The key asked for.
        session_key: String,
    },
    /// The key exists in several channels and no `channel_code` was given.
    #[error("session key {session_key} exists in several channels: give channel_code")]
    ChannelCodeRequired {
        /// The key asked for.
        session_key: String,
    },
    /// `If-Match` failed.
    #[error("the session changed: expected {expected}, it is at rev {current_rev} version {current_version}")]
    PreconditionFailed {
        /// The `If-Match` value as sent.
        expected: String,
        /// Current rev.
        current_rev: i64,
        /// Current version.
        current_version: i64,
    },
    /// Already sealed into an order.
    #[error("session {session_key} is already committed")]
    AlreadyCommitted {
        /// The session.
        session_key: String,
    },
    /// Given up.
    #[error("session {session_key} was abandoned")]
    AlreadyAbandoned {
        /// The session.
        session_key: String,
    },
    /// The channel's orders arrive ready from an external platform.
    #[error("Orders from {channel} arrive ready from an external platform and cannot be edited here.")]
    Locked {
        /// The session.
        session_key: String,
        /// The channel's display name.
        channel: String,
    },
    /// An op could not be applied.
    #[error(transparent)]
    Op(#[from] OpError),
    /// A modifier or draft validator refused.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for ModifyError {
    fn code(&self) -> ErrorCode<'_> {
        match self {
            ModifyError::Validation(_) => Code::ValidationError.into(),
            ModifyError::UnknownChannel { .. } => Code::UnknownChannel.into(),
            ModifyError::SessionNotFound { .. } => Code::SessionNotFound.into(),
            ModifyError::ChannelCodeRequired { .. } => Code::ChannelCodeRequired.into(),
            ModifyError::PreconditionFailed { .. } => Code::PreconditionFailed.into(),
            ModifyError::AlreadyCommitted { .. } => Code::AlreadyCommitted.into(),
            ModifyError::AlreadyAbandoned { .. } => Code::AlreadyAbandoned.into(),
            ModifyError::Locked { .. } => Code::Locked.into(),
            ModifyError::Op(e) => e.code(),
            ModifyError::Rejected(e) => e.code(),
            ModifyError::Store(e) => e.code(),
        }
    }

    fn context(&self) -> Map<String, Value> {
        match self {
            ModifyError::Validation(f) => f.to_context(),
            ModifyError::UnknownChannel { channel_code } => ctx([("channel_code", channel_code.as_str().into())]),
            ModifyError::SessionNotFound { session_key }
            | ModifyError::ChannelCodeRequired { session_key }
            | ModifyError::AlreadyCommitted { session_key }
            | ModifyError::AlreadyAbandoned { session_key } => ctx([("session_key", session_key.as_str().into())]),
            ModifyError::PreconditionFailed { expected, current_rev, current_version } => ctx([
                ("expected", expected.as_str().into()),
                ("current_rev", (*current_rev).into()),
                ("current_version", (*current_version).into()),
            ]),
            ModifyError::Locked { session_key, channel } => ctx([
                ("session_key", session_key.as_str().into()),
                ("channel", channel.as_str().into()),
                ("edit_policy", EditPolicy::Locked.as_str().into()),
            ]),
            ModifyError::Op(e) => e.context(),
            ModifyError::Rejected(e) => e.context(),
            ModifyError::Store(e) => e.context(),
        }
    }

    // A rejection may carry a family of its own; the code alone would not tell it.
    fn kind(&self) -> ErrorKind {
        match self {
            ModifyError::Rejected(e) => e.kind(),
            _ => self.code().kind(),
        }
    }
}

impl ModifyError {
    /// `precondition_failed` for `session`.
    pub fn precondition(pre: &Precondition, session: &Session) -> ModifyError {
        ModifyError::PreconditionFailed {
            expected: pre.expected(),
            current_rev: session.rev,
            current_version: session.version,
        }
    }
}

impl Precondition {
    /// `precondition_failed` unless the session matches (an `If-Match` the client sent).
    pub fn check(&self, session: &Session) -> Result<(), ModifyError> {
        if self.matches(session) { Ok(()) } else { Err(ModifyError::precondition(self, session)) }
    }
}

/// Refuses a session that is not open (`already_committed` / `already_abandoned`).
pub fn ensure_open(session: &Session) -> Result<(), ModifyError> {
    match session.state {
        SessionState::Open => Ok(()),
        SessionState::Committed => Err(ModifyError::AlreadyCommitted { session_key: session.session_key.clone() }),
        SessionState::Abandoned => Err(ModifyError::AlreadyAbandoned { session_key: session.session_key.clone() }),
    }
}

/// What a successful modify writes: the new session and the directives to enqueue with it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModifyOutcome {
    /// The session after the batch (rev and version raised).
    pub session: Session,
    /// One check directive per check code.
    pub directives: Vec<NewDirective>,
}

/// Runs docs/reference.md §5 steps 3–12 on `session`: precondition, state, policy, ops, modifiers, draft
/// validators, normalisation, rev bump and check directives.
///
/// The session is taken by value and becomes the outcome's session, so nothing is copied; the
/// service hands over the session it has just loaded. The precondition, state and policy are
/// judged before anything changes. When an op, modifier or validator refuses, the half-changed
/// draft is dropped: callers that must keep their session pass a clone.
///
/// ```
/// use omniman_core::prelude::*;
/// let channel = omniman_core::testing::channel("pos");
/// let session = omniman_core::testing::session(&channel, "S1");
/// let ops = Op::parse_batch(&serde_json::json!([{"op": "add_line", "sku": "TEA", "qty": 2, "unit_price_q": 300}])).unwrap();
/// let ctx = Ctx::new(Caller::internal("test"), chrono::Utc::now());
/// let out = apply_ops(session, &channel, &ops, None, &Extensions::default(), &ctx, &mut RandomIds::seeded(1)).unwrap();
/// assert_eq!(out.session.rev, 1);
/// assert_eq!(out.session.total_q(), 600);
/// ```
pub fn apply_ops(
    session: Session,
    channel: &Channel,
    ops: &[Op],
    precondition: Option<&Precondition>,
    ext: &Extensions,
    ctx: &Ctx,
    ids: &mut dyn IdGen,
) -> Result<ModifyOutcome, ModifyError> {
    if let Some(pre) = precondition {
        pre.check(&session)?;
    }
    ensure_open(&session)?;
    if session.edit_policy == EditPolicy::Locked {
        return Err(ModifyError::Locked {
            session_key: session.session_key,
            channel: channel.display_name().to_owned(),
        });
    }
    let mut draft = session;
    apply_to_draft(&mut draft, channel, ops, ext, ctx, ids)?;
    let directives = check_directives(&draft, channel, ext, ctx);
    Ok(ModifyOutcome { session: draft, directives })
}

/// Steps 6–10 on a draft the caller owns (shared with the import path, which skips the policy).
fn apply_to_draft(
    draft: &mut Session,
    channel: &Channel,
    ops: &[Op],
    ext: &Extensions,
    ctx: &Ctx,
    ids: &mut dyn IdGen,
) -> Result<(), ModifyError> {
    let lines_before = draft.items.len();
    let mut applier = OpApplier { session: draft, ids, path_rules: &ctx.caller.path_rules };
    for (index, op) in ops.iter().enumerate() {
        applier.apply(index, op)?;
    }
    for modifier in ext.modifiers().filter(|m| channel.config.allows_modifier(m.code())) {
        modifier.apply(channel, draft, ctx)?;
    }
    for validator in ext.validators(ValidatorStage::Draft).filter(|v| channel.config.allows_validator(v.code())) {
        validator.validate(channel, draft, ctx)?;
    }
    let lines = draft.items.len();
    if lines > MAX_LINES_PER_SESSION && lines > lines_before {
        let message = format!("would leave {lines} lines; a session holds at most {MAX_LINES_PER_SESSION}");
        return Err(ModifyError::Validation(FieldErrors::one("ops", message)));
    }

    normalize(draft);
    draft.check_amounts()?;
    draft.rev += 1;
    draft.version += 1;
    draft.updated_at = ctx.now;
    set_key(&mut draft.data, "checks", Value::Object(Map::new()));
    set_key(&mut draft.data, "issues", Value::Array(Vec::new()));
    // Each `set_data` value is bounded when parsed; together they must not outgrow `data`
    // (measured with `checks` and `issues` emptied, as stored).
    if ops.iter().any(|op| matches!(op, Op::SetData { .. })) {
        if let Err(problem) = check_json_object(&draft.data, MAX_DATA_BYTES) {
            let message = format!("would leave a session `data` that {problem}");
            return Err(ModifyError::Validation(FieldErrors::one("ops", message)));
        }
    }
    Ok(())
}

/// Step 9: unset price → 0, missing total → computed, absent meta stays `{}`.
fn normalize(session: &mut Session) {
    for item in &mut session.items {
        item.unit_price_q.get_or_insert(0);
        if item.line_total_q.is_none() {
            // Still `None` when beyond `i64`: left to `check_amounts`, which refuses it.
            item.reprice();
        }
    }
}

/// Step 12: one directive per check code, payload `{session_key, channel_code, rev, items}`.
fn check_directives(session: &Session, channel: &Channel, ext: &Extensions, ctx: &Ctx) -> Vec<NewDirective> {
    let codes = channel.config.modify_check_codes();
    let Some((&last, others)) = codes.split_last() else {
        return Vec::new();
    };
    let directive = |code: &str, items: Value| {
        let topic = channel
            .config
            .check_topic(code)
            .map(str::to_owned)
            .or_else(|| ext.check(code).map(|c| c.topic().to_owned()))
            .unwrap_or_else(|| format!("{code}.hold"));
        NewDirective { topic, payload: ctx_payload(session, items), available_at: ctx.now }
    };
    // The items are built once; every code but the last gets a copy, the last gets them.
    let items = session.items_json();
    let mut directives = Vec::with_capacity(codes.len());
    directives.extend(others.iter().map(|code| directive(code, items.clone())));
    directives.push(directive(last, items));
    directives
}

fn ctx_payload(session: &Session, items: Value) -> Map<String, Value> {
    ctx([
        ("session_key", session.session_key.as_str().into()),
        ("channel_code", session.channel_code.as_str().into()),
        ("rev", session.rev.into()),
        ("items", items),
    ])
}

/// The import path (docs/reference.md §5, Import): builds a session's lines and data as an importer gives them,
/// ignoring the edit policy, then runs modifiers, import validators and normalisation. No check
/// directives are produced: the platform already validated the order.
pub fn prepare_import(
    mut session: Session,
    channel: &Channel,
    items: Vec<crate::session::Item>,
    data: Option<Map<String, Value>>,
    ext: &Extensions,
    ctx: &Ctx,
    ids: &mut dyn IdGen,
) -> Result<Session, ModifyError> {
    if items.len() > MAX_LINES_PER_SESSION {
        let message = format!("holds {} lines; a session holds at most {MAX_LINES_PER_SESSION}", items.len());
        return Err(ModifyError::Validation(FieldErrors::one("items", message)));
    }
    for mut item in items {
        if item.line_id.is_empty() || session.line(&item.line_id).is_some() {
            item.line_id = ids.line_id();
        }
        if item.line_total_q.is_none() {
            item.reprice();
        }
        session.items.push(item);
    }
    for modifier in ext.modifiers().filter(|m| channel.config.allows_modifier(m.code())) {
        modifier.apply(channel, &mut session, ctx)?;
    }
    for validator in ext.validators(ValidatorStage::Import).filter(|v| channel.config.allows_validator(v.code())) {
        validator.validate(channel, &session, ctx)?;
    }
    normalize(&mut session);
    session.check_amounts()?;
    if let Some(data) = data {
        session.data = data;
    }
    Ok(session)
}

/// Shape-checks the `items` of an import (a JSON list), reporting every problem with its path
/// (`items[2].qty`). Lines may carry `line_id`, `name`, `unit_price_q`, `line_total_q` and `meta`.
///
/// ```
/// use omniman_core::modify::parse_import_items;
/// let items = parse_import_items(&serde_json::json!([{"sku": "X", "qty": "2", "unit_price_q": 500}])).unwrap();
/// assert_eq!(items[0].qty.millis(), 2000);
/// let errors = parse_import_items(&serde_json::json!([{"qty": 0}])).unwrap_err();
/// assert!(errors.0.contains_key("items[0].sku") && errors.0.contains_key("items[0].qty"));
/// ```
pub fn parse_import_items(value: &Value) -> Result<Vec<crate::session::Item>, FieldErrors> {
    let Value::Array(list) = value else {
        return Err(FieldErrors::one("items", "must be a list of items"));
    };
    let mut errors = FieldErrors::default();
    let mut items = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let Value::Object(fields) = entry else {
            errors.add(format!("items[{i}]"), "must be an object");
            continue;
        };
        let mut f = FieldReader::at(format!("items[{i}]"), fields);
        let line_id = f.string("line_id", 64).unwrap_or_default();
        let sku = f.non_empty("sku", 64);
        let name = f.string("name", 200).unwrap_or_default();
        let qty = match f.raw("qty").map(crate::money::Qty::from_json) {
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                f.error("qty", e.to_string());
                None
            }
            None => {
                f.error("qty", "this field is required");
                None
            }
        };
        let unit_price_q = f.integer("unit_price_q");
        let line_total_q = f.integer("line_total_q");
        let meta = f.bounded_object("meta", MAX_META_BYTES).cloned().unwrap_or_default();
        match (f.finish(), qty) {
            (Ok(()), Some(qty)) => {
                items.push(crate::session::Item { line_id, sku, name, qty, unit_price_q, line_total_q, meta });
            }
            (result, _) => errors.merge(result.err().unwrap_or_default()),
        }
    }
    errors.into_result().map(|()| items)
}
