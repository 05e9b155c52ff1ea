//! The sessions API, the rules the core owns (docs/reference.md §1.2 and §11): open and
//! get-or-open by handle, `session_exists`, `channel_inactive`, and an ambiguous key without a
//! channel code → `channel_code_required`; plus abandon.
//!
//! Left to other layers:
//! - HTTP layer: 201 vs 200 on the wire (the core reports it as `Opened::created`), `GET /api/sessions`
//!   filters and paging, ETag/`If-None-Match`, reserved paths (`import`), `channel_code` from query or
//!   body, auth and channel scopes.
//! - storage: the partial unique index on open handles under concurrent opens.

mod common;

use common::{World, api, at, chan, code_of, parsed};
use futures_executor::block_on;
use serde_json::json;

use omniman_core::error::ErrorKind;
use omniman_core::prelude::*;

const POS: &str = "pos";

fn open(world: &World, request: OpenSession) -> Result<Opened, OpenError> {
    block_on(world.hub.open_session(request, &api()))
}

fn request(channel_code: &str) -> OpenSession {
    OpenSession::on(parsed(channel_code))
}

#[test]
fn open_creates_an_open_session_with_a_generated_key() {
    let channel = Channel { pricing_policy: PricingPolicy::External, name: "Balcão".into(), ..chan(1, POS) };
    let world = World::new(vec![channel]);
    let opened = open(&world, request(POS)).expect("open");
    assert!(opened.created, "a new session (HTTP 201)");
    let s = opened.session;
    let rest = s.session_key.strip_prefix("SESS-").expect("SESS- prefix");
    assert_eq!(rest.len(), 12);
    assert!(rest.bytes().all(|b| omniman_core::ids::ALPHABET.contains(&b)));
    assert!(s.id > 0);
    assert_eq!(s.state, SessionState::Open);
    assert_eq!((s.rev, s.version), (0, 0));
    assert!(s.items.is_empty());
    assert_eq!(serde_json::Value::Object(s.data.clone()), json!({"checks": {}, "issues": []}));
    assert_eq!((s.pricing_policy, s.edit_policy), (PricingPolicy::External, EditPolicy::Open));
    assert_eq!((s.channel_id, s.channel_code.as_str()), (1, POS));
    assert_eq!((s.opened_at, s.updated_at, s.committed_at), (world.clock.now(), world.clock.now(), None));
    assert_eq!(s.commit_token, None);
    assert_eq!(world.session(POS, &s.session_key), s);
}

