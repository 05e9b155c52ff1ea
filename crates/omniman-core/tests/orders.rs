//! Orders (docs/reference.md §1.3 and §10): status timestamps, the default and per-channel transition
//! tables (iFood, e-commerce and PDV flows), `terminal_status`, `invalid_transition`, events and
//! `emit_event`, values stored as given, and the automatic transition on create. Also the store side of
//! the order stream of docs/api.md (`orders_after`, `max_order_id`) and the two-decimal total format.
//!
//! Left to other layers:
//! - HTTP layer: `POST /api/orders/{ref}/transition` (`previous_status` in the body), `GET /api/orders`
//!   filters and paging, and the polling stream's JSON shape, `since` parsing (non-numeric → 400).
//! - storage: the transition statement budget (≤ 3) and the compare-and-set on status on real databases.
//! - fulfillment extension: fulfillment transitions (`pending → delivered` → `invalid_transition`).

mod common;

use chrono::TimeDelta;
use common::{World, chan, chan_with, code_of, obj};
use futures_executor::block_on;
use serde_json::{Value, json};

use omniman_core::commit::plan_commit;
use omniman_core::error::ErrorKind;
use omniman_core::money::format_q2;
use omniman_core::order::{OrderFlow, plan_transition};
use omniman_core::ports::{CommitWrite, OrderStore};
use omniman_core::prelude::*;

/// Commits a one-line session on `channel_code` and returns its order ref.
fn new_order(world: &World, channel_code: &str) -> String {
    let s = world.open_with(channel_code, &json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 5000}]));
    world.commit_order(channel_code, &s.session_key, &format!("k-{}", s.session_key)).reference
}

/// Walks an order through `statuses`, each by `actor`, and returns the final order.
fn walk(world: &World, order_ref: &str, statuses: &[&str]) -> Order {
    for status in statuses {
        world.clock.advance(TimeDelta::minutes(1));
        world.transition(order_ref, status, "staff").unwrap_or_else(|e| panic!("→ {status}: {e}"));
    }
    world.order(order_ref)
}

fn refused(world: &World, order_ref: &str, status: &str) -> TransitionError {
    world.transition(order_ref, status, "staff").expect_err("transition must be refused")
}

fn ifood_config() -> Value {
    json!({
        "order_flow": {
            "transitions": {
                "new": ["confirmed", "cancelled"],
                "confirmed": ["processing", "cancelled"],
                "processing": ["ready", "cancelled"],
                "ready": ["dispatched"],
                "dispatched": ["delivered", "returned"],
                "delivered": ["completed", "returned"],
                "completed": [],
                "returned": ["completed"]
            },
            "terminal_statuses": ["completed", "cancelled"]
        },
        "auto_transitions": {"on_create": "confirmed"},
        "status_labels": {"new": "Recebido", "confirmed": "Aceito"}
    })
}

fn ecommerce_config() -> Value {
    json!({
        "order_flow": {
            "transitions": {
                "new": ["confirmed", "cancelled"],
                "confirmed": ["processing", "cancelled"],
                "processing": ["ready", "cancelled"],
                "ready": ["dispatched", "completed"],
                "dispatched": ["delivered", "returned"],
                "delivered": ["completed", "returned"],
                "completed": [],
                "cancelled": [],
                "returned": ["completed"]
            },
            "terminal_statuses": ["completed", "cancelled"]
        }
    })
}

fn pdv_config() -> Value {
    json!({
        "order_flow": {
            "transitions": {
                "new": ["confirmed", "cancelled"],
                "confirmed": ["completed", "cancelled"],
                "completed": [],
                "cancelled": []
            },
            "terminal_statuses": ["completed", "cancelled"]
        },
        "terminology": {"session": "Atendimento", "order": "Venda"}
    })
}

fn flows_world() -> World {
    let ifood = Channel {
        name: "iFood".into(),
        pricing_policy: PricingPolicy::External,
        ..chan_with(2, "ifood", ifood_config())
    };
    World::new(vec![
        chan(1, "shop"),
        ifood,
        chan_with(3, "ecommerce", ecommerce_config()),
        chan_with(4, "pdv", pdv_config()),
    ])
}

