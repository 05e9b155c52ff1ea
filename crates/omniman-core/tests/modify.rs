//! Modify: state and policy, and ops (docs/reference.md §4 and §5).
//!
//! Left to other layers:
//! - HTTP layer: the HTTP status of each code, the `If-Match` header parsing on the wire, the rule that the
//!   API refuses an empty `ops` list, and `malformed_json`.
//! - storage: the modify statement budget (≤ 3 statements) and row-level serialisation on real databases.

mod common;

use common::{World, api, at, chan, chan_with, code_of, internal, item, ops};
use futures_executor::block_on;
use serde_json::{Value, json};

use omniman_core::error::ErrorKind;
use omniman_core::prelude::*;

const POS: &str = "pos";

fn pos() -> World {
    World::new(vec![chan(1, POS)])
}

fn external_channel() -> Channel {
    Channel { pricing_policy: PricingPolicy::External, ..chan(2, "shop") }
}

fn locked_channel(name: &str) -> Channel {
    Channel {
        name: name.into(),
        edit_policy: EditPolicy::Locked,
        pricing_policy: PricingPolicy::External,
        ..chan(3, "ifood")
    }
}

/// A session holding the given lines without going through modify (as an importer would leave it).
fn seeded(world: &World, code: &str, items: Vec<Item>) -> Session {
    let session = world.open(code);
    world.store().tamper_session(code, &session.session_key, |s| s.items = items);
    world.session(code, &session.session_key)
}

fn err(world: &World, code: &str, key: &str, batch: &Value) -> ModifyError {
    world.modify(code, key, batch).expect_err("modify must be refused")
}

// ---------------------------------------------------------------------------------------------
// Modify — state and policy
// ---------------------------------------------------------------------------------------------

#[test]
fn modify_unknown_session_is_session_not_found() {
    let world = pos();
    let e = err(&world, POS, "NOPE", &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    assert_eq!(code_of(&e), "session_not_found");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.context()["session_key"], json!("NOPE"));
}

#[test]
fn modify_on_a_missing_channel_is_unknown_channel() {
    let world = pos();
    let e = err(&world, "nowhere", "NOPE", &json!([]));
    assert_eq!(code_of(&e), "unknown_channel");
    assert_eq!(e.context()["channel_code"], json!("nowhere"));
}

#[test]
fn modify_committed_session_is_already_committed() {
    let world = pos();
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100}]));
    world.commit(POS, &s.session_key, "k1").expect("commit");
    let e = err(&world, POS, &s.session_key, &json!([{"op": "add_line", "sku": "B", "qty": 1}]));
    assert_eq!(code_of(&e), "already_committed");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(world.session(POS, &s.session_key).items.len(), 1);
}

#[test]
fn modify_abandoned_session_is_already_abandoned() {
    let world = pos();
    let s = world.open(POS);
    block_on(world.hub.abandon(&at(POS, &s.session_key), None, &api())).expect("abandon");
    let e = err(&world, POS, &s.session_key, &json!([{"op": "add_line", "sku": "B", "qty": 1}]));
    assert_eq!(code_of(&e), "already_abandoned");
    assert_eq!(e.kind(), ErrorKind::Conflict);
}

#[test]
fn modify_locked_blocks_add_line_remove_line_and_set_qty() {
    let world = World::new(vec![locked_channel("iFood")]);
    let s = seeded(&world, "ifood", vec![item("L-001", "PIZZA-G", "1", 4500)]);
    let key = s.session_key.clone();
    let batches = [
        json!([{"op": "add_line", "sku": "REFRI", "qty": 1, "unit_price_q": 500}]),
        json!([{"op": "remove_line", "line_id": "L-001"}]),
        json!([{"op": "set_qty", "line_id": "L-001", "qty": 2}]),
    ];
    for batch in &batches {
        let e = err(&world, "ifood", &key, batch);
        assert_eq!(code_of(&e), "locked", "{batch}");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let context = e.context();
        assert_eq!(context["session_key"], json!(key));
        assert_eq!(context["channel"], json!("iFood"));
        assert_eq!(context["edit_policy"], json!("locked"));
        let message = e.to_string();
        assert!(message.contains("iFood"), "{message}");
        assert!(message.contains("external platform"), "{message}");
        assert!(message.contains("cannot be edited"), "{message}");
        let lower = message.to_lowercase();
        for word in ["locked", "policy", "session", "error"] {
            assert!(!lower.contains(word), "message {message:?} contains {word:?}");
        }
    }
    let after = world.session("ifood", &key);
    assert_eq!((after.rev, after.version, after.items.len()), (0, 0, 1));
    assert!(world.directives().is_empty());
}

