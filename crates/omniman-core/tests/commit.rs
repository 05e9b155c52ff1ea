//! Commit (docs/reference.md §6): the order it creates, the idempotency table, check freshness and
//! hold expiry, blocking issues, post-commit directives and the shopman pre-order.
//!
//! Left to other layers:
//! - storage: the commit statement budget (≤ 8), atomicity on a real database when the process dies
//!   midway, and concurrent commits racing on one key.
//! - refs extension: `on_session_committed` (copying and expiring refs).
//! - stock extension: the `stock.commit` handler fulfilling the holds the directive carries.
//! - HTTP layer: 201/200 status codes on the wire and `If-Match` parsing.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::{World, api, at, chan, chan_with, code_of, idem, item};
use futures_executor::block_on;
use serde_json::{Value, json};

use omniman_core::error::ErrorKind;
use omniman_core::idempotency::{IdempotencyRecord, IdempotencyStatus, commit_scope, done_record};
use omniman_core::ports::{IdempotencyStore, OrderStore};
use omniman_core::prelude::*;

const POS: &str = "pos";

fn record(world: &World, key: &str) -> Option<IdempotencyRecord> {
    block_on(world.store().idempotency_record(&commit_scope(POS), key)).expect("store")
}

fn save(world: &World, record: &IdempotencyRecord) {
    assert!(block_on(world.store().save_idempotency_record(record)).expect("store"));
}

fn pending(
    key: &str,
    session_key: &str,
    status: IdempotencyStatus,
    expires_at: Option<DateTime<Utc>>,
) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: commit_scope(POS),
        key: key.into(),
        status,
        response_code: None,
        response_body: None,
        session_key: Some(session_key.into()),
        expires_at,
        created_at: common::t0(),
    }
}

/// A session at rev 0 holding lines (and optionally data) without a modify, so check fixtures can
/// say "rev 0".
fn seeded(world: &World, code: &str, items: Vec<Item>, data: Option<Value>) -> String {
    let s = world.open(code);
    world.store().tamper_session(code, &s.session_key, |s| {
        s.items = items;
        if let Some(Value::Object(extra)) = data {
            s.data.extend(extra);
        }
    });
    s.session_key
}

fn commit_err(world: &World, code: &str, key: &str, idem: &str) -> CommitError {
    world.commit(code, key, idem).expect_err("commit must be refused")
}

// ---------------------------------------------------------------------------------------------
// The order
// ---------------------------------------------------------------------------------------------

#[test]
fn commit_2_x_1000_creates_an_order_of_2000_with_1_item_and_seals_the_session() {
    let world = World::new(vec![chan(1, POS)]);
    let opened = world.open_handle(POS, "table", "12");
    let key = opened.session.session_key.clone();
    world.modify_ok(
        POS,
        &key,
        &json!([{"op": "add_line", "sku": "A", "qty": 2, "unit_price_q": 1000, "name": "Alpha"}]),
    );
    world.clock.advance(TimeDelta::minutes(5));
    let answer = world.commit(POS, &key, "till-1-0001").expect("commit");
    assert_eq!(answer.code, 201);
    let order_ref = answer.order_ref().expect("order_ref").to_owned();
    assert!(order_ref.starts_with("ORD-20261121-") && order_ref.len() == 21, "{order_ref}");

    let order = world.order(&order_ref);
    assert_eq!(
        answer.body,
        json!({"order_ref": order_ref, "order_id": order.id, "status": "committed", "total_q": 2000, "items_count": 1})
    );
    assert_eq!(order.total_q, 2000);
    assert_eq!(order.items.len(), 1);
    let line = &order.items[0];
    assert_eq!(
        (line.sku.as_str(), line.name.as_str(), line.qty.millis(), line.unit_price_q, line.line_total_q),
        ("A", "Alpha", 2000, 1000, 2000)
    );
    assert_eq!(order.status, "new");
    assert_eq!(order.currency, "BRL");
    assert_eq!((order.channel_id, order.channel_code.as_str(), order.session_key.as_str()), (1, POS, key.as_str()));
    assert_eq!((order.handle_type.as_deref(), order.handle_ref.as_deref()), (Some("table"), Some("12")));
    assert_eq!(order.external_ref, None);
    assert_eq!((order.created_at, order.updated_at), (world.clock.now(), world.clock.now()));

    let session = world.session(POS, &key);
    assert_eq!(session.state, SessionState::Committed);
    assert_eq!(session.commit_token.as_deref(), Some("till-1-0001"));
    assert_eq!(session.committed_at, Some(world.clock.now()));
    assert_eq!((session.rev, session.version), (1, 2), "commit changes version, not rev");

    let snapshot = &order.snapshot;
    assert_eq!(snapshot["_v"], json!(1));
    assert_eq!(snapshot["rev"], json!(session.rev));
    assert_eq!(snapshot["items"], session.items_json());
    assert_eq!(snapshot["data"], Value::Object(session.data.clone()));
    assert_eq!(snapshot["pricing"], json!({"currency": "BRL"}), "the session's currency, recorded at open");

    let events = world.events(&order_ref);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].seq, events[0].event_type.as_str(), events[0].actor.as_str()), (0, "created", "till-1"));
    assert_eq!(Value::Object(events[0].payload.clone()), json!({"from_session": key}));
}

