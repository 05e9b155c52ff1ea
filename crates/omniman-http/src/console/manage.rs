//! Channels (list, edit, deactivate) and API tokens (list, issue, revoke).
//!
//! A posted form becomes the JSON object the API's `PATCH /api/channels/{code}` or
//! `POST /api/tokens` body would be, read by the same request reader and handed to the same
//! service call, so the rules and their messages are the API's.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use maud::{Markup, html};
use omniman_core::channel::Channel;
use omniman_core::ports::Store;
use omniman_core::service::ChannelChange;
use serde_json::{Map, Value};

use super::form::{self, Form};
use super::layout::{self, Section};
use super::session::{self, Signed};
use crate::auth::{generate_token, hash_token};
use crate::error::ApiError;
use crate::handlers::manage::token_id;
use crate::requests::{ChangeChannelRequest, CreateTokenRequest, decode_with};
use crate::state::AppState;

/// `GET /console/channels`.
pub(crate) async fn channels<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    let mut channels = match state.hub.channels().await {
        Ok(channels) => channels,
        Err(e) => return layout::api_error(&ApiError::from(e), Some(&signed)),
    };
    channels.sort_by_key(|c| c.display_order);
    let body = html! {
        @if channels.is_empty() { p class="empty" { "No channels yet." } }
        table class="wide" {
            caption { "Channels by display order" }
            thead { tr {
                th scope="col" { "Code" } th scope="col" { "Name" } th scope="col" { "Pricing" }
                th scope="col" { "Editing" } th scope="col" { "Active" } th scope="col" { span class="visually-hidden" { "Actions" } }
            } }
            tbody {
                @for c in &channels {
                    tr {
                        td { (c.code) } td { (c.name) } td { (c.pricing_policy.as_str()) } td { (c.edit_policy.as_str()) }
                        td { @if c.is_active { "yes" } @else { span class="badge bad" { "inactive" } } }
                        td { a href={ "/console/channels/" (c.code) } id=(layout::dom_id(&["edit", &c.code])) { "View and edit " span class="visually-hidden" { (c.code) } } }
                    }
                }
            }
        }
    };
    layout::ok_page("Channels", Section::Channels, &signed, &body)
}

/// What the edit form shows: the stored channel, or what was posted with the refusal.
struct ChannelForm<'a> {
    name: &'a str,
    pricing_policy: &'a str,
    edit_policy: &'a str,
    display_order: String,
    config: String,
    is_active: bool,
}

impl<'a> ChannelForm<'a> {
    fn stored(c: &'a Channel) -> ChannelForm<'a> {
        ChannelForm {
            name: &c.name,
            pricing_policy: c.pricing_policy.as_str(),
            edit_policy: c.edit_policy.as_str(),
            display_order: c.display_order.to_string(),
            config: serde_json::to_string_pretty(&Value::Object(c.config.raw().clone())).unwrap_or_default(),
            is_active: c.is_active,
        }
    }

    fn posted(f: &'a Form) -> ChannelForm<'a> {
        ChannelForm {
            name: f.get("name").unwrap_or_default(),
            pricing_policy: f.get("pricing_policy").unwrap_or_default(),
            edit_policy: f.get("edit_policy").unwrap_or_default(),
            display_order: f.get("display_order").unwrap_or_default().to_owned(),
            config: f.get("config").unwrap_or_default().to_owned(),
            is_active: f.get("is_active").is_some(),
        }
    }
}

fn select(id: &str, options: &[&str], chosen: &str) -> Markup {
    html! { select id=(id) name=(id) { @for o in options { option value=(o) selected[*o == chosen] { (o) } } } }
}

fn channel_page(code: &str, values: &ChannelForm<'_>, problem: Option<&str>, signed: &Signed) -> Markup {
    let action = format!("/console/channels/{code}");
    let body = html! {
        @if let Some(problem) = problem { p class="error" role="alert" id="channel-error" { (problem) } }
        form class="card" method="post" action=(action) {
            (layout::csrf_field(signed))
            p { label for="name" { "Name" } input id="name" name="name" type="text" maxlength="128" value=(values.name); }
            p { label for="pricing_policy" { "Pricing policy" } (select("pricing_policy", &["internal", "external"], values.pricing_policy)) }
            p { label for="edit_policy" { "Edit policy" } (select("edit_policy", &["open", "locked"], values.edit_policy)) }
            p { label for="display_order" { "Display order" } input id="display_order" name="display_order" type="number" min="0" value=(values.display_order); }
            p { label for="config" { "Configuration (JSON object)" } textarea id="config" name="config" rows="14" spellcheck="false" { (values.config) } }
            p class="check" { input id="is_active" name="is_active" type="checkbox" checked[values.is_active]; label for="is_active" { "Active (accepts new sessions)" } }
            button type="submit" id="save-channel" { "Save" }
        }
        @if values.is_active {
            (layout::post_button(&format!("/console/channels/{code}/deactivate"), "Deactivate", &[], signed, "deactivate-channel"))
        }
    };
    layout::page(&format!("Channel {code}"), Section::Channels, Some(signed), &body)
}

/// `GET /console/channels/{code}`.
pub(crate) async fn channel<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    code: web::Path<String>,
) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    match state.hub.channel(&code).await {
        Ok(c) => layout::html_response(StatusCode::OK, &channel_page(&code, &ChannelForm::stored(&c), None, &signed)),
        Err(e) => layout::api_error(&ApiError::from(e), Some(&signed)),
    }
}

