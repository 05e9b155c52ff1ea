//! Directives: the at-least-once task queue's rows and every decision about them (docs/reference.md §1.4, §9).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Where a directive is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectiveStatus {
    /// Waiting to be claimed once `available_at` has passed.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Finished.
    Done,
    /// Given up (permanent failure or out of attempts).
    Failed,
}

impl DirectiveStatus {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectiveStatus::Queued => "queued",
            DirectiveStatus::Running => "running",
            DirectiveStatus::Done => "done",
            DirectiveStatus::Failed => "failed",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<DirectiveStatus> {
        match s {
            "queued" => Some(DirectiveStatus::Queued),
            "running" => Some(DirectiveStatus::Running),
            "done" => Some(DirectiveStatus::Done),
            "failed" => Some(DirectiveStatus::Failed),
            _ => None,
        }
    }
}

/// A stored directive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Directive {
    /// Database id.
    pub id: i64,
    /// Routes to exactly one handler.
    pub topic: String,
    /// State.
    pub status: DirectiveStatus,
    /// Handler input; handlers may add keys.
    pub payload: Map<String, Value>,
    /// +1 per claim.
    pub attempts: i32,
    /// Not claimed before this instant.
    pub available_at: DateTime<Utc>,
    /// Last failure, or empty.
    pub last_error: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Claim time of the latest run.
    pub started_at: Option<DateTime<Utc>>,
    /// Last change. While `running`, the claim's lease: its worker renews it (see [`renew_claim`])
    /// for as long as it holds the directive, and the reaper takes only directives whose lease
    /// went unrenewed for longer than its timeout.
    pub updated_at: DateTime<Utc>,
}

/// A directive to enqueue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewDirective {
    /// Topic.
    pub topic: String,
    /// Handler input.
    pub payload: Map<String, Value>,
    /// Not claimed before this instant.
    pub available_at: DateTime<Utc>,
}

/// The retry policy: exponential backoff with a cap and a maximum number of attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts before a transient error becomes permanent (≥ 1).
    pub max_attempts: i32,
    /// Longest wait between attempts.
    pub cap: TimeDelta,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { max_attempts: 5, cap: TimeDelta::seconds(3600) }
    }
}

impl RetryPolicy {
    /// Wait after the `attempts`-th failed attempt: `min(2^attempts s, cap)`.
    ///
    /// ```
    /// use omniman_core::directive::RetryPolicy;
    /// let p = RetryPolicy::default();
    /// let waits: Vec<i64> = (1..=4).map(|a| p.backoff(a).num_seconds()).collect();
    /// assert_eq!(waits, [2, 4, 8, 16]);
    /// assert_eq!(p.backoff(30).num_seconds(), 3600);
    /// ```
    pub fn backoff(&self, attempts: i32) -> TimeDelta {
        let exp = u32::try_from(attempts.clamp(0, 40)).unwrap_or(0);
        let secs = 2_i64.checked_pow(exp).unwrap_or(i64::MAX);
        TimeDelta::try_seconds(secs).unwrap_or(self.cap).min(self.cap)
    }
}

/// What a handler says about a run.
#[derive(Clone, Debug, PartialEq)]
pub enum HandlerOutcome {
    /// Finished; `patch` keys are merged into the payload.
    Done {
        /// Keys to add to the payload.
        patch: Map<String, Value>,
    },
    /// Permanent failure; no retry.
    Failed {
        /// Why.
        reason: String,
        /// Keys to add to the payload.
        patch: Map<String, Value>,
    },
}

impl HandlerOutcome {
    /// `Done` without a patch.
    pub fn done() -> HandlerOutcome {
        HandlerOutcome::Done { patch: Map::new() }
    }

    /// `Failed` without a patch.
    pub fn failed(reason: impl Into<String>) -> HandlerOutcome {
        HandlerOutcome::Failed { reason: reason.into(), patch: Map::new() }
    }
}

/// A transient handler error: retried by the policy.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