#[test]
fn modify_locked_names_the_channel_by_code_when_it_has_no_name() {
    let world = World::new(vec![locked_channel("")]);
    let s = world.open("ifood");
    let e = err(&world, "ifood", &s.session_key, &json!([]));
    assert_eq!(e.context()["channel"], json!("ifood"));
    assert!(e.to_string().contains("ifood"));
}

#[test]
fn locked_channel_orders_still_change_status() {
    let world = World::new(vec![locked_channel("iFood")]);
    let s = seeded(&world, "ifood", vec![item("L-001", "PIZZA-G", "1", 4500)]);
    let order = world.commit_order("ifood", &s.session_key, "ifood-abc123");
    assert_eq!(order.total_q, 4500);
    world.transition(&order.reference, "confirmed", "webhook").expect("confirmed");
    let moved = world.transition(&order.reference, "processing", "kitchen").expect("processing");
    assert_eq!(moved.order.status, "processing");
}

#[test]
fn policies_are_copied_from_the_channel_when_the_session_opens() {
    let world = World::new(vec![chan(1, POS)]);
    let open_before = world.open(POS);
    world.put_channel(Channel {
        edit_policy: EditPolicy::Locked,
        pricing_policy: PricingPolicy::External,
        ..chan(1, POS)
    });
    let locked_after = world.open(POS);
    assert_eq!(locked_after.edit_policy, EditPolicy::Locked);
    // The pipelines read the session's copy, not the channel's current setting.
    let s = world.modify_ok(POS, &open_before.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    assert_eq!(s.items[0].unit_price_q, Some(0));
    let e = err(&world, POS, &locked_after.session_key, &json!([]));
    assert_eq!(code_of(&e), "locked");
    world.put_channel(chan(1, POS));
    assert_eq!(code_of(&err(&world, POS, &locked_after.session_key, &json!([]))), "locked");
}

#[test]
fn modify_checks_if_match_before_state_and_state_before_policy() {
    let world = World::new(vec![chan(1, POS), locked_channel("iFood")]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100}]));
    let key = s.session_key.clone();

    // Failed If-Match on an open session: 412 with the value as sent and the current rev/version.
    let stale = Precondition::Rev(0);
    let e = block_on(world.hub.modify(&at(POS, &key), &ops(&json!([])), Some(&stale), &api())).unwrap_err();
    assert_eq!(code_of(&e), "precondition_failed");
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
    let c = e.context();
    assert_eq!(
        (c["expected"].clone(), c["current_rev"].clone(), c["current_version"].clone()),
        (json!("\"0\""), json!(1), json!(1))
    );
    // A matching rev.version passes.
    let fresh = Precondition::parse("\"1.1\"");
    block_on(world.hub.modify(&at(POS, &key), &ops(&json!([])), Some(&fresh), &api())).expect("matching If-Match");

    // On a committed session a failed If-Match still wins (step 3 before step 4).
    world.commit(POS, &key, "k").expect("commit");
    let e = block_on(world.hub.modify(&at(POS, &key), &ops(&json!([])), Some(&stale), &api())).unwrap_err();
    assert_eq!(code_of(&e), "precondition_failed");
    assert_eq!(code_of(&err(&world, POS, &key, &json!([]))), "already_committed");

    // A committed session of a locked channel is `already_committed` (step 4 before step 5).
    let locked = seeded(&world, "ifood", vec![item("L-1", "X", "1", 10)]);
    world.commit("ifood", &locked.session_key, "k2").expect("commit");
    assert_eq!(code_of(&err(&world, "ifood", &locked.session_key, &json!([]))), "already_committed");
}

// ---------------------------------------------------------------------------------------------
// Modify — ops
// ---------------------------------------------------------------------------------------------

