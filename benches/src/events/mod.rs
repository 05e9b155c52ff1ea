//! `omniman-eventbench`, the benchmark of the event stream (`GET /api/events`): against an
//! `omniman serve --demo` of its own, it measures what idle subscribers cost the server (memory,
//! CPU), then the latency from a commit's answer to the arrival of its `order.created` event
//! under a paced load, checking that every commit brings exactly one. See
//! `docs/performance.md`, "Event stream".
//!
//! The run, in order:
//!
//! 1. Start the server (the load tool's `--spawn`), make sales for `--warmup` seconds, read its
//!    RSS.
//! 2. Open `--subscribers` idle streams, each until its `retry:` frame (the server's stream task
//!    then exists), wait `--settle` seconds, read the RSS again; measure the server's CPU over
//!    `--idle-seconds`.
//! 3. Open `--sample` streams without a filter and the latency subscriber
//!    (`?type=order.created`, on a thread and runtime of its own, so that the time an event's
//!    bytes arrive is not held up by the rest of the tool); make `--rate` sales per second for
//!    `--duration` seconds; wait up to `--drain` seconds for events still on their way.
//! 4. Match each `order.created` to its commit by session key; check that every idle stream is
//!    still open; stop the server.

pub mod args;
pub mod report;
mod sales;
mod sse;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

pub use self::args::Args;
pub use self::report::Report;
use self::report::{Events, Idle, Load, Memory, MissingEvent, Percentiles, Sample};
use self::sales::{Committed, Sales};
use self::sse::{Followed, Progress, Subscription};
use crate::load::Interrupt;
use crate::load::cpu::{CpuTime, CpuUse};
use crate::load::spawn::SpawnedServer;
use crate::load::stats::{HIGHEST_US, round};
use crate::load::workload;

/// Streams opened at once while the idle subscribers connect, so that the server's accept
/// backlog never overflows.
const OPENING_AT_ONCE: usize = 64;

/// Files the tool needs besides its connections (its binary, libraries, the runtime's).
const RESERVED_FILES: u64 = 64;

/// Runs the benchmark `args` describe and reports it. Must run inside a Tokio runtime with I/O
/// and time enabled. Progress goes to stderr.
pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let files = raise_open_file_limit(args.connections() + RESERVED_FILES)?;
    let interrupt = Interrupt::listen();
    let options = args.spawn_options();
    let mut server = tokio::select! {
        started = SpawnedServer::start(&options) => started?,
        () = interrupt.wait() => bail!("interrupted while starting the server"),
    };
    progress(&format!("open-file limit {files}; server: {}", options.server_args.join(" ")));
    let report = tokio::select! {
        report = measure(args, &server) => report,
        // Dropping the server (below, or on return) stops it and drops its database.
        () = interrupt.wait() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Err(error) = server.stop().await {
        eprintln!("omniman-eventbench: warning: {error:#}");
    }
    report
}

fn progress(line: &str) {
    eprintln!("omniman-eventbench: {line}");
}

/// Raises this process's soft limit of open files to its hard limit when it is below `needed`
/// (the server, started after, inherits it); the limit in force.
#[cfg(unix)]
fn raise_open_file_limit(needed: u64) -> anyhow::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= needed {
        return Ok(current);
    }
    setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum })
        .context("cannot raise the open-file limit")?;
    let raised = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    anyhow::ensure!(
        raised >= needed,
        "the run needs {needed} open files and the hard limit is {raised}: fewer --subscribers, or raise `ulimit -Hn`"
    );
    Ok(raised)
}

#[cfg(not(unix))]
fn raise_open_file_limit(_needed: u64) -> anyhow::Result<u64> {
    Ok(u64::MAX)
}

/// The resident set size of process `pid` (`VmRSS` in `/proc/<pid>/status`), in bytes.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("cannot read the server's /proc status")?;
    parse_vm_rss(&status).context("no VmRSS in the server's /proc status")
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// A subscriber following its stream in a task.
struct Running {
    task: JoinHandle<Followed>,
    progress: Arc<Progress>,
}

