//! The bundled handlers end to end on the in-memory store (docs/reference.md §7, §8).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use omniman_core::directive::{Directive, DirectiveStatus, NewDirective};
use omniman_core::ext::{
    ActionResolver, Alternative, Availability, BackendError, ExtensionsBuilder, HandlerRegistry, HoldResult,
    StockBackend,
};
use omniman_core::memory::InMemoryStore;
use omniman_core::money::Qty;
use omniman_core::ports::DirectiveQueue;
use omniman_core::prelude::*;
use omniman_core::testing;
use omniman_core::testing::channel_with;
use omniman_worker::handlers::payment::{
    IntentStatus, MockPayments, PaymentBackend, PaymentCaptureHandler, PaymentRefundHandler, PaymentResult,
};
use omniman_worker::handlers::stock::{MemoryStock, StockCommitHandler, StockHoldHandler};
use omniman_worker::handlers::webhook::{WebhookHandler, signature};
use omniman_worker::{Worker, WorkerConfig};
use serde_json::{Map, Value, json};

/// A modify to run in the middle of a hold run, as a concurrent client would.
struct Interference {
    hub: Arc<Omniman<InMemoryStore>>,
    session_key: String,
    ops: Value,
}

/// The handlers' stock backend: a [`MemoryStock`] that records fulfilments and can be told to
/// refuse holds, to fail with an IO error, or to let a modify slip in before a hold.
#[derive(Default)]
struct SpyStock {
    inner: Arc<MemoryStock>,
    /// SKU → the refusal's message (`None`: a refusal without message).
    refuse: Mutex<HashMap<String, Option<String>>>,
    /// SKUs whose `create_hold` fails with a `BackendError`.
    broken: Mutex<HashSet<String>>,
    /// `(hold_id, reference)` of every `fulfill_hold` call.
    fulfils: Mutex<Vec<(String, Option<String>)>>,
    /// Runs once, at the next `create_hold`.
    interference: Mutex<Option<Interference>>,
}

impl SpyStock {
    fn refuse(&self, sku: &str, message: Option<&str>) {
        self.refuse.lock().unwrap().insert(sku.to_owned(), message.map(str::to_owned));
    }

    fn fulfils(&self) -> Vec<(String, Option<String>)> {
        self.fulfils.lock().unwrap().clone()
    }
}

#[async_trait]
impl StockBackend for SpyStock {
    async fn check_availability(
        &self,
        sku: &str,
        qty: Qty,
        date: Option<chrono::NaiveDate>,
    ) -> Result<Availability, BackendError> {
        self.inner.check_availability(sku, qty, date).await
    }

    async fn create_hold(
        &self,
        sku: &str,
        qty: Qty,
        expires_at: Option<DateTime<Utc>>,
        reference: Option<&str>,
    ) -> Result<HoldResult, BackendError> {
        let interference = self.interference.lock().unwrap().take();
        if let Some(i) = interference {
            let ops = Op::parse_batch(&i.ops).unwrap();
            i.hub
                .modify(&testing::at("pos", &i.session_key), &ops, None, &Caller::external("other-till"))
                .await
                .unwrap();
        }
        if self.broken.lock().unwrap().contains(sku) {
            return Err(BackendError("stock service unreachable".into()));
        }
        if let Some(message) = self.refuse.lock().unwrap().get(sku) {
            return Ok(HoldResult {
                success: false,
                hold_id: None,
                error_code: Some("hold_refused".into()),
                message: message.clone(),
                expires_at: None,
            });
        }
        self.inner.create_hold(sku, qty, expires_at, reference).await
    }

    async fn release_hold(&self, hold_id: &str) -> Result<bool, BackendError> {
        self.inner.release_hold(hold_id).await
    }

    async fn fulfill_hold(&self, hold_id: &str, reference: Option<&str>) -> Result<bool, BackendError> {
        self.fulfils.lock().unwrap().push((hold_id.to_owned(), reference.map(str::to_owned)));
        self.inner.fulfill_hold(hold_id, reference).await
    }

    async fn get_alternatives(&self, sku: &str, qty: Qty) -> Result<Vec<Alternative>, BackendError> {
        self.inner.get_alternatives(sku, qty).await
    }

    async fn release_holds_for_reference(&self, reference: &str) -> Result<u64, BackendError> {
        self.inner.release_holds_for_reference(reference).await
    }
}

/// The handlers' payment backend: [`MockPayments`] counting captures and refunds asked of it.
#[derive(Default)]
struct SpyPayments {
    inner: Arc<MockPayments>,
    captures: AtomicUsize,
    refunds: AtomicUsize,
}

#[async_trait]
impl PaymentBackend for SpyPayments {
    async fn create_intent(
        &self,
        amount_q: i64,
        currency: &str,
        reference: Option<&str>,
        metadata: Option<Map<String, Value>>,
    ) -> Result<PaymentResult, BackendError> {
        self.inner.create_intent(amount_q, currency, reference, metadata).await
    }

    async fn authorize(&self, intent_id: &str, method: Option<&str>) -> Result<PaymentResult, BackendError> {
        self.inner.authorize(intent_id, method).await
    }

    async fn capture(
        &self,
        intent_id: &str,
        amount_q: Option<i64>,
        reference: Option<&str>,
    ) -> Result<PaymentResult, BackendError> {
        self.captures.fetch_add(1, Ordering::SeqCst);
        self.inner.capture(intent_id, amount_q, reference).await
    }

    async fn refund(
        &self,
        intent_id: &str,
        amount_q: Option<i64>,
        reason: Option<&str>,
        reference: Option<&str>,
    ) -> Result<PaymentResult, BackendError> {
        self.refunds.fetch_add(1, Ordering::SeqCst);
        self.inner.refund(intent_id, amount_q, reason, reference).await
    }

