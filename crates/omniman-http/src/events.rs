//! The live event feed behind `GET /api/events` (docs/events.md): one task per process follows
//! the database's event log and fans each event out to every subscriber of this process.
//!
//! Each instance follows the log itself, so every instance sees every event, whichever instance
//! wrote it: the log is the fan-out. A subscriber first replays what it missed from the log
//! (`Last-Event-ID`), then takes the live events; the hand-over is exact (the live feed and its
//! starting position are taken together, under the lock the feed sends under). A subscriber that falls behind by more than the buffer loses its
//! place in the live feed and is told to reconnect: writers never wait for readers.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::web::Bytes;
use omniman_core::events::{EventCursor, EventLog, EventRead, LogEvent, read_next};
use omniman_core::ports::StoreResult;
use tokio::sync::{Notify, broadcast, watch};

/// The event log as the feed reads it (any [`EventLog`] is one).
pub trait EventSource: Send + Sync + 'static {
    /// See [`EventLog::read_events`].
    fn read<'a>(
        &'a self,
        after: i64,
        limit: usize,
    ) -> Pin<Box<dyn Future<Output = StoreResult<EventRead>> + Send + 'a>>;
    /// See [`EventLog::transaction_horizon`].
    fn horizon(&self) -> Pin<Box<dyn Future<Output = StoreResult<i64>> + Send + '_>>;
    /// See [`EventLog::last_event_id`].
    fn last_id(&self) -> Pin<Box<dyn Future<Output = StoreResult<i64>> + Send + '_>>;
}

/// So that the core's [`read_next`] follows a feed's log.
impl EventLog for dyn EventSource + '_ {
    fn read_events(&self, after: i64, limit: usize) -> impl Future<Output = StoreResult<EventRead>> + Send {
        self.read(after, limit)
    }

    fn transaction_horizon(&self) -> impl Future<Output = StoreResult<i64>> + Send {
        self.horizon()
    }

    fn last_event_id(&self) -> impl Future<Output = StoreResult<i64>> + Send {
        self.last_id()
    }
}

impl<L: EventLog + 'static> EventSource for L {
    fn read<'a>(
        &'a self,
        after: i64,
        limit: usize,
    ) -> Pin<Box<dyn Future<Output = StoreResult<EventRead>> + Send + 'a>> {
        Box::pin(self.read_events(after, limit))
    }

    fn horizon(&self) -> Pin<Box<dyn Future<Output = StoreResult<i64>> + Send + '_>> {
        Box::pin(self.transaction_horizon())
    }

    fn last_id(&self) -> Pin<Box<dyn Future<Output = StoreResult<i64>> + Send + '_>> {
        Box::pin(self.last_event_id())
    }
}

/// How the feed follows the log.
#[derive(Clone, Debug)]
pub struct FeedSettings {
    /// Live events a subscriber may fall behind by before it is told to reconnect.
    pub buffer: usize,
    /// Events read at once.
    pub batch: usize,
    /// The longest wait between reads when nothing wakes the feed (writes of other processes on
    /// SQLite; a lost `LISTEN` connection on PostgreSQL).
    pub poll: Duration,
    /// The wait before reading again while a transaction in flight holds the cursor.
    pub hole_poll: Duration,
    /// The least time between two reads: writes that wake the feed meanwhile are read together,
    /// so a busy server reads the log at most this often instead of once per write.
    pub min_read_interval: Duration,
    /// How often an idle stream sends a comment, so that proxies keep it open.
    pub heartbeat: Duration,
}

