//! Property tests of the HTTP layer: arbitrary JSON bodies (NUL, huge numbers, deep nesting,
//! wrong types, unknown fields, bodies that are not JSON at all) sent to every POST route never
//! get a 5xx, always get the JSON error shape when refused, and a refused request changes nothing
//! that can be read back: the session it names, the order, its events and the lists.
//!
//! Case counts are fixed (`CASES`) so the suite stays fast; `PROPTEST_CASES` raises them.

use std::cell::Cell;

use actix_web::test::TestRequest;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::common::{self, ADMIN, CLIENT, Resp, get};

/// Cases per test unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 128;

/// The keys the routes read, and a few they do not: most generated objects get past the
/// "unknown field" check and reach the readers of each field.
const KEYS: &[&str] = &[
    "channel_code",
    "session_key",
    "handle_type",
    "handle_ref",
    "items",
    "data",
    "ops",
    "issue_id",
    "action_id",
    "idempotency_key",
    "status",
    "note",
    "op",
    "sku",
    "qty",
    "unit_price_q",
    "line_total_q",
    "name",
    "meta",
    "line_id",
    "path",
    "value",
    "from_line_id",
    "into_line_id",
    "customer",
    "extra",
    "",
];

/// JSON texts that serde_json's `Value` cannot produce: numbers beyond 64 bits and `f64`, NUL,
/// lone surrogates, deep nesting, and values that look right but are not.
const ODD: &[&str] = &[
    "99999999999999999999999",
    "-99999999999999999999999",
    "1e999",
    "-0",
    "1.5e308",
    "4611686018427387904",
    "9223372036854775807",
    "\"\\u0000\"",
    "\"a\\u0000b\"",
    "\"\\ud800\"",
    "\"+1\"",
    "\" 1\"",
    "\"1e2\"",
    "\"0.0001\"",
    "\"L-1\"",
    "\"pos\"",
    "\"add_line\"",
    "\"set_data\"",
    "\"customer.name\"",
    "\"checks.x\"",
];

/// A JSON text, built as text so that it can hold what `Value` cannot.
fn arb_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| Value::from(f).to_string()),
        prop::sample::select(ODD).prop_map(str::to_owned),
        ".{0,10}".prop_map(|s| Value::String(s).to_string()),
        (1_usize..200).prop_map(|depth| format!("{}1{}", "[".repeat(depth), "]".repeat(depth))),
        (1_usize..40).prop_map(|depth| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(","))),
            btree_map(arb_key(), inner, 0..6).prop_map(|fields| object(fields.into_iter())),
        ]
    })
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => ".{0,6}"]
}

fn object(fields: impl Iterator<Item = (String, String)>) -> String {
    let fields: Vec<String> = fields.map(|(k, v)| format!("{}:{v}", Value::String(k))).collect();
    format!("{{{}}}", fields.join(","))
}

/// A body: mostly an object of route fields (half of them naming the channel, so that they get
/// past it), sometimes any JSON text, sometimes bytes that are not JSON.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    let fields = (any::<bool>(), btree_map(arb_key(), arb_field(), 0..6)).prop_map(|(pos, mut fields)| {
        if pos {
            fields.entry("channel_code".to_owned()).or_insert_with(|| "\"pos\"".to_owned());
        }
        object(fields.into_iter()).into_bytes()
    });
    prop_oneof![
        6 => fields,
        2 => arb_text().prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..64),
    ]
}

/// A field's value: any JSON text, or a list of op-like objects (an op name and op fields).
fn arb_field() -> impl Strategy<Value = String> {
    let op = (prop::sample::select(OPS), btree_map(arb_key(), arb_text(), 0..4)).prop_map(|(name, mut fields)| {
        fields.insert("op".to_owned(), Value::String(name.to_owned()).to_string());
        object(fields.into_iter())
    });
    prop_oneof![3 => arb_text(), 1 => vec(op, 1..4).prop_map(|ops| format!("[{}]", ops.join(",")))]
}

const OPS: &[&str] = &["add_line", "remove_line", "set_qty", "replace_sku", "set_data", "merge_lines", "nope"];

/// The POST routes, by index; `{key}` is a fresh open session, `{ref}` an order.
const ROUTES: &[&str] = &[
    "/api/sessions",
    "/api/sessions/import",
    "/api/sessions/{key}/modify",
    "/api/sessions/{key}/resolve",
    "/api/sessions/{key}/commit",
    "/api/sessions/{key}/abandon",
    "/api/orders/{ref}/transition",
];

/// What a client can read back of the state a request might touch: the session, the newest
/// sessions and orders (a new one would be first), the order and its events.
macro_rules! snapshot {
    ($app:expr, $key:expr, $order_ref:expr) => {{
        let mut state = Vec::new();
        for path in [
            format!("/api/sessions/{}?channel_code=pos", $key),
            "/api/sessions?page_size=3".to_owned(),
            format!("/api/orders/{}", $order_ref),
            format!("/api/orders/{}/events", $order_ref),
            "/api/orders?page_size=3".to_owned(),
        ] {
            state.push(call!($app, get(&path, ADMIN)).expect(200));
        }
        state
    }};
}

