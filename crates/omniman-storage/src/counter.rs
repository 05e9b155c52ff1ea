//! Counting SQL statements, for the query budget (docs/reference.md §12: statements per request,
//! transaction control excluded).
//!
//! A [`StatementCounter`] is made current for a future with [`StatementCounter::scope`].
//! Every connection that future checks out of a [`Database`](crate::Database) pool then
//! reports each statement it starts to the counter, through Diesel's
//! [`Instrumentation`]. `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, `RELEASE` and `END` are
//! not counted as statements, but they are round trips ([`StatementCounter::round_trips`]:
//! every statement sent, each waiting for its answer). Statements run by the pool itself (the liveness check when a connection is
//! reused, session set-up on a new connection) are not counted either.
//!
//! The scope is a Tokio task-local: it covers the future given to `scope` (including the
//! blocking threads SQLite connections run on), not tasks that future spawns.
//!
//! [`StatementCounter::new`] keeps each statement's text (with bind values) for test
//! failures; [`StatementCounter::count_only`] keeps nothing but the count and reads no more
//! of a statement than its first keyword, cheap enough to run on every request in production
//! (the server's `omniman_sql_statements_per_request` metric).
//!
//! ```no_run
//! # async fn demo(db: &omniman_storage::Database) {
//! use omniman_storage::StatementCounter;
//! let counter = StatementCounter::new();
//! counter.scope(async { /* one request against db */ }).await;
//! assert!(counter.count() <= 3, "{:#?}", counter.statements());
//! # }
//! ```

use std::fmt::{self, Write as _};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use diesel::connection::{Instrumentation, InstrumentationEvent};

tokio::task_local! {
    static CURRENT: StatementCounter;
}

/// A shared count of SQL statements, with their text.
#[derive(Debug, Clone, Default)]
pub struct StatementCounter {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    count: AtomicU64,
    /// Every statement sent, transaction control included.
    round_trips: AtomicU64,
    statements: Mutex<Vec<String>>,
    /// Counts without keeping (or fully formatting) the statements.
    count_only: bool,
}

impl StatementCounter {
    /// A counter at zero that also keeps every statement's text.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter at zero that keeps only the count: [`statements`](Self::statements) stays
    /// empty, and a statement costs no allocation.
    ///
    /// ```
    /// let counter = omniman_storage::StatementCounter::count_only();
    /// counter.record("BEGIN");
    /// counter.record("SELECT 1");
    /// assert_eq!(counter.count(), 1);
    /// assert!(counter.statements().is_empty());
    /// ```
    pub fn count_only() -> Self {
        StatementCounter { inner: Arc::new(Inner { count_only: true, ..Inner::default() }) }
    }

    /// Statements counted so far.
    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::SeqCst)
    }

    /// Statements sent so far, transaction control (`BEGIN`, `COMMIT`, …) included: the round
    /// trips to the database, as every statement waits for its answer before the next is sent.
    ///
    /// ```
    /// let counter = omniman_storage::StatementCounter::count_only();
    /// for sql in ["BEGIN", "UPDATE sessions SET rev = 2", "COMMIT"] {
    ///     counter.record(sql);
    /// }
    /// assert_eq!((counter.count(), counter.round_trips()), (1, 3));
    /// ```
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::SeqCst)
    }

    /// The counted statements' SQL (with bind values), oldest first.
    pub fn statements(&self) -> Vec<String> {
        self.inner.statements.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Back to zero.
    pub fn reset(&self) {
        let mut statements = self.inner.statements.lock().unwrap_or_else(PoisonError::into_inner);
        statements.clear();
        self.inner.count.store(0, Ordering::SeqCst);
        self.inner.round_trips.store(0, Ordering::SeqCst);
    }

    /// Run `fut` with this counter current: connections it checks out count into it.
    pub async fn scope<F: Future>(&self, fut: F) -> F::Output {
        CURRENT.scope(self.clone(), fut).await
    }

    /// Count the statements `fut` runs; returns its output and the count.
    pub async fn measure<F: Future>(fut: F) -> (F::Output, StatementCounter) {
        let counter = StatementCounter::new();
        let out = counter.scope(fut).await;
        (out, counter)
    }

    /// The counter made current by an enclosing [`scope`](Self::scope), if any.
    pub fn current() -> Option<StatementCounter> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Record one statement: a round trip, and a counted statement unless it is transaction
    /// control.
    pub fn record(&self, sql: &str) {
        self.inner.round_trips.fetch_add(1, Ordering::SeqCst);
        if is_transaction_control(sql) {
            return;
        }
        if self.inner.count_only {
            self.inner.count.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let mut statements = self.inner.statements.lock().unwrap_or_else(PoisonError::into_inner);
        statements.push(sql.trim().to_owned());
        self.inner.count.fetch_add(1, Ordering::SeqCst);
    }

    /// The Diesel instrumentation that feeds this counter.
    pub fn instrumentation(&self) -> CountingInstrumentation {
        CountingInstrumentation { counter: self.clone() }
    }
}

/// Diesel [`Instrumentation`] counting started statements into a [`StatementCounter`].
#[derive(Debug)]
pub struct CountingInstrumentation {
    counter: StatementCounter,
}

impl Instrumentation for CountingInstrumentation {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            if self.counter.inner.count_only {
                let mut head = Head::default();
                // `Head` stops the formatting once it is full, which `write!` reports as an error.
                let _ = write!(head, "{query}");
                self.counter.record(head.as_str());
            } else {
                self.counter.record(&query.to_string());
            }
        }
    }
}

