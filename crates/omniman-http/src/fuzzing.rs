//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz) and for the replay of their corpus
//! in `cargo test` (`tests/corpus.rs`), so that both run exactly the same code. Each takes
//! arbitrary bytes, runs them through code that reads input from outside, and panics when an
//! invariant breaks: a panic anywhere is a finding. Built only with the `fuzzing` feature.
//!
//! - [`op_batch`]: a JSON batch of ops through `Op::parse_batch` and the modify pipeline.
//! - [`channel_config`]: a channel as `omniman channels apply` reads it (`ChannelSpec`,
//!   `ChannelConfig::from_value`).
//! - [`request_body`]: the first byte picks a POST route, the rest is its body, read as the
//!   route reads it (`parse_object`, then the request type's `RequestBody::read` over a
//!   `FieldReader`); a decoded modify body goes on through the modify pipeline.

use actix_web::ResponseError;
use actix_web::test::TestRequest;
use chrono::{DateTime, Utc};
use omniman_core::channel::{Channel, ChannelConfig, ChannelSpec, EditPolicy, PricingPolicy};
use omniman_core::context::{Caller, Ctx};
use omniman_core::error::DomainError;
use omniman_core::ext::Extensions;
use omniman_core::fields::{MAX_DATA_BYTES, MAX_META_BYTES, check_json, check_json_object};
use omniman_core::ids::RandomIds;
use omniman_core::modify::apply_ops;
use omniman_core::money::Qty;
use omniman_core::ops::{MAX_OPS_PER_BATCH, Op};
use omniman_core::session::{Item, MAX_LINES_PER_SESSION, Session};
use serde_json::{Map, Value, json};

use crate::body::parse_object;
use crate::error::{ApiError, status_of};
use crate::requests::{
    AbandonRequest, CommitRequest, CreateSessionRequest, ImportSessionRequest, ModifyRequest, RequestBody,
    ResolveRequest, TransitionRequest, decode_with, path_key,
};

/// A batch of ops (JSON) through the decoder and the applier.
pub fn op_batch(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match Op::parse_batch(&value) {
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused batch names its problems");
            assert!(errors.0.keys().all(|path| path.starts_with("ops")), "{errors:?}");
        }
        Ok(ops) => {
            assert!(ops.len() <= MAX_OPS_PER_BATCH);
            for op in &ops {
                assert_eq!(Op::parse(&op.to_json()).as_ref(), Ok(op), "an op survives its JSON");
            }
            apply(&ops);
        }
    }
}

/// A channel (`ChannelSpec`) and its configuration object, as the CLI reads them.
pub fn channel_config(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let config = value.get("config").cloned().unwrap_or_else(|| value.clone());
    if let Ok(parsed) = ChannelConfig::from_value(config.clone()) {
        assert_eq!(Value::Object(parsed.raw().clone()), config, "a configuration is stored as given");
        let again = ChannelConfig::from_value(Value::Object(parsed.raw().clone())).expect("a stored config reads back");
        assert_eq!(again, parsed);
        let _ = parsed.unknown_keys();
        for code in parsed.modify_check_codes() {
            let _ = parsed.check_topic(code);
        }
        // A channel with this configuration runs a batch.
        let channel = Channel { config: parsed, ..channel(PricingPolicy::External) };
        let op = json!({"op": "add_line", "sku": "S", "qty": 1, "unit_price_q": 5});
        run(&channel, &[Op::parse(&op).expect("a valid op")]);
    }
    if let Ok(spec) = serde_json::from_value::<ChannelSpec>(value) {
        let _ = spec.validate();
        let again: ChannelSpec =
            serde_json::from_value(serde_json::to_value(&spec).expect("a spec serialises")).expect("and reads back");
        assert_eq!(again, spec);
    }
}

thread_local! {
    /// The requests a body arrives with, without and with `?channel_code=pos`: built once, since
    /// actix's test requests are reference cycles that are never freed.
    static REQUESTS: [actix_web::HttpRequest; 2] = [
        TestRequest::post().uri("/api/x").to_http_request(),
        TestRequest::post().uri("/api/x?channel_code=pos").to_http_request(),
    ];
}

/// The routes whose bodies [`request_body`] reads, by the input's first byte.
const ROUTES: u8 = 7;

