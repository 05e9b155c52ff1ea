//! The operator console at `/console` (docs/console.md): server-rendered HTML pages over the
//! same service calls the API handlers make, for an admin signed in with an API token.
//!
//! - `session`: the signed, stateless session cookie, form tokens, and [`session::signed_in`],
//!   the check any `/console` route makes;
//! - `layout`: the page shell, error pages and form helpers;
//! - `form`: reading a posted form and checking its token;
//! - `orders`: the board (with its live fragment) and an order's page;
//! - `sessions`, `directives`, `manage` (channels and tokens), `stock`: the other pages.
//!
//! Every answer under `/console`, errors and assets included, carries [`security_headers`]: a
//! Content-Security-Policy that allows only the console's own script and stylesheet (so no
//! inline script or style anywhere), `nosniff`, and `Referrer-Policy: same-origin`.

mod directives;
mod form;
mod layout;
mod manage;
mod orders;
mod session;
mod sessions;
mod stock;
mod webhooks;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use omniman_core::ports::{Role, Store};

pub(crate) use session::ConsoleKey;
pub use stock::{StockLevels, StockRow};

use omniman_core::events::{EventFilter, EventType};

use crate::auth::hash_token;
use crate::handlers::events;
use crate::state::AppState;
use layout::Section;

/// The policy on every console answer.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// Whether a path is the console's.
fn is_console(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

/// Adds the console's security headers to every answer under `/console`, whichever layer
/// produced it (a 405 or 413 of the app's middleware too).
pub(crate) async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let console = is_console(req.path());
    let mut res = next.call(req).await?;
    if console {
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Ok(res)
}

/// Registers the console's routes under `/console`, with an HTML 404 for any other path there.
pub(crate) fn configure<S: Store + 'static>(cfg: &mut web::ServiceConfig) {
    let get = web::get;
    let post = web::post;
    cfg.service(
        web::scope("/console")
            .service(web::resource("").route(get().to(orders::board::<S>)))
            .service(web::resource("/board").route(get().to(orders::board::<S>)))
            .service(web::resource("/events").route(get().to(board_events::<S>)))
            .service(web::resource("/sign-in").route(get().to(sign_in_form::<S>)).route(post().to(sign_in::<S>)))
            .service(web::resource("/sign-out").route(post().to(sign_out::<S>)))
            .service(web::resource("/orders/{ref}").route(get().to(orders::order::<S>)))
            .service(web::resource("/orders/{ref}/transition").route(post().to(orders::transition::<S>)))
            .service(web::resource("/sessions").route(get().to(sessions::list::<S>)))
            .service(web::resource("/sessions/{channel}/{key}/resolve").route(post().to(sessions::resolve::<S>)))
            .service(web::resource("/directives").route(get().to(directives::list::<S>)))
            .service(web::resource("/directives/{id}/retry").route(post().to(directives::retry::<S>)))
            .service(web::resource("/channels").route(get().to(manage::channels::<S>)))
            .service(
                web::resource("/channels/{code}")
                    .route(get().to(manage::channel::<S>))
                    .route(post().to(manage::change_channel::<S>)),
            )
            .service(web::resource("/channels/{code}/deactivate").route(post().to(manage::deactivate::<S>)))
            .service(
                web::resource("/tokens")
                    .route(get().to(manage::tokens::<S>))
                    .route(post().to(manage::create_token::<S>)),
            )
            .service(web::resource("/tokens/{id}/revoke").route(post().to(manage::revoke_token::<S>)))
            .service(web::resource("/stock").route(get().to(stock::page::<S>)))
            .service(web::resource("/webhooks").route(get().to(webhooks::list::<S>)))
            .service(web::resource("/webhooks/{id}").route(get().to(webhooks::deliveries::<S>)))
            .service(web::resource("/webhooks/{id}/test").route(
                post().to(|req, state, id, body| webhooks::act::<S>(req, state, id, body, webhooks::Action::Test)),
            ))
            .service(web::resource("/webhooks/{id}/active").route(
                post().to(|req, state, id, body| webhooks::act::<S>(req, state, id, body, webhooks::Action::Active)),
            ))
            .service(web::resource("/webhooks/{id}/delete").route(
                post().to(|req, state, id, body| webhooks::act::<S>(req, state, id, body, webhooks::Action::Delete)),
            ))
            .service(web::resource("/assets/console.css").route(get().to(css)))
            .service(web::resource("/assets/console.js").route(get().to(js)))
            .default_service(web::to(not_found::<S>)),
    );
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    // Short-lived: a new version must reach operators soon after a deploy.
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .body(body)
}

