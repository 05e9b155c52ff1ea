//! `Omniman<S>`: the application service an embedding Rust program (or the HTTP adapter) calls.
//!
//! Every operation follows docs/architecture.md, "Concurrency": read, decide with the pure core, write once,
//! conditionally on what was read. A lost race re-reads from the store and decides again, a
//! bounded number of times; no lock is held while deciding.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::checks::{ResolveError, write_check_result};
use crate::clock::{Clock, SystemClock};
use crate::commit::{
    CommitError, CommitOutcome, CommitReceipt, CommitSettings, StoredAnswer, channel_currency, plan_commit,
};
use crate::context::{Caller, Ctx};
use crate::error::{Code, DomainError, ErrorCode, ErrorKind, FieldErrors, StoreError, ctx};
use crate::ext::{Extensions, ResolverFailure};
use crate::idempotency::{IdempotencyDecision, commit_scope, decide};
use crate::ids::{IdGen, RandomIds};
use crate::input::{ChannelCode, HandleRef, HandleType, IdempotencyKey, SessionKey, SessionRef};
use crate::modify::{ModifyError, apply_ops, prepare_import};
use crate::ops::Op;
use crate::order::Order;
use crate::ports::{CommitWrite, InsertSession, Store};
use crate::session::{Precondition, Session, SessionState};

mod reads;

pub use reads::ReadError;

/// What a lookup of a session by channel and key did not find.
enum Missing {
    Channel,
    Session,
}

/// Whether a session read must be current (what a client is shown) or may come from a cache
/// (what a conditional write starts from).
#[derive(Clone, Copy)]
enum Freshness {
    Current,
    MayBeStale,
}

/// How many times a lost compare-and-set is retried before giving up with `Contention`.
const MAX_ATTEMPTS: usize = 200;

/// Runs `$attempt`, a block that evaluates to `Some(answer)` once its write went through and to
/// `None` when a compare-and-set lost to a concurrent writer (so it must read again), at most
/// [`MAX_ATTEMPTS`] times, then gives up with `Contention` naming `$what`. Inside the block, `?`
/// and `return` leave the calling method. (A macro rather than a function taking an async
/// closure: the futures it builds must stay `Send` for any caller.)
macro_rules! until_written {
    ($what:expr, $attempt:block) => {{
        for _ in 0..MAX_ATTEMPTS {
            if let Some(done) = $attempt {
                return Ok(done);
            }
        }
        Err(StoreError::Contention($what).into())
    }};
}

mod directives;
mod manage;
mod orders;
mod webhooks;

pub use directives::RetryError;
pub use manage::{ChannelChange, IssueToken, MAX_TOKEN_NAME_CHARS, ManageError};
pub use orders::Transitioned;

/// A request to open a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSession {
    /// The channel.
    pub channel_code: ChannelCode,
    /// Client-chosen key; generated when absent.
    pub session_key: Option<SessionKey>,
    /// What the handle is (`table`…).
    pub handle_type: Option<HandleType>,
    /// Which one (`12`…). With `handle_type`, at most one open session holds it.
    pub handle_ref: Option<HandleRef>,
}

impl OpenSession {
    /// A session on `channel` with a generated key and no handle.
    pub fn on(channel_code: ChannelCode) -> OpenSession {
        OpenSession { channel_code, session_key: None, handle_type: None, handle_ref: None }
    }
}

/// A session to import: where it goes, its lines and its data.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportSession {
    /// Channel, key and handles, as for an open.
    pub open: OpenSession,
    /// Lines as the platform sent them (see [`crate::modify::parse_import_items`]).
    pub items: Vec<crate::session::Item>,
    /// Data stored as given; `{"checks":{},"issues":[]}` when absent.
    pub data: Option<Map<String, Value>>,
}

