//! `omniman-loadgen` as a user runs it: with `--spawn` against a real `omniman` on SQLite, the
//! seed workload runs without a failure and its report adds up, down to the orders the server
//! holds afterwards.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use clap::CommandFactory;
use common::{server_bin, test_postgres};
use omniman_benches::load::Args;
use serde_json::Value;

const LOADGEN: &str = env!("CARGO_BIN_EXE_omniman-loadgen");

/// Runs `omniman-loadgen ARGS`, killing it after `limit`.
fn loadgen(args: &[&str], limit: Duration) -> Output {
    common::run_tool(LOADGEN, args, limit)
}

/// `http://127.0.0.1:PORT` where nothing listens.
fn free_base_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}")
}

fn json_report(output: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "omniman-loadgen failed ({}):\n{stderr}", output.status);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}):\n{}\n{stderr}", String::from_utf8_lossy(&output.stdout))
    })
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("not a count: {value}"))
}

fn assert_ordered_latency(latency: &Value, what: &str) {
    let field = |name: &str| latency[name].as_f64().unwrap_or_else(|| panic!("{what}: no {name} in {latency}"));
    let (p50, p95, p99, max) = (field("p50"), field("p95"), field("p99"), field("max"));
    assert!(p50 > 0.0, "{what}: {latency}");
    assert!(p50 <= p95 && p95 <= p99 && p99 <= max, "{what}: percentiles out of order: {latency}");
}

#[test]
fn the_seed_workload_runs_without_failures_and_every_commit_is_an_order_on_the_server() {
    let server = server_bin();
    let started = Instant::now();
    let output = loadgen(
        &["--spawn", "--server-bin", server.to_str().unwrap(), "--users", "4", "--duration", "2", "--json"],
        Duration::from_secs(90),
    );
    let report = json_report(&output);
    eprintln!("omniman-loadgen ran in {:.1}s", started.elapsed().as_secs_f64());

    let requests = count(&report["requests"]);
    assert!(requests > 0, "{report}");
    assert_eq!(report["failures"]["total"], 0, "{report}");
    assert!(report["throughput_rps"].as_f64().unwrap() > 0.0, "{report}");
    let elapsed = report["elapsed_s"].as_f64().unwrap();
    assert!((2.0..30.0).contains(&elapsed), "the measured period is the requested 2 s and a tail: {report}");
    assert_eq!(report["interrupted"], false);
    assert_eq!(report["spawned"]["backend"], "sqlite");

    let tasks = report["tasks"].as_object().unwrap();
    let names: Vec<&str> = tasks.keys().map(String::as_str).collect();
    assert_eq!(names, ["create_session", "modify_session", "commit_session"]);
    let mut sum = 0;
    for (name, task) in tasks {
        let n = count(&task["requests"]);
        assert!(n > 0, "{name} never ran: {report}");
        assert_eq!(task["failures"], 0, "{name}: {report}");
        assert_ordered_latency(&task["latency_ms"], name);
        sum += n;
    }
    assert_eq!(sum, requests, "the tasks add up to the total: {report}");
    assert_ordered_latency(&report["latency_ms"], "all");

    // A commit needs a session with a line, made by an earlier create and modify.
    let commits = count(&tasks["commit_session"]["requests"]);
    assert!(count(&tasks["create_session"]["requests"]) >= commits, "{report}");
    // Without a warm-up every commit was measured; each made one order, and the server (on
    // a database of its own) lists exactly those.
    let orders = &report["orders"];
    assert_eq!(count(&orders["committed"]), commits, "{report}");
    assert_eq!(count(&orders["committed_in_run"]), commits, "{report}");
    assert_eq!(count(&orders["on_server"]), commits, "{report}");

    for who in ["cpu", "server_cpu"] {
        let cpu = &report[who];
        let (user, sys, total) =
            (cpu["user_s"].as_f64().unwrap(), cpu["sys_s"].as_f64().unwrap(), cpu["total_s"].as_f64().unwrap());
        assert!(user >= 0.0 && sys >= 0.0 && (user + sys - total).abs() < 0.002, "{who}: {report}");
        assert!(cpu["percent_of_one_core"].as_f64().unwrap() >= 0.0, "{who}: {report}");
    }
    assert!(report["server_cpu"]["total_s"].as_f64().unwrap() > 0.0, "the server did the work: {report}");
}

#[test]
fn a_server_that_is_not_there_is_counted_as_transport_errors() {
    let base = free_base_url();
    let output = loadgen(
        &["--base-url", &base, "--token", "omni_x", "--users", "2", "--duration", "0.3", "--json"],
        Duration::from_secs(30),
    );
    let report = json_report(&output);
    let requests = count(&report["requests"]);
    assert!(requests > 0, "{report}");
    assert_eq!(count(&report["failures"]["total"]), requests, "{report}");
    assert_eq!(count(&report["failures"]["transport"]["connect"]), requests, "{report}");
    // Without a session nothing can be modified or committed: every request was a create.
    assert_eq!(count(&report["tasks"]["create_session"]["requests"]), requests, "{report}");
    assert_eq!(report["latency_ms"], Value::Null, "refused requests have no latency: {report}");
    assert_eq!(report["orders"]["on_server"], Value::Null);
}

#[test]
fn the_text_report_is_the_default() {
    let output =
        loadgen(&["--base-url", &free_base_url(), "--token", "t", "--duration", "0.1"], Duration::from_secs(30));
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in ["requests in", "create_session", "modify_session", "commit_session", "failures: transport connect"]
    {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
}

#[test]
fn every_flag_is_documented_in_performance_md() {
    let missing = common::undocumented_flags(&Args::command(), "The load tool");
    assert!(missing.is_empty(), "docs/performance.md, \"The load tool\", does not mention {missing:?}");
}

#[test]
fn two_spawned_instances_share_one_database_and_every_commit_is_one_order() {
    let Some(database) = test_postgres() else { return };
    let server = server_bin();
    let output = loadgen(
        &[
            "--spawn",
            "--instances",
            "2",
            "--database-url",
            &database,
            "--server-bin",
            server.to_str().unwrap(),
            "--users",
            "6",
            "--duration",
            "2",
            "--json",
        ],
        Duration::from_secs(120),
    );
    let report = json_report(&output);
    let urls = report["base_urls"].as_array().unwrap();
    assert_eq!(urls.len(), 2, "{report}");
    assert_ne!(urls[0], urls[1]);
    assert_eq!(report["spawned"]["backend"], "postgres");
    assert_eq!(report["failures"]["total"], 0, "a session opened on one instance is changed on the other: {report}");
    let commits = count(&report["tasks"]["commit_session"]["requests"]);
    assert!(commits > 0, "{report}");
    assert_eq!(count(&report["orders"]["on_server"]), commits, "{report}");
    assert!(report["server_cpu"]["total_s"].as_f64().unwrap() > 0.0, "{report}");
}
