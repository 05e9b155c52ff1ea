//! Hot paths of `omniman-core`: the pure pipelines (modify, op parsing, commit planning, order
//! transitions) and the service round trip on the in-memory store.
//!
//! Every input is built outside the timed closure, from seeded ids and a fixed clock, so runs are
//! comparable. The pure pipelines consume the session or order they decide on, as the service
//! hands over the one it has just loaded: each iteration gets its own copy, made before the timed
//! call (see `iter_owned`), and the result is dropped inside it, so freeing it is part of the
//! figure, as it is in a request. The service benches get a fresh hub per iteration and hand it
//! back, so building and tearing down the store is not timed. See `docs/benchmarks.md` for the
//! figures and the goals they are held to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use criterion::{BatchSize, Bencher, Criterion, black_box, criterion_group, criterion_main};
use futures_executor::block_on;
use omniman_core::Omniman;
use omniman_core::channel::Channel;
use omniman_core::checks::write_check_result;
use omniman_core::clock::ManualClock;
use omniman_core::commit::{CommitSettings, plan_commit};
use omniman_core::context::{Caller, Ctx};
use omniman_core::ext::{Extensions, ExtensionsBuilder, ItemPricingModifier, PriceList, SessionTotalModifier};
use omniman_core::ids::RandomIds;
use omniman_core::input::{ChannelCode, IdempotencyKey, SessionRef};
use omniman_core::memory::InMemoryStore;
use omniman_core::modify::apply_ops;
use omniman_core::money::{Qty, monetary_mult};
use omniman_core::ops::Op;
use omniman_core::order::{Order, OrderFlow, plan_transition};
use omniman_core::service::OpenSession;
use omniman_core::session::{Item, Session};
use omniman_core::testing::{self, epoch};
use serde_json::{Value, json};

/// Channel code used throughout.
const CHANNEL: &str = "pos";

/// Catalogue the sessions and the price list draw from: (sku, name, unit price in quanta).
const CATALOGUE: &[(&str, &str, i64)] = &[
    ("ESPRESSO", "Espresso", 450),
    ("CAPPUCCINO", "Cappuccino", 650),
    ("LATTE", "Caffè latte", 700),
    ("TEA", "Black tea", 400),
    ("CROISSANT", "Croissant", 550),
    ("PAO-QUEIJO", "Pão de queijo", 300),
    ("BROWNIE", "Brownie", 800),
    ("JUICE", "Orange juice", 900),
    ("WATER", "Still water", 350),
    ("SANDWICH", "Ham and cheese sandwich", 1_800),
    ("SALAD", "Garden salad", 2_200),
    ("COOKIE", "Chocolate cookie", 500),
];

fn qty(units: i64) -> Qty {
    Qty::from_units(units).expect("small positive quantity")
}

fn caller() -> Caller {
    Caller::external("till-1")
}

fn ctx() -> Ctx {
    Ctx::new(caller(), epoch())
}

/// A priced line as a stored session holds it.
fn line(line_id: String, sku: &str, name: &str, units: i64, price: i64) -> Item {
    Item {
        line_id,
        sku: sku.to_owned(),
        name: name.to_owned(),
        qty: qty(units),
        unit_price_q: Some(price),
        line_total_q: Some(monetary_mult(qty(units), price)),
        meta: serde_json::Map::new(),
    }
}

/// Line id of the `i`-th line of [`session_with_lines`]; never collides with generated ids
/// (`0` is not in the id alphabet).
fn base_line_id(i: usize) -> String {
    format!("L-BASE{i:04}")
}

/// An open session at rev 1 holding `n` priced lines cycling through the catalogue, and a customer.
fn session_with_lines(channel: &Channel, n: usize) -> Session {
    let mut session = testing::session(channel, "SESS-BENCHAAAAAAA");
    session.items = (0..n)
        .map(|i| {
            let (sku, name, price) = CATALOGUE[i % CATALOGUE.len()];
            line(base_line_id(i), sku, name, 1 + i64::try_from(i % 3).expect("small"), price)
        })
        .collect();
    session.data.insert("customer".into(), json!({"name": "Ana Souza", "phone": "+55 11 91234-5678"}));
    session.rev = 1;
    session.version = 1;
    session
}

