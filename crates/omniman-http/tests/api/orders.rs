//! Orders, transitions, events, the polling stream and directives.

use actix_web::test::TestRequest;
use serde_json::{Value, json};

use crate::common::{self, ADMIN, CLIENT, get, post};

#[actix_web::test]
async fn order_detail_and_transitions() {
    let state = common::state().await;
    let app = service!(state);
    let order_ref = order!(app, "pos", 2500);
    let body = call!(app, get(&format!("/api/orders/{order_ref}"), CLIENT)).expect(200);
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "ref",
            "channel",
            "channel_code",
            "session_key",
            "handle_type",
            "handle_ref",
            "external_ref",
            "status",
            "currency",
            "total_q",
            "items",
            "data",
            "snapshot",
            "allowed_transitions",
            "created_at",
            "updated_at",
            "confirmed_at",
            "processing_at",
            "ready_at",
            "dispatched_at",
            "delivered_at",
            "completed_at",
            "cancelled_at",
            "returned_at"
        ]
    );
    assert_eq!(body["channel"], 1);
    assert_eq!(body["channel_code"], "pos");
    assert_eq!(body["status"], "new");
    assert_eq!(body["allowed_transitions"], json!(["confirmed", "cancelled"]));
    assert_eq!(body["items"][0]["qty"], "1.000");
    assert_eq!(body["snapshot"]["_v"], 1);

    let url = format!("/api/orders/{order_ref}/transition");
    let moved = call!(app, post(&url, CLIENT, &json!({"status": "confirmed", "note": "ok"}))).expect(200);
    assert_eq!(moved["previous_status"], "new");
    assert_eq!(moved["status"], "confirmed");
    assert_eq!(moved["allowed_transitions"], json!(["processing", "ready", "cancelled"]));
    assert!(moved["confirmed_at"].as_str().unwrap().ends_with('Z'));
    let ctx = call!(app, post(&url, CLIENT, &json!({"status": "delivered"}))).expect_error(409, "invalid_transition");
    assert_eq!(
        ctx,
        json!({"current_status": "confirmed", "requested_status": "delivered", "allowed_transitions": ["processing", "ready", "cancelled"]})
    );
    call!(app, post(&url, CLIENT, &json!({"status": "cancelled"}))).expect(200);
    let ctx = call!(app, post(&url, CLIENT, &json!({"status": "confirmed"}))).expect_error(409, "terminal_status");
    assert_eq!(ctx, json!({"current_status": "cancelled", "requested_status": "confirmed"}));
    // Shape before lookup; lookup.
    let ctx = call!(app, post(&url, CLIENT, &json!({"note": 5}))).expect_error(400, "validation_error");
    assert!(ctx["fields"]["status"].is_array() && ctx["fields"]["note"].is_array());
    call!(app, post("/api/orders/ORD-NOPE/transition", CLIENT, &json!({"status": 1})))
        .expect_error(400, "validation_error");
    call!(app, post("/api/orders/ORD-NOPE/transition", CLIENT, &json!({"status": "confirmed"})))
        .expect_error(404, "order_not_found");
    let ctx = call!(app, get("/api/orders/ORD-NOPE", CLIENT)).expect_error(404, "order_not_found");
    assert_eq!(ctx["order_ref"], "ORD-NOPE");
    call!(app, get("/api/orders/ORD-NOPE/events", CLIENT)).expect_error(404, "order_not_found");

    // Events, by seq.
    let events = call!(app, get(&format!("/api/orders/{order_ref}/events"), CLIENT)).expect(200);
    let results = events["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["type"], "created");
    assert_eq!(
        results[1],
        json!({
            "seq": 1, "type": "status_changed", "actor": "client",
            "payload": {"old_status": "new", "new_status": "confirmed", "note": "ok"},
            "created_at": results[1]["created_at"]
        })
    );
    assert_eq!(results[2]["seq"], 2);
    assert_eq!(events["next"], Value::Null);
}

