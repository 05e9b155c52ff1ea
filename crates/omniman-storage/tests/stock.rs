//! The built-in stock backend (docs/reference.md §7, §8 `StockBackend`) on both backends: the same semantics
//! as the worker's `MemoryStock` (one scenario run on all three), holds that stay atomic when
//! sessions and processes race for the last units, and the stock check end to end through the
//! service and the bundled handlers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use omniman_core::directive::{DirectiveStatus, manual_retry};
use omniman_core::ext::{ActionResolver, Availability, ExtensionsBuilder, HandlerRegistry, HoldResult, StockBackend};
use omniman_core::money::Qty;
use omniman_core::page::PageRequest;
use omniman_core::ports::{ChannelStore, DirectiveFilter, DirectiveQueue};
use omniman_core::prelude::{Caller, Omniman, Op, OpenSession};
use omniman_core::testing;
use omniman_storage::test_support::TestDb;
use omniman_storage::{Database, StockLevel, StorageConfig};
use omniman_worker::handlers::stock::{MemoryStock, StockCommitHandler, StockHoldHandler};
use omniman_worker::{Worker, WorkerConfig};
use serde_json::json;
use tokio::sync::Barrier;

db_tests!(
    same_semantics_as_memory_stock,
    expired_holds_do_not_count,
    levels_are_listed_with_what_is_held,
    two_sessions_race_for_the_last_unit,
    two_processes_race_for_the_last_unit,
    twenty_holds_against_ten_units,
    concurrent_holds_and_fulfilments_never_oversell,
    stock_check_end_to_end,
);

fn q(s: &str) -> Qty {
    s.parse().unwrap()
}

fn in_minutes(minutes: i64) -> DateTime<Utc> {
    Utc::now() + TimeDelta::minutes(minutes)
}

/// What the scenario needs beyond the trait: setting a level and reading what is on hand.
#[async_trait]
trait Levels: StockBackend {
    async fn set(&self, sku: &str, qty: Qty);
    async fn on_hand(&self, sku: &str) -> i64;
}

#[async_trait]
impl Levels for MemoryStock {
    async fn set(&self, sku: &str, qty: Qty) {
        self.set_level(sku, qty);
    }

    async fn on_hand(&self, sku: &str) -> i64 {
        MemoryStock::on_hand(self, sku)
    }
}

#[async_trait]
impl Levels for Database {
    async fn set(&self, sku: &str, qty: Qty) {
        self.set_stock_level(sku, qty, Utc::now()).await.unwrap();
    }

    async fn on_hand(&self, sku: &str) -> i64 {
        level(self, sku).await.map_or(0, |l| millis(&l.on_hand))
    }
}

/// `7.000` → 7000, `-0.500` → -500.
fn millis(text: &str) -> i64 {
    let (units, thousandths) = text.split_once('.').unwrap();
    let abs = units.trim_start_matches('-').parse::<i64>().unwrap() * 1000 + thousandths.parse::<i64>().unwrap();
    if text.starts_with('-') { -abs } else { abs }
}

async fn level(db: &Database, sku: &str) -> Option<StockLevel> {
    db.stock_levels(Utc::now()).await.unwrap().into_iter().find(|l| l.sku == sku)
}

fn available(qty: Option<&str>, enough: bool, sku: &str) -> Availability {
    Availability {
        available: enough,
        available_qty: qty.map(q),
        message: (!enough).then(|| format!("Only {} of {sku} available", qty.unwrap_or("0.000"))),
    }
}

fn refused(sku: &str) -> HoldResult {
    HoldResult {
        success: false,
        hold_id: None,
        error_code: Some("insufficient_stock".into()),
        message: Some(format!("Not enough {sku} in stock")),
        expires_at: None,
    }
}

