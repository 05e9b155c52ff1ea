//! The webhook dispatcher: follows the event log from the position stored in the database and,
//! for each event, enqueues one `webhook.deliver` directive per matching active subscription
//! (docs/webhooks.md).
//!
//! The deliveries of a batch of events and the move of the stored position are one transaction,
//! conditional on the position the dispatcher started from
//! ([`WebhookStore::advance_dispatch`]): of two processes dispatching at once, one wins and the
//! other writes nothing and starts again from where the winner left off, so no event is
//! dispatched twice, and none is skipped, whatever crashes in between.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use omniman_core::error::StoreError;
use omniman_core::events::{EventCursor, EventLog, read_next};
use omniman_core::ports::WebhookStore;
use omniman_core::webhook::plan_deliveries;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Events read from the log per step.
const BATCH: usize = 200;
/// Steps per wake-up at most, so a long backlog does not hold the loop from its stop signal.
const STEPS_PER_RUN: usize = 50;

/// What one run dispatched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Events the position moved past.
    pub events: usize,
    /// Deliveries enqueued.
    pub deliveries: usize,
    /// Times another dispatcher had moved the position first.
    pub lost_races: usize,
}

/// Follows the event log and enqueues deliveries. `omniman serve` and `omniman worker` run one
/// with their directive workers ([`Dispatcher::spawn`]).
#[derive(Debug)]
pub struct Dispatcher<S> {
    store: Arc<S>,
    /// The position as far as this process knows, with the holes it waits for; replaced by the
    /// stored position whenever they differ.
    cursor: Option<EventCursor>,
    wakeup: Option<Arc<Notify>>,
}

impl<S: WebhookStore + EventLog + 'static> Dispatcher<S> {
    /// A dispatcher over `store`.
    pub fn new(store: Arc<S>) -> Dispatcher<S> {
        Dispatcher { store, cursor: None, wakeup: None }
    }

    /// Wakes in-process workers through `wakeup` after enqueueing deliveries.
    pub fn with_wakeup(self, wakeup: Arc<Notify>) -> Dispatcher<S> {
        Dispatcher { wakeup: Some(wakeup), ..self }
    }

    /// Dispatches what the log holds past the stored position, a batch at a time, until it is
    /// caught up (or waits for a transaction still in flight), a race is lost, or
    /// a bounded number of batches are done.
    pub async fn run_once(&mut self) -> Result<DispatchReport, StoreError> {
        let mut report = DispatchReport::default();
        let mut hooks = None;
        for _ in 0..STEPS_PER_RUN {
            let stored = self.store.dispatch_position().await?;
            let cursor = match &mut self.cursor {
                Some(cursor) if cursor.position() == stored => cursor,
                other => other.insert(EventCursor::after(stored)),
            };
            let (events, full) = read_next(&*self.store, cursor, BATCH).await?;
            let waiting = cursor.is_waiting();
            let Some(last) = events.last().map(|e| e.id) else { break };
            let hooks = match &hooks {
                Some(hooks) => hooks,
                None => hooks.insert(self.store.active_webhooks().await?),
            };
            let planned = plan_deliveries(&events, hooks, Utc::now());
            if self.store.advance_dispatch(stored, last, &planned).await? {
                report.events += events.len();
                report.deliveries += planned.len();
            } else {
                // Another dispatcher moved it: start again from where it is now.
                report.lost_races += 1;
                self.cursor = None;
                break;
            }
            if waiting || !full {
                break;
            }
        }
        if report.deliveries > 0 {
            if let Some(wakeup) = &self.wakeup {
                wakeup.notify_waiters();
            }
        }
        Ok(report)
    }

    /// Runs [`Dispatcher::run_once`] every `interval` until the handle is shut down. A failed run
    /// is logged and tried again at the next tick.
    pub fn spawn(mut self, interval: Duration) -> DispatcherHandle {
        let (stop_tx, mut stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut total = DispatchReport::default();
            while !*stop.borrow() {
                match self.run_once().await {
                    Ok(report) => {
                        total.events += report.events;
                        total.deliveries += report.deliveries;
                        total.lost_races += report.lost_races;
                        if report.deliveries > 0 {
                            tracing::debug!(
                                events = report.events,
                                deliveries = report.deliveries,
                                "webhooks dispatched"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "webhook dispatch failed; trying again"),
                }
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
            total
        });
        DispatcherHandle { stop: stop_tx, task }
    }
}

/// A running dispatcher.
#[derive(Debug)]
pub struct DispatcherHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<DispatchReport>,
}

impl DispatcherHandle {
    /// Stops after the run in progress (its transaction is never cut short) and returns the
    /// totals of its life.
    pub async fn shutdown(self) -> DispatchReport {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}