#[test]
fn commit_without_a_key_generates_one_and_refuses_malformed_keys() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    // A malformed key cannot be built, so it never reaches the service.
    for bad in ["", "has space", "ção", "k".repeat(129).as_str()] {
        let e = IdempotencyKey::parse(bad).unwrap_err().at("idempotency_key");
        assert!(e.0.contains_key("idempotency_key"), "{bad:?}");
    }
    let answer = block_on(world.hub.commit(&at(POS, &s.session_key), None, None, &api())).expect("commit");
    assert_eq!(answer.http_status(), 201);
    let token = world.session(POS, &s.session_key).commit_token.expect("token");
    assert!(token.starts_with("IDEM-") && token.len() == 21, "{token}");
    assert!(world.commit(POS, &s.session_key, &"k".repeat(128)).is_ok(), "128 visible chars are a valid key");
}

#[test]
fn order_ref_is_dated_in_the_business_time_zone() {
    let settings = CommitSettings { business_tz: chrono_tz::America::Sao_Paulo, ..CommitSettings::default() };
    let world = World::with_settings(vec![chan(1, POS)], Extensions::default(), settings);
    // 01:00 UTC on the 22nd is still the 21st in São Paulo (UTC−3).
    world.clock.set("2026-11-22T01:00:00Z".parse().unwrap());
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let answer = world.commit(POS, &s.session_key, "k").expect("commit");
    assert!(answer.order_ref().unwrap().starts_with("ORD-20261121-"), "{:?}", answer.order_ref());
}

#[test]
fn initial_status_comes_from_the_channel_flow_and_sets_its_timestamp() {
    let world = World::new(vec![chan_with(1, POS, json!({"order_flow": {"initial_status": "confirmed"}}))]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let order = world.commit_order(POS, &s.session_key, "k");
    assert_eq!(order.status, "confirmed");
    assert_eq!(order.timestamps.confirmed_at, Some(world.clock.now()));
}

#[test]
fn commit_with_a_failed_if_match_is_precondition_failed() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let stale = Precondition::RevVersion(1, 0);
    let e = block_on(world.hub.commit(&at(POS, &s.session_key), Some(&idem("k")), Some(&stale), &api())).unwrap_err();
    assert_eq!((code_of(&e), e.kind()), ("precondition_failed".to_owned(), ErrorKind::PreconditionFailed));
    assert_eq!(e.context()["expected"], json!("\"1.0\""));
    let fresh = Precondition::RevVersion(1, 1);
    block_on(world.hub.commit(&at(POS, &s.session_key), Some(&idem("k")), Some(&fresh), &api()))
        .expect("matching If-Match");
}

// ---------------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------------

#[test]
fn commit_same_key_again_gives_the_same_order_ref_and_one_order() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 2, "unit_price_q": 1000}]));
    let first = world.commit(POS, &s.session_key, "key-1").expect("first");
    world.clock.advance(TimeDelta::minutes(1));
    let second = world.commit(POS, &s.session_key, "key-1").expect("replay");
    assert_eq!((first.code, second.code), (201, 201));
    assert_eq!(second.body, first.body);
    assert_eq!(world.store().order_count(), 1);

    let stored = record(&world, "key-1").expect("record (\"commit:pos\", key)");
    assert_eq!((stored.scope.as_str(), stored.key.as_str()), ("commit:pos", "key-1"));
    assert_eq!(stored.status, IdempotencyStatus::Done);
    assert_eq!((stored.response_code, stored.response_body.as_ref()), (Some(201), Some(&first.body)));
    assert_eq!(stored.session_key.as_deref(), Some(s.session_key.as_str()));
    assert_eq!(stored.expires_at, Some(common::t0() + TimeDelta::hours(24)));
}

#[test]
fn a_stored_done_key_returns_its_body_verbatim() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let body = json!({"order_ref": "ORD-LEGACY", "anything": ["kept", 1]});
    save(&world, &done_record(commit_scope(POS), "legacy".into(), &s.session_key, 202, body.clone(), common::t0()));
    let answer = world.commit(POS, &s.session_key, "legacy").expect("replay");
    assert_eq!((answer.code, answer.body), (202, body));
    // Nothing else ran: the session is still open and no order exists.
    assert_eq!(world.session(POS, &s.session_key).state, SessionState::Open);
    assert_eq!(world.store().order_count(), 0);
}

