//! Check write-back and resolve (docs/reference.md §7), including the bundled `ActionResolver`
//! registered as the `stock` resolver.
//!
//! Left to other layers:
//! - stock extension: the `stock.hold` handler that computes holds and issues, and the `stock.commit`
//!   handler; here their write-back and issue shapes are fed in directly.
//! - HTTP layer: `POST /api/sessions/{key}/resolve` (ids ≤ 64, status codes).

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use common::{World, api, at, chan, chan_with, code_of, item};
use futures_executor::block_on;
use serde_json::{Value, json};

use omniman_core::error::ErrorKind;
use omniman_core::ext::{ActionResolver, IssueResolver, ResolverFailure};
use omniman_core::prelude::*;

const POS: &str = "pos";

fn stock_config() -> Value {
    json!({"required_checks_on_commit": ["stock"]})
}

fn stock_ext() -> Extensions {
    ExtensionsBuilder::new().resolver(Arc::new(ActionResolver::new("stock"))).expect("one stock resolver").build()
}

fn write_back(world: &World, key: &str, rev: i64, code: &str, result: Value, issues: Vec<Value>) -> bool {
    block_on(world.hub.apply_check_result(&at(POS, key), rev, code, result, issues)).expect("store")
}

fn resolve(world: &World, key: &str, issue_id: &str, action_id: &str) -> Result<Session, ResolveError> {
    block_on(world.hub.resolve_issue(&at(POS, key), issue_id, action_id, None, &api()))
}

/// A `stock.insufficient` issue on `line_id` offering the given actions.
fn stock_issue(id: &str, line_id: &str, actions: &Value) -> Value {
    json!({
        "id": id,
        "source": "stock",
        "code": "stock.insufficient",
        "blocking": true,
        "message": "Only 2 left",
        "context": {"line_id": line_id, "sku": "BOLO", "requested_qty": "5.000", "available_qty": "2.000", "actions": actions}
    })
}

// ---------------------------------------------------------------------------------------------
// Check write-back
// ---------------------------------------------------------------------------------------------

#[test]
fn write_back_with_matching_rev_is_true_and_records_the_session_rev() {
    let world = World::new(vec![chan_with(1, POS, stock_config())]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    world.clock.advance(chrono::TimeDelta::seconds(3));
    let result = json!({"holds": [{"sku": "A", "hold_id": "H-1", "qty": "1.000"}]});
    assert!(write_back(&world, &s.session_key, 1, "stock", result.clone(), vec![]));
    let after = world.session(POS, &s.session_key);
    let entry = &after.data["checks"]["stock"];
    assert_eq!(entry["rev"], json!(after.rev));
    assert_eq!(entry["rev"], json!(1));
    assert_eq!(entry["result"], result);
    let at = entry["at"].as_str().expect("at is a string");
    assert_eq!(chrono::DateTime::parse_from_rfc3339(at).unwrap(), world.clock.now());
    // rev unchanged, version +1.
    assert_eq!((after.rev, after.version), (s.rev, s.version + 1));
    assert_eq!(after.items, s.items);
}

#[test]
fn write_back_with_a_stale_rev_is_false_and_writes_nothing() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    for stale in [0, 2, -1] {
        assert!(!write_back(&world, &s.session_key, stale, "stock", json!({}), vec![json!({"code": "x"})]));
    }
    assert_eq!(world.session(POS, &s.session_key), s);
}

#[test]
fn write_back_for_an_unknown_session_or_channel_is_false() {
    let world = World::new(vec![chan(1, POS)]);
    assert!(!write_back(&world, "NOPE", 0, "stock", json!({}), vec![]));
    let s = world.open(POS);
    assert!(
        !block_on(world.hub.apply_check_result(&at("other", &s.session_key), 0, "stock", json!({}), vec![])).unwrap()
    );
}

#[test]
fn write_back_on_a_non_open_session_is_false() {
    let world = World::new(vec![chan(1, POS)]);
    let committed = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    world.commit(POS, &committed.session_key, "k").expect("commit");
    assert!(!write_back(&world, &committed.session_key, 1, "stock", json!({}), vec![]));
    let abandoned = world.open(POS);
    block_on(world.hub.abandon(&at(POS, &abandoned.session_key), None, &api())).expect("abandon");
    let before = world.session(POS, &abandoned.session_key);
    assert!(!write_back(&world, &abandoned.session_key, 0, "stock", json!({}), vec![]));
    assert_eq!(world.session(POS, &abandoned.session_key), before);
}

