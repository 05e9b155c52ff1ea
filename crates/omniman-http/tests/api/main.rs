//! HTTP tests of the whole application (`omniman_http::app`) over the in-memory store.

#[macro_use]
mod common;

mod auth;
mod commit;
mod meta;
mod openapi;
mod orders;
mod pagination;
mod resolve;
mod sessions;
mod transport;
mod walkthrough;
