//! What `omniman-eventbench` reports, as text ([`Display`](fmt::Display)) or JSON
//! ([`Serialize`]).

use std::collections::BTreeMap;
use std::fmt;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::load::cpu::CpuUse;
use crate::load::stats::{SpawnedInfo, millis, round};

/// Percentiles of a latency, in milliseconds (to the histogram's 3 significant digits).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// `None` for an empty histogram of microseconds.
    pub(crate) fn of(histogram: &Histogram<u64>) -> Option<Percentiles> {
        if histogram.is_empty() {
            return None;
        }
        Some(Percentiles {
            count: histogram.len(),
            p50: millis(histogram.value_at_quantile(0.50)),
            p90: millis(histogram.value_at_quantile(0.90)),
            p99: millis(histogram.value_at_quantile(0.99)),
            max: millis(histogram.max()),
            mean: round(histogram.mean() / 1000.0, 3),
        })
    }
}

/// The server's memory, as its resident set size (`VmRSS`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// After the warm-up, before the idle subscribers.
    pub rss_before_bytes: u64,
    /// With the idle subscribers open, after `--settle`.
    pub rss_with_subscribers_bytes: u64,
    /// After the load, every subscriber still open.
    pub rss_after_load_bytes: u64,
    /// `rss_with_subscribers_bytes − rss_before_bytes` (0 if it shrank).
    pub subscribers_bytes: u64,
    /// `subscribers_bytes` over the idle subscribers.
    pub per_subscriber_bytes: u64,
}

/// The idle subscribers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Idle {
    /// Opened.
    pub subscribers: u32,
    /// Their query string.
    pub query: String,
    /// Seconds it took to open them all (each with its `retry:` frame).
    pub open_s: f64,
    /// Still open at the end of the run.
    pub still_connected: u32,
    /// Events they received, all together (0 when their filter matches nothing of the load).
    pub events: u64,
    /// Keep-alive comments they received, all together.
    pub keep_alives: u64,
    /// The server's CPU over `--idle-seconds` with them open and no load.
    pub server_cpu: Option<CpuUse>,
}

/// The paced load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Load {
    /// `--rate`: sales per second asked for.
    pub rate: f64,
    /// `--duration`, in seconds.
    pub duration_s: f64,
    /// `--concurrency`: tasks making sales.
    pub concurrency: u32,
    /// Sales started.
    pub sales: u64,
    /// Their commits answered `201`.
    pub committed: u64,
    /// `committed` per second of `elapsed_s`.
    pub achieved_rate: f64,
    /// From the first sale's due time until the last sale finished.
    pub elapsed_s: f64,
    /// Failed steps (`create: HTTP 503`, `commit: transport timeout`), by kind.
    pub failures: BTreeMap<String, u64>,
    /// How late sales started after they came due (all tasks busy), in milliseconds.
    pub start_lag_ms: Option<Percentiles>,
    /// The server's CPU over the load.
    pub server_cpu: Option<CpuUse>,
    /// The tool's CPU over the load.
    pub tool_cpu: Option<CpuUse>,
}

/// The `order.created` events of the committed sessions, as the latency subscriber saw them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Events {
    /// Committed sessions: each must bring exactly one `order.created`.
    pub expected: u64,
    /// Of them, those whose event arrived once.
    pub received: u64,
    /// Of them, those whose event never arrived.
    pub missing: u64,
    /// Events that arrived more than once, counting each repeat.
    pub duplicated: u64,
    /// `order.created` events of other sessions (the warm-up's, another writer's).
    pub other: u64,
    /// From the commit's answer (status and headers read) to the event's arrival, 0 when the
    /// event came first.
    pub latency_after_answer_ms: Option<Percentiles>,
    /// From sending the commit to the event's arrival.
    pub latency_after_send_ms: Option<Percentiles>,
    /// Why the latency subscriber's stream ended early, if it did.
    pub ended: Option<String>,
    /// Of the missing events, those the log holds (read again from its start after the run):
    /// written, but never sent live. `None` when nothing was missing, or the log could not be
    /// read.
    pub missing_in_log: Option<u64>,
    /// Up to 10 of the sessions whose event was missing, with the event's id in the log.
    pub missing_sessions: Vec<MissingEvent>,
}

/// A committed session whose `order.created` the latency subscriber never received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingEvent {
    /// The session.
    pub session_key: String,
    /// The id of its `order.created` in the log; `None` when the log does not hold it.
    pub id_in_log: Option<i64>,
}

/// The sample subscribers, which filter nothing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Opened.
    pub subscribers: u32,
    /// Of them, those that saw every committed session's `order.created` exactly once and were
    /// still open at the end.
    pub complete: u32,
    /// Events each received: the fewest.
    pub events_min: u64,
    /// Events each received: the most.
    pub events_max: u64,
    /// Committed sessions' `order.created` missing, over all of them.
    pub missing: u64,
    /// Repeats, over all of them.
    pub duplicated: u64,
}

