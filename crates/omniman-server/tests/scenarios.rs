//! The directive flows end to end through HTTP against the real binary on PostgreSQL:
//! the stock check, a shortage resolved by its action, and a worker killed mid-run.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Api, Running, apply_channels, cli_out, temp_dir};
use omniman_storage::test_support::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A PostgreSQL database with an admin and a client token.
struct Setup {
    db: TestDb,
    admin: String,
    client: String,
    _dir: tempfile::TempDir,
}

async fn setup(channels: &Value) -> Option<Setup> {
    let db = TestDb::postgres().await?;
    let dir = temp_dir();
    apply_channels(db.url(), dir.path(), channels);
    let admin = cli_out(db.url(), &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let client = cli_out(db.url(), &["tokens", "create", "--name", "till", "--role", "client"]);
    Some(Setup { db, admin, client, _dir: dir })
}

fn stock_channel() -> Value {
    json!([{"code": "shop", "config": {"required_checks_on_commit": ["stock"], "post_commit_directives": ["stock.commit"]}}])
}

/// `omniman stock list` as (sku → on hand).
fn on_hand(url: &str) -> HashMap<String, String> {
    cli_out(url, &["stock", "list"])
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let sku = words.next()?.to_owned();
            let on_hand = words.find_map(|w| w.strip_prefix("on_hand="))?.to_owned();
            Some((sku, on_hand))
        })
        .collect()
}

async fn open(api: &Api) -> String {
    let (status, body) = api.post("/sessions", &json!({"channel_code": "shop"})).await;
    assert_eq!(status, 201, "{body}");
    body["session_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn stock_check_is_written_back_then_commit_fulfils_the_holds() {
    let Some(s) = setup(&stock_channel()).await else { return };
    cli_out(s.db.url(), &["stock", "set", "COFFEE", "10"]);
    let server = Running::serve(s.db.url(), &["--workers", "2"]).await;
    let api = Api::new(&server.base, &s.client);
    let admin = Api::new(&server.base, &s.admin);

    let key = open(&api).await;
    let ops =
        json!({"channel_code": "shop", "ops": [{"op": "add_line", "sku": "COFFEE", "qty": 3, "unit_price_q": 450}]});
    assert_eq!(api.post(&format!("/sessions/{key}/modify"), &ops).await.0, 200);
    let started = Instant::now();
    let session = api
        .wait_for(&format!("/sessions/{key}?channel_code=shop"), Duration::from_secs(1), |b| {
            b["data"]["checks"]["stock"]["rev"] == json!(1)
        })
        .await;
    eprintln!("stock check written back {:?} after the modify", started.elapsed());
    assert!(session["data"]["issues"].as_array().unwrap().is_empty());
    assert_eq!(session["data"]["checks"]["stock"]["result"]["holds"][0]["qty"], json!("3.000"));

    let (status, committed) =
        api.post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "shop", "idempotency_key": "k-1"})).await;
    assert_eq!(status, 201, "{committed}");
    admin
        .wait_for("/directives?topic=stock.commit", Duration::from_secs(10), |b| {
            b["results"].as_array().is_some_and(|r| r.len() == 1 && r[0]["status"] == json!("done"))
        })
        .await;
    assert_eq!(on_hand(s.db.url())["COFFEE"], "7.000", "stock drops by exactly the ordered quantity");
}

#[tokio::test]
async fn shortage_issue_resolved_by_its_set_qty_action_then_commit() {
    let Some(s) = setup(&stock_channel()).await else { return };
    cli_out(s.db.url(), &["stock", "set", "CAKE", "2"]);
    let server = Running::serve(s.db.url(), &["--workers", "2"]).await;
    let api = Api::new(&server.base, &s.client);

    let key = open(&api).await;
    let ops =
        json!({"channel_code": "shop", "ops": [{"op": "add_line", "sku": "CAKE", "qty": 5, "unit_price_q": 900}]});
    api.post(&format!("/sessions/{key}/modify"), &ops).await;
    let session = api
        .wait_for(&format!("/sessions/{key}?channel_code=shop"), Duration::from_secs(5), |b| {
            b["data"]["issues"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    let issue = &session["data"]["issues"][0];
    assert_eq!((issue["code"].as_str(), issue["blocking"].as_bool()), (Some("stock.insufficient"), Some(true)));
    let (status, refused) =
        api.post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "shop", "idempotency_key": "k-1"})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("blocking_issues")));

    let action = &issue["context"]["actions"][0];
    assert_eq!(action["ops"][0]["op"], json!("set_qty"));
    let resolve = json!({"channel_code": "shop", "issue_id": issue["id"], "action_id": action["id"]});
    let (status, resolved) = api.post(&format!("/sessions/{key}/resolve"), &resolve).await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!((resolved["rev"].as_i64(), resolved["items"][0]["qty"].as_str()), (Some(2), Some("2.000")));
    api.wait_for(&format!("/sessions/{key}?channel_code=shop"), Duration::from_secs(5), |b| {
        b["data"]["checks"]["stock"]["rev"] == json!(2) && b["data"]["issues"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let (status, committed) =
        api.post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "shop", "idempotency_key": "k-2"})).await;
    assert_eq!(status, 201, "{committed}");
}

