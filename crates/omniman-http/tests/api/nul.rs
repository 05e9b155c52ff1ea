//! The NUL character (U+0000), which PostgreSQL cannot store in text or `jsonb`: refused on
//! every route, wherever it is (body strings and keys at any depth, query strings, path
//! segments), as a `validation_error` naming its path, and nothing is written.

use serde_json::{Value, json};

use crate::common::{self, ADMIN, CLIENT, get, post};

/// Everything a client can read back: the session, the order, and the lists.
macro_rules! everything {
    ($app:expr, $key:expr, $order_ref:expr) => {{
        let session = call!($app, get(&format!("/api/sessions/{}?channel_code=pos", $key), CLIENT)).expect(200);
        let order = call!($app, get(&format!("/api/orders/{}", $order_ref), CLIENT)).expect(200);
        let sessions = call!($app, get("/api/sessions?page_size=100", ADMIN)).expect(200);
        let orders = call!($app, get("/api/orders?page_size=100", ADMIN)).expect(200);
        let directives = call!($app, get("/api/directives?page_size=100", ADMIN)).expect(200);
        json!([session, order, sessions, orders, directives])
    }};
}

#[actix_web::test]
async fn nul_characters_are_refused_on_every_route_with_their_path() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    add_line!(app, "pos", key, "A", 1, 100);
    let order_ref = order!(app, "pos", 100);
    let before = everything!(app, key, order_ref);

    let modify = format!("/api/sessions/{key}/modify");
    let add = |extra: Value| {
        let mut op = json!({"op": "add_line", "sku": "B", "qty": 1, "unit_price_q": 10});
        op.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"channel_code": "pos", "ops": [op]})
    };
    let set_data = |path: &str, value: Value| json!({"channel_code": "pos", "ops": [{"op": "set_data", "path": path, "value": value}]});
    let import = |line: Value, data: Value| json!({"channel_code": "pos", "items": [line], "data": data});
    let good_line = json!({"sku": "A", "qty": 1, "unit_price_q": 10});
    let posts: Vec<(String, &str, Value, &str)> = vec![
        (
            "/api/sessions".into(),
            CLIENT,
            json!({"channel_code": "pos", "handle_type": "t", "handle_ref": "1\u{0}"}),
            "handle_ref",
        ),
        ("/api/sessions".into(), CLIENT, json!({"channel_code": "pos", "session_key": "k\u{0}"}), "session_key"),
        (modify.clone(), CLIENT, add(json!({"sku": "B\u{0}"})), "ops[0].sku"),
        (modify.clone(), CLIENT, add(json!({"name": "\u{0}"})), "ops[0].name"),
        (modify.clone(), CLIENT, add(json!({"meta": {"a": {"b": ["x", "y\u{0}z"]}}})), "ops[0].meta.a.b[1]"),
        (modify.clone(), CLIENT, add(json!({"meta": {"k\u{0}": 1}})), "ops[0].meta.k\\u0000"),
        (modify.clone(), CLIENT, set_data("notes\u{0}", json!("x")), "ops[0].path"),
        (modify.clone(), CLIENT, set_data("notes", json!({"deep": {"note": "\u{0}"}})), "ops[0].value.deep.note"),
        (
            modify.clone(),
            CLIENT,
            json!({"channel_code": "pos\u{0}", "ops": [{"op": "remove_line", "line_id": "x"}]}),
            "channel_code",
        ),
        (
            format!("/api/sessions/{key}/commit"),
            CLIENT,
            json!({"channel_code": "pos", "idempotency_key": "k\u{0}"}),
            "idempotency_key",
        ),
        (format!("/api/sessions/{key}/abandon"), CLIENT, json!({"channel_code": "pos", "x\u{0}": 1}), "x\\u0000"),
        (
            format!("/api/sessions/{key}/resolve"),
            CLIENT,
            json!({"channel_code": "pos", "issue_id": "\u{0}", "action_id": "a"}),
            "issue_id",
        ),
        (
            format!("/api/orders/{order_ref}/transition"),
            ADMIN,
            json!({"status": "confirmed", "note": "n\u{0}"}),
            "note",
        ),
        (
            "/api/sessions/import".into(),
            ADMIN,
            import(json!({"sku": "A", "qty": 1, "name": "\u{0}"}), json!({})),
            "items[0].name",
        ),
        (
            "/api/sessions/import".into(),
            ADMIN,
            import(json!({"sku": "A", "qty": 1, "meta": {"m": "\u{0}"}}), json!({})),
            "items[0].meta.m",
        ),
        (
            "/api/sessions/import".into(),
            ADMIN,
            import(good_line.clone(), json!({"customer": {"name": "\u{0}"}})),
            "data.customer.name",
        ),
        (
            "/api/sessions/import".into(),
            ADMIN,
            import(good_line, json!({}))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("handle_ref".into(), json!("\u{0}"));
                    o.insert("handle_type".into(), json!("t"));
                    Value::Object(o)
                })
                .unwrap(),
            "handle_ref",
        ),
    ];
    for (path, token, body, field) in &posts {
        let ctx = call!(app, post(path, token, body)).expect_error(400, "validation_error");
        assert!(ctx["fields"].get(*field).is_some(), "POST {path} {body}: {ctx}");
    }

    let gets: Vec<(String, &str, &str)> = vec![
        ("/api/sessions/%00?channel_code=pos".into(), CLIENT, "session_key"),
        ("/api/sessions/a%00b".into(), CLIENT, "session_key"),
        ("/api/orders/%00".into(), CLIENT, "order_ref"),
        (format!("/api/orders/{order_ref}%00"), CLIENT, "order_ref"),
        ("/api/orders/%00/events".into(), CLIENT, "order_ref"),
        ("/api/channels/%00".into(), CLIENT, "channel_code"),
        ("/api/directives/%00".into(), ADMIN, "directive_id"),
        ("/api/sessions?handle_ref=%00".into(), CLIENT, "handle_ref"),
        ("/api/sessions?channel_code=pos&handle_type=a%00".into(), CLIENT, "handle_type"),
        ("/api/orders?handle_ref=%00".into(), CLIENT, "handle_ref"),
        ("/api/orders?status=%00".into(), CLIENT, "status"),
        ("/api/orders?channel_code=%00".into(), CLIENT, "channel_code"),
        ("/api/orders/stream?since=%00".into(), ADMIN, "since"),
        ("/api/directives?topic=%00".into(), ADMIN, "topic"),
        ("/api/channels?x%00=1".into(), CLIENT, "x\\u0000"),
    ];
    for (path, token, field) in &gets {
        let ctx = call!(app, get(path, token)).expect_error(400, "validation_error");
        assert!(ctx["fields"].get(*field).is_some(), "GET {path}: {ctx}");
    }
    let transition = post("/api/orders/%00/transition", ADMIN, &json!({"status": "confirmed"}));
    let ctx = call!(app, transition).expect_error(400, "validation_error");
    assert!(ctx["fields"].get("order_ref").is_some(), "{ctx}");

    assert_eq!(everything!(app, key, order_ref), before, "nothing was written");
}
