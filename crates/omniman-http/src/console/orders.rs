//! The order board (columns by status, like a kitchen display, refreshed live by the script)
//! and an order's page. The buttons offer what the order's channel flow allows from its status,
//! asked of the core's `OrderFlow`; the transition itself is the service's.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use maud::{Markup, html};
use omniman_core::channel::Channel;
use omniman_core::order::OrderFlow;
use omniman_core::page::PageRequest;
use omniman_core::ports::{OrderFilter, OrderSummary, Store};

use super::form;
use super::layout::{self, Section};
use super::session::{self, Signed};
use crate::error::ApiError;
use crate::state::AppState;

/// Cards per column.
const PER_COLUMN: usize = 50;

/// The statuses an order can wait in (not terminal), in the order the channels' flows reach
/// them from their initial status.
fn columns(channels: &[Channel]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for channel in channels {
        let flow = OrderFlow::for_channel(channel);
        let mut queue = vec![flow.initial_status().to_owned()];
        let mut seen: Vec<String> = Vec::new();
        while let Some(status) = (!queue.is_empty()).then(|| queue.remove(0)) {
            if seen.contains(&status) {
                continue;
            }
            seen.push(status.clone());
            if !flow.is_terminal(&status) && !order.contains(&status) {
                order.push(status.clone());
            }
            queue.extend(flow.allowed_transitions(&status).iter().cloned());
        }
    }
    order
}

/// The board's cards, by column.
async fn board_fragment<S: Store + 'static>(state: &AppState<S>, signed: &Signed) -> Result<Markup, ApiError> {
    let mut channels = state.hub.channels().await?;
    channels.sort_by_key(|c| c.display_order);
    let flows: HashMap<String, OrderFlow> =
        channels.iter().map(|c| (c.code.clone(), OrderFlow::for_channel(c))).collect();
    let mut board: Vec<(String, Vec<OrderSummary>)> = Vec::new();
    for status in columns(&channels) {
        let filter = OrderFilter { status: Some(status.clone()), ..OrderFilter::default() };
        let mut page = state.hub.orders(&filter, &PageRequest::new(None, PER_COLUMN)).await?;
        // Oldest first: the order waiting longest is at the top.
        page.items.reverse();
        board.push((status, page.items));
    }
    let now = Utc::now();
    Ok(html! {
        div class="board" {
            @for (status, orders) in &board {
                section class="column" aria-labelledby=(layout::dom_id(&["col", status])) {
                    h2 id=(layout::dom_id(&["col", status])) { (status) " " span class="count" { "(" (orders.len()) ")" } }
                    @if orders.is_empty() {
                        p class="empty" { "No orders." }
                    } @else {
                        ul class="cards" {
                            @for order in orders {
                                li { (card(order, flows.get(&order.channel_code), now, signed)) }
                            }
                        }
                    }
                }
            }
        }
    })
}

fn card(order: &OrderSummary, flow: Option<&OrderFlow>, now: chrono::DateTime<Utc>, signed: &Signed) -> Markup {
    let allowed = flow.map_or(&[][..], |f| f.allowed_transitions(&order.status));
    html! {
        article class="card order" data-ref=(order.reference) {
            h3 { a href={ "/console/orders/" (order.reference) } { (order.reference) } }
            dl class="facts" {
                dt { "Channel" } dd { (order.channel_code) }
                dt { "Total" } dd { (layout::money(order.total_q, &order.currency)) }
                dt { "Age" } dd { (layout::age(order.created_at, now)) }
                @if let (Some(t), Some(r)) = (&order.handle_type, &order.handle_ref) {
                    dt { "Handle" } dd { (t) " " (r) }
                }
            }
            (transition_buttons(&order.reference, allowed, "board", signed))
        }
    }
}

fn transition_buttons(order_ref: &str, allowed: &[String], back: &str, signed: &Signed) -> Markup {
    html! {
        @if !allowed.is_empty() {
            div class="actions" {
                @for status in allowed {
                    (layout::post_button(
                        &format!("/console/orders/{order_ref}/transition"),
                        &format!("Move to {status}"),
                        &[("status", status), ("back", back)],
                        signed,
                        &layout::dom_id(&["move", order_ref, status]),
                    ))
                }
            }
        }
    }
}

/// `GET /console` and `/console/board`: the board; `?fragment=1` answers the columns alone, for
/// the script to swap in.
pub(crate) async fn board<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    let fragment = board_fragment(&state, &signed).await;
    let fragment = match fragment {
        Ok(fragment) => fragment,
        Err(e) => return layout::api_error(&e, Some(&signed)),
    };
    if req.query_string() == "fragment=1" {
        return layout::html_response(StatusCode::OK, &fragment);
    }
    let body = html! {
        p class="help" { "Orders waiting in each status, oldest first. The board follows new orders and changes live." }
        div id="board" data-fragment="/console/board?fragment=1" { (fragment) }
    };
    layout::ok_page("Order board", Section::Board, &signed, &body)
}

