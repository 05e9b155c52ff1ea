//! What a run measured: request counts, failures and latency histograms while it runs, and
//! the [`Report`] made of them at the end, as text ([`Display`](fmt::Display)) or JSON
//! ([`Serialize`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::cpu::CpuUse;
use super::workload::Task;

/// Largest latency a histogram holds, in microseconds (one hour); longer ones count as this.
pub(crate) const HIGHEST_US: u64 = 3_600_000_000;

/// Why a request did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server answered with this status, outside 2xx.
    Status(u16),
    /// No complete answer: `connect`, `timeout`, `body` (cut short), `request` or `other`.
    Transport(&'static str),
    /// A 2xx answer whose body lacked what the workload needs (a session's `session_key`).
    InvalidBody,
}

impl Failure {
    /// Classifies a client error.
    pub fn transport(error: &reqwest::Error) -> Failure {
        let kind = if error.is_timeout() {
            "timeout"
        } else if error.is_connect() {
            "connect"
        } else if error.is_body() || error.is_decode() {
            "body"
        } else if error.is_request() {
            "request"
        } else {
            "other"
        };
        Failure::Transport(kind)
    }
}

/// One task's counts and latencies.
#[derive(Debug)]
struct TaskStats {
    requests: u64,
    failures: u64,
    /// Microseconds from sending the request to the end of the answer's body, for every
    /// request that got an answer (failed statuses included, transport errors not).
    latency: Histogram<u64>,
}

/// Counts and latencies of the requests sent in the measured period, by task.
#[derive(Debug)]
pub struct Stats {
    tasks: [TaskStats; Task::ALL.len()],
    by_status: BTreeMap<u16, u64>,
    transport: BTreeMap<&'static str, u64>,
    invalid_body: u64,
}

impl Default for Stats {
    fn default() -> Self {
        let task = || TaskStats {
            requests: 0,
            failures: 0,
            latency: Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds"),
        };
        Stats {
            tasks: [task(), task(), task()],
            by_status: BTreeMap::new(),
            transport: BTreeMap::new(),
            invalid_body: 0,
        }
    }
}

impl Stats {
    /// Counts one request of `task` that took `latency` and ended in `outcome`.
    pub fn record(&mut self, task: Task, latency: Duration, outcome: Result<(), Failure>) {
        let stats = &mut self.tasks[task.index()];
        stats.requests += 1;
        let answered = !matches!(outcome, Err(Failure::Transport(_)));
        if answered {
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).max(1);
            stats.latency.saturating_record(micros);
        }
        let Err(failure) = outcome else { return };
        stats.failures += 1;
        match failure {
            Failure::Status(status) => *self.by_status.entry(status).or_default() += 1,
            Failure::Transport(kind) => *self.transport.entry(kind).or_default() += 1,
            Failure::InvalidBody => self.invalid_body += 1,
        }
    }

    /// Requests counted so far, all tasks together.
    pub fn requests(&self) -> u64 {
        self.tasks.iter().map(|t| t.requests).sum()
    }

    fn task_report(&self, task: Task, elapsed: Duration) -> TaskReport {
        let stats = &self.tasks[task.index()];
        TaskReport {
            requests: stats.requests,
            failures: stats.failures,
            throughput_rps: per_second(stats.requests, elapsed),
            latency_ms: Latency::of(&stats.latency),
        }
    }

    /// The figures of the report, over `elapsed` (the measured period).
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let mut all = Histogram::<u64>::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds");
        for task in &self.tasks {
            all.add(&task.latency).expect("histograms of equal bounds add up");
        }
        let requests = self.requests();
        let total = self.tasks.iter().map(|t| t.failures).sum();
        Summary {
            requests,
            throughput_rps: per_second(requests, elapsed),
            failures: Failures {
                total,
                by_status: self.by_status.iter().map(|(status, n)| (status.to_string(), *n)).collect(),
                transport: self.transport.iter().map(|(kind, n)| ((*kind).to_owned(), *n)).collect(),
                invalid_body: self.invalid_body,
            },
            latency_ms: Latency::of(&all),
            tasks: Tasks {
                create_session: self.task_report(Task::CreateSession, elapsed),
                modify_session: self.task_report(Task::ModifySession, elapsed),
                commit_session: self.task_report(Task::CommitSession, elapsed),
            },
        }
    }
}