    async fn cancel(&self, intent_id: &str) -> Result<bool, BackendError> {
        self.inner.cancel(intent_id).await
    }

    async fn get_status(&self, intent_id: &str) -> Result<Option<IntentStatus>, BackendError> {
        self.inner.get_status(intent_id).await
    }
}

struct Shop {
    hub: Arc<Omniman<InMemoryStore>>,
    stock: Arc<MemoryStock>,
    spy: Arc<SpyStock>,
    payments: Arc<MockPayments>,
    pay_spy: Arc<SpyPayments>,
    worker: Worker<InMemoryStore>,
    caller: Caller,
}

fn q(s: &str) -> Qty {
    s.parse().unwrap()
}

/// A shop whose `pos` channel requires the stock check and fulfils holds after commit.
fn shop(config: Value) -> Shop {
    let store = InMemoryStore::new();
    store.put_channel(channel_with("pos", config));
    let ext = ExtensionsBuilder::new().resolver(Arc::new(ActionResolver::new("stock"))).unwrap().build();
    let hub = Arc::new(Omniman::new(store.clone(), ext));
    let stock = Arc::new(MemoryStock::new());
    let spy = Arc::new(SpyStock { inner: stock.clone(), ..SpyStock::default() });
    let payments = Arc::new(MockPayments::new());
    let pay_spy = Arc::new(SpyPayments { inner: payments.clone(), ..SpyPayments::default() });
    let handlers = HandlerRegistry::new()
        .register(Arc::new(StockHoldHandler::new(hub.clone(), spy.clone())))
        .unwrap()
        .register(Arc::new(StockCommitHandler::new(hub.clone(), spy.clone())))
        .unwrap()
        .register(Arc::new(PaymentCaptureHandler::new(hub.clone(), pay_spy.clone())))
        .unwrap()
        .register(Arc::new(PaymentRefundHandler::new(hub.clone(), pay_spy.clone())))
        .unwrap()
        .register(Arc::new(WebhookHandler::new(hub.clone())))
        .unwrap();
    let worker = Worker::new(Arc::new(store), Arc::new(handlers), WorkerConfig::default());
    Shop { hub, stock, spy, payments, pay_spy, worker, caller: Caller::external("till") }
}

impl Shop {
    async fn open(&self) -> String {
        let req = OpenSession::on(testing::code("pos"));
        self.hub.open_session(req, &self.caller).await.unwrap().session.session_key
    }

    async fn modify(&self, key: &str, ops: Value) -> Session {
        self.hub.modify(&testing::at("pos", key), &Op::parse_batch(&ops).unwrap(), None, &self.caller).await.unwrap()
    }

    async fn session(&self, key: &str) -> Session {
        self.hub.get_session(Some(&testing::code("pos")), &testing::key(key)).await.unwrap()
    }

    fn directives(&self, topic: &str) -> Vec<Directive> {
        self.hub.store().all_directives().into_iter().filter(|d| d.topic == topic).collect()
    }

    async fn run(&self) {
        self.worker.run_once().await.unwrap();
    }

    /// Enqueues one directive, available now.
    async fn enqueue(&self, topic: &str, payload: Value) {
        let Value::Object(payload) = payload else { panic!("a payload is an object") };
        let directive = NewDirective { topic: topic.into(), payload, available_at: Utc::now() - TimeDelta::seconds(1) };
        self.hub.store().enqueue(&[directive]).await.unwrap();
    }

    /// Runs the directive `id` again, as a redelivery would (attempts kept, payload as patched).
    async fn rerun(&self, id: i64) {
        let directive = self.hub.store().all_directives().into_iter().find(|d| d.id == id).unwrap();
        let retry = omniman_core::directive::manual_retry(&directive, Utc::now() - TimeDelta::seconds(1)).unwrap();
        assert!(self.hub.store().requeue(&retry, Utc::now()).await.unwrap());
        self.run().await;
    }

    /// How much of `sku` can still be held (on hand minus live holds).
    async fn available(&self, sku: &str) -> String {
        let answer = self.stock.check_availability(sku, q("0.001"), None).await.unwrap();
        answer.available_qty.map_or_else(|| "0.000".to_owned(), |a| a.to_string())
    }
}

/// The stock issues of a session, by line id.
fn issues_by_line(session: &Session) -> HashMap<String, Value> {
    session.issues().iter().map(|i| (i["context"]["line_id"].as_str().unwrap().to_owned(), i.clone())).collect()
}

/// The ops of each action of an issue, in order.
fn action_ops(issue: &Value) -> Vec<Value> {
    issue["context"]["actions"].as_array().unwrap().iter().map(|a| a["ops"].clone()).collect()
}

fn stock_config() -> Value {
    json!({"required_checks_on_commit": ["stock"], "post_commit_directives": ["stock.commit"]})
}