/// `pricing.item` backed by a price list of the catalogue, then `pricing.session_total`.
fn pricing_extensions() -> Extensions {
    let prices =
        PriceList(CATALOGUE.iter().map(|(sku, _, price)| ((*sku).to_owned(), *price)).collect::<HashMap<_, _>>());
    ExtensionsBuilder::new().modifier(ItemPricingModifier::new(Arc::new(prices))).modifier(SessionTotalModifier).build()
}

fn parse(ops: &Value) -> Vec<Op> {
    Op::parse_batch(ops).expect("well-formed ops")
}

/// Times `routine` on a copy of `input` made just before each call and not timed: the pipelines
/// consume what they decide on, as the service hands over the session or order it has just
/// loaded. The copy is made per iteration so that, as in a request, the input is fresh in the
/// cache (a batch of thousands of copies made up front would time cache misses instead); this
/// adds the timer's own cost, about 30 ns, to every iteration. The result is dropped inside the
/// timing: freeing it is part of a request.
fn iter_owned<I: Clone, O>(b: &mut Bencher<'_>, input: &I, mut routine: impl FnMut(I) -> O) {
    b.iter_batched(|| input.clone(), |input| drop(routine(black_box(input))), BatchSize::PerIteration);
}

// ---------------------------------------------------------------------------------------------
// modify: one add_line on a 10-line session
// ---------------------------------------------------------------------------------------------