#[test]
fn add_line_appends_a_line_with_an_l_id_and_raises_rev_from_0_to_1() {
    let world = pos();
    let s = world.open(POS);
    assert_eq!(s.rev, 0);
    let after = world.modify_ok(
        POS,
        &s.session_key,
        &json!([{"op": "add_line", "sku": "COFFEE", "qty": 2, "unit_price_q": 450, "name": "Coffee", "meta": {"milk": true}}]),
    );
    assert_eq!(after.rev, 1);
    assert_eq!(after.version, 1);
    let line = &after.items[0];
    let rest = line.line_id.strip_prefix("L-").expect("L- prefix");
    assert_eq!(rest.len(), 8);
    assert!(rest.bytes().all(|b| omniman_core::ids::ALPHABET.contains(&b)));
    assert_eq!((line.sku.as_str(), line.name.as_str()), ("COFFEE", "Coffee"));
    assert_eq!((line.qty.millis(), line.unit_price_q, line.line_total_q), (2000, Some(450), Some(900)));
    assert_eq!(line.meta["milk"], json!(true));

    // A second add_line appends after the first, with a different id.
    let again = world.modify_ok(POS, &s.session_key, &json!([{"op": "add_line", "sku": "TEA", "qty": 1}]));
    assert_eq!(again.rev, 2);
    assert_eq!(again.items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>(), ["COFFEE", "TEA"]);
    assert_ne!(again.items[0].line_id, again.items[1].line_id);
    assert_eq!(world.session(POS, &s.session_key), again);
}

#[test]
fn add_line_with_qty_zero_or_bad_qty_is_invalid_qty() {
    let world = pos();
    let s = world.open(POS);
    for qty in [json!(0), json!(-1), json!("0"), json!(1.2345), json!("abc"), json!("1000000000"), json!(true)] {
        let e = err(&world, POS, &s.session_key, &json!([{"op": "add_line", "sku": "A", "qty": qty}]));
        assert_eq!(code_of(&e), "invalid_qty", "qty {qty}");
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        assert_eq!(e.context()["op_index"], json!(0));
    }
    assert_eq!(world.session(POS, &s.session_key).rev, 0);
}

#[test]
fn add_line_accepts_numeric_strings_and_three_decimals() {
    let world = pos();
    let s = world.open_with(
        POS,
        &json!([
            {"op": "add_line", "sku": "A", "qty": "1.5", "unit_price_q": 333},
            {"op": "add_line", "sku": "B", "qty": 0.333, "unit_price_q": 1},
            {"op": "add_line", "sku": "C", "qty": "999999999.999", "unit_price_q": 0}
        ]),
    );
    let totals: Vec<_> = s.items.iter().map(|i| (i.qty.to_string(), i.line_total_q)).collect();
    assert_eq!(
        totals,
        [("1.500".to_owned(), Some(500)), ("0.333".to_owned(), Some(0)), ("999999999.999".to_owned(), Some(0))]
    );
}

#[test]
fn add_line_without_sku_is_missing_sku_checked_before_qty() {
    let world = pos();
    let s = world.open(POS);
    for op in [json!({"op": "add_line", "qty": 1}), json!({"op": "add_line", "sku": "", "qty": 0})] {
        assert_eq!(code_of(&err(&world, POS, &s.session_key, &json!([op]))), "missing_sku");
    }
}

#[test]
fn add_line_external_without_price_is_missing_unit_price_q() {
    let world = World::new(vec![external_channel()]);
    let s = world.open("shop");
    let e = err(&world, "shop", &s.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    assert_eq!(code_of(&e), "missing_unit_price_q");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    // qty is judged before the price.
    let e = err(&world, "shop", &s.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 0}]));
    assert_eq!(code_of(&e), "invalid_qty");
    // With a price it is accepted; negative prices are allowed.
    let ok = world.modify_ok(
        "shop",
        &s.session_key,
        &json!([{"op": "add_line", "sku": "A", "qty": 2, "unit_price_q": -150}]),
    );
    assert_eq!(ok.items[0].line_total_q, Some(-300));
}

#[test]
fn add_line_on_internal_session_without_modifiers_adds_the_line_priced_zero() {
    let world = pos();
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 3}]));
    assert_eq!(s.items.len(), 1);
    assert_eq!((s.items[0].unit_price_q, s.items[0].line_total_q), (Some(0), Some(0)));
    assert!(s.items[0].meta.is_empty());
    assert_eq!(s.items[0].name, "");
}

