//! The middleware stack: request id + tracing span + access log + slow-request warning +
//! metrics + rate-limit headers ([`observe`]), the body size limit ([`limit_body`]) and the JSON
//! form of actix's 405 ([`method_not_allowed`]).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, Next};
use actix_web::{HttpMessage, HttpRequest, ResponseError, web};
use tracing::Instrument;

use crate::error::ApiError;
use crate::metrics::{Metrics, method_label};
use crate::ratelimit::RateLimitStatus;

/// The request id header, taken from the client when sensible, else generated.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the current request (in the request's extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// What the middleware needs, shared as app data.
#[derive(Clone, Debug)]
pub(crate) struct Observe {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) slow_request: Duration,
    pub(crate) body_limit: usize,
    pub(crate) body_timeout: Duration,
}

fn incoming_request_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(REQUEST_ID_HEADER)?.to_str().ok()?.trim();
    let sensible = !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    sensible.then(|| value.to_owned())
}

fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn rate_limit_headers(status: &RateLimitStatus) -> [(HeaderName, HeaderValue); 4] {
    [
        (HeaderName::from_static("ratelimit-limit"), HeaderValue::from(status.limit)),
        (HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(status.remaining)),
        (HeaderName::from_static("ratelimit-reset"), HeaderValue::from(status.reset_secs)),
        (
            HeaderName::from_static("ratelimit-policy"),
            HeaderValue::from_str(&format!("{};w={}", status.limit, status.window_secs))
                .unwrap_or(HeaderValue::from_static("")),
        ),
    ]
}

/// `duration` in milliseconds, whole microseconds only, as logs and readiness report it: the
/// plain float conversion prints noise such as `0.050065000000000005`.
pub(crate) fn millis(duration: Duration) -> f64 {
    // Whole microseconds are exact in an f64 far beyond any request's duration.
    #[expect(clippy::cast_precision_loss)]
    let micros = duration.as_micros() as f64;
    micros / 1000.0
}

/// The outermost middleware: request id, a tracing span around everything the request does,
/// one log line per request (`warn` when slow), request metrics, and `RateLimit-*` headers.
pub(crate) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let settings = req.app_data::<web::Data<Observe>>().cloned();
    let request_id = incoming_request_id(&req).unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = method_label(req.method());
    // At `error` level so that the span is on whatever the log filter: every line a request
    // logs, an error under `OMNIMAN_LOG=warn` included, carries its request id.
    let span = tracing::error_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
        principal = tracing::field::Empty,
    );
    let started = Instant::now();
    // Nothing may hold the request while the inner services run: routing rewrites it in place.
    let mut res = match next.call(req).instrument(span.clone()).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(err) => {
            // Handlers' and extractors' errors arrive as responses; only a failing middleware
            // ends up here, and actix renders the error itself.
            let status = err.as_response_error().status_code().as_u16();
            if let Some(settings) = &settings {
                settings.metrics.observe_request(method, "unmatched", status, started.elapsed());
            }
            span.in_scope(|| tracing::warn!(status, error = %err, "request failed in middleware"));
            return Err(err);
        }
    };
    let elapsed = started.elapsed();
    let status = res.status().as_u16();
    let route = route_pattern(res.request());
    if let Some(settings) = &settings {
        settings.metrics.observe_request(method, &route, status, elapsed);
    }
    let latency_ms = millis(elapsed);
    span.in_scope(|| {
        if settings.as_ref().is_some_and(|s| elapsed > s.slow_request) {
            tracing::warn!(status, latency_ms, route = %route, "slow request");
        } else {
            tracing::info!(status, latency_ms, route = %route, "request");
        }
    });
    let limit = res.request().extensions().get::<RateLimitStatus>().cloned();
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    if let Some(limit) = limit {
        for (name, value) in rate_limit_headers(&limit) {
            headers.insert(name, value);
        }
    }
    Ok(res)
}

/// Refuses a declared `Content-Length` above the limit before anything reads the body (bodies
/// without one are bounded while they are read).
pub(crate) async fn limit_body(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let limit = req.app_data::<web::Data<Observe>>().map(|o| o.body_limit);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let (Some(limit), Some(declared)) = (limit, declared) {
        if declared > limit as u64 {
            let response = ApiError::payload_too_large(limit).error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Turns actix's empty 405 into the JSON error, keeping its `Allow` header.
#[expect(clippy::unnecessary_wraps)] // the signature `ErrorHandlers` expects
pub(crate) fn method_not_allowed<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let allow = res.headers().get(header::ALLOW).cloned();
    let method = res.request().method().to_string();
    let (req, _) = res.into_parts();
    let response = ApiError::method_not_allowed(&method, allow).error_response();
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, response).map_into_right_body()))
}

/// The route pattern a request matched (`/api/sessions/{key}/modify`), or `unmatched`. actix
/// matches the path against every pattern again on each `HttpRequest::match_pattern` call, so
/// the answer is kept in the request's extensions: the rate limiter and the metrics of one
/// request share it.
pub fn route_pattern(req: &HttpRequest) -> Rc<str> {
    if let Some(MatchedRoute(pattern)) = req.extensions().get::<MatchedRoute>() {
        return Rc::clone(pattern);
    }
    let pattern: Rc<str> = req.match_pattern().map_or_else(|| Rc::from("unmatched"), Rc::from);
    req.extensions_mut().insert(MatchedRoute(Rc::clone(&pattern)));
    pattern
}

/// [`route_pattern`]'s answer, kept for the rest of the request.
#[derive(Clone, Debug)]
struct MatchedRoute(Rc<str>);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::millis;

    #[test]
    fn durations_are_milliseconds_with_at_most_three_decimals() {
        assert_eq!(millis(Duration::from_nanos(50_065)).to_string(), "0.05");
        assert_eq!(millis(Duration::from_nanos(1_204_500_999)).to_string(), "1204.5");
        assert_eq!(millis(Duration::from_micros(1_234_567)).to_string(), "1234.567");
        assert_eq!(millis(Duration::ZERO).to_string(), "0");
    }
}
