//! Open sessions: their items, checks and issues, each issue's actions as buttons that resolve
//! it through the service, as `POST /api/sessions/{key}/resolve` does.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use omniman_core::input::SessionRef;
use omniman_core::page::PageRequest;
use omniman_core::ports::{SessionFilter, Store};
use omniman_core::session::{Session, SessionState};
use serde_json::Value;

use super::form;
use super::layout::{self, Section};
use super::session::{self, Signed};
use crate::error::ApiError;
use crate::state::AppState;

/// Sessions shown, newest first.
const SHOWN: usize = 50;

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn session_card(s: &Session, signed: &Signed) -> Markup {
    let heading = layout::dom_id(&["session", &s.channel_code, &s.session_key]);
    html! {
        article class="card" aria-labelledby=(heading) {
            h2 id=(heading) { (s.session_key) " " span class="muted" { "on " (s.channel_code) } }
            dl class="facts" {
                @if let (Some(t), Some(r)) = (&s.handle_type, &s.handle_ref) { dt { "Handle" } dd { (t) " " (r) } }
                dt { "Rev" } dd { (s.rev) }
                dt { "Opened" } dd { (layout::time(s.opened_at)) }
            }
            h3 { "Items" }
            @if s.items.is_empty() {
                p class="empty" { "No items." }
            } @else {
                table {
                    thead { tr { th scope="col" { "SKU" } th scope="col" class="num" { "Qty" } th scope="col" class="num" { "Line total" } } }
                    tbody {
                        @for item in &s.items {
                            tr {
                                td { (item.sku) }
                                td class="num" { (item.qty) }
                                td class="num" { (item.line_total_q.map(omniman_core::money::format_q2).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
            h3 { "Checks" }
            @match s.checks().filter(|c| !c.is_empty()) {
                None => p class="empty" { "No check results." },
                Some(checks) => ul {
                    @for (name, check) in checks {
                        li { strong { (name) } " at rev " (check.get("rev").map(ToString::to_string).unwrap_or_default()) }
                    }
                },
            }
            h3 { "Issues" }
            @if s.issues().is_empty() {
                p class="empty" { "No issues." }
            } @else {
                ul class="issues" {
                    @for issue in s.issues() { li { (issue_item(s, issue, signed)) } }
                }
            }
        }
    }
}

fn issue_item(s: &Session, issue: &Value, signed: &Signed) -> Markup {
    let issue_id = text(issue, "id");
    let blocking = issue.get("blocking").and_then(Value::as_bool).unwrap_or(false);
    let actions = issue.pointer("/context/actions").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    let action = format!("/console/sessions/{}/{}/resolve", s.channel_code, s.session_key);
    html! {
        p {
            strong { (text(issue, "code")) }
            @if blocking { " " span class="badge bad" { "blocking" } }
            " " (text(issue, "message"))
        }
        @if !actions.is_empty() {
            div class="actions" {
                @for a in actions {
                    (layout::post_button(
                        &action,
                        text(a, "label"),
                        &[("issue_id", issue_id), ("action_id", text(a, "id"))],
                        signed,
                        &layout::dom_id(&["resolve", issue_id, text(a, "id")]),
                    ))
                }
            }
        }
    }
}

/// `GET /console/sessions`.
pub(crate) async fn list<S: Store + 'static>(req: HttpRequest, state: web::Data<AppState<S>>) -> HttpResponse {
    let signed = match session::signed(&req, &state).await {
        Ok(signed) => signed,
        Err(res) => return res,
    };
    let filter = SessionFilter { state: Some(SessionState::Open), ..SessionFilter::default() };
    let page = match state.hub.sessions(&filter, &PageRequest::new(None, SHOWN)).await {
        Ok(page) => page,
        Err(e) => return layout::api_error(&ApiError::from(e), Some(&signed)),
    };
    let body = html! {
        p class="help" { "The " (SHOWN) " newest open sessions." }
        @if page.items.is_empty() { p class="empty" { "No open sessions." } }
        div class="stack" { @for s in &page.items { (session_card(s, &signed)) } }
    };
    layout::ok_page("Open sessions", Section::Sessions, &signed, &body)
}

/// `POST /console/sessions/{channel}/{key}/resolve`: `issue_id` and `action_id`.
pub(crate) async fn resolve<S: Store + 'static>(
    req: HttpRequest,
    state: web::Data<AppState<S>>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (signed, fields) = match form::posted(&req, &state, &body).await {
        Ok(posted) => posted,
        Err(res) => return res,
    };
    let (channel, key) = path.into_inner();
    let at = match SessionRef::parse(&channel, &key) {
        Ok(at) => at,
        Err(e) => return layout::api_error(&ApiError::validation(&e), Some(&signed)),
    };
    let (issue_id, action_id) =
        (fields.text("issue_id").unwrap_or_default(), fields.text("action_id").unwrap_or_default());
    let caller = state.caller(&signed.principal.name);
    match state.hub.resolve_issue(&at, issue_id, action_id, None, &caller).await {
        Ok(_) => layout::see_other("/console/sessions"),
        Err(e) => layout::api_error(&ApiError::from(e), Some(&signed)),
    }
}