#[test]
fn arbitrary_bodies_to_every_post_route_never_5xx_and_refusals_change_nothing() {
    let system = actix_web::rt::System::new();
    let (app, order_ref) = system.block_on(async {
        let state = common::state().await;
        let app = service!(state);
        let order_ref = order!(app, "web", 100);
        (app, order_ref)
    });
    let tried = Cell::new(0_u32);
    let refused = Cell::new(0_u32);
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    let mut runner = TestRunner::new(Config { cases, ..Config::default() });
    let strategy = (0..ROUTES.len(), any::<bool>(), arb_body());
    let result = runner.run(&strategy, |(route, as_client, body)| {
        system.block_on(async {
            let key = open!(app, "pos");
            add_line!(app, "pos", key, "A", 2, 300);
            let path = ROUTES[route].replace("{key}", &key).replace("{ref}", &order_ref);
            let token = if as_client && route != 1 { CLIENT } else { ADMIN };
            let before = snapshot!(app, key, order_ref);
            let req = TestRequest::post()
                .uri(&path)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(body.clone());
            let resp: Resp = call!(app, req);
            tried.set(tried.get() + 1);
            let shown = || {
                format!("POST {path} {} -> {}", String::from_utf8_lossy(&body), String::from_utf8_lossy(&resp.bytes))
            };
            prop_assert!(resp.status.as_u16() < 500, "{}", shown());
            if resp.status.is_client_error() {
                refused.set(refused.get() + 1);
                let code = resp.code();
                prop_assert!(!code.is_empty(), "{}", shown());
                let after = snapshot!(app, key, order_ref);
                prop_assert!(before == after, "a refused request changed the state: {}", shown());
            }
            Ok(())
        })
    });
    eprintln!("HTTP properties: {} bodies sent, {} refused with a 4xx", tried.get(), refused.get());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The fields each POST route reads at the top level (any other is refused as unknown).
const TOP: &[(&str, &[&str])] = &[
    ("/api/sessions", &["channel_code", "session_key", "handle_type", "handle_ref"]),
    ("/api/sessions/import", &["channel_code", "session_key", "handle_type", "handle_ref", "items", "data"]),
    ("/api/sessions/{key}/modify", &["channel_code", "ops"]),
    ("/api/sessions/{key}/resolve", &["channel_code", "issue_id", "action_id"]),
    ("/api/sessions/{key}/commit", &["channel_code", "idempotency_key"]),
    ("/api/sessions/{key}/abandon", &["channel_code"]),
    ("/api/orders/{ref}/transition", &["status", "note"]),
    ("/api/channels", &["code", "name", "pricing_policy", "edit_policy", "display_order", "config", "is_active"]),
    ("/api/tokens", &["name", "role", "channels", "rate_limit"]),
];
/// The fields read inside an op or an import line.
const NESTED: &[&str] = &[
    "sku",
    "qty",
    "unit_price_q",
    "line_total_q",
    "name",
    "meta",
    "line_id",
    "path",
    "value",
    "from_line_id",
    "into_line_id",
];

#[test]
fn the_odd_values_alone_in_every_field_of_every_route_never_5xx() {
    // Exhaustive: each odd value in each top-level field of each route, and in each field of an
    // op (of every kind) and of an import line.
    actix_web::rt::System::new().block_on(async {
        let state = common::state().await;
        let app = service!(state);
        let order_ref = order!(app, "web", 100);
        let key = open!(app, "pos");
        add_line!(app, "pos", key, "A", 2, 300);
        // The ops go to a session of their own: the top-level loop may commit or abandon `key`.
        let ops_key = open!(app, "pos");
        add_line!(app, "pos", ops_key, "A", 2, 300);
        let mut bodies: Vec<(String, String)> = Vec::new();
        for (route, fields) in TOP {
            let path = route.replace("{key}", &key).replace("{ref}", &order_ref);
            // Session routes need a channel; the others would refuse it as unknown.
            let channel = if route.starts_with("/api/sessions") { "\"channel_code\":\"pos\"," } else { "" };
            for field in *fields {
                for odd in ODD {
                    let body = format!("{{{channel}{}:{odd}}}", Value::String((*field).to_owned()));
                    bodies.push((path.clone(), body));
                }
            }
        }
        for field in NESTED {
            for odd in ODD {
                let field = Value::String((*field).to_owned());
                for op in OPS {
                    let body = format!(
                        "{{\"channel_code\":\"pos\",\"ops\":[{{\"op\":\"{op}\",\"line_id\":\"L-1\",{field}:{odd}}}]}}"
                    );
                    bodies.push((format!("/api/sessions/{ops_key}/modify"), body));
                }
                let line = format!("{{\"sku\":\"A\",\"qty\":1,{field}:{odd}}}");
                let body = format!("{{\"channel_code\":\"pos\",\"items\":[{line}]}}");
                bodies.push(("/api/sessions/import".to_owned(), body));
            }
        }
        for (path, body) in &bodies {
            let req = TestRequest::post()
                .uri(path)
                .insert_header(("Authorization", format!("Bearer {ADMIN}")))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(body.clone());
            let resp: Resp = call!(app, req);
            assert!(resp.status.as_u16() < 500, "POST {path} {body}: {}", String::from_utf8_lossy(&resp.bytes));
            if !resp.status.is_success() {
                let _ = resp.code();
            }
        }
        eprintln!("HTTP properties: {} single-field bodies sent", bodies.len());
    });
}