#[test]
fn a_new_key_on_a_committed_session_answers_200_already_committed_with_the_same_order_ref() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 2, "unit_price_q": 1000}]));
    let first = world.commit(POS, &s.session_key, "k1").expect("first");
    let other = world.commit(POS, &s.session_key, "k2").expect("already committed");
    assert_eq!(other.code, 200);
    assert_eq!(
        other.body,
        json!({"order_ref": first.order_ref(), "order_id": first.body["order_id"], "status": "already_committed",
               "total_q": 2000, "items_count": 1})
    );
    // Its replay keeps the 200.
    let replay = world.commit(POS, &s.session_key, "k2").expect("replay");
    assert_eq!((replay.code, replay.body), (200, other.body));
    assert_eq!(world.store().order_count(), 1);
    assert_eq!(world.session(POS, &s.session_key).commit_token.as_deref(), Some("k1"));
}

#[test]
fn a_committed_session_without_an_order_is_already_committed() {
    let world = World::new(vec![chan(1, POS)]);
    let key = seeded(&world, POS, vec![item("L-1", "A", "1", 10)], None);
    world.store().tamper_session(POS, &key, |s| s.state = SessionState::Committed);
    let e = commit_err(&world, POS, &key, "k");
    assert_eq!((code_of(&e), e.kind()), ("already_committed".to_owned(), ErrorKind::Conflict));
}

#[test]
fn an_in_progress_key_is_in_progress_until_it_expires() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let key = s.session_key.clone();
    save(&world, &pending("busy", &key, IdempotencyStatus::InProgress, Some(common::t0() + TimeDelta::hours(24))));
    let e = commit_err(&world, POS, &key, "busy");
    assert_eq!((code_of(&e), e.kind()), ("in_progress".to_owned(), ErrorKind::Conflict));
    assert_eq!(e.context()["idempotency_key"], json!("busy"));
    // Without an expiry it never expires.
    save(&world, &pending("busy-forever", &key, IdempotencyStatus::InProgress, None));
    assert_eq!(code_of(&commit_err(&world, POS, &key, "busy-forever")), "in_progress");
    // An orphan (expired) is taken over: the commit proceeds and the record ends done.
    world.clock.advance(TimeDelta::hours(25));
    let answer = world.commit(POS, &key, "busy").expect("take over");
    assert_eq!(answer.code, 201);
    let done = record(&world, "busy").unwrap();
    assert_eq!(done.status, IdempotencyStatus::Done);
    assert_eq!(done.expires_at, Some(world.clock.now() + TimeDelta::hours(24)), "expiry refreshed");
}

#[test]
fn a_failed_key_may_be_used_again() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    save(
        &world,
        &pending("retry", &s.session_key, IdempotencyStatus::Failed, Some(common::t0() + TimeDelta::hours(1))),
    );
    assert_eq!(world.commit(POS, &s.session_key, "retry").expect("proceeds").code, 201);
    assert_eq!(record(&world, "retry").unwrap().status, IdempotencyStatus::Done);
}

#[test]
fn a_key_used_for_another_session_is_idempotency_conflict() {
    let world = World::new(vec![chan(1, POS)]);
    let a = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let b = world.open_with(POS, &json!([{"op": "add_line", "sku": "B", "qty": 1}]));
    world.commit(POS, &a.session_key, "shared").expect("first");
    let e = commit_err(&world, POS, &b.session_key, "shared");
    assert_eq!((code_of(&e), e.kind()), ("idempotency_conflict".to_owned(), ErrorKind::Conflict));
    assert_eq!(world.session(POS, &b.session_key).state, SessionState::Open);
    // The key is decided first, even for a session that does not exist.
    assert_eq!(code_of(&commit_err(&world, POS, "NOPE", "shared")), "idempotency_conflict");
    assert_eq!(code_of(&commit_err(&world, POS, "NOPE", "unused")), "session_not_found");

    save(&world, &pending("running", &a.session_key, IdempotencyStatus::InProgress, None));
    assert_eq!(code_of(&commit_err(&world, POS, &b.session_key, "running")), "idempotency_conflict");
    // Keys are scoped per channel.
    let world2 = World::new(vec![chan(1, POS), chan(2, "web")]);
    let pos_session = world2.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let web_session = world2.open_with("web", &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    world2.commit(POS, &pos_session.session_key, "same").expect("pos");
    world2.commit("web", &web_session.session_key, "same").expect("web has its own scope");
    assert_eq!(world2.store().order_count(), 2);
}

#[test]
fn a_refused_commit_leaves_the_key_free_for_a_retry() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open(POS);
    assert_eq!(code_of(&commit_err(&world, POS, &s.session_key, "k")), "empty_session");
    assert!(record(&world, "k").is_none_or(|r| r.status == IdempotencyStatus::Failed));
    world.modify_ok(POS, &s.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    assert_eq!(world.commit(POS, &s.session_key, "k").expect("retry").code, 201);
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

#[test]
fn commit_unknown_session_is_session_not_found() {
    let world = World::new(vec![chan(1, POS)]);
    let e = commit_err(&world, POS, "NOPE", "k");
    assert_eq!((code_of(&e), e.kind()), ("session_not_found".to_owned(), ErrorKind::NotFound));
    assert_eq!(code_of(&commit_err(&world, "nowhere", "NOPE", "k")), "unknown_channel");
}

#[test]
fn commit_abandoned_session_is_already_abandoned() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    block_on(world.hub.abandon(&at(POS, &s.session_key), None, &api())).expect("abandon");
    let e = commit_err(&world, POS, &s.session_key, "k");
    assert_eq!((code_of(&e), e.kind()), ("already_abandoned".to_owned(), ErrorKind::Conflict));
}

#[test]
fn commit_empty_session_is_empty_session() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open(POS);
    let e = commit_err(&world, POS, &s.session_key, "k");
    assert_eq!((code_of(&e), e.kind()), ("empty_session".to_owned(), ErrorKind::Conflict));
    assert_eq!(e.context()["session_key"], json!(s.session_key));
    assert_eq!(world.session(POS, &s.session_key).state, SessionState::Open);
}

