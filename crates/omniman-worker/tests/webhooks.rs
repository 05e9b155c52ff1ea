//! Webhook subscriptions end to end on the in-memory store: the dispatcher's fan-out from an
//! event log, and `webhook.deliver` posting signed events to a local receiver.

mod common;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use omniman_core::directive::DirectiveStatus;
use omniman_core::error::StoreError;
use omniman_core::events::{EventLog, EventRead, EventType, LogEvent};
use omniman_core::ext::{Extensions, HandlerRegistry};
use omniman_core::memory::InMemoryStore;
use omniman_core::page::{Page, PageRequest};
use omniman_core::ports::{DirectiveQueue, StoreResult, WebhookStore};
use omniman_core::prelude::Omniman;
use omniman_core::webhook::{Delivery, NewDelivery, NewWebhook, Webhook};
use omniman_worker::handlers::deliver::{DELIVERY_HEADER, WebhookDeliveryHandler, verify};
use omniman_worker::{Dispatcher, Worker, WorkerConfig};
use serde_json::{Value, json};

/// The in-memory store with an event log the test writes.
#[derive(Clone, Debug, Default)]
struct Logged {
    inner: InMemoryStore,
    log: Arc<Mutex<Vec<LogEvent>>>,
    /// Transactions reported in flight by every read.
    in_flight: Arc<Mutex<Vec<i64>>>,
}

impl Logged {
    fn append(&self, id: i64, kind: EventType, channel: &str) {
        let event = LogEvent {
            id,
            kind,
            channel_code: Some(channel.into()),
            session_key: Some("S-1".into()),
            order_ref: None,
            data: json!({"n": id}),
            at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let mut log = self.log.lock().unwrap();
        log.push(event);
        log.sort_by_key(|e| e.id);
    }
}

impl EventLog for Logged {
    async fn read_events(&self, after: i64, limit: usize) -> StoreResult<EventRead> {
        let events = self.log.lock().unwrap().iter().filter(|e| e.id > after).take(limit).cloned().collect();
        let in_flight = self.in_flight.lock().unwrap().clone();
        let in_flight_from = in_flight.iter().max().map(|newest| newest + 1);
        Ok(EventRead { events, in_flight, in_flight_from })
    }

    async fn transaction_horizon(&self) -> StoreResult<i64> {
        Ok(self.in_flight.lock().unwrap().iter().max().map_or(0, |newest| newest + 1))
    }

    async fn last_event_id(&self) -> StoreResult<i64> {
        Ok(self.log.lock().unwrap().last().map_or(0, |e| e.id))
    }
}

impl WebhookStore for Logged {
    async fn create_webhook(&self, webhook: &Webhook) -> StoreResult<Webhook> {
        self.inner.create_webhook(webhook).await
    }
    async fn webhook(&self, id: i64) -> StoreResult<Option<Webhook>> {
        self.inner.webhook(id).await
    }
    async fn list_webhooks(&self, page: &PageRequest) -> StoreResult<Page<Webhook>> {
        self.inner.list_webhooks(page).await
    }
    async fn active_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.inner.active_webhooks().await
    }
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<bool> {
        self.inner.update_webhook(webhook).await
    }
    async fn delete_webhook(&self, id: i64) -> StoreResult<bool> {
        self.inner.delete_webhook(id).await
    }
    async fn enqueue_deliveries(&self, deliveries: &[NewDelivery]) -> StoreResult<Vec<i64>> {
        self.inner.enqueue_deliveries(deliveries).await
    }
    async fn list_deliveries(&self, webhook_id: i64, page: &PageRequest) -> StoreResult<Page<Delivery>> {
        self.inner.list_deliveries(webhook_id, page).await
    }
    async fn dispatch_position(&self) -> Result<i64, StoreError> {
        self.inner.dispatch_position().await
    }
    async fn advance_dispatch(&self, from: i64, to: i64, deliveries: &[NewDelivery]) -> StoreResult<bool> {
        self.inner.advance_dispatch(from, to, deliveries).await
    }
}

fn subscription(url: &str, events: &[EventType], channels: Option<&[&str]>) -> NewWebhook {
    NewWebhook {
        url: url.into(),
        events: events.to_vec(),
        channels: channels.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
        active: None,
    }
}

async fn deliveries(store: &InMemoryStore, webhook_id: i64) -> Vec<Delivery> {
    store.list_deliveries(webhook_id, &PageRequest::default()).await.unwrap().items
}