#[test]
fn remove_line_removes_only_that_line() {
    let world = pos();
    let s = world.open_with(
        POS,
        &json!([
            {"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100},
            {"op": "add_line", "sku": "B", "qty": 1, "unit_price_q": 200},
            {"op": "add_line", "sku": "C", "qty": 1, "unit_price_q": 300}
        ]),
    );
    let (a, b, c) = (s.items[0].clone(), s.items[1].line_id.clone(), s.items[2].clone());
    let after = world.modify_ok(POS, &s.session_key, &json!([{"op": "remove_line", "line_id": b}]));
    assert_eq!(after.items, vec![a, c]);
    assert_eq!(after.total_q(), 400);
}

#[test]
fn remove_line_or_set_qty_of_an_unknown_line_is_unknown_line_id() {
    let world = pos();
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    for op in
        [json!({"op": "remove_line", "line_id": "L-NOPE"}), json!({"op": "set_qty", "line_id": "L-NOPE", "qty": 2})]
    {
        let e = err(&world, POS, &s.session_key, &json!([op]));
        assert_eq!(code_of(&e), "unknown_line_id");
        assert_eq!(e.context()["line_id"], json!("L-NOPE"));
    }
}

#[test]
fn set_qty_sets_5_then_10_and_recomputes_the_total() {
    let world = pos();
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "PAO", "qty": 1, "unit_price_q": 50}]));
    let line = s.items[0].line_id.clone();
    let five = world.modify_ok(POS, &s.session_key, &json!([{"op": "set_qty", "line_id": line, "qty": 5}]));
    assert_eq!((five.items[0].qty.to_string(), five.items[0].line_total_q), ("5.000".to_owned(), Some(250)));
    let ten = world.modify_ok(POS, &s.session_key, &json!([{"op": "set_qty", "line_id": line, "qty": "10"}]));
    assert_eq!((ten.items[0].qty.millis(), ten.items[0].line_total_q), (10_000, Some(500)));
}

#[test]
fn set_qty_judges_the_qty_before_looking_the_line_up_and_zero_is_not_removal() {
    let world = pos();
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let e = err(&world, POS, &s.session_key, &json!([{"op": "set_qty", "line_id": "L-NOPE", "qty": 0}]));
    assert_eq!(code_of(&e), "invalid_qty");
    let line = s.items[0].line_id.clone();
    let e = err(&world, POS, &s.session_key, &json!([{"op": "set_qty", "line_id": line, "qty": 0}]));
    assert_eq!(code_of(&e), "invalid_qty");
    assert_eq!(world.session(POS, &s.session_key).items.len(), 1);
}

#[test]
fn line_totals_are_recomputed_when_qty_changes() {
    // docs/reference.md §2: qty 1.5 → 3 at 333 gives 999 (the original kept 500).
    let world = pos();
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1.5, "unit_price_q": 333}]));
    assert_eq!(s.items[0].line_total_q, Some(500));
    let line = s.items[0].line_id.clone();
    let after = world.modify_ok(POS, &s.session_key, &json!([{"op": "set_qty", "line_id": line, "qty": 3}]));
    assert_eq!(after.items[0].line_total_q, Some(999));
}

#[test]
fn replace_sku_sets_sku_price_and_meta_when_given() {
    let world = pos();
    let s = world.open_with(
        POS,
        &json!([{"op": "add_line", "sku": "OLD", "qty": 2, "unit_price_q": 1000, "name": "Old", "meta": {"a": 1}}]),
    );
    let line = s.items[0].line_id.clone();
    let after = world.modify_ok(
        POS,
        &s.session_key,
        &json!([{"op": "replace_sku", "line_id": line, "sku": "NEW", "unit_price_q": 1500, "meta": {"b": 2}}]),
    );
    let i = &after.items[0];
    assert_eq!(
        (i.line_id.as_str(), i.sku.as_str(), i.unit_price_q, i.line_total_q),
        (line.as_str(), "NEW", Some(1500), Some(3000))
    );
    assert_eq!(Value::Object(i.meta.clone()), json!({"b": 2}), "meta is replaced wholesale");
    // With a price and no name, only the internal-without-price case clears the name.
    assert_eq!(i.name, "Old");

    // Without meta the old meta is kept; a given name is set.
    let again = world.modify_ok(
        POS,
        &s.session_key,
        &json!([{"op": "replace_sku", "line_id": line, "sku": "NEWER", "unit_price_q": 700, "name": "Newer"}]),
    );
    assert_eq!(Value::Object(again.items[0].meta.clone()), json!({"b": 2}));
    assert_eq!(again.items[0].name, "Newer");
}

