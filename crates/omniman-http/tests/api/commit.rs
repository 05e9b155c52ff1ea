//! Commit: answers, idempotency, checks, issues and their precedence.

use chrono::{Duration, Utc};
use omniman_core::channel::Channel;
use omniman_core::context::Ctx;
use omniman_core::error::Rejection;
use omniman_core::ext::{ExtensionsBuilder, Validator, ValidatorStage};
use omniman_core::idempotency::{IdempotencyRecord, IdempotencyStatus};
use omniman_core::ports::IdempotencyStore;
use omniman_core::session::Session;
use omniman_http::HttpConfig;
use serde_json::json;

use crate::common::{self, CLIENT, get, post};

#[actix_web::test]
async fn commit_then_replays_keep_their_codes() {
    let state = common::state().await;
    let app = service!(state.clone());
    let key = open!(app, "pos");
    add_line!(app, "pos", key, "A", 2, 1000);
    let r = commit!(app, "pos", key, "till-1-0001");
    let first = r.expect(201);
    assert_eq!(first["status"], "committed");
    assert_eq!(first["total_q"], 2000);
    assert_eq!(first["items_count"], 1);
    let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["order_ref", "order_id", "status", "total_q", "items_count"]);
    // Same key: the same answer and code, one order.
    assert_eq!(commit!(app, "pos", key, "till-1-0001").expect(201), first);
    assert_eq!(state.hub().store().order_count(), 1);
    // A new key on a committed session: 200 already_committed; its replay keeps 200.
    let second = commit!(app, "pos", key, "till-1-0002").expect(200);
    assert_eq!(second["status"], "already_committed");
    assert_eq!(second["order_ref"], first["order_ref"]);
    assert_eq!(commit!(app, "pos", key, "till-1-0002").expect(200), second);
    // Without a key: also the already-committed answer.
    assert_eq!(
        call!(app, post(&format!("/api/sessions/{key}/commit"), CLIENT, &json!({"channel_code": "pos"}))).expect(200)["status"],
        "already_committed"
    );
    // The session records the key.
    let session = call!(app, get(&format!("/api/sessions/{key}"), CLIENT)).expect(200);
    assert_eq!(session["state"], "committed");
    assert_eq!(session["commit_token"], "till-1-0001");
    assert!(session["committed_at"].as_str().unwrap().ends_with('Z'));
}

#[actix_web::test]
async fn idempotency_is_decided_before_the_lookup() {
    let state = common::state().await;
    let app = service!(state.clone());
    let key = open!(app, "pos");
    add_line!(app, "pos", key, "A", 1, 10);
    commit!(app, "pos", key, "K").expect(201);
    // The key belongs to another session: conflict, even for a session that does not exist.
    let other = open!(app, "pos");
    let ctx = commit!(app, "pos", other, "K").expect_error(409, "idempotency_conflict");
    assert_eq!(ctx["idempotency_key"], "K");
    commit!(app, "pos", "NOPE", "K").expect_error(409, "idempotency_conflict");
    commit!(app, "pos", "NOPE", "K2").expect_error(404, "session_not_found");
    // A key in progress.
    let record = IdempotencyRecord {
        scope: "commit:pos".into(),
        key: "BUSY".into(),
        status: IdempotencyStatus::InProgress,
        response_code: None,
        response_body: None,
        session_key: Some(other.clone()),
        expires_at: Some(Utc::now() + Duration::hours(1)),
        created_at: Utc::now(),
    };
    assert!(state.hub().store().save_idempotency_record(&record).await.unwrap());
    commit!(app, "pos", other, "BUSY").expect_error(409, "in_progress");
    // Shape first: a bad key is a validation error.
    let ctx = commit!(app, "pos", other, "x".repeat(129)).expect_error(400, "validation_error");
    assert!(ctx["fields"]["idempotency_key"].is_array());
    let ctx = call!(
        app,
        post(&format!("/api/sessions/{other}/commit"), CLIENT, &json!({"channel_code": "pos", "idempotency_key": 7}))
    )
    .expect_error(400, "validation_error");
    assert!(ctx["fields"]["idempotency_key"].is_array());
}