async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

/// The board's live feed: the order events the signed-in operator may see, as `GET /api/events`
/// streams them (same filters, same resuming), authenticated by the console's cookie since an
/// `EventSource` cannot send a bearer token.
async fn board_events<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let who = match session::signed_in(&req, &state).await {
        Ok(who) => who,
        Err(answer) => return answer,
    };
    let Some(feed) = state.event_feed().cloned() else {
        // No log to follow: the board's script keeps polling.
        return HttpResponse::NotFound().finish();
    };
    let after = events::resume_after(&req, &crate::body::Query::default()).ok().flatten();
    let filter = EventFilter {
        types: Some(vec![EventType::OrderCreated, EventType::OrderStatusChanged]),
        channels: who.channels,
    };
    events::event_stream(feed, filter, after)
}

/// Any other path (or method) under `/console`.
async fn not_found<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let signed = session::signed(&req, &state).await.ok();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return layout::error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "this page does not take that method",
            signed.as_ref(),
        );
    }
    layout::error_page(StatusCode::NOT_FOUND, &format!("there is no console page at {}", req.path()), signed.as_ref())
}

/// The sign-in page.
async fn sign_in_form<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    sign_in_page(&req, &state, StatusCode::OK, None)
}

fn sign_in_page<S>(req: &HttpRequest, state: &AppState<S>, status: StatusCode, problem: Option<&str>) -> HttpResponse {
    let (cookie, csrf) = session::sign_in_cookie(req, state);
    let body = html! {
        @if let Some(problem) = problem {
            p class="error" role="alert" id="sign-in-error" { (problem) }
        }
        form class="card narrow" method="post" action="/console/sign-in" {
            input type="hidden" name=(session::CSRF_FIELD) value=(csrf);
            p {
                label for="token" { "Admin API token" }
                input id="token" name="token" type="password" autocomplete="off" required
                    aria-describedby="token-help";
            }
            p id="token-help" class="help" {
                "An admin token from " code { "omniman tokens create --role admin" } ". It is checked, never stored in the browser: "
                "you get a session cookie for this console only."
            }
            button type="submit" { "Sign in" }
        }
    };
    let mut res = layout::html_response(status, &layout::page("Sign in", Section::None, None, &body));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
    res
}

/// Checks the posted token: an unrevoked admin token signs in.
async fn sign_in<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    body: web::Bytes,
) -> HttpResponse {
    let fields = form::Form::parse(&body);
    if !session::sign_in_csrf_ok(&req, &state, fields.get(session::CSRF_FIELD)) {
        return form::csrf_refused(None);
    }
    let token = fields.get("token").unwrap_or_default().trim();
    if token.is_empty() {
        return sign_in_page(&req, &state, StatusCode::BAD_REQUEST, Some("Enter an admin API token."));
    }
    let hash = hash_token(token);
    let found = match state.hub.token_by_hash(&hash).await {
        Ok(found) => found.filter(|t| t.revoked_at.is_none()),
        Err(e) => return layout::api_error(&crate::error::ApiError::from(e), None),
    };
    match found {
        None => sign_in_page(&req, &state, StatusCode::UNAUTHORIZED, Some("Unknown or revoked token.")),
        Some(t) if t.role != Role::Admin => sign_in_page(
            &req,
            &state,
            StatusCode::FORBIDDEN,
            Some("This is a client token: the console needs an admin token."),
        ),
        Some(_) => {
            let mut res = layout::see_other("/console");
            let cookies = [
                session::session_cookie(&req, &state, &hash),
                session::set_cookie(&req, &state, session::SIGN_IN_COOKIE, "", 0),
            ];
            for cookie in cookies {
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    res.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            res
        }
    }
}

/// Deletes the session cookie. (The cookie is stateless: one copied before signing out stays
/// valid until it expires or its token is revoked.)
async fn sign_out<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(refused) = form::posted(&req, &state, &body).await {
        return refused;
    }
    let mut res = layout::see_other("/console/sign-in");
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(&req, &state, session::COOKIE, "", 0)) {
        res.headers_mut().append(header::SET_COOKIE, value);
    }
    res
}