// ---------------------------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------------------------

#[test]
fn each_status_sets_its_timestamp_when_first_entered() {
    let world = flows_world();
    let order_ref = new_order(&world, "shop");
    let created = world.order(&order_ref);
    assert_eq!(created.timestamps, omniman_core::order::StatusTimestamps::default());
    let start = world.clock.now();
    let order = walk(
        &world,
        &order_ref,
        &["confirmed", "processing", "ready", "dispatched", "delivered", "returned", "completed"],
    );
    let t = |minutes| Some(start + TimeDelta::minutes(minutes));
    let ts = &order.timestamps;
    assert_eq!(
        [
            ts.confirmed_at,
            ts.processing_at,
            ts.ready_at,
            ts.dispatched_at,
            ts.delivered_at,
            ts.returned_at,
            ts.completed_at
        ],
        [t(1), t(2), t(3), t(4), t(5), t(6), t(7)]
    );
    assert_eq!(ts.cancelled_at, None);
    assert_eq!(order.updated_at, world.clock.now());
    assert_eq!(order.created_at, created.created_at);

    let cancelled = new_order(&world, "shop");
    world.clock.advance(TimeDelta::minutes(1));
    let moved = world.transition(&cancelled, "cancelled", "customer").expect("cancel from new");
    assert_eq!(moved.order.timestamps.cancelled_at, Some(world.clock.now()));
}

#[test]
fn a_timestamp_already_set_is_never_overwritten() {
    // Re-entering a status (a flow with a loop) keeps the first instant.
    let looping = json!({"order_flow": {"transitions": {
        "new": ["confirmed"], "confirmed": ["processing"], "processing": ["confirmed", "ready"], "ready": []
    }}});
    let world = World::new(vec![chan_with(1, "loop", looping)]);
    let order_ref = new_order(&world, "loop");
    let order = walk(&world, &order_ref, &["confirmed", "processing", "confirmed", "processing", "ready"]);
    let start = order.created_at;
    assert_eq!(order.timestamps.confirmed_at, Some(start + TimeDelta::minutes(1)));
    assert_eq!(order.timestamps.processing_at, Some(start + TimeDelta::minutes(2)));
    assert_eq!(order.timestamps.ready_at, Some(start + TimeDelta::minutes(5)));

    // A value forced in beforehand is kept by the pure decision too.
    let mut forced = order.clone();
    forced.status = "new".into();
    let earlier = start - TimeDelta::hours(1);
    forced.timestamps.confirmed_at = Some(earlier);
    let plan =
        plan_transition(&forced, &OrderFlow::default_flow(), "confirmed", "test", None, start + TimeDelta::hours(2))
            .expect("new → confirmed");
    assert_eq!(plan.order.timestamps.confirmed_at, Some(earlier));
    assert_eq!(plan.order.updated_at, start + TimeDelta::hours(2));
}

#[test]
fn the_pickup_flow_leaves_dispatched_at_empty() {
    let world = flows_world();
    let order_ref = new_order(&world, "ecommerce");
    let order = walk(&world, &order_ref, &["confirmed", "processing", "ready", "completed"]);
    assert_eq!(order.status, "completed");
    assert_eq!(order.timestamps.dispatched_at, None);
    assert_eq!(order.timestamps.delivered_at, None);
    assert!(order.timestamps.ready_at.is_some() && order.timestamps.completed_at.is_some());
}

// ---------------------------------------------------------------------------------------------
// Default table
// ---------------------------------------------------------------------------------------------

#[test]
fn new_to_confirmed_is_allowed() {
    let world = flows_world();
    let order_ref = new_order(&world, "shop");
    let moved = world.transition(&order_ref, "confirmed", "admin").expect("allowed");
    assert_eq!(moved.previous_status, "new");
    assert_eq!(moved.order.status, "confirmed");
    assert_eq!(world.order(&order_ref).status, "confirmed");
}