#[test]
fn commit_with_a_blocking_issue_is_blocking_issues() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let blocking = json!({"code": "stock.insufficient", "blocking": true, "message": "no"});
    let advisory = json!({"code": "promo.available", "blocking": false});
    assert!(
        block_on(world.hub.apply_check_result(
            &at(POS, &s.session_key),
            1,
            "stock",
            json!({}),
            vec![blocking, advisory]
        ))
        .unwrap()
    );
    let e = commit_err(&world, POS, &s.session_key, "k");
    assert_eq!((code_of(&e), e.kind()), ("blocking_issues".to_owned(), ErrorKind::Conflict));
    let issues = e.context()["issues"].as_array().cloned().expect("issues");
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["code"], json!("stock.insufficient"));
    assert_eq!(world.store().order_count(), 0);

    // Only the non-blocking issue left: commit goes through.
    assert!(
        block_on(world.hub.apply_check_result(
            &at(POS, &s.session_key),
            1,
            "stock",
            json!({}),
            vec![json!({"code": "promo.available", "blocking": 0})]
        ))
        .unwrap()
    );
    assert_eq!(world.commit(POS, &s.session_key, "k").expect("commit").code, 201);
}

// ---------------------------------------------------------------------------------------------
// Required checks
// ---------------------------------------------------------------------------------------------

fn stock_world() -> World {
    World::new(vec![chan_with(1, POS, json!({"required_checks_on_commit": ["stock"]}))])
}

fn with_stock_check(world: &World, check: &Value) -> String {
    seeded(world, POS, vec![item("L-1", "A", "1", 100)], Some(json!({"checks": {"stock": check}})))
}

#[test]
fn an_absent_required_check_is_missing_check() {
    let world = stock_world();
    let key = seeded(&world, POS, vec![item("L-1", "A", "1", 100)], None);
    let e = commit_err(&world, POS, &key, "k");
    assert_eq!((code_of(&e), e.kind()), ("missing_check".to_owned(), ErrorKind::Conflict));
    assert_eq!(e.context()["check_code"], json!("stock"));
}

#[test]
fn a_check_at_rev_minus_1_against_session_rev_0_is_stale_check() {
    let world = stock_world();
    let key = with_stock_check(&world, &json!({"rev": -1, "at": "2026-11-21T12:00:00Z", "result": {}}));
    let e = commit_err(&world, POS, &key, "k");
    assert_eq!(code_of(&e), "stale_check");
    let c = e.context();
    assert_eq!(
        (c["check_code"].clone(), c["check_rev"].clone(), c["session_rev"].clone()),
        (json!("stock"), json!(-1), json!(0))
    );
}

#[test]
fn a_check_written_back_at_the_current_rev_lets_the_commit_through() {
    let world = stock_world();
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    assert_eq!(code_of(&commit_err(&world, POS, &s.session_key, "k")), "missing_check");
    assert!(
        block_on(world.hub.apply_check_result(&at(POS, &s.session_key), 1, "stock", json!({"holds": []}), vec![]))
            .unwrap()
    );
    // A modify afterwards makes it stale again.
    world.modify_ok(POS, &s.session_key, &json!([]));
    assert_eq!(code_of(&commit_err(&world, POS, &s.session_key, "k")), "missing_check");
    assert!(block_on(world.hub.apply_check_result(&at(POS, &s.session_key), 2, "stock", json!({}), vec![])).unwrap());
    assert_eq!(world.commit(POS, &s.session_key, "k").expect("fresh check").code, 201);
}

