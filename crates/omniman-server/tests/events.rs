//! `GET /api/events` against the real binary: live delivery, filters and scopes, resuming with
//! `Last-Event-ID` across a restart (nothing missed, nothing twice), and fan-out across two
//! instances on one PostgreSQL database.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{Api, Running, apply_channels, cli_out, sqlite_url, temp_dir};
use omniman_storage::test_support::TestDb;

/// An open event stream, parsed frame by frame.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

/// One frame: its id (events only) and its data (events) or comment.
#[derive(Debug)]
struct Frame {
    id: Option<i64>,
    data: Option<Value>,
    retry: Option<u64>,
}

impl Stream {
    async fn open(base: &str, token: &str, query: &str, last_event_id: Option<i64>) -> Result<Stream, (u16, Value)> {
        Stream::open_with(base, token, query, last_event_id, "identity").await
    }

    /// As a browser opens it: willing to take any compression (which would hold small frames
    /// back, so the stream never uses one).
    async fn open_as_browser(base: &str, token: &str) -> Stream {
        Stream::open_with(base, token, "", None, "gzip, deflate, br, zstd").await.unwrap()
    }

    async fn open_with(
        base: &str,
        token: &str,
        query: &str,
        last_event_id: Option<i64>,
        accept_encoding: &str,
    ) -> Result<Stream, (u16, Value)> {
        let mut request = reqwest::Client::new()
            .get(format!("{base}/api/events{query}"))
            .bearer_auth(token)
            .header("Accept", "text/event-stream")
            .header("Accept-Encoding", accept_encoding);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        if response.status() != 200 {
            let status = response.status().as_u16();
            return Err((status, response.json().await.unwrap_or(Value::Null)));
        }
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["content-encoding"], "identity", "never compressed");
        Ok(Stream { response, buffer: String::new() })
    }

    /// The next frame, or `None` when the stream ended or nothing came within `within`.
    async fn frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame { id: None, data: None, retry: None };
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        frame.id = Some(id.parse().unwrap());
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        frame.data = Some(serde_json::from_str(data).unwrap());
                    } else if let Some(retry) = line.strip_prefix("retry: ") {
                        frame.retry = Some(retry.parse().unwrap());
                    }
                }
                return Some(frame);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                Ok(_) | Err(_) => return None,
            }
        }
    }

    /// The next `n` events (comments skipped), each within `within`.
    async fn events(&mut self, n: usize, within: Duration) -> Vec<Value> {
        let mut events = Vec::new();
        while events.len() < n {
            let frame =
                self.frame(within).await.unwrap_or_else(|| panic!("only {} of {n} events: {events:?}", events.len()));
            if let (Some(id), Some(mut data)) = (frame.id, frame.data) {
                assert_eq!(data["id"], id, "the id line and the JSON agree");
                data.as_object_mut().unwrap().remove("at");
                events.push(data);
            }
        }
        events
    }

    /// No event arrives within `within`.
    async fn quiet(&mut self, within: Duration) {
        while let Some(frame) = self.frame(within).await {
            assert!(frame.id.is_none(), "no event expected: {:?}", frame.data);
        }
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

/// Opens a session, adds a line and commits it: 4 events.
async fn sale(api: &Api, channel: &str) -> String {
    let (status, body) = api.post("/sessions", &json!({"channel_code": channel})).await;
    assert_eq!(status, 201, "{body}");
    let key = body["session_key"].as_str().unwrap().to_owned();
    let add =
        json!({"channel_code": channel, "ops": [{"op": "add_line", "sku": "CAKE", "qty": 1, "unit_price_q": 500}]});
    let (status, body) = api.post(&format!("/sessions/{key}/modify"), &add).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api.post(&format!("/sessions/{key}/commit"), &json!({"channel_code": channel})).await;
    assert_eq!(status, 201, "{body}");
    key
}

fn channels() -> Value {
    json!([
        {"code": "pos", "name": "Point of sale", "pricing_policy": "external"},
        {"code": "web", "name": "Web shop", "pricing_policy": "external"}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_live_filtered_and_scoped() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "events.db");
    apply_channels(&url, dir.path(), &channels());
    let admin = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let till = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client", "--channels", "pos"]);
    let server = Running::serve(&url, &["--workers", "0"]).await;
    let api = Api::new(&server.base, &admin);

    let mut everything = Stream::open_as_browser(&server.base, &admin).await;
    let mut orders = Stream::open(&server.base, &admin, "?type=order.*", None).await.unwrap();
    let mut own = Stream::open(&server.base, &till, "", None).await.unwrap();
    assert_eq!(everything.frame(Duration::from_secs(5)).await.unwrap().retry, Some(2000), "a retry hint first");
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("omniman_event_subscribers 3"), "{metrics}");

    let started = Instant::now();
    let key = sale(&api, "pos").await;
    let events = everything.events(4, Duration::from_secs(5)).await;
    let latency = started.elapsed();
    assert_eq!(types(&events), ["session.opened", "session.modified", "session.committed", "order.created"]);
    assert!(events.iter().all(|e| e["channel_code"] == "pos" && e["session_key"] == key.as_str()));
    assert_eq!(events[1]["data"]["rev"], 1);
    let order_ref = events[3]["order_ref"].as_str().unwrap().to_owned();
    assert_eq!(events[3]["data"], json!({"status": "new", "total_q": 500, "currency": "BRL"}));
    assert!(ids(&events).windows(2).all(|w| w[0] < w[1]), "ids grow");
    assert!(latency < Duration::from_secs(2), "a sale's events arrive within its own round trips: {latency:?}");

    let (status, body) = api.post(&format!("/orders/{order_ref}/transition"), &json!({"status": "confirmed"})).await;
    assert_eq!(status, 200, "{body}");
    let only_orders = orders.events(2, Duration::from_secs(5)).await;
    assert_eq!(types(&only_orders), ["order.created", "order.status_changed"]);
    assert_eq!(only_orders[1]["data"], json!({"from": "new", "to": "confirmed"}));

    // docs/events.md shows real events: the same fields, at the top and in `data`.
    let real: Vec<&Value> = events.iter().chain(&only_orders).collect();
    let documented: Vec<Value> = include_str!("../../../docs/events.md")
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap_or_else(|e| panic!("{data}: {e}")))
        .collect();
    assert!(documented.len() >= 2);
    for doc in &documented {
        let kind = doc["type"].as_str().unwrap();
        let same = real.iter().find(|e| e["type"] == kind).unwrap_or_else(|| panic!("no real {kind}"));
        let keys = |v: &Value| v.as_object().unwrap().keys().filter(|k| *k != "at").cloned().collect::<Vec<_>>();
        let (mut documented_keys, mut real_keys) = (keys(doc), keys(same));
        documented_keys.sort();
        real_keys.sort();
        assert_eq!(documented_keys, real_keys, "{kind}");
        let (mut doc_data, mut real_data) = (keys(&doc["data"]), keys(&same["data"]));
        doc_data.sort();
        real_data.sort();
        assert_eq!(doc_data, real_data, "{kind} data");
    }

    // A client token sees its own channel only.
    sale(&api, "web").await;
    let own_events = own.events(5, Duration::from_secs(5)).await;
    assert!(own_events.iter().all(|e| e["channel_code"] == "pos"), "{own_events:?}");
    own.quiet(Duration::from_millis(300)).await;

    let refused = Stream::open(&server.base, &till, "?channel_code=web", None).await.err().unwrap();
    assert_eq!((refused.0, refused.1["error"]["code"].as_str()), (403, Some("forbidden")));
    let refused = Stream::open(&server.base, &admin, "?type=order.deleted", None).await.err().unwrap();
    assert_eq!((refused.0, refused.1["error"]["code"].as_str()), (400, Some("validation_error")));
    let refused = Stream::open(&server.base, &admin, "", Some(-1)).await.err().unwrap();
    assert_eq!(refused.0, 400);
    let refused = Stream::open(&server.base, &admin, "?channel_code=nowhere", None).await.err().unwrap();
    assert_eq!((refused.0, refused.1["error"]["code"].as_str()), (400, Some("unknown_channel")));
}