#[test]
fn new_to_delivered_is_invalid_transition_with_allowed_transitions() {
    let world = flows_world();
    let order_ref = new_order(&world, "shop");
    let e = refused(&world, &order_ref, "delivered");
    assert_eq!((code_of(&e), e.kind()), ("invalid_transition".to_owned(), ErrorKind::Conflict));
    assert_eq!(
        Value::Object(e.context()),
        json!({"current_status": "new", "requested_status": "delivered", "allowed_transitions": ["confirmed", "cancelled"]})
    );
    assert_eq!(world.order(&order_ref).status, "new");
    assert_eq!(world.events(&order_ref).len(), 1, "no event for a refused transition");
}

#[test]
fn leaving_completed_is_terminal_status() {
    let world = flows_world();
    let order_ref = new_order(&world, "shop");
    walk(&world, &order_ref, &["confirmed", "ready", "completed"]);
    for status in ["returned", "cancelled", "new", "completed"] {
        let e = refused(&world, &order_ref, status);
        assert_eq!((code_of(&e), e.kind()), ("terminal_status".to_owned(), ErrorKind::Conflict));
        assert_eq!(Value::Object(e.context()), json!({"current_status": "completed", "requested_status": status}));
    }
    let cancelled = new_order(&world, "shop");
    walk(&world, &cancelled, &["cancelled"]);
    assert_eq!(code_of(&refused(&world, &cancelled, "confirmed")), "terminal_status");
}

#[test]
fn can_transition_to_from_new_is_confirmed_and_cancelled_only() {
    let flow = OrderFlow::default_flow();
    assert!(flow.can_transition("new", "confirmed"));
    assert!(flow.can_transition("new", "cancelled"));
    assert!(!flow.can_transition("new", "processing"));
    assert!(!flow.can_transition("new", "delivered"));
    assert!(!flow.can_transition("new", "new"), "staying is not implicit");
    assert_eq!(flow.allowed_transitions("new"), ["confirmed", "cancelled"]);
    assert!(flow.allowed_transitions("completed").is_empty());
    assert!(flow.allowed_transitions("unheard-of").is_empty());
}

#[test]
fn the_default_table_is_the_spec_table() {
    let flow = OrderFlow::default_flow();
    let table: Vec<(&str, Vec<&str>)> =
        ["new", "confirmed", "processing", "ready", "dispatched", "delivered", "returned", "completed", "cancelled"]
            .into_iter()
            .map(|s| (s, flow.allowed_transitions(s).iter().map(String::as_str).collect()))
            .collect();
    assert_eq!(
        table,
        [
            ("new", vec!["confirmed", "cancelled"]),
            ("confirmed", vec!["processing", "ready", "cancelled"]),
            ("processing", vec!["ready", "cancelled"]),
            ("ready", vec!["dispatched", "completed"]),
            ("dispatched", vec!["delivered", "returned"]),
            ("delivered", vec!["completed", "returned"]),
            ("returned", vec!["completed"]),
            ("completed", vec![]),
            ("cancelled", vec![]),
        ]
    );
    assert!(flow.is_terminal("completed") && flow.is_terminal("cancelled") && !flow.is_terminal("returned"));
    assert_eq!(flow.initial_status(), "new");
}

#[test]
fn an_empty_config_uses_the_default_table() {
    let world = World::new(vec![chan_with(1, "empty", json!({}))]);
    let channel = world.channel("empty");
    assert_eq!(OrderFlow::for_channel(&channel), OrderFlow::default_flow());
    let order_ref = new_order(&world, "empty");
    assert_eq!(walk(&world, &order_ref, &["cancelled"]).status, "cancelled");
}

// ---------------------------------------------------------------------------------------------
// Per-channel tables
// ---------------------------------------------------------------------------------------------

