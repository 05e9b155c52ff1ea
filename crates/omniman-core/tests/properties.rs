//! Properties of the core that must hold for every input (docs/reference.md §2, §4, §5, §6, §10):
//!
//! - a failed batch leaves the session byte-for-byte unchanged (service + in-memory store, and
//!   `apply_ops` on a clone);
//! - each successful modify raises `rev` by exactly one and resets `data.checks` / `data.issues`;
//! - an order's `total_q` is the sum of its line totals;
//! - `monetary_mult` is the exact product rounded half away from zero;
//! - no transition ever leaves a terminal status (random statuses and random flows);
//! - `Session`, `Op` and `Order` survive a JSON round trip.

mod common;

use chrono::{DateTime, Utc};
use common::{World, at, chan_with, internal};
use futures_executor::block_on;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use omniman_core::commit::plan_commit;
use omniman_core::ext::{Modifier, Validator, ValidatorStage};
use omniman_core::ops::QtyInput;
use omniman_core::order::{OrderFlow, OrderItem, StatusTimestamps, TransitionError, plan_transition};
use omniman_core::prelude::*;

const POS: &str = "pos";

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_map() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(".{0,8}", arb_json(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn arb_instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0_i64..4_102_444_800, 0_u32..1_000_000_000).prop_map(|(s, n)| DateTime::from_timestamp(s, n).expect("in range"))
}

fn arb_qty() -> impl Strategy<Value = Qty> {
    (1_i64..=999_999_999_999).prop_map(|m| Qty::from_millis(m).expect("in range"))
}

fn arb_item() -> impl Strategy<Value = Item> {
    (".{0,16}", ".{0,16}", ".{0,16}", arb_qty(), option::of(any::<i64>()), option::of(any::<i64>()), arb_map())
        .prop_map(|(line_id, sku, name, qty, unit_price_q, line_total_q, meta)| Item {
            line_id,
            sku,
            name,
            qty,
            unit_price_q,
            line_total_q,
            meta,
        })
}

fn arb_state() -> impl Strategy<Value = SessionState> {
    prop_oneof![Just(SessionState::Open), Just(SessionState::Committed), Just(SessionState::Abandoned)]
}

fn arb_session() -> impl Strategy<Value = Session> {
    let ids = (any::<i64>(), any::<i64>(), ".{0,12}", ".{0,64}", option::of(".{0,32}"), option::of(".{0,64}"));
    let state = (
        arb_state(),
        prop_oneof![Just(PricingPolicy::Internal), Just(PricingPolicy::External)],
        prop_oneof![Just(EditPolicy::Open), Just(EditPolicy::Locked)],
        any::<i64>(),
        any::<i64>(),
    );
    let body = (vec(arb_item(), 0..4), arb_map(), arb_map(), vec(arb_json(), 0..3), option::of(".{0,128}"));
    let times = (arb_instant(), arb_instant(), option::of(arb_instant()));
    (ids, state, body, times).prop_map(
        |(
            (id, channel_id, channel_code, session_key, handle_type, handle_ref),
            (state, pricing_policy, edit_policy, rev, version),
            (items, data, pricing, pricing_trace, commit_token),
            (opened_at, updated_at, committed_at),
        )| Session {
            id,
            channel_id,
            channel_code,
            session_key,
            handle_type,
            handle_ref,
            state,
            pricing_policy,
            edit_policy,
            rev,
            version,
            items,
            data,
            pricing,
            pricing_trace,
            commit_token,
            opened_at,
            updated_at,
            committed_at,
        },
    )
}

fn arb_order_item() -> impl Strategy<Value = OrderItem> {
    (".{0,16}", ".{0,16}", ".{0,16}", arb_qty(), any::<i64>(), any::<i64>(), arb_map()).prop_map(
        |(line_id, sku, name, qty, unit_price_q, line_total_q, meta)| OrderItem {
            line_id,
            sku,
            name,
            qty,
            unit_price_q,
            line_total_q,
            meta,
        },
    )
}

