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