/// Everything a run reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The spawned server's address.
    pub base_url: String,
    /// The server the tool started.
    pub spawned: SpawnedInfo,
    /// The channel of the sales.
    pub channel: String,
    /// Threads of the tool's runtime (the latency subscriber has one more).
    pub threads: u32,
    /// `--warmup`, in seconds.
    pub warmup_s: f64,
    /// The server's memory.
    pub memory: Memory,
    /// The idle subscribers.
    pub idle: Idle,
    /// The paced load.
    pub load: Load,
    /// Commit-to-event latency and the events' count.
    pub events: Events,
    /// The sample subscribers.
    pub sample: Sample,
    /// What went wrong: missing or repeated events, failed sales, closed streams. Empty when
    /// the run passed.
    pub problems: Vec<String>,
    /// `problems` is empty.
    pub passed: bool,
}

#[expect(clippy::cast_precision_loss, reason = "byte counts stay far below 2^52")]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn cpu_text(cpu: Option<&CpuUse>) -> String {
    cpu.map_or_else(
        || "unknown".to_owned(),
        |c| format!("{:.2} s user + {:.2} s sys, {:.1} % of one core", c.user_s, c.sys_s, c.percent_of_one_core),
    )
}

fn percentiles_text(p: Option<&Percentiles>) -> String {
    p.map_or_else(
        || "none".to_owned(),
        |p| format!("p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms", p.p50, p.p90, p.p99, p.max),
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "omniman-eventbench: {} ({} on {})", self.base_url, self.spawned.binary, self.spawned.backend)?;
        writeln!(f, "database: {}", self.spawned.database)?;
        writeln!(f)?;
        let (idle, memory) = (&self.idle, &self.memory);
        writeln!(
            f,
            "idle subscribers: {} (?{}), opened in {:.2} s; {} still connected at the end, {} events and {} keep-alives received",
            idle.subscribers, idle.query, idle.open_s, idle.still_connected, idle.events, idle.keep_alives
        )?;
        writeln!(
            f,
            "server memory (RSS): {:.1} MiB before, {:.1} MiB with them (+{:.1} MiB, {} bytes per subscriber), {:.1} MiB after the load",
            mib(memory.rss_before_bytes),
            mib(memory.rss_with_subscribers_bytes),
            mib(memory.subscribers_bytes),
            memory.per_subscriber_bytes,
            mib(memory.rss_after_load_bytes)
        )?;
        writeln!(f, "server cpu while idle: {}", cpu_text(idle.server_cpu.as_ref()))?;
        writeln!(f)?;
        let load = &self.load;
        writeln!(
            f,
            "load: {} sales/s for {:.1} s from {} tasks (after {:.1} s of warm-up), channel {}",
            load.rate, load.duration_s, load.concurrency, self.warmup_s, self.channel
        )?;
        writeln!(
            f,
            "sales: {} started, {} committed in {:.2} s: {:.1} commits/s",
            load.sales, load.committed, load.elapsed_s, load.achieved_rate
        )?;
        if load.failures.is_empty() {
            writeln!(f, "failures: none")?;
        } else {
            let kinds: Vec<String> = load.failures.iter().map(|(kind, n)| format!("{kind} × {n}")).collect();
            writeln!(f, "failures: {}", kinds.join(", "))?;
        }
        writeln!(f, "start lag: {}", percentiles_text(load.start_lag_ms.as_ref()))?;
        writeln!(f, "server cpu under load: {}", cpu_text(load.server_cpu.as_ref()))?;
        writeln!(f, "tool cpu under load: {}", cpu_text(load.tool_cpu.as_ref()))?;
        writeln!(f)?;
        let events = &self.events;
        writeln!(
            f,
            "order.created: {} expected, {} received once, {} missing, {} duplicated, {} of other sessions",
            events.expected, events.received, events.missing, events.duplicated, events.other
        )?;
        for missing in &events.missing_sessions {
            match missing.id_in_log {
                Some(id) => writeln!(f, "  missing: {} (event {id} is in the log)", missing.session_key)?,
                None => writeln!(f, "  missing: {} (not in the log)", missing.session_key)?,
            }
        }
        writeln!(f, "commit answered → event: {}", percentiles_text(events.latency_after_answer_ms.as_ref()))?;
        writeln!(f, "commit sent → event:     {}", percentiles_text(events.latency_after_send_ms.as_ref()))?;
        let sample = &self.sample;
        if sample.subscribers > 0 {
            writeln!(
                f,
                "sample subscribers (no filter): {} of {} complete, {}–{} events each, {} missing, {} duplicated",
                sample.complete,
                sample.subscribers,
                sample.events_min,
                sample.events_max,
                sample.missing,
                sample.duplicated
            )?;
        }
        writeln!(f)?;
        if self.passed {
            writeln!(f, "passed")?;
        } else {
            writeln!(f, "FAILED:")?;
            for problem in &self.problems {
                writeln!(f, "- {problem}")?;
            }
        }
        Ok(())
    }
}