#[test]
fn write_back_stores_issues_with_source_and_an_iss_id() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open(POS);
    let issue = json!({"code": "stock.insufficient", "blocking": true, "message": "no", "context": {"actions": []}});
    assert!(write_back(
        &world,
        &s.session_key,
        0,
        "stock",
        json!({}),
        vec![issue, json!({"id": "ISS-KEPT", "code": "y"})]
    ));
    let issues = world.session(POS, &s.session_key).issues().to_vec();
    assert_eq!(issues.len(), 2);
    let id = issues[0]["id"].as_str().expect("generated id");
    assert!(id.starts_with("ISS-") && id.len() == 12, "{id}");
    assert_eq!(issues[0]["source"], json!("stock"));
    assert_eq!(issues[0]["code"], json!("stock.insufficient"));
    assert_eq!(issues[0]["blocking"], json!(true));
    assert_eq!(issues[1]["id"], json!("ISS-KEPT"));
    assert_eq!(issues[1]["source"], json!("stock"));
}

#[test]
fn a_later_write_replaces_the_issues_of_the_same_source_and_keeps_others() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open(POS);
    let key = s.session_key.clone();
    assert!(write_back(&world, &key, 0, "stock", json!({}), vec![json!({"code": "s1"}), json!({"code": "s2"})]));
    assert!(write_back(&world, &key, 0, "fraud", json!({"score": 1}), vec![json!({"code": "f1"})]));
    assert!(write_back(&world, &key, 0, "stock", json!({"ok": true}), vec![json!({"code": "s3"})]));
    let after = world.session(POS, &key);
    let codes: Vec<(&str, &str)> =
        after.issues().iter().map(|i| (i["source"].as_str().unwrap(), i["code"].as_str().unwrap())).collect();
    assert_eq!(codes, [("fraud", "f1"), ("stock", "s3")]);
    assert_eq!(after.data["checks"]["stock"]["result"], json!({"ok": true}));
    assert_eq!(after.data["checks"]["fraud"]["result"], json!({"score": 1}));
    assert_eq!(after.version, 3);
    // An empty list clears that source's issues.
    assert!(write_back(&world, &key, 0, "stock", json!({}), vec![]));
    assert_eq!(world.session(POS, &key).issues().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Resolve
// ---------------------------------------------------------------------------------------------

/// A session at rev 0 with `BOLO` ×5 and `CAFE` ×1 and a stock issue on the first line, written back.
fn session_with_stock_issue(world: &World, actions: &Value) -> (Session, String, String) {
    let s = world.open(POS);
    let key = s.session_key.clone();
    world.store().tamper_session(POS, &key, |s| {
        s.items = vec![item("L-BOLO", "BOLO", "5", 1000), item("L-CAFE", "CAFE", "1", 500)];
    });
    assert!(write_back(world, &key, 0, "stock", json!({"holds": []}), vec![stock_issue("ISS-1", "L-BOLO", actions)]));
    (world.session(POS, &key), key, "ISS-1".to_owned())
}

fn set_qty_and_remove_actions(rev: i64) -> Value {
    json!([
        {"id": "ACT-SETQTY", "label": "Keep 2", "rev": rev, "ops": [{"op": "set_qty", "line_id": "L-BOLO", "qty": 2}]},
        {"id": "ACT-REMOVE", "label": "Remove", "rev": rev, "ops": [{"op": "remove_line", "line_id": "L-BOLO"}]}
    ])
}

#[test]
fn resolve_set_qty_action_changes_only_its_line_clears_issues_and_checks_and_enqueues_stock_hold() {
    let world = World::with_ext(vec![chan_with(1, POS, stock_config())], stock_ext());
    let (before, key, issue) = session_with_stock_issue(&world, &set_qty_and_remove_actions(0));
    assert_eq!(before.rev, 0);
    assert!(world.directives().is_empty());

    let after = resolve(&world, &key, &issue, "ACT-SETQTY").expect("resolved");
    assert_eq!(after.rev, 1);
    assert_eq!(after.items[0].qty.to_string(), "2.000");
    assert_eq!(after.items[0].line_total_q, Some(2000));
    assert_eq!(after.items[1], before.items[1], "the other line is untouched");
    assert_eq!(after.data["issues"], json!([]));
    assert_eq!(after.data["checks"], json!({}));
    assert_eq!(world.session(POS, &key), after);

    let holds = world.directives_of("stock.hold");
    assert_eq!(holds.len(), 1);
    assert_eq!((holds[0].payload["rev"].clone(), holds[0].payload["session_key"].clone()), (json!(1), json!(key)));
}

#[test]
fn stock_resolver_applies_remove_line_actions() {
    let world = World::with_ext(vec![chan(1, POS)], stock_ext());
    let (_, key, issue) = session_with_stock_issue(&world, &set_qty_and_remove_actions(0));
    let after = resolve(&world, &key, &issue, "ACT-REMOVE").expect("resolved");
    assert_eq!(after.items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>(), ["CAFE"]);
    assert_eq!(after.rev, 1);
}

#[test]
fn stock_resolver_is_registered_under_source_stock() {
    let ext = stock_ext();
    assert_eq!(ext.resolver("stock").map(|r| r.source().to_owned()), Some("stock".to_owned()));
}

#[test]
fn resolve_on_a_locked_session_is_locked() {
    let locked = Channel { name: "iFood".into(), edit_policy: EditPolicy::Locked, ..chan(1, POS) };
    let world = World::with_ext(vec![locked], stock_ext());
    let (before, key, issue) = session_with_stock_issue(&world, &set_qty_and_remove_actions(0));
    let e = resolve(&world, &key, &issue, "ACT-SETQTY").unwrap_err();
    assert_eq!(code_of(&e), "locked");
    assert_eq!(e.context()["channel"], json!("iFood"));
    assert_eq!(world.session(POS, &key), before);
}

#[test]
fn resolve_action_with_qty_minus_5_is_invalid_qty() {
    let world = World::with_ext(vec![chan(1, POS)], stock_ext());
    let actions = json!([{"id": "ACT-NEG", "rev": 0, "ops": [{"op": "set_qty", "line_id": "L-BOLO", "qty": -5}]}]);
    let (before, key, issue) = session_with_stock_issue(&world, &actions);
    let e = resolve(&world, &key, &issue, "ACT-NEG").unwrap_err();
    assert_eq!(code_of(&e), "invalid_qty");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(world.session(POS, &key), before);
}

struct Crashing;

#[async_trait]
impl IssueResolver for Crashing {
    fn source(&self) -> &'static str {
        "stock"
    }
    async fn resolve(&self, _s: &Session, _i: &Value, _a: &str, _c: &Ctx) -> Result<Vec<Op>, ResolverFailure> {
        Err(ResolverFailure::Other("backend exploded".into()))
    }
}

