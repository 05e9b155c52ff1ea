//! Webhook subscriptions (admin): create, list, change, delete, their deliveries and a test
//! delivery (docs/webhooks.md).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use omniman_core::error::FieldErrors;
use omniman_core::ports::Store;
use omniman_core::service::ManageError;
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::auth::Principal;
use crate::body::{Query, path_text};
use crate::error::{ApiError, ErrorBody};
use crate::pagination;
use crate::requests::{ChangeWebhookRequest, CreateWebhookRequest, read_body};
use crate::state::AppState;
use crate::views::{CreatedWebhookView, DeliveryList, DeliveryView, WebhookList, WebhookView};

/// A new signing secret: `whsec_` + 32 alphanumerics from the thread's CSPRNG.
fn generate_secret() -> String {
    let random: String = rand::rng().sample_iter(Alphanumeric).take(32).map(char::from).collect();
    format!("whsec_{random}")
}

/// The subscription id in a path; one that is not a number names no subscription.
pub(crate) fn webhook_id(id: &str) -> Result<i64, ApiError> {
    path_text("webhook_id", id)?;
    id.parse::<i64>().map_err(|_| ManageError::WebhookNotFound { webhook_id: id.to_owned() }.into())
}

/// Creates a webhook subscription (admin). The answer is the only place its secret appears.
#[utoipa::path(
    post,
    path = "/api/webhooks",
    tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created, with its signing secret", body = CreatedWebhookView),
        (status = 400, description = "`validation_error` (`url`, `events[i]`), `unknown_channel`, `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create_webhook<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let request: CreateWebhookRequest = read_body(&req, payload, state.config.body_limit).await?;
    let secret = generate_secret();
    let webhook = state.hub.create_webhook(request.into(), secret.clone()).await?;
    Ok(HttpResponse::build(StatusCode::CREATED)
        .json(CreatedWebhookView { details: WebhookView::from(&webhook), secret }))
}

/// Lists webhook subscriptions (admin), newest first. Secrets are never listed.
#[utoipa::path(
    get,
    path = "/api/webhooks",
    tag = "webhooks",
    params(pagination::PageParams),
    responses(
        (status = 200, description = "A page of subscriptions", body = WebhookList),
        (status = 400, description = "`validation_error` (page_size) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_webhooks<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let query = Query::parse_known(&req, pagination::PARAMS)?;
    let mut errors = FieldErrors::default();
    let limit = pagination::page_size(&query, &mut errors);
    errors.into_result().map_err(|e| ApiError::validation(&e))?;
    let page = pagination::request(&query, limit)?;
    let rows = state.hub.webhooks(&page).await?;
    let (next, previous) = pagination::links(&req, &query, &rows, state.config.public_url.as_deref());
    let results = rows.items.iter().map(WebhookView::from).collect();
    Ok(HttpResponse::Ok().json(WebhookList { next, previous, results }))
}

/// A webhook subscription by id (admin).
#[utoipa::path(
    get,
    path = "/api/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription", body = WebhookView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_webhook<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let webhook = state.hub.webhook(webhook_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(WebhookView::from(&webhook)))
}

/// Changes a webhook subscription (admin): the fields given replace the stored ones;
/// `"active": false` pauses it.
#[utoipa::path(
    patch,
    path = "/api/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Subscription id")),
    request_body = ChangeWebhookRequest,
    responses(
        (status = 200, description = "The subscription as changed", body = WebhookView),
        (status = 400, description = "`validation_error`, `unknown_channel`, `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn change_webhook<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let id = webhook_id(&id)?;
    let request: ChangeWebhookRequest = read_body(&req, payload, state.config.body_limit).await?;
    let webhook = state.hub.change_webhook(id, request.into()).await?;
    Ok(HttpResponse::Ok().json(WebhookView::from(&webhook)))
}

/// Deletes a webhook subscription (admin); answers it as it was. Deliveries still queued end
/// without being sent.
#[utoipa::path(
    delete,
    path = "/api/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "Deleted", body = WebhookView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete_webhook<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let webhook = state.hub.delete_webhook(webhook_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(WebhookView::from(&webhook)))
}

/// A subscription's deliveries (admin), newest first.
#[utoipa::path(
    get,
    path = "/api/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Subscription id"), pagination::PageParams),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryList),
        (status = 400, description = "`validation_error` (page_size) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_deliveries<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let id = webhook_id(&id)?;
    let query = Query::parse_known(&req, pagination::PARAMS)?;
    let mut errors = FieldErrors::default();
    let limit = pagination::page_size(&query, &mut errors);
    errors.into_result().map_err(|e| ApiError::validation(&e))?;
    let page = pagination::request(&query, limit)?;
    let rows = state.hub.webhook_deliveries(id, &page).await?;
    let (next, previous) = pagination::links(&req, &query, &rows, state.config.public_url.as_deref());
    let results = rows.items.iter().map(DeliveryView::from).collect();
    Ok(HttpResponse::Ok().json(DeliveryList { next, previous, results }))
}

/// Enqueues the delivery of a synthetic `webhook.test` event to the subscription (admin), paused
/// or not, and answers that delivery.
#[utoipa::path(
    post,
    path = "/api/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = i64, Path, description = "Subscription id")),
    responses(
        (status = 202, description = "The delivery, queued", body = DeliveryView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn test_webhook<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let delivery = state.hub.test_webhook(webhook_id(&id)?).await?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(DeliveryView::from(&delivery)))
}
