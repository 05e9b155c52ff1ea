//! Health, readiness, routing (404, 405, trailing slash), request ids, compression, docs, metrics.

use std::sync::Arc;
use std::time::Duration;

use actix_web::test::TestRequest;
use async_trait::async_trait;
use omniman_http::{PoolProbe, PoolUsage, Readiness, ReadinessCheck};
use serde_json::json;

use crate::common::{self, ADMIN, CLIENT, get, post};

#[actix_web::test]
async fn health_is_public() {
    let state = common::state().await;
    let app = service!(state);
    let r = call!(app, TestRequest::get().uri("/api/health"));
    assert_eq!(r.expect(200), json!({"status": "healthy", "version": env!("CARGO_PKG_VERSION")}));
    // Trailing slash is optional.
    call!(app, TestRequest::get().uri("/api/health/")).expect(200);
}

struct Failing;

#[async_trait]
impl Readiness for Failing {
    async fn check(&self) -> Vec<ReadinessCheck> {
        vec![
            ReadinessCheck::ok("database", Duration::from_micros(1500)),
            ReadinessCheck::failing("cache", Duration::from_millis(3), "connection refused"),
        ]
    }
}

#[actix_web::test]
async fn readiness_reports_each_check() {
    let state = common::state().await;
    let app = service!(state);
    assert_eq!(
        call!(app, TestRequest::get().uri("/api/health/ready")).expect(200),
        json!({"status": "ready", "checks": []})
    );

    let failing = common::state().await.with_readiness(Arc::new(Failing));
    let app = service!(failing);
    let body = call!(app, TestRequest::get().uri("/api/health/ready")).expect(503);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"][0], json!({"name": "database", "status": "ok", "latency_ms": 1.5}));
    assert_eq!(
        body["checks"][1],
        json!({"name": "cache", "status": "failing", "latency_ms": 3.0, "message": "connection refused"})
    );
}

#[actix_web::test]
async fn unknown_routes_are_json_404() {
    let state = common::state().await;
    let app = service!(state);
    let ctx = call!(app, get("/api/nothing/here", CLIENT)).expect_error(404, "not_found");
    assert_eq!(ctx["path"], "/api/nothing/here");
    call!(app, TestRequest::get().uri("/elsewhere")).expect_error(404, "not_found");
    // No format suffixes.
    call!(app, get("/api/channels.json", CLIENT)).expect_error(404, "not_found");
}

#[actix_web::test]
async fn wrong_methods_are_405_with_allow() {
    let state = common::state().await;
    let app = service!(state);
    let r = call!(app, TestRequest::delete().uri("/api/sessions"));
    let ctx = r.expect_error(405, "method_not_allowed");
    let allow = r.header("allow").unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_eq!(ctx["method"], "DELETE");
    let r = call!(app, post("/api/orders/stream", ADMIN, &json!({})));
    r.expect_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    let r = call!(app, get("/api/sessions/ABC/commit", CLIENT));
    r.expect_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    // Trailing slash too.
    call!(app, TestRequest::put().uri("/api/health/")).expect_error(405, "method_not_allowed");
}

#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    let state = common::state().await;
    let app = service!(state);
    let r = call!(app, TestRequest::get().uri("/api/health").insert_header(("X-Request-Id", "trace-123")));
    assert_eq!(r.header("x-request-id"), Some("trace-123"));
    let r = call!(app, TestRequest::get().uri("/api/health"));
    let generated = r.header("x-request-id").unwrap();
    assert_eq!(generated.len(), 32);
    // Errors carry it too.
    let r = call!(app, TestRequest::get().uri("/nope"));
    assert!(r.header("x-request-id").is_some());
}

#[actix_web::test]
async fn responses_are_compressed_on_request() {
    let state = common::state().await;
    let app = service!(state);
    for encoding in ["gzip", "br"] {
        let r = call!(app, TestRequest::get().uri("/api/openapi.json").insert_header(("Accept-Encoding", encoding)));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(encoding));
    }
    let r = call!(app, TestRequest::get().uri("/api/openapi.json"));
    assert!(r.header("content-encoding").is_none());
    assert!(r.json()["paths"]["/api/sessions"].is_object());
}

