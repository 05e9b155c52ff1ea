//! The client side of `GET /api/events`: a parser of the stream's frames, and subscribers that
//! follow a stream, count what they are sent and note when each `order.created` arrived.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;
use tokio::sync::watch;

/// One frame of an event stream: the lines before a blank line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The `id:` field.
    pub(crate) id: Option<String>,
    /// The `data:` fields, joined by newlines.
    pub(crate) data: Option<String>,
    /// The `retry:` field, in milliseconds.
    pub(crate) retry: Option<u64>,
    /// Whether the frame held a comment line (`: keep-alive`).
    pub(crate) comment: bool,
}

/// Splits the bytes of a stream into frames, whatever chunks they come in.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    pending: Vec<u8>,
}

impl Parser {
    /// Adds `bytes` and hands every frame they complete to `on_frame`, in order.
    pub(crate) fn push(&mut self, bytes: &[u8], mut on_frame: impl FnMut(Frame)) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = self.pending[start..].windows(2).position(|w| w == b"\n\n") {
            on_frame(parse_frame(&self.pending[start..start + end]));
            start += end + 2;
        }
        self.pending.drain(..start);
    }
}

fn parse_frame(block: &[u8]) -> Frame {
    let mut frame = Frame::default();
    for line in String::from_utf8_lossy(block).split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with(':') {
            frame.comment = true;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => frame.id = Some(value.to_owned()),
            "retry" => frame.retry = value.parse().ok(),
            "data" => match &mut frame.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => frame.data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    frame
}

/// The fields of an event the tool reads.
#[derive(Deserialize)]
struct EventJson {
    id: Option<i64>,
    #[serde(rename = "type")]
    kind: String,
    session_key: Option<String>,
}

/// The client subscribers share: HTTP/1.1, the token and `Accept: text/event-stream` on every
/// request, no proxy, and no overall timeout (a stream lasts the whole run).
pub(crate) fn client(token: &str, connect_timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    let mut auth = HeaderValue::try_from(format!("Bearer {token}")).context("the token is not a valid header value")?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    reqwest::Client::builder()
        .default_headers(headers)
        .http1_only()
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(connect_timeout.min(Duration::from_secs(10)))
        .build()
        .context("cannot build the HTTP client")
}

/// `{base_url}/api/events?{query}`.
pub(crate) fn events_url(base_url: &str, query: &str) -> anyhow::Result<Url> {
    let query = query.trim_start_matches('?');
    let url =
        if query.is_empty() { format!("{base_url}/api/events") } else { format!("{base_url}/api/events?{query}") };
    Url::parse(&url).with_context(|| format!("{url} is not a URL"))
}

/// What a subscriber counted so far, readable while it runs.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Events (frames with data) received.
    pub(crate) events: AtomicU64,
    /// `order.created` events received.
    pub(crate) orders: AtomicU64,
}

/// An open stream whose `retry:` frame has arrived: the server's stream task exists.
#[derive(Debug)]
pub(crate) struct Subscription {
    response: reqwest::Response,
    parser: Parser,
    /// Frames that came with the `retry:` frame.
    early: Vec<(Frame, Instant)>,
    /// Counters the run reads while the subscriber follows the stream.
    pub(crate) progress: Arc<Progress>,
}

/// What a subscriber saw until it was told to stop.
#[derive(Debug, Default)]
pub(crate) struct Followed {
    /// Events received.
    pub(crate) events: u64,
    /// `: keep-alive` comments received.
    pub(crate) keep_alives: u64,
    /// Each `order.created` with its session key and when its bytes arrived, in order.
    pub(crate) orders: Vec<(String, Instant)>,
    /// Events whose data was not an event's JSON.
    pub(crate) invalid: u64,
    /// Why the stream ended before the subscriber was told to stop, if it did.
    pub(crate) ended: Option<String>,
}

impl Subscription {
    /// Opens `url` and reads until the `retry:` frame, for at most `timeout`.
    pub(crate) async fn open(client: &reqwest::Client, url: Url, timeout: Duration) -> anyhow::Result<Subscription> {
        let opening = async {
            let response = client.get(url.clone()).send().await.with_context(|| format!("GET {url}"))?;
            let status = response.status();
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                bail!("GET {url} answered {status}: {body}");
            }
            let mut subscription =
                Subscription { response, parser: Parser::default(), early: Vec::new(), progress: Arc::default() };
            let mut retried = false;
            while !retried {
                let Some(chunk) = subscription.response.chunk().await.with_context(|| format!("reading {url}"))? else {
                    bail!("GET {url} ended before its retry: frame");
                };
                let arrived = Instant::now();
                let early = &mut subscription.early;
                subscription.parser.push(&chunk, |frame| {
                    if retried {
                        early.push((frame, arrived));
                    } else if frame.retry.is_some() {
                        retried = true;
                    }
                });
            }
            Ok(subscription)
        };
        tokio::time::timeout(timeout, opening).await.with_context(|| format!("no retry: frame within {timeout:?}"))?
    }

    /// Follows the stream until `stop` turns true (or is dropped), counting what arrives.
    pub(crate) async fn follow(mut self, mut stop: watch::Receiver<bool>) -> Followed {
        let mut followed = Followed::default();
        let progress = Arc::clone(&self.progress);
        for (frame, arrived) in std::mem::take(&mut self.early) {
            note(&mut followed, &progress, frame, arrived);
        }
        loop {
            let chunk = tokio::select! {
                chunk = self.response.chunk() => chunk,
                stopped = stop.wait_for(|stop| *stop) => {
                    let _ = stopped;
                    return followed;
                }
            };
            let arrived = Instant::now();
            match chunk {
                Ok(Some(bytes)) => self.parser.push(&bytes, |frame| note(&mut followed, &progress, frame, arrived)),
                Ok(None) => {
                    followed.ended = Some("the server ended the stream".to_owned());
                    return followed;
                }
                Err(error) => {
                    followed.ended = Some(format!("reading the stream failed: {error}"));
                    return followed;
                }
            }
        }
    }
}