#[expect(clippy::cast_precision_loss, reason = "request counts stay far below 2^52")]
fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { round(count as f64 / secs, 2) } else { 0.0 }
}

/// `value` rounded to `decimals` places, so that the JSON report carries no binary noise
/// (`1.5699999999999998`) and no false precision.
pub(crate) fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

#[expect(clippy::cast_precision_loss, reason = "latencies in microseconds stay far below 2^52")]
pub(crate) fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Latency percentiles in milliseconds (to the histogram's 3 significant digits).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// `None` for an empty histogram.
    fn of(histogram: &Histogram<u64>) -> Option<Latency> {
        if histogram.is_empty() {
            return None;
        }
        Some(Latency {
            p50: millis(histogram.value_at_quantile(0.50)),
            p95: millis(histogram.value_at_quantile(0.95)),
            p99: millis(histogram.value_at_quantile(0.99)),
            max: millis(histogram.max()),
            mean: round(histogram.mean() / 1000.0, 3),
        })
    }
}

/// One task's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskReport {
    /// Requests sent in the measured period.
    pub requests: u64,
    /// Of them, those that failed.
    pub failures: u64,
    /// `requests` per second of the measured period.
    pub throughput_rps: f64,
    /// Latency of the requests that got an answer; `None` when none did.
    pub latency_ms: Option<Latency>,
}

/// The figures of each task, in the workload's order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tasks {
    /// `POST /api/sessions`.
    pub create_session: TaskReport,
    /// `POST /api/sessions/{key}/modify`.
    pub modify_session: TaskReport,
    /// `POST /api/sessions/{key}/commit`.
    pub commit_session: TaskReport,
}

impl Tasks {
    /// `(name, figures)` in the workload's order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &TaskReport)> {
        [
            (Task::CreateSession.name(), &self.create_session),
            (Task::ModifySession.name(), &self.modify_session),
            (Task::CommitSession.name(), &self.commit_session),
        ]
        .into_iter()
    }
}

/// Failed requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Failures {
    /// All failed requests.
    pub total: u64,
    /// Answers outside 2xx, by HTTP status.
    pub by_status: BTreeMap<String, u64>,
    /// Requests without a complete answer, by kind (`connect`, `timeout`, `body`, `request`,
    /// `other`).
    pub transport: BTreeMap<String, u64>,
    /// 2xx answers to `create_session` without a `session_key`.
    pub invalid_body: u64,
}

/// The request figures of a run, before the run's context is added.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Requests sent in the measured period.
    pub requests: u64,
    /// `requests` per second of the measured period.
    pub throughput_rps: f64,
    /// Failed requests.
    pub failures: Failures,
    /// Latency of every answered request.
    pub latency_ms: Option<Latency>,
    /// By task.
    pub tasks: Tasks,
}

/// The server the tool started with `--spawn`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpawnedInfo {
    /// The `omniman` binary.
    pub binary: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Where the data was: a temporary SQLite file, a given file, or the database created.
    pub database: String,
}

/// Orders created by the run's commits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Orders {
    /// Commits answered `201 Created` in the measured period.
    pub committed: u64,
    /// The same over the whole run, warm-up included.
    pub committed_in_run: u64,
    /// Orders the server lists after the run (`GET /api/orders`), with `--spawn` only, since
    /// its database held none before.
    pub on_server: Option<u64>,
}

/// Everything a run reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The servers' addresses: one per instance.
    pub base_urls: Vec<String>,
    /// The channel used.
    pub channel: String,
    /// The server started for the run, if any.
    pub spawned: Option<SpawnedInfo>,
    /// Virtual users.
    pub users: u32,
    /// Threads of the tool's runtime.
    pub threads: u32,
    /// Requested measured period, in seconds.
    pub duration_s: f64,
    /// Warm-up before it, in seconds.
    pub warmup_s: f64,
    /// The measured period as it ran: from its start until the last request in flight at its
    /// end finished (or until an interruption).
    pub elapsed_s: f64,
    /// Whether the run was cut short (`SIGINT`, as from Ctrl-C, or `SIGTERM`).
    pub interrupted: bool,
    /// Request figures.
    #[serde(flatten)]
    pub summary: Summary,
    /// Orders created.
    pub orders: Orders,
    /// The tool's own CPU use over the measured period.
    pub cpu: Option<CpuUse>,
    /// The spawned servers' CPU use over the same period, every instance together.
    pub server_cpu: Option<CpuUse>,
}