fn arb_timestamps() -> impl Strategy<Value = StatusTimestamps> {
    vec(option::of(arb_instant()), 8).prop_map(|t| StatusTimestamps {
        confirmed_at: t[0],
        processing_at: t[1],
        ready_at: t[2],
        dispatched_at: t[3],
        delivered_at: t[4],
        completed_at: t[5],
        cancelled_at: t[6],
        returned_at: t[7],
    })
}

fn arb_order() -> impl Strategy<Value = Order> {
    let ids =
        (any::<i64>(), ".{0,64}", any::<i64>(), ".{0,12}", ".{0,64}", option::of(".{0,32}"), option::of(".{0,64}"));
    let body = (
        option::of(".{0,128}"),
        ".{0,32}",
        arb_json(),
        arb_map(),
        "[A-Z]{3}",
        any::<i64>(),
        vec(arb_order_item(), 0..4),
    );
    let times = (arb_instant(), arb_instant(), arb_timestamps());
    (ids, body, times).prop_map(
        |(
            (id, reference, channel_id, channel_code, session_key, handle_type, handle_ref),
            (external_ref, status, snapshot, data, currency, total_q, items),
            (created_at, updated_at, timestamps),
        )| Order {
            id,
            reference,
            channel_id,
            channel_code,
            session_key,
            handle_type,
            handle_ref,
            external_ref,
            status,
            snapshot,
            data,
            currency,
            total_q,
            items,
            created_at,
            updated_at,
            timestamps,
        },
    )
}

/// Quantities as sent: valid ones, or values `Qty::from_json` refuses.
fn arb_qty_input() -> impl Strategy<Value = QtyInput> {
    let invalid = prop::sample::select(vec![
        json!(0),
        json!(-1),
        json!("abc"),
        json!("1.2345"),
        json!(true),
        Value::Null,
        json!({}),
        json!([1]),
        json!("1000000000"),
        json!(1e20),
        json!(-0.5),
    ]);
    prop_oneof![arb_qty().prop_map(QtyInput::Valid), invalid.prop_map(QtyInput::Invalid)]
}