/// How one claimed run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunResult {
    /// No handler is registered for the topic (only possible when topics were forced).
    NoHandler,
    /// The handler returned.
    Handled(Result<HandlerOutcome, HandlerError>),
}

/// The write that records a run's end or a reap, conditional on the directive still `running`.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectiveUpdate {
    /// The directive.
    pub id: i64,
    /// The write applies only while the row still has this many attempts (the run's claim).
    pub claimed_attempts: i32,
    /// New status.
    pub status: DirectiveStatus,
    /// New attempts count.
    pub attempts: i32,
    /// New availability.
    pub available_at: DateTime<Utc>,
    /// New last error.
    pub last_error: String,
    /// Keys merged into the payload.
    pub payload_patch: Map<String, Value>,
}

/// Most characters of an error kept in `last_error`.
pub const MAX_ERROR_CHARS: usize = 500;

fn truncate(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

/// Decides what a finished run turns the directive into (the table of docs/reference.md §9).
///
/// `directive` is the claimed row (its `attempts` already counts this run).
pub fn decide_outcome(
    directive: &Directive,
    result: RunResult,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> DirectiveUpdate {
    let base = DirectiveUpdate {
        id: directive.id,
        claimed_attempts: directive.attempts,
        status: DirectiveStatus::Done,
        attempts: directive.attempts,
        available_at: directive.available_at,
        last_error: String::new(),
        payload_patch: Map::new(),
    };
    match result {
        RunResult::NoHandler => DirectiveUpdate {
            status: DirectiveStatus::Queued,
            attempts: (directive.attempts - 1).max(0),
            last_error: directive.last_error.clone(),
            ..base
        },
        RunResult::Handled(Ok(HandlerOutcome::Done { patch })) => DirectiveUpdate { payload_patch: patch, ..base },
        RunResult::Handled(Ok(HandlerOutcome::Failed { reason, patch })) => DirectiveUpdate {
            status: DirectiveStatus::Failed,
            last_error: truncate(&reason),
            payload_patch: patch,
            ..base
        },
        RunResult::Handled(Err(error)) if directive.attempts >= policy.max_attempts => {
            DirectiveUpdate { status: DirectiveStatus::Failed, last_error: truncate(&error.0), ..base }
        }
        RunResult::Handled(Err(error)) => DirectiveUpdate {
            status: DirectiveStatus::Queued,
            available_at: directive.started_at.unwrap_or(now) + policy.backoff(directive.attempts),
            last_error: truncate(&error.0),
            ..base
        },
    }
}

/// The write by which a worker renews its claim on a `running` directive it still holds (a
/// handler runs it, or it waits in the worker's batch): applied through
/// [`DirectiveQueue::finish`](crate::ports::DirectiveQueue::finish) like an outcome, conditional on
/// the claim, it changes nothing but `updated_at`, the claim's lease.
pub fn renew_claim(directive: &Directive) -> DirectiveUpdate {
    DirectiveUpdate {
        id: directive.id,
        claimed_attempts: directive.attempts,
        status: DirectiveStatus::Running,
        attempts: directive.attempts,
        available_at: directive.available_at,
        last_error: directive.last_error.clone(),
        payload_patch: Map::new(),
    }
}

/// Decides what the reaper does with a `running` directive: `None` unless its claim went
/// unrenewed (no claim, renewal or other write: `updated_at`) for longer than `timeout` (a zero
/// timeout turns the reaper off). A live worker renews its claims well within the timeout, so
/// only the directives of a worker that died or hangs are reaped, however long they run.
pub fn decide_reap(
    directive: &Directive,
    policy: &RetryPolicy,
    timeout: TimeDelta,
    now: DateTime<Utc>,
) -> Option<DirectiveUpdate> {
    if timeout <= TimeDelta::zero() || directive.status != DirectiveStatus::Running {
        return None;
    }
    if now - directive.updated_at <= timeout {
        return None;
    }
    let minutes = timeout.num_minutes();
    let (status, last_error) = if directive.attempts >= policy.max_attempts {
        (
            DirectiveStatus::Failed,
            format!("Stuck in 'running' for >{minutes}min (reaped after {} attempts)", directive.attempts),
        )
    } else {
        (DirectiveStatus::Queued, format!("Stuck in 'running' for >{minutes}min (reaped, will retry)"))
    };
    Some(DirectiveUpdate {
        id: directive.id,
        claimed_attempts: directive.attempts,
        status,
        attempts: directive.attempts,
        available_at: now,
        last_error,
        payload_patch: Map::new(),
    })
}

/// A manual retry: back to `queued`, available now, attempts kept. Refused while it is running.
pub fn manual_retry(directive: &Directive, now: DateTime<Utc>) -> Option<DirectiveUpdate> {
    (directive.status != DirectiveStatus::Running).then(|| requeue(directive, now))
}

/// The directive back in the queue, available at `now`, its attempts and last error kept.
fn requeue(directive: &Directive, now: DateTime<Utc>) -> DirectiveUpdate {
    DirectiveUpdate {
        id: directive.id,
        claimed_attempts: directive.attempts,
        status: DirectiveStatus::Queued,
        attempts: directive.attempts,
        available_at: now,
        last_error: directive.last_error.clone(),
        payload_patch: Map::new(),
    }
}

/// Why an operator's retry is refused unless forced (see [`operator_retry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryRefused {
    /// The directive is `done`: retrying runs its effect again.
    #[error("is done: retrying runs its effect again")]
    Done,
    /// The directive is `running`: a worker holds it.
    #[error("is running: a worker holds it (forcing the retry discards that worker's outcome)")]
    Running,
}

/// An operator's retry: back to `queued`, available now, attempts kept. `queued` and `failed`
/// directives may always be retried; `done` and `running` ones only when `force`d. A forced
/// retry of a `running` directive must be applied like a reap (conditional on the claim), so that
/// its worker's late outcome is ignored.
pub fn operator_retry(directive: &Directive, force: bool, now: DateTime<Utc>) -> Result<DirectiveUpdate, RetryRefused> {
    let refused = match directive.status {
        DirectiveStatus::Queued | DirectiveStatus::Failed => None,
        DirectiveStatus::Done => Some(RetryRefused::Done),
        DirectiveStatus::Running => Some(RetryRefused::Running),
    };
    match refused {
        Some(reason) if !force => Err(reason),
        _ => Ok(requeue(directive, now)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    fn running(attempts: i32) -> Directive {
        Directive {
            id: 7,
            topic: "stock.hold".into(),
            status: DirectiveStatus::Running,
            payload: Map::new(),
            attempts,
            available_at: now(),
            last_error: String::new(),
            created_at: now(),
            started_at: Some(now()),
            updated_at: now(),
        }
    }

    #[test]
    fn done_clears_error_and_merges_patch() {
        let mut patch = Map::new();
        patch.insert("holds".into(), Value::Array(vec![]));
        let mut d = running(1);
        d.last_error = "old".into();
        let u =
            decide_outcome(&d, RunResult::Handled(Ok(HandlerOutcome::Done { patch })), &RetryPolicy::default(), now());
        assert_eq!(u.status, DirectiveStatus::Done);
        assert_eq!(u.last_error, "");
        assert!(u.payload_patch.contains_key("holds"));
    }

    #[test]
    fn permanent_failure_is_failed_at_once() {
        let u = decide_outcome(
            &running(1),
            RunResult::Handled(Ok(HandlerOutcome::failed("no"))),
            &RetryPolicy::default(),
            now(),
        );
        assert_eq!((u.status, u.last_error.as_str()), (DirectiveStatus::Failed, "no"));
    }

    #[test]
    fn transient_errors_back_off_then_fail() {
        let policy = RetryPolicy::default();
        for (attempts, wait) in [(1, 2), (2, 4), (3, 8), (4, 16)] {
            let u = decide_outcome(
                &running(attempts),
                RunResult::Handled(Err(HandlerError("boom".into()))),
                &policy,
                now(),
            );
            assert_eq!(u.status, DirectiveStatus::Queued);
            assert_eq!(u.available_at, now() + TimeDelta::seconds(wait));
            assert_eq!(u.last_error, "boom");
        }
        let u = decide_outcome(&running(5), RunResult::Handled(Err(HandlerError("x".repeat(900)))), &policy, now());
        assert_eq!(u.status, DirectiveStatus::Failed);
        assert_eq!(u.last_error.len(), 500);
    }

    #[test]
    fn no_handler_requeues_without_counting_the_attempt() {
        let u = decide_outcome(&running(1), RunResult::NoHandler, &RetryPolicy::default(), now());
        assert_eq!((u.status, u.attempts), (DirectiveStatus::Queued, 0));
    }

    #[test]
    fn reaper_requeues_or_fails_stuck_runs() {
        let policy = RetryPolicy::default();
        let timeout = TimeDelta::minutes(10);
        assert_eq!(decide_reap(&running(1), &policy, timeout, now() + TimeDelta::minutes(5)), None);
        let u = decide_reap(&running(1), &policy, timeout, now() + TimeDelta::minutes(11)).unwrap();
        assert_eq!(u.status, DirectiveStatus::Queued);
        assert_eq!(u.last_error, "Stuck in 'running' for >10min (reaped, will retry)");
        let u = decide_reap(&running(5), &policy, timeout, now() + TimeDelta::minutes(11)).unwrap();
        assert_eq!(u.status, DirectiveStatus::Failed);
        assert_eq!(u.last_error, "Stuck in 'running' for >10min (reaped after 5 attempts)");
        assert_eq!(decide_reap(&running(1), &policy, TimeDelta::zero(), now() + TimeDelta::days(1)), None);
    }

    #[test]
    fn a_renewed_claim_is_not_reaped_however_long_it_runs() {
        let policy = RetryPolicy::default();
        let timeout = TimeDelta::minutes(10);
        let mut d = running(1);
        d.last_error = "earlier".into();
        let renewal = renew_claim(&d);
        assert_eq!(
            (renewal.status, renewal.attempts, renewal.claimed_attempts, renewal.available_at),
            (DirectiveStatus::Running, 1, 1, d.available_at)
        );
        assert_eq!((renewal.last_error.as_str(), renewal.payload_patch.len()), ("earlier", 0));
        // Claimed an hour ago, renewed a minute ago: its worker is alive.
        d.updated_at = now() + TimeDelta::minutes(59);
        assert_eq!(decide_reap(&d, &policy, timeout, now() + TimeDelta::hours(1)), None);
        assert!(decide_reap(&d, &policy, timeout, now() + TimeDelta::minutes(70)).is_some());
    }

    #[test]
    fn operators_retry_done_and_running_directives_only_by_force() {
        let mut d = running(2);
        for (status, refused) in [
            (DirectiveStatus::Queued, None),
            (DirectiveStatus::Failed, None),
            (DirectiveStatus::Done, Some(RetryRefused::Done)),
            (DirectiveStatus::Running, Some(RetryRefused::Running)),
        ] {
            d.status = status;
            assert_eq!(operator_retry(&d, false, now()).err(), refused, "{status:?}");
            let u = operator_retry(&d, true, now()).unwrap();
            assert_eq!((u.status, u.attempts, u.claimed_attempts), (DirectiveStatus::Queued, 2, 2));
        }
    }

    #[test]
    fn manual_retry_keeps_attempts() {
        let mut d = running(5);
        assert!(manual_retry(&d, now()).is_none());
        d.status = DirectiveStatus::Failed;
        let u = manual_retry(&d, now()).unwrap();
        assert_eq!((u.status, u.attempts), (DirectiveStatus::Queued, 5));
    }
}
