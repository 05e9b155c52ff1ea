//! The bundled handlers end to end on the in-memory store (SPEC §7, §8, §13 "Extensions").

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use omniman_core::directive::{Directive, DirectiveStatus, NewDirective};
use omniman_core::ext::{ActionResolver, ExtensionsBuilder, StockBackend};
use omniman_core::memory::InMemoryStore;
use omniman_core::money::Qty;
use omniman_core::ports::DirectiveQueue;
use omniman_core::prelude::*;
use omniman_core::testing::channel_with;
use omniman_worker::handlers::payment::{MockPayments, PaymentBackend, PaymentCaptureHandler, PaymentRefundHandler};
use omniman_worker::handlers::stock::{MemoryStock, StockCommitHandler, StockHoldHandler};
use omniman_worker::handlers::webhook::{WebhookHandler, signature};
use omniman_worker::{Worker, WorkerConfig};
use serde_json::{Value, json};

struct Shop {
    hub: Arc<Omniman<InMemoryStore>>,
    stock: Arc<MemoryStock>,
    payments: Arc<MockPayments>,
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
    let payments = Arc::new(MockPayments::new());
    let handlers = ExtensionsBuilder::new()
        .handler(Arc::new(StockHoldHandler::new(hub.clone(), stock.clone())))
        .unwrap()
        .handler(Arc::new(StockCommitHandler::new(hub.clone(), stock.clone())))
        .unwrap()
        .handler(Arc::new(PaymentCaptureHandler::new(hub.clone(), payments.clone())))
        .unwrap()
        .handler(Arc::new(PaymentRefundHandler::new(hub.clone(), payments.clone())))
        .unwrap()
        .handler(Arc::new(WebhookHandler::new(hub.clone())))
        .unwrap()
        .build();
    let worker = Worker::new(Arc::new(store), Arc::new(handlers), WorkerConfig::default());
    Shop { hub, stock, payments, worker, caller: Caller::external("till") }
}

impl Shop {
    async fn open(&self) -> String {
        let req = OpenSession { channel_code: "pos".into(), ..OpenSession::default() };
        self.hub.open_session(req, &self.caller).await.unwrap().session.session_key
    }

    async fn modify(&self, key: &str, ops: Value) -> Session {
        self.hub.modify("pos", key, &Op::parse_batch(&ops).unwrap(), None, &self.caller).await.unwrap()
    }

    async fn session(&self, key: &str) -> Session {
        self.hub.get_session(Some("pos"), key).await.unwrap()
    }

    fn directives(&self, topic: &str) -> Vec<Directive> {
        self.hub.store().all_directives().into_iter().filter(|d| d.topic == topic).collect()
    }

    async fn run(&self) {
        self.worker.run_once().await.unwrap();
    }
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
    let err = shop.hub.commit("pos", &key, Some("k1"), None, &shop.caller).await.unwrap_err();
    assert_eq!(err.code(), "blocking_issues");

    // Resolving with set_qty re-runs the check; then the commit goes through.
    let issue_id = issue["id"].as_str().unwrap();
    let action_id = actions[0]["id"].as_str().unwrap();
    let resolved = shop.hub.resolve_issue("pos", &key, issue_id, action_id, None, &shop.caller).await.unwrap();
    assert_eq!((resolved.rev, resolved.items[0].qty), (2, q("2")));
    shop.run().await;
    assert!(shop.session(&key).await.issues().is_empty());
    let answer = shop.hub.commit("pos", &key, Some("k1"), None, &shop.caller).await.unwrap();
    assert_eq!(answer.code, 201);

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

    shop.hub.abandon("pos", &key, None, &shop.caller).await.unwrap();
    shop.hub
        .store()
        .enqueue(&[NewDirective { topic: "stock.hold".into(), payload: payload(&key, 2), available_at: now }])
        .await
        .unwrap();
    shop.run().await;
    assert_eq!(shop.directives("stock.hold")[3].status, DirectiveStatus::Done);
}

#[tokio::test]
async fn two_sessions_racing_for_the_last_unit_get_exactly_one_hold() {
    let stock = MemoryStock::new();
    stock.set_level("LAST", q("1"));
    let (a, b) = tokio::join!(
        stock.create_hold("LAST", q("1"), None, Some("S1")),
        stock.create_hold("LAST", q("1"), None, Some("S2"))
    );
    let wins = [a.unwrap(), b.unwrap()].iter().filter(|h| h.success).count();
    assert_eq!(wins, 1);
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
    let answer = shop.hub.commit("pos", &key, None, None, &shop.caller).await.unwrap();
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
    shop.hub.commit("pos", &key, None, None, &shop.caller).await.unwrap();
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    // First answer 503 (retried), then 200.
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for status in ["503 Service Unavailable", "200 OK"] {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0_u8; 65536];
            let mut len = 0;
            loop {
                let n = socket.read(&mut buf[len..]).await.unwrap();
                len += n;
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let content_length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if len >= head_end + 4 + content_length {
                        seen.push(text);
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            socket.write_all(reply.as_bytes()).await.unwrap();
        }
        seen
    });
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
