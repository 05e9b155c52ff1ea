//! Project automation for the Omniman workspace, run as `cargo xtask <task>`.
//!
//! The checks live in Rust rather than in shell scripts so that a developer's
//! `cargo xtask ci` and the CI entry point (`.ci/run`) execute exactly the same
//! steps in the same order. Every step shells out to the same `cargo` that
//! launched this binary, from the workspace root, so toolchain overrides and
//! `CARGO_TARGET_DIR` are honoured.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use clap::{Parser, Subcommand};

/// Crates that must never end up in `omniman-core`'s dependency graph.
///
/// The core crate is the pure domain model: no async runtime, no I/O, no
/// database or cache drivers, no web framework. Adapters depend on the core,
/// never the other way round. Names are exact package names as printed by
/// `cargo tree`.
const FORBIDDEN_IN_CORE: &[&str] =
    &["tokio", "diesel", "diesel-async", "redis", "actix-web", "actix-rt", "mio", "deadpool"];

/// The crate whose purity `purity` checks.
const CORE_CRATE: &str = "omniman-core";

/// Dependency edge kinds inspected by the purity check: what the core links
/// against at run time and what its build scripts pull in.
const PURITY_EDGE_KINDS: &[&str] = &["normal", "build"];

/// The package holding the workspace's benchmarks.
const BENCH_PACKAGE: &str = "omniman-benches";

/// The HTTP load tool, a binary of [`BENCH_PACKAGE`].
const LOAD_BIN: &str = "omniman-loadgen";

/// The package of the `omniman` binary that `load --spawn` starts.
const SERVER_PACKAGE: &str = "omniman-server";

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Omniman workspace automation",
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run every CI check in order, stopping at the first failure:
    /// fmt, core purity, dependencies' MSRV, cargo-deny, clippy, rustdoc, tests, MSRV build.
    ///
    /// Arguments after `--` are appended to `cargo test --workspace`, e.g.
    /// `cargo xtask ci -- -- --nocapture`.
    Ci {
        /// Extra arguments for `cargo test --workspace`.
        #[arg(last = true, value_name = "TEST_ARGS")]
        test_args: Vec<OsString>,
    },
    /// Run the benchmarks: `cargo bench -p omniman-benches [ARGS...]`.
    Bench {
        /// Extra arguments for `cargo bench` (use `-- ARGS` to reach the
        /// benchmark harness).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Check that omniman-core depends on no runtime, I/O or driver crate.
    Purity,
    /// Run the HTTP load tool in release mode:
    /// `cargo run --release -p omniman-benches --bin omniman-loadgen -- ARGS...`.
    ///
    /// With `--spawn` (and no `--server-bin`), `cargo build --release -p omniman-server` runs
    /// first, so that the tool finds a current `omniman`. This task's own lines go to stderr:
    /// stdout is the tool's, e.g. its `--json` report. `cargo xtask load -- --help` lists the
    /// tool's flags.
    Load {
        /// Arguments for omniman-loadgen.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
}

/// A step failed; carries the exit code `cargo xtask` should end with.
#[derive(Debug)]
struct Failed(u8);

type StepResult = Result<(), Failed>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ws = Workspace::locate();
    let result = match cli.task {
        Task::Ci { test_args } => ci(&ws, &test_args),
        Task::Bench { args } => bench(&ws, &args),
        Task::Purity => purity(&ws),
        Task::Load { args } => load(&ws, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(code)) => ExitCode::from(code),
    }
}

