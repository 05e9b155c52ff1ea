//! Channels and their typed configuration (docs/reference.md §1.1).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How line prices are set on a channel's sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PricingPolicy {
    /// The hub prices lines (modifiers such as `pricing.item`).
    #[default]
    Internal,
    /// The client sends every price.
    External,
}

/// Whether a channel's sessions accept edits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditPolicy {
    /// Ops are accepted.
    #[default]
    Open,
    /// Orders arrive ready from an external platform; ops are refused.
    Locked,
}

impl PricingPolicy {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PricingPolicy::Internal => "internal",
            PricingPolicy::External => "external",
        }
    }
}

impl EditPolicy {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EditPolicy::Open => "open",
            EditPolicy::Locked => "locked",
        }
    }
}

/// A sales channel: point of sale, web shop, marketplace…
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    /// Database id.
    pub id: i64,
    /// Unique code (≤ 64) naming the channel everywhere.
    pub code: String,
    /// Display name (≤ 128), may be empty.
    pub name: String,
    /// Copied to each new session.
    pub pricing_policy: PricingPolicy,
    /// Copied to each new session.
    pub edit_policy: EditPolicy,
    /// Channel lists sort by (`display_order`, `id`).
    pub display_order: u32,
    /// Typed view over the raw configuration object.
    pub config: ChannelConfig,
    /// Inactive channels refuse new sessions.
    pub is_active: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Channel {
    /// `name`, or `code` when the name is empty.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() { &self.code } else { &self.name }
    }
}

/// A channel as written by an operator (`omniman channels apply`), before it has an id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// Unique code.
    pub code: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Pricing policy.
    #[serde(default)]
    pub pricing_policy: PricingPolicy,
    /// Edit policy.
    #[serde(default)]
    pub edit_policy: EditPolicy,
    /// Sort key.
    #[serde(default)]
    pub display_order: u32,
    /// Configuration object.
    #[serde(default)]
    pub config: ChannelConfig,
    /// Active flag.
    #[serde(default = "default_true")]
    pub is_active: bool,
}

fn default_true() -> bool {
    true
}

impl ChannelSpec {
    /// A channel named `code` with every default: internal pricing, open to edits, active, an
    /// empty config.
    ///
    /// ```
    /// use omniman_core::channel::{ChannelConfig, ChannelSpec};
    /// let spec = ChannelSpec {
    ///     config: ChannelConfig::from_value(serde_json::json!({"currency": "EUR"})).unwrap(),
    ///     ..ChannelSpec::new("pos")
    /// };
    /// assert!(spec.validate().is_ok() && spec.is_active);
    /// ```
    pub fn new(code: impl Into<String>) -> ChannelSpec {
        ChannelSpec {
            code: code.into(),
            name: String::new(),
            pricing_policy: PricingPolicy::default(),
            edit_policy: EditPolicy::default(),
            display_order: 0,
            config: ChannelConfig::default(),
            is_active: true,
        }
    }

    /// Checks the lengths docs/reference.md §1.1 sets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.code.is_empty() || self.code.len() > 64 {
            return Err(ConfigError::new("code", "must be 1 to 64 characters"));
        }
        if self.name.chars().count() > 128 {
            return Err(ConfigError::new("name", "must be at most 128 characters"));
        }
        Ok(())
    }
}

/// A configuration key holding a value of the wrong shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("config.{path}: {message}")]
pub struct ConfigError {
    /// Dotted path inside `config`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { path: path.into(), message: message.into() }
    }
}

/// The order status machine a channel uses (docs/reference.md §10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderFlowConfig {
    /// Replaces the default table entirely when present.
    pub transitions: Option<BTreeMap<String, Vec<String>>>,
    /// Replaces `["completed","cancelled"]` when present.
    pub terminal_statuses: Option<Vec<String>>,
    /// Status of new orders (default `new`).
    pub initial_status: Option<String>,
    /// Transition applied right after commit, by the `system` actor.
    pub on_create: Option<String>,
}

/// Per-check settings under `checks.<code>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Topic of the check's directive (default `"<code>.hold"`).
    pub directive_topic: Option<String>,
}

/// Shopman-style allow-lists under `rules`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesConfig {
    /// Modifiers allowed to run (absent = all; `pricing.*` always run).
    pub modifiers: Option<Vec<String>>,
    /// Validators allowed to run (absent = all).
    pub validators: Option<Vec<String>>,
    /// Extra check codes enqueued on modify.
    pub checks: Vec<String>,
}

/// Keys the core does not interpret but knows to be display or extension data.
const OPAQUE_KEYS: &[&str] = &[
    "icon",
    "terminology",
    "status_labels",
    "status_flow",
    "notifications",
    "pipeline",
    "confirmation",
    "payment",
    "stock",
    "webhooks",
];

