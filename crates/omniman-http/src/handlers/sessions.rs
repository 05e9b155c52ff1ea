//! `/api/sessions…`: open, read, modify, resolve, commit, abandon.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use omniman_core::error::FieldErrors;
use omniman_core::input::{ChannelCode, SessionKey, SessionRef};
use omniman_core::ports::{SessionFilter, Store};
use omniman_core::session::SessionState;
use utoipa::IntoParams;

use super::{IfMatch, channel_ids, channel_scope, if_match, if_none_match, session_response};
use crate::auth::Principal;
use crate::body::Query;
use crate::error::{ApiError, ErrorBody};
use crate::pagination;
use crate::requests::{
    AbandonRequest, CommitRequest, CreateSessionRequest, ImportSessionRequest, ModifyRequest, ResolveRequest, path_key,
    read_body, read_body_with,
};
use crate::state::AppState;
use crate::views::{CommitResultView, SessionList, SessionSummaryView, SessionView};

/// Query parameters of `GET /api/sessions`.
const LIST_PARAMS: &[&str] = &["channel_code", "state", "handle_type", "handle_ref", "cursor", "page_size"];

// Describes the query string to the document only: the handler reads the query itself so that
// every problem gets its own error code.
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

/// Lists sessions, newest first.
#[utoipa::path(
    get,
    path = "/api/sessions",
    tag = "sessions",
    params(SessionListParams),
    responses(
        (status = 200, description = "A page of sessions", body = SessionList),
        (status = 400, description = "`validation_error` (page_size, state) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`: channel outside the token's list", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_sessions<S: Store + 'static>(
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
    let session_state = query.get("state").and_then(|s| {
        let parsed = SessionState::parse(s);
        if parsed.is_none() {
            errors.add("state", "must be one of open, committed, abandoned");
        }
        parsed
    });
    errors.into_result().map_err(|e| ApiError::validation(&e))?;
    let page = pagination::request(&query, limit)?;
    let scope = channel_scope(&state, &who, query.get("channel_code")).await?;
    let filter = SessionFilter {
        channel_ids: channel_ids(scope.as_deref()),
        state: session_state,
        handle_type: query.owned("handle_type"),
        handle_ref: query.owned("handle_ref"),
    };
    let rows = state.hub.sessions(&filter, &page).await?;
    let (next, previous) = pagination::links(&req, &query, &rows, state.config.public_url.as_deref());
    let results = rows.items.iter().map(SessionSummaryView::from).collect();
    Ok(HttpResponse::Ok().json(SessionList { next, previous, results }))
}

/// Opens a session, or returns the open one already holding both handle values.
#[utoipa::path(
    post,
    path = "/api/sessions",
    tag = "sessions",
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Opened", body = SessionView, headers(("ETag" = String))),
        (status = 200, description = "An open session already holds this handle", body = SessionView),
        (status = 400, description = "`validation_error`, `unknown_channel`, `malformed_json`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 409, description = "`session_exists`, `channel_inactive`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create_session<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let request: CreateSessionRequest = read_body(&req, payload, state.config.body_limit).await?;
    who.require_channel(&request.channel_code)?;
    let opened = state.hub.open_session(request.into(), &state.caller(&who.name)).await?;
    let status = if opened.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(session_response(status, &opened.session))
}

/// Imports a session an external platform already validated (admin): lines may carry their own
/// ids, names and prices, the edit policy is ignored, import validators run, no check directive
/// is enqueued, and `data` is stored as given.
#[utoipa::path(
    post,
    path = "/api/sessions/import",
    tag = "sessions",
    request_body = ImportSessionRequest,
    responses(
        (status = 201, description = "Imported", body = SessionView, headers(("ETag" = String))),
        (status = 400, description = "`validation_error`, `unknown_channel`, `malformed_json`, import validator codes", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden` (admin only)", body = ErrorBody),
        (status = 409, description = "`session_exists`, `channel_inactive`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn import_session<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    who.require_admin()?;
    let request: ImportSessionRequest = read_body(&req, payload, state.config.body_limit).await?;
    let session = state.hub.import_session(request.into(), &state.caller(&who.name)).await?;
    Ok(session_response(StatusCode::CREATED, &session))
}

/// A session by key.
#[utoipa::path(
    get,
    path = "/api/sessions/{key}",
    tag = "sessions",
    params(
        ("key" = String, Path, description = "Session key"),
        ("channel_code" = Option<String>, Query, description = "Required only when the key exists in several channels"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: 304 when unchanged"),
    ),
    responses(
        (status = 200, description = "The session", body = SessionView, headers(("ETag" = String, description = "\"<rev>.<version>\""))),
        (status = 304, description = "Not modified (If-None-Match matched); no body"),
        (status = 400, description = "`channel_code_required`, `unknown_channel`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_session<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse_known(&req, &["channel_code"])?;
    let mut errors = FieldErrors::default();
    let channel_code = query.owned("channel_code").and_then(|c| errors.take("channel_code", ChannelCode::parse(c)));
    let key = errors.take("session_key", SessionKey::parse(key.into_inner()));
    let key = match (key, errors.into_result()) {
        (Some(key), Ok(())) => key,
        (_, result) => return Err(ApiError::validation(&result.err().unwrap_or_default())),
    };
    if let Some(code) = &channel_code {
        who.require_channel(code)?;
    }
    let session = state.hub.get_session(channel_code.as_ref(), &key).await?;
    who.require_channel(&session.channel_code)?;
    let etag = session.etag();
    if if_none_match(&req, &etag) {
        return Ok(HttpResponse::NotModified().insert_header((header::ETAG, etag)).finish());
    }
    Ok(session_response(StatusCode::OK, &session))
}

/// Applies a batch of ops.
#[utoipa::path(
    post,
    path = "/api/sessions/{key}/modify",
    tag = "sessions",
    params(
        ("key" = String, Path, description = "Session key"),
        ("If-Match" = Option<String>, Header, description = "\"<rev>\", \"<rev>.<version>\" or *"),
    ),
    request_body = ModifyRequest,
    responses(
        (status = 200, description = "The modified session", body = SessionView, headers(("ETag" = String))),
        (status = 400, description = "`validation_error`, `unknown_channel`, op errors (`unsupported_op`, `missing_sku`, `invalid_qty`, `missing_unit_price_q`, `unknown_line_id`, `invalid_merge`, `sku_mismatch`, `invalid_path`), validator codes", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
        (status = 409, description = "`already_committed`, `already_abandoned`, `locked`", body = ErrorBody),
        (status = 412, description = "`precondition_failed`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn modify<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    key: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (body, key) =
        read_body_with::<ModifyRequest, _>(&req, payload, state.config.body_limit, path_key(key.into_inner())).await?;
    let at = SessionRef { channel: body.channel_code, key };
    who.require_channel(&at.channel)?;
    let pre = if_match(&req);
    let session = state
        .hub
        .modify(&at, &body.ops, pre.as_ref().map(|m| &m.precondition), &state.caller(&who.name))
        .await
        .map_err(|e| IfMatch::as_sent(pre.as_ref(), e.into()))?;
    Ok(session_response(StatusCode::OK, &session))
}

/// Resolves an issue by one of its actions.
#[utoipa::path(
    post,
    path = "/api/sessions/{key}/resolve",
    tag = "sessions",
    params(
        ("key" = String, Path, description = "Session key"),
        ("If-Match" = Option<String>, Header, description = "\"<rev>\", \"<rev>.<version>\" or *"),
    ),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "The session after the action", body = SessionView, headers(("ETag" = String))),
        (status = 400, description = "`validation_error` and the errors of the modify the action runs", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`session_not_found`, `issue_not_found`, `action_not_found`", body = ErrorBody),
        (status = 409, description = "`no_resolver`, `stale_action`, `no_ops`, `locked`, `already_committed`, `already_abandoned`", body = ErrorBody),
        (status = 412, description = "`precondition_failed`", body = ErrorBody),
        (status = 500, description = "`resolver_error`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn resolve<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    key: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (body, key) =
        read_body_with::<ResolveRequest, _>(&req, payload, state.config.body_limit, path_key(key.into_inner())).await?;
    let at = SessionRef { channel: body.channel_code, key };
    who.require_channel(&at.channel)?;
    let pre = if_match(&req);
    let session = state
        .hub
        .resolve_issue(
            &at,
            &body.issue_id,
            &body.action_id,
            pre.as_ref().map(|p| &p.precondition),
            &state.caller(&who.name),
        )
        .await
        .map_err(|e| IfMatch::as_sent(pre.as_ref(), e.into()))?;
    Ok(session_response(StatusCode::OK, &session))
}

/// Commits the session into an order; idempotent by key.
#[utoipa::path(
    post,
    path = "/api/sessions/{key}/commit",
    tag = "sessions",
    params(
        ("key" = String, Path, description = "Session key"),
        ("If-Match" = Option<String>, Header, description = "\"<rev>\", \"<rev>.<version>\" or *"),
    ),
    request_body = CommitRequest,
    responses(
        (status = 201, description = "Committed (also a replay of a 201)", body = CommitResultView),
        (status = 200, description = "Already committed (also a replay of a 200)", body = CommitResultView),
        (status = 400, description = "`validation_error`, `unknown_channel`, commit validator codes", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
        (status = 409, description = "`already_committed`, `already_abandoned`, `missing_check`, `stale_check`, `hold_expired`, `blocking_issues`, `empty_session`, `in_progress`, `idempotency_conflict`", body = ErrorBody),
        (status = 412, description = "`precondition_failed`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn commit<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    key: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (body, key) =
        read_body_with::<CommitRequest, _>(&req, payload, state.config.body_limit, path_key(key.into_inner())).await?;
    let at = SessionRef { channel: body.channel_code, key };
    who.require_channel(&at.channel)?;
    let pre = if_match(&req);
    let caller = state.caller(&who.name);
    let outcome = state
        .hub
        .commit(&at, body.idempotency_key.as_ref(), pre.as_ref().map(|m| &m.precondition), &caller)
        .await
        .map_err(|e| IfMatch::as_sent(pre.as_ref(), e.into()))?;
    let status = StatusCode::from_u16(outcome.http_status()).unwrap_or(StatusCode::OK);
    Ok(HttpResponse::build(status).json(outcome.to_json()))
}

/// Abandons an open session (an abandoned one is returned as it is).
#[utoipa::path(
    post,
    path = "/api/sessions/{key}/abandon",
    tag = "sessions",
    params(
        ("key" = String, Path, description = "Session key"),
        ("If-Match" = Option<String>, Header, description = "\"<rev>\", \"<rev>.<version>\" or *"),
    ),
    request_body = AbandonRequest,
    responses(
        (status = 200, description = "The abandoned session", body = SessionView, headers(("ETag" = String))),
        (status = 400, description = "`validation_error`, `unknown_channel`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`session_not_found`", body = ErrorBody),
        (status = 409, description = "`already_committed`", body = ErrorBody),
        (status = 412, description = "`precondition_failed`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn abandon<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
    key: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (body, key) =
        read_body_with::<AbandonRequest, _>(&req, payload, state.config.body_limit, path_key(key.into_inner())).await?;
    let at = SessionRef { channel: body.channel_code, key };
    who.require_channel(&at.channel)?;
    let pre = if_match(&req);
    let session = state
        .hub
        .abandon(&at, pre.as_ref().map(|m| &m.precondition), &state.caller(&who.name))
        .await
        .map_err(|e| IfMatch::as_sent(pre.as_ref(), e.into()))?;
    Ok(session_response(StatusCode::OK, &session))
}
