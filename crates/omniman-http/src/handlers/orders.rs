//! `/api/orders…`: list, the polling stream, read, transition, events.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use omniman_core::commit::parse_instant;
use omniman_core::error::FieldErrors;
use omniman_core::money::format_q2;
use omniman_core::order::OrderFlow;
use omniman_core::ports::{OrderFilter, Store};
use utoipa::IntoParams;

use super::{channel_ids, channel_scope};
use crate::auth::Principal;
use crate::body::{Query, path_text};
use crate::error::{ApiError, ErrorBody};
use crate::pagination;
use crate::requests::{TransitionRequest, read_body};
use crate::state::AppState;
use crate::views::{
    EventList, EventView, OrderList, OrderSummaryView, OrderView, StreamEntryView, StreamView, TransitionedView,
};

/// Query parameters of `GET /api/orders`.
const LIST_PARAMS: &[&str] = &[
    "channel_code",
    "status",
    "handle_type",
    "handle_ref",
    "external_ref",
    "created_after",
    "created_before",
    "cursor",
    "page_size",
];

// Describes the query string to the document only: the handler reads the query itself so that
// every problem gets its own error code.
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

/// Lists orders, newest first.
#[utoipa::path(
    get,
    path = "/api/orders",
    tag = "orders",
    params(OrderListParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderList),
        (status = 400, description = "`validation_error` (page_size, created_after, created_before) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_orders<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse_known(&req, LIST_PARAMS)?;
    if let Some(code) = query.get("channel_code") {
        who.require_channel(code)?;
    }
    let mut errors = FieldErrors::default();
    let limit = pagination::page_size(&query, &mut errors);
    let mut instant = |key: &str| {
        let raw = query.get(key)?;
        let parsed = parse_instant(raw);
        if parsed.is_none() {
            errors.add(key, "must be an RFC 3339 date-time, e.g. 2026-11-21T12:00:00Z");
        }
        parsed
    };
    let created_after = instant("created_after");
    let created_before = instant("created_before");
    errors.into_result().map_err(|e| ApiError::validation(&e))?;
    let page = pagination::request(&query, limit)?;
    let scope = channel_scope(&state, &who, query.get("channel_code")).await?;
    if let Some(status) = query.get("status") {
        let channels = match &scope {
            Some(channels) => channels.clone(),
            None => state.hub.channels().await?,
        };
        if !channels.iter().any(|c| OrderFlow::for_channel(c).names(status)) {
            let message =
                "no order flow of the channels in scope has this status (see each channel's allowed transitions)";
            return Err(ApiError::field("status", message));
        }
    }
    let filter = OrderFilter {
        channel_ids: channel_ids(scope.as_deref()),
        status: query.owned("status"),
        handle_type: query.owned("handle_type"),
        handle_ref: query.owned("handle_ref"),
        external_ref: query.owned("external_ref"),
        created_after,
        created_before,
    };
    let rows = state.hub.orders(&filter, &page).await?;
    let (next, previous) = pagination::links(&req, &query, &rows, state.config.public_url.as_deref());
    let results = rows.items.iter().map(OrderSummaryView::from).collect();
    Ok(HttpResponse::Ok().json(OrderList { next, previous, results }))
}

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
    let hub = &state.hub;
    let Some(raw) = query.get("since") else {
        return Ok(HttpResponse::Ok().json(StreamView { orders: Vec::new(), last_id: hub.last_order_id().await? }));
    };
    let since: i64 = raw.trim().parse().map_err(|_| ApiError::field("since", "must be an integer order id"))?;
    let rows = hub.orders_after(since, STREAM_BATCH).await?;
    let names: HashMap<i64, String> = if rows.is_empty() {
        HashMap::new()
    } else {
        hub.channels().await?.into_iter().map(|c| (c.id, c.display_name().to_owned())).collect()
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

/// An order by ref.
#[utoipa::path(
    get,
    path = "/api/orders/{ref}",
    tag = "orders",
    params(("ref" = String, Path, description = "Order ref")),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`order_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_order<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    order_ref: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    path_text("order_ref", &order_ref)?;
    let (channel, order) = state.hub.order(&order_ref).await?;
    who.require_channel(&channel.code)?;
    Ok(HttpResponse::Ok().json(OrderView::new(&channel, &order)))
}

/// Moves an order along its channel's flow.
#[utoipa::path(
    post,
    path = "/api/orders/{ref}/transition",
    tag = "orders",
    params(("ref" = String, Path, description = "Order ref")),
    request_body = TransitionRequest,
    responses(
        (status = 200, description = "The order after the transition", body = TransitionedView),
        (status = 400, description = "`validation_error`, `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`order_not_found`", body = ErrorBody),
        (status = 409, description = "`invalid_transition`, `terminal_status`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn transition<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    order_ref: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    path_text("order_ref", &order_ref)?;
    let body: TransitionRequest = read_body(&req, payload, state.config.body_limit).await?;
    // A token limited to some channels must see the order's channel before touching it (one
    // more read, for such tokens only).
    if who.channels.is_some() {
        let (channel, _) = state.hub.order(&order_ref).await?;
        who.require_channel(&channel.code)?;
    }
    let moved =
        state.hub.transition_order(&order_ref, &body.status, body.note.as_deref(), &state.caller(&who.name)).await?;
    Ok(HttpResponse::Ok().json(TransitionedView {
        order: OrderView::new(&moved.channel, &moved.order),
        previous_status: moved.previous_status,
    }))
}

/// An order's events, by `seq`.
#[utoipa::path(
    get,
    path = "/api/orders/{ref}/events",
    tag = "orders",
    params(
        ("ref" = String, Path, description = "Order ref"),
        pagination::PageParams,
    ),
    responses(
        (status = 200, description = "A page of events", body = EventList),
        (status = 400, description = "`validation_error` (page_size) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`order_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn events<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    order_ref: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    path_text("order_ref", &order_ref)?;
    let query = Query::parse_known(&req, pagination::PARAMS)?;
    let mut errors = FieldErrors::default();
    let limit = pagination::page_size(&query, &mut errors);
    errors.into_result().map_err(|e| ApiError::validation(&e))?;
    let page = pagination::request(&query, limit)?;
    if who.channels.is_some() {
        let (channel, _) = state.hub.order(&order_ref).await?;
        who.require_channel(&channel.code)?;
    }
    let events = state.hub.order_events(&order_ref).await?;
    let rows = pagination::slice(events, &page);
    let (next, previous) = pagination::links(&req, &query, &rows, state.config.public_url.as_deref());
    Ok(HttpResponse::Ok().json(EventList { next, previous, results: rows.items.iter().map(EventView::from).collect() }))
}
