//! `omniman-loadgen`, the HTTP load tool: virtual users run the seed workload (see
//! [`workload`]) against an Omniman server for a fixed time, and the run is reported as text or
//! JSON ([`Report`]). See `docs/performance.md`, "The load tool".
//!
//! The tool runs on a single-threaded runtime unless `--threads` says otherwise. All users
//! share one HTTP/1.1 client whose keep-alive pool holds one connection per user; the bodies of
//! `create_session` and `modify_session` are built once and shared, so a request costs its URL,
//! its commit body (which carries a unique idempotency key) and what the client itself
//! allocates.

pub mod args;
pub mod cpu;
pub(crate) mod spawn;
pub mod stats;
pub mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use reqwest::Url;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use self::args::Args;
use self::cpu::{CpuTime, CpuUse};
use self::spawn::{SpawnOptions, SpawnedServer};
pub use self::stats::Report;
use self::stats::{Orders, Summary};
use self::workload::Workload;

/// Set once the process is asked to stop (`SIGINT`, `SIGTERM`).
#[derive(Debug, Default)]
pub(crate) struct Interrupt {
    set: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// An interrupt that a background task sets on `SIGINT` or `SIGTERM`.
    pub(crate) fn listen() -> Arc<Interrupt> {
        let interrupt = Arc::new(Interrupt::default());
        let setter = Arc::clone(&interrupt);
        tokio::spawn(async move {
            signalled().await;
            setter.set.store(true, Ordering::Relaxed);
            setter.notify.notify_waiters();
        });
        interrupt
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }

    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// Resolves on `SIGINT` (Ctrl-C) or `SIGTERM`; never when they cannot be listened to.
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the load `args` describe and reports it. Must run inside a Tokio runtime with I/O and
/// time enabled. Progress goes to stderr.
pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let interrupt = Interrupt::listen();
    let mut servers = Vec::new();
    let (base_urls, token) = if args.spawn {
        let options = SpawnOptions::from(args);
        let start = async {
            let first = SpawnedServer::start(&options).await?;
            let mut started = Vec::new();
            for _ in 1..args.instances {
                started.push(first.start_another(&options).await?);
            }
            started.insert(0, first);
            anyhow::Ok(started)
        };
        servers = tokio::select! {
            started = start => started?,
            () = interrupt.wait() => anyhow::bail!("interrupted while starting the server"),
        };
        (servers.iter().map(|s| s.base_url.clone()).collect::<Vec<_>>(), servers[0].token.clone())
    } else {
        let urls = args.base_urls.iter().map(|url| base_url(url)).collect::<anyhow::Result<Vec<_>>>()?;
        (urls, args.token.clone().unwrap_or_default())
    };
    let client = workload::client(&token, args.users, args.timeout)?;
    eprintln!(
        "omniman-loadgen: {} users for {:.1} s{} against {}",
        args.users,
        args.duration.as_secs_f64(),
        if args.warmup.is_zero() {
            String::new()
        } else {
            format!(" after {:.1} s of warm-up", args.warmup.as_secs_f64())
        },
        base_urls.join(", ")
    );
    let pids: Vec<u32> = servers.iter().filter_map(SpawnedServer::pid).collect();
    let measured = measure(args, &base_urls, client.clone(), &pids, &interrupt).await?;

    let mut orders = measured.orders;
    let mut spawned = None;
    if let Some(first) = servers.first() {
        // Its database was new: every order it lists came from this run.
        match count_orders(&client, &base_urls[0], &args.channel).await {
            Ok(count) => orders.on_server = Some(count),
            Err(error) => eprintln!("omniman-loadgen: warning: could not count the server's orders: {error:#}"),
        }
        spawned = Some(first.info.clone());
        // Closes the pooled connections, which the servers would otherwise wait for.
        drop(client);
        // The first instance last: it owns the database, dropped with it.
        for mut server in servers.into_iter().rev() {
            if let Err(error) = server.stop().await {
                eprintln!("omniman-loadgen: warning: {error:#}");
            }
        }
    }
    Ok(Report {
        base_urls,
        channel: args.channel.clone(),
        spawned,
        users: args.users,
        threads: args.threads,
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        elapsed_s: stats::round(measured.elapsed.as_secs_f64(), 6),
        interrupted: measured.interrupted,
        summary: measured.summary,
        orders,
        cpu: measured.cpu,
        server_cpu: measured.server_cpu,
    })
}

