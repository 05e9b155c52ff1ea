//! Where a request names its channel, and how query strings are read: one rule for every route.

use actix_web::test::TestRequest;
use serde_json::json;

use crate::common::{self, ADMIN, CLIENT, get, post};

#[actix_web::test]
async fn post_routes_take_channel_code_from_the_query_string() {
    let state = common::state().await;
    let app = service!(state);
    let r = call!(app, post("/api/sessions?channel_code=pos", CLIENT, &json!({})));
    let key = r.expect(201)["session_key"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["channel_code"], json!("pos"));
    let ops = json!({"ops": [{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100}]});
    let body = call!(app, post(&format!("/api/sessions/{key}/modify?channel_code=pos"), CLIENT, &ops)).expect(200);
    assert_eq!(body["rev"], json!(1));
    let answer = call!(
        app,
        post(&format!("/api/sessions/{key}/commit?channel_code=pos"), CLIENT, &json!({"idempotency_key": "q-1"}))
    );
    assert_eq!(answer.expect(201)["status"], json!("committed"));
}

#[actix_web::test]
async fn a_body_and_a_query_string_that_name_different_channels_are_refused() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let same = json!({"channel_code": "pos", "ops": [{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 1}]});
    call!(app, post(&format!("/api/sessions/{key}/modify?channel_code=pos"), CLIENT, &same)).expect(200);
    let ctx = call!(app, post(&format!("/api/sessions/{key}/modify?channel_code=web"), CLIENT, &same))
        .expect_error(400, "validation_error");
    let message = ctx["fields"]["channel_code"][0].as_str().unwrap();
    assert!(message.contains("'pos'") && message.contains("'web'"), "{message}");
    let ctx = call!(app, post("/api/sessions", CLIENT, &json!({}))).expect_error(400, "validation_error");
    assert!(ctx["fields"]["channel_code"][0].as_str().unwrap().contains("?channel_code="), "{ctx}");
    let ctx = call!(app, post("/api/sessions?channel=pos", CLIENT, &json!({"channel_code": "pos"})))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["channel"].is_array(), "a POST reads no other parameter: {ctx}");
}

#[actix_web::test]
async fn list_routes_refuse_parameters_they_do_not_read() {
    let state = common::state().await;
    let app = service!(state);
    for (path, token, param) in [
        ("/api/orders?state=new", CLIENT, "state"),
        ("/api/sessions?status=open", CLIENT, "status"),
        ("/api/channels?channel_code=pos", CLIENT, "channel_code"),
        ("/api/directives?topc=stock.hold", ADMIN, "topc"),
        ("/api/orders/stream?since=0&limit=5", ADMIN, "limit"),
        ("/api/sessions/S1?channel=pos", CLIENT, "channel"),
    ] {
        let ctx = call!(app, get(path, token)).expect_error(400, "validation_error");
        let message = ctx["fields"][param][0].as_str().unwrap_or_else(|| panic!("{path}: {ctx}"));
        assert!(message.starts_with("unknown query parameter (this route reads: "), "{path}: {message}");
    }
}

#[actix_web::test]
async fn values_outside_a_known_set_are_400_on_every_list() {
    let state = common::state().await;
    let app = service!(state);
    let _ = order!(app, "pos", 100);
    for (path, token, field) in [
        ("/api/orders?status=bogus", CLIENT, "status"),
        ("/api/sessions?state=bogus", CLIENT, "state"),
        ("/api/directives?status=bogus", ADMIN, "status"),
    ] {
        let ctx = call!(app, get(path, token)).expect_error(400, "validation_error");
        assert!(ctx["fields"][field].is_array(), "{path}: {ctx}");
    }
    // Every status of a flow in scope is a valid filter, matching or not.
    let body = call!(app, get("/api/orders?status=new", CLIENT)).expect(200);
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    let body = call!(app, get("/api/orders?status=returned", CLIENT)).expect(200);
    assert!(body["results"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn an_unknown_channel_is_400_unknown_channel_everywhere() {
    let state = common::state().await;
    let app = service!(state);
    for path in
        ["/api/sessions?channel_code=nope", "/api/orders?channel_code=nope", "/api/sessions/S1?channel_code=nope"]
    {
        let ctx = call!(app, get(path, ADMIN)).expect_error(400, "unknown_channel");
        assert_eq!(ctx["channel_code"], json!("nope"), "{path}");
    }
    call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "nope"}))).expect_error(400, "unknown_channel");
    call!(
        app,
        post(
            "/api/sessions/S1/modify?channel_code=nope",
            CLIENT,
            &json!({"ops": [{"op": "remove_line", "line_id": "L"}]})
        )
    )
    .expect_error(400, "unknown_channel");
    let r = call!(
        app,
        TestRequest::get().uri("/api/channels/nope").insert_header(("Authorization", format!("Bearer {CLIENT}")))
    );
    r.expect_error(404, "channel_not_found");
}