/// A refused open or import.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OpenError {
    /// Bad key or handle.
    #[error("{0}")]
    Validation(FieldErrors),
    /// The request names a channel that does not exist.
    #[error("there is no channel '{channel_code}'")]
    UnknownChannel {
        /// The code.
        channel_code: String,
    },
    /// The channel does not accept new sessions.
    #[error("channel '{channel_code}' is inactive")]
    ChannelInactive {
        /// The code.
        channel_code: String,
    },
    /// The client-chosen key is taken.
    #[error("session '{session_key}' already exists")]
    SessionExists {
        /// The key.
        session_key: String,
    },
    /// An import validator or modifier refused.
    #[error(transparent)]
    Rejected(#[from] crate::error::Rejection),
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for OpenError {
    fn code(&self) -> ErrorCode<'_> {
        match self {
            OpenError::Validation(_) => Code::ValidationError.into(),
            OpenError::UnknownChannel { .. } => Code::UnknownChannel.into(),
            OpenError::ChannelInactive { .. } => Code::ChannelInactive.into(),
            OpenError::SessionExists { .. } => Code::SessionExists.into(),
            OpenError::Rejected(e) => e.code(),
            OpenError::Store(e) => e.code(),
        }
    }

    fn context(&self) -> Map<String, Value> {
        match self {
            OpenError::Validation(f) => f.to_context(),
            OpenError::UnknownChannel { channel_code } | OpenError::ChannelInactive { channel_code } => {
                ctx([("channel_code", channel_code.as_str().into())])
            }
            OpenError::SessionExists { session_key } => ctx([("session_key", session_key.as_str().into())]),
            OpenError::Rejected(e) => e.context(),
            OpenError::Store(e) => e.context(),
        }
    }

    // A rejection may carry a family of its own; the code alone would not tell it.
    fn kind(&self) -> ErrorKind {
        match self {
            OpenError::Rejected(e) => e.kind(),
            _ => self.code().kind(),
        }
    }
}

/// An opened session, and whether it is new (201) or an open one holding the handle (200).
#[derive(Clone, Debug, PartialEq)]
pub struct Opened {
    /// The session.
    pub session: Session,
    /// `false` when an open session already held both handle values.
    pub created: bool,
}

/// The application service, generic over its store: every call reads, decides with the pure
/// core and writes once, conditionally. The crate's front page shows it end to end.
///
/// ```
/// use omniman_core::prelude::*;
/// use omniman_core::memory::InMemoryStore;
/// # futures_executor::block_on(async {
/// let store = InMemoryStore::new();
/// store.put_channel(omniman_core::testing::channel("pos"));
/// let hub = Omniman::new(store, Extensions::default());
/// let caller = Caller::external("till-1");
/// let opened = hub.open_session(OpenSession::on(ChannelCode::parse("pos").unwrap()), &caller).await.unwrap();
/// let at = SessionRef::parse("pos", &opened.session.session_key).unwrap();
/// let ops = Op::parse_batch(&serde_json::json!([{"op": "add_line", "sku": "TEA", "qty": 2, "unit_price_q": 300}])).unwrap();
/// hub.modify(&at, &ops, None, &caller).await.unwrap();
/// let outcome = hub.commit(&at, Some(&IdempotencyKey::parse("k-1").unwrap()), None, &caller).await.unwrap();
/// assert_eq!(outcome.http_status(), 201);
/// assert_eq!(outcome.receipt().unwrap().total_q, 600);
/// # });
/// ```
pub struct Omniman<S> {
    store: S,
    ext: Arc<Extensions>,
    clock: Arc<dyn Clock>,
    ids: Mutex<Box<dyn IdGen>>,
    settings: CommitSettings,
}

impl<S> std::fmt::Debug for Omniman<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Omniman").field("ext", &self.ext).field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Runs a hook, containing any panic: hooks are best-effort and never alter an answer.
fn run_hook(name: &str, hook: impl FnOnce()) {
    if std::panic::catch_unwind(AssertUnwindSafe(hook)).is_err() {
        tracing::error!(hook = name, "hook panicked; ignored");
    }
}

