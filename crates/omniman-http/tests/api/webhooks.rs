//! Webhook subscriptions over HTTP: validation, the secret shown once, list/patch/delete,
//! deliveries and the test delivery, admins only.

use actix_web::test::TestRequest;
use chrono::Utc;
use omniman_core::directive::{DirectiveStatus, DirectiveUpdate};
use omniman_core::ext::Extensions;
use omniman_core::ports::{DirectiveQueue, WebhookStore};
use omniman_core::webhook::NewDelivery;
use omniman_http::{AppState, HttpConfig};
use serde_json::{Value, json};

use crate::common::{self, ADMIN, CLIENT, get, post};

fn patch(path: &str, token: &str, body: &Value) -> TestRequest {
    TestRequest::patch().uri(path).insert_header(("Authorization", format!("Bearer {token}"))).set_json(body)
}

fn delete(path: &str, token: &str) -> TestRequest {
    TestRequest::delete().uri(path).insert_header(("Authorization", format!("Bearer {token}")))
}

fn subscription() -> Value {
    json!({"url": "https://example.com/hooks", "events": ["order.created", "session.committed"], "channels": ["pos"]})
}

#[actix_web::test]
async fn a_subscription_is_created_with_a_secret_shown_once() {
    let state = common::state().await;
    let app = service!(state);
    let created = call!(app, post("/api/webhooks", ADMIN, &subscription())).expect(201);
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() == 38, "{secret}");
    assert_eq!(created["url"], "https://example.com/hooks");
    assert_eq!(created["events"], json!(["order.created", "session.committed"]));
    assert_eq!((created["channels"].clone(), created["active"].clone()), (json!(["pos"]), json!(true)));
    let id = created["id"].as_i64().unwrap();

    // Never again: not in the detail, the list, a change or a deletion.
    let detail = call!(app, get(&format!("/api/webhooks/{id}"), ADMIN)).expect(200);
    assert_eq!(detail.get("secret"), None);
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(detail, expected);
    let listed = call!(app, get("/api/webhooks", ADMIN)).expect(200);
    assert_eq!(listed["results"], json!([expected]));
    assert!(!listed.to_string().contains(secret));

    // A second one with every channel: `[]` is every channel, as absent.
    let other =
        json!({"url": "http://10.0.0.1:8080/in", "events": ["stock.shortage"], "channels": [], "active": false});
    let other = call!(app, post("/api/webhooks", ADMIN, &other)).expect(201);
    assert_eq!((other["channels"].clone(), other["active"].clone()), (Value::Null, json!(false)));
    assert_ne!(other["secret"], created["secret"]);
    let listed = call!(app, get("/api/webhooks?page_size=1", ADMIN)).expect(200);
    assert_eq!(listed["results"][0]["id"], other["id"], "newest first");
    assert!(listed["next"].as_str().unwrap().starts_with("/api/webhooks?page_size=1&cursor="));
}

#[actix_web::test]
async fn bad_subscriptions_are_refused_by_field() {
    let state = common::state().await;
    let app = service!(state);
    let error = call!(app, post("/api/webhooks", ADMIN, &json!({}))).expect_error(400, "validation_error");
    assert_eq!(error["fields"].as_object().unwrap().keys().collect::<Vec<_>>(), ["events", "url"]);

    let bad =
        json!({"url": "ftp://example.com", "events": ["order.created", "order.deleted", 3], "active": "yes", "x": 1});
    let error = call!(app, post("/api/webhooks", ADMIN, &bad)).expect_error(400, "validation_error");
    let fields = error["fields"].as_object().unwrap();
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["active", "events[1]", "events[2]", "x"], "{error}");
    assert!(fields["events[1]"][0].as_str().unwrap().contains("known: session.opened"), "{error}");

    for url in ["/relative", "https://", "https://exa mple.com", "example.com/hook"] {
        let body = json!({"url": url, "events": ["order.created"]});
        let error = call!(app, post("/api/webhooks", ADMIN, &body)).expect_error(400, "validation_error");
        assert!(error["fields"].get("url").is_some(), "{url}: {error}");
    }
    let error = call!(app, post("/api/webhooks", ADMIN, &json!({"url": "https://a", "events": []})))
        .expect_error(400, "validation_error");
    assert!(error["fields"].get("events").is_some(), "{error}");

    let body = json!({"url": "https://a", "events": ["order.created"], "channels": ["pos", "nope"]});
    let error = call!(app, post("/api/webhooks", ADMIN, &body)).expect_error(400, "unknown_channel");
    assert_eq!(error["channel_codes"], json!(["nope"]));
    assert_eq!(call!(app, get("/api/webhooks", ADMIN)).expect(200)["results"], json!([]), "nothing was created");
}

