//! Opening, reading, modifying and abandoning sessions; ETags and preconditions.

use actix_web::test::TestRequest;
use omniman_core::channel::Channel;
use omniman_core::context::Ctx;
use omniman_core::error::Rejection;
use omniman_core::ext::{ExtensionsBuilder, Validator, ValidatorStage};
use omniman_core::session::Session;
use omniman_http::HttpConfig;
use serde_json::{Value, json};

use crate::common::{self, ADMIN, CLIENT, get, post};

#[expect(clippy::needless_pass_by_value)] // called with `json!` literals
fn modify_body(channel: &str, ops: Value) -> Value {
    json!({"channel_code": channel, "ops": ops})
}

#[actix_web::test]
async fn open_returns_the_full_session_body() {
    let state = common::state().await;
    let app = service!(state);
    let r = call!(
        app,
        post("/api/sessions", CLIENT, &json!({"channel_code": "pos", "handle_type": "table", "handle_ref": "7"}))
    );
    let body = r.expect(201);
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "session_key",
            "channel",
            "channel_code",
            "handle_type",
            "handle_ref",
            "state",
            "pricing_policy",
            "edit_policy",
            "rev",
            "version",
            "items",
            "data",
            "pricing",
            "total_q",
            "items_count",
            "commit_token",
            "opened_at",
            "committed_at",
            "updated_at"
        ]
    );
    assert_eq!(body["channel"], 1);
    assert_eq!(body["state"], "open");
    assert_eq!(body["rev"], 0);
    assert_eq!(body["data"], json!({"checks": {}, "issues": []}));
    assert_eq!(body["commit_token"], Value::Null);
    assert!(body["session_key"].as_str().unwrap().starts_with("SESS-"));
    assert!(body["opened_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r.header("etag"), Some("\"0.0\""));

    // Same handle again: the same open session, 200.
    let again = call!(
        app,
        post("/api/sessions", CLIENT, &json!({"channel_code": "pos", "handle_type": "table", "handle_ref": "7"}))
    );
    assert_eq!(again.expect(200)["id"], body["id"]);
}

#[actix_web::test]
async fn open_refusals() {
    let state = common::state().await;
    let app = service!(state);
    let body = json!({"channel_code": "pos", "session_key": "TAB-1"});
    call!(app, post("/api/sessions", CLIENT, &body)).expect(201);
    let ctx = call!(app, post("/api/sessions", CLIENT, &body)).expect_error(409, "session_exists");
    assert_eq!(ctx["session_key"], "TAB-1");
    let ctx = call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "nope"})))
        .expect_error(400, "unknown_channel");
    assert_eq!(ctx["channel_code"], "nope");
    call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "closed"}))).expect_error(409, "channel_inactive");
    let ctx = call!(app, post("/api/sessions", CLIENT, &json!({}))).expect_error(400, "validation_error");
    assert!(ctx["fields"]["channel_code"].is_array(), "{ctx}");
    let ctx = call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": 5, "handle_ref": ["x"]})))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["channel_code"].is_array() && ctx["fields"]["handle_ref"].is_array(), "{ctx}");
    let ctx = call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "pos", "session_key": "bad key!"})))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["session_key"].is_array());
    // Literal routes are not session keys.
    let ctx = call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "pos", "session_key": "import"})))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["session_key"].is_array());
    let ctx = call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "pos", "handle_type": "x".repeat(33)})))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["handle_type"].is_array());
}

#[actix_web::test]
async fn get_with_etag_and_304() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let r = call!(app, get(&format!("/api/sessions/{key}"), CLIENT));
    assert_eq!(r.expect(200)["session_key"], key.as_str());
    assert_eq!(r.header("etag"), Some("\"0.0\""));
    let r = call!(
        app,
        get(&format!("/api/sessions/{key}?channel_code=pos"), CLIENT).insert_header(("If-None-Match", "\"0.0\""))
    );
    assert_eq!(r.status, 304);
    assert!(r.bytes.is_empty());
    assert_eq!(r.header("etag"), Some("\"0.0\""));
    let r =
        call!(app, get(&format!("/api/sessions/{key}"), CLIENT).insert_header(("If-None-Match", "\"9.9\", W/\"0.0\"")));
    assert_eq!(r.status, 304);
    add_line!(app, "pos", key, "A", 1, 100);
    let r = call!(app, get(&format!("/api/sessions/{key}"), CLIENT).insert_header(("If-None-Match", "\"0.0\"")));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some("\"1.1\""));
}