/// The first bytes of a statement: enough to tell transaction control from the rest.
#[derive(Default)]
struct Head {
    buf: [u8; 32],
    len: usize,
}

impl Head {
    fn as_str(&self) -> &str {
        let bytes = &self.buf[..self.len];
        // The cut may split a character; the keyword before it is all that matters.
        match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or_default(),
        }
    }
}

impl fmt::Write for Head {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let take = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if self.len == self.buf.len() { Err(fmt::Error) } else { Ok(()) }
    }
}

/// Whether `sql` only controls a transaction (not counted in the query budget).
pub fn is_transaction_control(sql: &str) -> bool {
    let word = sql.trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
    ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "END", "START"]
        .iter()
        .any(|kw| word.eq_ignore_ascii_case(kw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_is_recognised() {
        for sql in [
            "BEGIN",
            "begin immediate",
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
            "COMMIT",
            "ROLLBACK",
            "ROLLBACK TO SAVEPOINT diesel_savepoint_1",
            "SAVEPOINT diesel_savepoint_1",
            "RELEASE SAVEPOINT diesel_savepoint_1",
            "  END",
            "START TRANSACTION",
        ] {
            assert!(is_transaction_control(sql), "{sql}");
        }
        for sql in [
            "SELECT 1",
            "UPDATE sessions SET rev = rev + 1",
            "INSERT INTO directives",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "",
            "BEGINNING",
        ] {
            assert!(!is_transaction_control(sql), "{sql}");
        }
    }

    #[test]
    fn counts_and_resets() {
        let c = StatementCounter::new();
        c.record("BEGIN");
        c.record("SELECT 1");
        c.record("COMMIT");
        assert_eq!(c.count(), 1);
        assert_eq!(c.round_trips(), 3);
        assert_eq!(c.statements(), vec!["SELECT 1".to_owned()]);
        c.reset();
        assert_eq!((c.count(), c.round_trips()), (0, 0));
        assert!(c.statements().is_empty());
    }

    #[test]
    fn head_keeps_the_leading_keyword_of_long_statements() {
        let mut head = Head::default();
        let long = format!("  ROLLBACK TO SAVEPOINT {}", "x".repeat(100));
        assert!(write!(head, "{long}").is_err(), "formatting stops once the head is full");
        assert_eq!(head.as_str().len(), 32);
        assert!(is_transaction_control(head.as_str()));
        // "SELECT 'x" is 9 bytes, so the two-byte `é`s end at odd offsets: the 32-byte cut splits one.
        let mut cut = Head::default();
        let _ = write!(cut, "SELECT 'x{}'", "é".repeat(20));
        assert_eq!(cut.len, 32);
        assert_eq!(cut.as_str(), format!("SELECT 'x{}", "é".repeat(11)), "the split character is dropped");
    }

    #[tokio::test]
    async fn scope_makes_current() {
        assert!(StatementCounter::current().is_none());
        let c = StatementCounter::new();
        c.scope(async {
            StatementCounter::current().unwrap().record("SELECT 2");
        })
        .await;
        assert_eq!(c.count(), 1);
    }
}