#[test]
fn replace_sku_on_internal_session_without_price_unsets_price_and_name() {
    let world = pos();
    let s =
        world.open_with(POS, &json!([{"op": "add_line", "sku": "OLD", "qty": 2, "unit_price_q": 1000, "name": "Old"}]));
    let line = s.items[0].line_id.clone();
    let after = world.modify_ok(POS, &s.session_key, &json!([{"op": "replace_sku", "line_id": line, "sku": "NEW"}]));
    let i = &after.items[0];
    assert_eq!((i.sku.as_str(), i.name.as_str(), i.unit_price_q, i.line_total_q), ("NEW", "", Some(0), Some(0)));
    let named = world.modify_ok(
        POS,
        &s.session_key,
        &json!([{"op": "replace_sku", "line_id": line, "sku": "NEW2", "name": "Two"}]),
    );
    assert_eq!(named.items[0].name, "Two");
}

#[test]
fn replace_sku_errors_missing_sku_then_missing_unit_price_q_then_unknown_line_id() {
    let world = World::new(vec![external_channel()]);
    let s = world.open_with("shop", &json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 10}]));
    let line = s.items[0].line_id.clone();
    let key = s.session_key.clone();
    let cases = [
        (json!({"op": "replace_sku", "line_id": line}), "missing_sku"),
        (json!({"op": "replace_sku", "line_id": "L-NOPE", "sku": ""}), "missing_sku"),
        (json!({"op": "replace_sku", "line_id": line, "sku": "B"}), "missing_unit_price_q"),
        (json!({"op": "replace_sku", "line_id": "L-NOPE", "sku": "B"}), "missing_unit_price_q"),
        (json!({"op": "replace_sku", "line_id": "L-NOPE", "sku": "B", "unit_price_q": 5}), "unknown_line_id"),
    ];
    for (op, code) in cases {
        assert_eq!(code_of(&err(&world, "shop", &key, &json!([op]))), code, "{op}");
    }
}

#[test]
fn set_data_in_core_writes_customer_name_customer_name_and_city_creating_intermediates() {
    let world = pos();
    let s = world.open(POS);
    let after = world.modify_ok(
        POS,
        &s.session_key,
        &json!([
            {"op": "set_data", "path": "customer_name", "value": "Ana"},
            {"op": "set_data", "path": "customer.name", "value": "Ana Maria"},
            {"op": "set_data", "path": "customer.address.city", "value": "Recife"}
        ]),
    );
    assert_eq!(after.data["customer_name"], json!("Ana"));
    assert_eq!(after.data["customer"], json!({"name": "Ana Maria", "address": {"city": "Recife"}}));
    // System keys are still there, reset by the modify.
    assert_eq!((after.data["checks"].clone(), after.data["issues"].clone()), (json!({}), json!([])));
}

#[test]
fn set_data_from_the_api_honours_the_allow_list_and_depth() {
    let world = pos();
    let s = world.open(POS);
    let key = s.session_key.clone();
    let api_modify = |batch: Value| block_on(world.hub.modify(&at(POS, &key), &ops(&batch), None, &api()));
    let e = api_modify(json!([{"op": "set_data", "path": "customer_name", "value": "Ana"}])).unwrap_err();
    assert_eq!(code_of(&e), "invalid_path");
    assert_eq!(e.context()["path"], json!("customer_name"));
    let e = api_modify(json!([{"op": "set_data", "path": "customer.a.b.c.d.e", "value": 1}])).unwrap_err();
    assert_eq!(code_of(&e), "invalid_path");
    let ok = api_modify(json!([{"op": "set_data", "path": "customer.a.b.c.d", "value": 1}])).expect("5 segments");
    assert_eq!(ok.data["customer"]["a"]["b"]["c"]["d"], json!(1));
    // Internal callers skip only the allow-list and the depth rule.
    let deep = world.modify_ok(POS, &key, &json!([{"op": "set_data", "path": "x.a.b.c.d.e.f", "value": true}]));
    assert_eq!(deep.data["x"]["a"]["b"]["c"]["d"]["e"]["f"], json!(true));
}

