//! docs/api.md, run against the real server: every `sh` example of the page is sent, in the
//! page's order, to `omniman serve --demo` on a fresh SQLite file, and the `json` block that
//! follows an example must describe the answer to its first request.
//!
//! "Describe" means: the same keys at every level (none missing, none undocumented), the same
//! JSON type for every value, arrays of the same length; values themselves (ids, keys,
//! timestamps) may differ. `[ ... ]` and `{ ... }` in a documented answer stand for any value. A
//! documented error body must be answered with an error of the same code. Every other request of
//! an example must succeed. `DUMP_API_DOCS=FILE` writes every real answer to FILE, to refresh the
//! page by hand.
//!
//! Variables the examples use: `$API` (the server's `/api`), `$TOKEN` (the demo's client token),
//! `$ADMIN_TOKEN` (an admin token), and values taken from earlier answers: `$KEY` (the last
//! `session_key` a session POST answered), `$REF` (the last `order_ref`), `$ISSUE` and `$ACTION`
//! (the first issue of a session answer and its first action), `$DIRECTIVE` (the first id of a
//! directive list), `$TOKEN_ID` (the id a token POST answered), `$WEBHOOK` (the id a webhook POST
//! answered); `$RECEIVER` is a local endpoint that answers every webhook delivery with a 200.
//! Before each request the examples wait for the directive queue to be idle, as a reader who types
//! them does.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::{Receiver, Running, cli_out, sqlite_url, temp_dir};
use serde_json::Value;

/// One `sh` block and the `json` block after it, if any.
#[derive(Debug)]
struct Example {
    /// The `###` heading it is under.
    section: String,
    /// Line of the `sh` fence, for messages.
    line: usize,
    /// Its commands, continuation lines joined, comments dropped.
    commands: Vec<String>,
    /// The documented answer.
    answer: Option<String>,
}

/// The examples of a Markdown page, in order.
fn examples(markdown: &str) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut section = String::new();
    let mut lines = markdown.lines().enumerate();
    // Whether the last fenced block was an `sh` example still waiting for its answer.
    let mut open_example = false;
    while let Some((n, line)) = lines.next() {
        if let Some(heading) = line.strip_prefix("### ").or_else(|| line.strip_prefix("## ")) {
            heading.clone_into(&mut section);
            open_example = false;
            continue;
        }
        let Some(lang) = line.strip_prefix("```") else { continue };
        let body: Vec<&str> = lines.by_ref().map(|(_, l)| l).take_while(|l| !l.starts_with("```")).collect();
        match lang.trim() {
            "sh" => {
                out.push(Example { section: section.clone(), line: n + 1, commands: commands(&body), answer: None });
                open_example = true;
            }
            "json" if open_example => {
                out.last_mut().expect("an example").answer = Some(body.join("\n"));
                open_example = false;
            }
            _ => open_example = false,
        }
    }
    out
}

/// The commands of an `sh` block: a line ending in `\\` or inside an open quote continues on
/// the next; blank lines and comments are dropped.
fn commands(lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in lines {
        if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        if shlex::split(&pending).is_some() {
            out.push(std::mem::take(&mut pending).trim().to_owned());
        } else {
            pending.push('\n');
        }
    }
    assert!(pending.is_empty(), "an unfinished command: {pending}");
    out
}

/// A `curl` command line, read.
#[derive(Debug, Default)]
struct Curl {
    method: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    url: String,
}

fn parse_curl(command: &str) -> Curl {
    let words = shlex::split(command).unwrap_or_else(|| panic!("not a shell command: {command}"));
    assert_eq!(words.first().map(String::as_str), Some("curl"), "examples are curl commands: {command}");
    let mut curl = Curl::default();
    let mut words = words.into_iter().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "-s" | "-i" | "-sS" => {}
            "-X" => curl.method = words.next(),
            "-H" => {
                let header = words.next().expect("a header");
                let (name, value) = header.split_once(':').expect("Name: value");
                curl.headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "-d" => curl.body = words.next(),
            url if !url.starts_with('-') => url.clone_into(&mut curl.url),
            flag => panic!("unsupported curl flag {flag} in {command}"),
        }
    }
    curl
}

