//! Bearer tokens, roles, channel scopes and rate limits.

use actix_web::test::TestRequest;
use omniman_core::ext::ExtensionsBuilder;
use omniman_http::{HttpConfig, parse_rate_limits};
use serde_json::json;

use crate::common::{self, ADMIN, CLIENT, LIMITED, POS, REVOKED, get, post};

#[actix_web::test]
async fn missing_bad_and_revoked_tokens_are_401() {
    let state = common::state().await;
    let app = service!(state);
    let r = call!(app, TestRequest::get().uri("/api/channels"));
    r.expect_error(401, "unauthenticated");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    call!(app, TestRequest::get().uri("/api/channels").insert_header(("Authorization", format!("Basic {CLIENT}"))))
        .expect_error(401, "unauthenticated");
    call!(app, TestRequest::get().uri("/api/channels").insert_header(("Authorization", "Bearer")))
        .expect_error(401, "unauthenticated");
    call!(app, get("/api/channels", "omni_unknown")).expect_error(401, "unauthenticated");
    call!(app, get("/api/channels", REVOKED)).expect_error(401, "unauthenticated");
    call!(app, get("/api/channels", CLIENT)).expect(200);
    // The scheme is case-insensitive.
    call!(app, TestRequest::get().uri("/api/channels").insert_header(("Authorization", format!("bearer {CLIENT}"))))
        .expect(200);
}

#[actix_web::test]
async fn auth_comes_before_everything_else() {
    let state = common::state().await;
    let app = service!(state);
    // Malformed JSON, wrong content type, unknown session: still 401 first.
    let r = call!(
        app,
        TestRequest::post()
            .uri("/api/sessions/NOPE/modify")
            .insert_header(("Content-Type", "application/json"))
            .set_payload("{oops")
    );
    r.expect_error(401, "unauthenticated");
    let r = call!(
        app,
        TestRequest::post().uri("/api/sessions").insert_header(("Content-Type", "text/plain")).set_payload("x")
    );
    r.expect_error(401, "unauthenticated");
}

#[actix_web::test]
async fn admin_routes_refuse_clients() {
    let state = common::state().await;
    let app = service!(state);
    for path in ["/api/directives", "/api/directives/1", "/api/orders/stream", "/api/orders/stream?since=0", "/metrics"]
    {
        call!(app, get(path, CLIENT)).expect_error(403, "forbidden");
        call!(app, get(path, POS)).expect_error(403, "forbidden");
    }
    call!(app, get("/api/directives", ADMIN)).expect(200);
}

#[actix_web::test]
async fn channel_scoped_tokens_see_and_touch_only_their_channels() {
    let state = common::state().await;
    let app = service!(state);
    // Channel list and detail.
    let body = call!(app, get("/api/channels", POS)).expect(200);
    let codes: Vec<&str> = body["results"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["pos"]);
    call!(app, get("/api/channels/pos", POS)).expect(200);
    let ctx = call!(app, get("/api/channels/web", POS)).expect_error(403, "forbidden");
    assert_eq!(ctx["channel_code"], "web");
    // Sessions: open on pos ok, on web refused.
    let r = call!(app, post("/api/sessions", POS, &json!({"channel_code": "pos"})));
    let pos_key = r.expect(201)["session_key"].as_str().unwrap().to_owned();
    call!(app, post("/api/sessions", POS, &json!({"channel_code": "web"}))).expect_error(403, "forbidden");
    let web_key = open!(app, "web");
    call!(app, get(&format!("/api/sessions/{web_key}"), POS)).expect_error(403, "forbidden");
    call!(app, get(&format!("/api/sessions/{web_key}?channel_code=web"), POS)).expect_error(403, "forbidden");
    let ops = json!({"channel_code": "web", "ops": [{"op": "add_line", "sku": "A", "qty": 1}]});
    call!(app, post(&format!("/api/sessions/{web_key}/modify"), POS, &ops)).expect_error(403, "forbidden");
    for action in ["commit", "abandon"] {
        call!(app, post(&format!("/api/sessions/{web_key}/{action}"), POS, &json!({"channel_code": "web"})))
            .expect_error(403, "forbidden");
    }
    let resolve = json!({"channel_code": "web", "issue_id": "ISS-1", "action_id": "ACT-1"});
    call!(app, post(&format!("/api/sessions/{web_key}/resolve"), POS, &resolve)).expect_error(403, "forbidden");
    // Lists are filtered.
    let body = call!(app, get("/api/sessions", POS)).expect(200);
    let keys: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|s| s["session_key"].as_str().unwrap()).collect();
    assert_eq!(keys, [pos_key.as_str()]);
    call!(app, get("/api/sessions?channel_code=web", POS)).expect_error(403, "forbidden");
    assert_eq!(call!(app, get("/api/sessions", CLIENT)).expect(200)["results"].as_array().unwrap().len(), 2);
    // Orders.
    let pos_order = order!(app, "pos", 100);
    let web_order = order!(app, "web", 200);
    let body = call!(app, get("/api/orders", POS)).expect(200);
    let refs: Vec<&str> = body["results"].as_array().unwrap().iter().map(|o| o["ref"].as_str().unwrap()).collect();
    assert_eq!(refs, [pos_order.as_str()]);
    call!(app, get("/api/orders?channel_code=web", POS)).expect_error(403, "forbidden");
    call!(app, get(&format!("/api/orders/{pos_order}"), POS)).expect(200);
    call!(app, get(&format!("/api/orders/{web_order}"), POS)).expect_error(403, "forbidden");
    call!(app, get(&format!("/api/orders/{web_order}/events"), POS)).expect_error(403, "forbidden");
    call!(app, post(&format!("/api/orders/{web_order}/transition"), POS, &json!({"status": "confirmed"})))
        .expect_error(403, "forbidden");
    // Nothing changed on the refused order.
    assert_eq!(call!(app, get(&format!("/api/orders/{web_order}"), ADMIN)).expect(200)["status"], "new");
    call!(app, post(&format!("/api/orders/{pos_order}/transition"), POS, &json!({"status": "confirmed"}))).expect(200);
}

