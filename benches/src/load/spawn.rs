//! `--spawn`: an `omniman serve --demo` of the tool's own, on a fresh database and a free
//! port, stopped (and its database dropped) when the run ends, however it ends short of a
//! `SIGKILL`.

use std::env;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::sync::oneshot;

use super::args::Args;
use super::stats::SpawnedInfo;

/// What `--spawn` starts: the flags of the tools that spawn a server (`omniman-loadgen`,
/// `omniman-eventbench`), without the rest of their command lines.
#[derive(Clone, Debug)]
pub(crate) struct SpawnOptions {
    /// The tool's name, which prefixes its progress lines.
    pub(crate) tool: &'static str,
    /// `--server-bin`.
    pub(crate) server_bin: Option<PathBuf>,
    /// `--database-url`.
    pub(crate) database_url: Option<String>,
    /// `--workers`.
    pub(crate) workers: Option<u32>,
    /// `--server-arg`, in order.
    pub(crate) server_args: Vec<String>,
}

impl From<&Args> for SpawnOptions {
    fn from(args: &Args) -> SpawnOptions {
        SpawnOptions {
            tool: "omniman-loadgen",
            server_bin: args.server_bin.clone(),
            database_url: args.database_url.clone(),
            workers: args.workers,
            server_args: args.server_args.clone(),
        }
    }
}

/// How long the server may take to print its token and to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the server may take to exit after `SIGTERM` before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `omniman serve --demo`; dropping it stops the server and removes its data.
#[derive(Debug)]
pub(crate) struct SpawnedServer {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base_url: String,
    /// The client token `--demo` printed.
    pub(crate) token: String,
    /// What the report says about the server.
    pub(crate) info: SpawnedInfo,
    /// The database it runs on, which further instances share.
    database_url: String,
    log: PathBuf,
    // Dropped after the server has stopped (`Drop` runs before the fields are dropped).
    postgres: Option<PgDatabase>,
    _dir: TempDir,
}

impl SpawnedServer {
    /// Starts the server `args` describe and waits until it is ready.
    pub(crate) async fn start(args: &SpawnOptions) -> anyhow::Result<SpawnedServer> {
        let binary = args.server_bin.clone().unwrap_or_else(default_server_bin);
        if !binary.is_file() {
            bail!(
                "no omniman binary at {}: build it with `cargo build --release -p omniman-server`, \
                 or pass --server-bin PATH",
                binary.display()
            );
        }
        let dir =
            tempfile::Builder::new().prefix("omniman-load-").tempdir().context("cannot make a temporary directory")?;
        let (database_url, postgres, backend, database) = match args.database_url.as_deref() {
            None => {
                let path = dir.path().join("omniman.db");
                (format!("sqlite://{}", path.display()), None, "sqlite", "a temporary file".to_owned())
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let db = PgDatabase::create(url, args.tool)?;
                let described = format!("database {} (dropped afterwards)", db.name);
                (db.url(), Some(db), "postgres", described)
            }
            Some(url) if url.starts_with("sqlite:") => (url.to_owned(), None, "sqlite", format!("{url} (kept)")),
            Some(url) => bail!("--database-url takes a postgres:// or sqlite:// URL, not {url}"),
        };
        let info = SpawnedInfo { binary: binary.display().to_string(), backend: backend.to_owned(), database };
        let mut server = SpawnedServer::launch(args, &binary, &database_url, dir, info, true)?;
        server.postgres = postgres;
        eprintln!("{}: started {} serve --demo on {} ({backend})", args.tool, binary.display(), server.base_url);
        server.token = server.read_token().await?;
        server.wait_until_ready().await?;
        Ok(server)
    }

    /// Starts one more instance on this server's database (without `--demo`: the first seeded
    /// it) and waits until it is ready; it answers to the same token.
    pub(crate) async fn start_another(&self, args: &SpawnOptions) -> anyhow::Result<SpawnedServer> {
        let binary = PathBuf::from(&self.info.binary);
        let dir =
            tempfile::Builder::new().prefix("omniman-load-").tempdir().context("cannot make a temporary directory")?;
        let mut server = SpawnedServer::launch(args, &binary, &self.database_url, dir, self.info.clone(), false)?;
        eprintln!("{}: started another {} serve on {}", args.tool, binary.display(), server.base_url);
        server.token.clone_from(&self.token);
        server.wait_until_ready().await?;
        Ok(server)
    }