/// Replaces `$NAME` and `${NAME}` with known values.
fn substitute(text: &str, vars: &HashMap<&'static str, String>) -> String {
    let mut out = text.to_owned();
    // Longest names first, so `$ADMIN_TOKEN` is not read as `$ADMIN` + `_TOKEN`.
    let mut names: Vec<&&str> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out.replace(&format!("${{{name}}}"), &vars[*name]).replace(&format!("${name}"), &vars[*name]);
    }
    assert!(!out.contains('$'), "an unknown variable in: {text}");
    out
}

/// The documented answer as JSON; elided parts become a wildcard.
fn documented(text: &str) -> Value {
    let text = text.replace("[ ... ]", "\"<any>\"").replace("{ ... }", "\"<any>\"");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("documented answer is not JSON ({e}):\n{text}"))
}

/// Where `real` differs in shape from `doc`.
fn shape_differences(doc: &Value, real: &Value, path: &str, out: &mut Vec<String>) {
    match (doc, real) {
        (Value::String(s), _) if s == "<any>" => {}
        (Value::Object(d), Value::Object(r)) => {
            for key in d.keys().filter(|k| !r.contains_key(*k)) {
                out.push(format!("{path}.{key}: documented, not answered"));
            }
            for key in r.keys().filter(|k| !d.contains_key(*k)) {
                out.push(format!("{path}.{key}: answered, not documented"));
            }
            for (key, value) in d {
                if let Some(real) = r.get(key) {
                    shape_differences(value, real, &format!("{path}.{key}"), out);
                }
            }
        }
        (Value::Array(d), Value::Array(r)) => {
            if d.len() != r.len() {
                out.push(format!("{path}: {} documented elements, {} answered", d.len(), r.len()));
            }
            for (i, (d, r)) in d.iter().zip(r).enumerate() {
                shape_differences(d, r, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Null, Value::Null)
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_)) => {}
        (d, r) => out.push(format!("{path}: documented {d}, answered {r}")),
    }
}

/// Takes the values later examples refer to out of an answer.
fn remember(answer: &Value, url: &str, vars: &mut HashMap<&'static str, String>) {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    if let Some(key) = answer.get("session_key") {
        vars.insert("KEY", text(key));
    }
    if let Some(order_ref) = answer.get("order_ref") {
        vars.insert("REF", text(order_ref));
    }
    if let Some(issue) = answer.pointer("/data/issues/0") {
        vars.insert("ISSUE", text(&issue["id"]));
        vars.insert("ACTION", text(&issue["context"]["actions"][0]["id"]));
    }
    if url.ends_with("/api/tokens") {
        if let Some(id) = answer.get("id") {
            vars.insert("TOKEN_ID", text(id));
        }
    }
    if url.ends_with("/api/webhooks") {
        if let Some(id) = answer.get("id") {
            vars.insert("WEBHOOK", text(id));
        }
    }
    if url.contains("/api/directives?") {
        if let Some(id) = answer.pointer("/results/0/id") {
            vars.insert("DIRECTIVE", text(id));
        }
    }
}