#[test]
fn a_custom_table_replaces_the_default_entirely() {
    let custom = json!({"order_flow": {"transitions": {"new": ["processing"], "processing": ["done"]}}});
    let world = World::new(vec![chan_with(1, "custom", custom)]);
    let order_ref = new_order(&world, "custom");
    let e = refused(&world, &order_ref, "confirmed");
    assert_eq!(code_of(&e), "invalid_transition");
    assert_eq!(e.context()["allowed_transitions"], json!(["processing"]));
    world.transition(&order_ref, "processing", "staff").expect("new → processing");
    world.transition(&order_ref, "done", "staff").expect("custom status");
    // `done` is missing from the table: no exits, although not terminal.
    let e = refused(&world, &order_ref, "processing");
    assert_eq!(code_of(&e), "invalid_transition");
    assert_eq!(e.context()["allowed_transitions"], json!([]));
}

#[test]
fn custom_terminal_statuses_replace_the_default_ones() {
    let config = json!({"order_flow": {
        "transitions": {"new": ["delivered"], "delivered": ["completed"], "completed": ["returned"]},
        "terminal_statuses": ["delivered"]
    }});
    let world = World::new(vec![chan_with(1, "c", config)]);
    let order_ref = new_order(&world, "c");
    world.transition(&order_ref, "delivered", "staff").expect("new → delivered");
    // Terminal although the table lists an exit.
    assert_eq!(code_of(&refused(&world, &order_ref, "completed")), "terminal_status");
}

#[test]
fn the_shopman_flow_alias_is_used_when_order_flow_is_absent() {
    let world =
        World::new(vec![chan_with(1, "alias", json!({"flow": {"transitions": {"new": ["ready"], "ready": []}}}))]);
    let order_ref = new_order(&world, "alias");
    world.transition(&order_ref, "ready", "staff").expect("alias table");
    assert_eq!(code_of(&refused(&world, &new_order(&world, "alias"), "confirmed")), "invalid_transition");
}

#[test]
fn ifood_happy_path_delivery() {
    let world = flows_world();
    let order_ref = new_order(&world, "ifood");
    // The channel confirms on create.
    assert_eq!(world.order(&order_ref).status, "confirmed");
    let order = walk(&world, &order_ref, &["processing", "ready", "dispatched", "delivered", "completed"]);
    assert_eq!(order.status, "completed");
    let ts = &order.timestamps;
    for (name, at) in [
        ("confirmed", ts.confirmed_at),
        ("processing", ts.processing_at),
        ("ready", ts.ready_at),
        ("dispatched", ts.dispatched_at),
        ("delivered", ts.delivered_at),
        ("completed", ts.completed_at),
    ] {
        assert!(at.is_some(), "{name}_at");
    }
}

#[test]
fn ifood_cancellation_during_preparation_and_return_after_delivery() {
    let world = flows_world();
    let cancelled = new_order(&world, "ifood");
    let order = walk(&world, &cancelled, &["processing", "cancelled"]);
    assert_eq!(order.status, "cancelled");
    assert!(order.timestamps.cancelled_at.is_some());

    let returned = new_order(&world, "ifood");
    let order = walk(&world, &returned, &["processing", "ready", "dispatched", "delivered", "returned", "completed"]);
    assert_eq!(order.status, "completed");
    assert!(order.timestamps.returned_at.is_some());
}

#[test]
fn ifood_cannot_skip_states() {
    let world = flows_world();
    let order_ref = new_order(&world, "ifood");
    for skipped in ["ready", "dispatched", "delivered", "completed"] {
        assert_eq!(code_of(&refused(&world, &order_ref, skipped)), "invalid_transition", "confirmed → {skipped}");
    }
    walk(&world, &order_ref, &["processing", "ready"]);
    // iFood's `ready` has no pickup exit.
    let e = refused(&world, &order_ref, "completed");
    assert_eq!(e.context()["allowed_transitions"], json!(["dispatched"]));
}

#[test]
fn ecommerce_delivery_pickup_cancellation_and_return_flows() {
    let world = flows_world();
    let delivery = new_order(&world, "ecommerce");
    let order = walk(&world, &delivery, &["confirmed", "processing", "ready", "dispatched", "delivered", "completed"]);
    assert_eq!(order.status, "completed");

    let pickup = new_order(&world, "ecommerce");
    assert_eq!(walk(&world, &pickup, &["confirmed", "processing", "ready", "completed"]).status, "completed");

    let timeout = new_order(&world, "ecommerce");
    assert_eq!(walk(&world, &timeout, &["cancelled"]).status, "cancelled");

    let returned = new_order(&world, "ecommerce");
    let order = walk(
        &world,
        &returned,
        &["confirmed", "processing", "ready", "dispatched", "delivered", "returned", "completed"],
    );
    assert_eq!(order.status, "completed");
    assert!(order.timestamps.returned_at.is_some());
}