/// `--base-url` checked and without a trailing `/`.
fn base_url(text: &str) -> anyhow::Result<String> {
    let url = Url::parse(text).with_context(|| format!("--base-url {text} is not a URL"))?;
    anyhow::ensure!(matches!(url.scheme(), "http" | "https"), "--base-url must be http:// or https://, not {text}");
    anyhow::ensure!(url.query().is_none() && url.fragment().is_none(), "--base-url takes no query: {text}");
    Ok(text.trim_end_matches('/').to_owned())
}

/// What the users measured.
struct Measured {
    summary: Summary,
    elapsed: std::time::Duration,
    orders: Orders,
    interrupted: bool,
    cpu: Option<CpuUse>,
    server_cpu: Option<CpuUse>,
}

/// CPU times at one instant: the tool's and the spawned servers' together.
type CpuSample = (Option<CpuTime>, Option<CpuTime>);

fn sample_cpu(server_pids: &[u32]) -> CpuSample {
    let servers = server_pids.iter().map(|pid| CpuTime::of_process(*pid)).sum::<Option<CpuTime>>();
    (CpuTime::of_self(), servers.filter(|_| !server_pids.is_empty()))
}

/// Runs the users through the warm-up and the measured period.
async fn measure(
    args: &Args,
    base_urls: &[String],
    client: reqwest::Client,
    server_pids: &[u32],
    interrupt: &Arc<Interrupt>,
) -> anyhow::Result<Measured> {
    let start = Instant::now();
    let measure_from = start + args.warmup;
    let deadline = measure_from + args.duration;
    let run: u64 = rand::random();
    let workload = Arc::new(Workload::new(
        client,
        base_urls,
        &args.channel,
        run,
        (measure_from, deadline),
        Arc::clone(interrupt),
    )?);
    let pids = server_pids.to_vec();
    // The CPU counters at the start of the measured period.
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from).await;
        sample_cpu(&pids)
    });
    let users: Vec<_> = (0..args.users)
        .map(|id| tokio::spawn(workload::run_user(Arc::clone(&workload), id, run.wrapping_add(u64::from(id)))))
        .collect();
    for user in users {
        user.await.context("a virtual user failed")?;
    }
    let end = Instant::now();
    let (cpu_end, server_end) = sample_cpu(server_pids);
    let (cpu_start, server_start) = if sampler.is_finished() {
        sampler.await.context("the CPU sampler failed")?
    } else {
        // Interrupted during the warm-up: nothing was measured.
        sampler.abort();
        (None, None)
    };
    let elapsed = end.saturating_duration_since(measure_from);
    let (stats, committed, committed_in_run) = workload.take_results();
    let used = |from: Option<CpuTime>, to: Option<CpuTime>| Some(to?.since(from?, elapsed));
    Ok(Measured {
        summary: stats.summary(elapsed),
        elapsed,
        orders: Orders { committed, committed_in_run, on_server: None },
        interrupted: interrupt.is_set(),
        cpu: used(cpu_start, cpu_end),
        server_cpu: used(server_start, server_end),
    })
}

/// A page of `GET /api/orders`.
#[derive(Deserialize)]
struct OrdersPage {
    next: Option<String>,
    results: Vec<IgnoredAny>,
}

/// How many orders of `channel` the server lists, following `next` to the last page.
async fn count_orders(client: &reqwest::Client, base_url: &str, channel: &str) -> anyhow::Result<u64> {
    let mut url =
        Url::parse_with_params(&format!("{base_url}/api/orders"), [("channel_code", channel), ("page_size", "100")])?;
    let mut count = 0;
    loop {
        let response = client.get(url.clone()).send().await?.error_for_status()?;
        let page: OrdersPage = serde_json::from_slice(&response.bytes().await?)
            .with_context(|| format!("GET {url} answered something that is not a page of orders"))?;
        count += page.results.len() as u64;
        match page.next {
            // Relative unless the server has a public URL: resolved against the page's own URL.
            Some(next) => url = url.join(&next).with_context(|| format!("invalid next link {next}"))?,
            None => return Ok(count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_lose_their_trailing_slash() {
        assert_eq!(base_url("http://127.0.0.1:8000/").unwrap(), "http://127.0.0.1:8000");
        assert_eq!(base_url("https://shop.test/omniman").unwrap(), "https://shop.test/omniman");
        assert!(base_url("127.0.0.1:8000").is_err());
        assert!(base_url("ftp://127.0.0.1").is_err());
        assert!(base_url("http://127.0.0.1:8000/?x=1").is_err());
    }
}