/// Opens `count` streams of `query`, at most [`OPENING_AT_ONCE`] at a time, each until its
/// `retry:` frame, and leaves them following until `stop`.
async fn open_subscribers(
    client: &reqwest::Client,
    base_url: &str,
    query: &str,
    count: u32,
    timeout: Duration,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<Running>> {
    let url = sse::events_url(base_url, query)?;
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let opening: Vec<_> = (0..count)
        .map(|_| {
            let (client, url, gate, stop) = (client.clone(), url.clone(), Arc::clone(&gate), stop.clone());
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await.context("the opening gate closed")?;
                let subscription = Subscription::open(&client, url, timeout).await?;
                drop(permit);
                let progress = Arc::clone(&subscription.progress);
                anyhow::Ok(Running { task: tokio::spawn(subscription.follow(stop)), progress })
            })
        })
        .collect();
    let mut running = Vec::with_capacity(opening.len());
    let mut failed = 0;
    let mut first_error = None;
    for task in opening {
        match task.await.context("a subscriber's task failed")? {
            Ok(subscriber) => running.push(subscriber),
            Err(error) => {
                failed += 1;
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        for subscriber in running {
            subscriber.task.abort();
        }
        return Err(error.context(format!("{failed} of {count} subscribers could not open")));
    }
    Ok(running)
}

/// The subscriber whose arrival times make the latency figures, on a thread of its own.
struct LatencySubscriber {
    thread: std::thread::JoinHandle<Followed>,
    progress: Arc<Progress>,
}

impl LatencySubscriber {
    /// Opens `query` on a thread with a single-threaded runtime and waits for its `retry:`
    /// frame.
    async fn start(
        token: &str,
        base_url: &str,
        query: &str,
        timeout: Duration,
        stop: watch::Receiver<bool>,
    ) -> anyhow::Result<LatencySubscriber> {
        let url = sse::events_url(base_url, query)?;
        let token = token.to_owned();
        let (ready, opened) = oneshot::channel::<anyhow::Result<Arc<Progress>>>();
        let thread = std::thread::Builder::new()
            .name("latency-subscriber".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready.send(Err(error.into()));
                        return Followed::default();
                    }
                };
                runtime.block_on(async move {
                    // The client's connection lives on this runtime, and the client as long as it.
                    let client = match sse::client(&token, timeout) {
                        Ok(client) => client,
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            return Followed::default();
                        }
                    };
                    match Subscription::open(&client, url, timeout).await {
                        Ok(subscription) => {
                            let _ = ready.send(Ok(Arc::clone(&subscription.progress)));
                            subscription.follow(stop).await
                        }
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            Followed::default()
                        }
                    }
                })
            })
            .context("cannot start the latency subscriber's thread")?;
        let progress = opened.await.context("the latency subscriber's thread ended")??;
        Ok(LatencySubscriber { thread, progress })
    }

    /// What it saw, once it has been told to stop.
    async fn join(self) -> anyhow::Result<Followed> {
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .context("joining the latency subscriber")?
            .map_err(|_| anyhow::anyhow!("the latency subscriber panicked"))
    }
}

/// The CPU used between two readings over `wall`.
fn used(from: Option<CpuTime>, to: Option<CpuTime>, wall: Duration) -> Option<CpuUse> {
    Some(to?.since(from?, wall))
}

/// Waits for every subscriber's task to end (they have been told to stop).
async fn join_all(subscribers: Vec<Running>) -> anyhow::Result<Vec<Followed>> {
    let mut followed = Vec::with_capacity(subscribers.len());
    for subscriber in subscribers {
        followed.push(subscriber.task.await.context("a subscriber's task failed")?);
    }
    Ok(followed)
}