#[test]
fn set_data_refuses_reserved_roots_empty_segments_upper_case_roots_and_non_object_intermediates() {
    let world = pos();
    let s = world.open_with(POS, &json!([{"op": "set_data", "path": "customer", "value": "plain"}]));
    let key = s.session_key.clone();
    let paths = [
        "checks",
        "Issues.x",
        "STATE",
        "status",
        "rev",
        "session_key",
        "channel.x",
        "items",
        "pricing.total_q",
        "pricing_trace",
        "__proto",
        "a..b",
        ".a",
        "a.",
        "Customer.name",
        "customer.name",
    ];
    for path in paths {
        let e = err(&world, POS, &key, &json!([{"op": "set_data", "path": path, "value": 1}]));
        assert_eq!(code_of(&e), "invalid_path", "{path}");
    }
    assert_eq!(world.session(POS, &key).rev, 1);
}

#[test]
fn merge_lines_l1_2_into_l2_3_leaves_only_l2_with_qty_5() {
    let world = pos();
    let s = world.open_with(
        POS,
        &json!([
            {"op": "add_line", "sku": "X", "qty": 2, "unit_price_q": 100, "meta": {"from": true}},
            {"op": "add_line", "sku": "OTHER", "qty": 1, "unit_price_q": 1},
            {"op": "add_line", "sku": "X", "qty": 3, "unit_price_q": 120, "meta": {"into": true}}
        ]),
    );
    let (l1, l2) = (s.items[0].line_id.clone(), s.items[2].line_id.clone());
    let after =
        world.modify_ok(POS, &s.session_key, &json!([{"op": "merge_lines", "from_line_id": l1, "into_line_id": l2}]));
    assert_eq!(after.items.len(), 2);
    assert_eq!(after.items[0].sku, "OTHER");
    let into = &after.items[1];
    assert_eq!(into.line_id, l2);
    assert_eq!((into.qty.millis(), into.unit_price_q, into.line_total_q), (5000, Some(120), Some(600)));
    assert_eq!(Value::Object(into.meta.clone()), json!({"into": true}));
}

#[test]
fn merge_lines_refuses_same_ids_unknown_lines_and_sku_mismatch() {
    let world = pos();
    let s = world
        .open_with(POS, &json!([{"op": "add_line", "sku": "X", "qty": 2}, {"op": "add_line", "sku": "Y", "qty": 3}]));
    let (l1, l2) = (s.items[0].line_id.clone(), s.items[1].line_id.clone());
    let key = s.session_key.clone();
    let cases = [
        (json!({"op": "merge_lines", "from_line_id": l1, "into_line_id": l1}), "invalid_merge"),
        (json!({"op": "merge_lines", "from_line_id": "L-NOPE", "into_line_id": "L-NOPE"}), "invalid_merge"),
        (json!({"op": "merge_lines", "from_line_id": "L-NOPE", "into_line_id": l2}), "unknown_line_id"),
        (json!({"op": "merge_lines", "from_line_id": l1, "into_line_id": "L-NOPE"}), "unknown_line_id"),
        (json!({"op": "merge_lines", "from_line_id": l1, "into_line_id": l2}), "sku_mismatch"),
    ];
    for (op, code) in cases {
        assert_eq!(code_of(&err(&world, POS, &key, &json!([op]))), code, "{op}");
    }
}

#[test]
fn unknown_op_is_unsupported_op() {
    let world = pos();
    let s = world.open(POS);
    let e = err(&world, POS, &s.session_key, &json!([{"op": "explode", "sku": "A"}]));
    assert_eq!(code_of(&e), "unsupported_op");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(e.context()["op"], json!("explode"));
}

