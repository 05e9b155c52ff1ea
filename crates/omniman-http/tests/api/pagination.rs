//! `?cursor=&page_size=` and the `next`/`previous` links.

use serde_json::{Value, json};

use crate::common::{self, CLIENT, get, post};

fn keys(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap().iter().map(|s| s["session_key"].as_str().unwrap().to_owned()).collect()
}

/// The path and query of a link: links are relative unless a public URL is configured.
fn path_of(link: &Value) -> String {
    let link = link.as_str().unwrap();
    assert!(link.starts_with("/api/"), "a relative link: {link}");
    link.to_owned()
}

#[actix_web::test]
async fn links_never_take_the_host_from_the_request() {
    let state = common::state().await;
    let app = service!(state);
    for i in 0..3 {
        call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "pos", "session_key": format!("S{i}")})))
            .expect(201);
    }
    for (name, value) in
        [("Host", "evil.example"), ("X-Forwarded-Host", "evil.example"), ("Forwarded", "host=evil.example;proto=https")]
    {
        let page = call!(app, get("/api/sessions?page_size=1", CLIENT).insert_header((name, value))).expect(200);
        let next = page["next"].as_str().unwrap();
        assert!(!next.contains("evil"), "{name}: {next}");
        assert!(next.starts_with("/api/sessions?"), "{name}: {next}");
    }
    // With a public URL configured, links are absolute on it.
    let config = omniman_http::HttpConfig {
        public_url: Some("https://orders.example.com".into()),
        ..omniman_http::HttpConfig::default()
    };
    let state = common::state_with(omniman_core::ext::ExtensionsBuilder::new(), config).await;
    let app = service!(state);
    for i in 0..2 {
        call!(app, post("/api/sessions", CLIENT, &json!({"channel_code": "pos", "session_key": format!("S{i}")})))
            .expect(201);
    }
    let page = call!(app, get("/api/sessions?page_size=1", CLIENT).insert_header(("Host", "evil.example"))).expect(200);
    assert!(page["next"].as_str().unwrap().starts_with("https://orders.example.com/api/sessions?"), "{page}");
}

#[actix_web::test]
async fn pages_forward_and_back_keeping_filters() {
    let state = common::state().await;
    let app = service!(state);
    let mut created = Vec::new();
    for i in 0..5 {
        let body = json!({"channel_code": "pos", "session_key": format!("S{i}")});
        call!(app, post("/api/sessions", CLIENT, &body)).expect(201);
        created.push(format!("S{i}"));
    }
    let _ = open!(app, "web");
    let first = call!(app, get("/api/sessions?channel_code=pos&page_size=2", CLIENT)).expect(200);
    assert_eq!(keys(&first), ["S4", "S3"]);
    assert_eq!(first["previous"], Value::Null);
    let next = path_of(&first["next"]);
    assert!(next.starts_with("/api/sessions?"), "{next}");
    assert!(next.contains("channel_code=pos") && next.contains("page_size=2") && next.contains("cursor="), "{next}");
    let second = call!(app, get(&next, CLIENT)).expect(200);
    assert_eq!(keys(&second), ["S2", "S1"]);
    let third = call!(app, get(&path_of(&second["next"]), CLIENT)).expect(200);
    assert_eq!(keys(&third), ["S0"]);
    assert_eq!(third["next"], Value::Null);
    let back = call!(app, get(&path_of(&third["previous"]), CLIENT)).expect(200);
    assert_eq!(keys(&back), ["S2", "S1"]);
    let back = call!(app, get(&path_of(&back["previous"]), CLIENT)).expect(200);
    assert_eq!(keys(&back), ["S4", "S3"]);
    assert_eq!(back["previous"], Value::Null);
}

#[actix_web::test]
async fn page_size_rules_and_bad_cursors() {
    let state = common::state().await;
    let app = service!(state);
    for _ in 0..3 {
        let _ = open!(app, "pos");
    }
    let all = call!(app, get("/api/sessions?page_size=1000", CLIENT)).expect(200);
    assert_eq!(all["results"].as_array().unwrap().len(), 3, "clamped, not refused");
    assert_eq!(call!(app, get("/api/sessions", CLIENT)).expect(200)["results"].as_array().unwrap().len(), 3);
    for bad in ["0", "-1", "abc", "1.5"] {
        let ctx =
            call!(app, get(&format!("/api/sessions?page_size={bad}"), CLIENT)).expect_error(400, "validation_error");
        assert!(ctx["fields"]["page_size"].is_array(), "{bad}: {ctx}");
    }
    for path in ["/api/sessions", "/api/orders", "/api/channels", "/api/directives", "/api/orders/ORD-X/events"] {
        let token = if path.contains("directives") { common::ADMIN } else { CLIENT };
        call!(app, get(&format!("{path}?cursor=garbage"), token)).expect_error(400, "invalid_cursor");
        call!(app, get(&format!("{path}?page_size=0"), token)).expect_error(400, "validation_error");
    }
}

#[actix_web::test]
async fn short_lists_page_too() {
    let state = common::state().await;
    let app = service!(state);
    let first = call!(app, get("/api/channels?page_size=4", CLIENT)).expect(200);
    assert_eq!(first["results"].as_array().unwrap().len(), 4);
    let second = call!(app, get(&path_of(&first["next"]), CLIENT)).expect(200);
    let codes: Vec<&str> = second["results"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["checked", "ext"]);
    assert_eq!(second["next"], Value::Null);
    let back = call!(app, get(&path_of(&second["previous"]), CLIENT)).expect(200);
    assert_eq!(back["results"], first["results"]);

    let order = order!(app, "pos", 100);
    for status in ["confirmed", "ready", "completed"] {
        call!(app, post(&format!("/api/orders/{order}/transition"), CLIENT, &json!({"status": status}))).expect(200);
    }
    let page = call!(app, get(&format!("/api/orders/{order}/events?page_size=3"), CLIENT)).expect(200);
    let seqs: Vec<i64> = page["results"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2]);
    let page = call!(app, get(&path_of(&page["next"]), CLIENT)).expect(200);
    assert_eq!(page["results"][0]["seq"], 3);
    assert_eq!(page["next"], Value::Null);
}
