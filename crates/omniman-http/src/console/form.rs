//! Posted forms: the fields, and the session and form token every console POST must carry.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use omniman_core::ports::Store;

use super::layout;
use super::session::{self, CSRF_FIELD, Signed};
use crate::state::AppState;

/// The fields of an `application/x-www-form-urlencoded` body, in order.
#[derive(Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    /// The fields of `body`; a body that is no form has none.
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed, `None` when absent or blank.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// The 403 page of a form without its token (or with another session's).
pub(crate) fn csrf_refused(signed: Option<&Signed>) -> HttpResponse {
    layout::error_page(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from this console; reload the page and try again.",
        signed,
    )
}

/// The operator and fields of a console POST: a valid session, and the form token derived from
/// it (compared in constant time). Otherwise the answer to send: to the sign-in page, or 403.
pub(crate) async fn posted<S: Store + 'static>(
    req: &HttpRequest,
    state: &AppState<S>,
    body: &[u8],
) -> Result<(Signed, Form), HttpResponse> {
    let signed = session::signed(req, state).await?;
    let form = Form::parse(body);
    let value = session::cookie(req, session::COOKIE).unwrap_or_default();
    match form.get(CSRF_FIELD) {
        Some(sent) if state.console.verify("csrf", value, sent) => Ok((signed, form)),
        _ => Err(csrf_refused(Some(&signed))),
    }
}
