//! The operator's commands: migrate, channels, tokens, directives, stock, cleanup.

use std::path::Path;

use anyhow::{Context, bail};
use chrono::{TimeDelta, Utc};
use omniman_core::channel::{Channel, ChannelSpec};
use omniman_core::directive::{DirectiveStatus, RetryPolicy, operator_retry};
use omniman_core::ext::HandlerRegistry;
use omniman_core::money::{Qty, QtyError};
use omniman_core::page::PageRequest;
use omniman_core::ports::{
    ChannelStore, DirectiveFilter, DirectiveQueue, IdempotencyStore, Role, SessionStore, TokenStore,
};
use omniman_core::prelude::{Extensions, Omniman};
use omniman_core::service::{ChannelChange, IssueToken, ManageError};
use omniman_http::{generate_token, hash_token};
use omniman_storage::Database;
use omniman_worker::{Worker, WorkerConfig};
use serde_json::Value;

use crate::cli::{ChannelsCommand, CleanupArgs, DbArgs, DirectivesCommand, RoleArg, StockCommand, TokensCommand};
use crate::runtime::{open_and_migrate, open_database};

/// `omniman migrate`.
pub(crate) async fn migrate(db: &DbArgs) -> anyhow::Result<()> {
    let (_, applied) = open_and_migrate(db).await?;
    println!("{}", if applied.is_empty() { "already up to date" } else { "migrations applied" });
    Ok(())
}

/// Reads one channel or a list of channels from JSON or TOML (`.toml`; a TOML file holds one
/// channel as top-level keys, or several as `[[channels]]`).
pub(crate) fn read_channel_specs(path: &Path) -> anyhow::Result<Vec<ChannelSpec>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value = if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
        let value = serde_json::to_value(table)?;
        match value.get("channels") {
            Some(list) if list.is_array() && value.as_object().is_some_and(|o| o.len() == 1) => list.clone(),
            _ => value,
        }
    } else {
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?
    };
    let (items, listed) = match value {
        Value::Array(items) => (items, true),
        other => (vec![other], false),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            // Named by position in a list and by code, so that the wrong entry is easy to find.
            let which = match (listed, item.get("code").and_then(Value::as_str)) {
                (true, Some(code)) => format!("channel #{} (code '{code}')", i + 1),
                (true, None) => format!("channel #{} (no code)", i + 1),
                (false, Some(code)) => format!("channel '{code}'"),
                (false, None) => "the channel (no code)".to_owned(),
            };
            let spec: ChannelSpec =
                serde_json::from_value(item).map_err(|e| anyhow::anyhow!("{}: {which}: {e}", path.display()))?;
            // `validate` checks top-level fields only; its path is the field's name.
            spec.validate().map_err(|e| anyhow::anyhow!("{}: {which}: {}: {}", path.display(), e.path, e.message))?;
            Ok(spec)
        })
        .collect()
}

fn print_channel(channel: &Channel) {
    let active = if channel.is_active { "active" } else { "inactive" };
    println!(
        "{:<16} {:<28} {:<8} {:<6} {active}",
        channel.code,
        channel.display_name(),
        channel.pricing_policy.as_str(),
        channel.edit_policy.as_str()
    );
}

/// `omniman channels …`.
pub(crate) async fn channels(command: ChannelsCommand) -> anyhow::Result<()> {
    match command {
        ChannelsCommand::Apply { file, db } => {
            let specs = read_channel_specs(&file)?;
            let hub = manager(&db).await?;
            for spec in specs {
                for key in spec.config.unknown_keys() {
                    eprintln!("warning: channel {}: unknown config key '{key}' (kept)", spec.code);
                }
                let (channel, existed) = hub.put_channel(spec).await?;
                println!(
                    "{} channel {} (id {})",
                    if existed { "updated" } else { "created" },
                    channel.code,
                    channel.id
                );
            }
        }
        ChannelsCommand::List(db) => {
            let database = open_database(&db).await?;
            for channel in database.list_channels().await? {
                print_channel(&channel);
            }
        }
        ChannelsCommand::Show { code, db } => {
            let database = open_database(&db).await?;
            let Some(channel) = database.channel_by_code(&code).await? else { bail!("no channel '{code}'") };
            println!("{}", serde_json::to_string_pretty(&channel)?);
        }
        ChannelsCommand::SetActive { code, active, db } => {
            let change = ChannelChange { is_active: Some(active), ..ChannelChange::default() };
            manager(&db).await?.change_channel(&code, change).await?;
            println!("channel {code} is now {}", if active { "active" } else { "inactive" });
        }
    }
    Ok(())
}

/// The service over the database, for the commands that share the HTTP API's management rules.
async fn manager(db: &DbArgs) -> anyhow::Result<Omniman<Database>> {
    Ok(Omniman::new(open_database(db).await?, Extensions::default()))
}