/// The full pipeline. The order runs cheapest first so that a formatting slip
/// is reported in seconds rather than after a full test build.
fn ci(ws: &Workspace, test_args: &[OsString]) -> StepResult {
    let started = Instant::now();
    ws.run_cargo(&["fmt", "--all", "--", "--check"])?;
    purity(ws)?;
    let msrv = dependencies_msrv(ws)?;
    deny(ws)?;
    ws.run_cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    // After clippy, whose check-mode dependency metadata rustdoc reuses. RUSTDOCFLAGS is set on
    // this step only: globally it would also change how `cargo test` builds doctests.
    let mut doc = ws.cargo(&["doc", "--workspace", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    run_step(doc)?;
    // This must stay the README's test command: CI runs what developers run.
    let mut test = ws.cargo(&["test", "--workspace"]);
    test.args(test_args);
    run_step(test)?;
    msrv_build(ws, &msrv)?;
    println!("==> all CI checks passed in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

fn bench(ws: &Workspace, args: &[OsString]) -> StepResult {
    let mut cmd = ws.cargo(&["bench", "-p", BENCH_PACKAGE]);
    cmd.args(args);
    run_step(cmd)
}

fn load(ws: &Workspace, args: &[OsString]) -> StepResult {
    if load_builds_server(args) {
        let mut build = ws.cargo(&["build", "--release", "-p", SERVER_PACKAGE]);
        clear_run_env(&mut build);
        run_step_quietly(build)?;
    }
    let mut cmd = ws.cargo(&["run", "--release", "-p", BENCH_PACKAGE, "--bin", LOAD_BIN, "--"]);
    clear_run_env(&mut cmd);
    cmd.args(args);
    run_step_quietly(cmd)
}

/// Removes the variables `cargo run` set for this process (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, ...) from `cmd`'s environment. Some build scripts (ring's) rebuild when one
/// of them changes, so without this the release build that `load` shares with a plain
/// `cargo build --release` would be rebuilt each time one follows the other.
fn clear_run_env(cmd: &mut Command) {
    for (name, _) in env::vars_os() {
        if name.to_str().is_some_and(is_run_env) {
            cmd.env_remove(name);
        }
    }
}

/// Whether `name` is one of the variables `cargo run` sets for the program it runs (`CARGO`,
/// the cargo binary, is kept: the steps use it).
fn is_run_env(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

/// Whether `cargo xtask load ARGS` must build the server first: the tool is to start one
/// (`--spawn`) and was not told which binary (`--server-bin`).
fn load_builds_server(args: &[OsString]) -> bool {
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.to_str().is_some_and(|a| a.strip_prefix(flag).is_some_and(|r| r.starts_with('='))))
    };
    has("--spawn") && !has("--server-bin")
}

/// Fails if any forbidden crate is reachable from `omniman-core` through
/// normal or build dependency edges (dev-dependencies are allowed: tests may
/// use a runtime).
fn purity(ws: &Workspace) -> StepResult {
    let mut found: Vec<String> = Vec::new();
    for kind in PURITY_EDGE_KINDS {
        let cmd = ws.cargo(&["tree", "-p", CORE_CRATE, "-e", kind, "--prefix", "none"]);
        let tree = capture_step(cmd)?;
        for name in forbidden_crates(&tree) {
            let entry = format!("{name} (via {kind} dependencies)");
            if !found.contains(&entry) {
                found.push(entry);
            }
        }
    }
    if found.is_empty() {
        println!("    {CORE_CRATE} is pure: none of {FORBIDDEN_IN_CORE:?} in its dependency graph");
        return Ok(());
    }
    let mut msg = format!("error: {CORE_CRATE} must not depend on these crates:\n");
    for entry in &found {
        let _ = writeln!(msg, "    - {entry}");
    }
    let _ = write!(msg, "hint: `cargo tree -p {CORE_CRATE} -e normal,build -i <crate>` shows what pulls it in");
    eprintln!("{msg}");
    Err(Failed(1))
}

/// Returns the forbidden crate names listed in `cargo tree --prefix none`
/// output, in first-seen order and without duplicates. Each line starts with
/// the package name (`name vX.Y.Z (...)`), so only the first word is compared,
/// exactly: `tokio-util` or `redis-protocol` do not match `tokio` or `redis`.
fn forbidden_crates(tree: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for line in tree.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if FORBIDDEN_IN_CORE.contains(&name) && !found.contains(&name) {
            found.push(name);
        }
    }
    found
}

/// `cargo deny` with the committed deny.toml: licences, bans and sources always; advisories when
/// the RustSec database can be fetched (it lives on GitHub). A missing cargo-deny, or an
/// unreachable advisory database, is a loud note rather than a failure: `.ci/run` installs the
/// tool, and a machine without network cannot be asked for the advisories.
fn deny(ws: &Workspace) -> StepResult {
    let installed = ws
        .cargo(&["deny", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        println!("!!! SKIPPED: cargo-deny is not installed; `cargo install --locked cargo-deny` enables");
        println!("!!! the advisories, licences, bans and sources check (deny.toml).");
        return Ok(());
    }
    let mut fetch = ws.cargo(&["deny", "fetch", "db"]);
    fetch.stdout(Stdio::null()).stderr(Stdio::null());
    let fetched = fetch.status().is_ok_and(|s| s.success());
    if fetched {
        return ws.run_cargo(&["deny", "--locked", "check", "--disable-fetch"]);
    }
    println!("!!! the RustSec advisory database could not be fetched (no network to GitHub?):");
    println!("!!! checking licences, bans and sources only; advisories are NOT checked.");
    ws.run_cargo(&["deny", "--locked", "check", "bans", "licenses", "sources"])
}

/// Checks that no package in Cargo.lock declares a `rust-version` above the workspace's, so the
/// declared MSRV is not a promise the dependencies already break. Returns the workspace's.
fn dependencies_msrv(ws: &Workspace) -> Result<String, Failed> {
    let json = capture_step(ws.cargo(&["metadata", "--format-version", "1", "--locked"]))?;
    let metadata: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
        eprintln!("    FAILED: cargo metadata printed something that is not JSON: {e}");
        Failed(1)
    })?;
    let members: Vec<&str> =
        metadata["workspace_members"].as_array().into_iter().flatten().filter_map(|m| m.as_str()).collect();
    let mut ours: Option<&str> = None;
    let mut above = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let Some(version) = package["rust_version"].as_str() else { continue };
        if members.contains(&package["id"].as_str().unwrap_or_default()) {
            ours = Some(ours.map_or(version, |o| if rust_version(version) < rust_version(o) { version } else { o }));
        } else {
            above.push((version, package["name"].as_str().unwrap_or("?"), package["version"].as_str().unwrap_or("?")));
        }
    }
    let Some(ours) = ours else {
        eprintln!("    FAILED: the workspace declares no rust-version");
        return Err(Failed(1));
    };
    above.retain(|(version, ..)| rust_version(version) > rust_version(ours));
    if above.is_empty() {
        println!("    ok: no dependency needs a newer Rust than the declared rust-version {ours}");
        return Ok(ours.to_owned());
    }
    above.sort_unstable();
    eprintln!("    FAILED: these dependencies need a newer Rust than the declared rust-version {ours}:");
    for (version, name, package_version) in above {
        eprintln!("        {name} {package_version} needs {version}");
    }
    eprintln!("    raise `rust-version` in the root Cargo.toml, or pin older dependencies");
    Err(Failed(1))
}

