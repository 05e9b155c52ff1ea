//! Webhook subscriptions through the real binary: a commit makes a signed `order.created` arrive
//! at a receiver, on SQLite and on PostgreSQL, and a delivery answered 500 is retried with the
//! same delivery id.

mod common;

use std::time::Duration;

use common::{Api, Receiver, Running, apply_channels, cli_out, sqlite_url, temp_dir};
use omniman_storage::test_support::TestDb;
use omniman_worker::handlers::deliver::verify;
use serde_json::{Value, json};

async fn subscribe(admin: &Api, receiver: &Receiver, events: &[&str]) -> (i64, String) {
    let body = json!({"url": receiver.url, "events": events});
    let (status, created) = admin.post("/webhooks", &body).await;
    assert_eq!(status, 201, "{created}");
    (created["id"].as_i64().unwrap(), created["secret"].as_str().unwrap().to_owned())
}

/// Opens a session on `pos`, adds a line and commits it; the order's ref.
async fn commit_an_order(api: &Api) -> String {
    let (status, opened) = api.post("/sessions", &json!({"channel_code": "pos"})).await;
    assert_eq!(status, 201, "{opened}");
    let key = opened["session_key"].as_str().unwrap().to_owned();
    let ops = json!({"channel_code": "pos", "ops": [{"op": "add_line", "sku": "TEA", "qty": 1, "unit_price_q": 300}]});
    let (status, modified) = api.post(&format!("/sessions/{key}/modify"), &ops).await;
    assert_eq!(status, 200, "{modified}");
    let (status, committed) = api.post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "pos"})).await;
    assert_eq!(status, 201, "{committed}");
    committed["order_ref"].as_str().unwrap().to_owned()
}

async fn a_commit_is_delivered_signed(url: &str) {
    let dir = temp_dir();
    apply_channels(url, dir.path(), &json!([{"code": "pos", "name": "Point of sale"}]));
    let token = cli_out(url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let admin_token = cli_out(url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let server = Running::serve(url, &[]).await;
    let (api, admin) = (Api::new(&server.base, &token), Api::new(&server.base, &admin_token));
    // An order committed before the subscription exists is history: never delivered.
    commit_an_order(&api).await;

    let receiver = Receiver::start(&[]).await;
    let (id, secret) = subscribe(&admin, &receiver, &["order.created"]).await;
    let order_ref = commit_an_order(&api).await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    let request = &got[0];
    let now = chrono::Utc::now().timestamp();
    let signature = &request.headers["omniman-signature"];
    assert_eq!(verify(&secret, signature, request.body.as_bytes(), now, 300), Ok(()), "{request:?}");
    assert_eq!(request.headers["omniman-event"], "order.created");
    let event: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!((event["type"].as_str(), event["order_ref"].as_str()), (Some("order.created"), Some(&*order_ref)));
    assert_eq!(event["channel_code"], "pos");
    assert!(event["id"].as_i64().unwrap() > 0, "{event}");

    let path = format!("/webhooks/{id}/deliveries");
    let listed = admin.wait_for(&path, Duration::from_secs(10), |page| page["results"][0]["status"] == "done").await;
    let delivery = &listed["results"][0];
    assert_eq!(delivery["id"].to_string(), request.headers["omniman-delivery"]);
    assert_eq!((delivery["event_type"].as_str(), delivery["attempts"].as_i64()), (Some("order.created"), Some(1)));
    assert_eq!(listed["results"].as_array().unwrap().len(), 1, "the first order was history: {listed}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "delivered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_delivered_signed_on_sqlite() {
    let dir = temp_dir();
    a_commit_is_delivered_signed(&sqlite_url(dir.path(), "webhooks")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_delivered_signed_on_postgres() {
    let Some(db) = TestDb::postgres().await else { return };
    a_commit_is_delivered_signed(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_retried_with_the_same_delivery_id() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "webhook-retry");
    apply_channels(&url, dir.path(), &json!([{"code": "pos", "name": "Point of sale"}]));
    let admin_token = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let server = Running::serve(&url, &[]).await;
    let admin = Api::new(&server.base, &admin_token);
    let receiver = Receiver::start(&[500]).await;
    let (id, secret) = subscribe(&admin, &receiver, &["order.created"]).await;
    let (status, queued) = admin.post(&format!("/webhooks/{id}/test"), &json!({})).await;
    assert_eq!(status, 202, "{queued}");
    // The first answer is a 500; the retry comes after the policy's first backoff (2 s).
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(got[0].headers["omniman-delivery"], queued["id"].to_string());
    assert_eq!(got[1].headers["omniman-delivery"], got[0].headers["omniman-delivery"]);
    assert_eq!(got[1].body, got[0].body);
    assert_eq!(got[1].headers["omniman-event"], "webhook.test");
    let now = chrono::Utc::now().timestamp();
    assert_eq!(verify(&secret, &got[1].headers["omniman-signature"], got[1].body.as_bytes(), now, 300), Ok(()));
    let path = format!("/webhooks/{id}/deliveries");
    let listed = admin.wait_for(&path, Duration::from_secs(10), |page| page["results"][0]["status"] == "done").await;
    assert_eq!(listed["results"][0]["attempts"], 2);
}
