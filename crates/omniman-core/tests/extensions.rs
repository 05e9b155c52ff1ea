//! The extensions registry (docs/reference.md §5 steps 7–8 and §8), plus the bundled extensions the core
//! bundles: `pricing.item` over a `PriceList` and `pricing.session_total`.
//!
//! Left to other layers:
//! - pricing extension: the "listing price first, product price as fallback" backend (the core only
//!   bundles the fixed `PriceList`).
//! - stock extension: stock hold/commit handlers and the stock backend.
//! - payment extension: the mock payment backend and the capture/refund handlers.
//! - notifications extension: console/webhook/email/SMS/WhatsApp notifiers.
//! - refs extension: ref types, attach/resolve/deactivate and sequences.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{World, at, chan, chan_with, code_of, item};
use futures_executor::block_on;
use serde_json::{Value, json};

use omniman_core::directive::Directive;
use omniman_core::error::ErrorKind;
use omniman_core::ext::{
    ActionResolver, DirectiveHandler, HandlerCtx, HandlerRegistry, Hooks, IssueResolver, ItemPricingModifier, Modifier,
    PriceList, ResolverFailure, SessionTotalModifier, Validator, ValidatorStage,
};
use omniman_core::modify::prepare_import;
use omniman_core::prelude::*;

const POS: &str = "pos";

/// A validator that refuses any line with the SKU `refused_sku`.
struct RefuseSku {
    code: &'static str,
    stage: ValidatorStage,
    refused_sku: &'static str,
}

impl Validator for RefuseSku {
    fn code(&self) -> &str {
        self.code
    }
    fn stage(&self) -> ValidatorStage {
        self.stage
    }
    fn validate(&self, _channel: &Channel, session: &Session, _ctx: &Ctx) -> Result<(), Rejection> {
        match session.items.iter().find(|i| i.sku == self.refused_sku) {
            Some(line) => Err(Rejection::new(self.code, format!("{} is not sold here", line.sku))
                .with("sku", line.sku.as_str())
                .with("stage", format!("{:?}", self.stage))),
            None => Ok(()),
        }
    }
}

/// A modifier that appends its code to `data.meta.trace` and sets `data.meta.modified_by`.
struct Tracer {
    code: &'static str,
    order: i32,
}

impl Modifier for Tracer {
    fn code(&self) -> &str {
        self.code
    }
    fn order(&self) -> i32 {
        self.order
    }
    fn apply(&self, _channel: &Channel, draft: &mut Session, _ctx: &Ctx) -> Result<(), Rejection> {
        let meta = draft.data.entry("meta").or_insert_with(|| json!({}));
        let trace = meta.as_object_mut().expect("object").entry("trace").or_insert_with(|| json!([]));
        trace.as_array_mut().expect("array").push(json!(self.code));
        meta["modified_by"] = json!(self.code);
        Ok(())
    }
}

fn tracer(code: &'static str, order: i32) -> Tracer {
    Tracer { code, order }
}

fn trace_of(session: &Session) -> Value {
    session.data["meta"]["trace"].clone()
}

// ---------------------------------------------------------------------------------------------
// Validators
// ---------------------------------------------------------------------------------------------

#[test]
fn draft_validators_run_in_modify_and_abort_with_their_own_code() {
    let ext = ExtensionsBuilder::new()
        .validator(RefuseSku { code: "alcohol_forbidden", stage: ValidatorStage::Draft, refused_sku: "BEER" })
        .build();
    let world = World::with_ext(vec![chan(1, POS)], ext);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "WATER", "qty": 1}]));
    let e = world.modify(POS, &s.session_key, &json!([{"op": "add_line", "sku": "BEER", "qty": 1}])).unwrap_err();
    assert_eq!(code_of(&e), "alcohol_forbidden");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(e.context()["sku"], json!("BEER"));
    assert_eq!(e.to_string(), "BEER is not sold here");
    let stored = world.session(POS, &s.session_key);
    assert_eq!((stored.rev, stored.items.len()), (1, 1));
}