/// Holds `qty` of `sku`, asserting success; returns the hold id.
async fn hold(stock: &dyn StockBackend, sku: &str, qty: &str, expires_at: Option<DateTime<Utc>>, r: &str) -> String {
    let result = stock.create_hold(sku, q(qty), expires_at, Some(r)).await.unwrap();
    assert!(result.success, "holding {qty} of {sku}: {result:?}");
    // The database keeps microseconds, `MemoryStock` nanoseconds.
    assert_eq!(result.expires_at.map(|t| t.trunc_subsecs(6)), expires_at.map(|t| t.trunc_subsecs(6)));
    assert_eq!((result.error_code, result.message), (None, None));
    result.hold_id.unwrap()
}

/// One scenario, run on `MemoryStock` and on the database of each backend.
async fn scenario(stock: &dyn Levels) {
    let avail = |sku: &'static str, qty: &'static str| async move { stock.check_availability(sku, q(qty), None).await };

    // An unknown SKU has nothing on hand.
    assert_eq!(avail("NONE", "1").await.unwrap(), available(None, false, "NONE"));
    assert_eq!(stock.create_hold("NONE", q("1"), None, Some("S1")).await.unwrap(), refused("NONE"));
    assert_eq!(stock.on_hand("NONE").await, 0);

    stock.set("A", q("10")).await;
    assert_eq!(avail("A", "3").await.unwrap(), available(Some("10.000"), true, "A"));
    assert_eq!(avail("A", "10").await.unwrap(), available(Some("10.000"), true, "A"));
    assert_eq!(avail("A", "10.001").await.unwrap(), available(Some("10.000"), false, "A"));

    let h1 = hold(stock, "A", "3", Some(in_minutes(15)), "S1").await;
    assert_eq!(avail("A", "8").await.unwrap(), available(Some("7.000"), false, "A"));
    assert_eq!(stock.create_hold("A", q("7.001"), None, Some("S2")).await.unwrap(), refused("A"));
    let h2 = hold(stock, "A", "7", None, "S2").await;
    assert_ne!(h1, h2);
    assert_eq!(avail("A", "0.001").await.unwrap(), available(None, false, "A"));
    assert_eq!(stock.create_hold("A", q("0.001"), None, Some("S3")).await.unwrap(), refused("A"));

    // Release: active → released once; unknown ids are false.
    assert!(stock.release_hold(&h2).await.unwrap());
    assert!(!stock.release_hold(&h2).await.unwrap());
    assert!(!stock.release_hold("HOLD-UNKNOWN").await.unwrap());
    assert_eq!(avail("A", "7").await.unwrap(), available(Some("7.000"), true, "A"));

    // Fulfil: on hand drops once; again is true (idempotent); released or unknown is false.
    assert_eq!(stock.on_hand("A").await, 10_000);
    assert!(stock.fulfill_hold(&h1, Some("ORD-1")).await.unwrap());
    assert_eq!(stock.on_hand("A").await, 7_000);
    assert!(stock.fulfill_hold(&h1, Some("ORD-1")).await.unwrap());
    assert!(stock.fulfill_hold(&h1, None).await.unwrap());
    assert_eq!(stock.on_hand("A").await, 7_000, "fulfilling twice takes the stock once");
    assert!(!stock.fulfill_hold(&h2, Some("ORD-1")).await.unwrap());
    assert!(!stock.fulfill_hold("HOLD-UNKNOWN", None).await.unwrap());
    assert!(!stock.release_hold(&h1).await.unwrap(), "a fulfilled hold cannot be released");
    assert_eq!(avail("A", "7").await.unwrap(), available(Some("7.000"), true, "A"));

    // Releasing by reference: the active holds of that reference only, counted.
    stock.set("B", q("5")).await;
    let s3_a = hold(stock, "A", "1.5", Some(in_minutes(15)), "S3").await;
    hold(stock, "B", "2", Some(in_minutes(15)), "S3").await;
    let s3_released = hold(stock, "B", "1", None, "S3").await;
    assert!(stock.release_hold(&s3_released).await.unwrap());
    let s3_fulfilled = hold(stock, "B", "0.5", None, "S3").await;
    assert!(stock.fulfill_hold(&s3_fulfilled, None).await.unwrap());
    let s4 = hold(stock, "B", "1", None, "S4").await;
    assert_eq!(avail("A", "1").await.unwrap(), available(Some("5.500"), true, "A"));
    assert_eq!(avail("B", "1").await.unwrap(), available(Some("1.500"), true, "B"));
    assert_eq!(stock.release_holds_for_reference("S3").await.unwrap(), 2);
    assert_eq!(stock.release_holds_for_reference("S3").await.unwrap(), 0);
    assert_eq!(stock.release_holds_for_reference("NOBODY").await.unwrap(), 0);
    assert_eq!(avail("A", "1").await.unwrap(), available(Some("7.000"), true, "A"));
    assert_eq!(avail("B", "1").await.unwrap(), available(Some("3.500"), true, "B"));
    assert!(!stock.fulfill_hold(&s3_a, None).await.unwrap(), "released by reference");
    assert!(stock.fulfill_hold(&s3_fulfilled, None).await.unwrap(), "still fulfilled");
    assert_eq!(stock.on_hand("B").await, 4_500);

    // Lowering the level below what is held: nothing available; fulfilling the old hold takes
    // on hand below zero.
    stock.set("B", q("0.5")).await;
    assert_eq!(avail("B", "0.001").await.unwrap(), available(None, false, "B"));
    assert!(stock.fulfill_hold(&s4, Some("ORD-2")).await.unwrap());
    assert_eq!(stock.on_hand("B").await, -500);
    assert_eq!(avail("B", "0.001").await.unwrap(), available(None, false, "B"));

    assert!(stock.get_alternatives("B", q("1")).await.unwrap().is_empty());
}