/// `GET /console/orders/{ref}`: items, totals, data, the events and the transitions.
pub(crate) async fn order<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    order_ref: web::Path<String>,
) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    let found = state.hub.order(&order_ref).await;
    let (channel, order) = match found {
        Ok(found) => found,
        Err(e) => return layout::api_error(&ApiError::from(e), Some(&signed)),
    };
    let events = match state.hub.order_events(&order_ref).await {
        Ok(events) => events,
        Err(e) => return layout::api_error(&ApiError::from(e), Some(&signed)),
    };
    let flow = OrderFlow::for_channel(&channel);
    let allowed = flow.allowed_transitions(&order.status);
    let body = html! {
        section class="card" aria-labelledby="summary" {
            h2 id="summary" { "Summary" }
            dl class="facts" {
                dt { "Status" } dd id="order-status" { (order.status) }
                dt { "Channel" } dd { (channel.code) }
                dt { "Session" } dd { (order.session_key) }
                @if let (Some(t), Some(r)) = (&order.handle_type, &order.handle_ref) { dt { "Handle" } dd { (t) " " (r) } }
                @if let Some(external) = &order.external_ref { dt { "External ref" } dd { (external) } }
                dt { "Created" } dd { (layout::time(order.created_at)) }
                dt { "Total" } dd { (layout::money(order.total_q, &order.currency)) }
            }
            @if allowed.is_empty() {
                p class="help" { "No transition leaves this status." }
            } @else {
                (transition_buttons(&order.reference, allowed, "order", &signed))
            }
        }
        section class="card" aria-labelledby="items" {
            h2 id="items" { "Items" }
            table {
                thead { tr { th scope="col" { "SKU" } th scope="col" { "Name" } th scope="col" class="num" { "Qty" }
                    th scope="col" class="num" { "Unit price" } th scope="col" class="num" { "Line total" } } }
                tbody {
                    @for item in &order.items {
                        tr {
                            td { (item.sku) } td { (item.name) } td class="num" { (item.qty) }
                            td class="num" { (omniman_core::money::format_q2(item.unit_price_q)) }
                            td class="num" { (omniman_core::money::format_q2(item.line_total_q)) }
                        }
                    }
                }
                tfoot { tr { th scope="row" colspan="4" { "Total" } td class="num" { (layout::money(order.total_q, &order.currency)) } } }
            }
        }
        section class="card" aria-labelledby="data" {
            h2 id="data" { "Data" }
            (layout::json_block(&serde_json::Value::Object(order.data.clone())))
        }
        section class="card" aria-labelledby="events" {
            h2 id="events" { "Events" }
            ol class="timeline" {
                @for event in &events {
                    li {
                        strong { (event.event_type) } " by " (event.actor) " · " (layout::time(event.created_at))
                        @if !event.payload.is_empty() { (layout::json_block(&serde_json::Value::Object(event.payload.clone()))) }
                    }
                }
            }
        }
    };
    layout::ok_page(&format!("Order {}", order.reference), Section::Board, &signed, &body)
}

/// `POST /console/orders/{ref}/transition`: `status`, and `back` (`board` or `order`).
pub(crate) async fn transition<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    order_ref: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (signed, fields) = match form::posted(&req, &state, &body).await {
        Ok(posted) => posted,
        Err(res) => return res,
    };
    let status = fields.text("status").unwrap_or_default();
    let caller = state.caller(&signed.principal.name);
    if let Err(e) = state.hub.transition_order(&order_ref, status, None, &caller).await {
        return layout::api_error(&ApiError::from(e), Some(&signed));
    }
    if fields.get("back") == Some("order") {
        layout::see_other(&format!("/console/orders/{order_ref}"))
    } else {
        layout::see_other("/console")
    }
}

#[cfg(test)]
mod tests {
    use omniman_core::testing::channel_with;
    use serde_json::json;

    use super::columns;

    #[test]
    fn columns_follow_the_flows_from_their_initial_status_without_terminal_ones() {
        let default = channel_with("pos", json!({}));
        let own = channel_with(
            "kds",
            json!({"order_flow": {"initial_status": "queued", "transitions": {"queued": ["cooking"], "cooking": ["served"]},
                   "terminal_statuses": ["served"]}}),
        );
        assert_eq!(
            columns(std::slice::from_ref(&default)),
            ["new", "confirmed", "processing", "ready", "dispatched", "delivered", "returned"]
        );
        assert_eq!(columns(&[own, default])[..2], ["queued", "cooking"]);
    }
}
