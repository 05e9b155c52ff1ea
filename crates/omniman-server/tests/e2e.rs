//! The real binary end to end: session → modify → commit → transition → events over HTTP, on
//! SQLite and on PostgreSQL, plus the operator commands it relies on.

mod common;

use std::time::Duration;

use common::{Api, Running, apply_channels, cli_out, sqlite_url, temp_dir};
use omniman_storage::test_support::TestDb;
use serde_json::{Value, json};

fn channels() -> Value {
    json!([
        {"code": "pos", "name": "Point of sale"},
        {"code": "web", "name": "Web shop", "pricing_policy": "external"}
    ])
}

async fn walk_through(url: &str) {
    let dir = temp_dir();
    apply_channels(url, dir.path(), &channels());
    let token = cli_out(url, &["tokens", "create", "--name", "till-1", "--role", "client"]);
    assert!(token.starts_with("omni_"), "{token}");
    let server = Running::serve(url, &[]).await;
    let api = Api::new(&server.base, &token);

    let (status, opened) =
        api.post("/sessions", &json!({"channel_code": "pos", "handle_type": "table", "handle_ref": "12"})).await;
    assert_eq!(status, 201, "{opened}");
    let key = opened["session_key"].as_str().unwrap().to_owned();
    let (status, again) =
        api.post("/sessions", &json!({"channel_code": "pos", "handle_type": "table", "handle_ref": "12"})).await;
    assert_eq!((status, &again["id"]), (200, &opened["id"]), "get-or-open by handle");

    let ops = json!({"channel_code": "pos", "ops": [
        {"op": "add_line", "sku": "COFFEE", "qty": 2, "unit_price_q": 450},
        {"op": "add_line", "sku": "CAKE", "qty": "1.5", "unit_price_q": 333},
        {"op": "set_data", "path": "notes", "value": "no sugar"}
    ]});
    let (status, modified) = api.post(&format!("/sessions/{key}/modify"), &ops).await;
    assert_eq!(status, 200, "{modified}");
    assert_eq!((modified["rev"].as_i64(), modified["total_q"].as_i64()), (Some(1), Some(1400)));
    assert_eq!(modified["items"][1]["qty"], json!("1.500"));

    let (status, bad) = api
        .post(
            &format!("/sessions/{key}/modify"),
            &json!({"channel_code": "pos", "ops": [{"op": "remove_line", "line_id": "L-NOPE"}]}),
        )
        .await;
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("unknown_line_id")));

    let commit = json!({"channel_code": "pos", "idempotency_key": "till-1-0001"});
    let (status, committed) = api.post(&format!("/sessions/{key}/commit"), &commit).await;
    assert_eq!(status, 201, "{committed}");
    let order_ref = committed["order_ref"].as_str().unwrap().to_owned();
    let (status, replay) = api.post(&format!("/sessions/{key}/commit"), &commit).await;
    assert_eq!((status, &replay["order_ref"]), (201, &committed["order_ref"]), "a replay keeps its code and order");
    let (status, other_key) = api
        .post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "pos", "idempotency_key": "till-1-0002"}))
        .await;
    assert_eq!((status, other_key["status"].as_str()), (200, Some("already_committed")));

    let (status, order) = api.post(&format!("/orders/{order_ref}/transition"), &json!({"status": "confirmed"})).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!((order["status"].as_str(), order["previous_status"].as_str()), (Some("confirmed"), Some("new")));
    let (status, refused) = api.post(&format!("/orders/{order_ref}/transition"), &json!({"status": "delivered"})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("invalid_transition")));

    let (status, events) = api.get(&format!("/orders/{order_ref}/events")).await;
    assert_eq!(status, 200);
    let events = events.get("results").unwrap_or(&events).as_array().unwrap().clone();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "status_changed"]);
    assert_eq!(events[1]["actor"], json!("till-1"));
    assert_eq!(events[1]["seq"], json!(1));

    let (status, listed) = api.get("/orders?channel_code=pos").await;
    assert_eq!((status, listed["results"].as_array().map(Vec::len)), (200, Some(1)));
    drop(server);
}

#[tokio::test]
async fn walk_through_on_sqlite() {
    let dir = temp_dir();
    walk_through(&sqlite_url(dir.path(), "walk")).await;
}