/// The `PATCH /api/channels/{code}` body a posted edit form stands for.
fn change_body(f: &Form) -> Result<Map<String, Value>, ApiError> {
    let mut body = Map::new();
    for key in ["name", "pricing_policy", "edit_policy"] {
        if let Some(value) = f.get(key) {
            body.insert(key.into(), value.trim().into());
        }
    }
    if let Some(order) = f.text("display_order") {
        // Not a number: sent as text, for the reader's own message.
        let value = order.parse::<i64>().map_or_else(|_| Value::from(order), Value::from);
        body.insert("display_order".into(), value);
    }
    let config = f.text("config").unwrap_or("{}");
    let config: Value =
        serde_json::from_str(config).map_err(|e| ApiError::field("config", &format!("is not JSON: {e}")))?;
    body.insert("config".into(), config);
    body.insert("is_active".into(), f.get("is_active").is_some().into());
    Ok(body)
}

/// `POST /console/channels/{code}`: the edit form.
pub(crate) async fn change_channel<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    code: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (signed, fields) = match form::posted(&req, &state, &body).await {
        Ok(posted) => posted,
        Err(res) => return res,
    };
    let change = change_body(&fields)
        .and_then(|body| decode_with::<ChangeChannelRequest, ()>(&body, &req, |_| Some(())))
        .map(|(request, ())| ChannelChange::from(request));
    let result = match change {
        Ok(change) => state.hub.change_channel(&code, change).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => layout::see_other("/console/channels"),
        Err(e) if e.status_code() == StatusCode::BAD_REQUEST => {
            let page = channel_page(&code, &ChannelForm::posted(&fields), Some(e.message()), &signed);
            layout::html_response(StatusCode::BAD_REQUEST, &page)
        }
        Err(e) => layout::api_error(&e, Some(&signed)),
    }
}

/// `POST /console/channels/{code}/deactivate`.
pub(crate) async fn deactivate<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    code: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (signed, _) = match form::posted(&req, &state, &body).await {
        Ok(posted) => posted,
        Err(res) => return res,
    };
    match state.hub.change_channel(&code, ChannelChange { is_active: Some(false), ..ChannelChange::default() }).await {
        Ok(_) => layout::see_other("/console/channels"),
        Err(e) => layout::api_error(&ApiError::from(e), Some(&signed)),
    }
}

fn token_form(signed: &Signed, problem: Option<&str>, posted: Option<&Form>) -> Markup {
    let value = |name: &str| posted.and_then(|f| f.get(name)).unwrap_or_default().to_owned();
    let role = posted.and_then(|f| f.get("role")).unwrap_or("client");
    html! {
        section class="card" aria-labelledby="new-token" {
            h2 id="new-token" { "Issue a token" }
            @if let Some(problem) = problem { p class="error" role="alert" id="token-error" { (problem) } }
            form method="post" action="/console/tokens" {
                (layout::csrf_field(signed))
                p { label for="token-name" { "Name" } input id="token-name" name="name" type="text" maxlength="128" required value=(value("name")); }
                p { label for="token-role" { "Role" } (select("role", &["client", "admin"], role)) }
                p { label for="token-channels" { "Channels (comma-separated; empty: every channel)" }
                    input id="token-channels" name="channels" type="text" value=(value("channels")); }
                p { label for="token-rate-limit" { "Rate limits (e.g. modify=300/min,commit=60/min; empty: the server's)" }
                    input id="token-rate-limit" name="rate_limit" type="text" value=(value("rate_limit")); }
                button type="submit" id="issue-token" { "Issue token" }
            }
        }
    }
}