#[test]
fn opening_the_same_handle_again_returns_the_same_open_session() {
    let world = World::new(vec![chan(1, POS)]);
    let first = world.open_handle(POS, "table", "12");
    assert!(first.created);
    world.modify_ok(POS, &first.session.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    let again = world.open_handle(POS, "table", "12");
    assert!(!again.created, "get-or-open answers 200");
    assert_eq!(again.session.id, first.session.id);
    assert_eq!(again.session.session_key, first.session.session_key);
    assert_eq!(again.session.rev, 1, "the stored session, not a fresh one");

    // A client key does not override get-or-open.
    let with_key = open(
        &world,
        OpenSession {
            session_key: Some(parsed("client-key")),
            handle_type: Some(parsed("table")),
            handle_ref: Some(parsed("12")),
            ..request(POS)
        },
    )
    .expect("open");
    assert_eq!((with_key.created, with_key.session.id), (false, first.session.id));

    // Another handle value, or another type, is another session.
    assert_ne!(world.open_handle(POS, "table", "13").session.id, first.session.id);
    assert_ne!(world.open_handle(POS, "tab", "12").session.id, first.session.id);
}

#[test]
fn handles_are_per_channel() {
    let world = World::new(vec![chan(1, POS), chan(2, "web")]);
    let pos = world.open_handle(POS, "table", "1");
    let web = world.open_handle("web", "table", "1");
    assert!(web.created);
    assert_ne!(pos.session.id, web.session.id);
}

#[test]
fn sessions_with_one_handle_field_null_are_never_deduplicated() {
    let world = World::new(vec![chan(1, POS)]);
    let only_type = || OpenSession { handle_type: Some(parsed("table")), ..request(POS) };
    let a = open(&world, only_type()).expect("open");
    let b = open(&world, only_type()).expect("open");
    assert!(a.created && b.created);
    assert_ne!(a.session.id, b.session.id);
    let only_ref = || OpenSession { handle_ref: Some(parsed("12")), ..request(POS) };
    let c = open(&world, only_ref()).expect("open");
    let d = open(&world, only_ref()).expect("open");
    assert_ne!(c.session.id, d.session.id);
}

#[test]
fn a_handle_is_free_again_once_its_session_leaves_open() {
    let world = World::new(vec![chan(1, POS)]);
    let first = world.open_handle(POS, "table", "7");
    world.modify_ok(POS, &first.session.session_key, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    world.commit(POS, &first.session.session_key, "k").expect("commit");
    let second = world.open_handle(POS, "table", "7");
    assert!(second.created);
    assert_ne!(second.session.id, first.session.id);
    block_on(world.hub.abandon(&at(POS, &second.session.session_key), None, &api())).expect("abandon");
    let third = world.open_handle(POS, "table", "7");
    assert!(third.created);
    assert_ne!(third.session.id, second.session.id);
}

#[test]
fn a_client_chosen_key_is_used_when_valid_and_refused_otherwise() {
    let world = World::new(vec![chan(1, POS)]);
    let opened =
        open(&world, OpenSession { session_key: Some(parsed("table-12:tab_3.a")), ..request(POS) }).expect("open");
    assert_eq!(opened.session.session_key, "table-12:tab_3.a");
    // Malformed keys and handles cannot be built, so they never reach the service.
    for bad in ["", "has space", "ção", "k".repeat(65).as_str()] {
        assert!(SessionKey::parse(bad).is_err(), "{bad:?}");
    }
    assert!(HandleType::parse("t".repeat(33)).is_err() && HandleRef::parse("r".repeat(65)).is_err());
}

#[test]
fn a_duplicate_client_key_is_session_exists() {
    let world = World::new(vec![chan(1, POS), chan(2, "web")]);
    open(&world, OpenSession { session_key: Some(parsed("MESA-1")), ..request(POS) }).expect("first");
    let e = open(&world, OpenSession { session_key: Some(parsed("MESA-1")), ..request(POS) }).unwrap_err();
    assert_eq!((code_of(&e), e.kind()), ("session_exists".to_owned(), ErrorKind::Conflict));
    assert_eq!(e.context()["session_key"], json!("MESA-1"));
    // Keys are unique per channel only.
    assert!(open(&world, OpenSession { session_key: Some(parsed("MESA-1")), ..request("web") }).is_ok());
}

#[test]
fn opening_on_an_inactive_channel_is_channel_inactive() {
    let world = World::new(vec![Channel { is_active: false, ..chan(1, POS) }]);
    let e = open(&world, request(POS)).unwrap_err();
    assert_eq!((code_of(&e), e.kind()), ("channel_inactive".to_owned(), ErrorKind::Conflict));
    assert_eq!(e.context()["channel_code"], json!(POS));
    // Even get-or-open refuses.
    let e = open(&world, OpenSession { handle_type: Some(parsed("t")), handle_ref: Some(parsed("1")), ..request(POS) });
    assert_eq!(code_of(&e.unwrap_err()), "channel_inactive");
}

#[test]
fn opening_on_a_missing_channel_is_unknown_channel() {
    let world = World::new(vec![chan(1, POS)]);
    let e = open(&world, request("nowhere")).unwrap_err();
    assert_eq!((code_of(&e), e.kind()), ("unknown_channel".to_owned(), ErrorKind::BadRequest));
}

#[test]
fn get_session_by_key_needs_the_channel_code_only_when_the_key_is_ambiguous() {
    let world = World::new(vec![chan(1, POS), chan(2, "web")]);
    let unique = open(&world, OpenSession { session_key: Some(parsed("ONLY-POS")), ..request(POS) }).unwrap().session;
    assert_eq!(block_on(world.hub.get_session(None, &parsed("ONLY-POS"))).expect("unambiguous"), unique);

    let in_pos = open(&world, OpenSession { session_key: Some(parsed("SHARED")), ..request(POS) }).unwrap().session;
    let in_web = open(&world, OpenSession { session_key: Some(parsed("SHARED")), ..request("web") }).unwrap().session;
    let e = block_on(world.hub.get_session(None, &parsed("SHARED"))).unwrap_err();
    assert_eq!((code_of(&e), e.kind()), ("channel_code_required".to_owned(), ErrorKind::BadRequest));
    assert_eq!(e.context()["session_key"], json!("SHARED"));
    assert_eq!(block_on(world.hub.get_session(Some(&parsed(POS)), &parsed("SHARED"))).unwrap(), in_pos);
    assert_eq!(block_on(world.hub.get_session(Some(&parsed("web")), &parsed("SHARED"))).unwrap(), in_web);

    let e = block_on(world.hub.get_session(None, &parsed("NOPE"))).unwrap_err();
    assert_eq!(code_of(&e), "session_not_found");
    let e = block_on(world.hub.get_session(Some(&parsed(POS)), &parsed("NOPE"))).unwrap_err();
    assert_eq!(code_of(&e), "session_not_found");
}

#[test]
fn abandon_moves_an_open_session_once_and_refuses_a_committed_one() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open(POS);
    world.clock.advance(chrono::TimeDelta::minutes(3));
    let abandoned = block_on(world.hub.abandon(&at(POS, &s.session_key), None, &api())).expect("abandon");
    assert_eq!((abandoned.state, abandoned.rev, abandoned.version), (SessionState::Abandoned, 0, 1));
    assert_eq!(abandoned.updated_at, world.clock.now());
    // Again: answered as it is, nothing written.
    let again = block_on(world.hub.abandon(&at(POS, &s.session_key), None, &api())).expect("idempotent");
    assert_eq!(again, abandoned);

    let committed = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    world.commit(POS, &committed.session_key, "k").expect("commit");
    let e = block_on(world.hub.abandon(&at(POS, &committed.session_key), None, &api())).unwrap_err();
    assert_eq!(code_of(&e), "already_committed");
    let e = block_on(world.hub.abandon(&at(POS, "NOPE"), None, &api())).unwrap_err();
    assert_eq!(code_of(&e), "session_not_found");
    // If-Match is honoured.
    let other = world.open(POS);
    let e = block_on(world.hub.abandon(&at(POS, &other.session_key), Some(&Precondition::Rev(3)), &api())).unwrap_err();
    assert_eq!(code_of(&e), "precondition_failed");
}

#[test]
fn a_session_leaves_open_once_and_never_returns() {
    let world = World::new(vec![chan(1, POS)]);
    let s = world.open_with(POS, &json!([{"op": "add_line", "sku": "A", "qty": 1}]));
    world.commit(POS, &s.session_key, "k").expect("commit");
    let e = block_on(world.hub.abandon(&at(POS, &s.session_key), None, &api())).unwrap_err();
    assert_eq!(code_of(&e), "already_committed");
    assert_eq!(world.session(POS, &s.session_key).state, SessionState::Committed);

    let a = world.open(POS);
    block_on(world.hub.abandon(&at(POS, &a.session_key), None, &api())).expect("abandon");
    world.store().tamper_session(POS, &a.session_key, |s| s.items.push(common::item("L-1", "A", "1", 1)));
    assert_eq!(code_of(&world.commit(POS, &a.session_key, "k2").unwrap_err()), "already_abandoned");
    assert_eq!(world.session(POS, &a.session_key).state, SessionState::Abandoned);
}
