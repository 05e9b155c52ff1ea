//! Admin routes: the order polling stream, directives and metrics.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use omniman_core::directive::DirectiveStatus;
use omniman_core::error::FieldErrors;
use omniman_core::money::format_q2;
use omniman_core::ports::{DirectiveFilter, Store};
use serde_json::Map;

use crate::auth::Principal;
use crate::body::Query;
use crate::error::{ApiError, ErrorBody};
use crate::pagination;
use crate::state::AppState;
use crate::views::{DirectiveList, DirectiveSummaryView, DirectiveView, StreamEntryView, StreamView};

/// How many orders one poll of the stream returns at most.
const STREAM_BATCH: usize = 10;

/// Polls for new orders: up to 10 with `id > since`, ascending.
#[utoipa::path(
    get,
    path = "/api/orders/stream",
    tag = "admin",
    params(("since" = Option<i64>, Query, description = "The last id seen; absent: no orders, and `last_id` = the highest id (0 when none)")),
    responses(
        (status = 200, description = "New orders", body = StreamView),
        (status = 400, description = "`validation_error`: `since` is not an integer", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stream<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let query = Query::parse_known(&req, &["since"])?;
    let store = state.hub.store();
    let Some(raw) = query.get("since") else {
        return Ok(HttpResponse::Ok().json(StreamView { orders: Vec::new(), last_id: store.max_order_id().await? }));
    };
    let since: i64 = raw.trim().parse().map_err(|_| ApiError::field("since", "must be an integer order id"))?;
    let rows = store.orders_after(since, STREAM_BATCH).await?;
    let names: HashMap<i64, String> = if rows.is_empty() {
        HashMap::new()
    } else {
        store.list_channels().await?.into_iter().map(|c| (c.id, c.display_name().to_owned())).collect()
    };
    let last_id = rows.last().map_or(since, |o| o.id);
    let orders = rows
        .into_iter()
        .map(|o| StreamEntryView {
            id: o.id,
            channel: names.get(&o.channel_id).cloned().unwrap_or_else(|| o.channel_code.clone()),
            status: o.status,
            total: format_q2(o.total_q),
            total_q: o.total_q,
            currency: o.currency,
            created_at: o.created_at,
            handle_ref: o.handle_ref,
            reference: o.reference,
        })
        .collect();
    Ok(HttpResponse::Ok().json(StreamView { orders, last_id }))
}

/// Lists directives, newest first.
#[utoipa::path(
    get,
    path = "/api/directives",
    tag = "admin",
    params(crate::openapi::DirectiveListParams),
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
    let rows = state.hub.store().list_directives(&filter, &page).await?;
    let (next, previous) = pagination::links(&req, &query, &rows);
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
    let not_found = || {
        ApiError::coded(omniman_core::error::Code::DirectiveNotFound, format!("directive {id} not found"), Map::new())
            .with_context("directive_id", id.as_str())
    };
    let Ok(numeric) = id.parse::<i64>() else { return Err(not_found()) };
    let directive = state.hub.store().directive(numeric).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(DirectiveView::from(&directive)))
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
    match state.hub.store().directive_counts().await {
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
