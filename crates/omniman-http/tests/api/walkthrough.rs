//! The whole story over HTTP: open → modify → commit → replay → transition → events.

use serde_json::json;

use crate::common::{self, CLIENT, get, post};

#[actix_web::test]
async fn create_modify_commit_replay_transition_events() {
    let state = common::state().await;
    let app = service!(state.clone());

    let opened = call!(
        app,
        post("/api/sessions", CLIENT, &json!({"channel_code": "pos", "handle_type": "table", "handle_ref": "12"}))
    );
    let session = opened.expect(201);
    let key = session["session_key"].as_str().unwrap().to_owned();

    let ops = json!({"channel_code": "pos", "ops": [
        {"op": "add_line", "sku": "ESPRESSO", "qty": 2, "unit_price_q": 450, "name": "Espresso"},
        {"op": "add_line", "sku": "CAKE", "qty": "1.5", "unit_price_q": 333},
        {"op": "set_data", "path": "customer.name", "value": "Ana"}
    ]});
    let modified =
        call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &ops).insert_header(("If-Match", "\"0\"")));
    let session = modified.expect(200);
    let etag = modified.header("etag").unwrap().to_owned();
    assert_eq!(etag, "\"1.1\"");
    assert_eq!(session["total_q"], 900 + 500);

    let committed = commit!(app, "pos", key, "table-12-1").expect(201);
    let order_ref = committed["order_ref"].as_str().unwrap().to_owned();
    assert!(order_ref.starts_with("ORD-"));
    assert_eq!(committed["total_q"], 1400);
    assert_eq!(committed["items_count"], 2);
    // Replay: the same answer, one order.
    assert_eq!(commit!(app, "pos", key, "table-12-1").expect(201), committed);
    assert_eq!(state.hub().store().order_count(), 1);
    // The session moved on: its old ETag no longer matches.
    let r = call!(app, get(&format!("/api/sessions/{key}"), CLIENT).insert_header(("If-None-Match", etag.as_str())));
    assert_eq!(r.expect(200)["state"], "committed");

    let order = call!(app, get(&format!("/api/orders/{order_ref}"), CLIENT)).expect(200);
    assert_eq!(order["handle_ref"], "12");
    assert_eq!(order["session_key"], key.as_str());
    assert_eq!(order["snapshot"]["data"]["customer"]["name"], "Ana");
    for (status, previous) in [("confirmed", "new"), ("ready", "confirmed"), ("completed", "ready")] {
        let moved =
            call!(app, post(&format!("/api/orders/{order_ref}/transition"), CLIENT, &json!({"status": status})))
                .expect(200);
        assert_eq!((moved["status"].as_str(), moved["previous_status"].as_str()), (Some(status), Some(previous)));
    }
    let done = call!(app, get(&format!("/api/orders/{order_ref}"), CLIENT)).expect(200);
    assert_eq!(done["allowed_transitions"], json!([]));
    assert!(done["completed_at"].is_string() && done["dispatched_at"].is_null());

    let events = call!(app, get(&format!("/api/orders/{order_ref}/events"), CLIENT)).expect(200);
    let types: Vec<&str> = events["results"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["created", "status_changed", "status_changed", "status_changed"]);
    assert_eq!(events["results"][0]["payload"], json!({"from_session": key}));
    assert_eq!(events["results"][3]["payload"], json!({"old_status": "ready", "new_status": "completed"}));
}