impl<S: Store> Omniman<S> {
    /// A service with the system clock, OS-seeded ids and default settings.
    pub fn new(store: S, ext: Extensions) -> Omniman<S> {
        Omniman {
            store,
            ext: Arc::new(ext),
            clock: Arc::new(SystemClock),
            ids: Mutex::new(Box::new(RandomIds::from_entropy())),
            settings: CommitSettings::default(),
        }
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Omniman<S> {
        self.clock = clock;
        self
    }

    /// Replaces the id generator.
    pub fn with_ids(mut self, ids: Box<dyn IdGen>) -> Omniman<S> {
        self.ids = Mutex::new(ids);
        self
    }

    /// Replaces the commit settings (currency, business time zone…).
    pub fn with_settings(mut self, settings: CommitSettings) -> Omniman<S> {
        self.settings = settings;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The extensions.
    pub fn extensions(&self) -> &Arc<Extensions> {
        &self.ext
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The commit settings.
    pub fn settings(&self) -> &CommitSettings {
        &self.settings
    }

    fn ctx(&self, caller: &Caller) -> Ctx {
        Ctx::new(caller.clone(), self.clock.now())
    }

    /// Runs `f` with the id generator; never held across an await.
    fn draw_ids<T>(&self, f: impl FnOnce(&mut dyn IdGen) -> T) -> T {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        f(ids.as_mut())
    }

    fn hooks(&self, name: &str, f: impl Fn(&dyn crate::ext::Hooks)) {
        for hooks in self.ext.hooks() {
            run_hook(name, || f(hooks));
        }
    }

    /// The channel a new session goes to: it must exist and be active.
    async fn channel_for_new_session(&self, code: &ChannelCode) -> Result<Channel, OpenError> {
        let channel = self
            .store
            .channel_by_code(code)
            .await?
            .ok_or_else(|| OpenError::UnknownChannel { channel_code: code.to_string() })?;
        if !channel.is_active {
            return Err(OpenError::ChannelInactive { channel_code: channel.code });
        }
        Ok(channel)
    }

    /// A new open session on `channel`, in the currency its money is counted in.
    fn new_session(&self, channel: &Channel, request: &OpenSession, now: chrono::DateTime<chrono::Utc>) -> Session {
        let key = request.session_key.clone().map_or_else(|| self.draw_ids(|ids| ids.session_key()), String::from);
        let handle_type = request.handle_type.clone().map(String::from);
        let handle_ref = request.handle_ref.clone().map(String::from);
        let mut session = Session::open(channel, key, handle_type, handle_ref, now);
        session.set_currency(channel_currency(channel, &self.settings));
        session
    }

    /// Opens a session, or returns the open one already holding both handle values.
    pub async fn open_session(&self, request: OpenSession, caller: &Caller) -> Result<Opened, OpenError> {
        let channel = self.channel_for_new_session(&request.channel_code).await?;
        until_written!(format!("opening a session on {}", channel.code), {
            if let (Some(ht), Some(hr)) = (&request.handle_type, &request.handle_ref) {
                if let Some(session) = self.store.open_session_by_handle(channel.id, ht, hr).await? {
                    return Ok(Opened { session, created: false });
                }
            }
            let session = self.new_session(&channel, &request, self.ctx(caller).now);
            match self.store.insert_session(&session).await? {
                InsertSession::Inserted(session) => return Ok(Opened { session, created: true }),
                InsertSession::KeyTaken if request.session_key.is_some() => {
                    return Err(OpenError::SessionExists { session_key: session.session_key });
                }
                // A generated key collided, or another request opened the handle first: look again.
                InsertSession::KeyTaken | InsertSession::HandleTaken => None,
            }
        })
    }

    /// Imports a session an external platform already validated (docs/reference.md §11,
    /// `POST /api/sessions/import`): the channel's edit policy is ignored, lines may carry their
    /// own ids, names and prices, import validators run, no check directive is enqueued, and
    /// `data` is stored as given (including `checks` and `issues`).
    pub async fn import_session(&self, request: ImportSession, caller: &Caller) -> Result<Session, OpenError> {
        let channel = self.channel_for_new_session(&request.open.channel_code).await?;
        until_written!(format!("importing a session on {}", channel.code), {
            let ctx = self.ctx(caller);
            let open = self.new_session(&channel, &request.open, ctx.now);
            let (items, data) = (request.items.clone(), request.data.clone());
            let session = self
                .draw_ids(|ids| prepare_import(open, &channel, items, data, &self.ext, &ctx, ids))
                .map_err(|e| match e {
                    ModifyError::Rejected(r) => OpenError::Rejected(r),
                    ModifyError::Validation(errors) => OpenError::Validation(errors),
                    other => OpenError::Validation(FieldErrors::one("items", other.to_string())),
                })?;
            match self.store.insert_session(&session).await? {
                InsertSession::Inserted(session) => Some(session),
                InsertSession::KeyTaken if request.open.session_key.is_none() => None, // generated key collided
                InsertSession::KeyTaken | InsertSession::HandleTaken => {
                    return Err(OpenError::SessionExists { session_key: session.session_key });
                }
            }
        })
    }

    /// Loads the session a write will be conditional on, and its channel, or says which of the
    /// two is missing. The store may answer from a cache (`load_session_to_write`).
    async fn load(&self, at: &SessionRef) -> Result<(Channel, Session), ModifyError> {
        self.find(at, Freshness::MayBeStale).await?.map_err(|missing| match missing {
            Missing::Channel => ModifyError::UnknownChannel { channel_code: at.channel.to_string() },
            Missing::Session => ModifyError::SessionNotFound { session_key: at.key.to_string() },
        })
    }

    /// A session and its channel, or which of the two is missing.
    async fn find(
        &self,
        at: &SessionRef,
        freshness: Freshness,
    ) -> Result<Result<(Channel, Session), Missing>, StoreError> {
        let found = match freshness {
            Freshness::Current => self.store.load_session(&at.channel, &at.key).await?,
            Freshness::MayBeStale => self.store.load_session_to_write(&at.channel, &at.key).await?,
        };
        if let Some(found) = found {
            return Ok(Ok(found));
        }
        // Only the failure path pays for the second read.
        if self.store.channel_by_code(&at.channel).await?.is_none() {
            return Ok(Err(Missing::Channel));
        }
        Ok(Err(Missing::Session))
    }

    /// Applies a batch of ops (docs/reference.md §5) and returns the stored session.
    pub async fn modify(
        &self,
        at: &SessionRef,
        ops: &[Op],
        precondition: Option<&Precondition>,
        caller: &Caller,
    ) -> Result<Session, ModifyError> {
        until_written!(format!("session {at}"), {
            let (channel, session) = self.load(at).await?;
            let ctx = self.ctx(caller);
            // The loaded session becomes the draft: keep the version the write is conditional on.
            let read_version = session.version;
            let outcome =
                match self.draw_ids(|ids| apply_ops(session, &channel, ops, precondition, &self.ext, &ctx, ids)) {
                    Ok(outcome) => outcome,
                    Err(refused) if self.refusal_stands(at, read_version).await? => return Err(refused),
                    Err(_) => continue,
                };
            if !self.store.update_session(&outcome.session, read_version, &outcome.directives).await? {
                continue;
            }
            self.hooks("session_modified", |h| h.session_modified(&outcome.session));
            Some(outcome.session)
        })
    }

    /// Abandons an open session; an abandoned one is returned as it is.
    pub async fn abandon(
        &self,
        at: &SessionRef,
        precondition: Option<&Precondition>,
        caller: &Caller,
    ) -> Result<Session, ModifyError> {
        until_written!(format!("session {at}"), {
            let (_, session) = self.load(at).await?;
            if let Some(refused) = precondition.and_then(|pre| pre.check(&session).err()) {
                if self.refusal_stands(at, session.version).await? {
                    return Err(refused);
                }
                continue;
            }
            match session.state {
                SessionState::Abandoned => return Ok(session),
                SessionState::Committed => {
                    return Err(ModifyError::AlreadyCommitted { session_key: session.session_key });
                }
                SessionState::Open => {}
            }
            let read_version = session.version;
            let mut next = session;
            next.state = SessionState::Abandoned;
            next.version += 1;
            next.updated_at = self.ctx(caller).now;
            if !self.store.update_session(&next, read_version, &[]).await? {
                continue;
            }
            self.hooks("session_abandoned", |h| h.session_abandoned(&next));
            Some(next)
        })
    }

    /// Commits a session into an order (docs/reference.md §6). Without a key one is generated
    /// (the call is then not replayable).
    pub async fn commit(
        &self,
        at: &SessionRef,
        idempotency_key: Option<&IdempotencyKey>,
        precondition: Option<&Precondition>,
        caller: &Caller,
    ) -> Result<CommitOutcome, CommitError> {
        let key = idempotency_key.map_or_else(|| self.draw_ids(|ids| ids.idempotency_key()), ToString::to_string);
        let scope = commit_scope(&at.channel);
        // The answer is the one of docs/reference.md §6, where the key is decided first; but the
        // key is looked up only when it can change that answer: the session is missing or no
        // longer open, the commit is refused, or the write found the key taken. A first commit
        // of an open session is then one read and one transaction (none of them the key's).
        until_written!(format!("commit of {at}"), {
            let now = self.clock.now();
            let (channel, session) = match self.load(at).await {
                Ok(found) => found,
                Err(ModifyError::Store(e)) => return Err(e.into()),
                Err(missing) => return self.refuse_unless_key_used(&scope, &key, at, now, missing.into()).await,
            };
            if session.state == SessionState::Committed {
                if let Some(answer) = self.answer_of_used_key(&scope, &key, at, now).await? {
                    return answer;
                }
                let Some(order) = self.store.order_for_session(channel.id, &at.key).await? else {
                    return Err(ModifyError::AlreadyCommitted { session_key: session.session_key }.into());
                };
                let answer = CommitOutcome::AlreadyCommitted(CommitReceipt::of(&order));
                let record = answer.record(scope.clone(), key.clone(), &at.key, now);
                if self.store.save_idempotency_record(&record).await? {
                    return Ok(answer);
                }
                continue; // someone finished this key meanwhile: read again and replay theirs
            }
            let ctx = self.ctx(caller);
            let read_version = session.version;
            let plan = match self.draw_ids(|ids| {
                plan_commit(session, &channel, &key, precondition, &self.ext, &self.settings, &ctx, ids)
            }) {
                Ok(plan) => plan,
                // A key used before answers as it did, whatever the session has become.
                Err(refused) if self.refusal_stands(at, read_version).await? => {
                    return self.refuse_unless_key_used(&scope, &key, at, now, refused).await;
                }
                Err(_) => continue,
            };
            match self.store.commit(&plan).await? {
                CommitWrite::Committed(order) => {
                    self.after_commit(&channel, &plan.session, &order, &ctx).await;
                    Some(plan.outcome(order.id))
                }
                CommitWrite::KeyTaken => {
                    if let Some(answer) = self.answer_of_used_key(&scope, &key, at, now).await? {
                        return answer;
                    }
                    None // the record went away meanwhile: try again
                }
                CommitWrite::SessionChanged | CommitWrite::RefTaken => None,
            }
        })
    }

    /// What an idempotency key used before answers (docs/reference.md §6): its stored answer
    /// replayed, `idempotency_conflict` or `in_progress`; `None` when the key is free.
    async fn answer_of_used_key(
        &self,
        scope: &str,
        key: &str,
        at: &SessionRef,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Result<CommitOutcome, CommitError>>, StoreError> {
        let record = self.store.idempotency_record(scope, key).await?;
        Ok(match decide(record.as_ref(), &at.key, now) {
            IdempotencyDecision::Replay { code, body } => {
                Some(Ok(CommitOutcome::Replayed(StoredAnswer { code, body })))
            }
            IdempotencyDecision::Conflict { .. } => {
                Some(Err(CommitError::IdempotencyConflict { idempotency_key: key.to_owned() }))
            }
            IdempotencyDecision::InProgress => Some(Err(CommitError::InProgress { idempotency_key: key.to_owned() })),
            IdempotencyDecision::Proceed => None,
        })
    }

    /// `refusal`, unless the key was used before: then what it answers.
    async fn refuse_unless_key_used(
        &self,
        scope: &str,
        key: &str,
        at: &SessionRef,
        now: chrono::DateTime<chrono::Utc>,
        refusal: CommitError,
    ) -> Result<CommitOutcome, CommitError> {
        self.answer_of_used_key(scope, key, at, now).await?.unwrap_or(Err(refusal))
    }

    /// docs/reference.md §6 step 14: hooks, then the channel's `on_create` transition.
    async fn after_commit(&self, channel: &Channel, session: &Session, order: &Order, ctx: &Ctx) {
        self.hooks("order_changed", |h| h.order_changed(order, "created", ctx.actor()));
        self.hooks("session_committed", |h| h.session_committed(session, order));
        if let Some(status) = &channel.config.order_flow.on_create {
            if let Err(error) = self.transition_order(&order.reference, status, None, &Caller::internal("system")).await
            {
                tracing::warn!(order_ref = %order.reference, %status, %error, "auto transition on create refused");
            }
        }
    }

    /// Writes a check's result back if the session is still open at `expected_rev`
    /// (docs/reference.md §7). `Ok(false)`: nothing written (missing, moved on, or no longer open).
    pub async fn apply_check_result(
        &self,
        at: &SessionRef,
        expected_rev: i64,
        check_code: &str,
        result: Value,
        issues: Vec<Value>,
    ) -> Result<bool, StoreError> {
        until_written!(format!("session {at}"), {
            let Some((_, session)) = self.store.load_session(&at.channel, &at.key).await? else {
                return Ok(false);
            };
            let now = self.clock.now();
            let next = self.draw_ids(|ids| {
                write_check_result(&session, expected_rev, check_code, result.clone(), issues.clone(), now, ids)
            });
            let Some(next) = next else { return Ok(false) };
            self.store.update_session(&next, session.version, &[]).await?.then_some(true)
        })
    }

    /// Resolves an issue by one of its actions (docs/reference.md §7): the issue's resolver turns
    /// the action into ops, applied by modify as an internal caller.
    ///
    /// With a `precondition` (`If-Match`), the session must match it both when the action is
    /// judged and when its ops are written; a mismatch is `precondition_failed`.
    pub async fn resolve_issue(
        &self,
        at: &SessionRef,
        issue_id: &str,
        action_id: &str,
        precondition: Option<&Precondition>,
        caller: &Caller,
    ) -> Result<Session, ResolveError> {
        until_written!(format!("session {at}"), {
            let (_, session) = self.load(at).await?;
            let ops = match self.judge_action(&session, issue_id, action_id, precondition, caller).await {
                Ok(ops) => ops,
                Err(refused) if self.refusal_stands(at, session.version).await? => return Err(refused),
                Err(_) => continue,
            };
            // The action was judged against this rev; if the session moved meanwhile, judge
            // again (or, under the client's own precondition, refuse).
            let pinned = precondition.cloned().unwrap_or(Precondition::Rev(session.rev));
            let internal = Caller::internal(caller.actor.clone());
            match self.modify(at, &ops, Some(&pinned), &internal).await {
                Err(ModifyError::PreconditionFailed { .. }) if precondition.is_none() => None,
                other => return other.map_err(ResolveError::Session),
            }
        })
    }

    /// The ops an issue's action stands for, judged against `session`.
    async fn judge_action(
        &self,
        session: &Session,
        issue_id: &str,
        action_id: &str,
        precondition: Option<&Precondition>,
        caller: &Caller,
    ) -> Result<Vec<Op>, ResolveError> {
        if let Some(pre) = precondition {
            pre.check(session)?;
        }
        let issue = session
            .issue(issue_id)
            .cloned()
            .ok_or_else(|| ResolveError::IssueNotFound { issue_id: issue_id.to_owned() })?;
        let source = issue.get("source").and_then(Value::as_str).unwrap_or_default().to_owned();
        let resolver =
            self.ext.resolver(&source).ok_or_else(|| ResolveError::NoResolver { issue_source: source.clone() })?;
        let ctx = self.ctx(caller);
        resolver.resolve(session, &issue, action_id, &ctx).await.map_err(|failure| match failure {
            ResolverFailure::Coded(rejection) => ResolveError::Rejected(rejection),
            ResolverFailure::Other(message) => ResolveError::ResolverError {
                issue_source: source,
                issue_id: issue_id.to_owned(),
                action_id: action_id.to_owned(),
                message,
            },
        })
    }

    /// Whether a refusal decided on `version` of the session stands: a write starts from a read
    /// that may come from a cache, which another instance or process may have left behind, so
    /// the store is read before a refusal is answered. `false`: the store holds another version,
    /// or none (the caller reads again, from the entry this read refreshed, and judges again).
    async fn refusal_stands(&self, at: &SessionRef, version: i64) -> Result<bool, StoreError> {
        let current = self.store.load_session(&at.channel, &at.key).await?;
        Ok(current.is_some_and(|(_, session)| session.version == version))
    }
}