#[tokio::test]
async fn the_dispatcher_fans_each_event_out_once_to_each_matching_subscription() {
    let store = Logged::default();
    store.inner.put_channel(omniman_core::testing::channel("pos"));
    let hub = Omniman::new(store.inner.clone(), Extensions::default());
    let orders = hub.create_webhook(subscription("http://a/", &[EventType::OrderCreated], None), "k".into()).await;
    let orders = orders.unwrap();
    let pos_sessions = subscription("http://b/", &[EventType::SessionOpened], Some(&["pos"]));
    let pos_sessions = hub.create_webhook(pos_sessions, "k".into()).await.unwrap();

    store.append(1, EventType::SessionOpened, "pos");
    store.append(2, EventType::SessionOpened, "web");
    store.append(3, EventType::OrderCreated, "web");
    // Two processes' dispatchers, taking turns on the same store.
    let shared = Arc::new(store.clone());
    let (mut one, mut two) = (Dispatcher::new(shared.clone()), Dispatcher::new(shared.clone()));
    let report = one.run_once().await.unwrap();
    assert_eq!((report.events, report.deliveries), (3, 2));
    assert_eq!(two.run_once().await.unwrap().deliveries, 0, "nothing new for the other one");

    // Event 5 is visible while 4's transaction may still commit: both wait for it.
    store.append(5, EventType::OrderCreated, "pos");
    *store.in_flight.lock().unwrap() = vec![100];
    assert_eq!(one.run_once().await.unwrap().events, 0);
    store.append(4, EventType::SessionOpened, "pos");
    store.in_flight.lock().unwrap().clear();
    assert_eq!(two.run_once().await.unwrap().events, 2);
    // The first one lost its place: it finds the stored position and dispatches nothing again.
    assert_eq!(one.run_once().await.unwrap().deliveries, 0);
    assert_eq!(store.inner.dispatch_position().await.unwrap(), 5);

    let got = |list: Vec<Delivery>| list.into_iter().rev().map(|d| d.event_id.unwrap()).collect::<Vec<_>>();
    assert_eq!(got(deliveries(&store.inner, orders.id).await), [3, 5]);
    assert_eq!(got(deliveries(&store.inner, pos_sessions.id).await), [1, 4]);
    let directive = store.inner.all_directives().into_iter().find(|d| d.payload["event"]["id"] == json!(4)).unwrap();
    assert_eq!(directive.topic, "webhook.deliver");
    assert_eq!(directive.payload["event"]["type"], json!("session.opened"));
    assert_eq!(directive.payload["event"]["channel_code"], json!("pos"));
}

#[tokio::test]
async fn concurrent_dispatchers_never_dispatch_an_event_twice() {
    let store = Logged::default();
    let hub = Omniman::new(store.inner.clone(), Extensions::default());
    let hook = hub.create_webhook(subscription("http://a/", &[EventType::OrderCreated], None), "k".into()).await;
    let hook = hook.unwrap();
    for id in 1..=500 {
        store.append(id, EventType::OrderCreated, "pos");
    }
    let shared = Arc::new(store.clone());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let mut dispatcher = Dispatcher::new(shared.clone());
            tokio::spawn(async move {
                let mut total = 0;
                for _ in 0..20 {
                    total += dispatcher.run_once().await.unwrap().deliveries;
                    tokio::task::yield_now().await;
                }
                total
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 500);
    let mut ids: Vec<i64> = store
        .inner
        .all_directives()
        .iter()
        .filter(|d| d.payload["webhook_id"] == json!(hook.id))
        .map(|d| d.payload["event"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=500).collect::<Vec<_>>());
}

fn header<'a>(request: &'a str, name: &str) -> &'a str {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let line = request.lines().find(|l| l.to_ascii_lowercase().starts_with(&prefix)).unwrap();
    line.split_once(':').unwrap().1.trim()
}

fn body(request: &str) -> &str {
    &request[request.find("\r\n\r\n").unwrap() + 4..]
}