/// Waits until no directive is queued or running, as a reader typing the examples would.
async fn settle(client: &reqwest::Client, api: &str, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut idle = true;
        for status in ["queued", "running"] {
            let page: Value = client
                .get(format!("{api}/directives?status={status}"))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            idle &= page["results"].as_array().is_some_and(Vec::is_empty);
        }
        if idle {
            return;
        }
        assert!(Instant::now() < deadline, "the directive queue did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_of_the_api_reference_answers_as_documented() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md")).unwrap();
    let examples = examples(&page);
    assert!(examples.len() >= 20, "the page's examples were found: {}", examples.len());

    let dir = temp_dir();
    let url = sqlite_url(dir.path(), "api-docs");
    let token = cli_out(&url, &["demo"]);
    let admin = cli_out(&url, &["tokens", "create", "--name", "ops", "--role", "admin"]);
    let server = Running::serve(&url, &["--workers", "2"]).await;
    let api = format!("{}/api", server.base);
    let receiver = Receiver::start(&[]).await;
    let mut vars: HashMap<&'static str, String> = HashMap::from([
        ("BASE", server.base.clone()),
        ("API", api.clone()),
        ("TOKEN", token),
        ("ADMIN_TOKEN", admin.clone()),
        ("RECEIVER", receiver.url.clone()),
    ]);
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    let mut dump = String::new();

    for example in &examples {
        for (i, command) in example.commands.iter().enumerate() {
            settle(&client, &api, &admin).await;
            let curl = parse_curl(&substitute(command, &vars));
            let method = curl.method.clone().unwrap_or_else(|| if curl.body.is_some() { "POST" } else { "GET" }.into());
            let mut request = client.request(method.parse().unwrap(), &curl.url);
            for (name, value) in &curl.headers {
                request = request.header(name, value);
            }
            if let Some(body) = &curl.body {
                request = request.body(body.clone());
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            remember(&answer, &curl.url, &mut vars);
            let _ = writeln!(
                dump,
                "## {} (line {}) {method} {} → {status}\n{text}\n",
                example.section, example.line, curl.url
            );
            let place = format!("{} (docs/api.md line {}), `{command}`", example.section, example.line);
            let documented = example.answer.as_deref().filter(|_| i == 0).map(documented);
            match documented {
                Some(doc) if doc.get("error").is_some() => {
                    let code = &doc["error"]["code"];
                    if answer["error"]["code"] != *code {
                        failures.push(format!("{place}: documented {code}, answered {status} {text}"));
                    }
                }
                Some(doc) => {
                    let mut differences = Vec::new();
                    if status >= 400 {
                        differences.push(format!("answered {status} {text}"));
                    } else {
                        shape_differences(&doc, &answer, "", &mut differences);
                    }
                    failures.extend(differences.into_iter().map(|d| format!("{place}: {d}")));
                }
                None if status >= 400 => failures.push(format!("{place}: answered {status} {text}")),
                None => {}
            }
        }
    }
    if let Ok(file) = std::env::var("DUMP_API_DOCS") {
        std::fs::write(file, dump).unwrap();
    }
    assert!(failures.is_empty(), "docs/api.md disagrees with the server:\n{}", failures.join("\n"));
}

#[test]
fn examples_are_found_with_their_answers() {
    let page = "### A\n\n```sh\ncurl -s $API/x \\\n  -H 'A: b'\n# a comment\n```\n\ntext\n\n```json\n{\"a\": 1}\n```\n\n\
                ### B\n\n```json\n{}\n```\n```sh\ncurl $API/y\n```\n```text\nz\n```\n```json\n[]\n```\n";
    let found = examples(page);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].commands, ["curl -s $API/x    -H 'A: b'"]);
    assert_eq!(
        commands(&["curl -d '{", "  \"a\": 1}' $API/z", "", "curl $API/w"]),
        ["curl -d '{\n  \"a\": 1}' $API/z", "curl $API/w"]
    );
    assert_eq!(found[0].answer.as_deref(), Some("{\"a\": 1}"));
    assert_eq!(found[1].answer, None, "a text block in between ends the example");
}

#[test]
fn shapes_compare_keys_types_and_lengths_not_values() {
    let doc = serde_json::json!({"id": 1, "items": [{"sku": "A"}], "data": "<any>", "next": null});
    let same = serde_json::json!({"id": 9, "items": [{"sku": "B"}], "data": {"x": [1]}, "next": null});
    let mut out = Vec::new();
    shape_differences(&doc, &same, "", &mut out);
    assert!(out.is_empty(), "{out:?}");
    let other = serde_json::json!({"id": "9", "items": [], "extra": true, "next": null});
    shape_differences(&doc, &other, "", &mut out);
    assert_eq!(
        out,
        [
            ".data: documented, not answered",
            ".extra: answered, not documented",
            ".id: documented 1, answered \"9\"",
            ".items: 1 documented elements, 0 answered",
        ]
    );
    let vars = HashMap::from([("API", "http://h/api".to_owned()), ("ADMIN_TOKEN", "a".to_owned())]);
    assert_eq!(substitute("curl ${API}/x -H 'T: $ADMIN_TOKEN'", &vars), "curl http://h/api/x -H 'T: a'");
}
