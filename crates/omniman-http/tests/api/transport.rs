//! Bodies that are too big, not JSON, not UTF-8, of the wrong type or with huge numbers: each is
//! a 4xx JSON error, never a 500 and never a partial write.

use actix_web::test::TestRequest;
use omniman_core::ext::ExtensionsBuilder;
use omniman_http::HttpConfig;
use serde_json::json;

use crate::common::{self, CLIENT, get};

fn raw_post(path: &str, content_type: Option<&str>, body: impl Into<Vec<u8>>) -> TestRequest {
    let mut req = TestRequest::post().uri(path).insert_header(("Authorization", format!("Bearer {CLIENT}")));
    if let Some(ct) = content_type {
        req = req.insert_header(("Content-Type", ct));
    }
    req.set_payload(body.into())
}

#[actix_web::test]
async fn content_type_must_be_json() {
    let state = common::state().await;
    let app = service!(state);
    let body = r#"{"channel_code":"pos"}"#;
    let ctx =
        call!(app, raw_post("/api/sessions", Some("text/plain"), body)).expect_error(415, "unsupported_media_type");
    assert_eq!(ctx["content_type"], "text/plain");
    let ctx = call!(app, raw_post("/api/sessions", None, body)).expect_error(415, "unsupported_media_type");
    assert!(ctx["content_type"].is_null());
    call!(app, raw_post("/api/sessions", Some("application/x-www-form-urlencoded"), "channel_code=pos"))
        .expect_error(415, "unsupported_media_type");
    call!(app, raw_post("/api/sessions", Some("application/json; charset=latin1"), body))
        .expect_error(415, "unsupported_media_type");
    call!(app, raw_post("/api/sessions", Some("application/json; charset=utf-8"), body)).expect(201);
    // Nothing was opened by the refused requests.
    assert_eq!(call!(app, get("/api/sessions", CLIENT)).expect(200)["results"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn bodies_over_the_limit_are_413() {
    let config = HttpConfig { body_limit: 1024, ..HttpConfig::default() };
    let state = common::state_with(ExtensionsBuilder::new(), config).await;
    let app = service!(state);
    let key = open!(app, "pos");
    let big = json!({"channel_code": "pos", "ops": [{"op": "set_data", "path": "notes", "value": "x".repeat(2000)}]});
    let url = format!("/api/sessions/{key}/modify");
    let ctx =
        call!(app, raw_post(&url, Some("application/json"), big.to_string())).expect_error(413, "payload_too_large");
    assert_eq!(ctx["limit_bytes"], 1024);
    // Just under the limit is fine.
    let small = json!({"channel_code": "pos", "ops": [{"op": "set_data", "path": "notes", "value": "x".repeat(900)}]});
    call!(app, raw_post(&url, Some("application/json"), small.to_string())).expect(200);
    // Routes that take no body are refused too when a large one is declared.
    call!(app, raw_post("/api/orders/stream", Some("application/json"), vec![b' '; 4096]))
        .expect_error(413, "payload_too_large");
}

#[actix_web::test]
async fn the_default_limit_is_one_mebibyte() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let body =
        json!({"channel_code": "pos", "ops": [{"op": "set_data", "path": "notes", "value": "x".repeat(1024 * 1024)}]});
    call!(app, raw_post(&format!("/api/sessions/{key}/modify"), Some("application/json"), body.to_string()))
        .expect_error(413, "payload_too_large");
    // 600 KiB within the other limits: 40 lines, each with 15 KiB of `meta`.
    let ops: Vec<_> = (0..40)
        .map(|i| json!({"op": "add_line", "sku": format!("S{i}"), "qty": 1, "unit_price_q": 1, "meta": {"n": "x".repeat(15 * 1024)}}))
        .collect();
    let body = json!({"channel_code": "pos", "ops": ops});
    assert!(body.to_string().len() > 600 * 1024);
    call!(app, raw_post(&format!("/api/sessions/{key}/modify"), Some("application/json"), body.to_string()))
        .expect(200);
}

#[actix_web::test]
async fn broken_bodies_are_400() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let url = format!("/api/sessions/{key}/modify");
    let json_ct = Some("application/json");
    let ctx =
        call!(app, raw_post(&url, json_ct, r#"{"channel_code": "pos", "ops": [}"#)).expect_error(400, "malformed_json");
    assert_eq!(ctx["line"], 1);
    call!(app, raw_post(&url, json_ct, "")).expect_error(400, "malformed_json");
    call!(app, raw_post(&url, json_ct, b"{\"channel_code\": \"p\xffos\"}".to_vec()))
        .expect_error(400, "malformed_json");
    call!(app, raw_post(&url, json_ct, "[1, 2]")).expect_error(400, "validation_error");
    call!(app, raw_post(&url, json_ct, "\"pos\"")).expect_error(400, "validation_error");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    call!(app, raw_post(&url, json_ct, format!(r#"{{"channel_code":"pos","ops":{deep}}}"#)))
        .expect_error(400, "malformed_json");
    // Wrong JSON types.
    let ctx = call!(app, raw_post(&url, json_ct, r#"{"channel_code": ["pos"], "ops": "add"}"#))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["channel_code"].is_array() && ctx["fields"]["ops"].is_array(), "{ctx}");
    // Huge numbers.
    call!(
        app,
        raw_post(
            &url,
            json_ct,
            r#"{"channel_code":"pos","ops":[{"op":"add_line","sku":"A","qty":1,"unit_price_q":1e400}]}"#
        )
    )
    .expect_error(400, "malformed_json");
    let ctx = call!(
        app,
        raw_post(
            &url,
            json_ct,
            r#"{"channel_code":"pos","ops":[{"op":"add_line","sku":"A","qty":1,"unit_price_q":99999999999999999999}]}"#
        )
    )
    .expect_error(400, "validation_error");
    assert!(ctx["fields"]["ops[0].unit_price_q"].is_array());
    call!(
        app,
        raw_post(
            &url,
            json_ct,
            r#"{"channel_code":"pos","ops":[{"op":"add_line","sku":"A","qty":123456789012345678901234567890}]}"#
        )
    )
    .expect_error(400, "invalid_qty");
    call!(app, raw_post(&url, json_ct, r#"{"channel_code":"pos","ops":[{"op":"add_line","sku":"A","qty":"1e300"}]}"#))
        .expect_error(400, "invalid_qty");
    // An extreme price that is a valid integer is stored as given, never a 500; a total it
    // would take past `i64` is refused, never saturated.
    let line = |qty: u32| {
        format!(
            r#"{{"channel_code":"pos","ops":[{{"op":"add_line","sku":"A","qty":{qty},"unit_price_q":{}}}]}}"#,
            i64::MAX
        )
    };
    call!(app, raw_post(&url, json_ct, line(2))).expect_error(400, "invalid_amount");
    let body = call!(app, raw_post(&url, json_ct, line(1))).expect(200);
    assert_eq!(body["items"][0]["unit_price_q"], i64::MAX);
    // No partial write: only the last request changed anything.
    assert_eq!(call!(app, get(&format!("/api/sessions/{key}"), CLIENT)).expect(200)["rev"], 1);
}

#[actix_web::test]
async fn fields_in_the_wrong_place_are_400_and_change_nothing() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let json_ct = Some("application/json");
    // A misspelt idempotency key must not commit without one; `ops` belongs to modify.
    let commit = format!("/api/sessions/{key}/commit");
    let ctx = call!(app, raw_post(&commit, json_ct, r#"{"channel_code":"pos","idempotency_kye":"K1"}"#))
        .expect_error(400, "validation_error");
    let message = ctx["fields"]["idempotency_kye"][0].as_str().unwrap();
    assert!(message.starts_with("unknown field") && message.contains("idempotency_key"), "{message}");
    let ops = r#"{"channel_code":"pos","ops":[{"op":"add_line","sku":"A","qty":1,"unit_price_q":1}]}"#;
    let ctx = call!(app, raw_post(&commit, json_ct, ops)).expect_error(400, "validation_error");
    assert!(ctx["fields"]["ops"].is_array(), "{ctx}");
    // Top-level `sku` on modify: the op's fields go inside the op.
    let modify = format!("/api/sessions/{key}/modify");
    let ctx = call!(
        app,
        raw_post(
            &modify,
            json_ct,
            r#"{"channel_code":"pos","sku":"A","ops":[{"op":"set_data","path":"notes","value":1}]}"#
        )
    )
    .expect_error(400, "validation_error");
    assert!(ctx["fields"]["sku"].is_array(), "{ctx}");
    // Inside an op, unknown fields are ignored (docs/reference.md §4).
    let lenient = r#"{"channel_code":"pos","ops":[{"op":"set_data","path":"notes","value":1,"comment":"hi"}]}"#;
    call!(app, raw_post(&modify, json_ct, lenient)).expect(200);
    // Only the lenient modify wrote.
    let session = call!(app, get(&format!("/api/sessions/{key}"), CLIENT)).expect(200);
    assert_eq!((session["rev"].as_i64(), session["state"].as_str()), (Some(1), Some("open")));
}

/// Every answer says `X-Content-Type-Options: nosniff`; authenticated answers and errors are
/// never stored by a cache (`Cache-Control: no-store`); the bundled docs assets keep their own
/// caching.
#[actix_web::test]
async fn answers_carry_security_headers() {
    let state = common::state().await;
    let app = service!(state);
    let header = |r: &crate::common::Resp, name: &str| r.headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    for req in [get("/api/sessions", CLIENT), get("/api/sessions/NOPE", CLIENT), TestRequest::get().uri("/api/health")]
    {
        let r = call!(app, req);
        assert_eq!(header(&r, "x-content-type-options").as_deref(), Some("nosniff"), "{}", r.status);
        assert_eq!(header(&r, "cache-control").as_deref(), Some("no-store"), "{}", r.status);
    }
    let asset = call!(app, TestRequest::get().uri("/api/docs/swagger-ui.css"));
    assert_eq!(header(&asset, "x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header(&asset, "cache-control").as_deref(), Some("public, max-age=3600"));
}

#[actix_web::test]
async fn no_acceptable_encoding_is_a_json_406() {
    let state = common::state().await;
    let app = service!(state);
    let req = |value: &str| {
        TestRequest::get()
            .uri("/api/channels")
            .insert_header(("Authorization", format!("Bearer {CLIENT}")))
            .insert_header(("Accept-Encoding", value.to_owned()))
    };
    let resp = call!(app, req("identity;q=0"));
    let ctx = resp.expect_error(406, "not_acceptable");
    assert_eq!(ctx["accept_encoding"], "identity;q=0");
    assert!(resp.header("content-type").unwrap().starts_with("application/json"));
    let gzip = call!(app, req("gzip"));
    assert_eq!((gzip.status.as_u16(), gzip.header("content-encoding")), (200, Some("gzip")));
    call!(app, req("identity")).expect(200);
}