#[tokio::test]
async fn a_delivery_is_signed_and_keeps_its_id_across_a_retry_after_a_500() {
    let (url, server) = common::receiver(&["500 Internal Server Error", "200 OK"]).await;
    let store = InMemoryStore::new();
    let hub = Arc::new(Omniman::new(store.clone(), Extensions::default()));
    let hook = hub.create_webhook(subscription(&url, &[EventType::OrderCreated], None), "whsec_t".into());
    let hook = hook.await.unwrap();
    let event = json!({"id": 9, "type": "order.created", "channel_code": "pos", "order_ref": "ORD-1", "data": {}});
    let now = Utc::now() - TimeDelta::seconds(1);
    let delivery = NewDelivery::new(hook.id, Some(9), "order.created", event.clone(), now);
    let ids = store.enqueue_deliveries(&[delivery]).await.unwrap();

    let handlers = HandlerRegistry::new().register(Arc::new(WebhookDeliveryHandler::new(hub.clone()))).unwrap();
    let worker = Worker::new(Arc::new(store.clone()), Arc::new(handlers), WorkerConfig::default());
    worker.run_once().await.unwrap();
    let first = store.directive(ids[0]).await.unwrap().unwrap();
    assert_eq!(first.status, DirectiveStatus::Queued, "a 500 is retried: {}", first.last_error);
    assert!(first.last_error.contains("500"));
    // The retry's backoff, skipped.
    let retry = omniman_core::directive::manual_retry(&first, Utc::now() - TimeDelta::seconds(1)).unwrap();
    assert!(store.requeue(&retry, Utc::now()).await.unwrap());
    worker.run_once().await.unwrap();
    let listed = deliveries(&store, hook.id).await;
    assert_eq!((listed[0].status, listed[0].attempts), (DirectiveStatus::Done, 2));

    let requests = server.await.unwrap();
    assert_eq!(requests.len(), 2);
    let now = Utc::now().timestamp();
    for request in &requests {
        assert!(request.starts_with("POST /hook "), "{request}");
        let signature = header(request, "Omniman-Signature");
        assert_eq!(verify("whsec_t", signature, body(request).as_bytes(), now, 300), Ok(()), "{request}");
        assert!(verify("another", signature, body(request).as_bytes(), now, 300).is_err());
        assert_eq!(header(request, DELIVERY_HEADER), ids[0].to_string(), "the same id on every attempt");
        assert_eq!(header(request, "Omniman-Event"), "order.created");
        assert_eq!(serde_json::from_str::<Value>(body(request)).unwrap(), event);
    }
}

#[tokio::test]
async fn a_delivery_to_a_deleted_subscription_ends_without_sending() {
    let store = InMemoryStore::new();
    let hub = Arc::new(Omniman::new(store.clone(), Extensions::default()));
    let hook = hub.create_webhook(subscription("http://127.0.0.1:9/", &[EventType::OrderCreated], None), "k".into());
    let hook = hook.await.unwrap();
    let delivery = hub.test_webhook(hook.id).await.unwrap();
    hub.delete_webhook(hook.id).await.unwrap();
    let handlers = HandlerRegistry::new().register(Arc::new(WebhookDeliveryHandler::new(hub.clone()))).unwrap();
    let worker = Worker::new(Arc::new(store.clone()), Arc::new(handlers), WorkerConfig::default());
    worker.run_once().await.unwrap();
    let directive = store.directive(delivery.id).await.unwrap().unwrap();
    assert_eq!(directive.status, DirectiveStatus::Done);
    assert_eq!(directive.payload["skipped"], json!("the subscription was deleted"));
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_fails_the_delivery() {
    let (url, server) = common::receiver(&["302 Found\r\nlocation: http://127.0.0.1:9/elsewhere"]).await;
    let store = InMemoryStore::new();
    let hub = Arc::new(Omniman::new(store.clone(), Extensions::default()));
    let hook = hub.create_webhook(subscription(&url, &[EventType::OrderCreated], None), "k".into()).await.unwrap();
    let delivery = hub.test_webhook(hook.id).await.unwrap();
    let handlers = HandlerRegistry::new().register(Arc::new(WebhookDeliveryHandler::new(hub.clone()))).unwrap();
    let worker = Worker::new(Arc::new(store.clone()), Arc::new(handlers), WorkerConfig::default());
    worker.run_once().await.unwrap();
    let directive = store.directive(delivery.id).await.unwrap().unwrap();
    assert_eq!(directive.status, DirectiveStatus::Failed, "{}", directive.last_error);
    assert!(directive.last_error.contains("302"), "{}", directive.last_error);
    assert_eq!(server.await.unwrap().len(), 1);
}
