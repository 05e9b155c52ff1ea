//! Health, readiness, channels, the OpenAPI document and its interactive page.

use std::sync::{Arc, LazyLock};

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use omniman_core::error::FieldErrors;
use omniman_core::ports::Store;
use utoipa_swagger_ui::Config;

use crate::auth::Principal;
use crate::body::{Query, path_text};
use crate::error::{ApiError, ErrorBody};
use crate::pagination;
use crate::state::{AppState, CheckStatus};
use crate::views::{ChannelList, ChannelView, HealthView, ReadyCheckView, ReadyView};

/// Where the document is served.
pub(crate) const OPENAPI_PATH: &str = "/api/openapi.json";
/// Where the interactive page is served.
pub(crate) const DOCS_PATH: &str = "/api/docs";

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/api/health",
    tag = "health",
    responses((status = 200, description = "Alive", body = HealthView))
)]
pub(crate) async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthView { status: "healthy".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// Readiness: every dependency answers (a `degraded` one, such as the shared cache tier, is
/// reported without making the instance unready).
#[utoipa::path(
    get,
    path = "/api/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = ReadyView),
        (status = 503, description = "Not ready: at least one check fails", body = ReadyView),
    )
)]
pub(crate) async fn ready<S: Store + 'static>(state: web::Data<AppState<S>>) -> HttpResponse {
    let checks = state.readiness.check().await;
    let ok = checks.iter().all(|c| c.status != CheckStatus::Failing);
    let view = ReadyView {
        status: if ok { "ready" } else { "not_ready" }.into(),
        checks: checks
            .into_iter()
            .map(|c| ReadyCheckView {
                name: c.name,
                status: match c.status {
                    CheckStatus::Ok => "ok",
                    CheckStatus::Failing => "failing",
                    CheckStatus::Degraded => "degraded",
                }
                .into(),
                latency_ms: crate::middleware::millis(c.latency),
                message: c.message,
            })
            .collect(),
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(status).json(view)
}

/// Lists the channels the token may use, by (`display_order`, `id`), inactive ones included.
#[utoipa::path(
    get,
    path = "/api/channels",
    tag = "channels",
    params(pagination::PageParams),
    responses(
        (status = 200, description = "A page of channels", body = ChannelList),
        (status = 400, description = "`validation_error` (page_size) or `invalid_cursor`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_channels<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse_known(&req, pagination::PARAMS)?;
    let mut errors = FieldErrors::default();
    let limit = pagination::page_size(&query, &mut errors);
    errors.into_result().map_err(|e| ApiError::validation(&e))?;
    let page = pagination::request(&query, limit)?;
    let channels: Vec<_> = state.hub.channels().await?.into_iter().filter(|c| who.may_use(&c.code)).collect();
    let rows = pagination::slice(channels, &page);
    let (next, previous) = pagination::links(&req, &query, &rows, state.config.public_url.as_deref());
    Ok(HttpResponse::Ok().json(ChannelList {
        next,
        previous,
        results: rows.items.iter().map(ChannelView::from).collect(),
    }))
}

/// A channel by code.
#[utoipa::path(
    get,
    path = "/api/channels/{code}",
    tag = "channels",
    params(("code" = String, Path, description = "Channel code")),
    responses(
        (status = 200, description = "The channel", body = ChannelView),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 404, description = "`channel_not_found`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_channel<S: Store + 'static>(
    who: Principal,
    state: web::Data<AppState<S>>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    path_text("channel_code", &code)?;
    who.require_channel(&code)?;
    let channel = state.hub.channel(&code).await?;
    Ok(HttpResponse::Ok().json(ChannelView::from(&channel)))
}

/// The OpenAPI document as served, rendered by the OpenAPI module and handed to [`openapi`] as
/// app data: the module that documents the handlers depends on them, never the other way.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenApiJson(pub(crate) &'static str);

/// The OpenAPI document of this API.
pub(crate) async fn openapi(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(doc.0)
}

static SWAGGER: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| Arc::new(Config::from(OPENAPI_PATH)));

/// `html` with every relative `href` and `src` (`./swagger-ui.css`, `index.css`) made absolute
/// under [`DOCS_PATH`]: the page is served at `/api/docs`, where a browser would resolve them
/// against `/api/`.
fn absolute_asset_links(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    while let Some(at) = ["href=\"", "src=\""].iter().filter_map(|a| rest.find(a).map(|i| i + a.len())).min() {
        let (before, value) = rest.split_at(at);
        out.push_str(before);
        let relative = !value.starts_with(['/', '#']) && !value.split('"').next().unwrap_or("").contains(':');
        if relative {
            out.push_str(DOCS_PATH);
            out.push('/');
            rest = value.strip_prefix("./").unwrap_or(value);
        } else {
            rest = value;
        }
    }
    out.push_str(rest);
    out
}

/// The interactive page: Swagger UI's `index.html`, with asset links made absolute so the page
/// works at `/api/docs` (trailing slashes are trimmed before routing).
pub(crate) async fn docs_index() -> HttpResponse {
    static INDEX: LazyLock<Option<String>> = LazyLock::new(|| {
        utoipa_swagger_ui::serve("index.html", Arc::clone(&SWAGGER))
            .ok()
            .flatten()
            .map(|file| absolute_asset_links(&String::from_utf8_lossy(&file.bytes)))
    });
    match INDEX.as_deref() {
        Some(html) => HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html),
        None => ApiError::internal(&"Swagger UI index.html is missing").error_response(),
    }
}

/// Swagger UI's assets, embedded in the binary.
pub(crate) async fn docs_asset(file: web::Path<String>) -> HttpResponse {
    match utoipa_swagger_ui::serve(&file, Arc::clone(&SWAGGER)) {
        Ok(Some(asset)) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(asset.bytes.into_owned()),
        Ok(None) => ApiError::route_not_found(&format!("{DOCS_PATH}/{file}")).error_response(),
        Err(e) => ApiError::internal(&e).error_response(),
    }
}

/// 404 `not_found` for every path no route matches.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::route_not_found(req.path()).error_response()
}