/// Keys the core interprets.
const TYPED_KEYS: &[&str] = &[
    "currency",
    "prices",
    "order_data_keys",
    "required_checks_on_commit",
    "checks",
    "post_commit_directives",
    "order_flow",
    "flow",
    "auto_transitions",
    "rules",
];

/// A channel's `config` object: the raw JSON, kept verbatim, plus the typed view the core uses.
///
/// ```
/// use omniman_core::channel::ChannelConfig;
/// let cfg = ChannelConfig::from_value(serde_json::json!({
///     "required_checks_on_commit": ["stock"],
///     "colour": "blue"
/// })).unwrap();
/// assert_eq!(cfg.required_checks_on_commit, vec!["stock".to_string()]);
/// assert_eq!(cfg.unknown_keys(), vec!["colour".to_string()]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct ChannelConfig {
    raw: Map<String, Value>,
    /// ISO 4217 code of the channel's money (`None`: the server's default).
    pub currency: Option<String>,
    /// Session-data roots copied into each order's `data` (`None`: every root but `checks` and
    /// `issues`).
    pub order_data_keys: Option<Vec<String>>,
    /// Checks whose fresh result commit demands.
    pub required_checks_on_commit: Vec<String>,
    /// Per-check settings.
    pub checks: BTreeMap<String, CheckConfig>,
    /// Topics enqueued by commit.
    pub post_commit_directives: Vec<String>,
    /// The order status machine.
    pub order_flow: OrderFlowConfig,
    /// Allow-lists and extra checks.
    pub rules: RulesConfig,
}

fn string_list(value: &Value, path: &str) -> Result<Vec<String>, ConfigError> {
    let items = value.as_array().ok_or_else(|| ConfigError::new(path, "must be a list of strings"))?;
    items
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| ConfigError::new(path, "must be a list of strings")))
        .collect()
}

fn object<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ConfigError> {
    value.as_object().ok_or_else(|| ConfigError::new(path, "must be an object"))
}

fn optional_string(map: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ConfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConfigError::new(format!("{path}.{key}"), "must be a string")),
    }
}

fn parse_order_flow(flow: &Map<String, Value>, path: &str) -> Result<OrderFlowConfig, ConfigError> {
    let transitions = match flow.get("transitions") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let table = object(v, &format!("{path}.transitions"))?;
            let mut out = BTreeMap::new();
            for (from, to) in table {
                out.insert(from.clone(), string_list(to, &format!("{path}.transitions.{from}"))?);
            }
            Some(out)
        }
    };
    let terminal_statuses = match flow.get("terminal_statuses") {
        None | Some(Value::Null) => None,
        Some(v) => Some(string_list(v, &format!("{path}.terminal_statuses"))?),
    };
    let on_create = match flow.get("auto_transitions") {
        Some(Value::Object(auto)) => optional_string(auto, "on_create", &format!("{path}.auto_transitions"))?,
        None | Some(Value::Null) => None,
        Some(_) => return Err(ConfigError::new(format!("{path}.auto_transitions"), "must be an object")),
    };
    Ok(OrderFlowConfig {
        transitions,
        terminal_statuses,
        initial_status: optional_string(flow, "initial_status", path)?,
        on_create,
    })
}

/// Checks an ISO 4217 currency code (`"EUR"`, `"BRL"`) and returns it.
///
/// Money fields (`*_q`) count the currency's smallest unit; Omniman formats them with two decimals
/// (see docs/api.md), which is right for most currencies.
///
/// ```
/// use omniman_core::channel::parse_currency;
/// assert_eq!(parse_currency("EUR").unwrap(), "EUR");
/// assert!(parse_currency("EURO").is_err());
/// assert!(parse_currency("eur").is_err());
/// ```
pub fn parse_currency(code: &str) -> Result<String, String> {
    let well_formed = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
    if well_formed && iso_currency::Currency::from_code(code).is_some() {
        Ok(code.to_owned())
    } else {
        Err(format!(
            "'{code}' is not an ISO 4217 currency code (three capital letters, e.g. \"EUR\", \"BRL\", \"USD\")"
        ))
    }
}

