//! Webhooks: the subscriptions with their events, channels and state, each with its deliveries
//! (last status and error), a test delivery, pause/resume and delete, through the same service
//! functions as `/api/webhooks`. Subscriptions are created through the API, which shows the
//! secret once.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use omniman_core::page::PageRequest;
use omniman_core::ports::Store;
use omniman_core::webhook::WebhookChange;

use super::form;
use super::layout::{self, Section};
use super::session;
use crate::error::ApiError;
use crate::handlers::webhooks::webhook_id;
use crate::state::AppState;

/// Rows shown, newest first.
const SHOWN: usize = 100;

/// `GET /console/webhooks`.
pub(crate) async fn list<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    let page = match state.hub.webhooks(&PageRequest::new(None, SHOWN)).await {
        Ok(page) => page,
        Err(e) => return layout::api_error(&ApiError::from(e), Some(&signed)),
    };
    let body = html! {
        p { "Subscriptions are created with " code { "POST /api/webhooks" } ", which shows the signing secret once (docs/webhooks.md)." }
        @if page.items.is_empty() {
            p class="empty" { "No subscriptions." }
        } @else {
            table class="wide" {
                caption { "Webhook subscriptions" }
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "URL" } th scope="col" { "Events" }
                    th scope="col" { "Channels" } th scope="col" { "State" }
                    th scope="col" { span class="visually-hidden" { "Actions" } }
                } }
                tbody {
                    @for hook in &page.items {
                        tr {
                            td { a href={ "/console/webhooks/" (hook.id) } { (hook.id) } }
                            td { (hook.url) }
                            td { (hook.events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (hook.channels.as_ref().map_or_else(|| "all".to_owned(), |c| c.join(", "))) }
                            td { span class={ "badge " (if hook.active { "done" } else { "queued" }) } { (if hook.active { "active" } else { "paused" }) } }
                            td class="actions" {
                                (layout::post_button(&format!("/console/webhooks/{}/test", hook.id), "Send a test", &[], &signed, &format!("test-{}", hook.id)))
                                (layout::post_button(
                                    &format!("/console/webhooks/{}/active", hook.id),
                                    if hook.active { "Pause" } else { "Resume" },
                                    &[("active", if hook.active { "false" } else { "true" })],
                                    &signed,
                                    &format!("active-{}", hook.id),
                                ))
                                (layout::post_button(&format!("/console/webhooks/{}/delete", hook.id), "Delete", &[], &signed, &format!("delete-{}", hook.id)))
                            }
                        }
                    }
                }
            }
        }
    };
    layout::ok_page("Webhooks", Section::Webhooks, &signed, &body)
}

/// `GET /console/webhooks/{id}`: the subscription's deliveries, newest first.
pub(crate) async fn deliveries<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    let id = match webhook_id(&id) {
        Ok(id) => id,
        Err(e) => return layout::api_error(&e, Some(&signed)),
    };
    let (hook, page) = match state.hub.webhook(id).await {
        Ok(hook) => match state.hub.webhook_deliveries(id, &PageRequest::new(None, SHOWN)).await {
            Ok(page) => (hook, page),
            Err(e) => return layout::api_error(&ApiError::from(e), Some(&signed)),
        },
        Err(e) => return layout::api_error(&ApiError::from(e), Some(&signed)),
    };
    let body = html! {
        p { "Deliveries to " strong { (hook.url) } ", newest first. A failed delivery is retried by the directive queue; its id is the "
            code { "Omniman-Delivery" } " header, the same on every attempt." }
        p { a href="/console/webhooks" { "All subscriptions" } }
        @if page.items.is_empty() {
            p class="empty" { "No deliveries yet." }
        } @else {
            table class="wide" {
                caption { "Deliveries of webhook " (hook.id) }
                thead { tr {
                    th scope="col" { "Delivery" } th scope="col" { "Event" } th scope="col" { "Type" }
                    th scope="col" { "Status" } th scope="col" class="num" { "Attempts" }
                    th scope="col" { "Next attempt" } th scope="col" { "Last error" }
                } }
                tbody {
                    @for d in &page.items {
                        tr {
                            td { (d.id) }
                            td { (d.event_id.map_or_else(|| "test".to_owned(), |e| e.to_string())) }
                            td { (d.event_type) }
                            td { span class={ "badge " (d.status.as_str()) } { (d.status.as_str()) } }
                            td class="num" { (d.attempts) }
                            td { (layout::time(d.available_at)) }
                            td class="error-text" { (d.last_error) }
                        }
                    }
                }
            }
        }
    };
    layout::ok_page(&format!("Webhook {}", hook.id), Section::Webhooks, &signed, &body)
}

/// What a POST under `/console/webhooks/{id}/…` does.
#[derive(Clone, Copy)]
pub(crate) enum Action {
    Test,
    Active,
    Delete,
}

/// `POST /console/webhooks/{id}/test|active|delete`.
pub(crate) async fn act<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
    body: web::Bytes,
    action: Action,
) -> HttpResponse {
    let (signed, fields) = match form::posted(&req, &state, &body).await {
        Ok(posted) => posted,
        Err(res) => return res,
    };
    let id = match webhook_id(&id) {
        Ok(id) => id,
        Err(e) => return layout::api_error(&e, Some(&signed)),
    };
    let done = match action {
        Action::Test => state.hub.test_webhook(id).await.map(|_| format!("/console/webhooks/{id}")),
        Action::Active => {
            let change =
                WebhookChange { active: Some(fields.get("active") == Some("true")), ..WebhookChange::default() };
            state.hub.change_webhook(id, change).await.map(|_| "/console/webhooks".to_owned())
        }
        Action::Delete => state.hub.delete_webhook(id).await.map(|_| "/console/webhooks".to_owned()),
    };
    match done {
        Ok(location) => layout::see_other(&location),
        Err(e) => layout::api_error(&ApiError::from(e), Some(&signed)),
    }
}