#[tokio::test]
async fn stock_hold_makes_one_hold_per_sku_and_writes_the_check_back() {
    let shop = shop(stock_config());
    shop.stock.set_level("COFFEE", q("10"));
    let key = shop.open().await;
    shop.modify(
        &key,
        json!([
            {"op": "add_line", "sku": "COFFEE", "qty": 2, "unit_price_q": 500},
            {"op": "add_line", "sku": "COFFEE", "qty": 3, "unit_price_q": 500}
        ]),
    )
    .await;
    shop.run().await;
    let hold = &shop.directives("stock.hold")[0];
    assert_eq!(hold.status, DirectiveStatus::Done, "{}", hold.last_error);
    let holds = hold.payload["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 1, "2 + 3 of one SKU is one hold");
    assert_eq!(holds[0]["qty"], json!("5.000"));
    let session = shop.session(&key).await;
    let check = &session.data["checks"]["stock"];
    assert_eq!(check["rev"], json!(1));
    assert_eq!(check["result"]["holds"][0]["hold_id"], holds[0]["hold_id"]);
    assert!(check["result"]["hold_expires_at"].is_string());
    assert!(session.issues().is_empty());
    // The session's rev did not move; its version did.
    assert_eq!((session.rev, session.version), (1, 2));
}

#[tokio::test]
async fn a_new_hold_run_releases_the_previous_holds_first() {
    let shop = shop(stock_config());
    shop.stock.set_level("TEA", q("5"));
    let key = shop.open().await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "TEA", "qty": 4, "unit_price_q": 100}])).await;
    shop.run().await;
    let line = shop.session(&key).await.items[0].line_id.clone();
    shop.modify(&key, json!([{"op": "set_qty", "line_id": line, "qty": 5}])).await;
    shop.run().await;
    // Without releasing the 4 held first, 5 more could not be held out of 5.
    let second = &shop.directives("stock.hold")[1];
    assert_eq!(second.status, DirectiveStatus::Done, "{}", second.last_error);
    assert!(shop.session(&key).await.issues().is_empty());
}

#[tokio::test]
async fn shortage_raises_one_blocking_issue_per_line_with_actions_and_resolve_fixes_it() {
    let shop = shop(stock_config());
    shop.stock.set_level("CAKE", q("2"));
    let key = shop.open().await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "CAKE", "qty": 5, "unit_price_q": 900}])).await;
    shop.run().await;
    let session = shop.session(&key).await;
    let issues = session.issues();
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert_eq!((issue["source"].as_str(), issue["code"].as_str()), (Some("stock"), Some("stock.insufficient")));
    assert_eq!(issue["blocking"], json!(true));
    assert_eq!(issue["context"]["available_qty"], json!("2.000"));
    let actions = issue["context"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "set_qty to what is available, then remove_line");
    assert_eq!(actions[0]["ops"][0], json!({"op": "set_qty", "line_id": session.items[0].line_id, "qty": "2.000"}));
    assert_eq!(actions[1]["ops"][0]["op"], json!("remove_line"));
    assert_eq!(actions[0]["rev"], json!(1));

    // Commit is refused while the blocking issue stands.
    let err =
        shop.hub.commit(&testing::at("pos", &key), Some(&testing::idem("k1")), None, &shop.caller).await.unwrap_err();
    assert_eq!(err.code(), Code::BlockingIssues);

    // Resolving with set_qty re-runs the check; then the commit goes through.
    let issue_id = issue["id"].as_str().unwrap();
    let action_id = actions[0]["id"].as_str().unwrap();
    let resolved =
        shop.hub.resolve_issue(&testing::at("pos", &key), issue_id, action_id, None, &shop.caller).await.unwrap();
    assert_eq!((resolved.rev, resolved.items[0].qty), (2, q("2")));
    shop.run().await;
    assert!(shop.session(&key).await.issues().is_empty());
    let answer =
        shop.hub.commit(&testing::at("pos", &key), Some(&testing::idem("k1")), None, &shop.caller).await.unwrap();
    assert_eq!(answer.http_status(), 201);

    // stock.commit fulfils the hold: stock drops by exactly the ordered quantity.
    let commit = &shop.directives("stock.commit")[0];
    assert!(commit.payload["holds"].is_array());
    shop.run().await;
    assert_eq!(shop.directives("stock.commit")[0].status, DirectiveStatus::Done);
    assert_eq!(shop.stock.on_hand("CAKE"), 0);
}

#[tokio::test]
async fn nothing_available_offers_only_remove_line() {
    let shop = shop(stock_config());
    let key = shop.open().await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "GONE", "qty": 1, "unit_price_q": 900}])).await;
    shop.run().await;
    let session = shop.session(&key).await;
    let actions = session.issues()[0]["context"]["actions"].as_array().unwrap().clone();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["ops"][0]["op"], json!("remove_line"));
    assert_eq!(session.issues()[0]["context"]["available_qty"], json!("0.000"));
}

#[tokio::test]
async fn hold_fails_on_unknown_session_and_on_stale_rev_and_is_done_on_closed_session() {
    let shop = shop(stock_config());
    let now = Utc::now() - TimeDelta::seconds(1);
    let payload = |key: &str, rev: i64| {
        let Value::Object(m) = json!({"channel_code": "pos", "session_key": key, "rev": rev, "items": []}) else {
            unreachable!()
        };
        m
    };
    shop.hub
        .store()
        .enqueue(&[NewDirective { topic: "stock.hold".into(), payload: payload("NOPE", 1), available_at: now }])
        .await
        .unwrap();
    let key = shop.open().await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "X", "qty": 1, "unit_price_q": 1}])).await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "Y", "qty": 1, "unit_price_q": 1}])).await;
    shop.run().await;
    let holds = shop.directives("stock.hold");
    assert_eq!(holds[0].status, DirectiveStatus::Failed);
    assert_eq!(holds[0].last_error, "Session not found: pos:NOPE");
    assert_eq!(holds[1].status, DirectiveStatus::Failed);
    assert_eq!(holds[1].last_error, "Stale directive: expected rev 1, found 2");

    shop.hub.abandon(&testing::at("pos", &key), None, &shop.caller).await.unwrap();
    shop.hub
        .store()
        .enqueue(&[NewDirective { topic: "stock.hold".into(), payload: payload(&key, 2), available_at: now }])
        .await
        .unwrap();
    shop.run().await;
    assert_eq!(shop.directives("stock.hold")[3].status, DirectiveStatus::Done);
}

#[tokio::test]
async fn stock_commit_without_holds_is_done_and_skips_entries_without_hold_id() {
    let shop = shop(stock_config());
    let now = Utc::now() - TimeDelta::seconds(1);
    let Value::Object(payload) = json!({"order_ref": "ORD-1", "holds": [{"sku": "X"}]}) else { unreachable!() };
    shop.hub
        .store()
        .enqueue(&[NewDirective { topic: "stock.commit".into(), payload, available_at: now }])
        .await
        .unwrap();
    shop.run().await;
    assert_eq!(shop.directives("stock.commit")[0].status, DirectiveStatus::Done);
}

