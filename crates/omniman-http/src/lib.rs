//! # omniman-http
//!
//! The REST adapter of Omniman (docs/api.md; docs/reference.md §11): actix-web routes under `/api`, bearer-token auth,
//! one error type for every failure, pagination, ETags, rate limits, metrics and a generated
//! OpenAPI document with an interactive page. Handlers are thin: they read and check the
//! request, call [`omniman_core::Omniman`], and shape the answer. Everything is generic over the
//! store, so the adapter depends on the core only.
//!
//! ```no_run
//! use std::sync::Arc;
//! use omniman_core::prelude::*;
//! use omniman_core::memory::InMemoryStore;
//! use omniman_http::{AppState, HttpConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let hub = Arc::new(Omniman::new(InMemoryStore::new(), Extensions::default()));
//! let state = AppState::new(hub, HttpConfig::default());
//! actix_web::HttpServer::new(move || omniman_http::app(state.clone())).bind(("127.0.0.1", 8080))?.run().await
//! # }
//! ```

mod auth;
mod body;
mod config;
mod console;
mod error;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod handlers;
mod metrics;
mod middleware;
mod openapi;
mod pagination;
mod ratelimit;
pub mod requests;
mod routes;
mod state;
pub mod views;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{Compress, DefaultHeaders, ErrorHandlerResponse, ErrorHandlers, NormalizePath, from_fn};
use actix_web::{App, web};
use omniman_core::ports::Store;

pub use auth::{Principal, TOKEN_PREFIX, generate_token, hash_token};
pub use config::{
    ConsoleSecret, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_DATA_MAX_DEPTH, DEFAULT_SLOW_REQUEST, HttpConfig,
};
pub use console::{StockLevels, StockRow};
pub use error::{ApiError, ErrorBody, ErrorDetail, status_of};
pub use metrics::{Metrics, PoolProbe, PoolUsage};
pub use middleware::{REQUEST_ID_HEADER, RequestId, route_pattern};
pub use openapi::ApiDoc;
pub use ratelimit::{
    Rate, RateLimitBackend, RateLimitParseError, RateLimitStatus, RateLimits, RouteClass, parse_rate_limits,
};
pub use routes::{ROUTES, Route};
pub use state::{AlwaysReady, AppState, CheckStatus, Readiness, ReadinessCheck};

use crate::auth::AuthGate;
use crate::handlers::meta;
use crate::middleware::Observe;
use crate::state::TokenLookup;

/// Turns the compression middleware's plain-text 406 into the JSON error.
#[expect(clippy::unnecessary_wraps)] // the signature `ErrorHandlers` expects
fn not_acceptable<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let (req, _) = res.into_parts();
    let accept =
        req.headers().get(actix_web::http::header::ACCEPT_ENCODING).map(|v| v.to_str().unwrap_or("<not ASCII>"));
    let response = actix_web::ResponseError::error_response(&ApiError::not_acceptable(accept));
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, response).map_into_right_body()))
}

/// Registers the shared data and every route of [`ROUTES`] (docs/api.md) on `cfg`, and a JSON 404
/// for every other path.
///
/// This is the routing alone: [`app`] adds the middleware the contract relies on (optional
/// trailing slash, JSON 405 with `Allow`, the body limit, compression, request ids, logs and
/// metrics).
pub fn configure<S: Store + 'static>(cfg: &mut web::ServiceConfig, state: AppState<S>) {
    let tokens: Arc<dyn TokenLookup> = state.hub.clone();
    let gate = AuthGate { tokens, limiter: Arc::clone(&state.limiter) };
    let observe = Observe {
        metrics: Arc::clone(&state.metrics),
        slow_request: state.config.slow_request,
        body_limit: state.config.body_limit,
        body_timeout: state.config.body_timeout,
    };
    cfg.app_data(web::Data::new(state))
        .app_data(web::Data::new(gate))
        .app_data(web::Data::new(observe))
        .app_data(web::Data::new(meta::OpenApiJson(openapi::served_json())));
    routes::register::<S>(cfg);
    console::configure::<S>(cfg);
    cfg.default_service(web::to(meta::not_found));
}

/// The whole application: [`configure`] plus the middleware stack, outermost first:
/// trailing-slash trimming, request id / tracing span / access log / slow-request warning /
/// metrics / `RateLimit-*` headers, `X-Content-Type-Options: nosniff` and `Cache-Control:
/// no-store` (unless a handler set its own), compression (gzip, brotli), the JSON 405, and the
/// body size limit.
pub fn app<S: Store + 'static>(
    state: AppState<S>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .configure(|cfg| configure(cfg, state))
        .wrap(from_fn(middleware::limit_body))
        .wrap(ErrorHandlers::new().handler(StatusCode::METHOD_NOT_ALLOWED, middleware::method_not_allowed))
        .wrap(Compress::default())
        // Outside compression, which answers a bare-text 406 when no encoding is acceptable.
        .wrap(ErrorHandlers::new().handler(StatusCode::NOT_ACCEPTABLE, not_acceptable))
        // Set unless a handler chose its own (the docs assets are cacheable).
        .wrap(
            DefaultHeaders::new()
                .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .add((header::CACHE_CONTROL, "no-store")),
        )
        .wrap(from_fn(middleware::observe))
        // The console's security headers on all its answers, errors from the layers above included.
        .wrap(from_fn(console::security_headers))
        // Outermost: the path is normalised before anything looks at it (and before anything
        // holds the request, which it rewrites in place).
        .wrap(NormalizePath::trim())
}