/// A client that was away while the server restarted and more was written resumes with
/// `Last-Event-ID`: it gets every event after it, in order, and none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_without_loss_across_a_restart() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "resume.db");
    apply_channels(&url, dir.path(), &channels());
    let admin = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);

    let server = Running::serve(&url, &["--workers", "0"]).await;
    let api = Api::new(&server.base, &admin);
    let mut stream = Stream::open(&server.base, &admin, "", None).await.unwrap();
    sale(&api, "pos").await;
    let before = stream.events(4, Duration::from_secs(5)).await;
    // Written while the client reads no more: it has seen only the first two.
    sale(&api, "web").await;
    let seen = before[1]["id"].as_i64().unwrap();
    drop(stream);
    let status = server.stop();
    assert!(status.success(), "SIGTERM ends the server cleanly even with a stream open: {status:?}");

    // Written while no server runs (the CLI), then through the restarted server.
    cli_out(&url, &["tokens", "create", "--name", "later", "--role", "client"]);
    let server = Running::serve(&url, &["--workers", "0"]).await;
    let api = Api::new(&server.base, &admin);
    let mut resumed = Stream::open(&server.base, &admin, "", Some(seen)).await.unwrap();
    sale(&api, "pos").await;
    let after = resumed.events(2 + 4 + 4, Duration::from_secs(5)).await;
    let mut expected: Vec<i64> = (seen + 1..=seen + 10).collect();
    expected.sort_unstable();
    assert_eq!(ids(&after), expected, "every event after the last one seen, once, in order");
    assert_eq!(
        types(&after)[..6],
        [
            "session.committed",
            "order.created",
            "session.opened",
            "session.modified",
            "session.committed",
            "order.created"
        ]
    );
    resumed.quiet(Duration::from_millis(300)).await;

    // `after=` does the same for clients that cannot send headers.
    let mut by_query =
        Stream::open(&server.base, &admin, &format!("?after={seen}&type=order.created"), None).await.unwrap();
    assert_eq!(by_query.events(3, Duration::from_secs(5)).await.len(), 3);
}

/// Two instances on one PostgreSQL database: a subscriber of either sees what was written
/// through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fan_out_across_instances() {
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url().to_owned();
    let dir = temp_dir();
    apply_channels(&url, dir.path(), &channels());
    let admin = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let a = Running::serve(&url, &["--workers", "0"]).await;
    let b = Running::serve(&url, &["--workers", "0"]).await;
    let mut on_a = Stream::open(&a.base, &admin, "", None).await.unwrap();
    let mut on_b = Stream::open(&b.base, &admin, "", None).await.unwrap();

    let started = Instant::now();
    sale(&Api::new(&a.base, &admin), "pos").await;
    sale(&Api::new(&b.base, &admin), "web").await;
    let seen_a = on_a.events(8, Duration::from_secs(5)).await;
    let seen_b = on_b.events(8, Duration::from_secs(5)).await;
    assert_eq!(seen_a, seen_b, "both instances deliver the same log");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(seen_a.iter().filter(|e| e["type"] == "order.created").count(), 2);
}