#[tokio::test]
async fn stock_commit_is_idempotent() {
    let shop = shop(stock_config());
    shop.stock.set_level("BREAD", q("3"));
    let hold = shop.stock.create_hold("BREAD", q("2"), None, Some("S")).await.unwrap();
    let now = Utc::now() - TimeDelta::seconds(1);
    let Value::Object(payload) = json!({"order_ref": "ORD-1", "holds": [{"hold_id": hold.hold_id}]}) else {
        unreachable!()
    };
    let batch = [NewDirective { topic: "stock.commit".into(), payload, available_at: now }];
    shop.hub.store().enqueue(&batch).await.unwrap();
    shop.hub.store().enqueue(&batch).await.unwrap();
    shop.run().await;
    assert!(shop.directives("stock.commit").iter().all(|d| d.status == DirectiveStatus::Done));
    assert_eq!(shop.stock.on_hand("BREAD"), 1000, "fulfilled once: 3 - 2 = 1");
}

#[tokio::test]
async fn mock_payments_follow_the_rules() {
    let pay = MockPayments::new();
    assert_eq!(pay.capture("nope", None, None).await.unwrap().error_code.as_deref(), Some("intent_not_found"));
    let intent = pay.create_intent(1000, "BRL", None, None).await.unwrap().intent_id.unwrap();
    assert_eq!(pay.refund(&intent, None, None, None).await.unwrap().error_code.as_deref(), Some("not_captured"));
    assert!(pay.capture(&intent, None, None).await.unwrap().success);
    assert_eq!(pay.capture(&intent, None, None).await.unwrap().error_code.as_deref(), Some("invalid_status"));
    assert!(pay.refund(&intent, Some(400), None, None).await.unwrap().success);
    assert_eq!(pay.get_status(&intent).await.unwrap().unwrap().status, "captured");
    assert_eq!(
        pay.refund(&intent, Some(700), None, None).await.unwrap().error_code.as_deref(),
        Some("exceeds_captured")
    );
    assert!(pay.refund(&intent, None, None, None).await.unwrap().success);
    assert_eq!(pay.get_status(&intent).await.unwrap().unwrap().status, "refunded");
}

/// Commits an order whose session carries `data.payment.intent_id`.
async fn paid_order(shop: &Shop, intent: &str) -> String {
    let key = shop.open().await;
    shop.modify(
        &key,
        json!([
            {"op": "add_line", "sku": "X", "qty": 1, "unit_price_q": 1000},
            {"op": "set_data", "path": "payment.intent_id", "value": intent}
        ]),
    )
    .await;
    let answer = shop.hub.commit(&testing::at("pos", &key), None, None, &shop.caller).await.unwrap();
    answer.order_ref().unwrap().to_owned()
}

#[tokio::test]
async fn capture_takes_the_intent_from_the_session_records_one_event_and_is_idempotent() {
    let shop = shop(json!({"post_commit_directives": ["payment.capture"]}));
    let intent = shop.payments.create_intent(1000, "BRL", None, None).await.unwrap().intent_id.unwrap();
    let order_ref = paid_order(&shop, &intent).await;
    shop.run().await;
    let capture = &shop.directives("payment.capture")[0];
    assert_eq!(capture.status, DirectiveStatus::Done, "{}", capture.last_error);
    assert!(capture.payload["transaction_id"].as_str().unwrap().starts_with("TX-"));
    let count = |events: &[OrderEvent]| events.iter().filter(|e| e.event_type == "payment.captured").count();
    let events = shop.hub.order_events(&order_ref).await.unwrap();
    assert_eq!(count(&events), 1);
    let event = events.iter().find(|e| e.event_type == "payment.captured").unwrap();
    assert_eq!((event.actor.as_str(), &event.payload["amount_q"]), ("payment.capture", &json!(1000)));
    // Running it again: already captured, done, no second event.
    let retry = omniman_core::directive::manual_retry(capture, Utc::now() - TimeDelta::seconds(1)).unwrap();
    shop.hub.store().requeue(&retry, Utc::now()).await.unwrap();
    shop.run().await;
    assert_eq!(shop.directives("payment.capture")[0].status, DirectiveStatus::Done);
    assert_eq!(count(&shop.hub.order_events(&order_ref).await.unwrap()), 1);
}

#[tokio::test]
async fn capture_without_intent_fails_with_no_intent_id() {
    let shop = shop(json!({"post_commit_directives": ["payment.capture"]}));
    let key = shop.open().await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "X", "qty": 1, "unit_price_q": 1}])).await;
    shop.hub.commit(&testing::at("pos", &key), None, None, &shop.caller).await.unwrap();
    shop.run().await;
    let d = &shop.directives("payment.capture")[0];
    assert_eq!((d.status, d.last_error.as_str()), (DirectiveStatus::Failed, "no_intent_id"));
}