#[test]
fn commit_validators_do_not_run_in_modify_but_do_in_commit() {
    let ext = ExtensionsBuilder::new()
        .validator(RefuseSku { code: "no_beer_at_checkout", stage: ValidatorStage::Commit, refused_sku: "BEER" })
        .build();
    let world = World::with_ext(vec![chan(1, POS)], ext);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "BEER", "qty": 1, "unit_price_q": 900}]));
    assert_eq!(s.rev, 1, "a commit validator must not refuse a modify");
    let e = world.commit(POS, &s.session_key, "k1").unwrap_err();
    assert_eq!(code_of(&e), "no_beer_at_checkout");
    assert_eq!(e.context()["sku"], json!("BEER"));
    assert_eq!(world.store().order_count(), 0);
}

#[test]
fn import_validators_run_only_in_the_import_path() {
    let ext = ExtensionsBuilder::new()
        .validator(RefuseSku { code: "import_refused", stage: ValidatorStage::Import, refused_sku: "X" })
        .build();
    let world = World::with_ext(vec![chan(1, POS)], ext.clone());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "X", "qty": 1}]));
    assert_eq!(s.items.len(), 1, "import validators do not run in modify");

    let channel = chan(1, POS);
    let ctx = Ctx::new(Caller::internal("importer"), common::t0());
    let fresh = omniman_core::testing::session(&channel, "IMP-1");
    let e = prepare_import(fresh, &channel, vec![item("", "X", "1", 10)], None, &ext, &ctx, &mut RandomIds::seeded(3))
        .unwrap_err();
    assert_eq!(code_of(&e), "import_refused");
}

#[test]
fn validators_are_filterable_by_stage_in_registration_order() {
    let ext = ExtensionsBuilder::new()
        .validator(RefuseSku { code: "d1", stage: ValidatorStage::Draft, refused_sku: "A" })
        .validator(RefuseSku { code: "c1", stage: ValidatorStage::Commit, refused_sku: "A" })
        .validator(RefuseSku { code: "d2", stage: ValidatorStage::Draft, refused_sku: "A" })
        .validator(RefuseSku { code: "i1", stage: ValidatorStage::Import, refused_sku: "A" })
        .build();
    let codes = |stage| ext.validators(stage).map(|v| v.code().to_owned()).collect::<Vec<_>>();
    assert_eq!(codes(ValidatorStage::Draft), ["d1", "d2"]);
    assert_eq!(codes(ValidatorStage::Commit), ["c1"]);
    assert_eq!(codes(ValidatorStage::Import), ["i1"]);
}

#[test]
fn the_first_failing_draft_validator_decides_the_code() {
    let ext = ExtensionsBuilder::new()
        .validator(RefuseSku { code: "first", stage: ValidatorStage::Draft, refused_sku: "A" })
        .validator(RefuseSku { code: "second", stage: ValidatorStage::Draft, refused_sku: "A" })
        .build();
    let world = World::with_ext(vec![chan(1, POS)], ext);
    let s = world.open(POS);
    let e = world.modify(POS, &s.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 1}])).unwrap_err();
    assert_eq!(code_of(&e), "first");
}

#[test]
fn rules_validators_allow_list_is_honoured_in_modify_and_commit() {
    let ext = ExtensionsBuilder::new()
        .validator(RefuseSku { code: "draft_gate", stage: ValidatorStage::Draft, refused_sku: "A" })
        .validator(RefuseSku { code: "commit_gate", stage: ValidatorStage::Commit, refused_sku: "A" })
        .build();
    let world = World::with_ext(
        vec![chan(1, POS), chan_with(2, "strict", json!({"rules": {"validators": ["commit_gate"]}}))],
        ext,
    );
    // `pos` runs all validators.
    let s = world.open(POS);
    assert_eq!(
        code_of(&world.modify(POS, &s.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 1}])).unwrap_err()),
        "draft_gate"
    );
    // `strict` allows only `commit_gate`: the draft gate is skipped, the commit gate applies.
    let s = world.open_with("strict", &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    assert_eq!(code_of(&world.commit("strict", &s.session_key, "k").unwrap_err()), "commit_gate");
}

