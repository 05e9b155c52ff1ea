//! The data model (docs/reference.md §1, §2 and §3): defaults of channels, sessions, directives and idempotency
//! records; seeded items; errors carrying code, message and context; money and quantity rules.
//!
//! Left to other layers:
//! - fulfillment extension: `Fulfillment` and its transitions (`pending → delivered` → `invalid_transition`).
//! - storage: column defaults and length limits enforced by the schema.

mod common;

use std::collections::BTreeSet;

use common::{World, chan, code_of, item, obj};
use serde_json::{Value, json};

use omniman_core::channel::ChannelConfig;
use omniman_core::error::{DomainError, ErrorCode, ErrorKind};
use omniman_core::idempotency::IdempotencyStatus;
use omniman_core::ids::{ALPHABET, IdGen};
use omniman_core::modify::prepare_import;
use omniman_core::money::{QtyError, monetary_div};
use omniman_core::ops::OpError;
use omniman_core::prelude::*;

#[test]
fn channel_defaults_are_internal_open_active_with_an_empty_config() {
    let spec: ChannelSpec = serde_json::from_value(json!({"code": "pos"})).expect("minimal spec");
    assert_eq!(spec.pricing_policy, PricingPolicy::Internal);
    assert_eq!(spec.edit_policy, EditPolicy::Open);
    assert!(spec.is_active);
    assert_eq!(spec.display_order, 0);
    assert_eq!(spec.name, "");
    assert_eq!(Value::from(spec.config.clone()), json!({}));
    assert_eq!((PricingPolicy::default(), EditPolicy::default()), (PricingPolicy::Internal, EditPolicy::Open));
    assert!(spec.validate().is_ok());
    let bad: Result<ChannelSpec, _> = serde_json::from_value(json!({"code": "pos", "colour": "red"}));
    assert!(bad.is_err(), "a channel file with an unknown field is refused");
}

#[test]
fn channel_display_name_is_the_name_else_the_code() {
    assert_eq!(chan(1, "pos").display_name(), "pos");
    assert_eq!(Channel { name: "Balcão".into(), ..chan(1, "pos") }.display_name(), "Balcão");
}

#[test]
fn channel_spec_limits_code_and_name_lengths() {
    let spec = |code: &str, name: &str| ChannelSpec {
        code: code.into(),
        name: name.into(),
        pricing_policy: PricingPolicy::Internal,
        edit_policy: EditPolicy::Open,
        display_order: 0,
        config: ChannelConfig::default(),
        is_active: true,
    };
    assert!(spec(&"c".repeat(64), &"ã".repeat(128)).validate().is_ok());
    assert_eq!(spec("", "").validate().unwrap_err().path, "code");
    assert_eq!(spec(&"c".repeat(65), "").validate().unwrap_err().path, "code");
    assert_eq!(spec("c", &"n".repeat(129)).validate().unwrap_err().path, "name");
}

#[test]
fn channel_config_keeps_unknown_keys_and_reports_them() {
    let cfg = ChannelConfig::from_value(json!({"icon": "cart", "colour": "blue", "payment": {"x": 1}})).unwrap();
    assert_eq!(cfg.unknown_keys(), ["colour"]);
    assert_eq!(Value::from(cfg), json!({"icon": "cart", "colour": "blue", "payment": {"x": 1}}));
    let e = ChannelConfig::from_value(json!({"post_commit_directives": "stock.commit"})).unwrap_err();
    assert_eq!(e.path, "post_commit_directives");
}

#[test]
fn session_defaults_are_open_rev_0_and_no_items() {
    let world = World::new(vec![chan(1, "pos")]);
    let s = world.open("pos");
    assert_eq!((s.state, s.rev, s.version), (SessionState::Open, 0, 0));
    assert!(s.items.is_empty() && s.pricing_trace.is_empty());
    assert_eq!(Value::Object(s.pricing.clone()), json!({"currency": "BRL"}), "only the session's currency");
    assert_eq!(Value::Object(s.data.clone()), json!({"checks": {}, "issues": []}));
    assert_eq!(
        (s.handle_type.clone(), s.handle_ref.clone(), s.commit_token.clone(), s.committed_at),
        (None, None, None, None)
    );
    assert_eq!((s.total_q(), s.items_count()), (0, 0));
    assert_eq!(s.etag(), "\"0.0\"");
}

#[test]
fn directive_defaults_are_queued_with_zero_attempts() {
    let world = World::new(vec![chan(1, "pos")]);
    let ids = futures_executor::block_on(omniman_core::ports::DirectiveQueue::enqueue(
        world.store(),
        &[NewDirective { topic: "t".into(), payload: serde_json::Map::new(), available_at: world.clock.now() }],
    ))
    .unwrap();
    let d = &world.directives()[0];
    assert_eq!(d.id, ids[0]);
    assert_eq!((d.status, d.attempts, d.last_error.as_str(), d.started_at), (DirectiveStatus::Queued, 0, "", None));
    assert_eq!((d.available_at, d.created_at, d.updated_at), (world.clock.now(), world.clock.now(), world.clock.now()));
}