#[tokio::test]
async fn refund_records_reason_and_refund_of_pending_intent_fails() {
    let shop = shop(json!({}));
    let pending = shop.payments.create_intent(500, "BRL", None, None).await.unwrap().intent_id.unwrap();
    let captured = shop.payments.create_intent(1000, "BRL", None, None).await.unwrap().intent_id.unwrap();
    shop.payments.capture(&captured, None, None).await.unwrap();
    let order_ref = paid_order(&shop, &captured).await;
    let now = Utc::now() - TimeDelta::seconds(1);
    let refund = |intent: &str| {
        let Value::Object(p) = json!({"order_ref": order_ref, "intent_id": intent, "reason": "damaged"}) else {
            unreachable!()
        };
        NewDirective { topic: "payment.refund".into(), payload: p, available_at: now }
    };
    shop.hub.store().enqueue(&[refund(&captured), refund(&pending)]).await.unwrap();
    shop.run().await;
    let runs = shop.directives("payment.refund");
    assert_eq!(runs[0].status, DirectiveStatus::Done, "{}", runs[0].last_error);
    assert!(runs[0].payload["refund_id"].as_str().unwrap().starts_with("RF-"));
    assert_eq!(runs[1].status, DirectiveStatus::Failed);
    assert!(runs[1].last_error.starts_with("not_captured"), "{}", runs[1].last_error);
    let events = shop.hub.order_events(&order_ref).await.unwrap();
    let refunded = events.iter().find(|e| e.event_type == "payment.refunded").unwrap();
    assert_eq!(refunded.payload["reason"], json!("damaged"));
    assert_eq!(refunded.actor, "payment.refund");
}

#[tokio::test]
async fn webhook_posts_the_payload_signed_and_retries_server_errors() {
    // First answer 503 (retried), then 200.
    let (url, server) = common::receiver(&["503 Service Unavailable", "200 OK"]).await;
    let shop = shop(json!({"webhooks": {"url": url, "secret": "s3cret"}}));
    let now = Utc::now() - TimeDelta::seconds(1);
    let Value::Object(payload) = json!({"channel_code": "pos", "event": "order.created", "order_ref": "ORD-9"}) else {
        unreachable!()
    };
    shop.hub
        .store()
        .enqueue(&[NewDirective { topic: "webhook.post".into(), payload, available_at: now }])
        .await
        .unwrap();
    shop.run().await;
    let first = shop.directives("webhook.post")[0].clone();
    assert_eq!(first.status, DirectiveStatus::Queued, "a 503 is retried");
    assert!(first.last_error.contains("503"));
    let retry = omniman_core::directive::manual_retry(&first, Utc::now() - TimeDelta::seconds(1)).unwrap();
    shop.hub.store().requeue(&retry, Utc::now()).await.unwrap();
    shop.run().await;
    assert_eq!(shop.directives("webhook.post")[0].status, DirectiveStatus::Done);
    let requests = server.await.unwrap();
    let request = &requests[1];
    let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
    let sent: Value = serde_json::from_str(body).unwrap();
    assert_eq!(sent["order_ref"], json!("ORD-9"));
    let header = request.lines().find(|l| l.to_ascii_lowercase().starts_with("x-omniman-signature:")).unwrap();
    assert_eq!(header.split_once(": ").unwrap().1.trim(), signature("s3cret", body.as_bytes()));
}

#[tokio::test]
async fn refused_holds_raise_one_issue_per_line_offering_only_remove_line() {
    let shop = shop(stock_config());
    for sku in ["FLOUR", "EGGS", "SUGAR"] {
        shop.stock.set_level(sku, q("10"));
    }
    // Enough of everything, but the backend refuses to hold FLOUR (with a message) and EGGS
    // (without one).
    shop.spy.refuse("FLOUR", Some("Warehouse closed for inventory"));
    shop.spy.refuse("EGGS", None);
    let key = shop.open().await;
    let session = shop
        .modify(
            &key,
            json!([
                {"op": "add_line", "sku": "FLOUR", "qty": 2, "unit_price_q": 300},
                {"op": "add_line", "sku": "SUGAR", "qty": 1, "unit_price_q": 200},
                {"op": "add_line", "sku": "FLOUR", "qty": 3, "unit_price_q": 300},
                {"op": "add_line", "sku": "EGGS", "qty": 6, "unit_price_q": 50}
            ]),
        )
        .await;
    shop.run().await;
    let hold = &shop.directives("stock.hold")[0];
    assert_eq!(hold.status, DirectiveStatus::Done, "{}", hold.last_error);

    let after = shop.session(&key).await;
    let issues = issues_by_line(&after);
    assert_eq!(issues.len(), 3, "one issue per FLOUR line and one for the EGGS line: {issues:?}");
    for (item, message) in [
        (&session.items[0], "Warehouse closed for inventory"),
        (&session.items[2], "Warehouse closed for inventory"),
        (&session.items[3], "Not enough EGGS in stock"),
    ] {
        let issue = &issues[&item.line_id];
        assert_eq!(issue["source"], json!("stock"));
        assert_eq!(issue["code"], json!("stock.insufficient"));
        assert_eq!(issue["blocking"], json!(true));
        assert_eq!(issue["message"], json!(message));
        assert_eq!(issue["context"]["sku"], json!(item.sku));
        assert_eq!(issue["context"]["requested_qty"], json!(item.qty.to_string()));
        // A failed hold means nothing can be had: no set_qty, only remove_line.
        assert_eq!(issue["context"]["available_qty"], json!("0.000"));
        assert_eq!(action_ops(issue), vec![json!([{"op": "remove_line", "line_id": item.line_id}])]);
        assert_eq!(issue["context"]["actions"][0]["rev"], json!(1));
    }
    assert!(!issues.contains_key(&session.items[1].line_id), "SUGAR was held");

    let result = &after.data["checks"]["stock"]["result"];
    let held: Vec<&Value> = result["holds"].as_array().unwrap().iter().map(|h| &h["sku"]).collect();
    assert_eq!(held, [&json!("SUGAR")]);
    let flags: Vec<(&Value, &Value)> =
        result["items"].as_array().unwrap().iter().map(|i| (&i["sku"], &i["available"])).collect();
    assert_eq!(
        flags,
        [(&json!("FLOUR"), &json!(false)), (&json!("SUGAR"), &json!(true)), (&json!("EGGS"), &json!(false))]
    );
    // Nothing of the refused SKUs is tied up; the commit waits for the issues.
    assert_eq!((shop.available("FLOUR").await, shop.available("SUGAR").await), ("10.000".into(), "9.000".into()));
    let err =
        shop.hub.commit(&testing::at("pos", &key), Some(&testing::idem("k1")), None, &shop.caller).await.unwrap_err();
    assert_eq!(err.code(), Code::BlockingIssues);
}