/// `1.86` and `1.86.0` as comparable numbers; a part that is not a number counts as 0.
fn rust_version(version: &str) -> [u32; 3] {
    let mut parts = version.split('.').map(|p| p.parse().unwrap_or(0));
    [parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0)]
}

/// `cargo check --workspace` on the declared MSRV's toolchain when rustup has it; otherwise a
/// loud note, since installing a toolchain needs a network CI may not have.
fn msrv_build(ws: &Workspace, msrv: &str) -> StepResult {
    let installed = Command::new("rustup").args(["toolchain", "list"]).output();
    let toolchain = installed.ok().filter(|o| o.status.success()).and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .find(|name| msrv_toolchain_matches(name, msrv))
            .map(str::to_owned)
    });
    let Some(toolchain) = toolchain else {
        println!("!!! SKIPPED: the MSRV build needs the Rust {msrv} toolchain, which is not installed.");
        println!("!!! `rustup toolchain install {msrv} --profile minimal` enables this step; until then");
        println!("!!! only the dependencies' rust-version was checked, not that our code builds on {msrv}.");
        return Ok(());
    };
    // Through rustup rather than $CARGO, which is the current toolchain's cargo; the variables
    // the outer cargo set would otherwise pin the nested one to that toolchain.
    let mut cmd = Command::new("rustup");
    cmd.args(["run", &toolchain, "cargo", "check", "--workspace"])
        .current_dir(&ws.root)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN");
    run_step(cmd)
}

/// Whether rustup's toolchain `name` (`1.86.0-x86_64-unknown-linux-gnu`, `1.86-…`) is `msrv`.
fn msrv_toolchain_matches(name: &str, msrv: &str) -> bool {
    let version = name.split('-').next().unwrap_or_default();
    version == msrv || (msrv.matches('.').count() == 1 && version.strip_prefix(msrv).is_some_and(|r| r == ".0"))
}