impl Default for FeedSettings {
    fn default() -> FeedSettings {
        FeedSettings {
            buffer: 1024,
            batch: 500,
            poll: Duration::from_secs(1),
            hole_poll: Duration::from_millis(5),
            min_read_interval: Duration::from_millis(2),
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// An event with its `data:` JSON, encoded once for every subscriber.
#[derive(Debug)]
pub(crate) struct FeedEvent {
    pub(crate) event: LogEvent,
    pub(crate) json: Bytes,
}

/// What the tailer publishes and a subscriber reads together (see [`EventFeed::subscribe`]).
struct Published {
    sender: broadcast::Sender<Arc<FeedEvent>>,
    /// Every event up to this id has been sent (or never existed).
    position: i64,
}

/// The feed of one process. Cheap to clone.
#[derive(Clone)]
pub struct EventFeed {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<dyn EventSource>,
    settings: FeedSettings,
    published: Mutex<Published>,
    wake: Notify,
    /// Told when a stream subscribes: with nobody subscribed, the feed waits on this instead of
    /// `wake`.
    subscribed: Notify,
    closed: watch::Sender<bool>,
    /// Streams closed for falling behind.
    lagged: AtomicU64,
    /// Failed reads of the log.
    read_errors: AtomicU64,
    /// Reads of the log.
    reads: AtomicU64,
}

impl Inner {
    /// What the tailer publishes, under the lock subscribers take it with.
    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribers right now.
    fn subscribers(&self) -> usize {
        self.published().sender.receiver_count()
    }
}

impl fmt::Debug for EventFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFeed").field("position", &self.position()).finish_non_exhaustive()
    }
}

/// A subscriber's starting point: the live feed from `position` on, and the log before it.
pub(crate) struct Subscription {
    pub(crate) live: broadcast::Receiver<Arc<FeedEvent>>,
    /// Events up to here were sent before `live` existed: they come from the log.
    pub(crate) position: i64,
    pub(crate) closed: watch::Receiver<bool>,
}

impl EventFeed {
    /// Starts following `log` from its current end, in a task on the current Tokio runtime.
    /// Call [`wake`](Self::wake) when the log may have grown; it is also read every
    /// [`FeedSettings::poll`].
    pub async fn start(log: Arc<dyn EventSource>, settings: FeedSettings) -> StoreResult<EventFeed> {
        let position = log.last_id().await?;
        let (sender, _) = broadcast::channel(settings.buffer.max(1));
        let feed = EventFeed {
            inner: Arc::new(Inner {
                log,
                settings,
                published: Mutex::new(Published { sender, position }),
                wake: Notify::new(),
                subscribed: Notify::new(),
                closed: watch::Sender::new(false),
                lagged: AtomicU64::new(0),
                read_errors: AtomicU64::new(0),
                reads: AtomicU64::new(0),
            }),
        };
        tokio::spawn(follow(Arc::downgrade(&feed.inner), EventCursor::after(position)));
        Ok(feed)
    }

    /// Tells the feed the log may have grown.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Ends every stream (at shutdown, so that open streams do not hold it up) and stops
    /// following the log.
    pub fn close(&self) {
        self.inner.closed.send_replace(true);
        self.inner.wake.notify_one();
        self.inner.subscribed.notify_one();
    }

    /// The last id sent to subscribers.
    pub fn position(&self) -> i64 {
        self.published().position
    }

    /// Subscribers right now.
    pub fn subscribers(&self) -> usize {
        self.inner.subscribers()
    }

    /// Streams closed so far for falling behind.
    pub fn lagged_streams(&self) -> u64 {
        self.inner.lagged.load(Ordering::Relaxed)
    }

    /// Failed reads of the log so far (each retried).
    pub fn read_errors(&self) -> u64 {
        self.inner.read_errors.load(Ordering::Relaxed)
    }

    /// Reads of the log so far.
    pub fn reads(&self) -> u64 {
        self.inner.reads.load(Ordering::Relaxed)
    }