#[tokio::test]
async fn a_backend_error_while_holding_is_retried_and_writes_nothing() {
    let shop = shop(stock_config());
    shop.stock.set_level("FLOUR", q("10"));
    shop.spy.broken.lock().unwrap().insert("FLOUR".into());
    let key = shop.open().await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "FLOUR", "qty": 2, "unit_price_q": 300}])).await;
    shop.run().await;
    // An IO failure is transient (docs/reference.md §8): the directive goes back to the queue, and no check
    // result or issue is written, so the session cannot commit on it.
    let hold = shop.directives("stock.hold")[0].clone();
    assert_eq!((hold.status, hold.attempts), (DirectiveStatus::Queued, 1));
    assert!(hold.last_error.contains("stock service unreachable"), "{}", hold.last_error);
    let session = shop.session(&key).await;
    assert!(session.data["checks"].get("stock").is_none(), "{:?}", session.data);
    assert!(session.issues().is_empty());
    assert_eq!(
        shop.hub.commit(&testing::at("pos", &key), None, None, &shop.caller).await.unwrap_err().code(),
        Code::MissingCheck
    );

    // Once the backend answers again, the retry holds and writes the check back.
    shop.spy.broken.lock().unwrap().clear();
    shop.rerun(hold.id).await;
    assert_eq!(shop.directives("stock.hold")[0].status, DirectiveStatus::Done);
    assert_eq!(shop.session(&key).await.data["checks"]["stock"]["result"]["holds"][0]["qty"], json!("2.000"));
    assert_eq!(shop.available("FLOUR").await, "8.000");
}

#[tokio::test]
async fn several_short_skus_each_get_their_issues_and_the_rest_is_held() {
    let shop = shop(stock_config());
    shop.stock.set_level("APPLE", q("1"));
    // PEAR: none at all.
    shop.stock.set_level("PLUM", q("5"));
    let key = shop.open().await;
    let session = shop
        .modify(
            &key,
            json!([
                {"op": "add_line", "sku": "APPLE", "qty": 3, "unit_price_q": 100},
                {"op": "add_line", "sku": "PEAR", "qty": 2, "unit_price_q": 100},
                {"op": "add_line", "sku": "PLUM", "qty": 5, "unit_price_q": 100}
            ]),
        )
        .await;
    shop.run().await;
    let after = shop.session(&key).await;
    let issues = issues_by_line(&after);
    assert_eq!(issues.len(), 2, "{issues:?}");
    let (apple, pear, plum) = (&session.items[0], &session.items[1], &session.items[2]);

    let issue = &issues[&apple.line_id];
    assert_eq!((&issue["context"]["sku"], &issue["context"]["available_qty"]), (&json!("APPLE"), &json!("1.000")));
    assert_eq!(issue["message"], json!("Only 1.000 of APPLE available"));
    assert_eq!(
        action_ops(issue),
        vec![
            json!([{"op": "set_qty", "line_id": apple.line_id, "qty": "1.000"}]),
            json!([{"op": "remove_line", "line_id": apple.line_id}])
        ]
    );
    let issue = &issues[&pear.line_id];
    assert_eq!((&issue["context"]["sku"], &issue["context"]["available_qty"]), (&json!("PEAR"), &json!("0.000")));
    assert_eq!(action_ops(issue), vec![json!([{"op": "remove_line", "line_id": pear.line_id}])]);
    assert!(!issues.contains_key(&plum.line_id));
    assert!(issues.values().all(|i| i["blocking"] == json!(true) && i["code"] == json!("stock.insufficient")));

    let result = &after.data["checks"]["stock"]["result"];
    assert_eq!(
        result["items"],
        json!([
            {"sku": "APPLE", "qty": "3.000", "available": false, "available_qty": "1.000"},
            {"sku": "PEAR", "qty": "2.000", "available": false, "available_qty": "0.000"},
            {"sku": "PLUM", "qty": "5.000", "available": true, "available_qty": "5.000"}
        ])
    );
    let holds = result["holds"].as_array().unwrap();
    assert_eq!((holds.len(), &holds[0]["sku"], &holds[0]["qty"]), (1, &json!("PLUM"), &json!("5.000")));
    // The short SKU's single unit is not held for a partial order.
    assert_eq!((shop.available("APPLE").await, shop.available("PLUM").await), ("1.000".into(), "0.000".into()));
}

#[tokio::test]
async fn two_lines_of_one_sku_short_only_in_total_both_get_an_issue() {
    let shop = shop(stock_config());
    shop.stock.set_level("MILK", q("4"));
    let key = shop.open().await;
    // Each line alone fits in 4; together (5) they do not.
    let session = shop
        .modify(
            &key,
            json!([
                {"op": "add_line", "sku": "MILK", "qty": 2, "unit_price_q": 400},
                {"op": "add_line", "sku": "MILK", "qty": 3, "unit_price_q": 400}
            ]),
        )
        .await;
    shop.run().await;
    let after = shop.session(&key).await;
    let issues = issues_by_line(&after);
    assert_eq!(issues.len(), 2, "{issues:?}");
    for item in &session.items {
        let issue = &issues[&item.line_id];
        assert_eq!(issue["context"]["requested_qty"], json!(item.qty.to_string()));
        assert_eq!(issue["context"]["available_qty"], json!("4.000"));
        assert_eq!(
            action_ops(issue),
            vec![
                json!([{"op": "set_qty", "line_id": item.line_id, "qty": "4.000"}]),
                json!([{"op": "remove_line", "line_id": item.line_id}])
            ]
        );
    }
    let action_ids: HashSet<&str> = issues
        .values()
        .flat_map(|i| i["context"]["actions"].as_array().unwrap())
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(action_ids.len(), 4, "every action has its own id");
    let result = &after.data["checks"]["stock"]["result"];
    assert_eq!(result["items"], json!([{"sku": "MILK", "qty": "5.000", "available": false, "available_qty": "4.000"}]));
    assert_eq!(result["holds"], json!([]));
    assert!(result.get("hold_expires_at").is_none());
    assert_eq!(shop.available("MILK").await, "4.000");
}

