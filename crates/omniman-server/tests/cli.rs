//! The `omniman` command line, run as a real process against SQLite files: every subcommand's
//! `--help`, the environment variables and defaults, and what each operator command prints.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{Api, Running, apply_channels, cli_out, command, free_port, run, sqlite_url, temp_dir};
use omniman_core::directive::{Directive, DirectiveStatus, DirectiveUpdate, NewDirective};
use omniman_core::idempotency::{IdempotencyRecord, IdempotencyStatus};
use omniman_core::ports::{DirectiveQueue, IdempotencyStore};
use omniman_storage::test_support::{TestDb, test_database_url, with_database_name};
use omniman_storage::{Database, StorageConfig};
use serde_json::{Value, json};

/// `omniman ARGS` with a clean environment; panics unless it succeeds; (stdout, stderr).
fn ok(args: &[&str], envs: &[(&str, &str)]) -> (String, String) {
    let (success, stdout, stderr) = run(command(args, envs));
    assert!(success, "omniman {args:?} failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// `omniman ARGS --database-url URL`, expected to fail; its stderr.
fn fails(url: &str, args: &[&str]) -> String {
    let mut full = args.to_vec();
    full.extend(["--database-url", url]);
    let (success, stdout, stderr) = run(command(&full, &[]));
    assert!(!success, "omniman {args:?} should have failed: {stdout}");
    stderr
}

#[test]
fn every_subcommand_has_help_naming_its_flags() {
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["serve", "worker", "migrate", "channels", "tokens", "directives", "stock", "cleanup", "demo"]),
        (
            &["serve"],
            &["--bind", "--database-url", "--workers", "--demo", "--slow-request-ms", "DATABASE_URL", "OMNIMAN_BIND"],
        ),
        (
            &["worker"],
            &["--topic", "--limit", "--interval", "--max-attempts", "--reap-timeout", "--concurrency", "--once"],
        ),
        (&["migrate"], &["--database-url", "DATABASE_URL"]),
        (&["channels"], &["apply", "list", "show", "set-active"]),
        (&["channels", "apply"], &["<FILE>", "TOML", "--database-url"]),
        (&["channels", "list"], &["--database-url"]),
        (&["channels", "show"], &["<CODE>", "--database-url"]),
        (&["channels", "set-active"], &["<CODE>", "<ACTIVE>"]),
        (&["tokens"], &["create", "list", "revoke"]),
        (&["tokens", "create"], &["--name", "--role", "admin", "client", "--channels", "--rate-limit"]),
        (&["tokens", "list"], &["--database-url"]),
        (&["tokens", "revoke"], &["<NAME>", "--database-url"]),
        (&["directives"], &["list", "show", "retry", "reap"]),
        (&["directives", "list"], &["--status", "--topic"]),
        (&["directives", "show"], &["<ID>"]),
        (&["directives", "retry"], &["<ID>", "attempts kept"]),
        (&["directives", "reap"], &["--timeout", "--max-attempts"]),
        (&["stock"], &["set", "list"]),
        (&["stock", "set"], &["<SKU>", "<QTY>"]),
        (&["stock", "list"], &["--database-url"]),
        (&["cleanup"], &["--idempotency", "--abandon-idle <HOURS>", "--events-older-than <DAYS>", "With no flag"]),
        (&["demo"], &["--database-url", "DATABASE_URL"]),
    ];
    for (path, expected) in cases {
        let mut args = path.to_vec();
        args.push("--help");
        let (help, _) = ok(&args, &[]);
        assert!(help.contains("Usage: omniman"), "omniman {args:?}:\n{help}");
        for needle in *expected {
            assert!(help.contains(needle), "omniman {args:?} does not mention {needle}:\n{help}");
        }
    }
}

