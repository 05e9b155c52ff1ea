//! Whether a worker loop is alive and making progress: what readiness reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::worker::WorkerConfig;
#[cfg(doc)]
use crate::worker::{Worker, WorkerHandle};

/// What a [`WorkerLiveness`] says about a worker loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// The loop runs and made progress recently.
    Running {
        /// Time since its last sign of progress.
        since_last_beat: Duration,
    },
    /// The loop's task is alive but has shown no progress for longer than
    /// [`WorkerLiveness::stall_after`]: something it awaits hangs.
    Stalled {
        /// Time since its last sign of progress.
        since_last_beat: Duration,
    },
    /// The loop runs, but outcomes of finished handlers cannot be written (the database is
    /// unreachable, say): it retries them with backoff, and their directives stay `running`
    /// until then.
    Failing {
        /// Outcomes waiting for their write to succeed.
        unwritten: usize,
    },
    /// The loop is not running: never started, shut down, or ended by a panic.
    Stopped,
}

impl WorkerState {
    /// Whether the loop is running and not stalled.
    pub fn is_healthy(self) -> bool {
        matches!(self, WorkerState::Running { .. })
    }
}

#[derive(Debug)]
struct Beats {
    origin: Instant,
    /// Milliseconds from `origin` to the last sign of progress.
    last_beat_ms: AtomicU64,
    running: AtomicBool,
    /// Outcomes whose write failed and is being retried.
    failing_writes: AtomicUsize,
}

/// The health of a worker loop, shared with the loop and cheap to clone (from
/// [`WorkerHandle::liveness`] or [`Worker::liveness`]).
///
/// The loop beats at the start of every cycle and whenever a handler finishes, so an idle loop
/// beats at least once per poll interval and a busy one at least once per handler timeout.
/// [`state`](WorkerLiveness::state) reports `Stalled` when no beat came for
/// [`stall_after`](WorkerLiveness::stall_after) = handler timeout + 3 × poll interval, and
/// `Stopped` once the loop's task has ended (shut down or panicked). While an outcome cannot be
/// written (the worker retries it), it reports `Failing`.
#[derive(Clone, Debug)]
pub struct WorkerLiveness {
    beats: Arc<Beats>,
    stall_after: Duration,
}

impl WorkerLiveness {
    pub(crate) fn new(config: &WorkerConfig) -> WorkerLiveness {
        let beats = Beats {
            origin: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            running: AtomicBool::new(false),
            failing_writes: AtomicUsize::new(0),
        };
        WorkerLiveness { beats: Arc::new(beats), stall_after: config.handler_timeout + config.interval * 3 }
    }

    pub(crate) fn beat(&self) {
        let ms = u64::try_from(self.beats.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.beats.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Counts one outcome whose write failed, until the returned guard drops (once it is written,
    /// or given up at shutdown).
    pub(crate) fn failing_write(&self) -> FailingWrite {
        self.beats.failing_writes.fetch_add(1, Ordering::AcqRel);
        FailingWrite(self.clone())
    }

    /// Marks the loop running until the returned guard drops (when the loop returns or unwinds).
    pub(crate) fn enter(&self) -> RunningGuard {
        self.beat();
        self.beats.running.store(true, Ordering::Release);
        RunningGuard(self.clone())
    }

    /// How long without a beat counts as stalled.
    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }

    /// Whether the loop's task is alive.
    pub fn is_running(&self) -> bool {
        self.beats.running.load(Ordering::Acquire)
    }

    /// The loop's state now.
    pub fn state(&self) -> WorkerState {
        self.state_at(Instant::now())
    }

    /// The loop's state as seen at `now` (not before the last beat).
    pub fn state_at(&self, now: Instant) -> WorkerState {
        if !self.is_running() {
            return WorkerState::Stopped;
        }
        let unwritten = self.beats.failing_writes.load(Ordering::Acquire);
        if unwritten > 0 {
            return WorkerState::Failing { unwritten };
        }
        let last = self.beats.origin + Duration::from_millis(self.beats.last_beat_ms.load(Ordering::Relaxed));
        let since_last_beat = now.saturating_duration_since(last);
        if since_last_beat > self.stall_after {
            WorkerState::Stalled { since_last_beat }
        } else {
            WorkerState::Running { since_last_beat }
        }
    }
}

/// One outcome whose write is being retried; uncounted on drop.
pub(crate) struct FailingWrite(WorkerLiveness);

impl Drop for FailingWrite {
    fn drop(&mut self) {
        self.0.beats.failing_writes.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Clears the running flag when the loop's future ends, returns or unwinds.
pub(crate) struct RunningGuard(WorkerLiveness);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.beats.running.store(false, Ordering::Release);
    }
}