#[test]
fn an_expired_hold_expires_at_is_hold_expired() {
    let world = stock_world();
    let key = with_stock_check(&world, &json!({"rev": 0, "result": {"hold_expires_at": "2026-11-21T12:00:00Z"}}));
    let e = commit_err(&world, POS, &key, "k");
    assert_eq!(code_of(&e), "hold_expired");
    assert_eq!(
        (e.context()["check_code"].clone(), e.context()["expires_at"].clone()),
        (json!("stock"), json!("2026-11-21T12:00:00Z"))
    );
}

#[test]
fn an_expired_hold_in_holds_is_hold_expired_naming_the_hold() {
    let world = stock_world();
    let key = with_stock_check(
        &world,
        &json!({"rev": 0, "result": {"holds": [
            {"sku": "A", "hold_id": "H-OK", "expires_at": "2026-11-21T12:15:00Z"},
            {"sku": "B", "hold_id": "H-OLD", "expires_at": "2026-11-21T11:59:59"}
        ]}}),
    );
    let e = commit_err(&world, POS, &key, "k");
    assert_eq!(code_of(&e), "hold_expired");
    assert_eq!(e.context()["hold_id"], json!("H-OLD"));
    assert_eq!(e.context()["expires_at"], json!("2026-11-21T11:59:59"));
}

#[test]
fn a_hold_without_expires_at_commits_and_unparsable_expiries_are_ignored() {
    let world = stock_world();
    let key = with_stock_check(
        &world,
        &json!({"rev": 0, "result": {
            "hold_expires_at": "not a date",
            "holds": [{"sku": "A", "hold_id": "H-1"}, {"sku": "B", "hold_id": "H-2", "expires_at": "2026-11-21T12:10:00-03:00"}]
        }}),
    );
    assert_eq!(world.commit(POS, &key, "k").expect("commit").code, 201);
}

#[test]
fn offsets_are_honoured_when_judging_expiry() {
    let world = stock_world();
    // 09:30 in UTC−3 is 12:30 UTC: still valid at 12:00 UTC.
    let key = with_stock_check(&world, &json!({"rev": 0, "result": {"hold_expires_at": "2026-11-21T09:30:00-03:00"}}));
    assert!(world.commit(POS, &key, "k").is_ok());
    // 14:00 in UTC+3 is 11:00 UTC: expired.
    let key = with_stock_check(&world, &json!({"rev": 0, "result": {"hold_expires_at": "2026-11-21T14:00:00+03:00"}}));
    assert_eq!(code_of(&commit_err(&world, POS, &key, "k2")), "hold_expired");
}

#[test]
fn required_checks_are_verified_in_order_and_a_registered_check_validates_its_result() {
    struct Fraud;
    impl omniman_core::ext::Check for Fraud {
        fn code(&self) -> &'static str {
            "fraud"
        }
        fn topic(&self) -> &'static str {
            "fraud.screen"
        }
        fn validate(&self, _c: &Channel, _s: &Session, entry: &Value, _now: DateTime<Utc>) -> Result<(), Rejection> {
            if entry["result"]["score"].as_i64().unwrap_or(0) > 50 {
                return Err(
                    Rejection::new("fraud_suspected", "too risky").with("score", entry["result"]["score"].clone())
                );
            }
            Ok(())
        }
    }
    let ext = ExtensionsBuilder::new().check(Fraud).build();
    let world = World::with_ext(vec![chan_with(1, POS, json!({"required_checks_on_commit": ["stock", "fraud"]}))], ext);
    let key = seeded(&world, POS, vec![item("L-1", "A", "1", 100)], None);
    assert_eq!(commit_err(&world, POS, &key, "k").context()["check_code"], json!("stock"));
    world.store().tamper_session(POS, &key, |s| s.data["checks"]["stock"] = json!({"rev": 0, "result": {}}));
    assert_eq!(commit_err(&world, POS, &key, "k").context()["check_code"], json!("fraud"));
    world.store().tamper_session(POS, &key, |s| s.data["checks"]["fraud"] = json!({"rev": 0, "result": {"score": 90}}));
    let e = commit_err(&world, POS, &key, "k");
    assert_eq!((code_of(&e), e.context()["score"].clone()), ("fraud_suspected".to_owned(), json!(90)));
    world.store().tamper_session(POS, &key, |s| s.data["checks"]["fraud"] = json!({"rev": 0, "result": {"score": 10}}));
    assert_eq!(world.commit(POS, &key, "k").expect("commit").code, 201);
}