// ---------------------------------------------------------------------------------------------
// Modifiers
// ---------------------------------------------------------------------------------------------

#[test]
fn modifiers_run_in_modify_ordered_10_20_30_whatever_the_registration_order_and_may_write_data() {
    let ext = ExtensionsBuilder::new()
        .modifier(tracer("m30", 30))
        .modifier(tracer("m10", 10))
        .modifier(tracer("m20", 20))
        .build();
    assert_eq!(ext.modifiers().map(Modifier::order).collect::<Vec<_>>(), [10, 20, 30]);
    let world = World::with_ext(vec![chan(1, POS)], ext);
    let s = world.open_with(POS, &json!([]));
    assert_eq!(trace_of(&s), json!(["m10", "m20", "m30"]));
    assert_eq!(s.data["meta"]["modified_by"], json!("m30"));
    // Written data persists.
    assert_eq!(world.session(POS, &s.session_key).data["meta"]["modified_by"], json!("m30"));
}

#[test]
fn modifiers_with_equal_order_keep_registration_order() {
    let ext = ExtensionsBuilder::new()
        .modifier(tracer("b", 5))
        .modifier(tracer("a", 5))
        .modifier(tracer("first", 1))
        .modifier(tracer("c", 5))
        .build();
    let world = World::with_ext(vec![chan(1, POS)], ext);
    let s = world.open_with(POS, &json!([]));
    assert_eq!(trace_of(&s), json!(["first", "b", "a", "c"]));
}

#[test]
fn modifiers_cannot_keep_system_keys_and_an_error_aborts_the_modify() {
    struct Meddler;
    impl Modifier for Meddler {
        fn code(&self) -> &'static str {
            "meddler"
        }
        fn order(&self) -> i32 {
            1
        }
        fn apply(&self, _channel: &Channel, draft: &mut Session, _ctx: &Ctx) -> Result<(), Rejection> {
            if draft.items.iter().any(|i| i.sku == "BOOM") {
                return Err(Rejection::new("meddler_refused", "boom").with("why", "BOOM"));
            }
            draft.data.insert("checks".into(), json!({"stock": {"rev": 99}}));
            draft.data.insert("issues".into(), json!([{"id": "ISS-FAKE", "blocking": true}]));
            draft.pricing.insert("promo".into(), json!("X"));
            Ok(())
        }
    }
    let world = World::with_ext(vec![chan(1, POS)], ExtensionsBuilder::new().modifier(Meddler).build());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    assert_eq!((s.data["checks"].clone(), s.data["issues"].clone()), (json!({}), json!([])));
    assert_eq!(s.pricing["promo"], json!("X"));
    let e = world.modify(POS, &s.session_key, &json!([{"op": "add_line", "sku": "BOOM", "qty": 1}])).unwrap_err();
    assert_eq!((code_of(&e), e.context()["why"].clone()), ("meddler_refused".to_owned(), json!("BOOM")));
    assert_eq!(world.session(POS, &s.session_key), s);
}