#[test]
fn migrate_defaults_to_omniman_db_in_the_working_directory_and_is_idempotent() {
    let dir = temp_dir();
    let migrate = |envs: &[(&str, &str)]| {
        let mut cmd = command(&["migrate"], envs);
        cmd.current_dir(dir.path());
        let (success, stdout, stderr) = run(cmd);
        assert!(success, "{stdout}\n{stderr}");
        (stdout, stderr)
    };
    let (stdout, stderr) = migrate(&[("OMNIMAN_LOG", "info")]);
    assert_eq!(stdout.trim(), "migrations applied");
    assert!(stderr.contains("applied migration"), "the first run applies migrations: {stderr}");
    assert!(dir.path().join("omniman.db").is_file(), "the default database is ./omniman.db");
    let (stdout, stderr) = migrate(&[("OMNIMAN_LOG", "info")]);
    assert_eq!(stdout.trim(), "already up to date", "the second run says there was nothing to do");
    assert!(!stderr.contains("applied migration"), "nothing left to apply the second time: {stderr}");

    // DATABASE_URL wins over the default.
    let env_url = sqlite_url(dir.path(), "from-env");
    std::fs::remove_file(dir.path().join("omniman.db")).unwrap();
    migrate(&[("DATABASE_URL", &env_url)]);
    assert!(dir.path().join("from-env.db").is_file());
    assert!(!dir.path().join("omniman.db").exists(), "DATABASE_URL is honoured");
    let (listed, _) = ok(&["channels", "list"], &[("DATABASE_URL", &env_url)]);
    assert_eq!(listed.trim(), "", "a new database has no channels");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_an_empty_database_points_to_demo_and_honours_the_environment() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "empty");
    let bind = format!("127.0.0.1:{}", free_port());
    let serve = command(&["serve", "--http-threads", "1"], &[("DATABASE_URL", &url), ("OMNIMAN_BIND", &bind)]);
    let running = Running::spawn_captured(serve, &bind).await;

    let (status, ready) = Api::new(&running.server.base, "").get("/health/ready").await;
    assert_eq!(status, 200, "{ready}");
    let checks: Vec<(&str, &str)> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(checks, [("database", "ok"), ("directive_workers", "ok")], "{ready}");

    let (_, stderr) = running.stop();
    let hints: Vec<&str> = stderr.lines().filter(|l| l.contains("run `omniman demo`")).collect();
    assert_eq!(hints.len(), 1, "one line suggests the next step:\n{stderr}");
    assert!(hints[0].contains("`omniman channels apply FILE`"), "{}", hints[0]);
    assert!(Path::new(&url["sqlite://".len()..]).is_file(), "DATABASE_URL is where serve created the database");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_seeds_the_example_channels_and_prints_a_token_that_authenticates() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "demo");
    let (stdout, stderr) = ok(&["demo", "--database-url", &url], &[]);
    let token = stdout.trim();
    assert!(token.starts_with("omni_") && !token.contains(char::is_whitespace), "only the token on stdout: {stdout}");
    assert!(stderr.contains("Seeded channels 'pos'"), "{stderr}");

    let listed = cli_out(&url, &["channels", "list"]);
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "{listed}");
    assert_eq!((rows[0][0], rows[0].last().copied()), ("pos", Some("active")));
    assert!(rows[0].contains(&"internal") && rows[1].contains(&"external"), "{listed}");
    let web: Value = serde_json::from_str(&cli_out(&url, &["channels", "show", "web"])).unwrap();
    assert_eq!((web["code"].as_str(), web["pricing_policy"].as_str()), (Some("web"), Some("external")));
    assert_eq!(web["config"], json!({}));
    let pos: Value = serde_json::from_str(&cli_out(&url, &["channels", "show", "pos"])).unwrap();
    assert_eq!(pos["config"]["required_checks_on_commit"], json!(["stock"]), "the demo shows the stock check");
    assert_eq!(pos["config"]["prices"]["COFFEE"], json!(450));
    let stock = cli_out(&url, &["stock", "list"]);
    assert!(stock.contains("CROISSANT") && stock.contains("COFFEE"), "{stock}");
    assert!(fails(&url, &["channels", "show", "nope"]).contains("no channel 'nope'"));

    let bind = format!("127.0.0.1:{}", free_port());
    let serve = command(&["serve", "--bind", &bind, "--database-url", &url, "--workers", "0"], &[]);
    let running = Running::spawn_captured(serve, &bind).await;
    let (status, channels) = Api::new(&running.server.base, token).get("/channels").await;
    assert_eq!(status, 200, "{channels}");
    let codes: Vec<&str> =
        channels["results"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["pos", "web", "ifood"]);
    let (status, _) = Api::new(&running.server.base, "omni_not-a-token").get("/channels").await;
    assert_eq!(status, 401);
    let (_, ready) = Api::new(&running.server.base, "").get("/health/ready").await;
    let names: Vec<&str> = ready["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["database"], "--workers 0: no worker check");
    let (_, stderr) = running.stop();
    assert!(!stderr.contains("omniman demo"), "no hint once channels exist: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_gets_401_within_a_second() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "tokens");
    apply_channels(&url, dir.path(), &json!([{"code": "pos"}]));
    let token = cli_out(&url, &["tokens", "create", "--name", "till-1", "--role", "client", "--channels", "pos"]);
    cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let listed = cli_out(&url, &["tokens", "list"]);
    assert!(!listed.contains(&token), "never the secret: {listed}");
    let header: Vec<&str> = listed.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ROLE", "CHANNELS", "RATE_LIMITS", "STATE"], "a header row first: {listed}");
    let till: Vec<&str> = listed.lines().find(|l| l.starts_with("till-1 ")).unwrap().split_whitespace().collect();
    assert_eq!(till, ["till-1", "client", "pos", "-", "active"]);

    let server = Running::serve(&url, &["--workers", "0"]).await;
    let api = Api::new(&server.base, &token);
    assert_eq!(api.get("/channels").await.0, 200);
    assert_eq!(cli_out(&url, &["tokens", "revoke", "till-1"]), "revoked till-1");
    // The server trusts a token it has read for 1 s (docs/operations.md, the cache).
    let revoked_at = std::time::Instant::now();
    let (status, body) = loop {
        let (status, body) = api.get("/channels").await;
        if status != 200 || revoked_at.elapsed() > std::time::Duration::from_secs(3) {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    assert!(revoked_at.elapsed() < std::time::Duration::from_millis(1500), "{:?}", revoked_at.elapsed());
    drop(server);

    let listed = cli_out(&url, &["tokens", "list"]);
    let till = listed.lines().find(|l| l.starts_with("till-1 ")).unwrap();
    assert!(till.contains(" revoked 20"), "{till}");
    assert!(listed.lines().find(|l| l.starts_with("ops ")).unwrap().ends_with(" active"), "{listed}");
    assert!(fails(&url, &["tokens", "revoke", "till-1"]).contains("no active token named 'till-1'"));
}

/// The rows of `omniman directives list ARGS`, split on whitespace.
fn directive_rows(url: &str, args: &[&str]) -> Vec<Vec<String>> {
    let mut full = vec!["directives", "list"];
    full.extend(args);
    cli_out(url, &full).lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_directive_is_listed_shown_retried_and_reaped() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "directives");
    // `webhook.post` after every commit, but no `webhooks.url`: the handler fails it for good.
    apply_channels(
        &url,
        dir.path(),
        &json!([{"code": "hooks", "config": {"post_commit_directives": ["webhook.post"]}}]),
    );
    let token = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let server = Running::serve(&url, &[]).await;
    let api = Api::new(&server.base, &token);
    let (status, session) = api.post("/sessions", &json!({"channel_code": "hooks"})).await;
    assert_eq!(status, 201, "{session}");
    let key = session["session_key"].as_str().unwrap();
    let ops =
        json!({"channel_code": "hooks", "ops": [{"op": "add_line", "sku": "TEA", "qty": 1, "unit_price_q": 300}]});
    assert_eq!(api.post(&format!("/sessions/{key}/modify"), &ops).await.0, 200);
    let (status, committed) = api.post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "hooks"})).await;
    assert_eq!(status, 201, "{committed}");
    let failed = api
        .wait_for("/directives?status=failed", Duration::from_secs(20), |b| {
            b["results"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    let id = failed["results"][0]["id"].as_i64().unwrap();
    drop(server);

    let id_text = id.to_string();
    let rows = directive_rows(&url, &["--status", "failed"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][..4], [id_text.as_str(), "webhook.post", "failed", "attempts=1"]);
    assert_eq!(rows[0][5..].join(" "), "no webhooks.url configured for channel hooks");
    assert_eq!(directive_rows(&url, &["--topic", "webhook.post"]).len(), 1);
    assert_eq!(cli_out(&url, &["directives", "list", "--topic", "stock.hold"]), "no directives");
    assert_eq!(cli_out(&url, &["directives", "list", "--status", "queued"]), "no directives");
    let shown: Value = serde_json::from_str(&cli_out(&url, &["directives", "show", &id_text])).unwrap();
    assert_eq!((shown["status"].as_str(), shown["payload"]["channel_code"].as_str()), (Some("failed"), Some("hooks")));
    assert_eq!(shown["payload"]["order_ref"], committed["order_ref"]);

    assert_eq!(cli_out(&url, &["directives", "retry", &id_text]), format!("directive {id} queued"));
    let rows = directive_rows(&url, &["--status", "queued"]);
    assert_eq!(rows[0][..4], [id_text.as_str(), "webhook.post", "queued", "attempts=1"], "attempts kept");

    // A worker claims it and dies without recording the outcome: stuck in `running`.
    let database = Database::connect(&StorageConfig::new(url.clone())).await.unwrap();
    let claimed = database.claim(None, 10, Utc::now()).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), [id]);
    database.close();
    assert!(fails(&url, &["directives", "retry", &id_text]).contains("is running"));
    assert_eq!(cli_out(&url, &["directives", "reap"]), "reaped: 0", "not stuck for 10 minutes yet");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(cli_out(&url, &["directives", "reap", "--timeout", "0.001"]), "reaped: 1");
    let rows = directive_rows(&url, &[]);
    assert_eq!(rows[0][..4], [id_text.as_str(), "webhook.post", "queued", "attempts=2"]);
    assert!(rows[0].join(" ").ends_with("(reaped, will retry)"), "{rows:?}");
    assert!(fails(&url, &["directives", "show", "999999"]).contains("no directive 999999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_without_flags_deletes_expired_idempotency_keys_only() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "cleanup");
    apply_channels(&url, dir.path(), &json!([{"code": "pos"}]));
    let token = cli_out(&url, &["tokens", "create", "--name", "till", "--role", "client"]);
    let server = Running::serve(&url, &["--workers", "0"]).await;
    let api = Api::new(&server.base, &token);
    let (status, session) = api.post("/sessions", &json!({"channel_code": "pos"})).await;
    assert_eq!(status, 201, "{session}");
    let key = session["session_key"].as_str().unwrap().to_owned();
    drop(server);

    let database = Database::connect(&StorageConfig::new(url.clone())).await.unwrap();
    let now = Utc::now();
    for (name, expires_at) in [("old", now - TimeDelta::hours(1)), ("fresh", now + TimeDelta::hours(23))] {
        let record = IdempotencyRecord {
            scope: "commit:pos".into(),
            key: name.into(),
            status: IdempotencyStatus::Done,
            response_code: Some(201),
            response_body: Some(json!({})),
            session_key: Some(key.clone()),
            expires_at: Some(expires_at),
            created_at: now - TimeDelta::hours(25),
        };
        assert!(database.save_idempotency_record(&record).await.unwrap());
    }
    database.close();

    assert_eq!(cli_out(&url, &["cleanup"]), "expired idempotency keys deleted: 1");
    assert_eq!(cli_out(&url, &["cleanup"]), "expired idempotency keys deleted: 0", "the fresh key stays");
    assert_eq!(
        cli_out(&url, &["cleanup", "--abandon-idle", "1"]),
        "open sessions idle for more than 1 h abandoned: 0",
        "the session is younger than an hour; and no key cleanup without --idempotency"
    );
    assert_eq!(
        cli_out(&url, &["cleanup", "--idempotency", "--abandon-idle", "0"]),
        "expired idempotency keys deleted: 0\nopen sessions idle for more than 0 h abandoned: 1"
    );

    // The log holds the session's opening and its abandonment: the older one goes.
    assert_eq!(cli_out(&url, &["cleanup", "--events-older-than", "1"]), "events older than 1 days deleted: 0");
    assert_eq!(cli_out(&url, &["cleanup", "--events-older-than", "0"]), "events older than 0 days deleted: 1");

    let server = Running::serve(&url, &["--workers", "0"]).await;
    let (status, session) = Api::new(&server.base, &token).get(&format!("/sessions/{key}?channel_code=pos")).await;
    assert_eq!((status, session["state"].as_str()), (200, Some("abandoned")), "{session}");
}

#[test]
fn stock_set_accepts_zero_for_sold_out_and_refuses_a_negative_quantity() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "stock");
    assert_eq!(cli_out(&url, &["stock", "list"]), "no stock levels", "an empty list says so");
    assert_eq!(cli_out(&url, &["stock", "set", "CAKE", "3"]), "CAKE: 3.000");
    assert_eq!(cli_out(&url, &["stock", "set", "CAKE", "0"]), "CAKE: 0.000", "zero is sold out");
    assert_eq!(cli_out(&url, &["stock", "set", "TEA", "0.000"]), "TEA: 0.000");
    let rows: Vec<Vec<String>> =
        cli_out(&url, &["stock", "list"]).lines().map(|l| l.split_whitespace().map(str::to_owned).collect()).collect();
    assert_eq!(
        rows,
        [
            ["CAKE", "on_hand=0.000", "held=0.000", "available=0.000"],
            ["TEA", "on_hand=0.000", "held=0.000", "available=0.000"]
        ]
    );
    let stderr = fails(&url, &["stock", "set", "CAKE", "-2"]);
    assert!(stderr.contains("quantity on hand cannot be negative (-2); use 0 for sold out"), "{stderr}");
    let stderr = fails(&url, &["stock", "set", "CAKE", "lots"]);
    assert!(stderr.contains("quantity is not a number"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_refuses_done_and_running_directives_unless_forced() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "retry");
    cli_out(&url, &["migrate"]);
    let database = Database::connect(&StorageConfig::new(url.clone())).await.unwrap();
    let now = Utc::now() - TimeDelta::seconds(1);
    let new = NewDirective { topic: "test.noop".into(), payload: serde_json::Map::new(), available_at: now };
    let id = database.enqueue(&[new]).await.unwrap()[0];
    let claimed = database.claim(None, 1, Utc::now()).await.unwrap();
    assert_eq!(database.finish(&[done_update(&claimed[0])], Utc::now()).await.unwrap(), 1);
    let id_text = id.to_string();
    let status = |database: &Database| {
        let database = database.clone();
        async move { database.directive(id).await.unwrap().unwrap().status }
    };

    let stderr = fails(&url, &["directives", "retry", &id_text]);
    assert!(stderr.contains(&format!("directive {id} is done")), "{stderr}");
    assert!(stderr.contains("--force"), "the message names the override: {stderr}");
    assert_eq!(status(&database).await, DirectiveStatus::Done, "nothing changed");
    assert_eq!(cli_out(&url, &["directives", "retry", &id_text, "--force"]), format!("directive {id} queued"));
    assert_eq!(status(&database).await, DirectiveStatus::Queued);

    // Claimed by a worker: refused, then taken back by force; the worker's late outcome is ignored.
    let claimed = database.claim(None, 1, Utc::now()).await.unwrap();
    let stderr = fails(&url, &["directives", "retry", &id_text]);
    assert!(stderr.contains(&format!("directive {id} is running")) && stderr.contains("--force"), "{stderr}");
    assert_eq!(status(&database).await, DirectiveStatus::Running);
    assert_eq!(cli_out(&url, &["directives", "retry", &id_text, "--force"]), format!("directive {id} queued"));
    assert_eq!(status(&database).await, DirectiveStatus::Queued);
    let late = done_update(&claimed[0]);
    assert_eq!(database.finish(&[late], Utc::now()).await.unwrap(), 0, "the worker's claim is gone");
    database.close();
}

/// The outcome a worker records for a successful run of its claim `d`.
fn done_update(d: &Directive) -> DirectiveUpdate {
    DirectiveUpdate {
        id: d.id,
        claimed_attempts: d.attempts,
        status: DirectiveStatus::Done,
        attempts: d.attempts,
        available_at: d.available_at,
        last_error: String::new(),
        payload_patch: serde_json::Map::new(),
    }
}

#[test]
fn a_token_for_an_unknown_channel_is_refused_naming_it_and_the_known_ones() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "token-channels");
    let stderr = fails(&url, &["tokens", "create", "--name", "t", "--role", "client", "--channels", "pos"]);
    assert!(stderr.contains("unknown channel: pos (there are no channels yet"), "{stderr}");
    apply_channels(&url, dir.path(), &json!([{"code": "pos"}, {"code": "web"}]));
    let stderr = fails(&url, &["tokens", "create", "--name", "t", "--role", "client", "--channels", "pos,nope,gone"]);
    assert!(stderr.contains("unknown channels: nope, gone (known: pos, web)"), "{stderr}");
    assert_eq!(cli_out(&url, &["tokens", "list"]), "no tokens", "nothing was stored");
    cli_out(&url, &["tokens", "create", "--name", "t", "--role", "client", "--channels", "web,pos"]);
}