#[actix_web::test]
async fn the_principal_is_the_actor() {
    let state = common::state().await;
    let app = service!(state);
    let order = order!(app, "pos", 100);
    call!(app, post(&format!("/api/orders/{order}/transition"), POS, &json!({"status": "confirmed"}))).expect(200);
    let events = call!(app, get(&format!("/api/orders/{order}/events"), CLIENT)).expect(200);
    assert_eq!(events["results"][0]["actor"], "client");
    assert_eq!(events["results"][1]["actor"], "pos-till");
}

#[actix_web::test]
async fn rate_limits_apply_per_principal_and_class_when_configured() {
    let config =
        HttpConfig { rate_limits: parse_rate_limits("commit=2/min,modify=100/min").unwrap(), ..HttpConfig::default() };
    let state = common::state_with(ExtensionsBuilder::new(), config).await;
    let app = service!(state);
    let key = open!(app, "pos");
    let first = call!(app, post(&format!("/api/sessions/{key}/commit"), CLIENT, &json!({"channel_code": "pos"})));
    first.expect_error(409, "empty_session");
    assert_eq!(first.header("ratelimit-limit"), Some("2"));
    assert_eq!(first.header("ratelimit-remaining"), Some("1"));
    assert_eq!(first.header("ratelimit-policy"), Some("2;w=60"));
    call!(app, post(&format!("/api/sessions/{key}/commit"), CLIENT, &json!({"channel_code": "pos"})))
        .expect_error(409, "empty_session");
    let limited = call!(app, post(&format!("/api/sessions/{key}/commit"), CLIENT, &json!({"channel_code": "pos"})));
    let ctx = limited.expect_error(429, "rate_limited");
    assert_eq!(ctx["route_class"], "commit");
    assert_eq!(limited.header("retry-after"), Some("30"));
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    // Another principal and other classes are not affected.
    call!(app, post(&format!("/api/sessions/{key}/commit"), ADMIN, &json!({"channel_code": "pos"})))
        .expect_error(409, "empty_session");
    add_line!(app, "pos", key, "A", 1, 1);
    let r = call!(app, get(&format!("/api/sessions/{key}"), CLIENT));
    r.expect(200);
    assert!(r.header("ratelimit-limit").is_none(), "`other` is not limited");
}

#[actix_web::test]
async fn a_token_s_own_rate_limit_overrides_the_default_for_its_class() {
    let config = HttpConfig { rate_limits: parse_rate_limits("commit=3/min").unwrap(), ..HttpConfig::default() };
    let state = common::state_with(ExtensionsBuilder::new(), config).await;
    let app = service!(state);
    let key = open!(app, "pos");
    let commit = || post(&format!("/api/sessions/{key}/commit"), LIMITED, &json!({"channel_code": "pos"}));
    let first = call!(app, commit());
    first.expect_error(409, "empty_session");
    assert_eq!(first.header("ratelimit-policy"), Some("1;w=60"), "the token's commit=1/min, not the default 3/min");
    let refused = call!(app, commit());
    assert_eq!(refused.expect_error(429, "rate_limited")["route_class"], "commit");
    assert_eq!(refused.header("retry-after"), Some("60"));
    // The default still applies to tokens without limits of their own.
    let other = call!(app, post(&format!("/api/sessions/{key}/commit"), CLIENT, &json!({"channel_code": "pos"})));
    assert_eq!(other.header("ratelimit-policy"), Some("3;w=60"));
}

#[actix_web::test]
async fn a_token_s_own_rate_limit_applies_without_server_defaults() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    call!(app, post(&format!("/api/sessions/{key}/commit"), LIMITED, &json!({"channel_code": "pos"})))
        .expect_error(409, "empty_session");
    call!(app, post(&format!("/api/sessions/{key}/commit"), LIMITED, &json!({"channel_code": "pos"})))
        .expect_error(429, "rate_limited");
    let r = call!(app, get(&format!("/api/sessions/{key}"), LIMITED));
    r.expect(200);
    assert!(r.header("ratelimit-limit").is_none(), "the token limits `commit` only");
}

#[actix_web::test]
async fn no_rate_limits_by_default() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    for _ in 0..20 {
        let r = call!(app, post(&format!("/api/sessions/{key}/commit"), CLIENT, &json!({"channel_code": "pos"})));
        r.expect_error(409, "empty_session");
        assert!(r.header("ratelimit-limit").is_none());
    }
}