#[actix_web::test]
async fn interactive_docs_are_bundled() {
    let state = common::state().await;
    let app = service!(state);
    for path in ["/api/docs", "/api/docs/"] {
        let r = call!(app, TestRequest::get().uri(path));
        assert_eq!(r.status, 200, "{path}");
        let html = String::from_utf8(r.bytes).unwrap();
        assert!(html.contains("swagger-ui"), "{html}");
        assert!(html.contains("\"/api/docs/swagger-ui-bundle.js\""), "{html}");
    }
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-initializer.js"] {
        let r = call!(app, TestRequest::get().uri(&format!("/api/docs/{asset}")));
        assert_eq!(r.status, 200, "{asset}");
        assert!(!r.bytes.is_empty());
        if asset == "swagger-initializer.js" {
            assert!(String::from_utf8_lossy(&r.bytes).contains("/api/openapi.json"));
        }
    }
    call!(app, TestRequest::get().uri("/api/docs/missing.js")).expect_error(404, "not_found");
}

/// The `href` and `src` attribute values of `html`, in order.
fn referenced_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            urls.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    urls
}

/// Where a browser showing the page at `page` fetches `url` from.
fn resolve(page: &str, url: &str) -> String {
    if url.starts_with('/') {
        return url.to_owned();
    }
    let dir = &page[..=page.rfind('/').unwrap()];
    format!("{dir}{}", url.trim_start_matches("./"))
}

#[actix_web::test]
async fn every_asset_the_docs_page_references_loads() {
    let state = common::state().await;
    let app = service!(state);
    for page in ["/api/docs", "/api/docs/"] {
        let html = String::from_utf8(call!(app, TestRequest::get().uri(page)).bytes).unwrap();
        let urls = referenced_urls(&html);
        assert!(urls.len() >= 5, "{page} references its stylesheets and scripts: {html}");
        for url in urls {
            let path = resolve(page, &url);
            let r = call!(app, TestRequest::get().uri(&path));
            assert_eq!(r.status, 200, "{page} references {url}, fetched as {path}");
            assert!(!r.bytes.is_empty(), "{path}");
        }
    }
}

#[actix_web::test]
async fn metrics_need_an_admin_and_count_requests() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    call!(app, get(&format!("/api/sessions/{key}"), CLIENT)).expect(200);
    call!(app, TestRequest::get().uri("/metrics")).expect_error(401, "unauthenticated");
    call!(app, get("/metrics", CLIENT)).expect_error(403, "forbidden");
    add_line!(app, "checked", open!(app, "checked"), "A", 1, 10);
    let r = call!(app, get("/metrics", ADMIN));
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let text = String::from_utf8(r.bytes).unwrap();
    assert!(
        text.contains(r#"omniman_http_requests_total{method="GET",route="/api/sessions/{key}",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"omniman_http_requests_total{method="POST",route="/api/sessions",status="201"} 2"#));
    assert!(text.contains("omniman_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"omniman_directive_queue_depth{status="queued"} 1"#), "{text}");
    assert!(text.contains(r#"omniman_directive_queue_depth{status="failed"} 0"#));
}

#[actix_web::test]
async fn metrics_read_the_pool_at_scrape_time_and_show_statements_per_request() {
    struct Probe(std::sync::atomic::AtomicUsize);
    impl PoolProbe for Probe {
        fn pool_usage(&self) -> PoolUsage {
            let in_use = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            PoolUsage { max: 8, in_use, idle: 2, waiting: 0 }
        }
    }
    let state = common::state().await.with_pool_probe(Arc::new(Probe(0.into())));
    // What the server's counting middleware records.
    state.metrics().observe_statements(&actix_web::http::Method::POST, "/api/sessions/{key}/modify", 3);
    state.metrics().observe_statements(&actix_web::http::Method::POST, "/api/sessions/{key}/modify", 2);
    let app = service!(state);
    let scrape = || async {
        let r = call!(app, get("/metrics", ADMIN));
        String::from_utf8(r.bytes).unwrap()
    };
    let first = scrape().await;
    assert!(first.contains(r#"omniman_db_pool_connections{state="max"} 8"#), "{first}");
    assert!(first.contains(r#"omniman_db_pool_connections{state="in_use"} 0"#));
    assert!(first.contains(r#"omniman_db_pool_connections{state="waiting"} 0"#));
    let route = r#"method="POST",route="/api/sessions/{key}/modify""#;
    assert!(first.contains(&format!("omniman_sql_statements_per_request_sum{{{route}}} 5.0")), "{first}");
    assert!(first.contains(&format!("omniman_sql_statements_per_request_count{{{route}}} 2")));
    assert!(first.contains(&format!(r#"omniman_sql_statements_per_request_bucket{{le="2.0",{route}}} 1"#)));
    let second = scrape().await;
    assert!(second.contains(r#"omniman_db_pool_connections{state="in_use"} 1"#), "read anew: {second}");
}
