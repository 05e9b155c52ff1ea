//! Management routes (admin): channels and API tokens, with the rules the CLI applies
//! (docs/api.md, "Management").

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use omniman_core::error::FieldErrors;
use omniman_core::ports::Store;
use omniman_core::service::ManageError;

use crate::auth::{Principal, generate_token, hash_token};
use crate::body::{Query, path_text};
use crate::error::{ApiError, ErrorBody};
use crate::pagination;
use crate::requests::{ChangeChannelRequest, CreateChannelRequest, CreateTokenRequest, read_body};
use crate::state::AppState;
use crate::views::{ChannelView, IssuedTokenView, TokenList, TokenView};

/// Creates a channel (admin).
#[utoipa::path(
    post,
    path = "/api/channels",
    tag = "management",
    request_body = CreateChannelRequest,
    responses(
        (status = 201, description = "Created", body = ChannelView),
        (status = 400, description = "`validation_error` (with `config.…` paths), `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 409, description = "`channel_exists`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create_channel<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let request: CreateChannelRequest = read_body(&req, payload, state.config.body_limit).await?;
    let channel = state.hub.create_channel(request.into()).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(ChannelView::from(&channel)))
}

/// Changes a channel (admin): the fields given replace the stored ones; `"is_active": false`
/// deactivates it.
#[utoipa::path(
    patch,
    path = "/api/channels/{code}",
    tag = "management",
    params(("code" = String, Path, description = "Channel code")),
    request_body = ChangeChannelRequest,
    responses(
        (status = 200, description = "The channel as changed", body = ChannelView),
        (status = 400, description = "`validation_error` (with `config.…` paths), `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`channel_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn change_channel<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    code: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    path_text("channel_code", &code)?;
    let request: ChangeChannelRequest = read_body(&req, payload, state.config.body_limit).await?;
    let channel = state.hub.change_channel(&code, request.into()).await?;
    Ok(HttpResponse::Ok().json(ChannelView::from(&channel)))
}

/// Lists API tokens (admin), revoked ones included, oldest first. Secrets are never listed.
#[utoipa::path(
    get,
    path = "/api/tokens",
    tag = "management",
    params(
        ("cursor" = Option<String>, Query, description = "Opaque cursor taken from a `next` or `previous` link"),
        ("page_size" = Option<u32>, Query, description = "Rows per page: default 50, at most 100"),
    ),
    responses(
        (status = 200, description = "A page of tokens", body = TokenList),
        (status = 400, description = "`validation_error` (page_size) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_tokens<S: Store + 'static>(
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
    let rows = pagination::slice(state.hub.tokens().await?, &page);
    let (next, previous) = pagination::links(&req, &query, &rows, state.config.public_url.as_deref());
    Ok(HttpResponse::Ok().json(TokenList { next, previous, results: rows.items.iter().map(TokenView::from).collect() }))
}

/// Issues an API token (admin). The answer is the only place its secret ever appears.
#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "management",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "Issued", body = IssuedTokenView),
        (status = 400, description = "`validation_error`, `unknown_channel`, `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 409, description = "`token_exists`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create_token<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let request: CreateTokenRequest = read_body(&req, payload, state.config.body_limit).await?;
    let secret = generate_token();
    let token = state.hub.issue_token(request.into(), hash_token(&secret)).await?;
    Ok(HttpResponse::build(StatusCode::CREATED)
        .json(IssuedTokenView { token: secret, details: TokenView::from(&token) }))
}

/// Revokes an API token (admin); it stops working on every instance within a second.
#[utoipa::path(
    delete,
    path = "/api/tokens/{id}",
    tag = "management",
    params(("id" = i64, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked", body = TokenView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin token", body = ErrorBody),
        (status = 404, description = "`token_not_found`: no such token, or revoked already", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn revoke_token<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let revoked = state.hub.revoke_token_by_id(token_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(TokenView::from(&revoked)))
}

/// The token id in a path; one that is not a number names no token.
pub(crate) fn token_id(id: &str) -> Result<i64, ApiError> {
    path_text("token_id", id)?;
    id.parse::<i64>().map_err(|_| ManageError::TokenNotFound { token_id: id.to_owned() }.into())
}
