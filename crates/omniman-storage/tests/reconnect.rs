//! A pooled PostgreSQL connection that was lost while idle (server restart, killed session,
//! dropped network) is not checked with a `SELECT 1` when it leaves the pool: the statement
//! that fails on it finds it, and the call runs again on a fresh connection where that is safe
//! (a read; a commit, which its session's version and its key make safe to run twice; a write
//! whose transaction's `BEGIN` failed). See `src/retry.rs`.
//!
//! The pool connects through a TCP proxy that can break every connection the way a lost one
//! behaves: the server side is closed (the session ends), the client side stays open until
//! the client sends its next statement, which is answered by closing it. The client cannot
//! know before it tries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use omniman_cache::{CacheConfig, CachedStore};
use omniman_core::ext::Extensions;
use omniman_core::ops::Op;
use omniman_core::order::{OrderFlow, plan_transition};
use omniman_core::page::PageRequest;
use omniman_core::ports::{ChannelStore, OrderFilter, OrderStore};
use omniman_core::prelude::{Caller, ManualClock, Omniman, OpenSession};
use omniman_core::testing;
use omniman_storage::test_support::TestDb;
use omniman_storage::{Database, StatementCounter, StorageConfig};

/// Forwards connections to `upstream`; `break_all()` breaks every connection open then.
struct Proxy {
    port: u16,
    generation: watch::Sender<u64>,
    /// Connections broken so far (their server side closed).
    broken: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (generation, _) = watch::channel(0u64);
        let tx = generation.clone();
        let broken = Arc::new(AtomicUsize::new(0));
        let count = broken.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(pipe(client, upstream.clone(), tx.subscribe(), count.clone()));
            }
        });
        Proxy { port, generation, broken }
    }

    /// Breaks the connections open now (the pool's one) and waits until that is done.
    async fn break_all(&self) {
        let before = self.broken.load(Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
        for _ in 0..500 {
            if self.broken.load(Ordering::SeqCst) > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no connection was broken");
    }
}

async fn pipe(mut client: TcpStream, upstream: String, mut broken: watch::Receiver<u64>, count: Arc<AtomicUsize>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    let born = *broken.borrow_and_update();
    {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        tokio::select! {
            _ = tokio::io::copy(&mut client_read, &mut server_write) => return,
            _ = tokio::io::copy(&mut server_read, &mut client_write) => return,
            _ = broken.wait_for(|g| *g != born) => {}
        }
    }
    // The server's side goes: the session ends there.
    drop(server);
    count.fetch_add(1, Ordering::SeqCst);
    // The client's side stays open until it sends something, then closes unanswered.
    let mut byte = [0u8; 1];
    let _ = client.read(&mut byte).await;
}

/// The test database's URL, through the proxy.
fn through(url: &str, port: u16) -> (String, String) {
    let (head, rest) = url.split_once('@').expect("user@host in the test URL");
    let (host_port, db) = rest.split_once('/').expect("a database name in the test URL");
    (format!("{head}@127.0.0.1:{port}/{db}"), host_port.to_owned())
}

async fn setup() -> Option<(TestDb, Proxy, Database)> {
    let test_db = TestDb::postgres().await?;
    let (_, upstream) = through(test_db.url(), 0);
    let proxy = Proxy::start(upstream).await;
    let (url, _) = through(test_db.url(), proxy.port);
    // One connection: whatever a call gets is the connection that was broken.
    let db = Database::connect(&StorageConfig::new(url).with_pool_size(1)).await.unwrap();
    db.upsert_channel(&serde_json::from_value(json!({"code": "pos"})).unwrap(), common_t()).await.unwrap();
    Some((test_db, proxy, db))
}

fn common_t() -> chrono::DateTime<chrono::Utc> {
    omniman_core::testing::epoch()
}

/// Breaks the pool's connection, once what the client sends after a call (tokio-postgres
/// closes unnamed statements in the background) has gone through.
async fn break_connections(proxy: &Proxy) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.break_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_on_a_lost_connection_runs_again_on_a_fresh_one() {
    let Some((_test_db, proxy, db)) = setup().await else { return };
    let clock = Arc::new(ManualClock::at(common_t()));
    let hub = Omniman::new(db.clone(), Extensions::default()).with_clock(clock);
    let caller = Caller::external("till");
    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &caller).await.unwrap();

    break_connections(&proxy).await;
    let (read, counter) = StatementCounter::measure(
        hub.get_session(Some(&testing::code("pos")), &testing::key(&opened.session.session_key)),
    )
    .await;
    assert_eq!(read.unwrap().session_key, opened.session.session_key);
    assert_eq!(counter.round_trips(), 2, "the failed attempt and the retry: {:#?}", counter.statements());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_or_a_transaction_on_a_lost_connection_runs_again_on_a_fresh_one() {
    let Some((_test_db, proxy, db)) = setup().await else { return };
    // Through the cache, as `omniman serve` runs: the commit is one statement.
    let store = CachedStore::new(db.clone(), CacheConfig::default());
    let clock = Arc::new(ManualClock::at(common_t()));
    let hub = Omniman::new(store, Extensions::default()).with_clock(clock);
    let caller = Caller::external("till");
    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &caller).await.unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    let batch = Op::parse_batch(&json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 100}])).unwrap();
    hub.modify(&at, &batch, None, &caller).await.unwrap();

    break_connections(&proxy).await;
    let (answer, counter) =
        StatementCounter::measure(Box::pin(hub.commit(&at, Some(&testing::idem("K")), None, &caller))).await;
    let answer = answer.unwrap();
    assert_eq!(answer.http_status(), 201);
    // The commit statement that failed, then the commit statement again.
    assert_eq!(counter.round_trips(), 2, "{:#?}", counter.statements());
    let orders = db.list_orders(&OrderFilter::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(orders.items.len(), 1, "one order");

    // An order transition: a transaction, whose `BEGIN` fails.
    let (channel, order) = db.order_by_ref(answer.order_ref().unwrap()).await.unwrap().unwrap();
    let plan =
        plan_transition(&order, &OrderFlow::for_channel(&channel), "confirmed", "ana", None, common_t()).unwrap();
    break_connections(&proxy).await;
    assert!(db.transition(&plan).await.unwrap(), "applied once, on the fresh connection");
    assert_eq!(db.list_events(order.id).await.unwrap().len(), 2, "created, confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_statement_write_is_not_run_twice() {
    let Some((_test_db, proxy, db)) = setup().await else { return };
    // A write that is one statement (here the channel's upsert) may have reached the server
    // before the connection went: it is not run again. It fails; the next call works.
    let spec = serde_json::from_value(json!({"code": "pos", "name": "Till"})).unwrap();
    break_connections(&proxy).await;
    let lost = db.upsert_channel(&spec, common_t()).await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(db.upsert_channel(&spec, common_t()).await.unwrap().name, "Till");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_succeed_right_after_the_server_kills_the_pooled_sessions() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let Some(test_db) = TestDb::postgres().await else { return };
    let db = test_db.db();
    db.upsert_channel(&serde_json::from_value(json!({"code": "pos"})).unwrap(), common_t()).await.unwrap();
    let clock = Arc::new(ManualClock::at(common_t()));
    let hub = Omniman::new(db.clone(), Extensions::default()).with_clock(clock);
    let caller = Caller::external("till");
    let mut admin = AsyncPgConnection::establish(test_db.url()).await.unwrap();
    for round in 0..5 {
        let opened = hub.open_session(OpenSession::on(testing::code("pos")), &caller).await.unwrap();
        let at = testing::at("pos", &opened.session.session_key);
        let batch = Op::parse_batch(&json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 1}])).unwrap();
        hub.modify(&at, &batch, None, &caller).await.unwrap();
        admin
            .batch_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .await
            .unwrap();
        let read = hub.get_session(Some(&at.channel), &at.key).await;
        assert!(read.is_ok(), "round {round}: {read:?}");
        let commit = hub.commit(&at, Some(&testing::idem(&format!("K{round}"))), None, &caller).await;
        assert_eq!(commit.map(|a| a.http_status()).ok(), Some(201), "round {round}");
    }
}