#[test]
fn commit_validators_run_before_the_emptiness_check() {
    struct Closed;
    impl omniman_core::ext::Validator for Closed {
        fn code(&self) -> &'static str {
            "store_closed"
        }
        fn stage(&self) -> omniman_core::ext::ValidatorStage {
            omniman_core::ext::ValidatorStage::Commit
        }
        fn validate(&self, _c: &Channel, _s: &Session, _ctx: &Ctx) -> Result<(), Rejection> {
            Err(Rejection::new("store_closed", "closed"))
        }
    }
    let world = World::with_ext(vec![chan(1, POS)], ExtensionsBuilder::new().validator(Closed).build());
    let s = world.open(POS);
    assert_eq!(code_of(&commit_err(&world, POS, &s.session_key, "k")), "store_closed");
}

// ---------------------------------------------------------------------------------------------
// Post-commit directives
// ---------------------------------------------------------------------------------------------

#[test]
fn post_commit_directives_stock_commit_carries_order_ref_session_key_and_holds() {
    let world = World::new(vec![chan_with(
        1,
        POS,
        json!({"required_checks_on_commit": ["stock"], "post_commit_directives": ["stock.commit", "notify.kitchen"]}),
    )]);
    let holds = json!([{"sku": "A", "hold_id": "H-1", "qty": "1.000", "expires_at": "2026-11-21T12:15:00Z"}]);
    let key = with_stock_check(&world, &json!({"rev": 0, "result": {"holds": holds}}));
    let answer = world.commit(POS, &key, "k").expect("commit");
    let order_ref = answer.order_ref().unwrap();

    let commit = world.directives_of("stock.commit");
    assert_eq!(commit.len(), 1);
    let payload = &commit[0].payload;
    assert_eq!(
        Value::Object(payload.clone()),
        json!({"order_ref": order_ref, "channel_code": POS, "session_key": key, "holds": holds})
    );
    assert_eq!(payload["holds"][0]["hold_id"], json!("H-1"));
    assert_eq!((commit[0].status, commit[0].available_at), (DirectiveStatus::Queued, world.clock.now()));
    // Other topics get no holds.
    let kitchen = world.directives_of("notify.kitchen");
    assert_eq!(
        Value::Object(kitchen[0].payload.clone()),
        json!({"order_ref": order_ref, "channel_code": POS, "session_key": key})
    );
}

#[test]
fn stock_commit_without_holds_has_no_holds_key() {
    let world = World::new(vec![chan_with(1, POS, json!({"post_commit_directives": ["stock.commit"]}))]);
    let key = seeded(
        &world,
        POS,
        vec![item("L-1", "A", "1", 100)],
        Some(json!({"checks": {"stock": {"rev": 0, "result": {"holds": []}}}})),
    );
    world.commit(POS, &key, "k").expect("commit");
    assert!(!world.directives_of("stock.commit")[0].payload.contains_key("holds"));
}