    /// Counts a stream closed for falling behind.
    pub(crate) fn lagged(&self) {
        self.inner.lagged.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn settings(&self) -> &FeedSettings {
        &self.inner.settings
    }

    pub(crate) fn log(&self) -> &Arc<dyn EventSource> {
        &self.inner.log
    }

    /// The live feed and the position it starts after, taken under the lock the tailer sends
    /// under: every event up to the position was sent before the receiver existed, every later
    /// one reaches it.
    pub(crate) fn subscribe(&self) -> Subscription {
        let published = self.published();
        let subscription = Subscription {
            live: published.sender.subscribe(),
            position: published.position,
            closed: self.inner.closed.subscribe(),
        };
        drop(published);
        self.inner.subscribed.notify_one();
        subscription
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.inner.published()
    }
}

/// The tailer: reads the log after its cursor and sends what the cursor delivers. Ends when the
/// feed is dropped or closed.
async fn follow(feed: std::sync::Weak<Inner>, mut cursor: EventCursor) {
    let mut failures: u32 = 0;
    let mut last_read: Option<tokio::time::Instant> = None;
    loop {
        let Some(inner) = feed.upgrade() else { return };
        if *inner.closed.borrow() {
            return;
        }
        let settings = inner.settings.clone();
        if let Some(last) = last_read {
            tokio::time::sleep_until(last + settings.min_read_interval).await;
        }
        last_read = Some(tokio::time::Instant::now());
        inner.reads.fetch_add(1, Ordering::Relaxed);
        let wait = match read_next(&*inner.log, &mut cursor, settings.batch).await {
            Ok((events, full)) => {
                failures = 0;
                if !events.is_empty() {
                    let encoded: Vec<Arc<FeedEvent>> = events.into_iter().map(encode).collect();
                    let mut published = inner.published();
                    for event in encoded {
                        // No receiver is no error: nobody is listening now.
                        let _ = published.sender.send(event);
                    }
                    published.position = cursor.position();
                }
                if full {
                    None
                } else if cursor.is_waiting() {
                    Some(settings.hole_poll)
                } else {
                    Some(settings.poll)
                }
            }
            Err(e) => {
                inner.read_errors.fetch_add(1, Ordering::Relaxed);
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "reading the event log failed; retrying");
                Some(Duration::from_millis(100 * u64::from(failures.min(20))))
            }
        };
        // With nobody subscribed, writes do not wake the feed: it reads at its poll, and at once
        // when a stream subscribes, which then starts from the position read last (at most one
        // poll old) and gets the rest live. A busy server with no stream open does not read the
        // log after every write.
        let listening = inner.subscribers() > 0;
        match wait {
            Some(wait) if listening => {
                let _ = tokio::time::timeout(wait, inner.wake.notified()).await;
            }
            Some(_) => {
                let _ = tokio::time::timeout(settings.poll, inner.subscribed.notified()).await;
            }
            None => {}
        }
    }
}

/// An event with its `data:` JSON.
pub(crate) fn encode(event: LogEvent) -> Arc<FeedEvent> {
    let json = serde_json::to_vec(&event).map_or_else(|_| Bytes::from_static(b"{}"), Bytes::from);
    Arc::new(FeedEvent { event, json })
}

/// The feed's metrics, read at scrape time (`GET /metrics`).
#[derive(Debug)]
pub(crate) struct FeedMetrics(pub(crate) EventFeed);

impl prometheus_client::collector::Collector for FeedMetrics {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::{MetricType, TypedMetric};

        let feed = &self.0;
        let subscribers = i64::try_from(feed.subscribers()).unwrap_or(i64::MAX);
        let gauges = [
            ("event_subscribers", "Event streams open on this instance", subscribers),
            ("event_feed_position", "The last event id this instance has sent to its streams", feed.position()),
        ];
        for (name, help, value) in gauges {
            ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        let counters = [
            (
                "event_streams_lagged",
                "Event streams closed for falling behind the live feed (their clients resume from the log)",
                feed.lagged_streams(),
            ),
            ("event_log_reads", "Reads of the event log by this instance's feed", feed.reads()),
            ("event_log_read_errors", "Failed reads of the event log (retried)", feed.read_errors()),
        ];
        for (name, help, value) in counters {
            let metric = encoder.encode_descriptor(name, help, None, <ConstCounter<u64> as TypedMetric>::TYPE)?;
            ConstCounter::new(value).encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use omniman_core::events::{EventLog, EventRead};
    use omniman_core::ports::StoreResult;

    use super::{EventFeed, FeedSettings};

    /// An empty log that counts its reads.
    #[derive(Default)]
    struct Counted(AtomicU64);

    impl EventLog for Counted {
        async fn read_events(&self, _after: i64, _limit: usize) -> StoreResult<EventRead> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(EventRead { events: Vec::new(), in_flight: Vec::new(), in_flight_from: None })
        }

        async fn transaction_horizon(&self) -> StoreResult<i64> {
            Ok(0)
        }

        async fn last_event_id(&self) -> StoreResult<i64> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn writes_wake_the_feed_only_while_a_stream_is_subscribed() {
        let log = Arc::new(Counted::default());
        let settings = FeedSettings { poll: Duration::from_secs(60), ..FeedSettings::default() };
        let feed = EventFeed::start(log.clone(), settings).await.unwrap();
        let reads = || log.0.load(Ordering::SeqCst);
        let writes = async || {
            for _ in 0..20 {
                feed.wake();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = reads();
        writes().await;
        assert_eq!(reads(), before, "nobody subscribed: writes are left for the poll");

        let subscription = feed.subscribe();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let subscribed = reads();
        assert!(subscribed > before, "a subscriber wakes the feed at once");
        writes().await;
        assert!(reads() > subscribed, "with a subscriber, writes wake the feed");
        drop(subscription);
        feed.close();
    }
}