/// The `order.created` events one subscriber saw, matched to the commits by session key.
#[derive(Debug)]
struct Matched {
    received: u64,
    missing: u64,
    /// The sessions of the missing ones, in commit order.
    missing_keys: Vec<String>,
    duplicated: u64,
    other: u64,
    /// Microseconds from the commit's answer to the first arrival, 0 when the event came first.
    after_answer: Histogram<u64>,
    /// Microseconds from sending the commit to the first arrival.
    after_send: Histogram<u64>,
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn match_events(committed: &[Committed], orders: &[(String, Instant)]) -> Matched {
    let mut arrivals: HashMap<&str, Vec<Instant>> = HashMap::with_capacity(orders.len());
    for (key, arrived) in orders {
        arrivals.entry(key.as_str()).or_default().push(*arrived);
    }
    let histogram = || Histogram::<u64>::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds");
    let mut matched = Matched {
        received: 0,
        missing: 0,
        missing_keys: Vec::new(),
        duplicated: 0,
        other: 0,
        after_answer: histogram(),
        after_send: histogram(),
    };
    for commit in committed {
        let Some(times) = arrivals.remove(commit.session_key.as_str()) else {
            matched.missing += 1;
            matched.missing_keys.push(commit.session_key.clone());
            continue;
        };
        if times.len() == 1 {
            matched.received += 1;
        }
        matched.duplicated += times.len() as u64 - 1;
        let first = times.iter().min().copied().unwrap_or(commit.answered);
        // The answer and the event travel on different connections: the event may come first.
        matched.after_answer.saturating_record(micros(first.saturating_duration_since(commit.answered)));
        matched.after_send.saturating_record(micros(first.saturating_duration_since(commit.sent)));
    }
    matched.other = arrivals.values().map(|times| times.len() as u64).sum();
    matched
}

/// Runs steps 1 to 4 (see the module's documentation) against `server`.
async fn measure(args: &Args, server: &SpawnedServer) -> anyhow::Result<Report> {
    let pid = server.pid().context("the server has no process id")?;
    let base_url = server.base_url.as_str();
    let token = server.token.as_str();
    let sales = Arc::new(Sales::new(
        workload::client(token, args.concurrency, args.timeout)?,
        base_url,
        &args.channel,
        rand::random(),
    )?);
    let streams = sse::client(token, args.timeout)?;
    let (stop_all, stop) = watch::channel(false);

    // 1. Warm-up, then the baseline.
    if !args.warmup.is_zero() {
        progress(&format!("warming up: {} sales/s for {:.1} s", args.rate, args.warmup.as_secs_f64()));
        let warm = sales.run_paced(args.rate, args.warmup, args.concurrency).await;
        anyhow::ensure!(!warm.committed.is_empty(), "no sale of the warm-up was committed: {:?}", warm.failures);
        // The stream's own path too, so that what it allocates once is in the baseline.
        let (stop_warm, warm_stop) = watch::channel(false);
        let warm_streams = open_subscribers(&streams, base_url, &args.idle_query, 2, args.timeout, &warm_stop).await?;
        stop_warm.send_replace(true);
        join_all(warm_streams).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss_before = rss_bytes(pid)?;

    // 2. The idle subscribers: memory and CPU.
    progress(&format!("opening {} idle subscribers (?{})", args.subscribers, args.idle_query));
    let opening = Instant::now();
    let idle = open_subscribers(&streams, base_url, &args.idle_query, args.subscribers, args.timeout, &stop).await?;
    let open_s = opening.elapsed();
    tokio::time::sleep(args.settle).await;
    let rss_with = rss_bytes(pid)?;
    progress(&format!("measuring the server's CPU for {:.1} s", args.idle_seconds.as_secs_f64()));
    let (cpu_from, idle_from) = (CpuTime::of_process(pid), Instant::now());
    tokio::time::sleep(args.idle_seconds).await;
    let idle_cpu = used(cpu_from, CpuTime::of_process(pid), idle_from.elapsed());

    // 3. The sample and latency subscribers, the load, the drain.
    let samples = open_subscribers(&streams, base_url, "", args.sample, args.timeout, &stop).await?;
    let latency = LatencySubscriber::start(token, base_url, "type=order.created", args.timeout, stop.clone()).await?;
    progress(&format!(
        "load: {} sales/s for {:.1} s from {} tasks",
        args.rate,
        args.duration.as_secs_f64(),
        args.concurrency
    ));
    let (server_from, tool_from, load_from) = (CpuTime::of_process(pid), CpuTime::of_self(), Instant::now());
    let outcome = sales.run_paced(args.rate, args.duration, args.concurrency).await;
    let load_wall = load_from.elapsed();
    let server_cpu = used(server_from, CpuTime::of_process(pid), load_wall);
    let tool_cpu = used(tool_from, CpuTime::of_self(), load_wall);
    let expected = outcome.committed.len() as u64;
    let drain_until = Instant::now() + args.drain;
    let all_arrived = || {
        latency.progress.orders.load(Ordering::Relaxed) >= expected
            && samples.iter().all(|s| s.progress.orders.load(Ordering::Relaxed) >= expected)
    };
    while !all_arrived() && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A repeat would come right after the first.
    tokio::time::sleep(Duration::from_millis(250)).await;

    // 4. The checks.
    let rss_after = rss_bytes(pid)?;
    let still_connected = idle.iter().filter(|s| !s.task.is_finished()).count();
    stop_all.send_replace(true);
    let idle = join_all(idle).await?;
    let samples = join_all(samples).await?;
    let latency = latency.join().await?;

    let matched = match_events(&outcome.committed, &latency.orders);
    let (missing_in_log, missing_sessions) = if matched.missing_keys.is_empty() {
        (None, Vec::new())
    } else {
        // Written and not sent, or never written: the log, read again from its start, tells.
        progress("reading the log again for the missing events");
        let url = sse::events_url(base_url, "type=order.created&after=0")?;
        match sse::replay_orders(&streams, url, Duration::from_secs(1), Duration::from_secs(30)).await {
            Ok(log) => {
                let in_log = matched.missing_keys.iter().filter(|key| log.contains_key(key.as_str())).count();
                let listed = matched
                    .missing_keys
                    .iter()
                    .take(10)
                    .map(|key| MissingEvent { session_key: key.clone(), id_in_log: log.get(key.as_str()).copied() })
                    .collect();
                (Some(in_log as u64), listed)
            }
            Err(error) => {
                eprintln!("omniman-eventbench: warning: could not read the log again: {error:#}");
                let listed = matched
                    .missing_keys
                    .iter()
                    .take(10)
                    .map(|key| MissingEvent { session_key: key.clone(), id_in_log: None })
                    .collect();
                (None, listed)
            }
        }
    };
    progress("stopping the server");
    let mut sample = Sample {
        subscribers: args.sample,
        complete: 0,
        events_min: samples.iter().map(|s| s.events).min().unwrap_or(0),
        events_max: samples.iter().map(|s| s.events).max().unwrap_or(0),
        missing: 0,
        duplicated: 0,
    };
    for followed in &samples {
        let seen = match_events(&outcome.committed, &followed.orders);
        if seen.missing == 0 && seen.duplicated == 0 && followed.ended.is_none() {
            sample.complete += 1;
        }
        sample.missing += seen.missing;
        sample.duplicated += seen.duplicated;
    }
    let still_connected = u32::try_from(still_connected).unwrap_or(u32::MAX);
    let idle_ended: Vec<&String> = idle.iter().filter_map(|f| f.ended.as_ref()).collect();
    let invalid: u64 = idle.iter().chain(&samples).chain([&latency]).map(|f| f.invalid).sum();

    let mut problems = Vec::new();
    if expected == 0 {
        problems.push("no sale was committed".to_owned());
    }
    let failed: u64 = outcome.failures.values().sum();
    if failed > 0 {
        problems.push(format!("{failed} sales failed"));
    }
    if matched.missing > 0 {
        let in_log = missing_in_log.map_or_else(String::new, |n| format!(" ({n} of them are in the log)"));
        problems.push(format!("{} committed sessions brought no order.created event{in_log}", matched.missing));
    }
    if matched.duplicated > 0 {
        problems.push(format!("{} order.created events arrived more than once", matched.duplicated));
    }
    if let Some(why) = &latency.ended {
        problems.push(format!("the latency subscriber's stream ended early: {why}"));
    }
    if still_connected < args.subscribers {
        let why = idle_ended.first().map_or_else(String::new, |why| format!(" ({why})"));
        problems.push(format!("{} idle subscribers were disconnected{why}", args.subscribers - still_connected));
    }
    if sample.complete < sample.subscribers {
        problems.push(format!(
            "{} of {} sample subscribers missed, repeated or lost events",
            sample.subscribers - sample.complete,
            sample.subscribers
        ));
    }
    if invalid > 0 {
        problems.push(format!("{invalid} events were not an event's JSON"));
    }

    let subscribers_bytes = rss_with.saturating_sub(rss_before);
    #[expect(clippy::cast_precision_loss, reason = "counts stay far below 2^52")]
    let achieved_rate = round(expected as f64 / outcome.elapsed.as_secs_f64().max(f64::EPSILON), 2);
    Ok(Report {
        base_url: base_url.to_owned(),
        spawned: server.info.clone(),
        channel: args.channel.clone(),
        threads: args.threads,
        warmup_s: args.warmup.as_secs_f64(),
        memory: Memory {
            rss_before_bytes: rss_before,
            rss_with_subscribers_bytes: rss_with,
            rss_after_load_bytes: rss_after,
            subscribers_bytes,
            per_subscriber_bytes: subscribers_bytes / u64::from(args.subscribers),
        },
        idle: Idle {
            subscribers: args.subscribers,
            query: args.idle_query.clone(),
            open_s: round(open_s.as_secs_f64(), 3),
            still_connected,
            events: idle.iter().map(|f| f.events).sum(),
            keep_alives: idle.iter().map(|f| f.keep_alives).sum(),
            server_cpu: idle_cpu,
        },
        load: Load {
            rate: args.rate,
            duration_s: args.duration.as_secs_f64(),
            concurrency: args.concurrency,
            sales: outcome.started,
            committed: expected,
            achieved_rate,
            elapsed_s: round(outcome.elapsed.as_secs_f64(), 3),
            failures: outcome.failures,
            start_lag_ms: Percentiles::of(&outcome.lateness),
            server_cpu,
            tool_cpu,
        },
        events: Events {
            expected,
            received: matched.received,
            missing: matched.missing,
            duplicated: matched.duplicated,
            other: matched.other,
            latency_after_answer_ms: Percentiles::of(&matched.after_answer),
            latency_after_send_ms: Percentiles::of(&matched.after_send),
            ended: latency.ended,
            missing_in_log,
            missing_sessions,
        },
        sample,
        passed: problems.is_empty(),
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rss_is_read_in_bytes() {
        let status = "Name:\tomniman\nVmPeak:\t  90000 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        #[cfg(target_os = "linux")]
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn events_are_matched_to_commits_by_session() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let commit = |key: &str, sent: u64, answered: u64| Committed {
            session_key: key.to_owned(),
            sent: at(sent),
            answered: at(answered),
        };
        let committed = [commit("A", 0, 10), commit("B", 0, 10), commit("C", 0, 10), commit("D", 20, 30)];
        let orders = [
            ("A".to_owned(), at(15)),
            ("B".to_owned(), at(12)),
            ("B".to_owned(), at(40)),
            ("X".to_owned(), at(50)),
            // Before its commit's answer: 0 after the answer.
            ("D".to_owned(), at(25)),
        ];
        let matched = match_events(&committed, &orders);
        assert_eq!((matched.received, matched.missing, matched.duplicated, matched.other), (2, 1, 1, 1));
        assert_eq!(matched.missing_keys, ["C"]);
        assert_eq!(matched.after_answer.len(), 3);
        assert_eq!(matched.after_answer.min(), 0);
        assert!(matched.after_answer.max() >= 4_990 && matched.after_answer.max() <= 5_010);
        assert!(matched.after_send.max() >= 14_990 && matched.after_send.max() <= 15_010);
    }

    #[cfg(unix)]
    #[test]
    fn the_open_file_limit_is_enough_for_a_small_run() {
        assert!(raise_open_file_limit(128).unwrap() >= 128);
    }
}
