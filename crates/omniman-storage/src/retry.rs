//! Retrying a port call once on a fresh connection when its pooled connection turns out to be
//! lost (the server restarted, killed the session, or the network dropped it).
//!
//! Connections are not checked with a `SELECT 1` when they leave the pool (a round trip per
//! request): a lost connection is found by the statement that fails on it. The call is then
//! run again on another connection, once, when that is safe:
//!
//! * a read ([`Retry::Read`]), whatever statement failed;
//! * a write that runs in a transaction ([`Retry::BeforeBegin`]) when the failing statement
//!   was the transaction's `BEGIN`: nothing of it ran;
//! * a commit ([`Retry::Replayable`]), whatever statement failed: it writes only if the session
//!   is still at the version the service read, so a second run after a first that took effect
//!   writes nothing and reports the session changed; the service then finds the session
//!   committed and answers from the idempotency key, as for any commit sent twice.
//!
//! Any other write that failed after its transaction started, or that is a single statement,
//! is not retried: its answer was lost, not necessarily its effect, and running it again could
//! apply it twice (a modify would add its lines again). What happened on the
//! connection is watched through Diesel's instrumentation ([`Watch`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::counter::CountingInstrumentation;

/// Which port calls may run again on a fresh connection (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A read: retried whenever the connection was lost.
    Read,
    /// A write in one transaction: retried when its `BEGIN` failed on a lost connection.
    BeforeBegin,
    /// A write the service recognises when it took effect (a commit, through its session's
    /// version and its idempotency key): retried whenever the connection was lost.
    Replayable,
}

/// What happened on one connection during one attempt.
#[derive(Debug, Default)]
pub(crate) struct Watch(AtomicU8);

const STARTED: u8 = 1;
const BEGIN_FIRST: u8 = 2;
const ANSWERED: u8 = 4;
const LOST: u8 = 8;

impl Watch {
    fn set(&self, flag: u8) {
        self.0.fetch_or(flag, Ordering::SeqCst);
    }

    fn on(&self, event: &InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::BeginTransaction { .. } if self.0.load(Ordering::SeqCst) & STARTED == 0 => {
                self.set(BEGIN_FIRST);
            }
            InstrumentationEvent::StartQuery { .. } => self.set(STARTED),
            InstrumentationEvent::FinishQuery { error: None, .. } => self.set(ANSWERED),
            InstrumentationEvent::FinishQuery { error: Some(e), .. } if is_lost(e) => self.set(LOST),
            _ => {}
        }
    }

    /// Whether the failed attempt may run again on a fresh connection.
    pub(crate) fn may_retry(&self, retry: Retry) -> bool {
        let flags = self.0.load(Ordering::SeqCst);
        match retry {
            Retry::Read | Retry::Replayable => flags & LOST != 0,
            Retry::BeforeBegin => flags & (LOST | BEGIN_FIRST | ANSWERED) == LOST | BEGIN_FIRST,
        }
    }
}

/// Whether `e` says that the connection is gone rather than that the statement is wrong: no
/// answer (closed, or could not be sent), or the server terminating the session
/// (`pg_terminate_backend`, a shutdown, `idle_session_timeout`: SQLSTATE 57P01, 57P02, 57P05),
/// which diesel-async reports by message only.
pub(crate) fn is_lost(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            true
        }
        DieselError::DatabaseError(_, info) => {
            let message = info.message();
            message.starts_with("terminating connection") || message.contains("server closed the connection")
        }
        _ => false,
    }
}

/// The instrumentation of a checked-out connection: statements counted into the request's
/// counter (if any), events into the attempt's [`Watch`] (if any).
pub(crate) struct Watched {
    pub(crate) counter: Option<CountingInstrumentation>,
    pub(crate) watch: Option<Arc<Watch>>,
}

impl Instrumentation for Watched {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let Some(watch) = &self.watch {
            watch.on(&event);
        }
        if let Some(counter) = &mut self.counter {
            counter.on_connection_event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> DieselError {
        DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, Box::new("connection closed".to_owned()))
    }

    #[test]
    fn reads_retry_whenever_the_connection_was_lost() {
        let w = Watch::default();
        assert!(!w.may_retry(Retry::Read));
        w.set(STARTED | ANSWERED | LOST);
        assert!(w.may_retry(Retry::Read));
    }

    #[test]
    fn writes_retry_only_when_their_begin_failed() {
        let w = Watch::default();
        w.set(BEGIN_FIRST | STARTED | LOST);
        assert!(w.may_retry(Retry::BeforeBegin), "BEGIN failed: nothing ran");
        w.set(ANSWERED);
        assert!(!w.may_retry(Retry::BeforeBegin), "a statement ran: the transaction had started");
        let single = Watch::default();
        single.set(STARTED | LOST);
        assert!(!single.may_retry(Retry::BeforeBegin), "not in a transaction");
        assert!(single.may_retry(Retry::Replayable), "a commit is recognised when run again");
        let answered = Watch::default();
        answered.set(STARTED | ANSWERED);
        assert!(!answered.may_retry(Retry::Replayable), "nothing was lost");
    }

    #[test]
    fn lost_connections_are_told_from_failed_statements() {
        assert!(is_lost(&lost()));
        assert!(is_lost(&DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("terminating connection due to administrator command".to_owned())
        )));
        assert!(!is_lost(&DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate key value violates unique constraint".to_owned())
        )));
        assert!(!is_lost(&DieselError::NotFound));
    }
}
