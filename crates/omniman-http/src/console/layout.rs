//! The page shell every console page shares (head, skip link, navigation, sign-out), the error
//! pages, the form helpers, and small formatters.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::{CSRF_FIELD, Signed};
use crate::error::ApiError;

/// The console's sections, in navigation order: (path, label).
const SECTIONS: &[(Section, &str, &str)] = &[
    (Section::Board, "/console", "Board"),
    (Section::Sessions, "/console/sessions", "Open sessions"),
    (Section::Directives, "/console/directives", "Directives"),
    (Section::Channels, "/console/channels", "Channels"),
    (Section::Tokens, "/console/tokens", "Tokens"),
    (Section::Stock, "/console/stock", "Stock"),
    (Section::Webhooks, "/console/webhooks", "Webhooks"),
];

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    Board,
    Sessions,
    Directives,
    Channels,
    Tokens,
    Stock,
    Webhooks,
    None,
}

/// A whole page: `title` is its `<h1>` too.
pub(crate) fn page(title: &str, section: Section, signed: Option<&Signed>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Omniman console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    p class="brand" { "Omniman console" }
                    @if let Some(signed) = signed {
                        nav aria-label="Console sections" {
                            ul {
                                @for (entry, path, label) in SECTIONS {
                                    li {
                                        @if *entry == section {
                                            a href=(path) aria-current="page" { (label) }
                                        } @else {
                                            a href=(path) { (label) }
                                        }
                                    }
                                }
                            }
                        }
                        form class="sign-out" method="post" action="/console/sign-out" {
                            (csrf_field(signed))
                            span class="who" { "Signed in as " strong { (signed.principal.name) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An HTML answer (the middleware adds the security headers; pages are never cached).
pub(crate) fn html_response(status: StatusCode, markup: &Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.clone().into_string())
}

/// A 200 page.
pub(crate) fn ok_page(title: &str, section: Section, signed: &Signed, body: &Markup) -> HttpResponse {
    html_response(StatusCode::OK, &page(title, section, Some(signed), body))
}

/// An error page: the status, what went wrong, and a way back.
pub(crate) fn error_page(status: StatusCode, message: &str, signed: Option<&Signed>) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        p class="error" role="alert" { (message) }
        p { a href="/console" { "Back to the board" } }
    };
    html_response(status, &page(title, Section::None, signed, &body))
}

/// The page of an error the service (or a request check) answered, with the API's message.
pub(crate) fn api_error(err: &ApiError, signed: Option<&Signed>) -> HttpResponse {
    error_page(err.status_code(), &format!("{} ({})", err.message(), err.code()), signed)
}

/// `303 See Other` to `location` (after a form, so reloading the page does not post again).
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// Where a request without a valid session goes.
pub(crate) fn to_sign_in() -> HttpResponse {
    see_other("/console/sign-in")
}

/// The hidden form token field.
pub(crate) fn csrf_field(signed: &Signed) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(signed.csrf); }
}

/// A form of one button posting `fields` to `action`.
pub(crate) fn post_button(action: &str, label: &str, fields: &[(&str, &str)], signed: &Signed, id: &str) -> Markup {
    html! {
        form class="inline" method="post" action=(action) {
            (csrf_field(signed))
            @for (name, value) in fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" id=(id) { (label) }
        }
    }
}

/// An amount in hundredths with its currency: `23.00 BRL`.
pub(crate) fn money(total_q: i64, currency: &str) -> String {
    format!("{} {currency}", omniman_core::money::format_q2(total_q))
}

/// How long ago, coarsely: `< 1 min`, `12 min`, `3 h`, `2 d` (so the live board's text changes
/// at most once a minute when nothing else does).
pub(crate) fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        0..60 => "< 1 min".to_owned(),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

/// A timestamp as shown: `2026-12-06 10:15:02 UTC`, in a `<time>` element.
pub(crate) fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// JSON, indented, in a `<pre>`.
pub(crate) fn json_block(value: &serde_json::Value) -> Markup {
    html! { pre class="json" { (serde_json::to_string_pretty(value).unwrap_or_default()) } }
}

/// A fragment-safe id: letters, digits and `-` only.
pub(crate) fn dom_id(parts: &[&str]) -> String {
    parts.join("-").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}