#[actix_web::test]
async fn lookup_errors() {
    let state = common::state().await;
    let app = service!(state);
    let ctx = call!(app, get("/api/sessions/NOPE", CLIENT)).expect_error(404, "session_not_found");
    assert_eq!(ctx["session_key"], "NOPE");
    call!(app, get("/api/sessions/NOPE?channel_code=pos", CLIENT)).expect_error(404, "session_not_found");
    call!(app, get("/api/sessions/NOPE?channel_code=zzz", CLIENT)).expect_error(400, "unknown_channel");
    // One key in two channels.
    for channel in ["pos", "web"] {
        call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": channel, "session_key": "SHARED"})))
            .expect(201);
    }
    call!(app, get("/api/sessions/SHARED", CLIENT)).expect_error(400, "channel_code_required");
    assert_eq!(call!(app, get("/api/sessions/SHARED?channel_code=web", CLIENT)).expect(200)["channel_code"], "web");
}

#[actix_web::test]
async fn modify_applies_ops_and_answers_the_session() {
    let state = common::state().await;
    let app = service!(state.clone());
    let key = open!(app, "checked");
    let ops = json!([
        {"op": "add_line", "sku": "COFFEE", "qty": "1.5", "unit_price_q": 333, "name": "Coffee"},
        {"op": "add_line", "sku": "TEA", "qty": 2, "unit_price_q": 250},
        {"op": "set_data", "path": "customer.name", "value": "Ana"}
    ]);
    let r = call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &modify_body("checked", ops)));
    let body = r.expect(200);
    assert_eq!(r.header("etag"), Some("\"1.1\""));
    assert_eq!(body["rev"], 1);
    assert_eq!(body["items_count"], 2);
    assert_eq!(body["total_q"], 500 + 500);
    assert_eq!(body["items"][0]["qty"], "1.500");
    assert_eq!(body["items"][0]["line_total_q"], 500);
    assert_eq!(body["items"][0]["name"], "Coffee");
    assert!(body["items"][0]["line_id"].as_str().unwrap().starts_with("L-"));
    assert_eq!(body["items"][1]["qty"], "2.000");
    assert_eq!(body["data"]["customer"], json!({"name": "Ana"}));
    assert_eq!(body["data"]["checks"], json!({}));
    assert_eq!(body["data"]["issues"], json!([]));
    // A check directive was enqueued with the new rev.
    let directives = state.hub().store().all_directives();
    assert_eq!(directives.len(), 1);
    assert_eq!(directives[0].topic, "stock.hold");
    assert_eq!(directives[0].payload["rev"], 1);
    assert_eq!(directives[0].payload["session_key"], key.as_str());
}

#[actix_web::test]
async fn modify_shape_errors_are_validation_errors_with_paths() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let url = format!("/api/sessions/{key}/modify");
    let ctx = call!(app, post(&url, CLIENT, &modify_body("pos", json!([])))).expect_error(400, "validation_error");
    assert!(ctx["fields"]["ops"].is_array(), "{ctx}");
    let ctx = call!(app, post(&url, CLIENT, &json!({"channel_code": "pos"}))).expect_error(400, "validation_error");
    assert!(ctx["fields"]["ops"].is_array());
    let ctx = call!(app, post(&url, CLIENT, &json!({"ops": [{"op": "add_line", "sku": "A", "qty": 1}]})))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["channel_code"].is_array());
    let ctx = call!(app, post(&url, CLIENT, &modify_body("pos", json!({"op": "add_line"}))))
        .expect_error(400, "validation_error");
    assert!(ctx["fields"]["ops"].is_array());
    let ops = json!([{"op": "add_line", "sku": "A", "qty": 1}, {"op": "remove_line"}, {"op": "add_line", "sku": 5, "qty": 1, "unit_price_q": "x"}, 7]);
    let ctx = call!(app, post(&url, CLIENT, &modify_body("pos", ops))).expect_error(400, "validation_error");
    let fields = ctx["fields"].as_object().unwrap();
    for path in ["ops[1].line_id", "ops[2].sku", "ops[2].unit_price_q", "ops[3]"] {
        assert!(fields.contains_key(path), "{path}: {ctx}");
    }
    // Shape is checked before the lookup: an unknown session still says validation_error.
    call!(app, post("/api/sessions/NOPE/modify", CLIENT, &modify_body("pos", json!([{"op": "remove_line"}]))))
        .expect_error(400, "validation_error");
    // Nothing was written.
    assert_eq!(call!(app, get(&format!("/api/sessions/{key}"), CLIENT)).expect(200)["rev"], 0);
}

