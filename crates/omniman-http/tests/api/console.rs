//! The operator console's HTTP side: signing in, the cookie, form tokens, security headers, and
//! a revoked token signing its sessions out. (Its pages in a browser: omniman-server's
//! tests/console.rs.)

use actix_web::test::TestRequest;
use omniman_http::{ConsoleSecret, HttpConfig};

use crate::common::{self, ADMIN, CLIENT, Resp};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Every console page an operator reaches from the navigation.
const PAGES: &[&str] = &[
    "/console",
    "/console/board",
    "/console/board?fragment=1",
    "/console/sessions",
    "/console/directives",
    "/console/directives?status=failed&topic=stock.hold",
    "/console/channels",
    "/console/channels/pos",
    "/console/tokens",
    "/console/stock",
    "/console/webhooks",
];

/// The `name=value` of a `Set-Cookie` named `name`, and the whole header.
fn set_cookie(resp: &Resp, name: &str) -> Option<(String, String)> {
    resp.headers.get_all("set-cookie").filter_map(|v| v.to_str().ok()).find_map(|v| {
        let pair = v.split(';').next()?;
        pair.starts_with(&format!("{name}=")).then(|| (pair.to_owned(), v.to_owned()))
    })
}

/// The value of the hidden `csrf` field of a page.
fn csrf(resp: &Resp) -> String {
    let html = String::from_utf8_lossy(&resp.bytes);
    let at = html.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no form token in {html}"));
    let rest = &html[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

fn html(resp: &Resp) -> String {
    String::from_utf8_lossy(&resp.bytes).into_owned()
}

/// Posts the sign-in form with `token`; the answer.
macro_rules! sign_in_with {
    ($app:expr, $token:expr) => {{
        let form = call!($app, TestRequest::get().uri("/console/sign-in"));
        let (pre, _) = set_cookie(&form, "omniman_console_sign_in").expect("the sign-in form sets its cookie");
        let body = serde_urlencoded::to_string([("csrf", csrf(&form).as_str()), ("token", $token)]).unwrap();
        call!(
            $app,
            TestRequest::post()
                .uri("/console/sign-in")
                .insert_header(("Cookie", pre))
                .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                .set_payload(body)
        )
    }};
}

/// Signs in with `token`: the session cookie (`name=value`).
macro_rules! sign_in {
    ($app:expr, $token:expr) => {{
        let resp = sign_in_with!($app, $token);
        assert_eq!(resp.status.as_u16(), 303, "{}", html(&resp));
        assert_eq!(resp.header("location"), Some("/console"));
        set_cookie(&resp, "omniman_console").expect("a session cookie").0
    }};
}

fn page(path: &str, cookie: &str) -> TestRequest {
    TestRequest::get().uri(path).insert_header(("Cookie", cookie.to_owned()))
}

fn form_post(path: &str, cookie: &str, fields: &[(&str, &str)]) -> TestRequest {
    TestRequest::post()
        .uri(path)
        .insert_header(("Cookie", cookie.to_owned()))
        .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
        .set_payload(serde_urlencoded::to_string(fields).unwrap())
}

#[actix_web::test]
async fn an_admin_token_signs_in_with_a_strict_http_only_console_cookie() {
    let state = common::state().await;
    let app = service!(state);
    let resp = sign_in_with!(app, ADMIN);
    assert_eq!(resp.status.as_u16(), 303);
    let (_, header) = set_cookie(&resp, "omniman_console").unwrap();
    assert!(!header.contains(ADMIN), "the token itself is never in the cookie: {header}");
    for attribute in ["Path=/console", "HttpOnly", "SameSite=Strict", "Max-Age=43200"] {
        assert!(header.split("; ").any(|a| a == attribute), "{attribute} in {header}");
    }
    assert!(!header.contains("Secure"), "plain http: {header}");
    let (_, cleared) = set_cookie(&resp, "omniman_console_sign_in").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // Reached over https (behind a proxy saying so): Secure.
    let form = call!(app, TestRequest::get().uri("/console/sign-in").insert_header(("X-Forwarded-Proto", "https")));
    let (_, header) = set_cookie(&form, "omniman_console_sign_in").unwrap();
    assert!(header.ends_with("; Secure"), "{header}");

    let cookie = sign_in!(app, ADMIN);
    let board = call!(app, page("/console", &cookie));
    assert_eq!(board.status.as_u16(), 200);
    assert!(html(&board).contains("Signed in as <strong>admin</strong>"));
}

#[actix_web::test]
async fn a_client_or_unknown_token_cannot_sign_in_and_pages_need_a_session() {
    let state = common::state().await;
    let app = service!(state);
    let resp = sign_in_with!(app, CLIENT);
    assert_eq!(resp.status.as_u16(), 403);
    assert!(html(&resp).contains("This is a client token: the console needs an admin token."));
    assert!(set_cookie(&resp, "omniman_console").is_none());
    let resp = sign_in_with!(app, common::REVOKED);
    assert_eq!(resp.status.as_u16(), 401);
    assert!(html(&resp).contains("Unknown or revoked token."));
    let resp = sign_in_with!(app, "omni_nobody");
    assert_eq!(resp.status.as_u16(), 401);

    for path in PAGES {
        let resp = call!(app, TestRequest::get().uri(path));
        assert_eq!((resp.status.as_u16(), resp.header("location")), (303, Some("/console/sign-in")), "{path}");
        let forged = call!(app, page(path, "omniman_console=v1.abc.99999999999.00.00"));
        assert_eq!(forged.status.as_u16(), 303, "{path}");
    }
    // An API token is not a console session.
    let resp =
        call!(app, TestRequest::get().uri("/console").insert_header(("Authorization", format!("Bearer {ADMIN}"))));
    assert_eq!(resp.status.as_u16(), 303);
}

#[actix_web::test]
async fn every_post_needs_the_form_token_of_its_session() {
    let state = common::state().await;
    let app = service!(state.clone());
    let cookie = sign_in!(app, ADMIN);
    let other = sign_in!(app, ADMIN);
    let tokens = call!(app, page("/console/tokens", &cookie));
    let token = csrf(&tokens);
    let others = csrf(&call!(app, page("/console/tokens", &other)));
    assert_ne!(token, others, "each session has its own");

    for sent in [None, Some("nope"), Some(others.as_str())] {
        let mut fields = vec![("name", "new"), ("role", "client")];
        if let Some(sent) = sent {
            fields.push(("csrf", sent));
        }
        let resp = call!(app, form_post("/console/tokens", &cookie, &fields));
        assert_eq!(resp.status.as_u16(), 403, "{sent:?}");
        assert!(html(&resp).contains("This form has expired or did not come from this console"));
        assert_eq!(resp.header("content-security-policy"), Some(CSP));
    }
    let resp = call!(app, form_post("/console/sign-out", &cookie, &[]));
    assert_eq!(resp.status.as_u16(), 403, "signing out needs it too");
    // The sign-in form's token is bound to its own cookie.
    let resp = call!(app, form_post("/console/sign-in", "", &[("csrf", token.as_str()), ("token", ADMIN)]));
    assert_eq!(resp.status.as_u16(), 403);

    let resp =
        call!(app, form_post("/console/tokens", &cookie, &[("csrf", &token), ("name", "till-9"), ("role", "client")]));
    assert_eq!(resp.status.as_u16(), 201, "{}", html(&resp));
    assert!(html(&resp).contains("omni_"), "the secret, once");
    assert!(state.hub().tokens().await.unwrap().iter().any(|t| t.name == "till-9"));
    // The API's rules and messages.
    let resp =
        call!(app, form_post("/console/tokens", &cookie, &[("csrf", &token), ("name", "till-9"), ("role", "client")]));
    assert_eq!(resp.status.as_u16(), 409);
    let resp = call!(app, form_post("/console/tokens", &cookie, &[("csrf", &token), ("name", "x"), ("role", "boss")]));
    assert_eq!(resp.status.as_u16(), 400);
    assert!(html(&resp).contains("must be client or admin"), "{}", html(&resp));

    let resp = call!(app, form_post("/console/sign-out", &cookie, &[("csrf", &token)]));
    assert_eq!((resp.status.as_u16(), resp.header("location")), (303, Some("/console/sign-in")));
    let (_, cleared) = set_cookie(&resp, "omniman_console").unwrap();
    assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/console"), "{cleared}");
}

#[actix_web::test]
async fn every_console_answer_carries_the_security_headers() {
    let state = common::state().await;
    let app = service!(state);
    let cookie = sign_in!(app, ADMIN);
    let mut answers = Vec::new();
    for path in PAGES {
        answers.push((path.to_string(), call!(app, page(path, &cookie)), 200));
    }
    for (path, status) in [
        ("/console/sign-in", 200),
        ("/console/assets/console.css", 200),
        ("/console/assets/console.js", 200),
        ("/console/nope", 404),
        ("/console/orders/ORD-NOPE", 404),
        ("/console/channels/nope", 404),
        ("/console/sessions", 303),
    ] {
        let req = if status == 303 { TestRequest::get().uri(path) } else { page(path, &cookie) };
        answers.push((path.to_owned(), call!(app, req), status));
    }
    answers.push(("DELETE /console".into(), call!(app, TestRequest::delete().uri("/console")), 405));
    for (path, resp, status) in &answers {
        assert_eq!(resp.status.as_u16(), *status, "{path}: {}", html(resp));
        assert_eq!(resp.header("content-security-policy"), Some(CSP), "{path}");
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(resp.header("referrer-policy"), Some("same-origin"), "{path}");
        if !path.contains("/assets/") {
            assert_eq!(resp.header("cache-control"), Some("no-store"), "{path}");
        }
        let body = html(resp);
        assert!(!body.contains("<script>") && !body.contains(" style="), "nothing inline in {path}");
    }
    // Not on the API.
    let api = call!(app, common::get("/api/channels", ADMIN));
    assert_eq!(api.header("content-security-policy"), None);
}

#[actix_web::test]
async fn revoking_the_token_signs_its_console_sessions_out() {
    let state = common::state().await;
    let app = service!(state.clone());
    let cookie = sign_in!(app, ADMIN);
    let body = serde_json::json!({"name": "night-shift", "role": "admin"});
    let issued = call!(app, common::post("/api/tokens", ADMIN, &body)).expect(201);
    let night = sign_in!(app, issued["token"].as_str().unwrap());
    assert_eq!(call!(app, page("/console", &night)).status.as_u16(), 200);

    // Revoked from the console by the other operator.
    let token = csrf(&call!(app, page("/console/tokens", &cookie)));
    let id = issued["id"].as_i64().unwrap().to_string();
    let resp = call!(app, form_post(&format!("/console/tokens/{id}/revoke"), &cookie, &[("csrf", &token)]));
    assert_eq!((resp.status.as_u16(), resp.header("location")), (303, Some("/console/tokens")));
    let resp = call!(app, page("/console", &night));
    assert_eq!((resp.status.as_u16(), resp.header("location")), (303, Some("/console/sign-in")));
    assert_eq!(call!(app, page("/console", &cookie)).status.as_u16(), 200, "the other session stays");
}

#[actix_web::test]
async fn a_cookie_signed_by_one_instance_is_accepted_by_another_with_the_same_secret() {
    let config = HttpConfig { console_secret: Some(ConsoleSecret::new("shared")), ..HttpConfig::default() };
    let first = common::state_with(omniman_core::ext::ExtensionsBuilder::new(), config.clone()).await;
    let app = service!(first);
    let cookie = sign_in!(app, ADMIN);
    let second = omniman_http::AppState::new(first.hub().clone(), config);
    let other = service!(second);
    assert_eq!(call!(other, page("/console", &cookie)).status.as_u16(), 200);
    let unshared = omniman_http::AppState::new(first.hub().clone(), HttpConfig::default());
    let other = service!(unshared);
    assert_eq!(call!(other, page("/console", &cookie)).status.as_u16(), 303, "a random key per process");
}

#[actix_web::test]
async fn a_channel_is_edited_with_the_apis_rules_and_messages_and_deactivated() {
    let state = common::state().await;
    let app = service!(state.clone());
    let cookie = sign_in!(app, ADMIN);
    let edit = call!(app, page("/console/channels/web", &cookie));
    assert_eq!(edit.status.as_u16(), 200);
    let token = csrf(&edit);

    let bad = r#"{"currency": "XXXX", "order_flow": {"transitions": 5}}"#;
    let api = call!(
        app,
        TestRequest::patch()
            .uri("/api/channels/web")
            .insert_header(("Authorization", format!("Bearer {ADMIN}")))
            .set_json(serde_json::json!({"config": serde_json::from_str::<serde_json::Value>(bad).unwrap()}))
    );
    let message = api.json()["error"]["message"].as_str().unwrap().to_owned();
    let fields = [
        ("csrf", token.as_str()),
        ("name", "Web"),
        ("pricing_policy", "internal"),
        ("edit_policy", "open"),
        ("display_order", "1"),
        ("config", bad),
        ("is_active", "on"),
    ];
    let resp = call!(app, form_post("/console/channels/web", &cookie, &fields));
    assert_eq!(resp.status.as_u16(), 400);
    let escaped = message.replace('"', "&quot;");
    assert!(html(&resp).contains(&escaped) || html(&resp).contains(&message), "{message} in {}", html(&resp));
    assert!(html(&resp).contains("XXXX"), "what was typed is kept");
    let resp = call!(app, form_post("/console/channels/web", &cookie, &[("csrf", &token), ("config", "{nope")]));
    assert_eq!(resp.status.as_u16(), 400);
    assert!(html(&resp).contains("config: is not JSON"), "{}", html(&resp));

    let good = [
        ("csrf", token.as_str()),
        ("name", "Web shop"),
        ("pricing_policy", "external"),
        ("edit_policy", "open"),
        ("display_order", "7"),
        ("config", r#"{"currency": "EUR"}"#),
        ("is_active", "on"),
    ];
    let resp = call!(app, form_post("/console/channels/web", &cookie, &good));
    assert_eq!((resp.status.as_u16(), resp.header("location")), (303, Some("/console/channels")), "{}", html(&resp));
    let channel = state.hub().channel("web").await.unwrap();
    assert_eq!((channel.name.as_str(), channel.display_order, channel.is_active), ("Web shop", 7, true));
    assert_eq!(channel.config.raw()["currency"], "EUR");

    let resp = call!(app, form_post("/console/channels/web/deactivate", &cookie, &[("csrf", &token)]));
    assert_eq!(resp.status.as_u16(), 303);
    assert!(!state.hub().channel("web").await.unwrap().is_active);
}

#[actix_web::test]
async fn webhooks_are_listed_tested_paused_and_deleted_with_their_deliveries() {
    let state = common::state().await;
    let app = service!(state.clone());
    let cookie = sign_in!(app, ADMIN);
    let created = call!(
        app,
        TestRequest::post()
            .uri("/api/webhooks")
            .insert_header(("Authorization", format!("Bearer {ADMIN}")))
            .set_json(serde_json::json!({"url": "https://example.com/hooks", "events": ["order.created"]}))
    );
    assert_eq!(created.status.as_u16(), 201);
    let id = created.json()["id"].as_i64().unwrap();
    let secret = created.json()["secret"].as_str().unwrap().to_owned();

    let list = call!(app, page("/console/webhooks", &cookie));
    assert_eq!(list.status.as_u16(), 200);
    let text = html(&list);
    assert!(text.contains("https://example.com/hooks") && text.contains("order.created"), "{text}");
    assert!(!text.contains(&secret), "the secret is never shown again");
    let token = csrf(&list);

    let tested = call!(app, form_post(&format!("/console/webhooks/{id}/test"), &cookie, &[("csrf", &token)]));
    assert_eq!(
        (tested.status.as_u16(), tested.header("location")),
        (303, Some(format!("/console/webhooks/{id}").as_str()))
    );
    let deliveries = call!(app, page(&format!("/console/webhooks/{id}"), &cookie));
    assert!(html(&deliveries).contains("webhook.test"), "{}", html(&deliveries));

    let refused = call!(app, form_post(&format!("/console/webhooks/{id}/delete"), &cookie, &[("csrf", "nope")]));
    assert_eq!(refused.status.as_u16(), 403);
    let paused = call!(
        app,
        form_post(&format!("/console/webhooks/{id}/active"), &cookie, &[("csrf", &token), ("active", "false")])
    );
    assert_eq!(paused.status.as_u16(), 303);
    assert!(!state.hub().webhook(id).await.unwrap().active);
    let deleted = call!(app, form_post(&format!("/console/webhooks/{id}/delete"), &cookie, &[("csrf", &token)]));
    assert_eq!(deleted.status.as_u16(), 303);
    assert!(html(&call!(app, page("/console/webhooks", &cookie))).contains("No subscriptions."));
    let gone = call!(app, page(&format!("/console/webhooks/{id}"), &cookie));
    assert_eq!(gone.status.as_u16(), 404);
}