#[test]
fn no_post_commit_config_means_no_directives() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    world.commit(POS, &s.session_key, "k").expect("commit");
    assert!(world.directives().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Shopman pre-order
// ---------------------------------------------------------------------------------------------

fn shop_world() -> World {
    let settings = CommitSettings { business_tz: chrono_tz::America::Sao_Paulo, ..CommitSettings::default() };
    World::with_settings(vec![chan(1, "shop")], Extensions::default(), settings)
}

fn shop_session(world: &World, data: &Value) -> String {
    let s = world.open("shop");
    let mut batch = vec![
        json!({"op": "add_line", "sku": "PAO", "name": "Pão", "qty": 2, "unit_price_q": 100}),
        json!({"op": "add_line", "sku": "CAFE", "qty": 1.5, "unit_price_q": 300}),
    ];
    for (path, value) in data.as_object().unwrap() {
        batch.push(json!({"op": "set_data", "path": path, "value": value}));
    }
    world.modify_ok("shop", &s.session_key, &Value::Array(batch));
    s.session_key
}

#[test]
fn a_future_delivery_date_makes_a_preorder_with_a_reminder_the_day_before() {
    let world = shop_world();
    let key = shop_session(
        &world,
        &json!({
            "customer": {"name": "Ana", "phone": "+5581999990000"},
            "delivery_date": "2026-11-25",
            "delivery_time_slot": "08:00-10:00",
            "delivery_address": "Rua A, 1",
            "order_notes": "sem açúcar",
            "origin_channel": "whatsapp",
            "payment": {"method": "pix"},
            "notes": "copied too"
        }),
    );
    let order = world.commit_order("shop", &key, "k");
    assert_eq!(
        Value::Object(order.data.clone()),
        json!({
            "customer": {"name": "Ana", "phone": "+5581999990000"},
            "delivery_date": "2026-11-25",
            "delivery_time_slot": "08:00-10:00",
            "delivery_address": "Rua A, 1",
            "order_notes": "sem açúcar",
            "origin_channel": "whatsapp",
            "payment": {"method": "pix"},
            "notes": "copied too",
            "is_preorder": true
        }),
        "every root but checks and issues reaches the order"
    );
    let reminders = world.directives_of("notification.send");
    assert_eq!(reminders.len(), 1);
    let r = &reminders[0];
    // 09:00 in São Paulo (UTC−3) on the 24th.
    assert_eq!(r.available_at, "2026-11-24T12:00:00Z".parse::<DateTime<Utc>>().unwrap());
    assert_eq!(r.payload["order_ref"], json!(order.reference));
    assert_eq!(r.payload["template"], json!("preorder_reminder"));
    assert_eq!(
        r.payload["context"],
        json!({"customer_name": "Ana", "delivery_date": "2026-11-25", "delivery_time_slot": "08:00-10:00",
               "items_summary": "2x Pão, 1.5x CAFE", "fulfillment_type": "pickup"})
    );
}

#[test]
fn a_delivery_date_of_today_is_no_preorder_and_no_reminder() {
    let world = shop_world();
    let key = shop_session(&world, &json!({"delivery_date": "2026-11-21", "fulfillment_type": "delivery"}));
    let order = world.commit_order("shop", &key, "k");
    assert_eq!(order.data["is_preorder"], json!(false));
    assert_eq!(order.data["fulfillment_type"], json!("delivery"));
    assert!(world.directives_of("notification.send").is_empty());
}

#[test]
fn without_a_delivery_date_there_is_no_is_preorder_key() {
    let world = shop_world();
    let key = shop_session(&world, &json!({"customer": {"name": "Ana"}}));
    let order = world.commit_order("shop", &key, "k");
    assert!(!order.data.contains_key("is_preorder"));
    assert_eq!(Value::Object(order.data), json!({"customer": {"name": "Ana"}}));
    assert!(world.directives().is_empty());
}

#[test]
fn a_channel_narrows_the_order_data_to_its_order_data_keys() {
    let settings = CommitSettings { business_tz: chrono_tz::America::Sao_Paulo, ..CommitSettings::default() };
    let shop = chan_with(1, "shop", json!({"order_data_keys": ["customer", "tip"]}));
    let world = World::with_settings(vec![shop], Extensions::default(), settings);
    let key = shop_session(&world, &json!({"customer": {"name": "Ana"}, "notes": "no sugar", "tip": 200}));
    let order = world.commit_order("shop", &key, "k");
    assert_eq!(Value::Object(order.data), json!({"customer": {"name": "Ana"}, "tip": 200}));
}

#[test]
fn the_order_takes_the_currency_its_session_was_opened_in() {
    let settings = CommitSettings { currency: "USD".into(), ..CommitSettings::default() };
    let euro = chan_with(2, "eu", json!({"currency": "EUR"}));
    let world = World::with_settings(vec![chan(1, "shop"), euro], Extensions::default(), settings);
    for (channel, currency) in [("shop", "USD"), ("eu", "EUR")] {
        let s = world.open(channel);
        assert_eq!(s.currency(), Some(currency), "recorded in pricing at open");
        let batch = json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100}]);
        world.modify_ok(channel, &s.session_key, &batch);
        let order = world.commit_order(channel, &s.session_key, "k");
        assert_eq!(order.currency, currency);
    }
}

#[test]
fn preorder_reminders_can_be_turned_off() {
    let settings = CommitSettings { preorder_reminders: false, ..CommitSettings::default() };
    let world = World::with_settings(vec![chan(1, "shop")], Extensions::default(), settings);
    let key = shop_session(&world, &json!({"delivery_date": "2026-12-01"}));
    let order = world.commit_order("shop", &key, "k");
    assert_eq!(order.data["is_preorder"], json!(true));
    assert!(world.directives().is_empty());
}