#[actix_web::test]
async fn every_op_error_code() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let url = format!("/api/sessions/{key}/modify");
    let body = add_line!(app, "pos", key, "A", 1, 100);
    let line = body["items"][0]["line_id"].as_str().unwrap().to_owned();
    let body = add_line!(app, "pos", key, "B", 1, 100);
    let other = body["items"][1]["line_id"].as_str().unwrap().to_owned();
    let cases = [
        (json!({"op": "fly"}), "unsupported_op"),
        (json!({"op": "add_line", "qty": 1}), "missing_sku"),
        (json!({"op": "add_line", "sku": "", "qty": 1}), "missing_sku"),
        (json!({"op": "add_line", "sku": "A", "qty": 0}), "invalid_qty"),
        (json!({"op": "add_line", "sku": "A", "qty": "1.2345"}), "invalid_qty"),
        (json!({"op": "add_line", "sku": "A", "qty": "1234567890"}), "invalid_qty"),
        (json!({"op": "add_line", "sku": "A", "qty": "lots"}), "invalid_qty"),
        (json!({"op": "remove_line", "line_id": "L-NOPE"}), "unknown_line_id"),
        (json!({"op": "set_qty", "line_id": "L-NOPE", "qty": 1}), "unknown_line_id"),
        (json!({"op": "merge_lines", "from_line_id": line, "into_line_id": line}), "invalid_merge"),
        (json!({"op": "merge_lines", "from_line_id": line, "into_line_id": other}), "sku_mismatch"),
        (json!({"op": "set_data", "path": "customer_name", "value": "x"}), "invalid_path"),
        (json!({"op": "set_data", "path": "customer.a.b.c.d.e", "value": "x"}), "invalid_path"),
        (json!({"op": "set_data", "path": "checks.stock", "value": "x"}), "invalid_path"),
    ];
    for (op, code) in cases {
        let ctx = call!(app, post(&url, CLIENT, &modify_body("pos", json!([op.clone()])))).expect_error(400, code);
        assert!(ctx.is_object(), "{op}");
    }
    // Semantic errors arise in batch order and abort the whole batch.
    let ops = json!([{"op": "add_line", "sku": "C", "qty": 1}, {"op": "remove_line", "line_id": "L-NOPE"}]);
    let ctx = call!(app, post(&url, CLIENT, &modify_body("pos", ops))).expect_error(400, "unknown_line_id");
    assert_eq!(ctx["op_index"], 1);
    let body = call!(app, get(&format!("/api/sessions/{key}"), CLIENT)).expect(200);
    assert_eq!((body["rev"].as_i64(), body["items_count"].as_i64()), (Some(2), Some(2)));
    // External pricing needs a price.
    let ext = open!(app, "ext");
    call!(
        app,
        post(
            &format!("/api/sessions/{ext}/modify"),
            CLIENT,
            &modify_body("ext", json!([{"op": "add_line", "sku": "A", "qty": 1}]))
        )
    )
    .expect_error(400, "missing_unit_price_q");
}

#[actix_web::test]
async fn configured_data_roots_and_depth() {
    let config = HttpConfig { data_roots: vec!["loyalty".into()], data_max_depth: 2, ..HttpConfig::default() };
    let state = common::state_with(ExtensionsBuilder::new(), config).await;
    let app = service!(state);
    let key = open!(app, "pos");
    let url = format!("/api/sessions/{key}/modify");
    let set = |path: &str| modify_body("pos", json!([{"op": "set_data", "path": path, "value": 1}]));
    call!(app, post(&url, CLIENT, &set("loyalty.points"))).expect(200);
    call!(app, post(&url, CLIENT, &set("loyalty.points.extra"))).expect_error(400, "invalid_path");
    call!(app, post(&url, CLIENT, &set("customer.name"))).expect_error(400, "invalid_path");
}

#[actix_web::test]
async fn state_and_policy_conflicts() {
    let state = common::state().await;
    let app = service!(state.clone());
    let op = json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 10}]);
    // Locked channel.
    let key = open!(app, "market");
    let ctx = call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &modify_body("market", op.clone())))
        .expect_error(409, "locked");
    assert_eq!(ctx, json!({"session_key": key, "channel": "Marketplace", "edit_policy": "locked"}));
    // Committed and abandoned.
    let key = open!(app, "pos");
    add_line!(app, "pos", key, "A", 1, 10);
    commit!(app, "pos", key, "k1").expect(201);
    call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &modify_body("pos", op.clone())))
        .expect_error(409, "already_committed");
    // State conflicts come before semantic op errors.
    call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &modify_body("pos", json!([{"op": "fly"}]))))
        .expect_error(409, "already_committed");
    let key = open!(app, "pos");
    call!(app, post(&format!("/api/sessions/{key}/abandon"), CLIENT, &json!({"channel_code": "pos"}))).expect(200);
    call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &modify_body("pos", op.clone())))
        .expect_error(409, "already_abandoned");
    // Lookup 404 comes before semantic errors too.
    call!(app, post("/api/sessions/NOPE/modify", CLIENT, &modify_body("pos", json!([{"op": "fly"}]))))
        .expect_error(404, "session_not_found");
    call!(app, post("/api/sessions/NOPE/modify", CLIENT, &modify_body("zzz", op))).expect_error(400, "unknown_channel");
}

