//! Resolving issues through the `ActionResolver` of source `stock`.

use std::sync::Arc;

use omniman_core::ext::{ActionResolver, ExtensionsBuilder};
use omniman_http::HttpConfig;
use serde_json::{Value, json};

use crate::common::{self, CLIENT, get, post};

fn issue(id: &str, source: &str, actions: &Value) -> Value {
    json!({"id": id, "source": source, "code": "stock.insufficient", "blocking": true, "message": "short",
           "context": {"actions": actions}})
}

#[actix_web::test]
async fn resolve_codes_and_success() {
    let ext = ExtensionsBuilder::new().resolver(Arc::new(ActionResolver::new("stock"))).unwrap();
    let state = common::state_with(ext, HttpConfig::default()).await;
    let app = service!(state.clone());
    let hub = state.hub().clone();
    let key = open!(app, "pos");
    let body = add_line!(app, "pos", key, "A", 5, 10);
    let line = body["items"][0]["line_id"].as_str().unwrap().to_owned();
    let actions = json!([
        {"id": "ACT-OK", "label": "Set 2", "rev": 1, "ops": [{"op": "set_qty", "line_id": line, "qty": 2}]},
        {"id": "ACT-STALE", "label": "Old", "rev": 0, "ops": [{"op": "remove_line", "line_id": line}]},
        {"id": "ACT-EMPTY", "label": "Nothing", "ops": []},
        {"id": "ACT-BROKEN", "label": "Broken", "ops": [{"op": "set_qty"}]},
        {"id": "ACT-NEG", "label": "Negative", "ops": [{"op": "set_qty", "line_id": line, "qty": -5}]},
    ]);
    let issues = vec![issue("ISS-1", "stock", &actions), issue("ISS-2", "fraud", &json!([]))];
    assert!(hub.apply_check_result(&common::at("pos", &key), 1, "stock", json!({}), issues).await.unwrap());
    let url = format!("/api/sessions/{key}/resolve");
    let resolve = |issue: &str, action: &str| json!({"channel_code": "pos", "issue_id": issue, "action_id": action});

    let ctx = call!(app, post(&url, CLIENT, &json!({"channel_code": "pos"}))).expect_error(400, "validation_error");
    assert!(ctx["fields"]["issue_id"].is_array() && ctx["fields"]["action_id"].is_array());
    let ctx = call!(app, post(&url, CLIENT, &resolve(&"x".repeat(65), "a"))).expect_error(400, "validation_error");
    assert!(ctx["fields"]["issue_id"].is_array());
    call!(app, post("/api/sessions/NOPE/resolve", CLIENT, &resolve("ISS-1", "ACT-OK")))
        .expect_error(404, "session_not_found");
    let ctx = call!(app, post(&url, CLIENT, &resolve("ISS-9", "ACT-OK"))).expect_error(404, "issue_not_found");
    assert_eq!(ctx["issue_id"], "ISS-9");
    let ctx = call!(app, post(&url, CLIENT, &resolve("ISS-2", "ACT-OK"))).expect_error(409, "no_resolver");
    assert_eq!(ctx["source"], "fraud");
    call!(app, post(&url, CLIENT, &resolve("ISS-1", "ACT-NOPE"))).expect_error(404, "action_not_found");
    let ctx = call!(app, post(&url, CLIENT, &resolve("ISS-1", "ACT-STALE"))).expect_error(409, "stale_action");
    assert_eq!(ctx, json!({"action_rev": 0, "session_rev": 1}));
    call!(app, post(&url, CLIENT, &resolve("ISS-1", "ACT-EMPTY"))).expect_error(409, "no_ops");
    let ctx = call!(app, post(&url, CLIENT, &resolve("ISS-1", "ACT-BROKEN"))).expect_error(500, "resolver_error");
    assert_eq!(ctx, json!({"source": "stock", "issue_id": "ISS-1", "action_id": "ACT-BROKEN"}));
    call!(app, post(&url, CLIENT, &resolve("ISS-1", "ACT-NEG"))).expect_error(400, "invalid_qty");
    // If-Match is checked before the resolver runs.
    call!(app, post(&url, CLIENT, &resolve("ISS-1", "ACT-OK")).insert_header(("If-Match", "\"7\"")))
        .expect_error(412, "precondition_failed");
    // Nothing was changed by the refusals.
    assert_eq!(call!(app, get(&format!("/api/sessions/{key}"), CLIENT)).expect(200)["items"][0]["qty"], "5.000");

    let r = call!(app, post(&url, CLIENT, &resolve("ISS-1", "ACT-OK")).insert_header(("If-Match", "\"1\"")));
    let body = r.expect(200);
    assert_eq!(body["rev"], 2);
    assert_eq!(body["items"][0]["qty"], "2.000");
    assert_eq!(body["data"]["issues"], json!([]));
    assert_eq!(r.header("etag"), Some("\"2.3\""));
}

#[actix_web::test]
async fn resolve_on_a_locked_channel_is_locked() {
    let ext = ExtensionsBuilder::new().resolver(Arc::new(ActionResolver::new("stock"))).unwrap();
    let state = common::state_with(ext, HttpConfig::default()).await;
    let app = service!(state.clone());
    let key = open!(app, "market");
    let actions = json!([{"id": "ACT-1", "ops": [{"op": "remove_line", "line_id": "L-X"}]}]);
    assert!(
        state
            .hub()
            .apply_check_result(
                &common::at("market", &key),
                0,
                "stock",
                json!({}),
                vec![issue("ISS-1", "stock", &actions)]
            )
            .await
            .unwrap()
    );
    let body = json!({"channel_code": "market", "issue_id": "ISS-1", "action_id": "ACT-1"});
    call!(app, post(&format!("/api/sessions/{key}/resolve"), CLIENT, &body)).expect_error(409, "locked");
}