/// Where and with which `cargo` the steps run.
#[derive(Debug)]
struct Workspace {
    root: PathBuf,
    cargo: OsString,
}

impl Workspace {
    fn locate() -> Self {
        // xtask/ sits directly under the workspace root; running from the root
        // makes every step independent of the caller's working directory.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask's manifest directory has a parent")
            .to_path_buf();
        // `cargo run` sets CARGO to the cargo binary that launched us, which
        // keeps a rustup toolchain override (`cargo +nightly xtask`) in force
        // for the nested invocations.
        let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        Self { root, cargo }
    }

    fn cargo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.args(args).current_dir(&self.root);
        cmd
    }

    fn run_cargo(&self, args: &[&str]) -> StepResult {
        run_step(self.cargo(args))
    }
}

/// Runs `cmd` with inherited stdio, framed by a header and its duration.
fn run_step(mut cmd: Command) -> StepResult {
    let label = header(&cmd);
    let started = Instant::now();
    let status = cmd.status();
    let secs = started.elapsed().as_secs_f64();
    match status {
        Ok(status) if status.success() => {
            println!("    ok: {label} ({secs:.1}s)");
            Ok(())
        }
        Ok(status) => {
            eprintln!("    FAILED: {label} ({secs:.1}s, {status})");
            Err(Failed(exit_code(status.code())))
        }
        Err(err) => {
            eprintln!("    FAILED: could not start {label}: {err}");
            Err(Failed(1))
        }
    }
}

/// Like [`run_step`], but its own lines go to stderr and only a failure is reported, so that
/// stdout carries nothing but the command's.
fn run_step_quietly(mut cmd: Command) -> StepResult {
    let label = label(&cmd);
    eprintln!("==> {label}");
    match cmd.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => {
            eprintln!("    FAILED: {label} ({status})");
            Err(Failed(exit_code(status.code())))
        }
        Err(err) => {
            eprintln!("    FAILED: could not start {label}: {err}");
            Err(Failed(1))
        }
    }
}