#[test]
fn resolver_crash_is_resolver_error() {
    let ext = ExtensionsBuilder::new().resolver(Arc::new(Crashing)).unwrap().build();
    let world = World::with_ext(vec![chan(1, POS)], ext);
    let (before, key, issue) = session_with_stock_issue(&world, &set_qty_and_remove_actions(0));
    let e = resolve(&world, &key, &issue, "ACT-SETQTY").unwrap_err();
    assert_eq!(code_of(&e), "resolver_error");
    assert_eq!(e.kind(), ErrorKind::Internal);
    let c = e.context();
    assert_eq!(
        (c["source"].clone(), c["issue_id"].clone(), c["action_id"].clone()),
        (json!("stock"), json!("ISS-1"), json!("ACT-SETQTY"))
    );
    assert_eq!(world.session(POS, &key), before);
}

#[test]
fn a_coded_resolver_refusal_keeps_its_code_and_context() {
    struct Picky;
    #[async_trait]
    impl IssueResolver for Picky {
        fn source(&self) -> &'static str {
            "stock"
        }
        async fn resolve(&self, _s: &Session, _i: &Value, _a: &str, _c: &Ctx) -> Result<Vec<Op>, ResolverFailure> {
            Err(Rejection::new("supplier_closed", "closed").with("until", "monday").into())
        }
    }
    let ext = ExtensionsBuilder::new().resolver(Arc::new(Picky)).unwrap().build();
    let world = World::with_ext(vec![chan(1, POS)], ext);
    let (_, key, issue) = session_with_stock_issue(&world, &set_qty_and_remove_actions(0));
    let e = resolve(&world, &key, &issue, "ACT-SETQTY").unwrap_err();
    assert_eq!((code_of(&e), e.context()["until"].clone()), ("supplier_closed".to_owned(), json!("monday")));
}

