//! The route table: every route the API answers, listed once with its method, path pattern and
//! handler.
//!
//! The table expands into the actix registration ([`register`]), the OpenAPI paths
//! ([`DocumentedRoutes`], read by the OpenAPI module) and the public [`ROUTES`] list that the
//! coverage test compares with the document and with the app. A route can therefore not be
//! served undocumented, or documented and not served, without a test failing.
//!
//! It is a `macro_rules!` table rather than a `const` array because the handlers are generic
//! over the store: the actix side instantiates them for `S`, while the OpenAPI side (utoipa's
//! `paths(...)`) names them without a store.

use actix_web::http::Method;
use actix_web::web;
use omniman_core::ports::Store;

use crate::handlers::{admin, events, manage, meta, orders, sessions, webhooks};

/// A route the API answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The HTTP method, upper case (`GET`, `POST`).
    pub method: &'static str,
    /// The path pattern as actix and OpenAPI both write it (`/api/sessions/{key}`); a pattern
    /// with a regex (`{file:.+}`) belongs to an undocumented route.
    pub path: &'static str,
    /// Whether the OpenAPI document describes it: all routes do but the document and its
    /// interactive page.
    pub documented: bool,
}

macro_rules! route_table {
    (
        documented { $( $method:ident $path:literal => $($segment:ident)::+ $(::<$store:ident>)?; )* }
        undocumented { $( $u_method:ident $u_path:expr => $($u_segment:ident)::+; )* }
    ) => {
        /// Every route, in registration order (docs/api.md).
        pub const ROUTES: &[Route] = &[
            $( Route { method: stringify!($method), path: $path, documented: true }, )*
            $( Route { method: stringify!($u_method), path: $u_path, documented: false }, )*
        ];

        /// The operations of the documented routes, which the OpenAPI module merges into its document.
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($( $($segment)::+ ),*))]
        pub(crate) struct DocumentedRoutes;

        /// Registers every route of [`ROUTES`] on `cfg`, one resource per path pattern (so that a
        /// path answered by some method answers the others with a 405 and its `Allow`).
        pub(crate) fn register<S: Store + 'static>(cfg: &mut web::ServiceConfig) {
            let routes = [
                $( ($path, web::route().method(Method::$method).to($($segment)::+ $(::<$store>)?)), )*
                $( ($u_path, web::route().method(Method::$u_method).to($($u_segment)::+)), )*
            ];
            let mut resources: Vec<(&str, Vec<actix_web::Route>)> = Vec::new();
            for (path, route) in routes {
                match resources.iter_mut().find(|(p, _)| *p == path) {
                    Some((_, same_path)) => same_path.push(route),
                    None => resources.push((path, vec![route])),
                }
            }
            for (path, routes) in resources {
                cfg.service(routes.into_iter().fold(web::resource(path), actix_web::Resource::route));
            }
        }
    };
}

// Literal routes come before parameterised ones, so `import` is never a session key and
// `stream` never an order ref.
route_table! {
    documented {
        GET "/api/health" => meta::health;
        GET "/api/health/ready" => meta::ready::<S>;
        GET "/api/channels" => meta::list_channels::<S>;
        POST "/api/channels" => manage::create_channel::<S>;
        GET "/api/channels/{code}" => meta::get_channel::<S>;
        PATCH "/api/channels/{code}" => manage::change_channel::<S>;
        GET "/api/sessions" => sessions::list_sessions::<S>;
        POST "/api/sessions" => sessions::create_session::<S>;
        POST "/api/sessions/import" => sessions::import_session::<S>;
        GET "/api/sessions/{key}" => sessions::get_session::<S>;
        POST "/api/sessions/{key}/modify" => sessions::modify::<S>;
        POST "/api/sessions/{key}/resolve" => sessions::resolve::<S>;
        POST "/api/sessions/{key}/commit" => sessions::commit::<S>;
        POST "/api/sessions/{key}/abandon" => sessions::abandon::<S>;
        GET "/api/orders" => orders::list_orders::<S>;
        GET "/api/orders/stream" => orders::stream::<S>;
        GET "/api/orders/{ref}" => orders::get_order::<S>;
        POST "/api/orders/{ref}/transition" => orders::transition::<S>;
        GET "/api/orders/{ref}/events" => orders::events::<S>;
        GET "/api/events" => events::events::<S>;
        GET "/api/directives" => admin::list_directives::<S>;
        GET "/api/directives/{id}" => admin::get_directive::<S>;
        POST "/api/directives/{id}/retry" => admin::retry_directive::<S>;
        GET "/api/tokens" => manage::list_tokens::<S>;
        POST "/api/tokens" => manage::create_token::<S>;
        DELETE "/api/tokens/{id}" => manage::revoke_token::<S>;
        GET "/api/webhooks" => webhooks::list_webhooks::<S>;
        POST "/api/webhooks" => webhooks::create_webhook::<S>;
        GET "/api/webhooks/{id}" => webhooks::get_webhook::<S>;
        PATCH "/api/webhooks/{id}" => webhooks::change_webhook::<S>;
        DELETE "/api/webhooks/{id}" => webhooks::delete_webhook::<S>;
        GET "/api/webhooks/{id}/deliveries" => webhooks::list_deliveries::<S>;
        POST "/api/webhooks/{id}/test" => webhooks::test_webhook::<S>;
        GET "/metrics" => admin::metrics::<S>;
    }
    // The document and its page do not describe themselves.
    undocumented {
        GET meta::OPENAPI_PATH => meta::openapi;
        GET meta::DOCS_PATH => meta::docs_index;
        GET "/api/docs/{file:.+}" => meta::docs_asset;
    }
}