fn bench_add_line(c: &mut Criterion) {
    let channel = testing::channel(CHANNEL);
    let session = session_with_lines(&channel, 10);
    let ctx = ctx();
    let mut group = c.benchmark_group("modify/add_line_10_lines");

    // Client-priced line, no extensions: the bare pipeline.
    let ops = parse(&json!([{"op": "add_line", "sku": "BROWNIE", "qty": 2, "unit_price_q": 800}]));
    let ext = Extensions::default();
    let mut ids = RandomIds::seeded(11);
    group.bench_function("default_ext", |b| {
        iter_owned(b, &session, |session| apply_ops(session, &channel, black_box(&ops), None, &ext, &ctx, &mut ids));
    });

    // Hub-priced line: pricing.item looks the price up, pricing.session_total writes the total.
    let ops = parse(&json!([{"op": "add_line", "sku": "BROWNIE", "qty": 2}]));
    let ext = pricing_extensions();
    let mut ids = RandomIds::seeded(12);
    group.bench_function("pricing_ext", |b| {
        iter_owned(b, &session, |session| apply_ops(session, &channel, black_box(&ops), None, &ext, &ctx, &mut ids));
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// modify: a 100-op mixed batch
// ---------------------------------------------------------------------------------------------

/// Lines of the batch's base session: `KEEP` lines are edited, `MERGE_INTO`/`MERGE_FROM` pairs
/// share a SKU and are merged, `REMOVE` lines are removed.
const KEEP: usize = 10;
const MERGES: usize = 5;
const REMOVES: usize = 10;

/// The batch's base session: 30 lines laid out as described at [`KEEP`].
fn batch_session(channel: &Channel) -> Session {
    let mut session = session_with_lines(channel, KEEP);
    for j in 0..MERGES {
        let price = CATALOGUE[KEEP + (j % 2)].2;
        let merge_sku = format!("MERGE-{j}");
        session.items.push(line(format!("L-INTO{j:04}"), &merge_sku, "Combo", 1, price));
        session.items.push(line(format!("L-FROM{j:04}"), &merge_sku, "Combo", 2, price));
    }
    for r in 0..REMOVES {
        let (sku, name, price) = CATALOGUE[r % CATALOGUE.len()];
        session.items.push(line(format!("L-DROP{r:04}"), sku, name, 1, price));
    }
    session
}

/// 100 valid ops in ten rounds of ten: 4 `add_line`, 2 `set_qty`, 1 `replace_sku`, 1 `set_data`,
/// 1 `remove_line`, and a `merge_lines` (odd rounds) or another `set_data` (even rounds).
/// Totals: 40 add, 20 set_qty, 10 replace, 15 set_data, 10 remove, 5 merge.
fn mixed_batch() -> Value {
    let mut ops = Vec::with_capacity(100);
    for round in 0..10_usize {
        for k in 0..4 {
            let (sku, name, price) = CATALOGUE[(round * 4 + k) % CATALOGUE.len()];
            let mut op = json!({"op": "add_line", "sku": sku, "qty": 1 + k, "unit_price_q": price});
            if k == 0 {
                op["name"] = name.into();
                op["meta"] = json!({"notes": "no sugar", "station": "bar"});
            }
            ops.push(op);
        }
        ops.push(json!({"op": "set_qty", "line_id": base_line_id(round), "qty": 2 + round % 3}));
        ops.push(json!({"op": "set_qty", "line_id": base_line_id((round + 5) % KEEP), "qty": "1.5"}));
        let (sku, name, price) = CATALOGUE[(round + 3) % CATALOGUE.len()];
        ops.push(json!({"op": "replace_sku", "line_id": base_line_id(round), "sku": sku, "name": name,
                        "unit_price_q": price}));
        ops.push(json!({"op": "set_data", "path": format!("customer.prefs.p{round}"), "value": round}));
        ops.push(json!({"op": "remove_line", "line_id": format!("L-DROP{round:04}")}));
        if round % 2 == 1 {
            let j = round / 2;
            ops.push(json!({"op": "merge_lines", "from_line_id": format!("L-FROM{j:04}"),
                            "into_line_id": format!("L-INTO{j:04}")}));
        } else {
            ops.push(json!({"op": "set_data", "path": "notes", "value": format!("round {round}")}));
        }
    }
    Value::Array(ops)
}

fn bench_mixed_batch(c: &mut Criterion) {
    let channel = testing::channel(CHANNEL);
    let session = batch_session(&channel);
    let ops = parse(&mixed_batch());
    assert_eq!(ops.len(), 100);
    let ctx = ctx();
    let ext = Extensions::default();
    let mut ids = RandomIds::seeded(21);
    // Every op must apply: a refused batch would time the error path.
    let out = apply_ops(session.clone(), &channel, &ops, None, &ext, &ctx, &mut ids).expect("the batch is valid");
    assert_eq!(out.session.items.len(), 30 + 40 - REMOVES - MERGES);

    let mut group = c.benchmark_group("modify/mixed_100_ops_30_lines");
    group.bench_function("default_ext", |b| {
        iter_owned(b, &session, |session| apply_ops(session, &channel, black_box(&ops), None, &ext, &ctx, &mut ids));
    });
    let ext = pricing_extensions();
    group.bench_function("pricing_ext", |b| {
        iter_owned(b, &session, |session| apply_ops(session, &channel, black_box(&ops), None, &ext, &ctx, &mut ids));
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// parse: a 10-op JSON payload
// ---------------------------------------------------------------------------------------------

/// A 10-op request body as a till sends it, valid against [`session_with_lines`]`(_, 10)`.
fn ten_op_payload() -> Vec<u8> {
    let ops = json!([
        {"op": "add_line", "sku": "ESPRESSO", "qty": 2, "unit_price_q": 450},
        {"op": "add_line", "sku": "CROISSANT", "qty": "1.000", "unit_price_q": 550, "name": "Croissant"},
        {"op": "add_line", "sku": "LATTE", "qty": 1, "unit_price_q": 700,
         "meta": {"milk": "oat", "size": "large"}},
        {"op": "set_qty", "line_id": base_line_id(0), "qty": 3},
        {"op": "set_qty", "line_id": base_line_id(1), "qty": 1.5},
        {"op": "replace_sku", "line_id": base_line_id(2), "sku": "TEA", "unit_price_q": 400, "name": "Black tea"},
        {"op": "remove_line", "line_id": base_line_id(3)},
        {"op": "set_data", "path": "customer.name", "value": "Ana Souza"},
        {"op": "set_data", "path": "delivery.address.city", "value": "São Paulo"},
        {"op": "set_data", "path": "notes", "value": "table by the window"}
    ]);
    serde_json::to_vec(&ops).expect("serialisable")
}

fn bench_parse(c: &mut Criterion) {
    let body = ten_op_payload();
    // The payload is valid against a 10-line session, so it is the body of a real request.
    let channel = testing::channel(CHANNEL);
    let ops = parse(&serde_json::from_slice(&body).expect("json"));
    apply_ops(
        session_with_lines(&channel, 10),
        &channel,
        &ops,
        None,
        &Extensions::default(),
        &ctx(),
        &mut RandomIds::seeded(1),
    )
    .expect("the payload applies");

    c.benchmark_group("parse").bench_function("ten_ops_from_bytes", |b| {
        b.iter(|| {
            let value: Value = serde_json::from_slice(black_box(&body)).expect("json");
            Op::parse_batch(&value).expect("well-formed ops")
        });
    });
}

// ---------------------------------------------------------------------------------------------
// commit: plan_commit of a checked session
// ---------------------------------------------------------------------------------------------

/// A channel whose commits need a fresh stock check and enqueue `stock.commit`.
fn stock_channel() -> Channel {
    testing::channel_with(
        CHANNEL,
        json!({
            "required_checks_on_commit": ["stock"],
            "post_commit_directives": ["stock.commit"]
        }),
    )
}

/// A session of `n` lines with a fresh stock check (one hold per line, expiring in 15 minutes)
/// written the way the check's write-back writes it.
fn checked_session(channel: &Channel, n: usize) -> Session {
    let session = session_with_lines(channel, n);
    let expires = (epoch() + TimeDelta::minutes(15)).to_rfc3339();
    let holds: Vec<Value> = session
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            json!({"hold_id": format!("HOLD-{i:05}"), "sku": item.sku, "qty": item.qty.to_string(),
                   "expires_at": expires})
        })
        .collect();
    let result = json!({"ok": true, "holds": holds, "hold_expires_at": expires});
    write_check_result(&session, session.rev, "stock", result, Vec::new(), epoch(), &mut RandomIds::seeded(3))
        .expect("open session at the expected rev")
}

fn bench_plan_commit(c: &mut Criterion) {
    let channel = stock_channel();
    let ext = Extensions::default();
    let settings = CommitSettings::default();
    let ctx = ctx();
    let mut group = c.benchmark_group("commit/plan");
    for n in [10, 100] {
        let session = checked_session(&channel, n);
        let mut ids = RandomIds::seeded(31);
        let plan = plan_commit(session.clone(), &channel, "till-1-0001", None, &ext, &settings, &ctx, &mut ids)
            .expect("the commit is allowed");
        assert_eq!(plan.directives.len(), 1);
        assert!(plan.directives[0].payload.contains_key("holds"));
        group.bench_function(format!("{n}_lines"), |b| {
            iter_owned(b, &session, |session| {
                plan_commit(session, &channel, "till-1-0001", None, &ext, &settings, &ctx, &mut ids)
            });
        });
    }
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// order: plan_transition on the default flow
// ---------------------------------------------------------------------------------------------

/// A stored `new` order of 10 lines, as commit creates it.
fn new_order() -> Order {
    let channel = stock_channel();
    let session = checked_session(&channel, 10);
    let plan = plan_commit(
        session,
        &channel,
        "till-1-0001",
        None,
        &Extensions::default(),
        &CommitSettings::default(),
        &ctx(),
        &mut RandomIds::seeded(41),
    )
    .expect("the commit is allowed");
    Order { id: 1, ..plan.order }
}

fn bench_transition(c: &mut Criterion) {
    let order = new_order();
    let flow = OrderFlow::default_flow();
    let now = epoch() + TimeDelta::minutes(2);
    c.benchmark_group("order/transition").bench_function("new_to_confirmed_10_lines", |b| {
        iter_owned(b, &order, |order| plan_transition(order, &flow, "confirmed", "kitchen", None, now));
    });
}

// ---------------------------------------------------------------------------------------------
// service: round trips on the in-memory store
// ---------------------------------------------------------------------------------------------

/// A fresh hub on the in-memory store with a fixed clock and seeded ids.
fn hub(channel: Channel, ext: Extensions) -> Omniman<InMemoryStore> {
    let store = InMemoryStore::new();
    store.put_channel(channel);
    Omniman::new(store, ext).with_clock(Arc::new(ManualClock::at(epoch()))).with_ids(Box::new(RandomIds::seeded(51)))
}

/// A sale as one request: eight lines and two data fields, valid on a fresh session.
fn sale_ops() -> Vec<Op> {
    let mut ops: Vec<Value> = CATALOGUE[..8]
        .iter()
        .enumerate()
        .map(|(i, (sku, _, price))| json!({"op": "add_line", "sku": sku, "qty": 1 + i % 2, "unit_price_q": price}))
        .collect();
    ops.push(json!({"op": "set_data", "path": "customer.name", "value": "Ana Souza"}));
    ops.push(json!({"op": "set_data", "path": "table", "value": "12"}));
    parse(&Value::Array(ops))
}

fn bench_service(c: &mut Criterion) {
    let caller = caller();
    let mut group = c.benchmark_group("service/in_memory");

    // One modify (a one-op add_line batch) of a stored 10-line session: load, decide, write.
    let add = parse(&json!([{"op": "add_line", "sku": "BROWNIE", "qty": 2, "unit_price_q": 800}]));
    let ten_lines: Vec<Op> = (0..10)
        .map(|i| {
            let (sku, _, price) = CATALOGUE[i];
            parse(&json!([{"op": "add_line", "sku": sku, "qty": 1, "unit_price_q": price}])).remove(0)
        })
        .collect();
    let setup_modify = || {
        let hub = hub(testing::channel(CHANNEL), Extensions::default());
        let opened = block_on(hub.open_session(open_request(), &caller)).expect("open");
        let key = SessionRef::parse(CHANNEL, &opened.session.session_key).expect("a session ref");
        block_on(hub.modify(&key, &ten_lines, None, &caller)).expect("ten lines");
        (hub, key)
    };
    group.bench_function("modify_add_line_10_lines", |b| {
        b.iter_batched(
            setup_modify,
            |(hub, key)| {
                let session = block_on(hub.modify(black_box(&key), black_box(&add), None, &caller));
                (hub, session.expect("modify"))
            },
            BatchSize::SmallInput,
        );
    });

    // A whole sale: open a session, one 10-op modify, commit with an idempotency key.
    let sale = sale_ops();
    let idempotency_key = IdempotencyKey::parse("till-1-0001").expect("an idempotency key");
    group.bench_function("open_modify_commit", |b| {
        b.iter_batched(
            || hub(testing::channel(CHANNEL), Extensions::default()),
            |hub| {
                let opened = block_on(hub.open_session(open_request(), &caller)).expect("open");
                let key = SessionRef::parse(CHANNEL, &opened.session.session_key).expect("a session ref");
                block_on(hub.modify(&key, black_box(&sale), None, &caller)).expect("modify");
                let outcome = block_on(hub.commit(&key, Some(&idempotency_key), None, &caller)).expect("commit");
                assert_eq!(outcome.http_status(), 201);
                (hub, outcome)
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn config() -> Criterion {
    // A shared two-core machine: modest times keep the whole run near a minute.
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_add_line, bench_mixed_batch, bench_parse, bench_plan_commit, bench_transition, bench_service
}
criterion_main!(benches);

/// A new session on the benches' channel.
fn open_request() -> OpenSession {
    OpenSession::on(ChannelCode::parse(CHANNEL).expect("a channel code"))
}
