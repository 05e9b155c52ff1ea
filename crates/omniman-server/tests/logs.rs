//! The server's structured logs, read from the real binary's stderr.

mod common;

use common::{Running, apply_channels, cli_out, command, free_port, sqlite_url, temp_dir};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_is_one_json_warning_carrying_the_request_id_route_and_status() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "logs");
    apply_channels(&url, dir.path(), &json!([{"code": "pos"}]));
    let token = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let bind = format!("127.0.0.1:{}", free_port());
    let serve = command(
        &["serve", "--bind", &bind, "--database-url", &url, "--workers", "0", "--slow-request-ms", "0"],
        &[("OMNIMAN_LOG_FORMAT", "json"), ("OMNIMAN_LOG", "warn")],
    );
    let running = Running::spawn_captured(serve, &bind).await;
    let response = reqwest::Client::new()
        .get(format!("http://{bind}/api/channels/pos"))
        .bearer_auth(&token)
        .header("X-Request-Id", "test-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "test-123", "the id is echoed");
    drop(response); // no open keep-alive connection to wait for at shutdown
    let (_, stderr) = running.stop();

    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let slow: Vec<&Value> = lines.iter().filter(|l| l["message"] == "slow request").collect();
    // The readiness probe's `/api/health` polls before the request are slow too; only one is ours.
    let ours: Vec<&&Value> = slow.iter().filter(|l| l["span"]["request_id"] == "test-123").collect();
    assert_eq!(ours.len(), 1, "one slow-request line for request test-123 in:\n{stderr}");
    let line = ours[0];
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["route"], "/api/channels/{code}");
    assert_eq!(line["status"], 200);
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{line}");
    assert!(decimals(&line["latency_ms"].to_string()) <= 3, "latency rounded to the microsecond: {line}");
    assert_eq!(line["span"]["path"], "/api/channels/pos");
    assert_eq!(line["span"]["principal"], "till", "{line}");
    assert!(
        lines.iter().all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "OMNIMAN_LOG=warn keeps info lines out:\n{stderr}"
    );
}

/// Digits after the decimal point of a number written as text.
fn decimals(number: &str) -> usize {
    number.split_once('.').map_or(0, |(_, fraction)| fraction.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_pipe_have_no_colour_codes_and_round_latencies() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "text-logs");
    let bind = format!("127.0.0.1:{}", free_port());
    let serve = command(
        &["serve", "--bind", &bind, "--database-url", &url, "--workers", "0"],
        &[("OMNIMAN_LOG_FORMAT", "text"), ("OMNIMAN_LOG", "info")],
    );
    let running = Running::spawn_captured(serve, &bind).await;
    let (_, stderr) = running.stop();
    assert!(!stderr.contains('\u{1b}'), "stderr is a pipe, not a terminal: no ANSI escapes in\n{stderr}");
    let latencies: Vec<&str> = stderr.split_whitespace().filter_map(|word| word.strip_prefix("latency_ms=")).collect();
    assert!(!latencies.is_empty(), "the health polls are logged:\n{stderr}");
    for latency in latencies {
        assert!(decimals(latency) <= 3 && latency.parse::<f64>().is_ok(), "latency_ms={latency} in\n{stderr}");
    }
}
