//! Directives: filtered by status and topic, with their last error, and a Retry button on
//! failed ones (the service's retry, as `POST /api/directives/{id}/retry`).

use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use omniman_core::directive::DirectiveStatus;
use omniman_core::page::PageRequest;
use omniman_core::ports::{DirectiveFilter, Store};

use super::form::{self, Form};
use super::layout::{self, Section};
use super::session;
use crate::error::ApiError;
use crate::handlers::admin::directive_id;
use crate::state::AppState;

/// Rows shown, newest first.
const SHOWN: usize = 100;
const STATUSES: &[DirectiveStatus] =
    &[DirectiveStatus::Queued, DirectiveStatus::Running, DirectiveStatus::Done, DirectiveStatus::Failed];

/// `GET /console/directives?status=…&topic=…`.
pub(crate) async fn list<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    let query = Form::parse(req.query_string().as_bytes());
    let status = query.text("status").and_then(DirectiveStatus::parse);
    let topic = query.text("topic").map(str::to_owned);
    let filter = DirectiveFilter { topic: topic.clone(), status };
    let page = match state.hub.directives(&filter, &PageRequest::new(None, SHOWN)).await {
        Ok(page) => page,
        Err(e) => return layout::api_error(&ApiError::from(e), Some(&signed)),
    };
    let body = html! {
        form class="filters" method="get" action="/console/directives" role="search" aria-label="Filter directives" {
            p {
                label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" { "any" }
                    @for s in STATUSES {
                        option value=(s.as_str()) selected[status == Some(*s)] { (s.as_str()) }
                    }
                }
            }
            p {
                label for="topic" { "Topic" }
                input id="topic" name="topic" type="text" value=(topic.as_deref().unwrap_or_default()) placeholder="stock.hold";
            }
            button type="submit" { "Filter" }
        }
        @if page.items.is_empty() {
            p class="empty" { "No directives." }
        } @else {
            table class="wide" {
                caption { "The " (SHOWN) " newest matching directives" }
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Topic" } th scope="col" { "Status" }
                    th scope="col" class="num" { "Attempts" } th scope="col" { "Available at" }
                    th scope="col" { "Last error" } th scope="col" { span class="visually-hidden" { "Actions" } }
                } }
                tbody {
                    @for d in &page.items {
                        tr {
                            td { (d.id) }
                            td { (d.topic) }
                            td { span class={ "badge " (d.status.as_str()) } { (d.status.as_str()) } }
                            td class="num" { (d.attempts) }
                            td { (layout::time(d.available_at)) }
                            td class="error-text" { (d.last_error) }
                            td {
                                @if d.status == DirectiveStatus::Failed {
                                    (layout::post_button(
                                        &format!("/console/directives/{}/retry", d.id),
                                        "Retry",
                                        &[],
                                        &signed,
                                        &format!("retry-{}", d.id),
                                    ))
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::ok_page("Directives", Section::Directives, &signed, &body)
}

/// `POST /console/directives/{id}/retry`.
pub(crate) async fn retry<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (signed, _) = match form::posted(&req, &state, &body).await {
        Ok(posted) => posted,
        Err(res) => return res,
    };
    let id = match directive_id(&id) {
        Ok(id) => id,
        Err(e) => return layout::api_error(&e, Some(&signed)),
    };
    match state.hub.retry_directive(id).await {
        Ok(_) => layout::see_other("/console/directives"),
        Err(e) => layout::api_error(&ApiError::from(e), Some(&signed)),
    }
}
