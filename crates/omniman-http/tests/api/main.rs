//! HTTP tests of the whole application (`omniman_http::app`) over the in-memory store.

#[macro_use]
mod common;

mod addressing;
mod amounts;
mod auth;
mod commit;
mod console;
mod limits;
mod manage;
mod meta;
mod nul;
mod openapi;
mod order_data;
mod orders;
mod pagination;
mod properties;
mod resolve;
mod sessions;
mod transport;
mod walkthrough;
mod webhooks;