/// The `order.created` events of the log, by session key with their ids: the stream at `url`
/// (which should resume, `after=0`) is read until nothing came for `quiet` (the replay is over
/// and the live feed idle), or for at most `limit`.
pub(crate) async fn replay_orders(
    client: &reqwest::Client,
    url: Url,
    quiet: Duration,
    limit: Duration,
) -> anyhow::Result<HashMap<String, i64>> {
    let mut subscription = Subscription::open(client, url, limit).await?;
    let mut orders = HashMap::new();
    let mut keep = |frame: Frame| {
        let Some(event) = frame.data.and_then(|data| serde_json::from_str::<EventJson>(&data).ok()) else { return };
        if let (true, Some(key), Some(id)) = (event.kind == "order.created", event.session_key, event.id) {
            orders.insert(key, id);
        }
    };
    for (frame, _) in std::mem::take(&mut subscription.early) {
        keep(frame);
    }
    let until = Instant::now() + limit;
    while Instant::now() < until {
        match tokio::time::timeout(quiet, subscription.response.chunk()).await {
            Ok(Ok(Some(bytes))) => subscription.parser.push(&bytes, &mut keep),
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(error)) => return Err(error).context("reading the replay"),
        }
    }
    Ok(orders)
}

/// Counts one frame.
fn note(followed: &mut Followed, progress: &Progress, frame: Frame, arrived: Instant) {
    let Some(data) = frame.data else {
        if frame.comment {
            followed.keep_alives += 1;
        }
        return;
    };
    followed.events += 1;
    progress.events.fetch_add(1, Ordering::Relaxed);
    match serde_json::from_str::<EventJson>(&data) {
        Ok(event) if event.kind == "order.created" => {
            followed.orders.push((event.session_key.unwrap_or_default(), arrived));
            progress.orders.fetch_add(1, Ordering::Relaxed);
        }
        Ok(_) => {}
        Err(_) => followed.invalid += 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&str]) -> Vec<Frame> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk.as_bytes(), |frame| out.push(frame));
        }
        out
    }

    #[test]
    fn frames_are_split_on_blank_lines_across_chunks() {
        let out = frames(&["retry: 2000\n\nid: 4", "1\ndata: {\"a\":1}\n", "\n: keep-alive\n\nid: 42\n"]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].retry, Some(2000));
        assert_eq!((out[1].id.as_deref(), out[1].data.as_deref()), (Some("41"), Some("{\"a\":1}")));
        assert!(out[2].comment && out[2].data.is_none());
    }

    #[test]
    fn data_lines_join_and_carriage_returns_go() {
        let out = frames(&["data: a\r\ndata:b\r\nid: 7\n\n"]);
        assert_eq!(out[0].data.as_deref(), Some("a\nb"));
        assert_eq!(out[0].id.as_deref(), Some("7"));
    }

    #[test]
    fn order_created_events_are_noted_with_their_session() {
        let mut followed = Followed::default();
        let progress = Progress::default();
        let now = Instant::now();
        let event = |kind: &str, key: &str| Frame {
            data: Some(format!(r#"{{"id":1,"type":"{kind}","session_key":"{key}","data":{{}}}}"#)),
            ..Frame::default()
        };
        note(&mut followed, &progress, event("session.committed", "S-1"), now);
        note(&mut followed, &progress, event("order.created", "S-1"), now);
        note(&mut followed, &progress, Frame { comment: true, ..Frame::default() }, now);
        note(&mut followed, &progress, Frame { data: Some("nope".into()), ..Frame::default() }, now);
        assert_eq!((followed.events, followed.keep_alives, followed.invalid), (3, 1, 1));
        assert_eq!(followed.orders, [("S-1".to_owned(), now)]);
        assert_eq!(progress.orders.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_query_is_appended_to_the_events_url() {
        assert_eq!(events_url("http://h:1", "").unwrap().as_str(), "http://h:1/api/events");
        assert_eq!(
            events_url("http://h:1", "?type=order.created").unwrap().as_str(),
            "http://h:1/api/events?type=order.created"
        );
    }
}
