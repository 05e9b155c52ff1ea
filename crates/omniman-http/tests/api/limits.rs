//! The size limits: ops in a batch and lines in a session (docs/api.md, "Limits").

use omniman_core::ops::MAX_OPS_PER_BATCH;
use omniman_core::session::MAX_LINES_PER_SESSION;
use serde_json::{Value, json};

use crate::common::{self, ADMIN, CLIENT, get, post};

#[actix_web::test]
async fn batches_and_sessions_have_a_size_limit() {
    let config = omniman_http::HttpConfig { body_limit: 4 << 20, ..omniman_http::HttpConfig::default() };
    let state = common::state_with(omniman_core::ext::ExtensionsBuilder::new(), config).await;
    let app = service!(state);
    let key = open!(app, "pos");
    let modify = format!("/api/sessions/{key}/modify");
    let lines = |n: usize, from: usize| -> Vec<Value> {
        (from..from + n)
            .map(|i| json!({"op": "add_line", "sku": format!("S{i}"), "qty": 1, "unit_price_q": 1}))
            .collect()
    };

    let ctx =
        call!(app, post(&modify, CLIENT, &json!({"channel_code": "pos", "ops": lines(MAX_OPS_PER_BATCH + 1, 0)})))
            .expect_error(400, "validation_error");
    assert!(ctx["fields"]["ops"][0].as_str().unwrap().contains("at most"), "{ctx}");

    let full = MAX_LINES_PER_SESSION;
    let mut added = 0;
    while added < full {
        let n = (full - added).min(MAX_OPS_PER_BATCH);
        call!(app, post(&modify, CLIENT, &json!({"channel_code": "pos", "ops": lines(n, added)}))).expect(200);
        added += n;
    }
    let ctx = call!(app, post(&modify, CLIENT, &json!({"channel_code": "pos", "ops": lines(1, full)})))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["ops"][0].as_str().unwrap().contains("at most"), "{ctx}");
    let session = call!(app, get(&format!("/api/sessions/{key}?channel_code=pos"), CLIENT)).expect(200);
    assert_eq!(session["items"].as_array().unwrap().len(), full);
    // A full session can still change its lines and be committed.
    let line_id = session["items"][0]["line_id"].as_str().unwrap().to_owned();
    call!(
        app,
        post(
            &modify,
            CLIENT,
            &json!({"channel_code": "pos", "ops": [{"op": "set_qty", "line_id": line_id, "qty": 2}]})
        )
    )
    .expect(200);
    commit!(app, "pos", key, "k-full").expect(201);

    let items: Vec<Value> = (0..=full).map(|i| json!({"sku": format!("S{i}"), "qty": 1, "unit_price_q": 1})).collect();
    let ctx = call!(app, post("/api/sessions/import", ADMIN, &json!({"channel_code": "pos", "items": items})))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["items"][0].as_str().unwrap().contains("at most"), "{ctx}");
    let items: Vec<Value> = (0..full).map(|i| json!({"sku": format!("S{i}"), "qty": 1, "unit_price_q": 1})).collect();
    call!(app, post("/api/sessions/import", ADMIN, &json!({"channel_code": "pos", "items": items}))).expect(201);
}

/// A JSON object `depth` levels deep (`{"a":{"a":…1}}`).
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "a": inner }))
}

