//! `GET /api/events`: the event log as a Server-Sent Events stream (docs/events.md).

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use omniman_core::error::{Code, FieldErrors};
use omniman_core::events::{EventFilter, EventType};
use omniman_core::ports::Store;
use tokio::sync::{broadcast, mpsc};

use crate::auth::Principal;
use crate::body::Query;
use crate::error::{ApiError, ErrorBody};
use crate::events::{EventFeed, FeedEvent, encode};
use crate::state::AppState;

/// The stream's query parameters.
const PARAMS: &[&str] = &["type", "channel_code", "after"];

/// Frames a stream may queue for a slow client before the live feed's own buffer takes over.
const STREAM_QUEUE: usize = 16;

/// Follows the event log: each event as `id:` and `data:` lines.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = "events",
    params(
        ("type" = Option<String>, Query, description = "Only these types, comma-separated (`order.created,order.status_changed`); `order.*` names every type of a group"),
        ("channel_code" = Option<String>, Query, description = "Only these channels, comma-separated; a client token sees only its own channels, and events of no channel only reach admins"),
        ("after" = Option<i64>, Query, description = "Resume after this event id (as `Last-Event-ID` does; the header wins); absent: only events from now on"),
        ("Last-Event-ID" = Option<i64>, Header, description = "The last event id received: the stream resumes after it, replaying from the log"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `id: <id>` and `data: <event JSON>` per event, `: keep-alive` comments while idle, `retry:` before the server closes a stream that fell behind", content_type = "text/event-stream", body = String),
        (status = 400, description = "`validation_error`: an unknown type or a bad id; `unknown_channel`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: a channel the token may not use", body = ErrorBody),
        (status = 404, description = "`events_unavailable`: a server that keeps no event log (in-memory store)", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn events<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let Some(feed) = state.events.clone() else {
        return Err(ApiError::coded(
            Code::EventsUnavailable,
            "this server keeps no event log (it runs on an in-memory store)",
            serde_json::Map::new(),
        ));
    };
    let query = Query::parse_known(&req, PARAMS)?;
    let filter = event_filter(&state, &who, &query).await?;
    let after = resume_after(&req, &query)?;
    Ok(event_stream(feed, filter, after))
}

/// The filter a principal asked for, narrowed to what it may see.
pub(crate) async fn event_filter<S: Store + 'static>(
    state: &AppState<S>,
    who: &Principal,
    query: &Query,
) -> Result<EventFilter, ApiError> {
    let mut errors = FieldErrors::default();
    let mut types: Vec<EventType> = Vec::new();
    for name in query.all("type").flat_map(|v| v.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
        match EventType::select(name) {
            Ok(selected) => types.extend(selected),
            Err(e) => errors.add("type", e.to_string()),
        }
    }
    errors.into_result().map_err(|e| ApiError::validation(&e))?;
    let mut channels: Vec<String> = Vec::new();
    for code in query.all("channel_code").flat_map(|v| v.split(',')).map(str::trim).filter(|c| !c.is_empty()) {
        who.require_channel(code)?;
        state.hub.named_channel(code).await?;
        channels.push(code.to_owned());
    }
    let channels = match (&who.channels, channels.is_empty()) {
        (_, false) => Some(channels),
        (Some(own), true) => Some(own.clone()),
        (None, true) => None,
    };
    types.sort_unstable();
    types.dedup();
    Ok(EventFilter { types: (!types.is_empty()).then_some(types), channels })
}

/// Where the stream resumes: `Last-Event-ID` (what a reconnecting `EventSource` sends), else
/// `after`, else from now on.
pub(crate) fn resume_after(req: &HttpRequest, query: &Query) -> Result<Option<i64>, ApiError> {
    if let Some(value) = req.headers().get("last-event-id") {
        let text = value.to_str().unwrap_or("").trim();
        if text.is_empty() {
            return Ok(None);
        }
        return parse_id(text).map(Some).ok_or_else(|| ApiError::field("Last-Event-ID", ID_RULE));
    }
    match query.get("after") {
        None => Ok(None),
        Some(text) => parse_id(text.trim()).map(Some).ok_or_else(|| ApiError::field("after", ID_RULE)),
    }
}

const ID_RULE: &str = "must be an event id (an integer ≥ 0)";

fn parse_id(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().filter(|id| *id >= 0)
}

/// The streaming answer: a task per stream replays the log after `after`, then forwards the live
/// feed, until the client goes, the feed closes, or the client falls too far behind.
pub(crate) fn event_stream(feed: EventFeed, filter: EventFilter, after: Option<i64>) -> HttpResponse {
    let (frames, rx) = mpsc::channel::<Bytes>(STREAM_QUEUE);
    tokio::spawn(run_stream(feed, filter, after, frames));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (Ok::<Bytes, std::convert::Infallible>(frame), rx))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies that buffer (nginx) would hold events back.
        .insert_header(("X-Accel-Buffering", "no"))
        // Never compressed: an encoder holds small frames back until it has a block.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .streaming(body)
}

