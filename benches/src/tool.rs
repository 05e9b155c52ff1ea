//! What both command-line tools do around their run: a Tokio runtime of the asked size, the
//! report printed as text or one JSON object, and the exit code.

use std::fmt::Display;
use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;

use serde::Serialize;

/// Runs `run` on a runtime of `threads` threads (1: a single-threaded one) and prints its report
/// (`json`: one JSON object). A failed run is printed after `name`; it and a failed print are
/// `Err(ExitCode::FAILURE)`. The printed report is returned for the caller's own checks.
pub fn drive<R, F>(name: &str, threads: u32, json: bool, run: F) -> Result<R, ExitCode>
where
    R: Serialize + Display,
    F: Future<Output = anyhow::Result<R>>,
{
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        let threads = usize::try_from(threads).unwrap_or(1);
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let report = match runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(run)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("{name}: {error:#}");
            return Err(ExitCode::FAILURE);
        }
    };
    let text =
        if json { serde_json::to_string(&report).expect("the report serialises") + "\n" } else { report.to_string() };
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        return Err(ExitCode::FAILURE);
    }
    Ok(report)
}