#[test]
fn shape_errors_are_reported_for_the_whole_batch_with_field_paths() {
    let error = Op::parse_batch(&json!([
        {"op": "add_line", "sku": "A", "qty": 1},
        {"op": "remove_line"},
        {"op": "add_line", "sku": 5, "qty": 1, "unit_price_q": 1.5, "meta": []},
        {"op": "set_data", "path": "customer.name", "value": null},
        "not an op",
        {"sku": "no op field"}
    ]))
    .unwrap_err();
    let paths: Vec<&str> = error.0.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        ["ops[1].line_id", "ops[2].meta", "ops[2].sku", "ops[2].unit_price_q", "ops[3].value", "ops[4]", "ops[5].op"]
    );
    let e = ModifyError::Validation(error);
    assert_eq!(code_of(&e), "validation_error");
    assert!(e.context()["fields"]["ops[1].line_id"].is_array());
    // Unknown fields are ignored.
    assert!(Op::parse_batch(&json!([{"op": "remove_line", "line_id": "L-1", "extra": 1}])).is_ok());
    assert!(Op::parse_batch(&json!({"op": "remove_line"})).is_err());
}

#[test]
fn a_failing_op_aborts_the_whole_batch_nothing_stored_and_no_directive() {
    let world = World::new(vec![chan_with(1, POS, json!({"required_checks_on_commit": ["stock"]}))]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100}]));
    let before = world.session(POS, &s.session_key);
    let directives_before = world.directives().len();
    let e = err(
        &world,
        POS,
        &s.session_key,
        &json!([
            {"op": "add_line", "sku": "B", "qty": 1},
            {"op": "set_data", "path": "customer.name", "value": "Ana"},
            {"op": "remove_line", "line_id": "L-NOPE"}
        ]),
    );
    assert_eq!(code_of(&e), "unknown_line_id");
    assert_eq!(e.context()["op_index"], json!(2));
    assert_eq!(world.session(POS, &s.session_key), before);
    assert_eq!(world.directives().len(), directives_before);
}

#[test]
fn an_empty_batch_is_accepted_by_the_core_and_still_raises_rev() {
    let world = pos();
    let s = world.open(POS);
    let after = world.modify_ok(POS, &s.session_key, &json!([]));
    assert_eq!((after.rev, after.version), (1, 1));
    assert_eq!(after.updated_at, world.clock.now());
}

#[test]
fn api_modify_gives_rev_1_clears_checks_and_issues_and_enqueues_a_stock_hold_directive() {
    let world = World::new(vec![chan_with(1, POS, json!({"required_checks_on_commit": ["stock"]}))]);
    let s = world.open(POS);
    let key = s.session_key.clone();
    // Something to clear: a check result and an issue written back at rev 0.
    assert!(
        block_on(world.hub.apply_check_result(
            &at(POS, &key),
            0,
            "stock",
            json!({"holds": []}),
            vec![json!({"code": "stock.insufficient", "blocking": true, "message": "no"})],
        ))
        .unwrap()
    );
    assert_eq!(world.session(POS, &key).issues().len(), 1);

    let batch = ops(&json!([{"op": "add_line", "sku": "A", "qty": 1.5, "unit_price_q": 333}]));
    let after = block_on(world.hub.modify(&at(POS, &key), &batch, None, &api())).expect("modify");
    assert_eq!(after.rev, 1);
    assert_eq!(after.data["checks"], json!({}));
    assert_eq!(after.data["issues"], json!([]));

    let holds = world.directives_of("stock.hold");
    assert_eq!(holds.len(), 1);
    let d = &holds[0];
    assert_eq!(d.status, DirectiveStatus::Queued);
    assert_eq!(d.available_at, world.clock.now());
    assert_eq!(d.payload["session_key"], json!(key));
    assert_eq!(d.payload["channel_code"], json!(POS));
    assert_eq!(d.payload["rev"], json!(1));
    // Items in their persisted shape: qty as a 3-decimal string, prices and totals numbers.
    let line = &after.items[0];
    assert_eq!(
        d.payload["items"],
        json!([{"line_id": line.line_id, "sku": "A", "name": "", "qty": "1.500",
                "unit_price_q": 333, "line_total_q": 500, "meta": {}}])
    );
}

