//! Management over HTTP: channels (create, change, deactivate) and tokens (issue, list, revoke).

use actix_web::test::TestRequest;
use serde_json::json;

use crate::common::{self, ADMIN, CLIENT, get, post};

fn patch(path: &str, token: &str, body: &serde_json::Value) -> TestRequest {
    TestRequest::patch().uri(path).insert_header(("Authorization", format!("Bearer {token}"))).set_json(body)
}

fn delete(path: &str, token: &str) -> TestRequest {
    TestRequest::delete().uri(path).insert_header(("Authorization", format!("Bearer {token}")))
}

#[actix_web::test]
async fn an_admin_creates_changes_and_deactivates_a_channel() {
    let state = common::state().await;
    let app = service!(state);
    let body = json!({"code": "kiosk", "name": "Kiosk", "config": {"currency": "EUR"}});
    let created = call!(app, post("/api/channels", ADMIN, &body)).expect(201);
    assert_eq!(created["code"], "kiosk");
    assert_eq!(created["pricing_policy"], "internal");
    assert_eq!((created["is_active"].clone(), created["config"].clone()), (json!(true), json!({"currency": "EUR"})));
    call!(app, post("/api/channels", ADMIN, &body)).expect_error(409, "channel_exists");

    // A session opens on it; after deactivation none does, and the channel reads inactive.
    call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "kiosk"}))).expect(201);
    let changed =
        call!(app, patch("/api/channels/kiosk", ADMIN, &json!({"is_active": false, "display_order": 3}))).expect(200);
    assert_eq!((changed["is_active"].clone(), changed["display_order"].clone()), (json!(false), json!(3)));
    assert_eq!(changed["name"], "Kiosk", "fields not given are kept");
    call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "kiosk"}))).expect_error(409, "channel_inactive");
    assert_eq!(call!(app, get("/api/channels/kiosk", ADMIN)).expect(200), changed);
}

#[actix_web::test]
async fn a_bad_channel_is_refused_with_its_paths_and_nothing_changes() {
    let state = common::state().await;
    let app = service!(state);
    let bad = json!({"code": "", "pricing_policy": "free", "display_order": -1, "is_active": "yes", "colour": 1});
    let error = call!(app, post("/api/channels", ADMIN, &bad)).expect_error(400, "validation_error");
    let fields = &error["fields"];
    for path in ["code", "pricing_policy", "display_order", "is_active", "colour"] {
        assert!(fields.get(path).is_some(), "{path} not reported: {fields}");
    }
    let bad_config = json!({"config": {"currency": "euro", "order_flow": {"transitions": 1}}});
    let error = call!(app, patch("/api/channels/pos", ADMIN, &bad_config)).expect_error(400, "validation_error");
    assert!(error["fields"].get("config.currency").is_some(), "{error}");
    let before = call!(app, get("/api/channels/pos", ADMIN)).expect(200);
    assert_eq!(before["config"].get("currency"), None, "the refused change wrote nothing");
    call!(app, patch("/api/channels/nowhere", ADMIN, &json!({"name": "x"}))).expect_error(404, "channel_not_found");
}

#[actix_web::test]
async fn management_is_for_admins_only() {
    let state = common::state().await;
    let app = service!(state);
    call!(app, post("/api/channels", CLIENT, &json!({"code": "x"}))).expect_error(403, "forbidden");
    call!(app, patch("/api/channels/pos", CLIENT, &json!({"name": "x"}))).expect_error(403, "forbidden");
    call!(app, get("/api/tokens", CLIENT)).expect_error(403, "forbidden");
    call!(app, post("/api/tokens", CLIENT, &json!({"name": "x", "role": "admin"}))).expect_error(403, "forbidden");
    call!(app, delete("/api/tokens/1", CLIENT)).expect_error(403, "forbidden");
}

#[actix_web::test]
async fn a_token_is_issued_once_works_and_stops_working_when_revoked() {
    let state = common::state().await;
    let app = service!(state);
    let body = json!({"name": "till-9", "role": "client", "channels": ["pos"], "rate_limit": "commit=5/min"});
    let issued = call!(app, post("/api/tokens", ADMIN, &body)).expect(201);
    let secret = issued["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(omniman_http::TOKEN_PREFIX), "{secret}");
    assert_eq!(issued["channels"], json!(["pos"]));
    assert_eq!(issued["rate_limit"], "commit=5/min");
    assert_eq!(issued["revoked_at"], json!(null));
    call!(app, post("/api/tokens", ADMIN, &body)).expect_error(409, "token_exists");

    // It works for its channel only.
    call!(app, post("/api/sessions", &secret, &json!({"channel_code": "pos"}))).expect(201);
    call!(app, post("/api/sessions", &secret, &json!({"channel_code": "web"}))).expect_error(403, "forbidden");

    // Listed without its secret.
    let list = call!(app, get("/api/tokens", ADMIN)).expect(200);
    let listed = list["results"].as_array().unwrap().iter().find(|t| t["name"] == "till-9").unwrap().clone();
    assert_eq!(listed.get("token"), None);
    assert!(!list.to_string().contains(&secret));
    assert_eq!(listed["id"], issued["id"]);

    let path = format!("/api/tokens/{}", issued["id"]);
    let revoked = call!(app, delete(&path, ADMIN)).expect(200);
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    call!(app, get("/api/sessions", &secret)).expect_error(401, "unauthenticated");
    call!(app, delete(&path, ADMIN)).expect_error(404, "token_not_found");
    call!(app, delete("/api/tokens/not-a-number", ADMIN)).expect_error(404, "token_not_found");
}

#[actix_web::test]
async fn a_token_request_is_checked_like_the_cli_checks_it() {
    let state = common::state().await;
    let app = service!(state);
    let error = call!(app, post("/api/tokens", ADMIN, &json!({"name": "", "role": "owner", "rate_limit": "fast"})))
        .expect_error(400, "validation_error");
    let fields = &error["fields"];
    for path in ["name", "role", "rate_limit"] {
        assert!(fields.get(path).is_some(), "{path} not reported: {fields}");
    }
    let error =
        call!(app, post("/api/tokens", ADMIN, &json!({"name": "t", "role": "client", "channels": ["pos", "nope"]})))
            .expect_error(400, "unknown_channel");
    assert_eq!(error["channel_codes"], json!(["nope"]));
    let list = call!(app, get("/api/tokens", ADMIN)).expect(200);
    assert!(list["results"].as_array().unwrap().iter().all(|t| t["name"] != "t"), "nothing was stored");
}