async fn tokens_page<S: Store + 'static>(
    state: &AppState<S>,
    signed: &Signed,
    status: StatusCode,
    form: &Markup,
) -> HttpResponse {
    let tokens = match state.hub.tokens().await {
        Ok(tokens) => tokens,
        Err(e) => return layout::api_error(&ApiError::from(e), Some(signed)),
    };
    let body = html! {
        (form)
        table class="wide" {
            caption { "Every token, revoked ones included; secrets are never shown again" }
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "Channels" }
                th scope="col" { "Created" } th scope="col" { "Revoked" } th scope="col" { span class="visually-hidden" { "Actions" } }
            } }
            tbody {
                @for t in &tokens {
                    tr {
                        td { (t.id) } td { (t.name) } td { (t.role.as_str()) }
                        td { (t.channels.as_ref().map_or_else(|| "all".to_owned(), |c| c.join(", "))) }
                        td { (layout::time(t.created_at)) }
                        td { @if let Some(at) = t.revoked_at { (layout::time(at)) } @else { "—" } }
                        td {
                            @if t.revoked_at.is_none() {
                                (layout::post_button(&format!("/console/tokens/{}/revoke", t.id), "Revoke", &[], signed, &format!("revoke-{}", t.id)))
                            }
                        }
                    }
                }
            }
        }
    };
    layout::html_response(status, &layout::page("Tokens", Section::Tokens, Some(signed), &body))
}

/// `GET /console/tokens`.
pub(crate) async fn tokens<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    tokens_page(&state, &signed, StatusCode::OK, &token_form(&signed, None, None)).await
}

/// The `POST /api/tokens` body a posted form stands for.
fn token_body(f: &Form) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("name".into(), f.get("name").unwrap_or_default().into());
    body.insert("role".into(), f.get("role").unwrap_or_default().into());
    if let Some(channels) = f.text("channels") {
        let codes: Vec<Value> = channels.split(',').map(str::trim).filter(|c| !c.is_empty()).map(Value::from).collect();
        body.insert("channels".into(), codes.into());
    }
    if let Some(limits) = f.text("rate_limit") {
        body.insert("rate_limit".into(), limits.into());
    }
    body
}

/// `POST /console/tokens`: issues a token and shows its secret, once.
pub(crate) async fn create_token<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    body: web::Bytes,
) -> HttpResponse {
    let (signed, fields) = match form::posted(&req, &state, &body).await {
        Ok(posted) => posted,
        Err(res) => return res,
    };
    let secret = generate_token();
    let issued = match decode_with::<CreateTokenRequest, ()>(&token_body(&fields), &req, |_| Some(())) {
        Ok((request, ())) => state.hub.issue_token(request.into(), hash_token(&secret)).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match issued {
        Ok(token) => {
            let body = html! {
                section class="card" aria-labelledby="secret-heading" {
                    h2 id="secret-heading" { "Secret of " (token.name) " (" (token.role.as_str()) ")" }
                    p { "Copy it now: it is shown this once, and only its hash is kept." }
                    p { label for="secret" { "Token" } input id="secret" type="text" readonly value=(secret); }
                    p { a href="/console/tokens" { "Back to the tokens" } }
                }
            };
            let page = layout::page("Token issued", Section::Tokens, Some(&signed), &body);
            layout::html_response(StatusCode::CREATED, &page)
        }
        Err(e) if e.status_code().is_client_error() && e.status_code() != StatusCode::FORBIDDEN => {
            let status = e.status_code();
            let form = token_form(&signed, Some(e.message()), Some(&fields));
            tokens_page(&state, &signed, status, &form).await
        }
        Err(e) => layout::api_error(&e, Some(&signed)),
    }
}

/// `POST /console/tokens/{id}/revoke`.
pub(crate) async fn revoke_token<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let (signed, _) = match form::posted(&req, &state, &body).await {
        Ok(posted) => posted,
        Err(res) => return res,
    };
    let id = match token_id(&id) {
        Ok(id) => id,
        Err(e) => return layout::api_error(&e, Some(&signed)),
    };
    match state.hub.revoke_token_by_id(id).await {
        Ok(_) => layout::see_other("/console/tokens"),
        Err(e) => layout::api_error(&ApiError::from(e), Some(&signed)),
    }
}