#[actix_web::test]
async fn order_list_and_filters() {
    let state = common::state().await;
    let app = service!(state);
    let a = order!(app, "pos", 100);
    let b = order!(app, "web", 200);
    call!(app, post(&format!("/api/orders/{a}/transition"), CLIENT, &json!({"status": "confirmed"}))).expect(200);
    let body = call!(app, get("/api/orders", CLIENT)).expect(200);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["ref"], b.as_str(), "newest first");
    let keys: Vec<&str> = results[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "ref",
            "channel",
            "channel_code",
            "status",
            "currency",
            "total_q",
            "items_count",
            "handle_type",
            "handle_ref",
            "external_ref",
            "created_at",
            "updated_at"
        ]
    );
    for (query, expected) in [
        ("channel_code=pos", vec![a.as_str()]),
        ("status=confirmed", vec![a.as_str()]),
        ("status=new&channel_code=web", vec![b.as_str()]),
        ("created_after=2000-01-01T00:00:00Z", vec![b.as_str(), a.as_str()]),
        ("created_before=2000-01-01T00:00:00Z", vec![]),
        ("external_ref=X", vec![]),
        ("handle_ref=X", vec![]),
    ] {
        let body = call!(app, get(&format!("/api/orders?{query}"), CLIENT)).expect(200);
        let refs: Vec<&str> = body["results"].as_array().unwrap().iter().map(|o| o["ref"].as_str().unwrap()).collect();
        assert_eq!(refs, expected, "{query}");
    }
    let ctx = call!(app, get("/api/orders?created_after=yesterday&page_size=0", CLIENT))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["created_after"].is_array() && ctx["fields"]["page_size"].is_array(), "{ctx}");
}

#[actix_web::test]
async fn stream_polls_new_orders() {
    let state = common::state().await;
    let app = service!(state);
    assert_eq!(call!(app, get("/api/orders/stream", ADMIN)).expect(200), json!({"orders": [], "last_id": 0}));
    let mut refs = Vec::new();
    for i in 0..12 {
        refs.push(order!(app, if i % 2 == 0 { "pos" } else { "web" }, 2500));
    }
    let max = call!(app, get("/api/orders/stream", ADMIN)).expect(200);
    assert_eq!(max["orders"], json!([]));
    let last_id = max["last_id"].as_i64().unwrap();
    assert!(last_id > 0);
    let first = call!(app, get("/api/orders/stream?since=0", ADMIN)).expect(200);
    let orders = first["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 10);
    let ids: Vec<i64> = orders.iter().map(|o| o["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending: {ids:?}");
    assert_eq!(first["last_id"], ids[9]);
    let entry = orders[0].as_object().unwrap();
    let keys: Vec<&str> = entry.keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "ref", "channel", "status", "total_q", "total", "currency", "created_at", "handle_ref"]);
    assert_eq!(orders[0]["currency"], "BRL");
    assert_eq!(orders[0]["ref"], refs[0].as_str());
    assert_eq!(orders[0]["channel"], "Point of Sale", "display name");
    assert_eq!(orders[1]["channel"], "web", "code when the name is empty");
    assert_eq!(orders[0]["total"], "25.00");
    assert_eq!(orders[0]["total_q"], 2500);
    let rest = call!(app, get(&format!("/api/orders/stream?since={}", ids[9]), ADMIN)).expect(200);
    assert_eq!(rest["orders"].as_array().unwrap().len(), 2);
    assert_eq!(rest["last_id"], last_id);
    let none = call!(app, get(&format!("/api/orders/stream?since={last_id}"), ADMIN)).expect(200);
    assert_eq!(none, json!({"orders": [], "last_id": last_id}));
    let ctx = call!(app, get("/api/orders/stream?since=abc", ADMIN)).expect_error(400, "validation_error");
    assert!(ctx["fields"]["since"].is_array());
    // `stream` is a literal route, not an order ref; trailing slash works.
    call!(
        app,
        TestRequest::get().uri("/api/orders/stream/").insert_header(("Authorization", format!("Bearer {ADMIN}")))
    )
    .expect(200);
}

#[actix_web::test]
async fn stream_totals_have_two_decimals() {
    let state = common::state().await;
    let app = service!(state);
    let _ = order!(app, "pos", 0);
    let body = call!(app, get("/api/orders/stream?since=0", ADMIN)).expect(200);
    assert_eq!(body["orders"][0]["total"], "0.00");
}

