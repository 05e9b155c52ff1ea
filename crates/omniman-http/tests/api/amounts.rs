//! Amounts beyond a signed 64-bit count of quanta: refused as `invalid_amount`, never saturated.

use serde_json::{Value, json};

use crate::common::{self, ADMIN, CLIENT, get, post};

#[actix_web::test]
async fn amounts_beyond_i64_are_invalid_amount_never_saturated() {
    let state = common::state().await;
    let app = service!(state);
    let key = open!(app, "pos");
    let modify = format!("/api/sessions/{key}/modify");
    let line = |qty: i64, price: i64| json!({"op": "add_line", "sku": "A", "qty": qty, "unit_price_q": price});

    let ctx = call!(app, post(&modify, CLIENT, &json!({"channel_code": "pos", "ops": [line(4, 1 << 62)]})))
        .expect_error(400, "invalid_amount");
    assert_eq!(ctx["field"], "items[0]");
    let one =
        call!(app, post(&modify, CLIENT, &json!({"channel_code": "pos", "ops": [line(1, i64::MAX)]}))).expect(200);
    assert_eq!(one["total_q"], json!(i64::MAX));
    let ctx = call!(app, post(&modify, CLIENT, &json!({"channel_code": "pos", "ops": [line(1, 1)]})))
        .expect_error(400, "invalid_amount");
    assert_eq!(ctx["field"], "total_q");
    let session = call!(app, get(&format!("/api/sessions/{key}?channel_code=pos"), CLIENT)).expect(200);
    assert_eq!((session["rev"].clone(), session["total_q"].clone()), (json!(1), json!(i64::MAX)));

    // Import: a computed line total, given line totals that add up past the limit.
    let import = |items: Value| json!({"channel_code": "pos", "items": items});
    call!(
        app,
        post("/api/sessions/import", ADMIN, &import(json!([{"sku": "A", "qty": 4, "unit_price_q": 1_i64 << 62}])))
    )
    .expect_error(400, "invalid_amount");
    let big = json!({"sku": "A", "qty": 1, "unit_price_q": 1, "line_total_q": i64::MAX});
    call!(app, post("/api/sessions/import", ADMIN, &import(json!([big, big])))).expect_error(400, "invalid_amount");
    let sessions = call!(app, get("/api/sessions", ADMIN)).expect(200);
    assert_eq!(sessions["results"].as_array().unwrap().len(), 1, "no session was imported");
}
