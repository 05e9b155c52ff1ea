//! Sessions and their lines (docs/reference.md §1.2).

use std::borrow::Cow;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::channel::{Channel, EditPolicy, PricingPolicy};
use crate::money::{Qty, checked_monetary_mult, monetary_mult};

/// Where a session is in its life. It leaves `open` once and never returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Accepts ops and commit.
    Open,
    /// Sealed into an order.
    Committed,
    /// Given up.
    Abandoned,
}

impl SessionState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Open => "open",
            SessionState::Committed => "committed",
            SessionState::Abandoned => "abandoned",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<SessionState> {
        match s {
            "open" => Some(SessionState::Open),
            "committed" => Some(SessionState::Committed),
            "abandoned" => Some(SessionState::Abandoned),
            _ => None,
        }
    }
}

/// One line of a session.
///
/// `unit_price_q` and `line_total_q` are `None` only while the modify pipeline runs (a line nobody
/// priced yet); persisted lines always carry both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Unique within the session.
    pub line_id: String,
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Positive quantity.
    pub qty: Qty,
    /// Price of one unit in quanta.
    #[serde(default)]
    pub unit_price_q: Option<i64>,
    /// Line total in quanta.
    #[serde(default)]
    pub line_total_q: Option<i64>,
    /// Free-form data.
    #[serde(default)]
    pub meta: Map<String, Value>,
}

impl Item {
    /// The stored total, or `qty × unit price` when none is stored.
    pub fn total_q(&self) -> i64 {
        self.line_total_q.unwrap_or_else(|| monetary_mult(self.qty, self.unit_price_q.unwrap_or(0)))
    }

    /// Recomputes the total from qty and price (unset price leaves the total unset too, and so
    /// does a product beyond `i64`, which [`Session::check_amounts`] then refuses).
    pub fn reprice(&mut self) {
        self.line_total_q = self.unit_price_q.and_then(|p| checked_monetary_mult(self.qty, p));
    }

    /// The stored total, or `qty × unit price` when none is stored; `None` when the product
    /// does not fit in an `i64`, or the line has a price whose product with its quantity does not.
    pub fn checked_total_q(&self) -> Option<i64> {
        let computed = checked_monetary_mult(self.qty, self.unit_price_q.unwrap_or(0))?;
        Some(self.line_total_q.unwrap_or(computed))
    }

    /// The line as `serde_json::to_value` gives it (same keys, order and values), built directly
    /// rather than through serde's `Serializer`: a copy of [`LINE_KEYS`] (whose hash table comes
    /// along, so no key is hashed again) with the values written in the keys' order.
    fn to_json(&self) -> Value {
        let values = [
            Value::String(self.line_id.clone()),
            Value::String(self.sku.clone()),
            Value::String(self.name.clone()),
            Value::String(self.qty.to_string()),
            self.unit_price_q.map_or(Value::Null, Value::from),
            self.line_total_q.map_or(Value::Null, Value::from),
            Value::Object(self.meta.clone()),
        ];
        let mut line = LINE_KEYS.clone();
        for (slot, value) in line.values_mut().zip(values) {
            *slot = value;
        }
        Value::Object(line)
    }
}

/// The keys of a line's JSON in `Item`'s field order, each holding `null`. `serde_json` is built
/// with `preserve_order`, so a map iterates in insertion order.
static LINE_KEYS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    ["line_id", "sku", "name", "qty", "unit_price_q", "line_total_q", "meta"]
        .into_iter()
        .map(|key| (key.to_owned(), Value::Null))
        .collect()
});

/// The most lines a session may hold: a modify that would leave more is a `validation_error` at
/// `ops`, an import of more one at `items` (docs/api.md, "Limits"). A session holding more
/// (written before the limit) can still lose lines and be committed.
pub const MAX_LINES_PER_SESSION: usize = 1_000;