fn arb_op() -> impl Strategy<Value = Op> {
    let known = ["add_line", "remove_line", "set_qty", "replace_sku", "set_data", "merge_lines"];
    prop_oneof![
        (".{0,64}", arb_qty_input(), option::of(any::<i64>()), option::of(".{0,30}"), option::of(arb_map()))
            .prop_map(|(sku, qty, unit_price_q, name, meta)| Op::AddLine { sku, qty, unit_price_q, name, meta }),
        ".{0,64}".prop_map(|line_id| Op::RemoveLine { line_id }),
        (".{0,64}", arb_qty_input()).prop_map(|(line_id, qty)| Op::SetQty { line_id, qty }),
        (".{0,64}", ".{0,64}", option::of(any::<i64>()), option::of(".{0,30}"), option::of(arb_map())).prop_map(
            |(line_id, sku, unit_price_q, name, meta)| Op::ReplaceSku { line_id, sku, unit_price_q, name, meta }
        ),
        (".{0,128}", arb_json().prop_filter("value may not be null", |v| !v.is_null()))
            .prop_map(|(path, value)| Op::SetData { path, value }),
        (".{0,64}", ".{0,64}").prop_map(|(from_line_id, into_line_id)| Op::MergeLines { from_line_id, into_line_id }),
        "[a-z_]{1,12}"
            .prop_filter("an unknown op name", move |op| !known.contains(&op.as_str()))
            .prop_map(|op| Op::Unsupported { op }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Batches against a seeded session
// ---------------------------------------------------------------------------------------------

/// An op aimed at a session holding lines `L[0..3]` (given by index), valid or not.
#[derive(Clone, Debug)]
enum OpSpec {
    Add { sku: &'static str, millis: i64, price: Option<i64> },
    Remove(usize),
    SetQty(usize, i64),
    Replace(usize, &'static str, Option<i64>),
    SetData(&'static str, i64),
    Merge(usize, usize),
}

fn arb_spec() -> impl Strategy<Value = OpSpec> {
    let sku = prop::sample::select(vec!["A", "B", "C"]);
    let price = option::of(-1000_i64..10_000);
    prop_oneof![
        (sku.clone(), 1_i64..20_000, price.clone()).prop_map(|(sku, millis, price)| OpSpec::Add { sku, millis, price }),
        (0_usize..4).prop_map(OpSpec::Remove),
        (0_usize..4, 0_i64..20_000).prop_map(|(i, m)| OpSpec::SetQty(i, m)),
        (0_usize..4, sku, price).prop_map(|(i, s, p)| OpSpec::Replace(i, s, p)),
        (prop::sample::select(vec!["customer.name", "notes", "delivery.address.city", "tags"]), any::<i64>())
            .prop_map(|(p, v)| OpSpec::SetData(p, v)),
        (0_usize..4, 0_usize..4).prop_map(|(a, b)| OpSpec::Merge(a, b)),
    ]
}

/// Ops that fail whatever precedes them.
fn arb_failing() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!({"op": "remove_line", "line_id": "L-NOPE"}),
        json!({"op": "set_qty", "line_id": "L-NOPE", "qty": 1}),
        json!({"op": "add_line", "sku": "", "qty": 1}),
        json!({"op": "add_line", "sku": "A", "qty": 0}),
        json!({"op": "merge_lines", "from_line_id": "L-NOPE", "into_line_id": "L-NOPE"}),
        json!({"op": "explode"}),
        json!({"op": "set_data", "path": "checks.x", "value": 1}),
        json!({"op": "set_data", "path": "a..b", "value": 1}),
        // Refused by the draft validator after the modifiers ran.
        json!({"op": "add_line", "sku": "BAD", "qty": 1}),
        // Refused by a modifier.
        json!({"op": "add_line", "sku": "BOOM", "qty": 1}),
    ])
}

/// The JSON of a spec; index 3 names a line that does not exist.
fn spec_json(spec: &OpSpec, lines: &[String]) -> Value {
    let line = |i: usize| lines.get(i).cloned().unwrap_or_else(|| "L-MISSING".into());
    let qty = |m: i64| if m == 0 { json!(0) } else { json!(Qty::from_millis(m).expect("in range").to_string()) };
    let mut op = match spec {
        OpSpec::Add { sku, millis, .. } => json!({"op": "add_line", "sku": sku, "qty": qty(*millis)}),
        OpSpec::Remove(i) => json!({"op": "remove_line", "line_id": line(*i)}),
        OpSpec::SetQty(i, m) => json!({"op": "set_qty", "line_id": line(*i), "qty": qty(*m)}),
        OpSpec::Replace(i, sku, _) => json!({"op": "replace_sku", "line_id": line(*i), "sku": sku}),
        OpSpec::SetData(path, v) => json!({"op": "set_data", "path": path, "value": v}),
        OpSpec::Merge(a, b) => json!({"op": "merge_lines", "from_line_id": line(*a), "into_line_id": line(*b)}),
    };
    if let OpSpec::Add { price: Some(p), .. } | OpSpec::Replace(_, _, Some(p)) = spec {
        op["unit_price_q"] = json!(p);
    }
    op
}

/// Writes into `data.meta` and `pricing`; refuses SKU `BOOM`.
struct Scribble;

impl Modifier for Scribble {
    fn code(&self) -> &'static str {
        "scribble"
    }
    fn order(&self) -> i32 {
        20
    }
    fn apply(&self, _c: &Channel, draft: &mut Session, _ctx: &Ctx) -> Result<(), Rejection> {
        if draft.items.iter().any(|i| i.sku == "BOOM") {
            return Err(Rejection::new("boom", "refused by a modifier"));
        }
        let runs = draft.pricing.get("runs").and_then(Value::as_i64).unwrap_or(0);
        draft.pricing.insert("runs".into(), json!(runs + 1));
        draft.data.insert("meta".into(), json!({"lines": draft.items.len()}));
        for i in &mut draft.items {
            i.meta.insert("seen".into(), json!(true));
        }
        Ok(())
    }
}

/// Refuses SKU `BAD`.
struct NoBad;

impl Validator for NoBad {
    fn code(&self) -> &'static str {
        "no_bad"
    }
    fn stage(&self) -> ValidatorStage {
        ValidatorStage::Draft
    }
    fn validate(&self, _c: &Channel, s: &Session, _ctx: &Ctx) -> Result<(), Rejection> {
        if s.items.iter().any(|i| i.sku == "BAD") { Err(Rejection::new("no_bad", "BAD is refused")) } else { Ok(()) }
    }
}

fn batch_world() -> World {
    let ext = ExtensionsBuilder::new()
        .modifier(Scribble)
        .modifier(omniman_core::ext::SessionTotalModifier)
        .validator(NoBad)
        .build();
    World::with_ext(vec![chan_with(1, POS, json!({"required_checks_on_commit": ["stock"]}))], ext)
}

/// A session with three lines, data, and a check result plus an issue at its current rev.
fn seeded_session(world: &World) -> Session {
    let s = world.open_with(
        POS,
        &json!([
            {"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100},
            {"op": "add_line", "sku": "B", "qty": 2.5, "unit_price_q": 333},
            {"op": "add_line", "sku": "A", "qty": 3},
            {"op": "set_data", "path": "customer.name", "value": "Ana"}
        ]),
    );
    write_check(world, &s);
    world.session(POS, &s.session_key)
}

fn write_check(world: &World, s: &Session) {
    let issue = json!({"code": "stock.insufficient", "blocking": true, "context": {"actions": []}});
    let written = block_on(world.hub.apply_check_result(
        &at(POS, &s.session_key),
        s.rev,
        "stock",
        json!({"holds": []}),
        vec![issue],
    ));
    assert!(written.expect("store"));
}

fn to_json_string(session: &Session) -> String {
    serde_json::to_string(session).expect("serializable")
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// The exact product `millis × price / 1000`, rounded half away from zero, with the sign handled
/// apart from the magnitude.
fn reference_mult(millis: i64, price: i64) -> i128 {
    let product = i128::from(millis) * i128::from(price);
    let magnitude = product.unsigned_abs();
    let (whole, rest) = (magnitude / 1000, magnitude % 1000);
    let rounded = i128::try_from(if rest >= 500 { whole + 1 } else { whole }).expect("fits");
    if product < 0 { -rounded } else { rounded }
}

fn arb_price() -> impl Strategy<Value = i64> {
    prop_oneof![-1_000_i64..1_000, -10_000_000_i64..10_000_000, any::<i64>()]
}

const STATUSES: &[&str] =
    &["new", "confirmed", "processing", "ready", "dispatched", "delivered", "completed", "cancelled", "returned", "x"];

fn arb_status() -> impl Strategy<Value = String> {
    prop::sample::select(STATUSES).prop_map(str::to_owned)
}

/// A random `order_flow`: any table (exits from terminal statuses included), terminal set and initial status.
fn arb_flow() -> impl Strategy<Value = Value> {
    (
        btree_map(arb_status(), vec(arb_status(), 0..5), 0..10),
        option::of(vec(arb_status(), 0..3)),
        option::of(arb_status()),
    )
        .prop_map(|(transitions, terminal, initial)| {
            let mut flow = json!({"transitions": transitions});
            if let Some(terminal) = terminal {
                flow["terminal_statuses"] = json!(terminal);
            }
            if let Some(initial) = initial {
                flow["initial_status"] = json!(initial);
            }
            json!({"order_flow": flow})
        })
}

fn check_transition(
    flow: &OrderFlow,
    table: &Value,
    before: &str,
    requested: &str,
    result: &Result<Order, TransitionError>,
) {
    match result {
        Ok(after) => {
            assert!(!flow.is_terminal(before), "left terminal status {before} for {requested}");
            let exits = table["order_flow"]["transitions"][before].as_array().cloned().unwrap_or_default();
            assert!(exits.contains(&json!(requested)), "{before} → {requested} is not in the table");
            assert_eq!(after.status, requested);
        }
        Err(TransitionError::TerminalStatus { .. }) => assert!(flow.is_terminal(before)),
        Err(TransitionError::InvalidTransition { allowed_transitions, .. }) => {
            assert!(!flow.is_terminal(before));
            assert!(!allowed_transitions.iter().any(|s| s == requested));
        }
        Err(other) => panic!("unexpected refusal {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_failed_batch_leaves_the_session_byte_for_byte_unchanged(
        prefix in vec(arb_spec(), 0..5),
        failing in arb_failing(),
        suffix in vec(arb_spec(), 0..3),
    ) {
        let world = batch_world();
        let session = seeded_session(&world);
        let lines: Vec<String> = session.items.iter().map(|i| i.line_id.clone()).collect();
        let mut batch: Vec<Value> = prefix.iter().map(|s| spec_json(s, &lines)).collect();
        batch.push(failing);
        batch.extend(suffix.iter().map(|s| spec_json(s, &lines)));
        let ops = Op::parse_batch(&Value::Array(batch)).expect("shape-valid batch");

        let before = to_json_string(&session);
        let directives_before = world.directives().len();

        // Through the service and the in-memory store.
        let result = block_on(world.hub.modify(&at(POS, &session.session_key), &ops, None, &internal()));
        prop_assert!(result.is_err());
        prop_assert_eq!(to_json_string(&world.session(POS, &session.session_key)), before.clone());
        prop_assert_eq!(world.directives().len(), directives_before);

        // Through the pure pipeline, which consumes its input: it gets a clone, the original stays.
        let channel = world.channel(POS);
        let ctx = Ctx::new(internal(), world.clock.now());
        let pure =
            apply_ops(session.clone(), &channel, &ops, None, world.hub.extensions(), &ctx, &mut RandomIds::seeded(2));
        prop_assert!(pure.is_err());
        prop_assert_eq!(to_json_string(&session), before);
    }

    #[test]
    fn each_successful_modify_raises_rev_by_one_and_clears_checks_and_issues(
        batches in vec(vec(arb_spec(), 0..5), 1..5),
    ) {
        let world = batch_world();
        let mut current = seeded_session(&world);
        for specs in &batches {
            let lines: Vec<String> = current.items.iter().map(|i| i.line_id.clone()).collect();
            let batch = Value::Array(specs.iter().map(|s| spec_json(s, &lines)).collect());
            prop_assert!(current.checks().is_some_and(|c| !c.is_empty()));
            if let Ok(after) = world.modify(POS, &current.session_key, &batch) {
                prop_assert_eq!(after.rev, current.rev + 1);
                prop_assert_eq!(after.version, current.version + 1);
                prop_assert_eq!(&after.data["checks"], &json!({}));
                prop_assert_eq!(&after.data["issues"], &json!([]));
                prop_assert!(after.items.iter().all(|i| i.unit_price_q.is_some() && i.line_total_q.is_some()));
                prop_assert_eq!(&world.session(POS, &current.session_key), &after);
                // Checks are enqueued for the new rev.
                let last = world.directives().pop().expect("a stock.hold directive");
                prop_assert_eq!(&last.payload["rev"], &json!(after.rev));
                current = after;
            } else {
                prop_assert_eq!(&world.session(POS, &current.session_key), &current);
            }
            // Make checks and issues non-empty again for the next batch.
            write_check(&world, &current);
            current = world.session(POS, &current.session_key);
        }
    }

    #[test]
    fn order_total_is_the_sum_of_line_totals(
        lines in vec((1_i64..100_000, -100_000_i64..1_000_000, any::<bool>()), 1..8),
    ) {
        /// Takes 10 off lines flagged `discount`.
        struct Discount;
        impl Modifier for Discount {
            fn code(&self) -> &'static str { "discount" }
            fn order(&self) -> i32 { 30 }
            fn apply(&self, _c: &Channel, draft: &mut Session, _ctx: &Ctx) -> Result<(), Rejection> {
                for i in draft.items.iter_mut().filter(|i| i.meta.contains_key("discount")) {
                    i.line_total_q = Some(i.total_q() - 10);
                }
                Ok(())
            }
        }
        let world = World::with_ext(vec![chan_with(1, POS, json!({}))], ExtensionsBuilder::new().modifier(Discount).build());
        let batch: Vec<Value> = lines
            .iter()
            .map(|&(millis, price, discount)| {
                let mut op = json!({"op": "add_line", "sku": "S", "qty": Qty::from_millis(millis).unwrap().to_string(), "unit_price_q": price});
                if discount {
                    op["meta"] = json!({"discount": true});
                }
                op
            })
            .collect();
        let session = world.open_with(POS, &Value::Array(batch));
        let answer = world.commit(POS, &session.session_key, "k").expect("commit");
        let order = world.order(answer.order_ref().unwrap());
        let sum: i64 = order.items.iter().map(|i| i.line_total_q).sum();
        prop_assert_eq!(order.total_q, sum);
        prop_assert_eq!(order.total_q, session.total_q());
        prop_assert_eq!(&answer.body["total_q"], &json!(sum));
        for ((millis, price, discount), line) in lines.iter().zip(&order.items) {
            let plain = monetary_mult(Qty::from_millis(*millis).unwrap(), *price);
            prop_assert_eq!(line.line_total_q, if *discount { plain - 10 } else { plain });
        }
    }

    #[test]
    fn plan_commit_totals_missing_line_totals_too(
        items in vec((arb_qty(), option::of(-1_000_000_i64..1_000_000), option::of(-1_000_000_000_i64..1_000_000_000)), 1..8),
    ) {
        let channel = chan_with(1, POS, json!({}));
        let mut session = omniman_core::testing::session(&channel, "S");
        for (n, (qty, price, total)) in items.into_iter().enumerate() {
            session.items.push(Item {
                line_id: format!("L-{n}"),
                sku: "S".into(),
                name: String::new(),
                qty,
                unit_price_q: price,
                line_total_q: total,
                meta: Map::new(),
            });
        }
        let ctx = Ctx::new(internal(), common::t0());
        let plan = plan_commit(&session, &channel, "k", None, &Extensions::default(), &CommitSettings::default(), &ctx, &mut RandomIds::seeded(1))
            .expect("plan");
        let expected: i64 = session
            .items
            .iter()
            .map(|i| i.line_total_q.unwrap_or_else(|| monetary_mult(i.qty, i.unit_price_q.unwrap_or(0))))
            .sum();
        prop_assert_eq!(plan.order.total_q, expected);
        prop_assert_eq!(plan.order.items.iter().map(|i| i.line_total_q).sum::<i64>(), expected);
    }

    #[test]
    fn monetary_mult_is_the_exact_product_rounded_half_away_from_zero(millis in 1_i64..=999_999_999_999, price in arb_price()) {
        let qty = Qty::from_millis(millis).unwrap();
        let exact = reference_mult(millis, price);
        let got = monetary_mult(qty, price);
        // Beyond i64 the result saturates.
        let expected = i64::try_from(exact).unwrap_or(if exact < 0 { i64::MIN } else { i64::MAX });
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn monetary_mult_rounds_ties_away_from_zero(whole in 0_i64..1_000_000, price_sign in prop::bool::ANY) {
        // qty = whole + 0.5 and price ±1: the exact product is a tie.
        let qty = Qty::from_millis(whole * 1000 + 500).unwrap();
        let (price, expected) = if price_sign { (1, whole + 1) } else { (-1, -(whole + 1)) };
        prop_assert_eq!(monetary_mult(qty, price), expected);
    }

    #[test]
    fn no_transition_ever_leaves_a_terminal_status(
        config in arb_flow(),
        start in arb_status(),
        requests in vec(arb_status(), 1..12),
    ) {
        let channel = chan_with(1, POS, config.clone());
        let flow = OrderFlow::for_channel(&channel);
        let mut order: Order = serde_json::from_value(json!({
            "id": 1, "ref": "ORD-P", "channel_id": 1, "channel_code": POS, "session_key": "S",
            "handle_type": null, "handle_ref": null, "external_ref": null, "status": start,
            "snapshot": {}, "data": {}, "currency": "BRL", "total_q": 0, "items": [],
            "created_at": "2026-11-21T12:00:00Z", "updated_at": "2026-11-21T12:00:00Z"
        })).unwrap();
        for requested in &requests {
            let before = order.status.clone();
            let result = plan_transition(&order, &flow, requested, "prop", None, common::t0()).map(|p| p.order);
            check_transition(&flow, &config, &before, requested, &result);
            if let Ok(after) = result {
                order = after;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn no_transition_through_the_service_ever_leaves_a_terminal_status(
        config in arb_flow(),
        requests in vec(arb_status(), 1..12),
    ) {
        let world = World::new(vec![chan_with(1, POS, config.clone())]);
        let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
        let order_ref = world.commit_order(POS, &s.session_key, "k").reference;
        let flow = OrderFlow::for_channel(&world.channel(POS));
        for requested in &requests {
            let before = world.order(&order_ref).status;
            let result = world.transition(&order_ref, requested, "prop").map(|t| t.order);
            check_transition(&flow, &config, &before, requested, &result);
            let after = world.order(&order_ref).status;
            if flow.is_terminal(&before) {
                prop_assert_eq!(after, before);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn sessions_survive_a_json_round_trip(session in arb_session()) {
        let text = serde_json::to_string(&session).expect("serialize");
        let back: Session = serde_json::from_str(&text).expect("deserialize");
        prop_assert_eq!(&back, &session);
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    #[test]
    fn ops_survive_a_json_round_trip(op in arb_op()) {
        let text = serde_json::to_string(&op).expect("serialize");
        let back: Op = serde_json::from_str(&text).expect("deserialize");
        prop_assert_eq!(&back, &op);
        let batch = Op::parse_batch(&json!([op.to_json()])).expect("batch");
        prop_assert_eq!(batch, vec![op]);
    }

    #[test]
    fn orders_survive_a_json_round_trip(order in arb_order()) {
        let text = serde_json::to_string(&order).expect("serialize");
        let back: Order = serde_json::from_str(&text).expect("deserialize");
        prop_assert_eq!(&back, &order);
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }
}

#[test]
fn the_round_trip_generators_are_not_trivial() {
    // Guards the properties above against generators that only ever produce empty values.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut saw_items = false;
    let mut saw_qty_invalid = false;
    for _ in 0..64 {
        let session = arb_session().new_tree(&mut runner).unwrap().current();
        saw_items |= !session.items.is_empty() && !session.data.is_empty();
        if let Op::AddLine { qty: QtyInput::Invalid(_), .. } | Op::SetQty { qty: QtyInput::Invalid(_), .. } =
            arb_op().new_tree(&mut runner).unwrap().current()
        {
            saw_qty_invalid = true;
        }
    }
    assert!(saw_items && saw_qty_invalid);
}
