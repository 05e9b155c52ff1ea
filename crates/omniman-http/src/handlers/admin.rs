//! Admin routes: directives and metrics.

use actix_web::{HttpRequest, HttpResponse, web};
use omniman_core::directive::DirectiveStatus;
use omniman_core::error::FieldErrors;
use omniman_core::ports::{DirectiveFilter, Store};
use serde_json::Map;
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::body::{Query, path_text};
use crate::error::{ApiError, ErrorBody};
use crate::pagination;
use crate::state::AppState;
use crate::views::{DirectiveList, DirectiveSummaryView, DirectiveView};

// Describes the query string to the document only: the handler reads the query itself so that
// every problem gets its own error code.
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

/// Lists directives, newest first.
#[utoipa::path(
    get,
    path = "/api/directives",
    tag = "admin",
    params(DirectiveListParams),
    responses(
        (status = 200, description = "A page of directives", body = DirectiveList),
        (status = 400, description = "`validation_error` (page_size, status) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_directives<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let query = Query::parse_known(&req, &["topic", "status", "cursor", "page_size"])?;
    let mut errors = FieldErrors::default();
    let limit = pagination::page_size(&query, &mut errors);
    let status = query.get("status").and_then(|s| {
        let parsed = DirectiveStatus::parse(s);
        if parsed.is_none() {
            errors.add("status", "must be one of queued, running, done, failed");
        }
        parsed
    });
    errors.into_result().map_err(|e| ApiError::validation(&e))?;
    let page = pagination::request(&query, limit)?;
    let filter = DirectiveFilter { topic: query.owned("topic"), status };
    let rows = state.hub.directives(&filter, &page).await?;
    let (next, previous) = pagination::links(&req, &query, &rows, state.config.public_url.as_deref());
    let results = rows.items.iter().map(DirectiveSummaryView::from).collect();
    Ok(HttpResponse::Ok().json(DirectiveList { next, previous, results }))
}

/// A directive by id.
#[utoipa::path(
    get,
    path = "/api/directives/{id}",
    tag = "admin",
    params(("id" = i64, Path, description = "Directive id")),
    responses(
        (status = 200, description = "The directive", body = DirectiveView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`directive_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_directive<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let numeric = directive_id(&id)?;
    let directive = state.hub.directive(numeric).await?;
    Ok(HttpResponse::Ok().json(DirectiveView::from(&directive)))
}

/// Puts a failed directive back in the queue, available now (admin). Its `attempts` are kept,
/// so a run that fails again goes straight back to `failed`.
#[utoipa::path(
    post,
    path = "/api/directives/{id}/retry",
    tag = "admin",
    params(("id" = i64, Path, description = "Directive id")),
    responses(
        (status = 200, description = "The directive, queued", body = DirectiveView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`directive_not_found`", body = ErrorBody),
        (status = 409, description = "`directive_not_failed`: it is queued, running or done", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn retry_directive<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let numeric = directive_id(&id)?;
    let directive = state.hub.retry_directive(numeric).await?;
    Ok(HttpResponse::Ok().json(DirectiveView::from(&directive)))
}

/// The directive id in a path; one that is not a number names no directive.
pub(crate) fn directive_id(id: &str) -> Result<i64, ApiError> {
    path_text("directive_id", id)?;
    id.parse::<i64>().map_err(|_| directive_not_found(id))
}

/// 404 for a directive id, as it was asked for (also when it is no number).
fn directive_not_found(id: &str) -> ApiError {
    ApiError::coded(omniman_core::error::Code::DirectiveNotFound, format!("directive {id} not found"), Map::new())
        .with_context("directive_id", id)
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin",
    responses(
        (status = 200, description = "OpenMetrics text exposition", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn metrics<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    match state.hub.directive_counts().await {
        Ok(counts) => state.metrics.set_directive_counts(&counts),
        // The request metrics are still worth serving when the queue cannot be read.
        Err(e) => tracing::warn!(error = %e, "directive counts unavailable for metrics"),
    }
    if let Some(pool) = &state.pool {
        state.metrics.set_pool_usage(pool.pool_usage());
    }
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode()))
}
