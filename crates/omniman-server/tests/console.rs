//! The operator console in a real browser: headless chromium driven through chromedriver
//! (WebDriver, by fantoccini) against the real `omniman serve --demo`-style binary on SQLite.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` the tests skip with a loud message,
//! unless `CI=true`, where they fail. `UPDATE_SCREENSHOTS=1` rewrites the PNGs of docs/console/
//! (docs/console.md shows them).

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::{Api, Running, cli_out, free_port, sqlite_url, temp_dir};
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use omniman_core::directive::{DirectiveStatus, DirectiveUpdate, NewDirective};
use omniman_core::ports::DirectiveQueue;
use omniman_storage::{Database, StorageConfig};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser is installed; outside CI a missing one skips the test loudly.
fn browser_installed() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{CHROMIUM} or {CHROMEDRIVER} is missing under CI=true: install chromium and chromium-driver"
    );
    eprintln!(
        "!!! SKIPPED: the console's browser tests need {CHROMIUM} and {CHROMEDRIVER} \
         (apt-get install chromium chromium-driver)"
    );
    false
}

/// chromedriver on a free port, and a headless chromium session through it.
async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two crypto providers are built in (fantoccini's TLS stack enables both): name one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
               "--disable-gpu", "--window-size=1280,900", "--lang=en-US"]}),
    );
    let client = ClientBuilder::rustls()
        .expect("TLS roots")
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session");
    (driver, client)
}

/// The server, its database and its tokens.
struct Setup {
    server: Running,
    admin: String,
    client: String,
    /// A failed directive, made before the server's workers could claim it.
    failed: i64,
    _dir: tempfile::TempDir,
}

/// `omniman demo`'s channels and stock, an admin token, and `omniman serve` with workers.
async fn setup() -> Setup {
    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "console");
    let client = cli_out(&url, &["demo"]);
    let admin = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let failed = failed_directive(&url).await;
    let server = Running::serve(&url, &["--workers", "2"]).await;
    Setup { server, admin, client, failed, _dir: dir }
}

/// Signs in through the form.
async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/console/sign-in")).await.unwrap();
    browser.find(Locator::Css("#token")).await.unwrap().send_keys(token).await.unwrap();
    browser.find(Locator::Css("form[action='/console/sign-in'] button")).await.unwrap().click().await.unwrap();
}

/// Opens a `web` session (client prices, no checks), adds a line and commits; the order ref.
async fn commit_order(api: &Api, key: &str) -> String {
    let (status, opened) = api.post("/sessions", &json!({"channel_code": "web", "session_key": key})).await;
    assert_eq!(status, 201, "{opened}");
    let ops =
        json!({"channel_code": "web", "ops": [{"op": "add_line", "sku": "COFFEE", "qty": 2, "unit_price_q": 450}]});
    assert_eq!(api.post(&format!("/sessions/{key}/modify"), &ops).await.0, 200);
    let (status, committed) =
        api.post(&format!("/sessions/{key}/commit"), &json!({"channel_code": "web", "idempotency_key": key})).await;
    assert_eq!(status, 201, "{committed}");
    committed["order_ref"].as_str().unwrap().to_owned()
}

/// Waits until `css` matches an element of the current page.
async fn wait_for(browser: &Client, css: &str, within: Duration) {
    browser
        .wait()
        .at_most(within)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear within {within:?}: {e}"));
}

/// Finds the first element matching `css` and acts on it, finding it again when the board's
/// live refresh replaced it in between (a stale element is not a failure of the page).
async fn on_element<T, F, Fut>(browser: &Client, css: &str, act: F) -> T
where
    F: Fn(Element) -> Fut,
    Fut: Future<Output = Result<T, CmdError>>,
{
    let mut tries = 0;
    loop {
        let element = browser.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        match act(element).await {
            Err(e) if e.is_stale_element_reference() && tries < 5 => tries += 1,
            result => return result.unwrap_or_else(|e| panic!("{css}: {e}")),
        }
    }
}