#[tokio::test]
async fn stock_commit_without_payload_holds_fulfils_the_session_holds_under_the_order_ref() {
    // No post_commit_directives: the stock.commit below names the session, not the holds.
    let shop = shop(json!({"required_checks_on_commit": ["stock"]}));
    shop.stock.set_level("RICE", q("10"));
    shop.stock.set_level("BEANS", q("10"));
    let key = shop.open().await;
    shop.modify(
        &key,
        json!([
            {"op": "add_line", "sku": "RICE", "qty": 2, "unit_price_q": 700},
            {"op": "add_line", "sku": "BEANS", "qty": 3, "unit_price_q": 800}
        ]),
    )
    .await;
    shop.run().await;
    let session = shop.session(&key).await;
    let hold_ids: Vec<String> = session.data["checks"]["stock"]["result"]["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hold_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(hold_ids.len(), 2);
    let answer = shop.hub.commit(&testing::at("pos", &key), None, None, &shop.caller).await.unwrap();
    let order_ref = answer.order_ref().unwrap().to_owned();
    assert!(shop.directives("stock.commit").is_empty());

    shop.enqueue("stock.commit", json!({"order_ref": order_ref, "channel_code": "pos", "session_key": key})).await;
    shop.run().await;
    let commit = shop.directives("stock.commit")[0].clone();
    assert_eq!(commit.status, DirectiveStatus::Done, "{}", commit.last_error);
    let expected: Vec<(String, Option<String>)> =
        hold_ids.iter().map(|id| (id.clone(), Some(order_ref.clone()))).collect();
    assert_eq!(shop.spy.fulfils(), expected, "each session hold, under the order ref");
    assert_eq!((shop.stock.on_hand("RICE"), shop.stock.on_hand("BEANS")), (8000, 7000));

    // Delivered again: done, and stock is not taken a second time.
    shop.rerun(commit.id).await;
    assert_eq!(shop.directives("stock.commit")[0].status, DirectiveStatus::Done);
    assert_eq!((shop.stock.on_hand("RICE"), shop.stock.on_hand("BEANS")), (8000, 7000));
    assert_eq!((shop.available("RICE").await, shop.available("BEANS").await), ("8.000".into(), "7.000".into()));
}

#[tokio::test]
async fn post_commit_stock_commit_fulfils_the_payload_holds_once_under_the_order_ref() {
    let shop = shop(stock_config());
    shop.stock.set_level("OIL", q("6"));
    let key = shop.open().await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "OIL", "qty": 4, "unit_price_q": 1200}])).await;
    shop.run().await;
    let answer = shop.hub.commit(&testing::at("pos", &key), None, None, &shop.caller).await.unwrap();
    let order_ref = answer.order_ref().unwrap().to_owned();
    let commit = shop.directives("stock.commit")[0].clone();
    let hold_id = commit.payload["holds"][0]["hold_id"].as_str().unwrap().to_owned();
    shop.run().await;
    shop.rerun(commit.id).await;
    assert_eq!(shop.directives("stock.commit")[0].status, DirectiveStatus::Done);
    assert_eq!(shop.spy.fulfils()[0], (hold_id, Some(order_ref)));
    assert_eq!((shop.stock.on_hand("OIL"), shop.available("OIL").await), (2000, "2.000".into()));
}

#[tokio::test]
async fn stock_hold_run_twice_for_one_rev_holds_once() {
    let shop = shop(stock_config());
    shop.stock.set_level("COFFEE", q("10"));
    shop.stock.set_level("CAKE", q("1"));
    let key = shop.open().await;
    shop.modify(
        &key,
        json!([
            {"op": "add_line", "sku": "COFFEE", "qty": 4, "unit_price_q": 500},
            {"op": "add_line", "sku": "CAKE", "qty": 2, "unit_price_q": 900}
        ]),
    )
    .await;
    shop.run().await;
    let first = shop.session(&key).await;
    assert_eq!(shop.available("COFFEE").await, "6.000");
    assert_eq!(first.issues().len(), 1);

    let hold = shop.directives("stock.hold")[0].clone();
    shop.rerun(hold.id).await;
    let rerun = shop.directives("stock.hold")[0].clone();
    assert_eq!(rerun.status, DirectiveStatus::Done, "{}", rerun.last_error);
    let second = shop.session(&key).await;
    // Still 4 held, not 8: the first run's hold was released before holding again.
    assert_eq!((shop.available("COFFEE").await, shop.available("CAKE").await), ("6.000".into(), "1.000".into()));
    // The issue was replaced, not duplicated; the check and the payload name the live hold.
    assert_eq!(second.issues().len(), 1);
    assert_eq!(second.issues()[0]["context"]["line_id"], first.issues()[0]["context"]["line_id"]);
    assert_eq!(second.rev, first.rev);
    let holds = second.data["checks"]["stock"]["result"]["holds"].clone();
    assert_eq!(holds.as_array().unwrap().len(), 1);
    assert_eq!(holds, rerun.payload["holds"]);

    // The live hold is the one the commit fulfils: 4 leave the shelf, once.
    let cake = second.items[1].line_id.clone();
    shop.modify(&key, json!([{"op": "remove_line", "line_id": cake}])).await;
    shop.run().await;
    shop.hub.commit(&testing::at("pos", &key), None, None, &shop.caller).await.unwrap();
    shop.run().await;
    let commit = &shop.directives("stock.commit")[0];
    assert_eq!(commit.status, DirectiveStatus::Done, "{}", commit.last_error);
    assert_eq!(shop.stock.on_hand("COFFEE"), 6000);
}