#[test]
fn rules_modifiers_allow_list_is_honoured_and_pricing_modifiers_always_run() {
    let ext = ExtensionsBuilder::new()
        .modifier(tracer("pricing.custom", 1))
        .modifier(tracer("loyalty", 2))
        .modifier(tracer("discount", 3))
        .build();
    let world =
        World::with_ext(vec![chan(1, POS), chan_with(2, "strict", json!({"rules": {"modifiers": ["discount"]}}))], ext);
    assert_eq!(trace_of(&world.open_with(POS, &json!([]))), json!(["pricing.custom", "loyalty", "discount"]));
    assert_eq!(trace_of(&world.open_with("strict", &json!([]))), json!(["pricing.custom", "discount"]));
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

struct NoopHandler(&'static str);

#[async_trait]
impl DirectiveHandler for NoopHandler {
    fn topic(&self) -> &str {
        self.0
    }
    async fn handle(&self, _directive: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        Ok(HandlerOutcome::done())
    }
}

struct NoopResolver(&'static str);

#[async_trait]
impl IssueResolver for NoopResolver {
    fn source(&self) -> &str {
        self.0
    }
    async fn resolve(&self, _s: &Session, _i: &Value, _a: &str, _c: &Ctx) -> Result<Vec<Op>, ResolverFailure> {
        Ok(Vec::new())
    }
}

#[test]
fn a_duplicate_handler_topic_is_refused_naming_the_key() {
    let registry = HandlerRegistry::new().register(Arc::new(NoopHandler("stock.hold"))).expect("first");
    let Err(e) = registry.register(Arc::new(NoopHandler("stock.hold"))) else {
        panic!("duplicate topic accepted");
    };
    assert_eq!(e.key, "stock.hold");
    let message = e.to_string();
    assert!(message.contains("stock.hold") && message.contains("already registered"), "{message}");
}

#[test]
fn a_duplicate_resolver_source_is_refused_naming_the_key() {
    let builder = ExtensionsBuilder::new().resolver(Arc::new(ActionResolver::new("stock"))).expect("first");
    let Err(e) = builder.resolver(Arc::new(NoopResolver("stock"))) else {
        panic!("duplicate source accepted");
    };
    assert_eq!(e.key, "stock");
    let message = e.to_string();
    assert!(message.contains("stock") && message.contains("already registered"), "{message}");
}

#[test]
fn unknown_topic_or_source_finds_nothing_and_known_ones_are_found() {
    let handlers = HandlerRegistry::new()
        .register(Arc::new(NoopHandler("b.topic")))
        .and_then(|r| r.register(Arc::new(NoopHandler("a.topic"))))
        .expect("distinct topics");
    let ext = ExtensionsBuilder::new().resolver(Arc::new(NoopResolver("stock"))).expect("one source").build();
    assert!(handlers.handler("unknown").is_none());
    assert!(ext.resolver("unknown").is_none());
    assert!(ext.check("unknown").is_none());
    assert_eq!(handlers.handler("a.topic").map(|h| h.topic().to_owned()), Some("a.topic".to_owned()));
    assert_eq!(ext.resolver("stock").map(|r| r.source().to_owned()), Some("stock".to_owned()));
    assert_eq!(handlers.topics(), ["a.topic", "b.topic"]);
}

#[test]
fn clearing_the_builder_empties_everything() {
    struct Fraud;
    impl omniman_core::ext::Check for Fraud {
        fn code(&self) -> &'static str {
            "fraud"
        }
        fn topic(&self) -> &'static str {
            "fraud.check"
        }
    }
    struct Quiet;
    impl Hooks for Quiet {}
    let ext = ExtensionsBuilder::new()
        .modifier(SessionTotalModifier)
        .validator(RefuseSku { code: "v", stage: ValidatorStage::Draft, refused_sku: "A" })
        .check(Fraud)
        .hooks(Quiet)
        .resolver(Arc::new(NoopResolver("s")))
        .expect("distinct keys")
        .clear()
        .build();
    assert_eq!(ext.modifiers().count(), 0);
    for stage in [ValidatorStage::Draft, ValidatorStage::Commit, ValidatorStage::Import] {
        assert_eq!(ext.validators(stage).count(), 0);
    }
    assert!(ext.check("fraud").is_none());
    assert!(ext.resolver("s").is_none());
    assert_eq!(ext.hooks().count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Hooks
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Hooks for Recorder {
    fn order_changed(&self, order: &Order, event_type: &str, actor: &str) {
        self.0.lock().unwrap().push(format!("order_changed:{event_type}:{actor}:{}", order.status));
    }
    fn session_committed(&self, session: &Session, order: &Order) {
        assert_eq!(session.commit_token.as_deref(), Some("k"));
        self.0.lock().unwrap().push(format!("session_committed:{:?}:{}", session.state, order.status));
    }
    fn session_modified(&self, session: &Session) {
        self.0.lock().unwrap().push(format!("session_modified:{}", session.rev));
    }
    fn session_abandoned(&self, session: &Session) {
        self.0.lock().unwrap().push(format!("session_abandoned:{:?}", session.state));
    }
}

#[test]
fn hooks_run_after_each_write_with_what_was_stored() {
    let recorder = Recorder::default();
    let ext = ExtensionsBuilder::new().hooks(recorder.clone()).build();
    let world = World::with_ext(vec![chan_with(1, POS, json!({"auto_transitions": {"on_create": "confirmed"}}))], ext);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let order = world.commit_order(POS, &s.session_key, "k");
    world.transition(&order.reference, "processing", "kitchen").expect("transition");
    let other = world.open(POS);
    block_on(world.hub.abandon(&at(POS, &other.session_key), None, &common::api())).expect("abandon");
    // A refused modify calls nothing.
    assert!(world.modify(POS, &s.session_key, &json!([])).is_err());
    assert_eq!(
        *recorder.0.lock().unwrap(),
        [
            "session_modified:1",
            "order_changed:created:till-1:new",
            "session_committed:Committed:new",
            "order_changed:status_changed:system:confirmed",
            "order_changed:status_changed:kitchen:processing",
            "session_abandoned:Abandoned",
        ]
    );
}

#[test]
fn a_panicking_hook_never_alters_the_answer() {
    struct Panicky;
    impl Hooks for Panicky {
        fn session_modified(&self, _session: &Session) {
            panic!("hook failure");
        }
        fn order_changed(&self, _order: &Order, _event_type: &str, _actor: &str) {
            panic!("hook failure");
        }
    }
    let world = World::with_ext(vec![chan(1, POS)], ExtensionsBuilder::new().hooks(Panicky).build());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 5}]));
    assert_eq!(s.rev, 1);
    let answer = world.commit(POS, &s.session_key, "k").expect("commit despite the hook");
    assert_eq!(answer.code, 201);
}

