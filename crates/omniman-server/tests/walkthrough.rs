//! The README's walk-through, step by step, against `omniman serve --demo` on a fresh SQLite
//! file: prices from the channel, a stock hold, a shortage issue resolved by its action, a commit,
//! and the `stock.commit` directive done. If this test changes, README.md changes with it.

mod common;

use std::time::Duration;

use common::{Api, Running, cli_out, sqlite_url, temp_dir};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_shows_a_hold_an_issue_resolved_and_a_directive_done() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "walkthrough");
    let token = cli_out(&url, &["demo"]);
    let server = Running::serve(&url, &["--workers", "2"]).await;
    let api = Api::new(&server.base, &token);

    // Open a tab for table 12.
    let (status, opened) =
        api.post("/sessions", &json!({"channel_code": "pos", "handle_type": "table", "handle_ref": "12"})).await;
    assert_eq!(status, 201, "{opened}");
    assert_eq!((opened["rev"].as_i64(), opened["state"].as_str()), (Some(0), Some("open")));
    let key = opened["session_key"].as_str().unwrap().to_owned();

    // Two coffees, three croissants and a note; the channel's price list prices them.
    let ops = json!({"channel_code": "pos", "ops": [
        {"op": "add_line", "sku": "COFFEE", "qty": 2},
        {"op": "add_line", "sku": "CROISSANT", "qty": 3},
        {"op": "set_data", "path": "notes", "value": "no sugar"}
    ]});
    let (status, modified) = api.post(&format!("/sessions/{key}/modify"), &ops).await;
    assert_eq!(status, 200, "{modified}");
    assert_eq!((modified["rev"].as_i64(), modified["total_q"].as_i64()), (Some(1), Some(3000)));
    assert_eq!(modified["items"][0]["unit_price_q"], json!(450));
    assert_eq!(modified["pricing"]["currency"], json!("BRL"));

    // The stock check ran: the coffees are held, the croissants are short (two left).
    let session = api
        .wait_for(&format!("/sessions/{key}?channel_code=pos"), Duration::from_secs(10), |b| {
            b["data"]["checks"]["stock"]["rev"] == json!(1)
        })
        .await;
    let holds = session["data"]["checks"]["stock"]["result"]["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 1, "{session}");
    assert_eq!(holds[0]["sku"], json!("COFFEE"));
    let issues = session["data"]["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{session}");
    let issue = &issues[0];
    assert_eq!((issue["code"].as_str(), issue["blocking"].as_bool()), (Some("stock.insufficient"), Some(true)));
    assert_eq!(issue["context"]["sku"], json!("CROISSANT"));
    assert_eq!(issue["context"]["available_qty"], json!("2.000"));
    let action = &issue["context"]["actions"][0];
    assert_eq!(action["label"], json!("Change quantity to 2.000"));

    // Committing now is refused; resolving the issue with its first action fixes the tab.
    let (status, refused) = api
        .post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "pos", "idempotency_key": "till-1-0001"}))
        .await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("blocking_issues")));
    let resolve = json!({"channel_code": "pos", "issue_id": issue["id"], "action_id": action["id"]});
    let (status, resolved) = api.post(&format!("/sessions/{key}/resolve"), &resolve).await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!((resolved["rev"].as_i64(), resolved["items"][1]["qty"].as_str()), (Some(2), Some("2.000")));
    let clean = api
        .wait_for(&format!("/sessions/{key}?channel_code=pos"), Duration::from_secs(10), |b| {
            b["data"]["checks"]["stock"]["rev"] == json!(2)
        })
        .await;
    assert_eq!(clean["data"]["issues"], json!([]));
    assert_eq!(clean["data"]["checks"]["stock"]["result"]["holds"].as_array().map(Vec::len), Some(2));

    // Commit, then the order and its history.
    let (status, committed) = api
        .post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "pos", "idempotency_key": "till-1-0001"}))
        .await;
    assert_eq!(status, 201, "{committed}");
    assert_eq!((committed["status"].as_str(), committed["total_q"].as_i64()), (Some("committed"), Some(2300)));
    let order_ref = committed["order_ref"].as_str().unwrap().to_owned();
    let (status, order) = api.get(&format!("/orders/{order_ref}")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["data"], json!({"notes": "no sugar"}));
    assert_eq!(order["currency"], json!("BRL"));
    let (status, moved) = api.post(&format!("/orders/{order_ref}/transition"), &json!({"status": "confirmed"})).await;
    assert_eq!((status, moved["status"].as_str()), (200, Some("confirmed")), "{moved}");
    let (_, events) = api.get(&format!("/orders/{order_ref}/events")).await;
    let types: Vec<&str> = events["results"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["created", "status_changed"]);

    // The post-commit directive turned the holds into sales.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = cli_out(&url, &["directives", "list", "--topic", "stock.commit"]);
        if listed.lines().any(|l| l.contains("stock.commit") && l.contains("done")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "stock.commit is not done:\n{listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stock = cli_out(&url, &["stock", "list"]);
    let croissants = stock.lines().find(|l| l.starts_with("CROISSANT")).unwrap_or_default();
    assert!(croissants.contains("on_hand=0.000"), "both croissants sold: {stock}");
}