#[test]
fn idempotency_records_default_to_in_progress() {
    assert_eq!(IdempotencyStatus::default(), IdempotencyStatus::InProgress);
    for status in [IdempotencyStatus::InProgress, IdempotencyStatus::Done, IdempotencyStatus::Failed] {
        assert_eq!(IdempotencyStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(IdempotencyStatus::InProgress.as_str(), "in_progress");
}

#[test]
fn stored_spellings_round_trip() {
    for state in [SessionState::Open, SessionState::Committed, SessionState::Abandoned] {
        assert_eq!(SessionState::parse(state.as_str()), Some(state));
        assert_eq!(serde_json::to_value(state).unwrap(), json!(state.as_str()));
    }
    for status in [DirectiveStatus::Queued, DirectiveStatus::Running, DirectiveStatus::Done, DirectiveStatus::Failed] {
        assert_eq!(DirectiveStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(SessionState::parse("closed"), None);
    assert_eq!(DirectiveStatus::parse("pending"), None);
}

#[test]
fn seeded_items_get_l_ids_and_qty_times_price_totals() {
    let channel = chan(1, "ifood");
    let ctx = Ctx::new(Caller::internal("importer"), common::t0());
    let mut given = item("L-GIVEN", "B", "1", 700);
    given.line_total_q = Some(650);
    let mut unset = item("", "C", "2", 0);
    (unset.unit_price_q, unset.line_total_q) = (None, None);
    let items = vec![item("", "A", "1.5", 333), given, item("L-GIVEN", "D", "3", 100), unset];
    let session = prepare_import(
        omniman_core::testing::session(&channel, "S"),
        &channel,
        items,
        Some(obj(json!({"checks": {"stock": {"rev": 0}}, "issues": []}))),
        &Extensions::default(),
        &ctx,
        &mut RandomIds::seeded(4),
    )
    .expect("import");
    let ids: Vec<&str> = session.items.iter().map(|i| i.line_id.as_str()).collect();
    assert!(ids[0].starts_with("L-") && ids[0].len() == 10, "{ids:?}");
    assert_eq!(ids[1], "L-GIVEN", "a given line id is kept");
    assert!(ids[2].starts_with("L-") && ids[2] != "L-GIVEN", "a duplicate line id is replaced");
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 4);
    let totals: Vec<(Option<i64>, Option<i64>)> =
        session.items.iter().map(|i| (i.unit_price_q, i.line_total_q)).collect();
    assert_eq!(totals, [(Some(333), Some(500)), (Some(700), Some(650)), (Some(100), Some(300)), (Some(0), Some(0))]);
    // Import data is stored as given, check results included.
    assert_eq!(session.data["checks"], json!({"stock": {"rev": 0}}));
}

#[test]
fn errors_carry_code_message_and_context_defaulting_to_empty() {
    let rejection: Rejection = serde_json::from_value(json!({"code": "min_order", "message": "too small"})).unwrap();
    assert_eq!((rejection.code().as_str(), rejection.to_string().as_str()), ("min_order", "too small"));
    assert!(rejection.context().is_empty());
    assert_eq!(rejection.kind(), ErrorKind::BadRequest);
    assert!(Rejection::new("x", "y").context().is_empty());

    let errors: Vec<Box<dyn DomainError>> = vec![
        Box::new(ModifyError::SessionNotFound { session_key: "S".into() }),
        Box::new(CommitError::EmptySession { session_key: "S".into() }),
        Box::new(TransitionError::TerminalStatus {
            current_status: "completed".into(),
            requested_status: "new".into(),
        }),
        Box::new(ResolveError::IssueNotFound { issue_id: "ISS-1".into() }),
        Box::new(StoreError::Unavailable("down".into())),
        Box::new(OpError {
            index: 0,
            op: "add_line".into(),
            code: omniman_core::ops::OpErrorCode::InvalidQty,
            message: "qty".into(),
            context: serde_json::Map::new(),
        }),
    ];
    let codes: Vec<String> = errors.iter().map(|e| e.code().to_string()).collect();
    assert_eq!(
        codes,
        [
            "session_not_found",
            "empty_session",
            "terminal_status",
            "issue_not_found",
            "service_unavailable",
            "invalid_qty"
        ]
    );
    for e in &errors {
        assert!(!e.to_string().is_empty(), "{} has a message", e.code());
    }
    assert!(StoreError::Unavailable("down".into()).context().is_empty());
    assert_eq!(code_of(&ModifyError::SessionNotFound { session_key: "S".into() }), "session_not_found");
}

#[test]
fn error_kinds_follow_the_spec_status_table() {
    let kind_of = |code| ErrorCode::of(code).kind();
    for code in [
        "validation_error",
        "unsupported_op",
        "missing_sku",
        "invalid_qty",
        "channel_code_required",
        "unknown_channel",
        "any_validator_code",
    ] {
        assert_eq!(kind_of(code), ErrorKind::BadRequest, "{code}");
    }
    for code in [
        "session_not_found",
        "order_not_found",
        "channel_not_found",
        "directive_not_found",
        "issue_not_found",
        "action_not_found",
    ] {
        assert_eq!(kind_of(code), ErrorKind::NotFound, "{code}");
    }
    for code in [
        "already_committed",
        "already_abandoned",
        "locked",
        "missing_check",
        "stale_check",
        "hold_expired",
        "blocking_issues",
        "empty_session",
        "in_progress",
        "idempotency_conflict",
        "stale_action",
        "no_ops",
        "no_resolver",
        "invalid_transition",
        "terminal_status",
        "session_exists",
        "channel_inactive",
    ] {
        assert_eq!(kind_of(code), ErrorKind::Conflict, "{code}");
    }
    assert_eq!(kind_of("precondition_failed"), ErrorKind::PreconditionFailed);
    assert_eq!((kind_of("internal_error"), kind_of("resolver_error")), (ErrorKind::Internal, ErrorKind::Internal));
}

#[test]
fn money_examples_of_the_spec() {
    let q = |s: &str| s.parse::<Qty>().unwrap();
    let cases =
        [("1.5", 333, 500), ("2.5", 333, 833), ("7", 333, 2331), ("0.333", 1, 0), ("0.5", 1, 1), ("1.5", -333, -500)];
    for (qty, price, total) in cases {
        assert_eq!(monetary_mult(q(qty), price), total, "{qty} × {price}");
    }
    assert_eq!(monetary_div(1000, 3), Some(333));
    assert_eq!(monetary_div(5, 2), Some(3));
    assert_eq!(monetary_div(-5, 2), Some(-3));
    assert_eq!(monetary_div(5, 0), None);
}

#[test]
fn quantities_follow_the_input_and_output_rules() {
    let parse = |v: Value| Qty::from_json(&v);
    assert_eq!(parse(json!(2)).unwrap().to_string(), "2.000");
    assert_eq!(parse(json!("1.5")).unwrap().to_string(), "1.500");
    assert_eq!(parse(json!(0.1)).unwrap().millis(), 100);
    assert_eq!(parse(json!("999999999.999")).unwrap().millis(), 999_999_999_999);
    assert_eq!(parse(json!(0)), Err(QtyError::NotPositive));
    assert_eq!(parse(json!("-0.5")), Err(QtyError::NotPositive));
    assert_eq!(parse(json!("1.2345")), Err(QtyError::TooPrecise), "more decimals are refused, not rounded");
    assert_eq!(parse(json!("1000000000")), Err(QtyError::TooLarge));
    assert_eq!(parse(json!("NaN")), Err(QtyError::NotANumber));
    assert_eq!(parse(json!(null)), Err(QtyError::NotANumber));
    assert_eq!(serde_json::to_value(q3("2.5")).unwrap(), json!("2.500"));
}

fn q3(s: &str) -> Qty {
    s.parse().unwrap()
}

#[test]
fn identifiers_have_the_spec_formats() {
    let mut ids = RandomIds::seeded(11);
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    for (id, prefix, n) in [
        (ids.session_key(), "SESS-", 12),
        (ids.line_id(), "L-", 8),
        (ids.order_ref(date), "ORD-20261121-", 8),
        (ids.issue_id(), "ISS-", 8),
        (ids.action_id(), "ACT-", 8),
        (ids.idempotency_key(), "IDEM-", 16),
    ] {
        let rest = id.strip_prefix(prefix).unwrap_or_else(|| panic!("{id} lacks {prefix}"));
        assert_eq!(rest.len(), n, "{id}");
        assert!(rest.bytes().all(|b| ALPHABET.contains(&b)), "{id}");
    }
    assert!(!ALPHABET.iter().any(|b| b"01OI".contains(b)));
}

#[test]
fn testing_epoch_is_the_documented_instant() {
    assert_eq!(omniman_core::testing::epoch().to_rfc3339(), "2026-11-21T12:00:00+00:00");
}

#[test]
fn channel_lists_include_inactive_channels_ordered_by_display_order_then_id() {
    let world = World::new(vec![
        Channel { display_order: 2, ..chan(1, "c1") },
        Channel { display_order: 1, is_active: false, ..chan(2, "c2") },
        Channel { display_order: 2, ..chan(3, "c3") },
        Channel { display_order: 0, ..chan(4, "c4") },
    ]);
    let listed = futures_executor::block_on(omniman_core::ports::ChannelStore::list_channels(world.store())).unwrap();
    let codes: Vec<&str> = listed.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["c4", "c2", "c1", "c3"]);
}