// ---------------------------------------------------------------------------------------------
// The bundled pricing.item and pricing.session_total
// ---------------------------------------------------------------------------------------------

fn price_list() -> PriceList {
    PriceList(HashMap::from([("CROISSANT".to_owned(), 500), ("CAKE".to_owned(), 333), ("JUICE".to_owned(), 700)]))
}

fn pricing_ext() -> Extensions {
    ExtensionsBuilder::new()
        .modifier(SessionTotalModifier)
        .modifier(ItemPricingModifier::new(Arc::new(price_list())))
        .build()
}

#[test]
fn pricing_item_fills_missing_prices_2_x_500() {
    let world = World::with_ext(vec![chan(1, POS)], pricing_ext());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "CROISSANT", "qty": 2}]));
    assert_eq!((s.items[0].unit_price_q, s.items[0].line_total_q), (Some(500), Some(1000)));
    assert_eq!(s.total_q(), 1000);
}

#[test]
fn pricing_item_keeps_given_prices_2_x_999_is_1998() {
    let world = World::with_ext(vec![chan(1, POS)], pricing_ext());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "CROISSANT", "qty": 2, "unit_price_q": 999}]));
    assert_eq!((s.items[0].unit_price_q, s.items[0].line_total_q), (Some(999), Some(1998)));
    assert!(s.pricing_trace.is_empty(), "a given price is not traced");
}

#[test]
fn pricing_item_7_x_333_is_2331() {
    let world = World::with_ext(vec![chan(1, POS)], pricing_ext());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "CAKE", "qty": 7}]));
    assert_eq!(s.items[0].line_total_q, Some(2331));
}

