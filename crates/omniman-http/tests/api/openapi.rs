//! The generated OpenAPI document against the committed snapshot, the route table and the app.
//!
//! `UPDATE_SNAPSHOTS=1 cargo test -p omniman-http openapi` rewrites the snapshot.

use std::path::PathBuf;

use std::collections::BTreeSet;

use actix_web::http::{Method, StatusCode};
use actix_web::test::TestRequest;
use omniman_http::ROUTES;
use serde_json::Value;
use utoipa::OpenApi;

use crate::common::{self, Resp};

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
fn the_document_describes_exactly_the_documented_routes() {
    let doc: Value = serde_json::from_str(&omniman_http::ApiDoc::openapi().to_json().unwrap()).unwrap();
    let described: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(method, path, _)| (method.to_uppercase(), path)).collect();
    let documented: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|route| route.documented)
        .map(|route| (route.method.to_owned(), route.path.to_owned()))
        .collect();
    assert_eq!(described, documented);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let session = &doc["components"]["schemas"]["SessionView"]["properties"];
    assert!(session["commit_token"].is_object() && session["items_count"].is_object());
}

/// `pattern` with every `{name}` segment replaced by a value. The one pattern with a regex is the
/// Swagger UI assets' route, which answers `not_found` for a file it does not have, so it gets one
/// it has.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| match segment {
            _ if segment.starts_with('{') && segment.contains(':') => "swagger-ui.css",
            _ if segment.starts_with('{') => "ANY-1",
            _ => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the app routed the request to a handler: the fallback answers `not_found`, a path
/// without that method a 405.
fn routed(resp: &Resp) -> bool {
    let unrouted = resp.status == StatusCode::METHOD_NOT_ALLOWED
        || (resp.status == StatusCode::NOT_FOUND && resp.code() == "not_found");
    !unrouted
}

#[actix_web::test]
async fn the_app_answers_exactly_the_routes_of_the_table() {
    let state = common::state().await;
    let app = service!(state);
    let paths: BTreeSet<&str> = ROUTES.iter().map(|route| route.path).collect();
    for pattern in paths {
        let path = concrete(pattern);
        let table: BTreeSet<&str> =
            ROUTES.iter().filter(|route| route.path == pattern).map(|route| route.method).collect();
        // Every method the app answers on this path is in the table, and only those.
        let mut answered = BTreeSet::new();
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let req = TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&path)
                .insert_header(("Authorization", format!("Bearer {}", common::ADMIN)));
            if routed(&call!(app, req)) {
                answered.insert(method);
            }
        }
        assert_eq!(answered, table, "{pattern}");
        // The 405 names the same methods (HEAD comes with GET).
        let resp = call!(app, TestRequest::default().method(Method::OPTIONS).uri(&path));
        let allow: BTreeSet<&str> =
            resp.header("allow").unwrap_or_default().split(',').map(str::trim).filter(|m| *m != "HEAD").collect();
        assert_eq!(allow, table, "{pattern}");
    }
}

#[actix_web::test]
async fn the_served_document_is_the_generated_one() {
    let state = common::state().await;
    let app = service!(state);
    let served = call!(app, TestRequest::get().uri("/api/openapi.json")).expect(200);
    let generated: Value = serde_json::from_str(&omniman_http::ApiDoc::openapi().to_json().unwrap()).unwrap();
    assert_eq!(served, generated);
}

/// The operations of the document, as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    all
}

/// Asserts that `operation` declares `status` as an error body naming `code`.
fn assert_declares(method: &str, path: &str, operation: &Value, status: &str, code: &str) {
    let response = &operation["responses"][status];
    assert!(response.is_object(), "{method} {path} declares no {status}");
    let description = response["description"].as_str().unwrap_or_default();
    assert!(description.contains(&format!("`{code}`")), "{method} {path} {status} does not name {code}: {description}");
    assert_eq!(
        response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
        "{method} {path} {status}"
    );
}

#[test]
fn every_operation_declares_the_transport_errors() {
    let doc: Value = serde_json::from_str(&omniman_http::ApiDoc::openapi().to_json().unwrap()).unwrap();
    let operations = operations(&doc);
    assert_eq!(operations.len(), 34);
    for (method, path, operation) in &operations {
        assert_declares(method, path, operation, "500", "internal_error");
        // Only POST and PATCH read a JSON body (an action such as a directive's retry or
        // `POST /api/webhooks/{id}/test` may take none); each that does is subject to the body
        // limit and the content type.
        let with_body = operation.get("requestBody").is_some();
        assert!(!with_body || method == "post" || method == "patch", "{method} {path}");
        assert!(with_body || method != "patch", "{method} {path}");
        if with_body {
            assert_declares(method, path, operation, "413", "payload_too_large");
            assert_declares(method, path, operation, "415", "unsupported_media_type");
        }
        // The rate limiter runs with authentication: every route behind the token can answer 429,
        // and only the health routes are public.
        let authenticated =
            operation["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        assert_eq!(authenticated, !path.starts_with("/api/health"), "{method} {path}");
        if authenticated {
            assert_declares(method, path, operation, "429", "rate_limited");
            assert_eq!(operation["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"], "integer");
        } else {
            assert!(operation["responses"].get("429").is_none(), "{method} {path}");
        }
    }
}

#[test]
fn the_document_names_a_server_to_replace() {
    let doc: Value = serde_json::from_str(&omniman_http::ApiDoc::openapi().to_json().unwrap()).unwrap();
    let servers = doc["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    // The default of `omniman serve --bind`.
    assert_eq!(servers[0]["url"], "http://127.0.0.1:8000");
    assert!(servers[0]["description"].as_str().unwrap().contains("replace"));
}