#[test]
fn stock_resolver_unknown_action_is_action_not_found() {
    let world = World::with_ext(vec![chan(1, POS)], stock_ext());
    let (_, key, issue) = session_with_stock_issue(&world, &set_qty_and_remove_actions(0));
    let e = resolve(&world, &key, &issue, "ACT-NOPE").unwrap_err();
    assert_eq!(code_of(&e), "action_not_found");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        (e.context()["issue_id"].clone(), e.context()["action_id"].clone()),
        (json!("ISS-1"), json!("ACT-NOPE"))
    );
}

#[test]
fn stock_resolver_action_rev_3_against_session_rev_5_is_stale_action() {
    let world = World::with_ext(vec![chan(1, POS)], stock_ext());
    let (_, key, _) = session_with_stock_issue(&world, &json!([]));
    world.store().tamper_session(POS, &key, |s| {
        s.rev = 5;
        s.data["issues"] = json!([stock_issue("ISS-5", "L-BOLO", &set_qty_and_remove_actions(3))]);
    });
    let before = world.session(POS, &key);
    let e = resolve(&world, &key, "ISS-5", "ACT-SETQTY").unwrap_err();
    assert_eq!(code_of(&e), "stale_action");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!((e.context()["action_rev"].clone(), e.context()["session_rev"].clone()), (json!(3), json!(5)));
    assert_eq!(world.session(POS, &key), before);

    // An action carrying the current rev applies.
    world.store().tamper_session(POS, &key, |s| {
        s.data["issues"] = json!([stock_issue("ISS-5", "L-BOLO", &set_qty_and_remove_actions(5))]);
    });
    assert_eq!(resolve(&world, &key, "ISS-5", "ACT-SETQTY").expect("fresh action").rev, 6);
}

#[test]
fn stock_resolver_action_without_ops_is_no_ops() {
    let world = World::with_ext(vec![chan(1, POS)], stock_ext());
    let actions = json!([{"id": "ACT-EMPTY", "rev": 0, "ops": []}, {"id": "ACT-NONE", "rev": 0}]);
    let (_, key, issue) = session_with_stock_issue(&world, &actions);
    for action in ["ACT-EMPTY", "ACT-NONE"] {
        let e = resolve(&world, &key, &issue, action).unwrap_err();
        assert_eq!(code_of(&e), "no_ops", "{action}");
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }
}

#[test]
fn resolve_refuses_unknown_session_unknown_issue_and_sources_without_resolver() {
    let world = World::with_ext(vec![chan(1, POS)], stock_ext());
    assert_eq!(code_of(&resolve(&world, "NOPE", "ISS-1", "ACT-1").unwrap_err()), "session_not_found");

    let (_, key, _) = session_with_stock_issue(&world, &set_qty_and_remove_actions(0));
    let e = resolve(&world, &key, "ISS-NOPE", "ACT-SETQTY").unwrap_err();
    assert_eq!((code_of(&e), e.kind()), ("issue_not_found".to_owned(), ErrorKind::NotFound));
    assert_eq!(e.context()["issue_id"], json!("ISS-NOPE"));

    assert!(write_back(&world, &key, 0, "fraud", json!({}), vec![json!({"id": "ISS-F", "code": "fraud.suspect"})]));
    let e = resolve(&world, &key, "ISS-F", "ACT-1").unwrap_err();
    assert_eq!((code_of(&e), e.kind()), ("no_resolver".to_owned(), ErrorKind::Conflict));
    assert_eq!(e.context()["source"], json!("fraud"));
}

#[test]
fn resolve_on_a_committed_session_is_refused_by_modify() {
    let world = World::with_ext(vec![chan(1, POS)], stock_ext());
    let (_, key, issue) = session_with_stock_issue(&world, &set_qty_and_remove_actions(0));
    assert_eq!(code_of(&world.commit(POS, &key, "k").unwrap_err()), "blocking_issues");
    world.store().tamper_session(POS, &key, |s| s.state = SessionState::Committed);
    assert_eq!(code_of(&resolve(&world, &key, &issue, "ACT-SETQTY").unwrap_err()), "already_committed");
}