#[test]
fn pricing_item_ignores_external_sessions() {
    let channel = Channel { pricing_policy: PricingPolicy::External, ..chan(1, "shop") };
    let mut draft = omniman_core::testing::session(&channel, "S");
    let mut line = item("L-1", "CROISSANT", "2", 0);
    (line.unit_price_q, line.line_total_q) = (None, None);
    draft.items.push(line);
    let modifier = ItemPricingModifier::new(Arc::new(price_list()));
    modifier.apply(&channel, &mut draft, &Ctx::new(Caller::internal("t"), common::t0())).expect("apply");
    assert_eq!(draft.items[0].unit_price_q, None);
    assert!(draft.pricing_trace.is_empty());

    // The same draft on an internal session is priced.
    draft.pricing_policy = PricingPolicy::Internal;
    modifier.apply(&channel, &mut draft, &Ctx::new(Caller::internal("t"), common::t0())).expect("apply");
    assert_eq!(draft.items[0].unit_price_q, Some(500));
}

#[test]
fn pricing_item_writes_one_trace_entry_per_priced_line() {
    let world = World::with_ext(vec![chan(1, POS)], pricing_ext());
    let s = world.open_with(
        POS,
        &json!([
            {"op": "add_line", "sku": "CROISSANT", "qty": 1},
            {"op": "add_line", "sku": "JUICE", "qty": 1},
            {"op": "add_line", "sku": "CAKE", "qty": 1, "unit_price_q": 1},
            {"op": "add_line", "sku": "UNKNOWN", "qty": 1}
        ]),
    );
    assert_eq!(
        Value::Array(s.pricing_trace.clone()),
        json!([
            {"line_id": s.items[0].line_id, "sku": "CROISSANT", "price_q": 500, "source": "internal"},
            {"line_id": s.items[1].line_id, "sku": "JUICE", "price_q": 700, "source": "internal"}
        ])
    );
}

#[test]
fn pricing_item_unknown_sku_totals_zero() {
    let world = World::with_ext(vec![chan(1, POS)], pricing_ext());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "UNKNOWN", "qty": 3}]));
    assert_eq!((s.items[0].unit_price_q, s.items[0].line_total_q), (Some(0), Some(0)));
    assert_eq!(s.pricing["total_q"], json!(0));
}

#[test]
fn pricing_item_reprices_a_replaced_sku_without_price() {
    let world = World::with_ext(vec![chan(1, POS)], pricing_ext());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "CROISSANT", "qty": 2}]));
    let line = s.items[0].line_id.clone();
    let after = world.modify_ok(POS, &s.session_key, &json!([{"op": "replace_sku", "line_id": line, "sku": "JUICE"}]));
    assert_eq!((after.items[0].unit_price_q, after.items[0].line_total_q), (Some(700), Some(1400)));
    assert_eq!(after.pricing["total_q"], json!(1400));
}

#[test]
fn pricing_session_total_sums_totals_counts_lines_and_keeps_other_keys() {
    struct Currency;
    impl Modifier for Currency {
        fn code(&self) -> &'static str {
            "pricing.currency"
        }
        fn order(&self) -> i32 {
            5
        }
        fn apply(&self, _c: &Channel, draft: &mut Session, _ctx: &Ctx) -> Result<(), Rejection> {
            draft.pricing.insert("currency".into(), json!("BRL"));
            draft.pricing.insert("total_q".into(), json!(-1));
            Ok(())
        }
    }
    let ext = ExtensionsBuilder::new()
        .modifier(SessionTotalModifier)
        .modifier(Currency)
        .modifier(ItemPricingModifier::new(Arc::new(price_list())))
        .build();
    let world = World::with_ext(vec![chan(1, POS)], ext);
    let s = world.open_with(
        POS,
        &json!([
            {"op": "add_line", "sku": "CROISSANT", "qty": 2},
            {"op": "add_line", "sku": "CAKE", "qty": 1.5},
            {"op": "add_line", "sku": "X", "qty": 1, "unit_price_q": 1}
        ]),
    );
    assert_eq!(Value::Object(s.pricing.clone()), json!({"currency": "BRL", "total_q": 1501, "items_count": 3}));
    assert_eq!(s.total_q(), 1501);
}
