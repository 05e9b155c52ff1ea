//! The OpenAPI document, generated from the handlers' annotations and the view types.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::handlers::{admin, meta, orders, sessions};

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
    paths(
        meta::health,
        meta::ready,
        meta::list_channels,
        meta::get_channel,
        sessions::list_sessions,
        sessions::create_session,
        sessions::import_session,
        sessions::get_session,
        sessions::modify,
        sessions::resolve,
        sessions::commit,
        sessions::abandon,
        orders::list_orders,
        admin::stream,
        orders::get_order,
        orders::transition,
        orders::events,
        admin::list_directives,
        admin::get_directive,
        admin::metrics,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness (no token)"),
        (name = "channels", description = "Sales channels (read-only)"),
        (name = "sessions", description = "Carts and tabs: open, modify, resolve, commit, abandon"),
        (name = "orders", description = "Committed orders and their status flow"),
        (name = "admin", description = "Admin token only: order stream, directives, metrics"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

// The parameter structs below only describe query strings to the document; the handlers read
// the query themselves so that every problem gets its own error code.

/// Pagination parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct PageParams {
    /// Opaque cursor taken from a `next` or `previous` link.
    cursor: Option<String>,
    /// Rows per page: default 50, larger values are clamped to 100, below 1 is an error.
    page_size: Option<u32>,
}

/// Filters of the session list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct SessionListParams {
    /// Only this channel.
    channel_code: Option<String>,
    /// `open`, `committed` or `abandoned`.
    state: Option<String>,
    /// Only this handle type.
    handle_type: Option<String>,
    /// Only this handle ref.
    handle_ref: Option<String>,
    /// Opaque cursor taken from a `next` or `previous` link.
    cursor: Option<String>,
    /// Rows per page: default 50, larger values are clamped to 100, below 1 is an error.
    page_size: Option<u32>,
}

/// Filters of the order list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct OrderListParams {
    /// Only this channel.
    channel_code: Option<String>,
    /// Only this status.
    status: Option<String>,
    /// Only this handle type.
    handle_type: Option<String>,
    /// Only this handle ref.
    handle_ref: Option<String>,
    /// Only this external ref.
    external_ref: Option<String>,
    /// Created at or after this RFC 3339 instant.
    created_after: Option<String>,
    /// Created before this RFC 3339 instant.
    created_before: Option<String>,
    /// Opaque cursor taken from a `next` or `previous` link.
    cursor: Option<String>,
    /// Rows per page: default 50, larger values are clamped to 100, below 1 is an error.
    page_size: Option<u32>,
}

/// Filters of the directive list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct DirectiveListParams {
    /// Only this topic.
    topic: Option<String>,
    /// `queued`, `running`, `done` or `failed`.
    status: Option<String>,
    /// Opaque cursor taken from a `next` or `previous` link.
    cursor: Option<String>,
    /// Rows per page: default 50, larger values are clamped to 100, below 1 is an error.
    page_size: Option<u32>,
}