/// A mutable cart or tab, changed by batches of ops.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Database id (0 before insertion).
    pub id: i64,
    /// Owning channel id.
    pub channel_id: i64,
    /// Owning channel code.
    pub channel_code: String,
    /// Unique per channel.
    pub session_key: String,
    /// Human locator kind (table, tab…).
    pub handle_type: Option<String>,
    /// Human locator value.
    pub handle_ref: Option<String>,
    /// Life-cycle state.
    pub state: SessionState,
    /// Copied from the channel at creation.
    pub pricing_policy: PricingPolicy,
    /// Copied from the channel at creation.
    pub edit_policy: EditPolicy,
    /// +1 per successful modify.
    pub rev: i64,
    /// +1 per persisted change of any kind.
    pub version: i64,
    /// Lines, in insertion order.
    pub items: Vec<Item>,
    /// Free-form data with the system keys `checks` and `issues`.
    pub data: Map<String, Value>,
    /// Written by modifiers.
    pub pricing: Map<String, Value>,
    /// Written by modifiers.
    pub pricing_trace: Vec<Value>,
    /// Idempotency key of the successful commit.
    pub commit_token: Option<String>,
    /// Creation time.
    pub opened_at: DateTime<Utc>,
    /// Last persisted change.
    pub updated_at: DateTime<Utc>,
    /// Commit time.
    pub committed_at: Option<DateTime<Utc>>,
}

/// `{"checks": {}, "issues": []}`: the data of a freshly opened session.
pub fn empty_session_data() -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("checks".into(), Value::Object(Map::new()));
    data.insert("issues".into(), Value::Array(Vec::new()));
    data
}

impl Session {
    /// A new open session on `channel` (id 0 until stored); policies are copied from the channel.
    pub fn open(
        channel: &Channel,
        session_key: String,
        handle_type: Option<String>,
        handle_ref: Option<String>,
        now: DateTime<Utc>,
    ) -> Session {
        Session {
            id: 0,
            channel_id: channel.id,
            channel_code: channel.code.clone(),
            session_key,
            handle_type,
            handle_ref,
            state: SessionState::Open,
            pricing_policy: channel.pricing_policy,
            edit_policy: channel.edit_policy,
            rev: 0,
            version: 0,
            items: Vec::new(),
            data: empty_session_data(),
            pricing: Map::new(),
            pricing_trace: Vec::new(),
            commit_token: None,
            opened_at: now,
            updated_at: now,
            committed_at: None,
        }
    }

    /// Σ line totals (missing totals computed). A session that passed
    /// [`Session::check_amounts`] (every modify, import and commit runs it) never saturates here.
    pub fn total_q(&self) -> i64 {
        self.items.iter().map(Item::total_q).fold(0_i64, i64::saturating_add)
    }

    /// Refuses (`invalid_amount`, 400) a session whose line totals or total do not fit in an
    /// `i64` of quanta: an amount is refused rather than saturated, so a total is never wrong.
    /// Answers the total.
    pub fn check_amounts(&self) -> Result<i64, crate::error::Rejection> {
        let mut sum = 0_i64;
        for (i, item) in self.items.iter().enumerate() {
            let Some(line) = item.checked_total_q() else {
                return Err(crate::error::Rejection::new(
                    crate::error::Code::InvalidAmount,
                    format!("line {} costs more than {} quanta (qty × unit_price_q)", item.line_id, i64::MAX),
                )
                .with("field", format!("items[{i}]"))
                .with("line_id", item.line_id.clone()));
            };
            sum = sum.checked_add(line).ok_or_else(|| {
                crate::error::Rejection::new(
                    crate::error::Code::InvalidAmount,
                    format!("the session total does not fit in {} quanta", i64::MAX),
                )
                .with("field", "total_q")
            })?;
        }
        Ok(sum)
    }

    /// Number of lines (not units).
    pub fn items_count(&self) -> usize {
        self.items.len()
    }

    /// The line with this id.
    pub fn line(&self, line_id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.line_id == line_id)
    }

    /// The currency the session was opened in (`pricing.currency`), if recorded.
    pub fn currency(&self) -> Option<&str> {
        self.pricing.get("currency").and_then(Value::as_str)
    }

    /// Records the session's currency in `pricing.currency`, where clients read it beside the
    /// totals and where commit takes the order's currency from.
    pub fn set_currency(&mut self, code: &str) {
        self.pricing.insert("currency".into(), code.into());
    }

    /// `data.checks`, or an empty object.
    pub fn checks(&self) -> Option<&Map<String, Value>> {
        self.data.get("checks").and_then(Value::as_object)
    }

    /// `data.issues`, or nothing.
    pub fn issues(&self) -> &[Value] {
        self.data.get("issues").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    /// The issue with this id.
    pub fn issue(&self, issue_id: &str) -> Option<&Value> {
        self.issues().iter().find(|i| i.get("id").and_then(Value::as_str) == Some(issue_id))
    }

    /// The ETag value: `"<rev>.<version>"` (quotes included).
    pub fn etag(&self) -> String {
        format!("\"{}.{}\"", self.rev, self.version)
    }

    /// Items as they are persisted and sent to checks: prices and totals always numbers.
    ///
    /// The same value as `serde_json::to_value(&self.items)`.
    pub fn items_json(&self) -> Value {
        Value::Array(self.items.iter().map(Item::to_json).collect())
    }
}