#[actix_web::test]
async fn directives_for_admins() {
    let state = common::state().await;
    let app = service!(state.clone());
    let key = open!(app, "checked");
    add_line!(app, "checked", key, "A", 1, 10);
    add_line!(app, "checked", key, "B", 1, 10);
    let body = call!(app, get("/api/directives", ADMIN)).expect(200);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let keys: Vec<&str> = results[0].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "topic", "status", "attempts", "available_at", "created_at", "updated_at"]);
    let id = results[0]["id"].as_i64().unwrap();
    let detail = call!(app, get(&format!("/api/directives/{id}"), ADMIN)).expect(200);
    let keys: Vec<&str> = detail.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "topic",
            "status",
            "attempts",
            "available_at",
            "started_at",
            "last_error",
            "payload",
            "created_at",
            "updated_at"
        ]
    );
    assert_eq!(detail["payload"]["rev"], 2, "newest first");
    for (query, expected) in [("topic=stock.hold", 2), ("topic=other", 0), ("status=queued", 2), ("status=done", 0)] {
        let body = call!(app, get(&format!("/api/directives?{query}"), ADMIN)).expect(200);
        assert_eq!(body["results"].as_array().unwrap().len(), expected, "{query}");
    }
    call!(app, get("/api/directives?status=sleeping", ADMIN)).expect_error(400, "validation_error");
    let ctx = call!(app, get("/api/directives/99999", ADMIN)).expect_error(404, "directive_not_found");
    assert_eq!(ctx["directive_id"], "99999");
    call!(app, get("/api/directives/abc", ADMIN)).expect_error(404, "directive_not_found");
}

#[actix_web::test]
async fn channels() {
    let state = common::state().await;
    let app = service!(state);
    let body = call!(app, get("/api/channels", CLIENT)).expect(200);
    let codes: Vec<&str> = body["results"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["pos", "web", "market", "closed", "checked", "ext"], "by display_order, inactive included");
    let closed = &body["results"][3];
    assert_eq!(closed["is_active"], false);
    let detail = call!(app, get("/api/channels/checked", CLIENT)).expect(200);
    assert_eq!(
        detail,
        json!({"id": 5, "code": "checked", "name": "", "pricing_policy": "internal", "edit_policy": "open",
               "display_order": 4, "config": {"required_checks_on_commit": ["stock"], "post_commit_directives": ["stock.commit"]},
               "is_active": true})
    );
    let ctx = call!(app, get("/api/channels/nope", CLIENT)).expect_error(404, "channel_not_found");
    assert_eq!(ctx["channel_code"], "nope");
}

#[actix_web::test]
async fn a_failed_directive_is_retried_by_an_admin_keeping_its_attempts() {
    use omniman_core::directive::{DirectiveStatus, DirectiveUpdate};
    use omniman_core::ports::DirectiveQueue;

    let state = common::state().await;
    let app = service!(state.clone());
    let key = open!(app, "checked");
    add_line!(app, "checked", key, "A", 1, 10);
    let store = state.hub().store();
    let now = chrono::Utc::now();
    let claimed = store.claim(None, 1, now).await.unwrap().remove(0);
    let id = claimed.id;
    let path = format!("/api/directives/{id}/retry");
    let ctx = call!(app, post(&path, ADMIN, &json!({}))).expect_error(409, "directive_not_failed");
    assert_eq!(
        (ctx["directive_id"].as_str(), ctx["status"].as_str()),
        (Some(id.to_string().as_str()), Some("running"))
    );
    let failed = DirectiveUpdate {
        id,
        claimed_attempts: claimed.attempts,
        status: DirectiveStatus::Failed,
        attempts: claimed.attempts,
        available_at: now,
        last_error: "boom".into(),
        payload_patch: serde_json::Map::new(),
    };
    assert_eq!(store.finish(&[failed], now).await.unwrap(), 1);

    call!(app, post(&path, CLIENT, &json!({}))).expect_error(403, "forbidden");
    let body = call!(app, post(&path, ADMIN, &json!({}))).expect(200);
    assert_eq!((body["status"].as_str(), body["attempts"].as_i64()), (Some("queued"), Some(1)));
    assert_eq!(body["last_error"], "boom", "kept until the next run replaces it");
    let detail = call!(app, get(&format!("/api/directives/{id}"), ADMIN)).expect(200);
    assert_eq!(detail["status"], "queued");
    call!(app, post(&path, ADMIN, &json!({}))).expect_error(409, "directive_not_failed");
    call!(app, post("/api/directives/99999/retry", ADMIN, &json!({}))).expect_error(404, "directive_not_found");
    call!(app, post("/api/directives/abc/retry", ADMIN, &json!({}))).expect_error(404, "directive_not_found");
}