#[test]
fn the_order_store_refuses_a_plan_whose_session_moved() {
    // The commit write is conditional on the session version read (docs/architecture.md, "Concurrency").
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let channel = world.channel(POS);
    let ctx = Ctx::new(api(), world.clock.now());
    let plan = omniman_core::commit::plan_commit(
        &s,
        &channel,
        "k",
        None,
        &Extensions::default(),
        &CommitSettings::default(),
        &ctx,
        &mut RandomIds::seeded(5),
    )
    .expect("plan");
    world.modify_ok(POS, &s.session_key, &json!([]));
    let write = block_on(world.store().commit(&plan)).expect("store");
    assert_eq!(write, omniman_core::ports::CommitWrite::SessionChanged);
    assert_eq!(world.store().order_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Step order, ref collisions and concurrency
// ---------------------------------------------------------------------------------------------

#[test]
fn commit_judges_checks_then_blocking_issues_then_validators_then_emptiness() {
    struct Closed;
    impl omniman_core::ext::Validator for Closed {
        fn code(&self) -> &'static str {
            "store_closed"
        }
        fn stage(&self) -> omniman_core::ext::ValidatorStage {
            omniman_core::ext::ValidatorStage::Commit
        }
        fn validate(&self, _c: &Channel, _s: &Session, _ctx: &Ctx) -> Result<(), Rejection> {
            Err(Rejection::new("store_closed", "closed"))
        }
    }
    let world = World::with_ext(
        vec![chan_with(1, POS, json!({"required_checks_on_commit": ["stock"]}))],
        ExtensionsBuilder::new().validator(Closed).build(),
    );
    let blocking = json!([{"id": "ISS-1", "source": "fraud", "code": "x", "blocking": true}]);
    let key = seeded(&world, POS, vec![], Some(json!({"issues": blocking})));
    assert_eq!(code_of(&commit_err(&world, POS, &key, "k")), "missing_check");
    world.store().tamper_session(POS, &key, |s| s.data["checks"]["stock"] = json!({"rev": 0, "result": {}}));
    assert_eq!(code_of(&commit_err(&world, POS, &key, "k")), "blocking_issues");
    world.store().tamper_session(POS, &key, |s| s.data["issues"] = json!([]));
    assert_eq!(code_of(&commit_err(&world, POS, &key, "k")), "store_closed");
}

/// Ids from a seeded generator, except order refs, which come from a script.
struct ScriptedRefs {
    refs: Vec<&'static str>,
    inner: RandomIds,
}

impl omniman_core::ids::IdGen for ScriptedRefs {
    fn fill_symbols(&mut self, out: &mut [u8]) {
        self.inner.fill_symbols(out);
    }
    fn order_ref(&mut self, _business_date: chrono::NaiveDate) -> String {
        self.refs.remove(0).to_owned()
    }
}

#[test]
fn an_order_ref_collision_is_regenerated() {
    let store = omniman_core::memory::InMemoryStore::new();
    store.put_channel(chan(1, POS));
    let ids = ScriptedRefs {
        refs: vec!["ORD-20261121-AAAAAAAA", "ORD-20261121-AAAAAAAA", "ORD-20261121-BBBBBBBB"],
        inner: RandomIds::seeded(8),
    };
    let hub = Omniman::new(store, Extensions::default())
        .with_clock(std::sync::Arc::new(ManualClock::at(common::t0())))
        .with_ids(Box::new(ids));
    let mut refs = Vec::new();
    for key in ["k1", "k2"] {
        let opened =
            block_on(hub.open_session(OpenSession::on(ChannelCode::parse(POS).unwrap()), &api())).expect("open");
        let idem_key = idem(key);
        let key = opened.session.session_key;
        let batch = omniman_core::ops::Op::parse_batch(&json!([{"op": "add_line", "sku": "A", "qty": 1}])).unwrap();
        block_on(hub.modify(&at(POS, &key), &batch, None, &api())).expect("modify");
        refs.push(
            block_on(hub.commit(&at(POS, &key), Some(&idem_key), None, &api()))
                .expect("commit")
                .receipt()
                .unwrap()
                .order_ref,
        );
    }
    assert_eq!(refs, ["ORD-20261121-AAAAAAAA", "ORD-20261121-BBBBBBBB"]);
    assert_eq!(hub.store().order_count(), 2);
}

#[test]
fn concurrent_commits_with_one_key_create_one_order_and_answer_the_same_ref() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 10}]));
    let answers = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                let answer = world.commit(POS, &s.session_key, "one-key").expect("commit or replay");
                answers.lock().unwrap().push(answer);
            });
        }
    });
    let answers = answers.into_inner().unwrap();
    assert_eq!(world.store().order_count(), 1);
    assert!(answers.iter().all(|a| a.code == 201 && a.body == answers[0].body));
}

#[test]
fn concurrent_commits_with_different_keys_create_one_order() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 10}]));
    let answers = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for n in 0..16 {
            let (world, s, answers) = (&world, &s, &answers);
            scope.spawn(move || {
                let answer = world.commit(POS, &s.session_key, &format!("key-{n}")).expect("commit");
                answers.lock().unwrap().push(answer);
            });
        }
    });
    let answers = answers.into_inner().unwrap();
    assert_eq!(world.store().order_count(), 1);
    assert_eq!(answers.iter().filter(|a| a.code == 201).count(), 1);
    assert_eq!(answers.iter().filter(|a| a.code == 200 && a.body["status"] == json!("already_committed")).count(), 15);
    assert!(answers.iter().all(|a| a.order_ref() == answers[0].order_ref()));
}
