//! What an order keeps of its session: every data root a client may write, and its currency.

use omniman_core::commit::CommitSettings;
use omniman_core::ext::Extensions;
use omniman_http::{AppState, HttpConfig};
use serde_json::json;

use crate::common::{self, ADMIN, CLIENT, get, post};

#[actix_web::test]
async fn every_root_set_data_writes_reaches_the_order() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let ops = json!({"channel_code": "pos", "ops": [
        {"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100},
        {"op": "set_data", "path": "notes", "value": "no sugar"},
        {"op": "set_data", "path": "delivery.address", "value": "Rua A, 1"},
        {"op": "set_data", "path": "customer.name", "value": "Ana"},
        {"op": "set_data", "path": "tip", "value": 200}
    ]});
    call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &ops)).expect(200);
    let answer = commit!(app, "pos", key, "d-1").expect(201);
    let order_ref = answer["order_ref"].as_str().unwrap();
    let order = call!(app, get(&format!("/api/orders/{order_ref}"), CLIENT)).expect(200);
    assert_eq!(
        order["data"],
        json!({"notes": "no sugar", "delivery": {"address": "Rua A, 1"}, "customer": {"name": "Ana"}, "tip": 200})
    );
    assert!(order["snapshot"]["data"]["checks"].is_object(), "the snapshot keeps the whole session data");
}

#[actix_web::test]
async fn an_invalid_path_lists_the_allowed_roots() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let ops = json!({"channel_code": "pos", "ops": [{"op": "set_data", "path": "order_notes", "value": "x"}]});
    let r = call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &ops));
    r.expect_error(400, "invalid_path");
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("allowed: customer, delivery,"), "{message}");
}

#[actix_web::test]
async fn sessions_orders_and_the_stream_carry_the_currency() {
    let settings = CommitSettings { currency: "EUR".into(), ..CommitSettings::default() };
    let hub = common::hub_with(Extensions::default()).await;
    let hub = std::sync::Arc::new(
        std::sync::Arc::try_unwrap(hub).unwrap_or_else(|_| panic!("one owner")).with_settings(settings),
    );
    let state = AppState::new(hub, HttpConfig::default());
    let app = service!(state);
    let key = open!(app, "pos");
    let session = add_line!(app, "pos", key, "A", 1, 250);
    assert_eq!(session["pricing"]["currency"], json!("EUR"));
    let answer = commit!(app, "pos", key, "c-1").expect(201);
    let order_ref = answer["order_ref"].as_str().unwrap();
    let order = call!(app, get(&format!("/api/orders/{order_ref}"), CLIENT)).expect(200);
    assert_eq!(order["currency"], json!("EUR"));
    let list = call!(app, get("/api/orders", CLIENT)).expect(200);
    assert_eq!(list["results"][0]["currency"], json!("EUR"));
    let stream = call!(app, get("/api/orders/stream?since=0", ADMIN)).expect(200);
    assert_eq!(stream["orders"][0]["currency"], json!("EUR"));
}
