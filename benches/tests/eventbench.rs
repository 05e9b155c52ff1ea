//! `omniman-eventbench` as a user runs it, small: against a real `omniman` (this build's) on
//! SQLite, every commit brings exactly one `order.created` to the latency subscriber and to
//! every sample subscriber, every idle subscriber stays connected, and the figures are sane.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use common::{server_bin, test_postgres};
use omniman_benches::events::Args;
use serde_json::Value;

const EVENTBENCH: &str = env!("CARGO_BIN_EXE_omniman-eventbench");

/// A short run: 50 idle subscribers, 20 sales/s for 2 s, plus `extra` flags.
fn eventbench(extra: &[&str]) -> Output {
    let server = server_bin();
    let mut args = vec![
        "--server-bin",
        server.to_str().unwrap(),
        "--subscribers",
        "50",
        "--sample",
        "3",
        "--rate",
        "20",
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--settle",
        "0.5",
        "--idle-seconds",
        "1",
        "--drain",
        "10",
    ];
    args.extend_from_slice(extra);
    common::run_tool(EVENTBENCH, &args, Duration::from_secs(120))
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or_else(|| panic!("not a number: {value}"))
}

fn assert_ordered(latency: &Value, what: &str) {
    let field = |name: &str| number(&latency[name]);
    let (p50, p90, p99, max) = (field("p50"), field("p90"), field("p99"), field("max"));
    assert!(p50 >= 0.0, "{what}: {latency}");
    assert!(p50 <= p90 && p90 <= p99 && p99 <= max, "{what}: percentiles out of order: {latency}");
    // Far above what a debug build on a busy machine takes, far below a lost event found late.
    assert!(max < 5_000.0, "{what}: {latency}");
}

#[test]
fn every_commit_brings_one_event_and_every_subscriber_stays() {
    let started = Instant::now();
    let output = eventbench(&["--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("omniman-eventbench ran in {:.1}s", started.elapsed().as_secs_f64());
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stderr}"));
    assert!(output.status.success(), "omniman-eventbench failed ({}): {report}\n{stderr}", output.status);
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["problems"], Value::Array(Vec::new()), "{report}");
    assert_eq!(report["spawned"]["backend"], "sqlite");

    // 20/s for 2 s: sales 0 … 39, every one committed.
    let load = &report["load"];
    assert_eq!(load["sales"], 40, "{report}");
    assert_eq!(load["committed"], 40, "{report}");
    assert_eq!(load["failures"], serde_json::json!({}), "{report}");
    let rate = number(&load["achieved_rate"]);
    assert!((10.0..=21.0).contains(&rate), "{report}");

    let events = &report["events"];
    assert_eq!(events["expected"], 40, "{report}");
    assert_eq!(events["received"], 40, "{report}");
    assert_eq!((&events["missing"], &events["duplicated"]), (&Value::from(0), &Value::from(0)), "{report}");
    assert_eq!(events["latency_after_answer_ms"]["count"], 40, "{report}");
    assert_ordered(&events["latency_after_answer_ms"], "after the answer");
    assert_ordered(&events["latency_after_send_ms"], "after sending");
    // The commit was sent before its answer came: the event is later after sending.
    assert!(
        number(&events["latency_after_send_ms"]["p50"]) >= number(&events["latency_after_answer_ms"]["p50"]),
        "{report}"
    );

    let idle = &report["idle"];
    assert_eq!(idle["subscribers"], 50, "{report}");
    assert_eq!(idle["still_connected"], 50, "{report}");
    // They follow `ifood`, which the load does not touch.
    assert_eq!(idle["events"], 0, "{report}");
    assert!(number(&idle["server_cpu"]["percent_of_one_core"]) >= 0.0, "{report}");

    // Each sample subscriber saw every event: 4 per sale at least (opened, modified, committed,
    // order created).
    let sample = &report["sample"];
    assert_eq!(sample["complete"], 3, "{report}");
    assert!(number(&sample["events_min"]) >= 160.0, "{report}");

    let memory = &report["memory"];
    let before = number(&memory["rss_before_bytes"]);
    assert!(before > 1e6, "an omniman takes more than a megabyte: {report}");
    assert!(number(&memory["rss_with_subscribers_bytes"]) > 0.0, "{report}");
    // Each stream costs the server its task, its channel and its connection, not megabytes.
    assert!(number(&memory["per_subscriber_bytes"]) < 1e6, "{report}");
}

#[test]
fn the_text_report_on_postgres_passes() {
    let Some(database) = test_postgres() else { return };
    let output = eventbench(&["--database-url", &database]);
    let text = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "omniman-eventbench failed ({}):\n{text}\n{stderr}", output.status);
    for expected in [
        "on postgres",
        "idle subscribers: 50 (?channel_code=ifood)",
        "50 still connected at the end",
        "bytes per subscriber",
        "order.created: 40 expected, 40 received once, 0 missing, 0 duplicated",
        "commit answered → event: p50",
        "sample subscribers (no filter): 3 of 3 complete",
        "\npassed\n",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
}

#[test]
fn every_flag_is_documented_in_performance_md() {
    let missing = common::undocumented_flags(&Args::command(), "Event stream");
    assert!(missing.is_empty(), "docs/performance.md, \"Event stream\", does not mention {missing:?}");
}