#[test]
fn check_directive_topics_come_from_config_then_registered_check_then_code_hold() {
    struct Fraud;
    impl omniman_core::ext::Check for Fraud {
        fn code(&self) -> &'static str {
            "fraud"
        }
        fn topic(&self) -> &'static str {
            "fraud.screen"
        }
    }
    let ext = ExtensionsBuilder::new().check(Fraud).build();
    let config = json!({
        "required_checks_on_commit": ["stock", "fraud"],
        "checks": {"stock": {"directive_topic": "inventory.reserve"}},
        "rules": {"checks": ["address", "stock"]}
    });
    let world = World::with_ext(vec![chan_with(1, POS, config)], ext);
    let s = world.open(POS);
    world.modify_ok(POS, &s.session_key, &json!([]));
    let topics: Vec<String> = world.directives().into_iter().map(|d| d.topic).collect();
    assert_eq!(topics, ["inventory.reserve", "fraud.screen", "address.hold"]);
}

#[test]
fn no_check_config_means_no_directive_on_modify() {
    let world = pos();
    world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    assert!(world.directives().is_empty());
}

#[test]
fn modify_from_an_internal_caller_uses_the_same_rules() {
    let world = pos();
    let s = world.open(POS);
    let e = block_on(world.hub.modify(
        &at(POS, &s.session_key),
        &ops(&json!([{"op": "add_line", "qty": 1}])),
        None,
        &internal(),
    ))
    .unwrap_err();
    assert_eq!(code_of(&e), "missing_sku");
}

#[test]
fn concurrent_modifies_lose_no_update() {
    let world = pos();
    let s = world.open(POS);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..10 {
                    world.modify_ok(POS, &s.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
                }
            });
        }
    });
    let after = world.session(POS, &s.session_key);
    assert_eq!((after.rev, after.version, after.items.len()), (80, 80, 80));
}

#[test]
fn shape_validation_enforces_field_lengths() {
    let long = |n: usize| "x".repeat(n);
    let error = Op::parse_batch(&json!([
        {"op": "add_line", "sku": long(65), "qty": 1, "name": long(201)},
        {"op": "remove_line", "line_id": long(65)},
        {"op": "set_data", "path": long(129), "value": 1}
    ]))
    .unwrap_err();
    let paths: Vec<&str> = error.0.keys().map(String::as_str).collect();
    assert_eq!(paths, ["ops[0].name", "ops[0].sku", "ops[1].line_id", "ops[2].path"]);
    assert!(
        Op::parse_batch(&json!([
            {"op": "add_line", "sku": long(64), "qty": 1, "name": "ã".repeat(200)},
            {"op": "set_data", "path": long(128), "value": 1}
        ]))
        .is_ok()
    );
}

// ---------------------------------------------------------------------------------------------
// Money never saturates
// ---------------------------------------------------------------------------------------------

#[test]
fn a_line_total_beyond_i64_is_invalid_amount_not_saturated() {
    let world = pos();
    let s = world.open(POS);
    let e = err(
        &world,
        POS,
        &s.session_key,
        &json!([{"op": "add_line", "sku": "A", "qty": 4, "unit_price_q": 1_i64 << 62}]),
    );
    assert_eq!(code_of(&e), "invalid_amount");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(e.context()["field"], json!("items[0]"));
    assert!(world.session(POS, &s.session_key).items.is_empty(), "nothing is stored");
}

#[test]
fn a_session_total_beyond_i64_is_invalid_amount_not_saturated() {
    let world = pos();
    let s = world.open(POS);
    let line = json!({"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": i64::MAX});
    let one = world.modify_ok(POS, &s.session_key, &json!([line]));
    assert_eq!(one.total_q(), i64::MAX, "one line of i64::MAX is exact");
    let e = err(&world, POS, &s.session_key, &json!([line]));
    assert_eq!(code_of(&e), "invalid_amount");
    assert_eq!(e.context()["field"], json!("total_q"));
    // Raising a quantity past the limit is refused too.
    let line_id = one.items[0].line_id.clone();
    let e = err(&world, POS, &s.session_key, &json!([{"op": "set_qty", "line_id": line_id, "qty": 2}]));
    assert_eq!(code_of(&e), "invalid_amount");
    assert_eq!(world.session(POS, &s.session_key).items.len(), 1);
}

#[test]
fn commit_refuses_a_stored_session_whose_total_overflows() {
    let world = pos();
    let s = seeded(&world, POS, vec![item("L-1", "A", "1", i64::MAX), item("L-2", "B", "1", i64::MAX)]);
    let e = world.commit(POS, &s.session_key, "k-overflow").expect_err("commit must be refused");
    assert_eq!(code_of(&e), "invalid_amount");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
}