#[actix_web::test]
async fn if_match_preconditions() {
    let state = common::state().await;
    let app = service!(state.clone());
    let key = open!(app, "pos");
    let url = format!("/api/sessions/{key}/modify");
    let op = modify_body("pos", json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 10}]));
    let r = call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "\"0.0\"")));
    assert_eq!(r.header("etag"), Some("\"1.1\""));
    r.expect(200);
    call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "\"1\""))).expect(200);
    call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "*"))).expect(200);
    let ctx = call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "\"1.1\"")))
        .expect_error(412, "precondition_failed");
    assert_eq!(ctx, json!({"expected": "\"1.1\"", "current_rev": 3, "current_version": 3}));
    let ctx = call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "garbage")))
        .expect_error(412, "precondition_failed");
    assert_eq!(ctx["expected"], "garbage");
    let ctx = call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "W/\"1.1\"")))
        .expect_error(412, "precondition_failed");
    assert_eq!(ctx["expected"], "W/\"1.1\"", "as sent");
    // A check write-back changes version, not rev: "<rev>" still matches, "<rev>.<version>" does not.
    assert!(state.hub().apply_check_result(&common::at("pos", &key), 3, "stock", json!({}), vec![]).await.unwrap());
    call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "\"3.3\""))).expect_error(412, "precondition_failed");
    call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "\"3\""))).expect(200);
    // Precedence: 404 before 412; 412 before the state conflict; 412 before semantic errors.
    call!(app, post("/api/sessions/NOPE/modify", CLIENT, &op).insert_header(("If-Match", "\"9\"")))
        .expect_error(404, "session_not_found");
    let bad = modify_body("pos", json!([{"op": "fly"}]));
    call!(app, post(&url, CLIENT, &bad).insert_header(("If-Match", "\"9\""))).expect_error(412, "precondition_failed");
    commit!(app, "pos", key, "k").expect(201);
    call!(app, post(&url, CLIENT, &op).insert_header(("If-Match", "\"9\""))).expect_error(412, "precondition_failed");
    // Abandon honours If-Match too.
    let other = open!(app, "pos");
    call!(
        app,
        post(&format!("/api/sessions/{other}/abandon"), CLIENT, &json!({"channel_code": "pos"}))
            .insert_header(("If-Match", "\"5\""))
    )
    .expect_error(412, "precondition_failed");
}

#[actix_web::test]
async fn abandon() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let url = format!("/api/sessions/{key}/abandon");
    let r = call!(app, post(&url, CLIENT, &json!({"channel_code": "pos"})));
    assert_eq!(r.expect(200)["state"], "abandoned");
    assert_eq!(r.header("etag"), Some("\"0.1\""));
    assert_eq!(call!(app, post(&url, CLIENT, &json!({"channel_code": "pos"}))).expect(200)["state"], "abandoned");
    call!(app, post(&url, CLIENT, &json!({}))).expect_error(400, "validation_error");
    call!(app, post("/api/sessions/NOPE/abandon", CLIENT, &json!({"channel_code": "pos"})))
        .expect_error(404, "session_not_found");
    let key = open!(app, "pos");
    add_line!(app, "pos", key, "A", 1, 10);
    commit!(app, "pos", key, "k").expect(201);
    call!(app, post(&format!("/api/sessions/{key}/abandon"), CLIENT, &json!({"channel_code": "pos"})))
        .expect_error(409, "already_committed");
}

struct NoFreebies;

impl Validator for NoFreebies {
    fn code(&self) -> &str {
        "no_freebies"
    }
    fn stage(&self) -> ValidatorStage {
        ValidatorStage::Draft
    }
    fn validate(&self, _: &Channel, session: &Session, _: &Ctx) -> Result<(), Rejection> {
        if session.items.iter().any(|i| i.unit_price_q == Some(0)) {
            return Err(Rejection::new("free_item", "items may not be free").with("limit", 0));
        }
        Ok(())
    }
}

