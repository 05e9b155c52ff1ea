//! Time as an input, so every decision is reproducible.

use std::sync::Mutex;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current instant in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// Now, truncated to whole microseconds: the precision every store keeps, so an instant read
    /// back from any store equals the one written (cursors and comparisons depend on it).
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        now.duration_trunc(chrono::TimeDelta::microseconds(1)).unwrap_or(now)
    }
}

/// A clock that only moves when told to; for tests.
///
/// ```
/// use omniman_core::clock::{Clock, ManualClock};
/// let clock = ManualClock::at("2026-11-21T12:00:00Z".parse().unwrap());
/// clock.advance(chrono::TimeDelta::minutes(5));
/// assert_eq!(clock.now().to_rfc3339(), "2026-11-21T12:05:00+00:00");
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn at(now: DateTime<Utc>) -> ManualClock {
        ManualClock { now: Mutex::new(now) }
    }

    /// Moves the clock forward (or back, with a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