#[test]
fn pdv_quick_sale_cancellation_and_no_delivery_states() {
    let world = flows_world();
    let sale = new_order(&world, "pdv");
    let order = walk(&world, &sale, &["confirmed", "completed"]);
    assert!(order.timestamps.confirmed_at.is_some() && order.timestamps.completed_at.is_some());

    let cancelled = new_order(&world, "pdv");
    assert_eq!(walk(&world, &cancelled, &["cancelled"]).status, "cancelled");

    let counter = new_order(&world, "pdv");
    walk(&world, &counter, &["confirmed"]);
    for status in ["processing", "ready", "dispatched", "delivered"] {
        assert_eq!(code_of(&refused(&world, &counter, status)), "invalid_transition");
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[test]
fn each_transition_appends_one_status_changed_event_in_order() {
    let world = flows_world();
    let order_ref = new_order(&world, "shop");
    world.transition(&order_ref, "confirmed", "admin").expect("confirm");
    block_on(world.hub.transition_order(&order_ref, "cancelled", Some("out of stock"), &Caller::internal("customer")))
        .expect("cancel");
    let events = world.events(&order_ref);
    let summary: Vec<(i64, &str, &str)> =
        events.iter().map(|e| (e.seq, e.event_type.as_str(), e.actor.as_str())).collect();
    assert_eq!(summary, [(0, "created", "till-1"), (1, "status_changed", "admin"), (2, "status_changed", "customer")]);
    assert_eq!(Value::Object(events[1].payload.clone()), json!({"old_status": "new", "new_status": "confirmed"}));
    assert_eq!(
        Value::Object(events[2].payload.clone()),
        json!({"old_status": "confirmed", "new_status": "cancelled", "note": "out of stock"})
    );
}

#[test]
fn emit_event_keeps_type_actor_and_payload_with_seq_0_1_2() {
    let world = flows_world();
    let order_ref = new_order(&world, "shop");
    let payload = obj(json!({"note": "Cliente solicitou entrega rápida", "n": [1, 2]}));
    world.clock.advance(TimeDelta::seconds(10));
    let event = block_on(world.hub.emit_event(&order_ref, "note_added", "support", payload.clone())).expect("emit");
    assert_eq!((event.seq, event.event_type.as_str(), event.actor.as_str()), (1, "note_added", "support"));
    assert_eq!(event.payload, payload);
    assert_eq!(event.created_at, world.clock.now());
    for name in ["event_2", "event_3"] {
        block_on(world.hub.emit_event(&order_ref, name, "x", serde_json::Map::new())).expect("emit");
    }
    world.transition(&order_ref, "confirmed", "admin").expect("confirm");
    let events = world.events(&order_ref);
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["created", "note_added", "event_2", "event_3", "status_changed"]);
    assert_eq!(events[1], event);
    // Emitting changes nothing else.
    assert_eq!(world.order(&order_ref).status, "confirmed");
}

#[test]
fn emit_event_and_transition_refuse_unknown_orders_and_bad_input() {
    let world = flows_world();
    let e = block_on(world.hub.emit_event("ORD-NOPE", "x", "a", serde_json::Map::new())).unwrap_err();
    assert_eq!((code_of(&e), e.kind()), ("order_not_found".to_owned(), ErrorKind::NotFound));
    assert_eq!(code_of(&refused(&world, "ORD-NOPE", "confirmed")), "order_not_found");
    let order_ref = new_order(&world, "shop");
    let e = block_on(world.hub.emit_event(&order_ref, &"t".repeat(65), "a", serde_json::Map::new())).unwrap_err();
    assert_eq!(code_of(&e), "validation_error");
    assert_eq!(code_of(&refused(&world, &order_ref, "")), "validation_error");
    assert_eq!(code_of(&refused(&world, &order_ref, &"s".repeat(33))), "validation_error");
}

#[test]
fn a_second_handle_on_the_order_transitions_from_the_fresh_status() {
    let world = flows_world();
    let order_ref = new_order(&world, "shop");
    let (channel, first_handle) = block_on(world.hub.order(&order_ref)).expect("order");
    let second_handle = first_handle.clone();
    world.transition(&first_handle.reference, "confirmed", "user1").expect("user1");
    // The second caller still holds `new` but the service reads the fresh status.
    let moved = world.transition(&second_handle.reference, "processing", "user2").expect("user2");
    assert_eq!(moved.previous_status, "confirmed");
    assert_eq!(world.order(&order_ref).status, "processing");

    // A write decided on the stale copy is refused by the store (compare-and-set on status).
    let now = world.clock.now();
    let stale = plan_transition(&second_handle, &OrderFlow::for_channel(&channel), "cancelled", "user3", None, now)
        .expect("decided on a stale copy");
    assert!(!block_on(world.store().transition(&stale)).expect("store"));
    assert_eq!(world.order(&order_ref).status, "processing");
    assert_eq!(world.events(&order_ref).len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Stored as given
// ---------------------------------------------------------------------------------------------

#[test]
fn totals_of_0_and_99_999_999_999_are_stored_as_given() {
    let world = flows_world();
    for total in [0, 99_999_999_999_i64] {
        let s = world.open_with("shop", &json!([{"op": "add_line", "sku": "X", "qty": 1, "unit_price_q": total}]));
        let order = world.commit_order("shop", &s.session_key, &format!("k{total}"));
        assert_eq!(order.total_q, total);
        assert_eq!(order.items[0].line_total_q, total);
        world.transition(&order.reference, "confirmed", "promo").expect("transitions regardless of total");
    }
}

#[test]
fn a_qty_of_2_5_is_stored_as_given() {
    let world = flows_world();
    let s = world.open_with("shop", &json!([{"op": "add_line", "sku": "X", "qty": 2.5, "unit_price_q": 1000}]));
    let order = world.commit_order("shop", &s.session_key, "k");
    assert_eq!(order.items[0].qty.to_string(), "2.500");
    assert_eq!(order.items[0].line_total_q, 2500);
    assert_eq!(order.snapshot["items"][0]["qty"], json!("2.500"));
}

#[test]
fn handles_with_special_characters_are_stored_as_given() {
    let world = flows_world();
    let opened = world.open_handle("shop", "mesa", "Mesa #12 - João & Maria");
    world.modify_ok("shop", &opened.session.session_key, &json!([{"op": "add_line", "sku": "X", "qty": 1}]));
    let order = world.commit_order("shop", &opened.session.session_key, "k");
    assert_eq!(order.handle_type.as_deref(), Some("mesa"));
    assert_eq!(order.handle_ref.as_deref(), Some("Mesa #12 - João & Maria"));
    let again = world.open_handle("shop", "mesa", "Mesa #12 - João & Maria");
    assert!(again.created, "the committed session released the handle");
}

#[test]
fn a_128_character_external_ref_is_stored_as_given() {
    // `external_ref` is set by importers: the plan they write carries it.
    let world = flows_world();
    let s = world.open_with("shop", &json!([{"op": "add_line", "sku": "X", "qty": 1, "unit_price_q": 1000}]));
    let channel = world.channel("shop");
    let ctx = Ctx::new(Caller::internal("importer"), world.clock.now());
    let mut plan = plan_commit(
        &s,
        &channel,
        "import-1",
        None,
        &Extensions::default(),
        &CommitSettings::default(),
        &ctx,
        &mut RandomIds::seeded(9),
    )
    .expect("plan");
    let external = "x".repeat(128);
    plan.order.external_ref = Some(external.clone());
    let CommitWrite::Committed(order) = block_on(world.store().commit(&plan)).expect("store") else {
        panic!("not committed");
    };
    assert_eq!(world.order(&order.reference).external_ref.as_deref(), Some(external.as_str()));
}

// ---------------------------------------------------------------------------------------------
// Automatic transition on create
// ---------------------------------------------------------------------------------------------

#[test]
fn auto_transition_on_create_runs_after_commit_as_system() {
    for config in [
        json!({"order_flow": {"auto_transitions": {"on_create": "confirmed"}}}),
        json!({"auto_transitions": {"on_create": "confirmed"}}),
    ] {
        let world = World::new(vec![chan_with(1, "auto", config.clone())]);
        let s = world.open_with("auto", &json!([{"op": "add_line", "sku": "X", "qty": 1}]));
        let answer = world.commit("auto", &s.session_key, "k").expect("commit");
        assert_eq!(answer.body["status"], json!("committed"));
        let order_ref = answer.order_ref().unwrap();
        let order = world.order(order_ref);
        assert_eq!(order.status, "confirmed", "{config}");
        assert_eq!(order.timestamps.confirmed_at, Some(world.clock.now()));
        let events = world.events(order_ref);
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[1].seq, events[1].event_type.as_str(), events[1].actor.as_str()),
            (1, "status_changed", "system")
        );
        assert_eq!(events[1].payload["old_status"], json!("new"));
    }
}

#[test]
fn a_refused_auto_transition_leaves_the_initial_status() {
    let world = World::new(vec![chan_with(1, "auto", json!({"auto_transitions": {"on_create": "delivered"}}))]);
    let s = world.open_with("auto", &json!([{"op": "add_line", "sku": "X", "qty": 1}]));
    let answer = world.commit("auto", &s.session_key, "k").expect("commit still succeeds");
    assert_eq!(answer.code, 201);
    let order_ref = answer.order_ref().unwrap();
    assert_eq!(world.order(order_ref).status, "new");
    assert_eq!(world.events(order_ref).len(), 1);
}

#[test]
fn auto_transition_starts_from_a_configured_initial_status() {
    let config = json!({"order_flow": {
        "initial_status": "received",
        "transitions": {"received": ["accepted"], "accepted": []},
        "auto_transitions": {"on_create": "accepted"}
    }});
    let world = World::new(vec![chan_with(1, "auto", config)]);
    let s = world.open_with("auto", &json!([{"op": "add_line", "sku": "X", "qty": 1}]));
    let order = world.commit_order("auto", &s.session_key, "k");
    assert_eq!(order.status, "accepted");
    assert_eq!(world.events(&order.reference)[1].payload["old_status"], json!("received"));
}

// ---------------------------------------------------------------------------------------------
// Polling stream: the store side
// ---------------------------------------------------------------------------------------------

#[test]
fn the_stream_port_returns_at_most_n_newer_orders_ascending_and_the_max_id() {
    let world = flows_world();
    assert_eq!(block_on(world.store().max_order_id()).unwrap(), 0);
    assert!(block_on(world.store().orders_after(0, 10)).unwrap().is_empty());
    let refs: Vec<String> = (0..12).map(|_| new_order(&world, "shop")).collect();
    let all = block_on(world.store().orders_after(0, 10)).unwrap();
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(all.iter().map(|o| o.reference.clone()).collect::<Vec<_>>(), refs[..10]);
    let max = block_on(world.store().max_order_id()).unwrap();
    assert_eq!(max, world.order(&refs[11]).id);
    let tail = block_on(world.store().orders_after(all[9].id, 10)).unwrap();
    assert_eq!(tail.iter().map(|o| o.reference.clone()).collect::<Vec<_>>(), refs[10..]);
    assert!(block_on(world.store().orders_after(max, 10)).unwrap().is_empty());
    assert_eq!((tail[0].total_q, tail[0].items_count, tail[0].channel_code.as_str()), (5000, 1, "shop"));
}

#[test]
fn stream_totals_have_two_decimals() {
    assert_eq!(format_q2(0), "0.00");
    assert_eq!(format_q2(2500), "25.00");
    assert_eq!(format_q2(99_999_999_999), "999999999.99");
}