#[actix_web::test]
async fn meta_data_and_text_have_limits_and_a_refusal_writes_nothing() {
    use omniman_core::fields::{MAX_DATA_BYTES, MAX_JSON_DEPTH, MAX_JSON_KEY_CHARS, MAX_META_BYTES};

    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let modify = format!("/api/sessions/{key}/modify");
    let session_url = format!("/api/sessions/{key}?channel_code=pos");
    let before = call!(app, get(&session_url, CLIENT)).expect(200);
    let refused = |body: Value, status: u16, path: &'static str| (body, status, path);
    let add = |meta: Value| json!({"channel_code": "pos", "ops": [{"op": "add_line", "sku": "S", "qty": 1, "unit_price_q": 1, "meta": meta}]});
    let set =
        |value: Value| json!({"channel_code": "pos", "ops": [{"op": "set_data", "path": "extra.v", "value": value}]});
    let big = |bytes: usize| Value::String("x".repeat(bytes));
    let long_key = "k".repeat(MAX_JSON_KEY_CHARS + 1);

    for (body, status, path) in [
        refused(add(json!({ "note": big(MAX_META_BYTES) })), 400, "ops[0].meta"),
        refused(add(nested(MAX_JSON_DEPTH + 1)), 400, "ops[0].meta"),
        refused(add(json!({ long_key.clone(): 1 })), 400, "ops[0].meta"),
        refused(set(big(MAX_DATA_BYTES)), 400, "ops[0].value"),
        // `extra.v` puts the value two levels into `data`.
        refused(set(nested(MAX_JSON_DEPTH - 1)), 400, "ops[0].value"),
        refused(set(json!({ long_key.clone(): 1 })), 400, "ops[0].value"),
        refused(json!({"channel_code": "pos", "ops": [{"op": "x".repeat(65)}]}), 400, "ops[0].op"),
    ] {
        let ctx = call!(app, post(&modify, CLIENT, &body)).expect_error(status, "validation_error");
        let message = ctx["fields"][path][0].as_str().unwrap_or_else(|| panic!("no problem at {path}: {ctx}"));
        assert!(message.contains("at most"), "{path}: {message}");
    }
    // At the limits themselves everything is accepted.
    call!(app, post(&modify, CLIENT, &add(nested(MAX_JSON_DEPTH)))).expect(200);
    call!(app, post(&modify, CLIENT, &set(nested(MAX_JSON_DEPTH - 2)))).expect(200);

    // The session's data as a whole is bounded too: values that fit one by one cannot pile up.
    let half = |path: &str| json!({"channel_code": "pos", "ops": [{"op": "set_data", "path": path, "value": big(MAX_DATA_BYTES / 2)}]});
    call!(app, post(&modify, CLIENT, &half("extra.one"))).expect(200);
    let kept = call!(app, get(&session_url, CLIENT)).expect(200);
    let ctx = call!(app, post(&modify, CLIENT, &half("extra.two"))).expect_error(400, "validation_error");
    assert!(ctx["fields"]["ops"][0].as_str().unwrap().contains("at most"), "{ctx}");
    assert_eq!(call!(app, get(&session_url, CLIENT)).expect(200), kept, "a refused batch writes nothing");
    assert_ne!(kept, before);

    // Import: line meta and session data.
    let import = |items: Value, data: Value| json!({"channel_code": "pos", "items": items, "data": data});
    let line = json!([{"sku": "S", "qty": 1, "unit_price_q": 1}]);
    for (body, path) in [
        (import(json!([{"sku": "S", "qty": 1, "meta": {"n": big(MAX_META_BYTES)}}]), json!({})), "items[0].meta"),
        (import(line.clone(), json!({"n": big(MAX_DATA_BYTES)})), "data"),
        (import(line.clone(), nested(MAX_JSON_DEPTH + 1)), "data"),
    ] {
        let ctx = call!(app, post("/api/sessions/import", ADMIN, &body)).expect_error(400, "validation_error");
        assert!(ctx["fields"][path][0].as_str().unwrap().contains("at most"), "{path}: {ctx}");
    }
    let listed = call!(app, get("/api/sessions?channel_code=pos", ADMIN)).expect(200);
    assert_eq!(listed["results"].as_array().unwrap().len(), 1, "no refused import was stored");

    // Order transitions: the status and the note are bounded text.
    let order_ref = order!(app, "web", 100);
    let transition = format!("/api/orders/{order_ref}/transition");
    for (body, path) in [
        (json!({"status": "confirmed", "note": "n".repeat(1001)}), "note"),
        (json!({"status": "s".repeat(65)}), "status"),
    ] {
        let ctx = call!(app, post(&transition, CLIENT, &body)).expect_error(400, "validation_error");
        assert!(ctx["fields"][path][0].as_str().unwrap().contains("at most"), "{path}: {ctx}");
    }
    let events = call!(app, get(&format!("/api/orders/{order_ref}/events"), CLIENT)).expect(200);
    assert_eq!(events["results"].as_array().unwrap().len(), 1, "only `created`: {events}");
}