/// Like [`run_step`], but returns stdout (stderr still streams).
fn capture_step(mut cmd: Command) -> Result<String, Failed> {
    let label = header(&cmd);
    let started = Instant::now();
    let output = cmd.stderr(Stdio::inherit()).output();
    let secs = started.elapsed().as_secs_f64();
    match output {
        Ok(output) if output.status.success() => {
            println!("    ok: {label} ({secs:.1}s)");
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Ok(output) => {
            eprintln!("    FAILED: {label} ({secs:.1}s, {})", output.status);
            Err(Failed(exit_code(output.status.code())))
        }
        Err(err) => {
            eprintln!("    FAILED: could not start {label}: {err}");
            Err(Failed(1))
        }
    }
}

/// Prints the `==> cargo ...` header line for `cmd` and returns its label.
fn header(cmd: &Command) -> String {
    let label = label(cmd);
    println!("==> {label}");
    label
}

/// `cargo ARGS...` as a shell would read it.
fn label(cmd: &Command) -> String {
    let mut label = String::from("cargo");
    for arg in cmd.get_args() {
        label.push(' ');
        label.push_str(&shell_word(arg));
    }
    label
}

fn shell_word(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_=+./:,@%".contains(c)) {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Maps a child's exit code to ours; a signal or an out-of-range code
/// becomes 1 so that failure is never reported as success.
fn exit_code(code: Option<i32>) -> u8 {
    code.and_then(|c| u8::try_from(c).ok()).filter(|&c| c != 0).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purity_matches_first_word_exactly() {
        let tree = "\
omniman-core v0.1.0 (/work/main/crates/omniman-core)
serde v1.0.219
tokio-util v0.7.15
redis-protocol v5.0.1
mio v1.0.4
tokio v1.45.1
tokio v1.45.1 (*)
deadpool-runtime v0.1.4
";
        assert_eq!(forbidden_crates(tree), vec!["mio", "tokio"]);
    }

    #[test]
    fn purity_accepts_clean_tree() {
        let tree = "omniman-core v0.1.0 (/x)\nserde v1.0.219\n\nthiserror v2.0.12\n";
        assert!(forbidden_crates(tree).is_empty());
    }

    #[test]
    fn exit_code_never_reports_success_for_failure() {
        assert_eq!(exit_code(Some(101)), 101);
        assert_eq!(exit_code(Some(0)), 1);
        assert_eq!(exit_code(Some(-1)), 1);
        assert_eq!(exit_code(Some(300)), 1);
        assert_eq!(exit_code(None), 1);
    }

    #[test]
    fn shell_word_quotes_only_when_needed() {
        assert_eq!(shell_word(OsStr::new("--check")), "--check");
        assert_eq!(shell_word(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_word(OsStr::new("")), "''");
    }

    #[test]
    fn rust_versions_compare_as_numbers() {
        assert!(rust_version("1.86") > rust_version("1.85.1"));
        assert!(rust_version("1.100") > rust_version("1.99.9"));
        assert_eq!(rust_version("1.86"), rust_version("1.86.0"));
    }

    #[test]
    fn msrv_toolchain_names() {
        assert!(msrv_toolchain_matches("1.86.0-x86_64-unknown-linux-gnu", "1.86"));
        assert!(msrv_toolchain_matches("1.86-x86_64-unknown-linux-gnu", "1.86"));
        assert!(!msrv_toolchain_matches("1.86.1-x86_64-unknown-linux-gnu", "1.86"));
        assert!(!msrv_toolchain_matches("1.95.0-x86_64-unknown-linux-gnu", "1.86"));
        assert!(!msrv_toolchain_matches("stable-x86_64-unknown-linux-gnu", "1.86"));
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn ci_passes_test_args_after_double_dash() {
        let cli = Cli::try_parse_from(["xtask", "ci", "--", "--", "--nocapture"]).unwrap();
        match cli.task {
            Task::Ci { test_args } => assert_eq!(test_args, ["--", "--nocapture"]),
            other => panic!("unexpected task {other:?}"),
        }
    }

    #[test]
    fn bench_passes_hyphenated_args() {
        let cli = Cli::try_parse_from(["xtask", "bench", "--bench", "ingest", "--", "--quick"]).unwrap();
        match cli.task {
            Task::Bench { args } => assert_eq!(args, ["--bench", "ingest", "--", "--quick"]),
            other => panic!("unexpected task {other:?}"),
        }
    }

    fn load_args(args: &[&str]) -> Vec<OsString> {
        let cli = Cli::try_parse_from(["xtask", "load"].iter().chain(args)).unwrap();
        match cli.task {
            Task::Load { args } => args,
            other => panic!("unexpected task {other:?}"),
        }
    }

    #[test]
    fn load_passes_every_arg_to_the_tool() {
        let args = ["--spawn", "--users", "10", "--duration", "10", "--json", "--server-arg=--http-threads=1"];
        assert_eq!(load_args(&args), args);
        assert_eq!(load_args(&["--base-url", "http://127.0.0.1:8000", "--token", "omni_x"]).len(), 4);
        assert!(load_args(&[]).is_empty());
    }

    #[test]
    fn load_clears_only_what_cargo_run_set() {
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME", "CARGO_PKG_VERSION_MAJOR", "CARGO_BIN_NAME"] {
            assert!(is_run_env(name), "{name}");
        }
        for name in ["CARGO", "CARGO_TARGET_DIR", "CARGO_HOME", "CARGO_INCREMENTAL", "PATH", "DATABASE_URL"] {
            assert!(!is_run_env(name), "{name}");
        }
    }

    #[test]
    fn load_builds_the_server_only_for_spawn_without_a_binary() {
        let builds = |args: &[&str]| load_builds_server(&load_args(args));
        assert!(builds(&["--spawn", "--users", "4"]));
        assert!(builds(&["--users", "4", "--spawn", "--database-url", "postgres://localhost/postgres"]));
        assert!(!builds(&["--base-url", "http://127.0.0.1:8000", "--token", "t"]));
        assert!(!builds(&["--spawn", "--server-bin", "target/debug/omniman"]));
        assert!(!builds(&["--spawn", "--server-bin=target/debug/omniman"]));
        assert!(!builds(&["--spawner"]));
    }
}