#[tokio::test]
async fn a_check_result_overtaken_by_a_modify_is_not_written_and_fails_with_stale_rev() {
    let shop = shop(stock_config());
    shop.stock.set_level("TEA", q("10"));
    let key = shop.open().await;
    shop.modify(&key, json!([{"op": "add_line", "sku": "TEA", "qty": 3, "unit_price_q": 100}])).await;
    // Another till adds a line while the handler is holding stock for rev 1.
    *shop.spy.interference.lock().unwrap() = Some(Interference {
        hub: shop.hub.clone(),
        session_key: key.clone(),
        ops: json!([{"op": "add_line", "sku": "TEA", "qty": 2, "unit_price_q": 100}]),
    });
    shop.run().await;
    let stale = &shop.directives("stock.hold")[0];
    assert_eq!((stale.status, stale.last_error.as_str()), (DirectiveStatus::Failed, "stale_rev"));
    let session = shop.session(&key).await;
    assert_eq!(session.rev, 2);
    assert!(session.data["checks"].get("stock").is_none(), "{:?}", session.data["checks"]);

    // The newer modify's hold releases the stale run's hold and holds the new total.
    shop.run().await;
    let fresh = &shop.directives("stock.hold")[1];
    assert_eq!(fresh.status, DirectiveStatus::Done, "{}", fresh.last_error);
    assert_eq!(fresh.payload["rev"], json!(2));
    assert_eq!(shop.available("TEA").await, "5.000", "10 - (3 + 2), the stale hold of 3 released");
    assert_eq!(shop.session(&key).await.data["checks"]["stock"]["rev"], json!(2));
}

#[tokio::test]
async fn capture_delivered_twice_captures_once() {
    let shop = shop(json!({"post_commit_directives": ["payment.capture"]}));
    let intent = shop.payments.create_intent(1000, "BRL", None, None).await.unwrap().intent_id.unwrap();
    let order_ref = paid_order(&shop, &intent).await;
    shop.run().await;
    let capture = shop.directives("payment.capture")[0].clone();
    assert_eq!(capture.status, DirectiveStatus::Done, "{}", capture.last_error);
    assert_eq!(shop.pay_spy.captures.load(Ordering::SeqCst), 1);

    // The same directive again, and a duplicate directive for the same intent.
    shop.rerun(capture.id).await;
    shop.enqueue("payment.capture", json!({"order_ref": order_ref, "intent_id": intent})).await;
    shop.run().await;
    assert!(shop.directives("payment.capture").iter().all(|d| d.status == DirectiveStatus::Done));
    assert_eq!(shop.pay_spy.captures.load(Ordering::SeqCst), 1, "the backend is not asked to capture again");
    let status = shop.payments.get_status(&intent).await.unwrap().unwrap();
    assert_eq!((status.status.as_str(), status.captured_q, status.refunded_q), ("captured", 1000, 0));
    let events = shop.hub.order_events(&order_ref).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event_type == "payment.captured").count(), 1);
}

#[tokio::test]
async fn refunds_delivered_twice_refund_once() {
    let shop = shop(json!({}));
    let intent = shop.payments.create_intent(1000, "BRL", None, None).await.unwrap().intent_id.unwrap();
    shop.payments.capture(&intent, None, None).await.unwrap();
    let order_ref = paid_order(&shop, &intent).await;
    let refunded = |status: &IntentStatus| (status.status.clone(), status.refunded_q);

    // A partial refund, delivered twice: the backend deduplicates on the directive's reference.
    shop.enqueue(
        "payment.refund",
        json!({"order_ref": order_ref, "intent_id": intent, "amount_q": 400, "reason": "late"}),
    )
    .await;
    shop.run().await;
    let partial = shop.directives("payment.refund")[0].clone();
    assert_eq!(partial.status, DirectiveStatus::Done, "{}", partial.last_error);
    shop.rerun(partial.id).await;
    let again = shop.directives("payment.refund")[0].clone();
    assert_eq!(again.status, DirectiveStatus::Done, "{}", again.last_error);
    assert_eq!(again.payload["refund_id"], partial.payload["refund_id"]);
    assert_eq!(refunded(&shop.payments.get_status(&intent).await.unwrap().unwrap()), ("captured".into(), 400));

    // The rest, delivered twice: once refunded in full, the second run does not ask the backend.
    shop.enqueue("payment.refund", json!({"order_ref": order_ref, "intent_id": intent, "reason": "cancelled"})).await;
    shop.run().await;
    let full = shop.directives("payment.refund")[1].clone();
    assert_eq!(full.status, DirectiveStatus::Done, "{}", full.last_error);
    let calls = shop.pay_spy.refunds.load(Ordering::SeqCst);
    shop.rerun(full.id).await;
    assert_eq!(shop.directives("payment.refund")[1].status, DirectiveStatus::Done);
    assert_eq!(shop.pay_spy.refunds.load(Ordering::SeqCst), calls);
    assert_eq!(refunded(&shop.payments.get_status(&intent).await.unwrap().unwrap()), ("refunded".into(), 1000));

    let events = shop.hub.order_events(&order_ref).await.unwrap();
    let reasons: Vec<&Value> =
        events.iter().filter(|e| e.event_type == "payment.refunded").map(|e| &e.payload["reason"]).collect();
    assert_eq!(reasons, [&json!("late"), &json!("cancelled")], "one event per refund");
}