/// `omniman tokens …`.
pub(crate) async fn tokens(command: TokensCommand) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create { name, role, channels, rate_limit, db } => {
            let token = generate_token();
            let request = IssueToken {
                name,
                role: match role {
                    RoleArg::Client => Role::Client,
                    RoleArg::Admin => Role::Admin,
                },
                channels,
                // Stored in the parser's own spelling; an empty `--rate-limit ""` means none.
                rate_limits: rate_limit.map(|l| l.to_string()),
            };
            manager(&db).await?.issue_token(request, hash_token(&token)).await.map_err(explain)?;
            println!("{token}");
        }
        TokensCommand::List(db) => {
            let database = open_database(&db).await?;
            let tokens = database.list_tokens().await?;
            if tokens.is_empty() {
                println!("no tokens");
            } else {
                println!("{:<24} {:<7} {:<24} {:<32} STATE", "NAME", "ROLE", "CHANNELS", "RATE_LIMITS");
            }
            for t in tokens {
                let channels = t.channels.map_or_else(|| "*".to_owned(), |c| c.join(","));
                let limits = t.rate_limits.unwrap_or_else(|| "-".to_owned());
                let state =
                    t.revoked_at.map_or_else(|| "active".to_owned(), |at| format!("revoked {}", at.to_rfc3339()));
                println!("{:<24} {:<7} {:<24} {:<32} {state}", t.name, t.role.as_str(), channels, limits);
            }
        }
        TokensCommand::Revoke { name, db } => {
            match manager(&db).await?.revoke_token(&name).await {
                Err(ManageError::TokenNotFound { .. }) => bail!("no active token named '{name}'"),
                other => other?,
            };
            println!("revoked {name}");
        }
    }
    Ok(())
}

/// The CLI's wording of a management refusal: field problems named by their flags, and what to do
/// when there are no channels yet. The other messages are the service's own.
fn explain(error: ManageError) -> anyhow::Error {
    match &error {
        ManageError::Validation(fields) => {
            let problems: Vec<String> =
                fields.0.iter().flat_map(|(path, msgs)| msgs.iter().map(move |m| format!("--{path} {m}"))).collect();
            anyhow::anyhow!(problems.join("; "))
        }
        ManageError::UnknownChannels { known, .. } if known.is_empty() => {
            anyhow::anyhow!("{error}; create them with `omniman channels apply FILE` or `omniman demo`")
        }
        _ => error.into(),
    }
}

/// `omniman directives …`.
pub(crate) async fn directives(command: DirectivesCommand) -> anyhow::Result<()> {
    match command {
        DirectivesCommand::List { status, topic, db } => {
            let status = match status {
                Some(s) => Some(DirectiveStatus::parse(&s).with_context(|| format!("unknown status '{s}'"))?),
                None => None,
            };
            let database = open_database(&db).await?;
            let page =
                database.list_directives(&DirectiveFilter { topic, status }, &PageRequest::new(None, 100)).await?;
            if page.items.is_empty() {
                println!("no directives");
            }
            for d in page.items {
                println!(
                    "{:>8} {:<24} {:<8} attempts={} available_at={} {}",
                    d.id,
                    d.topic,
                    d.status.as_str(),
                    d.attempts,
                    d.available_at.to_rfc3339(),
                    d.last_error
                );
            }
        }
        DirectivesCommand::Show { id, db } => {
            let database = open_database(&db).await?;
            let Some(d) = database.directive(id).await? else { bail!("no directive {id}") };
            println!("{}", serde_json::to_string_pretty(&d)?);
        }
        DirectivesCommand::Retry { id, force, db } => {
            let database = open_database(&db).await?;
            let Some(d) = database.directive(id).await? else { bail!("no directive {id}") };
            let update = match operator_retry(&d, force, Utc::now()) {
                Ok(update) => update,
                Err(reason) => bail!("directive {id} {reason}; retry it anyway with --force"),
            };
            // A running directive is taken from its worker like a reap, conditional on that
            // claim; any other only while no worker has claimed it since it was read.
            let applied = if d.status == DirectiveStatus::Running {
                database.finish(std::slice::from_ref(&update), Utc::now()).await? == 1
            } else {
                database.requeue(&update, Utc::now()).await?
            };
            anyhow::ensure!(applied, "directive {id} changed meanwhile; look at it again");
            println!("directive {id} queued");
        }
        DirectivesCommand::Reap { timeout, max_attempts, db } => {
            let database = open_database(&db).await?;
            let config = WorkerConfig {
                reap_timeout: crate::runtime::minutes(timeout),
                policy: RetryPolicy { max_attempts: max_attempts.max(1), ..RetryPolicy::default() },
                ..WorkerConfig::default()
            };
            let worker =
                Worker::new(std::sync::Arc::new(database), std::sync::Arc::new(HandlerRegistry::default()), config);
            println!("reaped: {}", worker.reap().await?);
        }
    }
    Ok(())
}