#[tokio::test]
async fn walk_through_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    walk_through(db.url()).await;
}

#[tokio::test]
async fn serve_demo_seeds_channels_and_prints_a_working_token() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "demo");
    let port = common::free_port();
    let mut child = std::process::Command::new(common::BIN)
        .args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}"), "--database-url", &url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let token = line.trim().to_owned();
    let server = Running { child, base: format!("http://127.0.0.1:{port}") };
    let api = Api::new(&server.base, &token);
    let channels =
        api.wait_for("/channels", Duration::from_secs(30), |b| b.is_array() || b["results"].is_array()).await;
    let list = channels.get("results").unwrap_or(&channels).as_array().unwrap().clone();
    let codes: Vec<&str> = list.iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["pos", "web", "ifood"]);
    assert_eq!(server.stop().code(), Some(0), "SIGTERM is a clean stop");
}

#[tokio::test]
async fn health_is_public_and_ready_checks_the_database() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "health");
    let server = Running::serve(&url, &[]).await;
    let client = reqwest::Client::new();
    let health: Value = client.get(format!("{}/api/health", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], json!("healthy"));
    let ready = client.get(format!("{}/api/health/ready", server.base)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let body: Value = ready.json().await.unwrap();
    assert!(body.to_string().contains("database"), "{body}");
}

#[tokio::test]
async fn tokens_carry_their_own_rate_limits() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "limits");
    apply_channels(&url, dir.path(), &channels());
    let refused = std::process::Command::new(common::BIN)
        .args(["tokens", "create", "--name", "bad", "--role", "client", "--rate-limit", "commit=lots"])
        .args(["--database-url", &url])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("invalid rate limit"), "{refused:?}");
    let token = cli_out(
        &url,
        &["tokens", "create", "--name", "kiosk", "--role", "client", "--rate-limit", " commit = 1/min ,modify=5/s"],
    );
    let listed = cli_out(&url, &["tokens", "list"]);
    assert!(listed.contains("modify=5/s,commit=1/min"), "stored in one spelling: {listed}");
    assert!(!listed.contains("bad"), "a refused token is not stored: {listed}");

    let server = Running::serve(&url, &[]).await;
    let api = Api::new(&server.base, &token);
    let (_, opened) = api.post("/sessions", &json!({"channel_code": "pos"})).await;
    let key = opened["session_key"].as_str().unwrap().to_owned();
    let commit = json!({"channel_code": "pos"});
    let (status, first) = api.post(&format!("/sessions/{key}/commit"), &commit).await;
    assert_eq!((status, first["error"]["code"].as_str()), (409, Some("empty_session")));
    let (status, second) = api.post(&format!("/sessions/{key}/commit"), &commit).await;
    assert_eq!((status, second["error"]["code"].as_str()), (429, Some("rate_limited")));
}

