//! The generated OpenAPI document against the committed snapshot.
//!
//! `UPDATE_SNAPSHOTS=1 cargo test -p omniman-http openapi` rewrites the snapshot.

use std::path::PathBuf;

use actix_web::test::TestRequest;
use serde_json::Value;
use utoipa::OpenApi;

use crate::common;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("openapi.snapshot.json")
}

#[test]
fn openapi_matches_the_snapshot() {
    let generated = omniman_http::ApiDoc::openapi().to_pretty_json().unwrap() + "\n";
    let path = snapshot_path();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it", path.display()));
    assert!(
        committed == generated,
        "the OpenAPI document changed; review it and run `UPDATE_SNAPSHOTS=1 cargo test -p omniman-http openapi`"
    );
}

#[test]
fn the_document_covers_every_route() {
    let doc: Value = serde_json::from_str(&omniman_http::ApiDoc::openapi().to_json().unwrap()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/health", "get"),
        ("/api/health/ready", "get"),
        ("/api/channels", "get"),
        ("/api/channels/{code}", "get"),
        ("/api/sessions", "get"),
        ("/api/sessions", "post"),
        ("/api/sessions/{key}", "get"),
        ("/api/sessions/{key}/modify", "post"),
        ("/api/sessions/{key}/resolve", "post"),
        ("/api/sessions/{key}/commit", "post"),
        ("/api/sessions/{key}/abandon", "post"),
        ("/api/orders", "get"),
        ("/api/orders/stream", "get"),
        ("/api/orders/{ref}", "get"),
        ("/api/orders/{ref}/transition", "post"),
        ("/api/orders/{ref}/events", "get"),
        ("/api/directives", "get"),
        ("/api/directives/{id}", "get"),
        ("/metrics", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let session = &doc["components"]["schemas"]["SessionView"]["properties"];
    assert!(session["commit_token"].is_object() && session["items_count"].is_object());
}

#[actix_web::test]
async fn the_served_document_is_the_generated_one() {
    let state = common::state().await;
    let app = service!(state);
    let served = call!(app, TestRequest::get().uri("/api/openapi.json")).expect(200);
    let generated: Value = serde_json::from_str(&omniman_http::ApiDoc::openapi().to_json().unwrap()).unwrap();
    assert_eq!(served, generated);
}