/// `omniman stock …`.
pub(crate) async fn stock(command: StockCommand) -> anyhow::Result<()> {
    match command {
        StockCommand::Set { sku, qty, db } => {
            anyhow::ensure!(!sku.is_empty() && sku.len() <= 64, "SKU must be 1 to 64 characters");
            let on_hand = parse_on_hand(&qty)?;
            let database = open_database(&db).await?;
            if let Some(qty) = on_hand {
                database.set_stock_level(&sku, qty, Utc::now()).await?;
                println!("{sku}: {qty}");
            } else {
                database.set_stock_sold_out(&sku, Utc::now()).await?;
                println!("{sku}: 0.000");
            }
        }
        StockCommand::List(db) => {
            let database = open_database(&db).await?;
            let levels = database.stock_levels(Utc::now()).await?;
            if levels.is_empty() {
                println!("no stock levels");
            }
            for level in levels {
                println!(
                    "{:<24} on_hand={} held={} available={}",
                    level.sku, level.on_hand, level.held, level.available
                );
            }
        }
    }
    Ok(())
}

/// A quantity on hand for `stock set`: `Some` positive quantity, or `None` for zero (sold out).
/// Negative quantities are refused: holds, not the level, account for what is promised.
fn parse_on_hand(text: &str) -> anyhow::Result<Option<Qty>> {
    // A command-line argument may be padded or carry a `+`; the API's quantities may not.
    let text = text.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    match text.parse::<Qty>() {
        Ok(qty) => Ok(Some(qty)),
        // Not positive: zero (however written, `-0` included) or negative.
        Err(QtyError::NotPositive) => match text.strip_prefix('-').map(str::parse::<Qty>) {
            Some(Ok(_) | Err(QtyError::TooLarge | QtyError::TooPrecise)) => {
                bail!("quantity on hand cannot be negative ({text}); use 0 for sold out")
            }
            _ => Ok(None),
        },
        Err(e) => bail!("{e}"),
    }
}

/// `omniman cleanup`: with no flag, the idempotency-key cleanup alone (abandoning sessions
/// needs an explicit `--abandon-idle HOURS`, pruning the event log `--events-older-than DAYS`).
pub(crate) async fn cleanup(args: CleanupArgs) -> anyhow::Result<()> {
    let idempotency = args.idempotency || (args.abandon_idle.is_none() && args.events_older_than.is_none());
    let database = open_database(&args.db).await?;
    let now = Utc::now();
    if idempotency {
        println!("expired idempotency keys deleted: {}", database.delete_expired_idempotency(now).await?);
    }
    if let Some(hours) = args.abandon_idle {
        let idle_since = now - TimeDelta::hours(i64::from(hours));
        println!(
            "open sessions idle for more than {hours} h abandoned: {}",
            database.abandon_idle_sessions(idle_since, now).await?
        );
    }
    if let Some(days) = args.events_older_than {
        let before = now - TimeDelta::days(i64::from(days));
        println!("events older than {days} days deleted: {}", database.prune_events(before).await?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_on_hand, read_channel_specs};

    #[test]
    fn on_hand_is_positive_or_zero() {
        assert_eq!(parse_on_hand("2.5").unwrap().map(omniman_core::money::Qty::millis), Some(2500));
        for zero in ["0", "0.000", "-0", "+0", " 0 ", "0e3"] {
            assert_eq!(parse_on_hand(zero).unwrap(), None, "{zero}");
        }
        for negative in ["-1", "-0.001", "-1000000000"] {
            let error = parse_on_hand(negative).unwrap_err().to_string();
            assert!(error.starts_with("quantity on hand cannot be negative"), "{negative}: {error}");
        }
        assert_eq!(parse_on_hand("x").unwrap_err().to_string(), "quantity is not a number");
        assert_eq!(parse_on_hand("0.0001").unwrap_err().to_string(), "quantity has more than 3 decimals");
    }

    #[test]
    fn reads_json_and_toml_channels() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("c.json");
        std::fs::write(&json, r#"[{"code":"pos"},{"code":"web","pricing_policy":"external"}]"#).unwrap();
        let specs = read_channel_specs(&json).unwrap();
        assert_eq!(specs.len(), 2);
        let toml = dir.path().join("c.toml");
        std::fs::write(
            &toml,
            "code = \"ifood\"\nedit_policy = \"locked\"\n[config]\nrequired_checks_on_commit = []\ncolour = 1\n",
        )
        .unwrap();
        let specs = read_channel_specs(&toml).unwrap();
        assert_eq!(specs[0].code, "ifood");
        assert_eq!(specs[0].config.unknown_keys(), vec!["colour".to_string()]);
        let many = dir.path().join("m.toml");
        std::fs::write(&many, "[[channels]]\ncode = \"a\"\n[[channels]]\ncode = \"b\"\n").unwrap();
        assert_eq!(read_channel_specs(&many).unwrap().len(), 2);
        let bad = dir.path().join("b.json");
        std::fs::write(&bad, r#"{"code":"x","config":{"required_checks_on_commit":"stock"}}"#).unwrap();
        assert!(read_channel_specs(&bad).is_err());
        std::fs::write(&bad, r#"{"code":"x","colour":"red"}"#).unwrap();
        assert!(read_channel_specs(&bad).is_err(), "unknown top-level fields are refused");
    }
}