#[actix_web::test]
async fn a_subscription_is_changed_and_deleted() {
    let state = common::state().await;
    let app = service!(state);
    let created = call!(app, post("/api/webhooks", ADMIN, &subscription())).expect(201);
    let path = format!("/api/webhooks/{}", created["id"]);

    let changed =
        call!(app, patch(&path, ADMIN, &json!({"active": false, "events": ["order.status_changed"]}))).expect(200);
    assert_eq!((changed["active"].clone(), changed["events"].clone()), (json!(false), json!(["order.status_changed"])));
    assert_eq!((changed["url"].clone(), changed["channels"].clone()), (created["url"].clone(), json!(["pos"])));
    assert_eq!(changed.get("secret"), None);
    let changed = call!(app, patch(&path, ADMIN, &json!({"channels": [], "url": "http://h/x"}))).expect(200);
    assert_eq!((changed["channels"].clone(), changed["url"].clone()), (Value::Null, json!("http://h/x")));

    call!(app, patch(&path, ADMIN, &json!({"url": "nope"}))).expect_error(400, "validation_error");
    call!(app, patch(&path, ADMIN, &json!({"events": ["x"]}))).expect_error(400, "validation_error");
    call!(app, patch(&path, ADMIN, &json!({"channels": ["nope"]}))).expect_error(400, "unknown_channel");
    assert_eq!(call!(app, get(&path, ADMIN)).expect(200), changed, "refused changes wrote nothing");

    assert_eq!(call!(app, delete(&path, ADMIN)).expect(200), changed);
    let error = call!(app, get(&path, ADMIN)).expect_error(404, "webhook_not_found");
    assert_eq!(error["webhook_id"], json!(created["id"].to_string()));
    call!(app, delete(&path, ADMIN)).expect_error(404, "webhook_not_found");
    call!(app, patch(&path, ADMIN, &json!({"active": true}))).expect_error(404, "webhook_not_found");
    call!(app, get("/api/webhooks/abc", ADMIN)).expect_error(404, "webhook_not_found");
    call!(app, post("/api/webhooks/999/test", ADMIN, &json!({}))).expect_error(404, "webhook_not_found");
    call!(app, get("/api/webhooks/999/deliveries", ADMIN)).expect_error(404, "webhook_not_found");
}

#[actix_web::test]
async fn deliveries_are_listed_with_their_status_and_the_test_endpoint_queues_one() {
    let hub = common::hub_with(Extensions::default()).await;
    let state = AppState::new(hub.clone(), HttpConfig::default());
    let app = service!(state);
    let created = call!(app, post("/api/webhooks", ADMIN, &subscription())).expect(201);
    let id = created["id"].as_i64().unwrap();
    let deliveries = format!("/api/webhooks/{id}/deliveries");
    assert_eq!(call!(app, get(&deliveries, ADMIN)).expect(200)["results"], json!([]));

    let test = call!(app, post(&format!("/api/webhooks/{id}/test"), ADMIN, &json!({}))).expect(202);
    assert_eq!((test["event_type"].clone(), test["event_id"].clone()), (json!("webhook.test"), Value::Null));
    assert_eq!((test["status"].clone(), test["attempts"].clone()), (json!("queued"), json!(0)));
    assert_eq!(test["webhook_id"], json!(id));

    // A delivery of a logged event (as the dispatcher enqueues it), then one failed attempt.
    let now = Utc::now();
    let event = json!({"id": 41, "type": "order.created"});
    let from = hub.store().dispatch_position().await.unwrap();
    let delivery = NewDelivery::new(id, Some(41), "order.created", event, now);
    assert!(hub.store().advance_dispatch(from, 41, &[delivery]).await.unwrap());
    let claimed = hub.store().claim(Some(&["webhook.deliver".to_owned()]), 10, now).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let update = DirectiveUpdate {
        id: claimed[1].id,
        claimed_attempts: 1,
        status: DirectiveStatus::Queued,
        attempts: 1,
        available_at: now,
        last_error: "webhook answered 500 Internal Server Error".into(),
        payload_patch: serde_json::Map::new(),
    };
    assert_eq!(hub.store().finish(&[update], now).await.unwrap(), 1);

    let listed = call!(app, get(&deliveries, ADMIN)).expect(200);
    let results = listed["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let logged = results.iter().find(|d| d["event_id"] == json!(41)).unwrap();
    assert_eq!((logged["event_type"].clone(), logged["attempts"].clone()), (json!("order.created"), json!(1)));
    assert_eq!(logged["status"], "queued");
    assert!(logged["last_error"].as_str().unwrap().contains("500"));
    for field in ["id", "available_at", "created_at", "updated_at"] {
        assert!(!logged[field].is_null(), "{field}: {logged}");
    }
    let tested = results.iter().find(|d| d["event_type"] == json!("webhook.test")).unwrap();
    assert_eq!(tested["id"], test["id"]);
    assert_eq!(tested["status"], "running");
    let page = call!(app, get(&format!("{deliveries}?page_size=1"), ADMIN)).expect(200);
    assert!(page["next"].as_str().unwrap().starts_with(&format!("{deliveries}?page_size=1&cursor=")));
    call!(app, get(&format!("{deliveries}?status=done"), ADMIN)).expect_error(400, "validation_error");
}

#[actix_web::test]
async fn webhooks_are_for_admins_only() {
    let state = common::state().await;
    let app = service!(state);
    call!(app, post("/api/webhooks", CLIENT, &subscription())).expect_error(403, "forbidden");
    call!(app, get("/api/webhooks", CLIENT)).expect_error(403, "forbidden");
    let created = call!(app, post("/api/webhooks", ADMIN, &subscription())).expect(201);
    let path = format!("/api/webhooks/{}", created["id"]);
    call!(app, get(&path, CLIENT)).expect_error(403, "forbidden");
    call!(app, patch(&path, CLIENT, &json!({"active": false}))).expect_error(403, "forbidden");
    call!(app, delete(&path, CLIENT)).expect_error(403, "forbidden");
    call!(app, get(&format!("{path}/deliveries"), CLIENT)).expect_error(403, "forbidden");
    call!(app, post(&format!("{path}/test"), CLIENT, &json!({}))).expect_error(403, "forbidden");
    call!(app, get("/api/webhooks", "omni_nobody")).expect_error(401, "unauthenticated");
    assert_eq!(call!(app, get(&path, ADMIN)).expect(200)["active"], json!(true));
}