#[actix_web::test]
async fn validator_codes_are_400_with_their_context() {
    let state = common::state_with(ExtensionsBuilder::new().validator(NoFreebies), HttpConfig::default()).await;
    let app = service!(state);
    let key = open!(app, "pos");
    let ops = modify_body("pos", json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 0}]));
    let ctx = call!(app, post(&format!("/api/sessions/{key}/modify"), CLIENT, &ops)).expect_error(400, "free_item");
    assert_eq!(ctx, json!({"limit": 0}));
}

#[actix_web::test]
async fn session_list_filters() {
    let state = common::state().await;
    let app = service!(state);
    let a = open!(app, "pos");
    call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "web", "handle_type": "tab", "handle_ref": "9"})))
        .expect(201);
    call!(app, post(&format!("/api/sessions/{a}/abandon"), CLIENT, &json!({"channel_code": "pos"}))).expect(200);
    let body = call!(app, get("/api/sessions", ADMIN)).expect(200);
    assert_eq!(body["results"].as_array().unwrap().len(), 2);
    let first = body["results"][0].as_object().unwrap();
    for heavy in ["items", "data", "pricing"] {
        assert!(!first.contains_key(heavy), "summaries are lighter: {heavy}");
    }
    assert!(first.contains_key("items_count") && first.contains_key("total_q"));
    for (query, expected) in [
        ("channel_code=pos", 1),
        ("channel_code=web", 1),
        ("state=abandoned", 1),
        ("state=open", 1),
        ("handle_type=tab&handle_ref=9", 1),
        ("handle_ref=10", 0),
    ] {
        let body = call!(app, get(&format!("/api/sessions?{query}"), CLIENT)).expect(200);
        assert_eq!(body["results"].as_array().unwrap().len(), expected, "{query}");
    }
    let ctx = call!(app, get("/api/sessions?state=weird", CLIENT)).expect_error(400, "validation_error");
    assert!(ctx["fields"]["state"].is_array());
    // Trailing slash.
    call!(
        app,
        TestRequest::get()
            .uri("/api/sessions/?state=open")
            .insert_header(("Authorization", format!("Bearer {CLIENT}")))
    )
    .expect(200);
}

#[actix_web::test]
async fn import_is_admin_only_keeps_given_lines_and_data_and_ignores_the_edit_policy() {
    let state = common::state().await;
    let app = service!(state);
    let body = json!({
        "channel_code": "market",
        "session_key": "IFOOD-123",
        "handle_type": "marketplace",
        "handle_ref": "123",
        "items": [
            {"line_id": "L-EXT-1", "sku": "BURGER", "name": "Burger", "qty": 2, "unit_price_q": 2500},
            {"sku": "SODA", "qty": "1.5", "unit_price_q": 333}
        ],
        "data": {"customer": {"name": "Ana"}, "checks": {"stock": {"rev": 0}}, "issues": []}
    });
    call!(app, post("/api/sessions/import", CLIENT, &body)).expect_error(403, "forbidden");
    let session = call!(app, post("/api/sessions/import", ADMIN, &body)).expect(201);
    assert_eq!(session["session_key"], json!("IFOOD-123"));
    assert_eq!(session["edit_policy"], json!("locked"));
    assert_eq!(session["items"][0]["line_id"], json!("L-EXT-1"));
    assert_eq!(session["items"][0]["name"], json!("Burger"));
    assert!(session["items"][1]["line_id"].as_str().unwrap().starts_with("L-"));
    assert_eq!(session["items"][1]["line_total_q"], json!(500));
    assert_eq!(session["total_q"], json!(5500));
    assert_eq!(session["data"]["checks"]["stock"]["rev"], json!(0), "data is stored as given");
    // The same key again is taken.
    call!(app, post("/api/sessions/import", ADMIN, &body)).expect_error(409, "session_exists");
    // `import` is a route, not a session key.
    call!(app, get("/api/sessions/import?channel_code=market", ADMIN)).expect_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn import_reports_every_bad_line_with_its_path() {
    let state = common::state().await;
    let app = service!(state);
    let body = json!({"channel_code": "market", "items": [{"sku": "", "qty": 0}, {"sku": "X", "qty": 1, "unit_price_q": 1.5}, 7]});
    let error = call!(app, post("/api/sessions/import", ADMIN, &body)).expect_error(400, "validation_error");
    let fields = error["fields"].as_object().unwrap();
    for path in ["items[0].sku", "items[0].qty", "items[1].unit_price_q", "items[2]"] {
        assert!(fields.contains_key(path), "{path} missing from {fields:?}");
    }
    let missing = call!(app, post("/api/sessions/import", ADMIN, &json!({"channel_code": "market"})))
        .expect_error(400, "validation_error");
    assert!(missing["fields"]["items"].is_array());
}