#[tokio::test]
async fn metrics_show_statements_per_request_and_pool_usage() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "metrics");
    apply_channels(&url, dir.path(), &channels());
    let client_token = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let admin_token = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let server = Running::serve(&url, &[]).await;
    let api = Api::new(&server.base, &client_token);
    let (_, opened) = api.post("/sessions", &json!({"channel_code": "pos"})).await;
    let key = opened["session_key"].as_str().unwrap().to_owned();
    let ops = json!({"channel_code": "pos", "ops": [{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100}]});
    for _ in 0..3 {
        assert_eq!(api.post(&format!("/sessions/{key}/modify"), &ops).await.0, 200);
    }
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The value of the sample line that starts with `name`, as written.
    let sample = |name: &str| -> String {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        line.rsplit(' ').next().unwrap().to_owned()
    };
    let route = r#"{method="POST",route="/api/sessions/{key}/modify"}"#;
    assert_eq!(sample(&format!("omniman_sql_statements_per_request_count{route}")), "3");
    // Each modify: its conditional update alone (the channel runs no checks, so no directive
    // insert); the token, the channel and the session come from the cache.
    assert_eq!(sample(&format!("omniman_sql_statements_per_request_sum{route}")), "3.0", "{text}");
    assert_eq!(sample(r#"omniman_cache_lookups_total{kind="session",result="hit"}"#), "3", "{text}");
    // The client's token was read once (by the open), then three times from memory.
    assert_eq!(sample(r#"omniman_cache_lookups_total{kind="token",result="hit"}"#), "3", "{text}");
    assert!(sample(r#"omniman_db_pool_connections{state="max"}"#).parse::<u32>().unwrap() >= 1);
    let idle = sample(r#"omniman_db_pool_connections{state="idle"}"#).parse::<u32>().unwrap();
    assert!(idle >= 1, "connections went back to the pool");
    assert_eq!(sample(r#"omniman_db_pool_connections{state="waiting"}"#), "0");
}

#[tokio::test]
async fn a_failing_database_is_a_500_json_error_without_details() {
    use diesel_async::SimpleAsyncConnection;
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "broken");
    apply_channels(&url, dir.path(), &channels());
    let token = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let server = Running::serve(&url, &["--workers", "0"]).await;
    let api = Api::new(&server.base, &token);
    assert_eq!(api.post("/sessions", &json!({"channel_code": "pos"})).await.0, 201);

    // Take a table away under the running server.
    let db = omniman_storage::Database::connect(&omniman_storage::StorageConfig::new(url.clone())).await.unwrap();
    db.get_sqlite().await.unwrap().unwrap().batch_execute("DROP TABLE sessions").await.unwrap();

    for (status, body) in [api.get("/sessions").await, api.post("/sessions", &json!({"channel_code": "pos"})).await] {
        assert_eq!((status, body["error"]["code"].as_str()), (500, Some("internal_error")), "{body}");
        assert_eq!(body["error"]["message"], json!("internal server error"));
        assert!(!body.to_string().contains("sessions"), "no database detail leaks: {body}");
    }
    let health = reqwest::get(format!("{}/api/health", server.base)).await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "the process keeps serving");
}

/// A client that announces a body and stops sending it gets `408 request_timeout` once the body
/// timeout passes, and its connection is closed: such clients cannot pile up.
#[tokio::test]
async fn a_body_that_never_finishes_gets_408_within_the_body_timeout() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "slow-body");
    apply_channels(&url, dir.path(), &channels());
    let token = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let server = Running::serve(&url, &["--workers", "0", "--body-timeout", "1"]).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
        let head = format!(
            "POST /api/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 117\r\n\r\n{{\"channel_"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the server closes the connection (or the read timeout gives up).
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            answer.extend_from_slice(&buf[..n]);
        }
        (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
    })
    .await
    .unwrap();
    let (text, waited) = answer;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":"request_timeout""#), "{text}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

/// Past `--max-connections`, new clients wait (in the kernel's backlog) instead of taking file
/// descriptors; they are served as soon as a connection closes.
#[tokio::test]
async fn connections_past_the_cap_wait_for_one_to_close() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "capped");
    apply_channels(&url, dir.path(), &channels());
    // Two HTTP threads (the test harness's), 32 connections each.
    let server = Running::serve(&url, &["--workers", "0", "--max-connections", "64"]).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let (waited, served_after_close) = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let hold = |addr: &str| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n").unwrap(); // headers never end
            s
        };
        let held: Vec<_> = (0..64).map(|_| hold(&addr)).collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut past_the_cap = std::net::TcpStream::connect(&addr).unwrap();
        past_the_cap.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        past_the_cap.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
        let mut buf = [0u8; 1024];
        let waited = past_the_cap.read(&mut buf).is_err();
        drop(held);
        past_the_cap.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = past_the_cap.read(&mut buf).unwrap_or(0);
        (waited, String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"))
    })
    .await
    .unwrap();
    assert!(waited, "a connection past the cap was served while 64 were held");
    assert!(served_after_close, "and it is served once they close");
}