#[actix_web::test]
async fn commit_state_conflicts() {
    let state = common::state().await;
    let app = service!(state.clone());
    let key = open!(app, "pos");
    let ctx = commit!(app, "pos", key, "a").expect_error(409, "empty_session");
    assert_eq!(ctx["session_key"], key.as_str());
    call!(app, post(&format!("/api/sessions/{key}/abandon"), CLIENT, &json!({"channel_code": "pos"}))).expect(200);
    commit!(app, "pos", key, "b").expect_error(409, "already_abandoned");
    commit!(app, "zzz", key, "c").expect_error(400, "unknown_channel");
    // If-Match on commit.
    let key = open!(app, "pos");
    add_line!(app, "pos", key, "A", 1, 10);
    let url = format!("/api/sessions/{key}/commit");
    let body = json!({"channel_code": "pos", "idempotency_key": "d"});
    let ctx = call!(app, post(&url, CLIENT, &body).insert_header(("If-Match", "\"0\"")))
        .expect_error(412, "precondition_failed");
    assert_eq!(ctx["current_rev"], 1);
    call!(app, post(&url, CLIENT, &body).insert_header(("If-Match", "\"1.1\""))).expect(201);
}

#[actix_web::test]
async fn required_checks_and_issues() {
    let state = common::state().await;
    let app = service!(state.clone());
    let hub = state.hub().clone();
    let key = open!(app, "checked");
    add_line!(app, "checked", key, "A", 1, 10);
    let ctx = commit!(app, "checked", key, "k1").expect_error(409, "missing_check");
    assert_eq!(ctx["check_code"], "stock");
    // A result for an older rev is stale.
    hub.store().tamper_session("checked", &key, |s| {
        s.data.insert("checks".into(), json!({"stock": {"rev": 0, "at": "2026-01-01T00:00:00Z", "result": {}}}));
    });
    let ctx = commit!(app, "checked", key, "k2").expect_error(409, "stale_check");
    assert_eq!(ctx, json!({"check_code": "stock", "check_rev": 0, "session_rev": 1}));
    // An expired hold.
    assert!(
        hub.apply_check_result(
            &common::at("checked", &key),
            1,
            "stock",
            json!({"hold_expires_at": "2000-01-01T00:00:00Z"}),
            vec![]
        )
        .await
        .unwrap()
    );
    let ctx = commit!(app, "checked", key, "k3").expect_error(409, "hold_expired");
    assert_eq!(ctx["expires_at"], "2000-01-01T00:00:00Z");
    let holds = json!({"holds": [{"sku": "A", "hold_id": "H1", "qty": "1", "expires_at": "2000-01-01T00:00:00Z"}]});
    assert!(hub.apply_check_result(&common::at("checked", &key), 1, "stock", holds, vec![]).await.unwrap());
    let ctx = commit!(app, "checked", key, "k3b").expect_error(409, "hold_expired");
    assert_eq!(ctx["hold_id"], "H1");
    // A blocking issue.
    let issue = json!({"id": "ISS-1", "source": "stock", "code": "stock.insufficient", "blocking": true, "message": "short", "context": {}});
    let fresh = json!({"holds": [{"sku": "A", "hold_id": "H2", "qty": "1"}]});
    assert!(
        hub.apply_check_result(&common::at("checked", &key), 1, "stock", fresh.clone(), vec![issue]).await.unwrap()
    );
    let ctx = commit!(app, "checked", key, "k4").expect_error(409, "blocking_issues");
    assert_eq!(ctx["issues"][0]["id"], "ISS-1");
    // Clean: commits, and enqueues stock.commit with the holds.
    assert!(hub.apply_check_result(&common::at("checked", &key), 1, "stock", fresh, vec![]).await.unwrap());
    let order = commit!(app, "checked", key, "k5").expect(201);
    let directives = hub.store().all_directives();
    let commit_directive = directives.iter().find(|d| d.topic == "stock.commit").unwrap();
    assert_eq!(commit_directive.payload["order_ref"], order["order_ref"]);
    assert_eq!(commit_directive.payload["holds"][0]["hold_id"], "H2");
}

struct MinimumTotal;

impl Validator for MinimumTotal {
    fn code(&self) -> &str {
        "minimum_total"
    }
    fn stage(&self) -> ValidatorStage {
        ValidatorStage::Commit
    }
    fn validate(&self, _: &Channel, session: &Session, _: &Ctx) -> Result<(), Rejection> {
        if session.total_q() < 500 {
            return Err(Rejection::new("below_minimum", "orders start at 5.00").with("minimum_q", 500));
        }
        Ok(())
    }
}

#[actix_web::test]
async fn commit_validators_refuse_with_their_code() {
    let state = common::state_with(ExtensionsBuilder::new().validator(MinimumTotal), HttpConfig::default()).await;
    let app = service!(state);
    let key = open!(app, "pos");
    add_line!(app, "pos", key, "A", 1, 100);
    let ctx = commit!(app, "pos", key, "k").expect_error(400, "below_minimum");
    assert_eq!(ctx["minimum_q"], 500);
    // A failed commit leaves the key usable.
    add_line!(app, "pos", key, "B", 1, 400);
    commit!(app, "pos", key, "k").expect(201);
}
