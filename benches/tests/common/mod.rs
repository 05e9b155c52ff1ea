//! What the tests of the tools share: the `omniman` binary they start, running a tool with a
//! time limit, and the PostgreSQL server they may use.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the `omniman` binary to start, instead of this build's.
const SERVER_BIN_ENV: &str = "OMNIMAN_SERVER_BIN";

/// The `omniman` binary: `$OMNIMAN_SERVER_BIN`, else the one in this test's profile directory
/// (`cargo test --workspace` builds it), built there first when it is missing.
pub(crate) fn server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os(SERVER_BIN_ENV) {
        return PathBuf::from(path);
    }
    // This test runs from <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("the test knows its path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test runs from <target>/<profile>/deps");
    let server = profile_dir.join(format!("omniman{}", std::env::consts::EXE_SUFFIX));
    if !server.is_file() {
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
        let target_dir = profile_dir.parent().expect("a profile directory has a parent");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "omniman-server"]).env("CARGO_TARGET_DIR", target_dir);
        match profile {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building omniman failed; set {SERVER_BIN_ENV} to a built omniman instead");
    }
    assert!(server.is_file(), "no omniman at {}; set {SERVER_BIN_ENV}", server.display());
    server
}

/// Runs `tool ARGS`, killing it after `limit`.
pub(crate) fn run_tool(tool: &str, args: &[&str], limit: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(tool)
        .args(args)
        .env_remove("OMNIMAN_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} starts: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            // SIGTERM would let it stop its server; SIGKILL leaves the server running, so ask
            // first.
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            std::thread::sleep(Duration::from_secs(5));
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{tool} {args:?} took over {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: std::fs::read(&out).unwrap(), stderr: std::fs::read(&err).unwrap() }
}

/// The PostgreSQL server the tests may create databases on (`OMNIMAN_TEST_DATABASE_URL`); `None`
/// (after saying so) outside CI when it is not set. Under `CI=true` it must be.
pub(crate) fn test_postgres() -> Option<String> {
    if let Ok(url) = std::env::var("OMNIMAN_TEST_DATABASE_URL") {
        return Some(url);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!in_ci, "OMNIMAN_TEST_DATABASE_URL must be set under CI");
    eprintln!("SKIPPED: OMNIMAN_TEST_DATABASE_URL is not set; this test needs PostgreSQL");
    None
}

/// The flags of `command` that the section `## {section}` of `docs/performance.md` does not
/// mention as `` `--flag ``.
pub(crate) fn undocumented_flags(command: &clap::Command, section: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/performance.md")).unwrap();
    let heading = format!("\n## {section}\n");
    let start = doc.find(&heading).unwrap_or_else(|| panic!("docs/performance.md has no section {heading:?}"));
    let rest = &doc[start + heading.len()..];
    let text = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|long| format!("`--{long}"))
        .filter(|flag| !text.contains(flag.as_str()))
        .collect()
}
