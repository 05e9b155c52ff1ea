//! The OpenAPI document, generated from the route table, the handlers' annotations and the view
//! types.

use std::sync::LazyLock;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Header, Object, Ref, RefOr, Response, Type};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::ratelimit::RouteClass;
use crate::routes::DocumentedRoutes;

/// The OpenAPI 3.1 document of the Omniman REST API.
///
/// ```
/// use utoipa::OpenApi;
/// let doc = omniman_http::ApiDoc::openapi();
/// assert!(doc.paths.paths.contains_key("/api/sessions/{key}/commit"));
/// ```
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Omniman",
        description = "Headless omnichannel order hub: sessions changed by batches of ops, committed \
                       idempotently into orders with per-channel status flows.\n\n\
                       Every error is `{\"error\":{\"code\",\"message\",\"context\"}}`. Authenticate with \
                       `Authorization: Bearer <token>`. Trailing slashes are optional."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    servers((
        url = "http://127.0.0.1:8000",
        description = "The server's default bind address (`omniman serve`); replace it with your deployment's"
    )),
    modifiers(&RoutePaths, &BearerAuth, &CommonResponses),
    tags(
        (name = "health", description = "Liveness and readiness (no token)"),
        (name = "channels", description = "Sales channels"),
        (name = "sessions", description = "Carts and tabs: open, modify, resolve, commit, abandon"),
        (name = "orders", description = "Committed orders and their status flow"),
        (name = "events", description = "The event log as a live stream (Server-Sent Events)"),
        (name = "admin", description = "Admin token only: order stream, directives, metrics"),
        (name = "management", description = "Admin token only: create and change channels, issue and revoke tokens"),
        (name = "webhooks", description = "Admin token only: webhook subscriptions and their deliveries"),
    )
)]
pub struct ApiDoc;

/// The document as served at `/api/openapi.json`, rendered once.
pub(crate) fn served_json() -> &'static str {
    static DOC: LazyLock<String> =
        LazyLock::new(|| ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes"));
    DOC.as_str()
}

/// Adds the operations of the route table's documented routes, and the schemas they refer to.
struct RoutePaths;

impl Modify for RoutePaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(DocumentedRoutes::openapi());
    }
}

/// Adds the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Declares, by rule, the errors that come from the transport rather than from a handler: 413
/// and 415 on every operation that takes a body, 429 on every operation behind the bearer token
/// (the rate limiter runs with authentication), 500 on every operation. Done here, not in each
/// `#[utoipa::path]`, so that a new route cannot forget them.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let class = RouteClass::of_pattern(path);
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                add_common_responses(operation, class);
            }
        }
    }
}

fn add_common_responses(operation: &mut Operation, class: RouteClass) {
    if operation.request_body.is_some() {
        declare_error(
            operation,
            "413",
            "payload_too_large",
            "the body is larger than the server's limit (1 MiB unless configured)",
        );
        declare_error(
            operation,
            "415",
            "unsupported_media_type",
            "the body is not sent as `Content-Type: application/json` (UTF-8)",
        );
    }
    let authenticated = operation
        .security
        .as_ref()
        .is_some_and(|requirements| requirements.iter().any(|r| *r != SecurityRequirement::default()));
    if authenticated {
        let detail = format!(
            "over the token's `{}` rate limit (there is none unless configured); `Retry-After` says how many \
             seconds to wait",
            class.as_str()
        );
        if let Some(response) = declare_error(operation, "429", "rate_limited", &detail) {
            response.headers.entry("Retry-After".to_owned()).or_insert_with(|| {
                let mut header = Header::new(Object::with_type(Type::Integer));
                header.description = Some("Seconds until the request would be accepted".to_owned());
                header
            });
        }
    }
    declare_error(operation, "500", "internal_error", "an unexpected failure (details are logged, never sent)");
}

/// Adds an error response for `status` unless there is one, and names `code` in the one there is.
fn declare_error<'a>(operation: &'a mut Operation, status: &str, code: &str, detail: &str) -> Option<&'a mut Response> {
    let entry = operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
        let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
        RefOr::T(
            Response::builder().description(format!("`{code}`: {detail}")).content("application/json", body).build(),
        )
    });
    match entry {
        RefOr::T(response) => {
            if !response.description.contains(&format!("`{code}`")) {
                response.description = format!("{}, `{code}`: {detail}", response.description);
            }
            Some(response)
        }
        RefOr::Ref(_) => None,
    }
}