/// Sent first: how long a client waits before reconnecting.
const RETRY_HINT: &[u8] = b"retry: 2000\n\n";
/// Sent before closing a stream that fell behind: reconnect (with `Last-Event-ID`) at once.
const LAGGED: &[u8] = b": fell behind the live feed; reconnect with Last-Event-ID\nretry: 100\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

async fn run_stream(feed: EventFeed, filter: EventFilter, after: Option<i64>, frames: mpsc::Sender<Bytes>) {
    let subscription = feed.subscribe();
    let mut live = subscription.live;
    let mut closed = subscription.closed;
    if frames.send(Bytes::from_static(RETRY_HINT)).await.is_err() {
        return;
    }
    // Replay: events up to the subscription's position come from the log.
    let mut sent = after.map_or(subscription.position, |a| a.min(subscription.position));
    let batch = feed.settings().batch;
    while sent < subscription.position {
        let read = match feed.log().read(sent, batch).await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(error = %e, "replaying the event log failed; closing the stream");
                let _ = frames.send(Bytes::from_static(LAGGED)).await;
                return;
            }
        };
        let Some(last) = read.events.last().map(|e| e.id) else { break };
        for event in read.events.into_iter().filter(|e| e.id <= subscription.position) {
            if filter.matches(&event) && frames.send(frame(&encode(event))).await.is_err() {
                return;
            }
        }
        sent = last.min(subscription.position);
    }
    sent = sent.max(subscription.position);
    let mut heartbeat = tokio::time::interval(feed.settings().heartbeat);
    heartbeat.tick().await;
    loop {
        let out = tokio::select! {
            received = live.recv() => match received {
                Ok(event) if event.event.id > sent && filter.matches(&event.event) => {
                    sent = event.event.id;
                    frame(&event)
                }
                Ok(event) => {
                    sent = sent.max(event.event.id);
                    continue;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => Bytes::from_static(LAGGED),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = heartbeat.tick() => Bytes::from_static(KEEP_ALIVE),
            _ = closed.wait_for(|closed| *closed) => return,
            () = frames.closed() => return,
        };
        let lagged = out.as_ref() == LAGGED;
        if lagged {
            feed.lagged();
        }
        if frames.send(out).await.is_err() || lagged {
            return;
        }
    }
}

/// One event's lines.
fn frame(event: &FeedEvent) -> Bytes {
    let mut out = Vec::with_capacity(event.json.len() + 32);
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(event.event.id.to_string().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(&event.json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use chrono::Utc;
    use omniman_core::events::{EventRead, LogEvent};
    use omniman_core::ports::StoreResult;

    use super::*;
    use crate::events::{EventSource, FeedSettings};

    /// A log in memory: events 1, 2, 3 … appended by the test.
    #[derive(Default)]
    struct MemoryLog(Mutex<Vec<LogEvent>>);

    impl MemoryLog {
        fn append(&self, n: usize, kind: EventType) {
            let mut events = self.0.lock().unwrap();
            for _ in 0..n {
                let id = i64::try_from(events.len()).unwrap() + 1;
                events.push(LogEvent {
                    id,
                    kind,
                    channel_code: Some("pos".into()),
                    session_key: Some(format!("s-{id}")),
                    order_ref: None,
                    data: serde_json::json!({"rev": id}),
                    at: Utc::now(),
                });
            }
        }
    }

    impl EventSource for MemoryLog {
        fn read<'a>(
            &'a self,
            after: i64,
            limit: usize,
        ) -> std::pin::Pin<Box<dyn Future<Output = StoreResult<EventRead>> + Send + 'a>> {
            let events = self.0.lock().unwrap().iter().filter(|e| e.id > after).take(limit).cloned().collect();
            Box::pin(async move { Ok(EventRead { events, ..EventRead::default() }) })
        }

        fn horizon(&self) -> std::pin::Pin<Box<dyn Future<Output = StoreResult<i64>> + Send + '_>> {
            Box::pin(async { Ok(0) })
        }

        fn last_id(&self) -> std::pin::Pin<Box<dyn Future<Output = StoreResult<i64>> + Send + '_>> {
            let last = self.0.lock().unwrap().last().map_or(0, |e| e.id);
            Box::pin(async move { Ok(last) })
        }
    }

    async fn feed(log: &Arc<MemoryLog>, settings: FeedSettings) -> EventFeed {
        EventFeed::start(log.clone(), settings).await.unwrap()
    }

    /// Opens a stream; returns its frames as text.
    fn open(feed: &EventFeed, filter: EventFilter, after: Option<i64>) -> mpsc::Receiver<Bytes> {
        let (frames, rx) = mpsc::channel(STREAM_QUEUE);
        tokio::spawn(run_stream(feed.clone(), filter, after, frames));
        rx
    }

    /// The ids of the events among the next frames, until `n` events or a pause.
    async fn next_ids(rx: &mut mpsc::Receiver<Bytes>, n: usize) -> Vec<i64> {
        let mut ids = Vec::new();
        while ids.len() < n {
            let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await else { break };
            let text = String::from_utf8(frame.to_vec()).unwrap();
            if let Some(id) = text.strip_prefix("id: ").and_then(|rest| rest.split('\n').next()) {
                ids.push(id.parse().unwrap());
            }
        }
        ids
    }

    #[tokio::test]
    async fn a_resumed_stream_replays_then_follows_without_gaps_or_repeats() {
        let log = Arc::new(MemoryLog::default());
        log.append(5, EventType::SessionOpened);
        let feed = feed(&log, FeedSettings::default()).await;
        let mut rx = open(&feed, EventFilter::default(), Some(2));
        assert_eq!(next_ids(&mut rx, 3).await, [3, 4, 5]);
        log.append(2, EventType::SessionModified);
        feed.wake();
        assert_eq!(next_ids(&mut rx, 2).await, [6, 7]);
        // Without a resume point, only what comes next.
        let mut fresh = open(&feed, EventFilter::default(), None);
        log.append(1, EventType::SessionModified);
        feed.wake();
        assert_eq!(next_ids(&mut fresh, 1).await, [8]);
        assert_eq!(next_ids(&mut rx, 1).await, [8]);
    }

    #[tokio::test]
    async fn filters_apply_to_replayed_and_live_events() {
        let log = Arc::new(MemoryLog::default());
        log.append(2, EventType::SessionOpened);
        log.append(1, EventType::OrderCreated);
        let feed = feed(&log, FeedSettings::default()).await;
        let orders = EventFilter { types: Some(vec![EventType::OrderCreated]), channels: None };
        let mut rx = open(&feed, orders, Some(0));
        log.append(1, EventType::SessionOpened);
        log.append(1, EventType::OrderCreated);
        feed.wake();
        assert_eq!(next_ids(&mut rx, 2).await, [3, 5]);
    }

    /// A stream that is not read falls behind the live feed: it is closed with a retry hint, and
    /// the writers (the feed) never waited for it.
    #[tokio::test]
    async fn a_stream_that_falls_behind_is_closed_with_a_retry_hint() {
        let log = Arc::new(MemoryLog::default());
        let feed = feed(&log, FeedSettings { buffer: 4, ..FeedSettings::default() }).await;
        let mut slow = open(&feed, EventFilter::default(), None);
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..10 {
            log.append(10, EventType::SessionModified);
            feed.wake();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(2), async {
                while feed.position() < 100 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await,
            Ok(()),
            "the feed went on"
        );
        let mut frames = Vec::new();
        while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(2), slow.recv()).await {
            frames.push(String::from_utf8(frame.to_vec()).unwrap());
        }
        let last = frames.last().unwrap();
        assert!(last.contains("retry: 100"), "{last}");
        assert!(frames.len() < 100, "the stream ended early: {} frames", frames.len());
        assert_eq!(feed.lagged_streams(), 1);
    }

    #[tokio::test]
    async fn an_idle_stream_sends_keep_alive_comments() {
        let log = Arc::new(MemoryLog::default());
        let settings = FeedSettings { heartbeat: Duration::from_millis(50), ..FeedSettings::default() };
        let feed = feed(&log, settings).await;
        let mut rx = open(&feed, EventFilter::default(), None);
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(RETRY_HINT));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(KEEP_ALIVE));
        feed.close();
        assert_eq!(tokio::time::timeout(Duration::from_secs(2), rx.recv()).await, Ok(None), "closed with the feed");
    }
}
