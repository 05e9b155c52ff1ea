//! Runs the real `omniman` binary for end-to-end tests.

// `allow`, not `expect`: each test binary uses a different subset of these helpers, so in
// some of them nothing is dead and an `expect` would be unfulfilled.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_omniman");

/// Runs `omniman ARGS --database-url URL` to completion.
pub fn cli(url: &str, args: &[&str]) -> Output {
    let output = Command::new(BIN).args(args).args(["--database-url", url]).output().expect("omniman runs");
    assert!(
        output.status.success(),
        "omniman {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// stdout of a successful command, trimmed.
pub fn cli_out(url: &str, args: &[&str]) -> String {
    String::from_utf8_lossy(&cli(url, args).stdout).trim().to_owned()
}

/// Writes `channels` (a JSON list) to a file and applies it.
pub fn apply_channels(url: &str, dir: &Path, channels: &Value) {
    let file = dir.join(format!("channels-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(channels).unwrap()).unwrap();
    cli(url, &["channels", "apply", file.to_str().unwrap()]);
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `omniman` process, killed on drop.
pub struct Running {
    pub child: Child,
    pub base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// `omniman serve` on a free port; waits until `/api/health` answers.
    pub async fn serve(url: &str, extra: &[&str]) -> Running {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args(["serve", "--bind", &bind, "--database-url", url, "--http-threads", "2"])
            .env("OMNIMAN_LOG", "warn")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("omniman serve starts");
        let running = Running { child, base: format!("http://{bind}") };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/api/health", running.base)).send().await {
                if r.status().is_success() {
                    return running;
                }
            }
            assert!(Instant::now() < deadline, "omniman serve did not come up on {bind}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `omniman worker ARGS` in the background.
    pub fn worker(url: &str, extra: &[&str]) -> Running {
        let child = Command::new(BIN)
            .args(["worker", "--database-url", url])
            .env("OMNIMAN_LOG", "warn")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("omniman worker starts");
        Running { child, base: String::new() }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap()
    }
}

/// A JSON API client with a bearer token.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    client: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Api {
        Api { base: format!("{base}/api"), token: token.to_owned(), client: reqwest::Client::new() }
    }

    /// GET; a refused connection (server not listening yet) is status 0.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        match self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) if e.is_connect() => (0, Value::Null),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r =
            self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` until `done` holds for its body, for at most `within`.
    pub async fn wait_for(&self, path: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.get(path).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} did not reach the expected state in {within:?}: {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A temporary directory for files and SQLite databases.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `sqlite://<dir>/<name>.db`.
pub fn sqlite_url(dir: &Path, name: &str) -> String {
    let path: PathBuf = dir.join(format!("{name}.db"));
    format!("sqlite://{}", path.display())
}

/// Environment variables the binary reads; cleared by [`command`] so the caller's environment
/// cannot leak into a test.
pub const OMNIMAN_ENV: &[&str] = &[
    "DATABASE_URL",
    "OMNIMAN_BIND",
    "OMNIMAN_WORKERS",
    "OMNIMAN_LOG",
    "OMNIMAN_LOG_FORMAT",
    "OMNIMAN_BODY_LIMIT",
    "OMNIMAN_SLOW_REQUEST_MS",
    "OMNIMAN_RATE_LIMIT_DEFAULT",
    "OMNIMAN_HTTP_THREADS",
    "OMNIMAN_CURRENCY",
    "OMNIMAN_REDIS_URL",
    "OMNIMAN_REDIS_PREFIX",
    "OMNIMAN_CONSOLE_SECRET",
];

/// `omniman ARGS` with a clean environment (see [`OMNIMAN_ENV`]) plus `envs`.
pub fn command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for name in OMNIMAN_ENV {
        command.env_remove(name);
    }
    command.envs(envs.iter().copied());
    command
}

/// Runs `command` to completion: (success, stdout, stderr).
pub fn run(mut command: Command) -> (bool, String, String) {
    let output = command.output().expect("omniman runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A pipe read on a thread as the child writes it (so a chatty child never blocks on a full pipe).
pub struct Capture {
    text: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    pub fn start(mut pipe: impl std::io::Read + Send + 'static) -> Capture {
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = text.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Capture { text, reader: Some(reader) }
    }

    /// What was read so far.
    pub fn so_far(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Everything, once the child closed the pipe (call after it exited).
    pub fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.so_far()
    }
}

/// A server started by [`Running::spawn_captured`]: the process and its output.
pub struct Captured {
    pub server: Running,
    pub stdout: Capture,
    pub stderr: Capture,
}

impl Running {
    /// Spawns `command` (an `omniman serve …` answering on `bind`) with stdout and stderr
    /// captured, and waits until `/api/health` answers; panics with the output if it exits first.
    pub async fn spawn_captured(mut command: Command, bind: &str) -> Captured {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("omniman starts");
        let stdout = Capture::start(child.stdout.take().unwrap());
        let stderr = Capture::start(child.stderr.take().unwrap());
        let mut captured = Captured { server: Running { child, base: format!("http://{bind}") }, stdout, stderr };
        // No idle keep-alive connection left behind: it would hold up a graceful stop.
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/api/health", captured.server.base)).send().await {
                if r.status().is_success() {
                    return captured;
                }
            }
            if let Ok(Some(status)) = captured.server.child.try_wait() {
                panic!("omniman exited with {status} before answering on {bind}: {}", captured.stderr.so_far());
            }
            assert!(Instant::now() < deadline, "omniman did not come up on {bind}: {}", captured.stderr.so_far());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Captured {
    /// SIGTERM, a clean exit, then (stdout, stderr) in full.
    pub fn stop(self) -> (String, String) {
        let Captured { server, stdout, stderr } = self;
        let status = server.stop();
        let (stdout, stderr) = (stdout.finish(), stderr.finish());
        assert!(status.success(), "omniman did not stop cleanly ({status}): {stderr}");
        (stdout, stderr)
    }
}

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Received {
    /// Headers, names in lower case.
    pub headers: std::collections::HashMap<String, String>,
    /// The body as sent.
    pub body: String,
}

/// A webhook receiver on loopback: answers each request with the next status of its script
/// (then 200) and keeps what it received.
pub struct Receiver {
    pub url: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> Receiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (log, script) = (received.clone(), script.to_vec());
        let task = tokio::spawn(async move {
            let mut script = script.into_iter();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut bytes = Vec::new();
                let mut buf = [0_u8; 8192];
                let request = loop {
                    let Ok(n) = socket.read(&mut buf).await else { break None };
                    bytes.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let headers: std::collections::HashMap<String, String> = text[..end]
                            .lines()
                            .skip(1)
                            .filter_map(|l| l.split_once(':'))
                            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                            .collect();
                        let length = headers.get("content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
                        if bytes.len() >= end + 4 + length {
                            let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + length]).into_owned();
                            break Some(Received { headers, body });
                        }
                    }
                    if n == 0 {
                        break None;
                    }
                };
                let status = script.next().unwrap_or(200);
                if let Some(request) = request {
                    log.lock().unwrap().push(request);
                }
                let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        Receiver { url, received, task }
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until it has received `n` requests; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "{} of {n} webhook requests arrived", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