impl ChannelConfig {
    /// Parses a configuration object; a known key of the wrong shape is an error.
    pub fn from_value(value: Value) -> Result<ChannelConfig, ConfigError> {
        let Value::Object(raw) = value else {
            return Err(ConfigError::new("", "config must be a JSON object"));
        };
        let mut cfg = ChannelConfig::default();
        if let Some(v) = raw.get("currency").filter(|v| !v.is_null()) {
            let code = v.as_str().ok_or_else(|| ConfigError::new("currency", "must be a string"))?;
            cfg.currency = Some(parse_currency(code).map_err(|message| ConfigError::new("currency", message))?);
        }
        // Read in place by the `ChannelPrices` backend; only its shape is checked here.
        if let Some(v) = raw.get("prices").filter(|v| !v.is_null()) {
            for (sku, price) in object(v, "prices")? {
                if !price.is_i64() {
                    return Err(ConfigError::new(format!("prices.{sku}"), "must be an integer price in quanta"));
                }
            }
        }
        if let Some(v) = raw.get("order_data_keys").filter(|v| !v.is_null()) {
            let keys = string_list(v, "order_data_keys")?;
            if let Some(reserved) = keys.iter().find(|k| crate::data_path::is_reserved_root(k)) {
                return Err(ConfigError::new(
                    "order_data_keys",
                    format!("'{reserved}' is a reserved session-data root and is never copied to orders"),
                ));
            }
            cfg.order_data_keys = Some(keys);
        }
        if let Some(v) = raw.get("required_checks_on_commit").filter(|v| !v.is_null()) {
            cfg.required_checks_on_commit = string_list(v, "required_checks_on_commit")?;
        }
        if let Some(v) = raw.get("post_commit_directives").filter(|v| !v.is_null()) {
            cfg.post_commit_directives = string_list(v, "post_commit_directives")?;
        }
        if let Some(v) = raw.get("checks").filter(|v| !v.is_null()) {
            for (code, check) in object(v, "checks")? {
                let path = format!("checks.{code}");
                let check = object(check, &path)?;
                cfg.checks.insert(
                    code.clone(),
                    CheckConfig { directive_topic: optional_string(check, "directive_topic", &path)? },
                );
            }
        }
        // `flow` is shopman's alias, read only when `order_flow` is absent.
        let flow_key = if raw.contains_key("order_flow") { "order_flow" } else { "flow" };
        if let Some(v) = raw.get(flow_key).filter(|v| !v.is_null()) {
            cfg.order_flow = parse_order_flow(object(v, flow_key)?, flow_key)?;
        }
        if cfg.order_flow.on_create.is_none() {
            if let Some(v) = raw.get("auto_transitions").filter(|v| !v.is_null()) {
                cfg.order_flow.on_create =
                    optional_string(object(v, "auto_transitions")?, "on_create", "auto_transitions")?;
            }
        }
        if let Some(v) = raw.get("rules").filter(|v| !v.is_null()) {
            let rules = object(v, "rules")?;
            let list = |key: &str| -> Result<Option<Vec<String>>, ConfigError> {
                match rules.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => string_list(v, &format!("rules.{key}")).map(Some),
                }
            };
            cfg.rules = RulesConfig {
                modifiers: list("modifiers")?,
                validators: list("validators")?,
                checks: list("checks")?.unwrap_or_default(),
            };
        }
        cfg.raw = raw;
        Ok(cfg)
    }

    /// The configuration exactly as stored.
    pub fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// Top-level keys that are neither interpreted nor known opaque data; reported as warnings.
    pub fn unknown_keys(&self) -> Vec<String> {
        self.raw
            .keys()
            .filter(|k| !TYPED_KEYS.contains(&k.as_str()) && !OPAQUE_KEYS.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    /// Check codes enqueued after a modify: required ones first, then `rules.checks` extras, no repeats.
    pub fn modify_check_codes(&self) -> Vec<&str> {
        let mut codes: Vec<&str> = Vec::new();
        for code in self.required_checks_on_commit.iter().chain(&self.rules.checks) {
            if !codes.contains(&code.as_str()) {
                codes.push(code);
            }
        }
        codes
    }

    /// The configured directive topic of a check code, if any.
    pub fn check_topic(&self, code: &str) -> Option<&str> {
        self.checks.get(code).and_then(|c| c.directive_topic.as_deref())
    }

    /// Whether `rules.modifiers` lets a modifier run.
    pub fn allows_modifier(&self, code: &str) -> bool {
        code.starts_with("pricing.")
            || self.rules.modifiers.as_ref().is_none_or(|allowed| allowed.iter().any(|m| m == code))
    }

    /// Whether `rules.validators` lets a validator run.
    pub fn allows_validator(&self, code: &str) -> bool {
        self.rules.validators.as_ref().is_none_or(|allowed| allowed.iter().any(|v| v == code))
    }
}

impl TryFrom<Value> for ChannelConfig {
    type Error = ConfigError;

    fn try_from(value: Value) -> Result<ChannelConfig, ConfigError> {
        ChannelConfig::from_value(value)
    }
}

impl From<ChannelConfig> for Value {
    fn from(cfg: ChannelConfig) -> Value {
        Value::Object(cfg.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_config_is_default() {
        let cfg = ChannelConfig::from_value(json!({})).unwrap();
        assert!(cfg.required_checks_on_commit.is_empty());
        assert!(cfg.order_flow.transitions.is_none());
        assert!(cfg.unknown_keys().is_empty());
    }

    #[test]
    fn typed_keys_are_parsed() {
        let cfg = ChannelConfig::from_value(json!({
            "required_checks_on_commit": ["stock"],
            "checks": {"stock": {"directive_topic": "inventory.reserve", "ttl": 5}},
            "post_commit_directives": ["stock.commit"],
            "order_flow": {"transitions": {"new": ["processing"]}, "terminal_statuses": ["done"],
                           "initial_status": "new", "auto_transitions": {"on_create": "processing"}},
            "rules": {"modifiers": ["discount"], "checks": ["fraud", "stock"]},
            "icon": "cart"
        }))
        .unwrap();
        assert_eq!(cfg.check_topic("stock"), Some("inventory.reserve"));
        assert_eq!(cfg.order_flow.on_create.as_deref(), Some("processing"));
        assert_eq!(cfg.modify_check_codes(), vec!["stock", "fraud"]);
        assert!(cfg.allows_modifier("pricing.item"));
        assert!(cfg.allows_modifier("discount"));
        assert!(!cfg.allows_modifier("loyalty"));
        assert!(cfg.unknown_keys().is_empty());
        // Served verbatim, including keys inside typed sections that the core ignores.
        assert_eq!(Value::from(cfg)["checks"]["stock"]["ttl"], json!(5));
    }

    #[test]
    fn flow_alias_and_top_level_auto_transitions() {
        let cfg = ChannelConfig::from_value(json!({
            "flow": {"transitions": {"new": ["ready"]}},
            "auto_transitions": {"on_create": "ready"}
        }))
        .unwrap();
        assert!(cfg.order_flow.transitions.is_some());
        assert_eq!(cfg.order_flow.on_create.as_deref(), Some("ready"));
        let both = ChannelConfig::from_value(json!({
            "order_flow": {"transitions": {"new": ["a"]}}, "flow": {"transitions": {"new": ["b"]}}
        }))
        .unwrap();
        assert_eq!(both.order_flow.transitions.unwrap()["new"], vec!["a".to_string()]);
    }

    #[test]
    fn unknown_keys_are_kept_and_reported() {
        let cfg = ChannelConfig::from_value(json!({"colour": "blue", "icon": "x"})).unwrap();
        assert_eq!(cfg.unknown_keys(), vec!["colour".to_string()]);
        assert_eq!(cfg.raw()["colour"], json!("blue"));
    }

    #[test]
    fn currency_is_an_iso_4217_code() {
        let cfg = ChannelConfig::from_value(json!({"currency": "EUR"})).unwrap();
        assert_eq!(cfg.currency.as_deref(), Some("EUR"));
        assert!(cfg.unknown_keys().is_empty());
        for bad in [json!("EURO"), json!("eur"), json!("XYZ"), json!(978)] {
            let err = ChannelConfig::from_value(json!({"currency": bad})).unwrap_err();
            assert_eq!(err.path, "currency", "{bad}");
        }
        assert!(ChannelConfig::from_value(json!({})).unwrap().currency.is_none());
    }

    #[test]
    fn prices_are_integers_by_sku() {
        assert!(ChannelConfig::from_value(json!({"prices": {"COFFEE": 450}})).unwrap().unknown_keys().is_empty());
        let err = ChannelConfig::from_value(json!({"prices": {"COFFEE": "4.50"}})).unwrap_err();
        assert_eq!(err.path, "prices.COFFEE");
        assert_eq!(ChannelConfig::from_value(json!({"prices": []})).unwrap_err().path, "prices");
    }

    #[test]
    fn order_data_keys_narrow_and_refuse_reserved_roots() {
        let cfg = ChannelConfig::from_value(json!({"order_data_keys": ["customer", "notes"]})).unwrap();
        assert_eq!(cfg.order_data_keys, Some(vec!["customer".to_owned(), "notes".to_owned()]));
        let err = ChannelConfig::from_value(json!({"order_data_keys": ["customer", "checks"]})).unwrap_err();
        assert_eq!(err.path, "order_data_keys");
        assert!(err.message.contains("'checks'"), "{}", err.message);
    }

    #[test]
    fn wrong_shapes_are_errors_with_paths() {
        let err = ChannelConfig::from_value(json!({"required_checks_on_commit": "stock"})).unwrap_err();
        assert_eq!(err.path, "required_checks_on_commit");
        let err = ChannelConfig::from_value(json!({"order_flow": {"transitions": {"new": [1]}}})).unwrap_err();
        assert_eq!(err.path, "order_flow.transitions.new");
        assert!(ChannelConfig::from_value(json!([])).is_err());
    }
}