#[tokio::test]
async fn memory_stock_passes_the_scenario() {
    scenario(&MemoryStock::new()).await;
}

async fn same_semantics_as_memory_stock(test_db: &TestDb) {
    scenario(test_db.db()).await;
}

async fn expired_holds_do_not_count(test_db: &TestDb) {
    let db: &Database = test_db;
    db.set_stock_level("TEA", q("5"), Utc::now()).await.unwrap();
    let avail = async || db.check_availability("TEA", Qty::ONE, None).await.unwrap().available_qty;

    // Already expired: made, but holds nothing.
    let lapsed = hold(db, "TEA", "2", Some(Utc::now() - TimeDelta::seconds(1)), "S1").await;
    assert_eq!(avail().await, Some(q("5")));
    // Expires in a moment: counts until then.
    let brief = hold(db, "TEA", "3", Some(Utc::now() + TimeDelta::milliseconds(700)), "S1").await;
    assert_eq!(avail().await, Some(q("2")));
    let lasting = hold(db, "TEA", "1", Some(in_minutes(15)), "S2").await;
    assert_eq!(avail().await, Some(q("1")));
    assert_eq!(db.create_hold("TEA", q("1.001"), None, None).await.unwrap(), refused("TEA"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(avail().await, Some(q("4")));
    // What expired is free for others.
    let taker = hold(db, "TEA", "4", None, "S3").await;
    assert_eq!(avail().await, None);
    assert_eq!(level(db, "TEA").await.unwrap().held, "5.000");

    // Expired holds are still active: releasing by reference counts them, and a fulfil (the
    // order was committed while the hold was live) still takes the stock.
    assert!(db.fulfill_hold(&brief, Some("ORD-1")).await.unwrap());
    assert_eq!(level(db, "TEA").await.unwrap().on_hand, "2.000");
    assert_eq!(db.release_holds_for_reference("S1").await.unwrap(), 1, "the lapsed hold");
    assert!(!db.fulfill_hold(&lapsed, None).await.unwrap());
    assert!(db.release_hold(&lasting).await.unwrap());
    assert!(db.release_hold(&taker).await.unwrap());
    assert_eq!(avail().await, Some(q("2")));
}

async fn levels_are_listed_with_what_is_held(test_db: &TestDb) {
    let db: &Database = test_db;
    assert!(db.stock_levels(Utc::now()).await.unwrap().is_empty());
    db.set_stock_level("COFFEE", q("10"), Utc::now()).await.unwrap();
    db.set_stock_level("CAKE", q("2"), Utc::now()).await.unwrap();
    db.set_stock_level("CAKE", q("2.25"), Utc::now()).await.unwrap();
    let coffee = hold(db, "COFFEE", "3", Some(in_minutes(15)), "S1").await;
    hold(db, "COFFEE", "0.5", None, "S2").await;
    hold(db, "CAKE", "1", Some(Utc::now() - TimeDelta::seconds(1)), "S1").await;
    let row = |sku: &str, on_hand: &str, held: &str, available: &str| StockLevel {
        sku: sku.into(),
        on_hand: on_hand.into(),
        held: held.into(),
        available: available.into(),
    };
    assert_eq!(
        db.stock_levels(Utc::now()).await.unwrap(),
        vec![row("CAKE", "2.250", "0.000", "2.250"), row("COFFEE", "10.000", "3.500", "6.500")]
    );
    // `now` decides which holds are live.
    assert_eq!(
        db.stock_levels(Utc::now() + TimeDelta::minutes(16)).await.unwrap()[1],
        row("COFFEE", "10.000", "0.500", "9.500")
    );
    assert_eq!(
        db.stock_levels(Utc::now() - TimeDelta::minutes(1)).await.unwrap()[0],
        row("CAKE", "2.250", "1.000", "1.250")
    );

    assert!(db.fulfill_hold(&coffee, Some("ORD-1")).await.unwrap());
    db.set_stock_level("COFFEE", q("0.2"), Utc::now()).await.unwrap();
    assert_eq!(db.stock_levels(Utc::now()).await.unwrap()[1], row("COFFEE", "0.200", "0.500", "0.000"));
    db.set_stock_level("GONE", q("1"), Utc::now()).await.unwrap();
    let gone = hold(db, "GONE", "1", None, "S3").await;
    db.set_stock_level("GONE", q("0.001"), Utc::now()).await.unwrap();
    assert!(db.fulfill_hold(&gone, None).await.unwrap());
    assert_eq!(level(db, "GONE").await.unwrap(), row("GONE", "-0.999", "0.000", "0.000"));

    // A SKU longer than the column is refused, not truncated.
    assert!(db.set_stock_level(&"X".repeat(65), Qty::ONE, Utc::now()).await.is_err());
}

/// Runs `holders` concurrent holds of one unit of `sku`, alternating between `pools`, all
/// released at once; returns how many succeeded.
async fn race(pools: &[Database], sku: &str, holders: usize) -> usize {
    let barrier = Arc::new(Barrier::new(holders));
    let tasks: Vec<_> = (0..holders)
        .map(|i| {
            let (db, barrier, sku) = (pools[i % pools.len()].clone(), barrier.clone(), sku.to_owned());
            tokio::spawn(async move {
                barrier.wait().await;
                db.create_hold(&sku, Qty::ONE, Some(in_minutes(15)), Some(&format!("S{i}"))).await.unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        let result = task.await.unwrap();
        if result.success {
            won += 1;
        } else {
            assert_eq!(result, refused(sku));
        }
    }
    won
}

/// Rounds of two holders for the last unit of a fresh SKU: exactly one hold each time.
async fn last_unit_rounds(pools: &[Database]) {
    for round in 0..25 {
        let sku = format!("LAST-{round}");
        pools[0].set_stock_level(&sku, Qty::ONE, Utc::now()).await.unwrap();
        assert_eq!(race(pools, &sku, 2).await, 1, "round {round}: exactly one of two holds the last unit");
        let level = level(&pools[0], &sku).await.unwrap();
        assert_eq!((level.held.as_str(), level.available.as_str()), ("1.000", "0.000"));
    }
}

async fn two_sessions_race_for_the_last_unit(test_db: &TestDb) {
    last_unit_rounds(&[test_db.db().clone()]).await;
}

/// A second pool on the same database stands for a second process.
async fn other_process(test_db: &TestDb) -> Database {
    Database::connect(&StorageConfig::new(test_db.url()).with_pool_size(4)).await.unwrap()
}

async fn two_processes_race_for_the_last_unit(test_db: &TestDb) {
    let other = other_process(test_db).await;
    last_unit_rounds(&[test_db.db().clone(), other.clone()]).await;
    other.close();
}

async fn twenty_holds_against_ten_units(test_db: &TestDb) {
    let other = other_process(test_db).await;
    let pools = [test_db.db().clone(), other.clone()];
    for round in 0..3 {
        let sku = format!("TEN-{round}");
        test_db.set_stock_level(&sku, q("10"), Utc::now()).await.unwrap();
        assert_eq!(race(&pools, &sku, 20).await, 10, "round {round}");
        let level = level(test_db, &sku).await.unwrap();
        assert_eq!(
            (level.on_hand.as_str(), level.held.as_str(), level.available.as_str()),
            ("10.000", "10.000", "0.000")
        );
    }
    other.close();
}

/// Sessions on two processes each hold one unit, then fulfil it (or release it, every third
/// one), all at once: what is fulfilled never exceeds what was on hand.
async fn concurrent_holds_and_fulfilments_never_oversell(test_db: &TestDb) {
    let other = other_process(test_db).await;
    let pools = [test_db.db().clone(), other.clone()];
    test_db.set_stock_level("HOT", q("10"), Utc::now()).await.unwrap();
    let holders = 30;
    let barrier = Arc::new(Barrier::new(holders));
    let tasks: Vec<_> = (0..holders)
        .map(|i| {
            let (db, barrier) = (pools[i % 2].clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let result =
                    db.create_hold("HOT", Qty::ONE, Some(in_minutes(15)), Some(&format!("S{i}"))).await.unwrap();
                let Some(hold_id) = result.hold_id else { return 0 };
                if i % 3 == 0 {
                    assert!(db.release_hold(&hold_id).await.unwrap());
                    0
                } else {
                    assert!(db.fulfill_hold(&hold_id, Some(&format!("ORD-{i}"))).await.unwrap());
                    1
                }
            })
        })
        .collect();
    let mut fulfilled = 0;
    for task in tasks {
        fulfilled += task.await.unwrap();
    }
    let level = level(test_db, "HOT").await.unwrap();
    assert!((1..=10).contains(&fulfilled), "{fulfilled} fulfilled out of 10 on hand");
    assert_eq!(millis(&level.on_hand), 10_000 - fulfilled * 1000, "{level:?}");
    assert_eq!(level.held, "0.000");
    other.close();
}

fn caller() -> Caller {
    Caller::external("till")
}

/// The `stock.hold` and `stock.commit` handlers on `Omniman<Database>` with the database as
/// stock backend: holds, a shortage and its resolution, commit, fulfilment.
async fn stock_check_end_to_end(test_db: &TestDb) {
    let db: &Database = test_db;
    let config = json!({"required_checks_on_commit": ["stock"], "post_commit_directives": ["stock.commit"]});
    db.upsert_channel(&serde_json::from_value(json!({"code": "pos", "config": config})).unwrap(), Utc::now())
        .await
        .unwrap();
    let ext = ExtensionsBuilder::new().resolver(Arc::new(ActionResolver::new("stock"))).unwrap().build();
    let hub = Arc::new(Omniman::new(db.clone(), ext));
    let stock: Arc<dyn StockBackend> = Arc::new(db.clone());
    let handlers = HandlerRegistry::new()
        .register(Arc::new(StockHoldHandler::new(hub.clone(), stock.clone())))
        .unwrap()
        .register(Arc::new(StockCommitHandler::new(hub.clone(), stock.clone())))
        .unwrap();
    let worker = Worker::new(Arc::new(db.clone()), Arc::new(handlers), WorkerConfig::default());
    let directives = async |topic: &str| {
        let filter = DirectiveFilter { topic: Some(topic.to_owned()), ..DirectiveFilter::default() };
        let mut page = db.list_directives(&filter, &PageRequest::new(None, 50)).await.unwrap().items;
        page.reverse();
        page
    };

    db.set_stock_level("COFFEE", q("10"), Utc::now()).await.unwrap();
    db.set_stock_level("CAKE", q("2"), Utc::now()).await.unwrap();
    let open = OpenSession::on(testing::code("pos"));
    let key = hub.open_session(open, &caller()).await.unwrap().session.session_key;
    let ops = Op::parse_batch(&json!([
        {"op": "add_line", "sku": "COFFEE", "qty": 2, "unit_price_q": 500},
        {"op": "add_line", "sku": "COFFEE", "qty": 1, "unit_price_q": 500},
        {"op": "add_line", "sku": "CAKE", "qty": 5, "unit_price_q": 900}
    ]))
    .unwrap();
    hub.modify(&testing::at("pos", &key), &ops, None, &caller()).await.unwrap();
    worker.run_once().await.unwrap();

    let hold = &directives("stock.hold").await[0];
    assert_eq!(hold.status, DirectiveStatus::Done, "{}", hold.last_error);
    let session = hub.get_session(Some(&testing::code("pos")), &testing::key(&key)).await.unwrap();
    let result = &session.data["checks"]["stock"]["result"];
    assert_eq!(result["holds"].as_array().map(Vec::len), Some(1), "{result}");
    assert_eq!(
        (result["holds"][0]["sku"].as_str(), result["holds"][0]["qty"].as_str()),
        (Some("COFFEE"), Some("3.000"))
    );
    assert!(result["holds"][0]["hold_id"].as_str().is_some_and(|id| id.starts_with("HOLD-")));
    assert!(result["hold_expires_at"].is_string());
    let issues = session.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!((issues[0]["code"].as_str(), issues[0]["blocking"].as_bool()), (Some("stock.insufficient"), Some(true)));
    assert_eq!(issues[0]["context"]["available_qty"], json!("2.000"));
    assert_eq!(level(db, "COFFEE").await.unwrap().held, "3.000");

    // set_qty to what is available re-runs the check: the previous holds are released first.
    let issue_id = issues[0]["id"].as_str().unwrap();
    let action_id = issues[0]["context"]["actions"][0]["id"].as_str().unwrap();
    hub.resolve_issue(&testing::at("pos", &key), issue_id, action_id, None, &caller()).await.unwrap();
    worker.run_once().await.unwrap();
    assert_eq!(directives("stock.hold").await[1].status, DirectiveStatus::Done);
    assert!(hub.get_session(Some(&testing::code("pos")), &testing::key(&key)).await.unwrap().issues().is_empty());
    let held: Vec<(String, String)> =
        db.stock_levels(Utc::now()).await.unwrap().into_iter().map(|l| (l.sku, l.held)).collect();
    assert_eq!(held, vec![("CAKE".into(), "2.000".into()), ("COFFEE".into(), "3.000".into())]);

    let answer = hub.commit(&testing::at("pos", &key), Some(&testing::idem("k1")), None, &caller()).await.unwrap();
    assert_eq!(answer.http_status(), 201);
    worker.run_once().await.unwrap();
    let commit = &directives("stock.commit").await[0];
    assert_eq!(commit.status, DirectiveStatus::Done, "{}", commit.last_error);
    let levels: Vec<(String, String, String)> =
        db.stock_levels(Utc::now()).await.unwrap().into_iter().map(|l| (l.sku, l.on_hand, l.held)).collect();
    assert_eq!(
        levels,
        vec![("CAKE".into(), "0.000".into(), "0.000".into()), ("COFFEE".into(), "7.000".into(), "0.000".into())]
    );

    // Delivered again (delivery is at least once): the retry is done and takes nothing more.
    let retry = manual_retry(commit, Utc::now()).unwrap();
    assert!(db.requeue(&retry, Utc::now()).await.unwrap());
    worker.run_once().await.unwrap();
    let commit = &directives("stock.commit").await[0];
    assert_eq!((commit.status, commit.attempts), (DirectiveStatus::Done, 2), "{}", commit.last_error);
    assert_eq!(level(db, "COFFEE").await.unwrap().on_hand, "7.000");
}