/// One POST body, read as its route reads it.
pub fn request_body(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    // Bit 7: `channel_code` also in the query string (it must then agree with the body's).
    let req = REQUESTS.with(|requests| requests[usize::from(selector >> 7)].clone());
    let key = || path_key("T-1".to_owned());
    let decoded: Result<(), ApiError> = parse_object(bytes).and_then(|body| match selector % ROUTES {
        0 => decode::<CreateSessionRequest>(&body, &req),
        1 => decode::<ImportSessionRequest>(&body, &req),
        2 => decode_with::<ModifyRequest, _>(&body, &req, key()).map(|(modify, _)| {
            assert!((1..=MAX_OPS_PER_BATCH).contains(&modify.ops.len()));
            apply(&modify.ops);
        }),
        3 => decode_with::<ResolveRequest, _>(&body, &req, key()).map(drop),
        4 => decode_with::<CommitRequest, _>(&body, &req, key()).map(drop),
        5 => decode_with::<AbandonRequest, _>(&body, &req, key()).map(drop),
        _ => decode::<TransitionRequest>(&body, &req),
    });
    if let Err(error) = decoded {
        assert!(error.status_code().is_client_error(), "{error:?}");
        let body = error.error_response();
        assert!(body.status().is_client_error());
    }
}

fn decode<T: RequestBody>(body: &Map<String, Value>, req: &actix_web::HttpRequest) -> Result<(), ApiError> {
    decode_with::<T, ()>(body, req, |_| Some(())).map(drop)
}

fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("a valid instant")
}

fn channel(pricing_policy: PricingPolicy) -> Channel {
    Channel {
        id: 1,
        code: "pos".into(),
        name: String::new(),
        pricing_policy,
        edit_policy: EditPolicy::Open,
        display_order: 0,
        config: ChannelConfig::default(),
        is_active: true,
        created_at: epoch(),
    }
}

/// Applies `ops` on both pricing policies.
fn apply(ops: &[Op]) {
    run(&channel(PricingPolicy::Internal), ops);
    run(&channel(PricingPolicy::External), ops);
}

/// A session with two lines (`L-1`, `L-2`) and some data, so that ops naming lines and paths
/// can land; the batch either lands whole with every invariant kept, or is refused as a 4xx.
fn run(channel: &Channel, ops: &[Op]) {
    let mut session = Session { id: 1, ..Session::open(channel, "T-1".into(), None, None, epoch()) };
    for (id, sku, millis, price) in [("L-1", "A", 1_000, 100), ("L-2", "B", 2_500, 300)] {
        let mut item = Item {
            line_id: id.into(),
            sku: sku.into(),
            name: String::new(),
            qty: Qty::from_millis(millis).expect("a valid quantity"),
            unit_price_q: Some(price),
            line_total_q: None,
            meta: Map::new(),
        };
        item.reprice();
        session.items.push(item);
    }
    session.data.insert("customer".into(), json!({"name": "Ana"}));
    let before = session.clone();
    let ctx = Ctx::new(Caller::external("fuzz"), epoch());
    match apply_ops(session, channel, ops, None, &Extensions::default(), &ctx, &mut RandomIds::seeded(7)) {
        Ok(outcome) => {
            let after = outcome.session;
            assert_eq!(after.rev, before.rev + 1);
            let total = after.check_amounts().expect("a landed batch has exact amounts");
            assert_eq!(total, after.total_q());
            assert!(after.items.len() <= MAX_LINES_PER_SESSION.max(before.items.len()));
            let mut ids: Vec<&str> = after.items.iter().map(|i| i.line_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), after.items.len(), "line ids are unique");
            for item in &after.items {
                assert!(item.qty.millis() > 0, "{item:?}");
                check_json(&Value::Object(item.meta.clone()), MAX_META_BYTES, 0).expect("meta within limits");
            }
            check_json_object(&after.data, MAX_DATA_BYTES).expect("data within limits");
            let stored: Session = serde_json::from_value(serde_json::to_value(&after).expect("serialises"))
                .expect("a session reads back");
            assert_eq!(stored, after);
        }
        Err(error) => assert!(status_of(error.kind()).is_client_error(), "{error:?}"),
    }
}
