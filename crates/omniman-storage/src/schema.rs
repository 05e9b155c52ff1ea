//! Diesel table definitions for both backends.
//!
//! The tables are written once (in `omniman_tables!`) and instantiated in two modules whose
//! type aliases pick the backend's SQL types:
//!
//! | alias | [`pg`] | [`sqlite`] |
//! |---|---|---|
//! | `JsonDoc` | `Jsonb` | `Json` (stored as `TEXT`, checked with `json_valid`) |
//! | `Ts` | `Timestamptz` | `TimestamptzSqlite` (UTC text) |
//!
//! Both map to the same Rust types (`serde_json::Value`, `chrono::DateTime<Utc>`), so row
//! structs and query code can be shared. The definitions must match
//! `migrations/{postgres,sqlite}/*/up.sql`; the migration tests check that every column
//! declared here can be selected from a freshly migrated database.

macro_rules! omniman_tables {
    () => {
        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            channels (id) {
                id -> BigInt,
                code -> Text,
                name -> Text,
                pricing_policy -> Text,
                edit_policy -> Text,
                display_order -> Integer,
                config -> JsonDoc,
                is_active -> Bool,
                created_at -> Ts,
                updated_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            sessions (id) {
                id -> BigInt,
                channel_id -> BigInt,
                session_key -> Text,
                handle_type -> Nullable<Text>,
                handle_ref -> Nullable<Text>,
                state -> Text,
                pricing_policy -> Text,
                edit_policy -> Text,
                rev -> BigInt,
                version -> BigInt,
                items -> JsonDoc,
                data -> JsonDoc,
                pricing -> JsonDoc,
                pricing_trace -> JsonDoc,
                commit_token -> Nullable<Text>,
                opened_at -> Ts,
                updated_at -> Ts,
                committed_at -> Nullable<Ts>,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            orders (id) {
                id -> BigInt,
                #[sql_name = "ref"]
                ref_ -> Text,
                channel_id -> BigInt,
                session_key -> Text,
                handle_type -> Nullable<Text>,
                handle_ref -> Nullable<Text>,
                external_ref -> Nullable<Text>,
                status -> Text,
                snapshot -> JsonDoc,
                data -> JsonDoc,
                currency -> Text,
                total_q -> BigInt,
                created_at -> Ts,
                updated_at -> Ts,
                confirmed_at -> Nullable<Ts>,
                processing_at -> Nullable<Ts>,
                ready_at -> Nullable<Ts>,
                dispatched_at -> Nullable<Ts>,
                delivered_at -> Nullable<Ts>,
                completed_at -> Nullable<Ts>,
                cancelled_at -> Nullable<Ts>,
                returned_at -> Nullable<Ts>,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::JsonDoc;

            order_items (id) {
                id -> BigInt,
                order_id -> BigInt,
                line_id -> Text,
                sku -> Text,
                name -> Text,
                qty_milli -> BigInt,
                unit_price_q -> BigInt,
                line_total_q -> BigInt,
                meta -> JsonDoc,
                position -> Integer,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            order_events (id) {
                id -> BigInt,
                order_id -> BigInt,
                seq -> Integer,
                #[sql_name = "type"]
                type_ -> Text,
                actor -> Text,
                payload -> JsonDoc,
                created_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            directives (id) {
                id -> BigInt,
                topic -> Text,
                status -> Text,
                payload -> JsonDoc,
                attempts -> Integer,
                available_at -> Ts,
                last_error -> Text,
                created_at -> Ts,
                updated_at -> Ts,
                started_at -> Nullable<Ts>,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            idempotency_keys (id) {
                id -> BigInt,
                scope -> Text,
                key -> Text,
                status -> Text,
                response_code -> Nullable<Integer>,
                response_body -> Nullable<JsonDoc>,
                session_key -> Nullable<Text>,
                expires_at -> Nullable<Ts>,
                created_at -> Ts,
                updated_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            api_tokens (id) {
                id -> BigInt,
                name -> Text,
                token_hash -> Text,
                role -> Text,
                channels -> Nullable<JsonDoc>,
                created_at -> Ts,
                revoked_at -> Nullable<Ts>,
                rate_limits -> Nullable<Text>,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::Ts;

            stock_levels (sku) {
                sku -> Text,
                on_hand_milli -> BigInt,
                updated_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::Ts;

            stock_holds (id) {
                id -> BigInt,
                hold_id -> Text,
                sku -> Text,
                qty_milli -> BigInt,
                reference -> Nullable<Text>,
                status -> Text,
                expires_at -> Nullable<Ts>,
                created_at -> Ts,
                updated_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            events (id) {
                id -> BigInt,
                #[sql_name = "type"]
                type_ -> Text,
                channel_code -> Nullable<Text>,
                session_key -> Nullable<Text>,
                order_ref -> Nullable<Text>,
                data -> JsonDoc,
                created_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::{JsonDoc, Ts};

            webhooks (id) {
                id -> BigInt,
                url -> Text,
                secret -> Text,
                events -> JsonDoc,
                channels -> Nullable<JsonDoc>,
                active -> Bool,
                start_after -> BigInt,
                created_at -> Ts,
                updated_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::Ts;

            webhook_deliveries (directive_id) {
                directive_id -> BigInt,
                webhook_id -> BigInt,
                event_id -> Nullable<BigInt>,
                event_type -> Text,
                created_at -> Ts,
            }
        }

        diesel::table! {
            use diesel::sql_types::*;
            use super::Ts;

            webhook_dispatch (name) {
                name -> Text,
                position -> BigInt,
                updated_at -> Ts,
            }
        }

        diesel::joinable!(webhook_deliveries -> directives (directive_id));
        diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
        diesel::allow_tables_to_appear_in_same_query!(webhook_deliveries, directives, webhooks);

        diesel::joinable!(sessions -> channels (channel_id));
        diesel::joinable!(orders -> channels (channel_id));
        diesel::joinable!(order_items -> orders (order_id));
        diesel::joinable!(order_events -> orders (order_id));

        diesel::allow_tables_to_appear_in_same_query!(
            channels,
            sessions,
            orders,
            order_items,
            order_events,
            directives,
            idempotency_keys,
            api_tokens,
            stock_levels,
            stock_holds,
            events,
        );
    };
}

/// Tables as seen by PostgreSQL (`jsonb`, `timestamptz`).
pub mod pg {
    /// SQL type of JSON document columns.
    pub type JsonDoc = diesel::sql_types::Jsonb;
    /// SQL type of timestamp columns.
    pub type Ts = diesel::sql_types::Timestamptz;

    omniman_tables!();
}

/// Tables as seen by SQLite (JSON and timestamps stored as `TEXT`).
pub mod sqlite {
    /// SQL type of JSON document columns.
    pub type JsonDoc = diesel::sql_types::Json;
    /// SQL type of timestamp columns.
    pub type Ts = diesel::sql_types::TimestamptzSqlite;

    omniman_tables!();
}