    /// Spawns `binary serve` on a free port; the `first` instance runs with `--demo`, which
    /// seeds the database and prints the token.
    fn launch(
        args: &SpawnOptions,
        binary: &Path,
        database_url: &str,
        dir: TempDir,
        info: SpawnedInfo,
        first: bool,
    ) -> anyhow::Result<SpawnedServer> {
        let port = free_port()?;
        let bind = format!("127.0.0.1:{port}");
        let log = dir.path().join("server.log");
        let mut command = Command::new(binary);
        command.arg("serve");
        if first {
            command.arg("--demo");
        }
        command.args(["--bind", &bind, "--database-url", database_url]);
        if let Some(workers) = args.workers {
            command.args(["--workers", &workers.to_string()]);
        }
        command.args(&args.server_args);
        if env::var_os("OMNIMAN_LOG").is_none() {
            // The server logs every request at `info`; `warn` keeps its log (and its work) to
            // what goes wrong. Set OMNIMAN_LOG to measure with request logging.
            command.env("OMNIMAN_LOG", "warn");
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).context("cannot create the server's log file")?);
        // A process group of its own: Ctrl-C in a terminal reaches only the tool, which then
        // reports and stops the server itself.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(SpawnedServer {
            child: Some(child),
            base_url: format!("http://{bind}"),
            token: String::new(),
            info,
            database_url: database_url.to_owned(),
            log,
            postgres: None,
            _dir: dir,
        })
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The first line the server prints on stdout: the demo's client token.
    async fn read_token(&mut self) -> anyhow::Result<String> {
        let stdout = self.child.as_mut().and_then(|c| c.stdout.take()).context("the server's stdout is not piped")?;
        let (sender, receiver) = oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            if let Some(token) = lines.by_ref().find(|line| !line.trim().is_empty()) {
                let _ = sender.send(token.trim().to_owned());
            }
            // Whatever else it prints is read and dropped, so that it never blocks on a full pipe.
            lines.for_each(drop);
        });
        match tokio::time::timeout(START_TIMEOUT, receiver).await {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(_)) => bail!("the server exited without printing a token{}", self.log_tail()),
            Err(_) => bail!("the server printed no token within {START_TIMEOUT:?}{}", self.log_tail()),
        }
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?;
        let url = format!("{}/api/health/ready", self.base_url);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("the server exited ({status}) before it was ready{}", self.log_tail());
            }
            if let Ok(response) = client.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!("{url} did not answer 200 within {START_TIMEOUT:?}{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (`SIGTERM`, then `SIGKILL` after [`STOP_TIMEOUT`]) and says how it
    /// exited. Waits without blocking the runtime, so that the client's connections, which the
    /// server lets drain before it exits, can close meanwhile.
    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let mut status = child.try_wait()?;
        if status.is_none() && ask_to_stop(&child) {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while status.is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                status = child.try_wait()?;
            }
        }
        let status = if let Some(status) = status {
            status
        } else {
            child.kill()?;
            child.wait()?
        };
        if !status.success() {
            bail!("the server exited with {status}{}", self.log_tail());
        }
        Ok(())
    }

    /// The end of the server's log, as a suffix for an error message.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            return String::new();
        }
        format!("; the end of its log:\n{}", lines[lines.len().saturating_sub(20)..].join("\n"))
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = terminate(&mut child);
        }
    }
}

/// Sends `SIGTERM`; `false` where that is not possible.
fn ask_to_stop(child: &Child) -> bool {
    #[cfg(unix)]
    {
        let pid = rustix::process::Pid::from_child(child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
    }
    #[cfg(not(unix))]
    {
        let _ = child;
        false
    }
}

/// `SIGTERM`, a wait of up to [`STOP_TIMEOUT`], then `SIGKILL`.
fn terminate(child: &mut Child) -> anyhow::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    if ask_to_stop(child) {
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    child.kill()?;
    Ok(child.wait()?)
}

/// `release/omniman` under `CARGO_TARGET_DIR`, else under the workspace's `target/`.
fn default_server_bin() -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new(".")).join("target"),
        PathBuf::from,
    );
    target.join("release").join(format!("omniman{}", env::consts::EXE_SUFFIX))
}

/// A loopback port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// A PostgreSQL database made for one run, dropped when this is dropped.
#[derive(Debug)]
struct PgDatabase {
    admin_url: String,
    name: String,
    /// The tool that made it, for its warnings.
    tool: &'static str,
}

impl PgDatabase {
    /// Creates `omniman_load_<random>` through `admin_url` (any existing database).
    fn create(admin_url: &str, tool: &'static str) -> anyhow::Result<PgDatabase> {
        let name = format!("omniman_load_{:016x}", rand::random::<u64>());
        psql(admin_url, &format!("CREATE DATABASE \"{name}\""))?;
        Ok(PgDatabase { admin_url: admin_url.to_owned(), name, tool })
    }

    fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(error) = psql(&self.admin_url, &sql) {
            eprintln!("{}: warning: could not drop database {}: {error:#}", self.tool, self.name);
        }
    }
}

/// Runs one statement with `psql`.
fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql (the PostgreSQL client is needed for --database-url postgres://…)")?;
    if !output.status.success() {
        bail!("psql -c '{sql}' failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// `url` with its database (the path) replaced by `name`; user, host, port and query are kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..].find('/').map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_and_the_rest_kept() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/x"),
            ("postgres://u:p@db.local/postgres?sslmode=disable", "postgres://u:p@db.local/x?sslmode=disable"),
            ("postgresql://localhost", "postgresql://localhost/x"),
            ("postgres://localhost/?application_name=a/b", "postgres://localhost/x?application_name=a/b"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_database(url, "x"), expected, "{url}");
        }
    }

    #[test]
    fn the_default_binary_is_a_release_build() {
        let path = default_server_bin();
        assert!(path.ends_with(format!("release/omniman{}", env::consts::EXE_SUFFIX)), "{}", path.display());
    }

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