/// Lets [`crate::commit::plan_commit`] take a session by value (no copy).
impl From<Session> for Cow<'_, Session> {
    fn from(session: Session) -> Self {
        Cow::Owned(session)
    }
}

/// Lets [`crate::commit::plan_commit`] take a borrowed session (copied once).
impl<'a> From<&'a Session> for Cow<'a, Session> {
    fn from(session: &'a Session) -> Self {
        Cow::Borrowed(session)
    }
}

/// Sets `map[key]` to `value`, keeping the entry (its place and its key's allocation) when there
/// is one: `Map::insert` would allocate a new key only to drop it.
pub(crate) fn set_key(map: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(slot) = map.get_mut(key) {
        *slot = value;
    } else {
        map.insert(key.to_owned(), value);
    }
}

/// An `If-Match` precondition on a session (docs/api.md, ETags and preconditions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: any current representation.
    Any,
    /// `"<rev>"`: compares rev only.
    Rev(i64),
    /// `"<rev>.<version>"`: compares both.
    RevVersion(i64, i64),
    /// A value that can match nothing; kept as sent for the error context.
    Unparsable(String),
}

impl Precondition {
    /// Parses an `If-Match` header value (quotes and a weak `W/` prefix allowed).
    ///
    /// ```
    /// use omniman_core::session::Precondition;
    /// assert_eq!(Precondition::parse("\"3.5\""), Precondition::RevVersion(3, 5));
    /// assert_eq!(Precondition::parse("\"3\""), Precondition::Rev(3));
    /// assert_eq!(Precondition::parse("*"), Precondition::Any);
    /// ```
    pub fn parse(header: &str) -> Precondition {
        let raw = header.trim();
        if raw == "*" {
            return Precondition::Any;
        }
        let inner = raw.strip_prefix("W/").unwrap_or(raw).trim_matches('"');
        let mut parts = inner.splitn(2, '.');
        let rev = parts.next().and_then(|r| r.parse::<i64>().ok());
        match (rev, parts.next()) {
            (Some(rev), None) => Precondition::Rev(rev),
            (Some(rev), Some(v)) => v
                .parse()
                .map_or_else(|_| Precondition::Unparsable(header.to_owned()), |v| Precondition::RevVersion(rev, v)),
            _ => Precondition::Unparsable(header.to_owned()),
        }
    }

    /// Whether the session satisfies the precondition.
    pub fn matches(&self, session: &Session) -> bool {
        match *self {
            Precondition::Any => true,
            Precondition::Rev(rev) => session.rev == rev,
            Precondition::RevVersion(rev, version) => session.rev == rev && session.version == version,
            Precondition::Unparsable(_) => false,
        }
    }

    /// The value as the client sent it, for `precondition_failed.context.expected`.
    pub fn expected(&self) -> String {
        match self {
            Precondition::Any => "*".to_owned(),
            Precondition::Rev(rev) => format!("\"{rev}\""),
            Precondition::RevVersion(rev, version) => format!("\"{rev}.{version}\""),
            Precondition::Unparsable(raw) => raw.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn items_json_is_what_serde_gives() {
        let channel = testing::channel("pos");
        let mut session = testing::session(&channel, "S1");
        let meta = serde_json::json!({"notes": "no sugar", "extras": [1, {"a": null}]});
        session.items = vec![
            Item {
                line_id: "L-1".into(),
                sku: "TEA".into(),
                name: "Black tea".into(),
                qty: Qty::from_millis(2500).unwrap(),
                unit_price_q: Some(400),
                line_total_q: Some(1000),
                meta: meta.as_object().unwrap().clone(),
            },
            Item {
                line_id: "L-2".into(),
                sku: "X".into(),
                name: String::new(),
                qty: Qty::from_units(1).unwrap(),
                unit_price_q: None,
                line_total_q: Some(-5),
                meta: Map::new(),
            },
        ];
        let serde = serde_json::to_value(&session.items).unwrap();
        let direct = session.items_json();
        assert_eq!(direct, serde);
        // Map equality ignores key order; the serialised text does not.
        assert_eq!(direct.to_string(), serde.to_string());
        assert_eq!(Session { items: Vec::new(), ..session }.items_json(), serde_json::json!([]));
    }
}