/// A webhook receiver that holds the first delivery open (the worker dies meanwhile) and
/// answers later ones, applying each delivery id's effect once.
#[derive(Default)]
struct Receiver {
    requests: usize,
    effects: HashMap<String, usize>,
}

async fn receive(listener: tokio::net::TcpListener, state: Arc<Mutex<Receiver>>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { return };
        let state = state.clone();
        tokio::spawn(async move {
            let mut buf = vec![0_u8; 65536];
            let mut len = 0;
            let head = loop {
                let Ok(n) = socket.read(&mut buf[len..]).await else { return };
                if n == 0 {
                    return;
                }
                len += n;
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                if text.contains("\r\n\r\n") {
                    break text;
                }
            };
            let delivery = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-omniman-delivery:").map(|v| v.trim().to_owned()))
                .unwrap_or_default();
            let first = {
                let mut s = state.lock().unwrap();
                s.requests += 1;
                s.requests == 1
            };
            if first {
                // Never answer: the worker is killed while waiting.
                tokio::time::sleep(Duration::from_secs(600)).await;
                return;
            }
            *state.lock().unwrap().effects.entry(delivery).or_default() += 1;
            let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        });
    }
}

#[tokio::test]
async fn worker_killed_mid_run_is_reaped_and_the_effect_applies_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = Arc::new(Mutex::new(Receiver::default()));
    tokio::spawn(receive(listener, receiver.clone()));
    let channels = json!([{"code": "shop", "config": {
        "post_commit_directives": ["webhook.post"],
        "webhooks": {"url": url, "secret": "s3cret", "timeout_secs": 300}
    }}]);
    let Some(s) = setup(&channels).await else { return };
    // HTTP only: the directive waits for the separate worker processes.
    let server = Running::serve(s.db.url(), &["--workers", "0"]).await;
    let api = Api::new(&server.base, &s.client);
    let admin = Api::new(&server.base, &s.admin);
    let key = open(&api).await;
    let ops = json!({"channel_code": "shop", "ops": [{"op": "add_line", "sku": "X", "qty": 1, "unit_price_q": 100}]});
    api.post(&format!("/sessions/{key}/modify"), &ops).await;
    let (status, _) = api.post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "shop"})).await;
    assert_eq!(status, 201);

    let worker_args = ["--topic", "webhook.post", "--interval", "0.5", "--reap-timeout", "0.05"];
    let first = Running::worker(s.db.url(), &worker_args);
    let running = admin
        .wait_for("/directives?topic=webhook.post", Duration::from_secs(30), |b| {
            b["results"][0]["status"] == json!("running")
        })
        .await;
    let id = running["results"][0]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.lock().unwrap().requests == 0 {
        assert!(Instant::now() < deadline, "the first delivery never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill_hard();
    let (_, stuck) = admin.get(&format!("/directives/{id}")).await;
    assert_eq!(stuck["status"], json!("running"), "a SIGKILLed worker leaves its directive running");

    let second = Running::worker(s.db.url(), &worker_args);
    let done =
        admin.wait_for(&format!("/directives/{id}"), Duration::from_secs(60), |b| b["status"] == json!("done")).await;
    assert_eq!(done["attempts"], json!(2), "reaped once, run again once");
    let r = receiver.lock().unwrap();
    assert_eq!(r.requests, 2, "delivered twice (at least once)");
    assert_eq!(r.effects.len(), 1, "one delivery id");
    assert_eq!(r.effects.values().sum::<usize>(), 1, "the effect applied once");
    drop(r);
    assert!(second.stop().success(), "a clean stop");
}
