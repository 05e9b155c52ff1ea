//! Route handlers: extract and validate input, call the service, shape the answer.

pub(crate) mod admin;
pub(crate) mod events;
pub(crate) mod manage;
pub(crate) mod meta;
pub(crate) mod orders;
pub(crate) mod sessions;
pub(crate) mod webhooks;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use omniman_core::channel::Channel;
use omniman_core::ports::Store;
use omniman_core::session::{Precondition, Session};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::SessionView;

/// A session answer with its `ETag`.
pub(crate) fn session_response(status: StatusCode, session: &Session) -> HttpResponse {
    HttpResponse::build(status).insert_header((header::ETAG, session.etag())).json(SessionView::from(session))
}

/// An `If-Match` header: the parsed precondition and the value exactly as sent.
#[derive(Clone, Debug)]
pub(crate) struct IfMatch {
    pub(crate) precondition: Precondition,
    raw: String,
}

impl IfMatch {
    /// `precondition_failed.context.expected` is the header as sent (the parsed form may
    /// normalise it, e.g. drop a `W/` prefix).
    pub(crate) fn as_sent(if_match: Option<&IfMatch>, err: ApiError) -> ApiError {
        match if_match {
            Some(m) if err.code() == omniman_core::error::Code::PreconditionFailed => {
                err.with_context("expected", m.raw.as_str())
            }
            _ => err,
        }
    }
}

/// The `If-Match` precondition, if any.
pub(crate) fn if_match(req: &HttpRequest) -> Option<IfMatch> {
    req.headers().get(header::IF_MATCH).map(|v| {
        let raw = String::from_utf8_lossy(v.as_bytes()).into_owned();
        IfMatch { precondition: Precondition::parse(&raw), raw }
    })
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak validators compare equal.
pub(crate) fn if_none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers().get_all(header::IF_NONE_MATCH).filter_map(|v: &HeaderValue| v.to_str().ok()).any(|v| {
        v.split(',').map(str::trim).any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
    })
}

/// The channels a list may show: the requested one (403 if not allowed, 400 `unknown_channel`
/// if it does not exist, as everywhere else a request names a missing channel), else the
/// principal's channels, else all (`None`).
pub(crate) async fn channel_scope<S: Store + 'static>(
    state: &AppState<S>,
    who: &Principal,
    requested: Option<&str>,
) -> Result<Option<Vec<Channel>>, ApiError> {
    if let Some(code) = requested {
        who.require_channel(code)?;
        return Ok(Some(vec![state.hub.named_channel(code).await?]));
    }
    let Some(codes) = &who.channels else { return Ok(None) };
    let channels = state.hub.channels().await?;
    Ok(Some(channels.into_iter().filter(|c| codes.contains(&c.code)).collect()))
}

/// The ids of a channel scope, as the store's filters take them.
pub(crate) fn channel_ids(scope: Option<&[Channel]>) -> Option<Vec<i64>> {
    scope.map(|channels| channels.iter().map(|c| c.id).collect())
}