/// The text of the first element matching `css`.
async fn text(browser: &Client, css: &str) -> String {
    on_element(browser, css, |element| async move { element.text().await }).await
}

async fn click(browser: &Client, css: &str) {
    on_element(browser, css, |element| async move { element.click().await }).await;
}

/// docs/console/NAME.png, rewritten only when `UPDATE_SCREENSHOTS=1`.
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    if std::env::var("UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// A failed directive in the database (its topic has no handler, so nothing runs it).
async fn failed_directive(url: &str) -> i64 {
    let database = Database::connect(&StorageConfig::new(url.to_owned())).await.unwrap();
    let new = NewDirective {
        topic: "console.test".into(),
        payload: serde_json::Map::new(),
        available_at: Utc::now() - TimeDelta::seconds(1),
    };
    let id = database.enqueue(&[new]).await.unwrap()[0];
    let claimed = database.claim(Some(&["console.test".to_owned()]), 1, Utc::now()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let failed = DirectiveUpdate {
        id,
        claimed_attempts: claimed[0].attempts,
        status: DirectiveStatus::Failed,
        attempts: claimed[0].attempts,
        available_at: Utc::now(),
        last_error: "the partner answered 500".into(),
        payload_patch: serde_json::Map::new(),
    };
    assert_eq!(database.finish(&[failed], Utc::now()).await.unwrap(), 1);
    database.close();
    id
}

/// The console's cookie, as the browser holds it.
async fn console_cookie(browser: &Client) -> String {
    let cookies = browser.get_all_cookies().await.unwrap();
    let cookie = cookies.iter().find(|c| c.name() == "omniman_console").expect("signed in");
    format!("omniman_console={}", cookie.value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_works_the_console_in_a_browser() {
    if !browser_installed() {
        return;
    }
    let s = setup().await;
    let base = s.server.base.clone();
    let api = Api::new(&base, &s.client);
    let admin = Api::new(&base, &s.admin);
    let directive = s.failed;
    let (_driver, browser) = browser().await;

    // Not signed in: the sign-in page.
    browser.goto(&format!("{base}/console")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/console/sign-in");
    screenshot(&browser, "sign-in").await;

    // A client token is refused, with a clear message.
    sign_in(&browser, &base, &s.client).await;
    wait_for(&browser, "#sign-in-error", Duration::from_secs(5)).await;
    assert_eq!(text(&browser, "#sign-in-error").await, "This is a client token: the console needs an admin token.");
    assert!(browser.get_all_cookies().await.unwrap().iter().all(|c| c.name() != "omniman_console"));

    // An order committed through the API is on the board.
    let order = commit_order(&api, "T-1").await;
    sign_in(&browser, &base, &s.admin).await;
    wait_for(&browser, "#board", Duration::from_secs(5)).await;
    assert_eq!(browser.current_url().await.unwrap().path(), "/console");
    let card = format!("#col-new ~ ul article[data-ref='{order}']");
    wait_for(&browser, &card, Duration::from_secs(2)).await;
    let facts = text(&browser, &format!("article[data-ref='{order}'] .facts")).await;
    assert!(facts.contains("web") && facts.contains("9.00 BRL"), "{facts}");
    screenshot(&browser, "board").await;

    // Along its flow with the buttons: on the board, then on its page.
    click(&browser, &format!("#move-{order}-confirmed")).await;
    wait_for(&browser, &format!("#col-confirmed ~ ul article[data-ref='{order}']"), Duration::from_secs(5)).await;
    browser.goto(&format!("{base}/console/orders/{order}")).await.unwrap();
    assert_eq!(text(&browser, "#order-status").await, "confirmed");
    click(&browser, &format!("#move-{order}-processing")).await;
    wait_for(&browser, &format!("#move-{order}-ready"), Duration::from_secs(5)).await;
    assert_eq!(text(&browser, "#order-status").await, "processing");
    let (_, body) = admin.get(&format!("/orders/{order}")).await;
    assert_eq!(body["status"], "processing", "{body}");
    screenshot(&browser, "order").await;

    // A stock shortage (two croissants left, three asked for) resolved by its action.
    let (status, opened) =
        api.post("/sessions", &json!({"channel_code": "pos", "handle_type": "table", "handle_ref": "12"})).await;
    assert_eq!(status, 201, "{opened}");
    let key = opened["session_key"].as_str().unwrap().to_owned();
    let ops = json!({"channel_code": "pos", "ops": [{"op": "add_line", "sku": "CROISSANT", "qty": 3}]});
    assert_eq!(api.post(&format!("/sessions/{key}/modify"), &ops).await.0, 200);
    let session = api
        .wait_for(&format!("/sessions/{key}?channel_code=pos"), Duration::from_secs(10), |b| {
            b["data"]["issues"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    let issue = &session["data"]["issues"][0];
    assert_eq!(issue["code"], "stock.insufficient");
    let button = format!(
        "#resolve-{}-{}",
        dom_id(issue["id"].as_str().unwrap()),
        dom_id(issue["context"]["actions"][0]["id"].as_str().unwrap())
    );
    browser.goto(&format!("{base}/console/sessions")).await.unwrap();
    wait_for(&browser, &button, Duration::from_secs(5)).await;
    screenshot(&browser, "sessions").await;
    click(&browser, &button).await;
    let resolved = api
        .wait_for(&format!("/sessions/{key}?channel_code=pos"), Duration::from_secs(10), |b| {
            b["items"][0]["qty"] == json!("2.000") && b["data"]["issues"].as_array().is_some_and(Vec::is_empty)
        })
        .await;
    assert_eq!(resolved["rev"], 2, "{resolved}");

    // A failed directive retried.
    browser.goto(&format!("{base}/console/directives?status=failed")).await.unwrap();
    wait_for(&browser, &format!("#retry-{directive}"), Duration::from_secs(5)).await;
    assert!(browser.source().await.unwrap().contains("the partner answered 500"));
    screenshot(&browser, "directives").await;
    click(&browser, &format!("#retry-{directive}")).await;
    admin.wait_for(&format!("/directives/{directive}"), Duration::from_secs(5), |b| b["status"] != "failed").await;

    // A token issued (its secret shown once) and revoked.
    browser.goto(&format!("{base}/console/tokens")).await.unwrap();
    browser.find(Locator::Css("#token-name")).await.unwrap().send_keys("kiosk").await.unwrap();
    screenshot(&browser, "tokens").await;
    click(&browser, "#issue-token").await;
    wait_for(&browser, "#secret", Duration::from_secs(5)).await;
    let secret = browser.find(Locator::Css("#secret")).await.unwrap().prop("value").await.unwrap().unwrap();
    assert!(secret.starts_with("omni_"), "{secret}");
    screenshot(&browser, "token-issued").await;
    let kiosk = Api::new(&base, &secret);
    assert_eq!(kiosk.get("/channels").await.0, 200);
    let (_, tokens) = admin.get("/tokens").await;
    let id = tokens["results"].as_array().unwrap().iter().find(|t| t["name"] == "kiosk").unwrap()["id"].clone();
    browser.goto(&format!("{base}/console/tokens")).await.unwrap();
    click(&browser, &format!("#revoke-{id}")).await;
    wait_for(&browser, "#token-name", Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while kiosk.get("/channels").await.0 != 401 {
        assert!(Instant::now() < deadline, "the revoked token still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A webhook subscription (created through the API, which shows its secret once).
    let hook = json!({"url": "http://127.0.0.1:9/hooks", "events": ["order.created", "order.status_changed"]});
    let (status, hook) = admin.post("/webhooks", &hook).await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_i64().unwrap();

    // The other pages.
    for (path, name, css) in [
        ("/console/channels", "channels", "#edit-pos"),
        ("/console/channels/pos", "channel", "#config"),
        ("/console/stock", "stock", "table"),
        ("/console/webhooks", "webhooks", &format!("#test-{hook_id}")),
    ] {
        browser.goto(&format!("{base}{path}")).await.unwrap();
        wait_for(&browser, css, Duration::from_secs(5)).await;
        screenshot(&browser, name).await;
    }
    // A test delivery, then its subscription's deliveries.
    click(&browser, &format!("#test-{hook_id}")).await;
    wait_for(&browser, "caption", Duration::from_secs(5)).await;
    assert!(text(&browser, "table").await.contains("webhook.test"));
    screenshot(&browser, "webhook-deliveries").await;
    browser.goto(&format!("{base}/console/stock")).await.unwrap();
    assert!(text(&browser, "table").await.contains("CROISSANT"));

    // Every page carries the policy (the browser does not show headers: fetched beside it).
    let cookie = console_cookie(&browser).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for path in [
        "/console",
        "/console/board?fragment=1",
        &format!("/console/orders/{order}"),
        "/console/sessions",
        "/console/directives",
        "/console/channels",
        "/console/channels/pos",
        "/console/tokens",
        "/console/stock",
        "/console/webhooks",
        &format!("/console/webhooks/{hook_id}"),
        "/console/sign-in",
        "/console/assets/console.css",
        "/console/assets/console.js",
        "/console/missing",
    ] {
        let resp = http.get(format!("{base}{path}")).header("Cookie", &cookie).send().await.unwrap();
        let csp = resp.headers().get("content-security-policy").and_then(|v| v.to_str().ok());
        assert_eq!(csp, Some(CSP), "{path} ({})", resp.status());
    }

    // Signing out.
    browser.goto(&format!("{base}/console")).await.unwrap();
    click(&browser, ".sign-out button").await;
    wait_for(&browser, "#token", Duration::from_secs(5)).await;
    browser.goto(&format!("{base}/console/tokens")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/console/sign-in");
    browser.close().await.unwrap();
}

/// Depends on the console's event stream (`/console/events`): the board's script refetches on
/// each event; its five-second fallback poll alone cannot meet the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_order_appears_on_the_open_board_within_a_second() {
    if !browser_installed() {
        return;
    }
    let s = setup().await;
    let base = s.server.base.clone();
    let api = Api::new(&base, &s.client);
    let (_driver, browser) = browser().await;
    sign_in(&browser, &base, &s.admin).await;
    wait_for(&browser, "#board", Duration::from_secs(5)).await;
    // Let the script open its stream first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let order = commit_order(&api, "LIVE-1").await;
    let card = format!("article[data-ref='{order}']");
    let shown = browser.wait().at_most(Duration::from_secs(1)).for_element(Locator::Css(&card)).await;
    assert!(
        shown.is_ok(),
        "{order} was not on the board within a second: the board follows orders live through /console/events"
    );
    browser.close().await.unwrap();
}

/// Whatever the event stream does, the board's script polls every five seconds while no stream
/// is open, so an order shows up within that (plus the page's own time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_board_shows_a_committed_order_without_a_reload() {
    if !browser_installed() {
        return;
    }
    let s = setup().await;
    let base = s.server.base.clone();
    let api = Api::new(&base, &s.client);
    let (_driver, browser) = browser().await;
    sign_in(&browser, &base, &s.admin).await;
    wait_for(&browser, "#board", Duration::from_secs(5)).await;
    let order = commit_order(&api, "POLL-1").await;
    wait_for(&browser, &format!("article[data-ref='{order}']"), Duration::from_secs(7)).await;
    browser.close().await.unwrap();
}

/// The console's element ids: letters, digits and `-`.
fn dom_id(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}