fn latency_columns(f: &mut fmt::Formatter<'_>, latency: Option<&Latency>) -> fmt::Result {
    match latency {
        Some(l) => write!(f, " {:>9.2} {:>9.2} {:>9.2} {:>9.2}", l.p50, l.p95, l.p99, l.max),
        None => write!(f, " {:>9} {:>9} {:>9} {:>9}", "-", "-", "-", "-"),
    }
}

fn cpu_line(f: &mut fmt::Formatter<'_>, who: &str, cpu: &CpuUse) -> fmt::Result {
    writeln!(
        f,
        "cpu ({who}): {:.2} s user + {:.2} s sys = {:.2} s, {:.1} % of one core",
        cpu.user_s, cpu.sys_s, cpu.total_s, cpu.percent_of_one_core
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = &self.summary;
        let warmup = if self.warmup_s > 0.0 {
            format!("after {:.1} s of warm-up", self.warmup_s)
        } else {
            "no warm-up".to_owned()
        };
        writeln!(
            f,
            "omniman-loadgen: {} users for {:.1} s ({warmup}), channel {}, {} ({} thread{})",
            self.users,
            self.duration_s,
            self.channel,
            self.base_urls.join(", "),
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        )?;
        if let Some(spawned) = &self.spawned {
            writeln!(f, "server: {} on {}, {}", spawned.binary, spawned.backend, spawned.database)?;
        }
        if self.interrupted {
            writeln!(f, "interrupted (SIGINT or SIGTERM): the figures cover the time until then")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{} requests in {:.2} s: {:.1} req/s, {} failed",
            summary.requests, self.elapsed_s, summary.throughput_rps, summary.failures.total
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<16} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "task", "requests", "failed", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        )?;
        let all = [("all", summary.requests, summary.failures.total, summary.throughput_rps, summary.latency_ms)];
        let rows = summary.tasks.iter().map(|(name, t)| (name, t.requests, t.failures, t.throughput_rps, t.latency_ms));
        for (name, requests, failures, rps, latency) in rows.chain(all) {
            write!(f, "{name:<16} {requests:>9} {failures:>7} {rps:>9.1}")?;
            latency_columns(f, latency.as_ref())?;
            writeln!(f)?;
        }
        writeln!(f)?;
        let failures = &summary.failures;
        let mut kinds: Vec<String> =
            failures.by_status.iter().map(|(status, n)| format!("HTTP {status} × {n}")).collect();
        kinds.extend(failures.transport.iter().map(|(kind, n)| format!("transport {kind} × {n}")));
        if failures.invalid_body > 0 {
            kinds.push(format!("invalid body × {}", failures.invalid_body));
        }
        if kinds.is_empty() {
            writeln!(f, "failures: none")?;
        } else {
            writeln!(f, "failures: {}", kinds.join(", "))?;
        }
        write!(f, "orders: {} committed", self.orders.committed)?;
        if self.orders.committed_in_run != self.orders.committed {
            write!(f, " ({} with the warm-up)", self.orders.committed_in_run)?;
        }
        match self.orders.on_server {
            Some(n) => writeln!(f, "; the server holds {n}")?,
            None => writeln!(f)?,
        }
        if let Some(cpu) = &self.cpu {
            cpu_line(f, "loadgen", cpu)?;
        }
        if let Some(cpu) = &self.server_cpu {
            cpu_line(f, "server", cpu)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn requests_failures_and_latencies_are_counted_by_task() {
        let mut stats = Stats::default();
        for i in 1..=100 {
            stats.record(Task::ModifySession, ms(i), Ok(()));
        }
        stats.record(Task::CreateSession, ms(3), Ok(()));
        stats.record(Task::CreateSession, ms(5), Err(Failure::Status(503)));
        stats.record(Task::CreateSession, ms(7), Err(Failure::InvalidBody));
        stats.record(Task::CommitSession, ms(30_000), Err(Failure::Transport("timeout")));
        stats.record(Task::CommitSession, ms(2), Err(Failure::Status(409)));
        stats.record(Task::CommitSession, ms(4), Err(Failure::Status(409)));

        let summary = stats.summary(Duration::from_secs(2));
        assert_eq!(summary.requests, 106);
        assert!((summary.throughput_rps - 53.0).abs() < 1e-9);
        assert_eq!(summary.failures.total, 5);
        assert_eq!(summary.failures.by_status, BTreeMap::from([("409".to_owned(), 2), ("503".to_owned(), 1)]));
        assert_eq!(summary.failures.transport, BTreeMap::from([("timeout".to_owned(), 1)]));
        assert_eq!(summary.failures.invalid_body, 1);

        let modify = summary.tasks.modify_session.latency_ms.unwrap();
        assert!((modify.p50 - 50.0).abs() < 0.1, "{modify:?}");
        assert!((modify.p99 - 99.0).abs() < 0.1, "{modify:?}");
        assert!((modify.max - 100.0).abs() < 0.1, "{modify:?}");
        assert!((modify.mean - 50.5).abs() < 0.1, "{modify:?}");
        // The timed-out commit has no latency: only the two answered ones count.
        let commit = summary.tasks.commit_session.latency_ms.unwrap();
        assert!((commit.max - 4.0).abs() < 0.01, "{commit:?}");
        assert_eq!((summary.tasks.commit_session.requests, summary.tasks.commit_session.failures), (3, 3));
        let all = summary.latency_ms.unwrap();
        assert!(all.p50 <= all.p95 && all.p95 <= all.p99 && all.p99 <= all.max);
        assert!((all.max - 100.0).abs() < 0.1);
    }

    #[test]
    fn a_task_without_answers_has_no_latency() {
        let mut stats = Stats::default();
        stats.record(Task::CreateSession, ms(1), Err(Failure::Transport("connect")));
        let summary = stats.summary(Duration::ZERO);
        assert_eq!(summary.latency_ms, None);
        assert_eq!(summary.tasks.create_session.latency_ms, None);
        assert!(summary.throughput_rps.abs() < f64::EPSILON);
    }

    #[test]
    fn the_text_report_lists_every_task_and_the_failures() {
        let mut stats = Stats::default();
        stats.record(Task::CreateSession, ms(2), Ok(()));
        stats.record(Task::CommitSession, ms(3), Err(Failure::Status(409)));
        stats.record(Task::ModifySession, ms(1), Err(Failure::Transport("connect")));
        let report = Report {
            base_urls: vec!["http://127.0.0.1:8000".to_owned()],
            channel: "web".to_owned(),
            spawned: None,
            users: 2,
            threads: 1,
            duration_s: 1.0,
            warmup_s: 0.0,
            elapsed_s: 1.0,
            interrupted: false,
            summary: stats.summary(Duration::from_secs(1)),
            orders: Orders { committed: 0, committed_in_run: 0, on_server: None },
            cpu: Some(CpuUse { user_s: 0.25, sys_s: 0.25, total_s: 0.5, percent_of_one_core: 50.0 }),
            server_cpu: None,
        };
        let text = report.to_string();
        for expected in [
            "2 users for 1.0 s (no warm-up), channel web",
            "3 requests in 1.00 s: 3.0 req/s, 2 failed",
            "create_session",
            "modify_session",
            "commit_session",
            "failures: HTTP 409 × 1, transport connect × 1",
            "cpu (loadgen): 0.25 s user + 0.25 s sys = 0.50 s, 50.0 % of one core",
        ] {
            assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["requests"], 3);
        assert_eq!(json["failures"]["by_status"]["409"], 1);
        assert_eq!(json["tasks"]["modify_session"]["latency_ms"], serde_json::Value::Null);
        assert_eq!(json["server_cpu"], serde_json::Value::Null);
    }
}