#[test]
fn a_refused_postgresql_connection_says_where_and_what_to_check() {
    let stderr = fails("postgres://postgres@127.0.0.1:1/omniman", &["migrate"]);
    assert!(stderr.contains("connection refused at 127.0.0.1:1; is PostgreSQL running? see DATABASE_URL"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_postgresql_database_says_how_to_create_it() {
    // Only to learn whether the server is reachable (and skip loudly when it is not).
    let Some(_server) = TestDb::postgres().await else { return };
    let name = format!("omniman_missing_{}", std::process::id());
    let url = with_database_name(&test_database_url(), &name);
    let stderr = fails(&url, &["migrate"]);
    assert!(stderr.contains(&format!("database \"{name}\" does not exist")), "{stderr}");
    assert!(stderr.contains(&format!("createdb {name}")), "{stderr}");
    assert!(stderr.contains(&format!("CREATE DATABASE \"{name}\"")), "{stderr}");
}

#[test]
fn a_port_in_use_names_the_flag_and_the_variable() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "bind");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let stderr = fails(&url, &["serve", "--bind", &bind, "--workers", "0"]);
    assert!(stderr.contains(&format!("cannot listen on {bind}")), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(stderr.contains("--bind") && stderr.contains("OMNIMAN_BIND"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_takes_a_host_name_or_a_bare_port() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "bind-forms");
    for form in ["{port}", "localhost:{port}"] {
        let port = free_port();
        let bind = form.replace("{port}", &port.to_string());
        let serve = command(&["serve", "--bind", &bind, "--database-url", &url, "--workers", "0"], &[]);
        let running = Running::spawn_captured(serve, &format!("127.0.0.1:{port}")).await;
        running.stop();
    }
    for bad in ["nowhere.invalid:80", "127.0.0.1", "8000x", "99999"] {
        let stderr = fails(&url, &["serve", "--bind", bad]);
        assert!(stderr.contains(&format!("invalid value '{bad}' for '--bind")), "{stderr}");
        assert!(stderr.contains("e.g. 127.0.0.1:8000, localhost:8000, 0.0.0.0:8000 or 8000"), "{stderr}");
    }
}

#[test]
fn serve_refuses_a_currency_that_is_not_iso_4217() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "currency");
    let stderr = fails(&url, &["serve", "--currency", "EURO"]);
    assert!(stderr.contains("'EURO' is not an ISO 4217 currency code"), "{stderr}");
    let (success, _, stderr) = run(command(&["serve", "--database-url", &url], &[("OMNIMAN_CURRENCY", "reais")]));
    assert!(!success && stderr.contains("'reais' is not an ISO 4217"), "{stderr}");
}

#[test]
fn a_bad_channel_file_names_the_file_the_index_and_the_code() {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "apply");
    let file = dir.path().join("channels.json");
    let path = file.to_str().unwrap();
    let cases = [
        (
            json!([{"code": "pos"}, {"code": "web", "config": {"required_checks_on_commit": "stock"}}]),
            "channel #2 (code 'web'): config.required_checks_on_commit: must be a list of strings",
        ),
        (json!([{"code": "pos"}, {"code": "web", "colour": "red"}]), "channel #2 (code 'web'): unknown field `colour`"),
        (json!([{"code": "pos"}, {"code": ""}]), "channel #2 (code ''): code: must be 1 to 64 characters"),
        (json!([{"code": "pos"}, {"name": "Web"}]), "channel #2 (no code): missing field `code`"),
        (json!({"code": "web", "display_order": -1}), "channel 'web': invalid value"),
        (
            json!([{"code": "eu", "config": {"currency": "EURO"}}]),
            "channel #1 (code 'eu'): config.currency: 'EURO' is not an ISO 4217 currency code",
        ),
    ];
    for (content, expected) in cases {
        std::fs::write(&file, serde_json::to_vec(&content).unwrap()).unwrap();
        let stderr = fails(&url, &["channels", "apply", path]);
        assert!(stderr.contains(&format!("{path}: {expected}")), "{content}:\n{stderr}");
    }
    let toml = dir.path().join("channels.toml");
    std::fs::write(&toml, "[[channels]]\ncode = \"a\"\n[[channels]]\ncode = \"b\"\nedit_policy = \"sometimes\"\n")
        .unwrap();
    let stderr = fails(&url, &["channels", "apply", toml.to_str().unwrap()]);
    assert!(stderr.contains(&format!("{}: channel #2 (code 'b'): ", toml.display())), "{stderr}");
    assert_eq!(cli_out(&url, &["channels", "list"]), "", "nothing was applied");
}