/// A replayed commit answers the bytes of the first answer, whichever order the store keeps
/// the stored body's keys in (PostgreSQL's `jsonb` has its own).
async fn replay_is_byte_for_byte(url: &str) {
    let dir = temp_dir();
    apply_channels(url, dir.path(), &channels());
    let token = cli_out(url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let server = Running::serve(url, &["--workers", "0"]).await;
    let api = Api::new(&server.base, &token);
    let (_, opened) = api.post("/sessions", &json!({"channel_code": "pos"})).await;
    let key = opened["session_key"].as_str().unwrap().to_owned();
    let ops = json!({"channel_code": "pos", "ops": [{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100}]});
    assert_eq!(api.post(&format!("/sessions/{key}/modify"), &ops).await.0, 200);
    let client = reqwest::Client::new();
    let commit = || async {
        let r = client
            .post(format!("{}/api/sessions/{key}/commit", server.base))
            .bearer_auth(&token)
            .json(&json!({"channel_code": "pos", "idempotency_key": "replay-1"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let first = commit().await;
    assert_eq!(first.0, 201, "{}", first.1);
    assert_eq!(commit().await, first);
}

#[tokio::test]
async fn replay_is_byte_for_byte_on_sqlite() {
    let dir = temp_dir();
    replay_is_byte_for_byte(&sqlite_url(dir.path(), "replay")).await;
}

#[tokio::test]
async fn replay_is_byte_for_byte_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    replay_is_byte_for_byte(db.url()).await;
}

/// NUL characters, which PostgreSQL cannot store, are a 400 on both backends (never a 500), and
/// nothing is written.
async fn nul_is_refused(url: &str) {
    let dir = temp_dir();
    apply_channels(url, dir.path(), &channels());
    let token = cli_out(url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let admin = cli_out(url, &["tokens", "create", "--name", "importer", "--role", "admin"]);
    let server = Running::serve(url, &["--workers", "0"]).await;
    let api = Api::new(&server.base, &token);
    let admin = Api::new(&server.base, &admin);
    let (_, opened) = api.post("/sessions", &json!({"channel_code": "pos"})).await;
    let key = opened["session_key"].as_str().unwrap().to_owned();
    let modify = format!("/sessions/{key}/modify");
    let add = |extra: serde_json::Value| {
        let mut op = json!({"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100});
        op.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"channel_code": "pos", "ops": [op]})
    };
    let refusals = [
        (
            api.post("/sessions", &json!({"channel_code": "pos", "handle_type": "t", "handle_ref": "\u{0}"})).await,
            "handle_ref",
        ),
        (api.post(&modify, &add(json!({"sku": "A\u{0}"}))).await, "ops[0].sku"),
        (api.post(&modify, &add(json!({"meta": {"note": "a\u{0}b"}}))).await, "ops[0].meta.note"),
        (api.post(&modify, &add(json!({"meta": {"k\u{0}": 1}}))).await, "ops[0].meta.k\\u0000"),
        (
            api.post(
                &modify,
                &json!({"channel_code": "pos", "ops": [{"op": "set_data", "path": "notes", "value": "\u{0}"}]}),
            )
            .await,
            "ops[0].value",
        ),
        (
            admin
                .post(
                    "/sessions/import",
                    &json!({"channel_code": "pos", "items": [{"sku": "A", "qty": 1, "name": "\u{0}"}]}),
                )
                .await,
            "items[0].name",
        ),
        (api.get("/sessions/%00").await, "session_key"),
        (api.get("/orders/%00").await, "order_ref"),
        (api.get("/orders/%00/events").await, "order_ref"),
        (api.get("/channels/%00").await, "channel_code"),
        (admin.get("/directives/%00").await, "directive_id"),
        (api.get("/sessions?handle_ref=%00").await, "handle_ref"),
        (api.get("/orders?handle_type=%00").await, "handle_type"),
        (admin.get("/directives?topic=%00").await, "topic"),
    ];
    for ((status, body), field) in refusals {
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("validation_error")), "{field}: {body}");
        assert!(body["error"]["context"]["fields"].get(field).is_some(), "{field}: {body}");
    }
    let (status, session) = api.get(&format!("/sessions/{key}")).await;
    assert_eq!((status, &session["rev"], &session["items"]), (200, &json!(0), &json!([])), "nothing was written");
    let (_, sessions) = admin.get("/sessions").await;
    assert_eq!(sessions["results"].as_array().unwrap().len(), 1, "nothing was opened or imported");
}

#[tokio::test]
async fn nul_is_refused_on_sqlite() {
    let dir = temp_dir();
    nul_is_refused(&sqlite_url(dir.path(), "nul")).await;
}

#[tokio::test]
async fn nul_is_refused_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    nul_is_refused(db.url()).await;
}
