//! Input parsed at the edge: each type below can only hold a value that passed its rule, so a
//! function that takes a [`SessionKey`] cannot be handed an unchecked string. Each rule lives
//! here once (docs/reference.md §1 and §3 give the lengths and alphabets).
//!
//! Text never holds NUL or another control character: PostgreSQL refuses NUL in text and JSON,
//! and both backends must store the same things.
//!
//! ```
//! use omniman_core::input::{ChannelCode, SessionKey};
//! use omniman_core::error::FieldErrors;
//!
//! let mut errors = FieldErrors::default();
//! let channel = errors.take("channel_code", ChannelCode::parse("pos"));
//! let key = errors.take("session_key", SessionKey::parse("table 12"));
//! assert_eq!(channel.as_deref(), Some("pos"));
//! assert!(key.is_none());
//! assert_eq!(errors.0["session_key"], ["must match [A-Za-z0-9_.:-]{1,64}"]);
//! ```

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::FieldErrors;

/// A value that broke its type's rule; [`InvalidInput::at`] places it in a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

impl InvalidInput {
    /// The problem as a field error at `path`.
    pub fn at(self, path: impl Into<String>) -> FieldErrors {
        FieldErrors::one(path, self.0)
    }
}

impl FieldErrors {
    /// The parsed value, or `None` with the problem recorded at `path`: parse every field of a
    /// request, then report all problems at once.
    pub fn take<T>(&mut self, path: &str, parsed: Result<T, InvalidInput>) -> Option<T> {
        parsed.map_err(|e| self.add(path, e.0)).ok()
    }
}

/// Whether `text` has a NUL or another control character (tab and newline included).
pub fn has_control_chars(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// Text of 1 to `max` characters without control characters.
fn plain_text(raw: &str, max: usize) -> Result<(), InvalidInput> {
    if raw.is_empty() {
        return Err(InvalidInput("may not be empty".into()));
    }
    if raw.chars().count() > max {
        return Err(InvalidInput(format!("at most {max} characters")));
    }
    if has_control_chars(raw) {
        return Err(InvalidInput("may not contain NUL or other control characters".into()));
    }
    Ok(())
}

/// `[A-Za-z0-9_.:-]{1,64}`.
pub(crate) fn session_key_rule(raw: &str) -> Result<(), InvalidInput> {
    let ok = (1..=64).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok { Ok(()) } else { Err(InvalidInput("must match [A-Za-z0-9_.:-]{1,64}".into())) }
}

/// 1 to 128 visible ASCII characters.
pub(crate) fn idempotency_key_rule(raw: &str) -> Result<(), InvalidInput> {
    let ok = (1..=128).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(InvalidInput("must be 1 to 128 visible ASCII characters".into())) }
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, |$raw:ident| $rule:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `raw` against the rule and keeps it.
            pub fn parse(raw: impl Into<String>) -> Result<$name, InvalidInput> {
                let $raw: String = raw.into();
                $rule?;
                Ok($name($raw))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidInput;
            fn try_from(raw: String) -> Result<$name, InvalidInput> {
                $name::parse(raw)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidInput;
            fn try_from(raw: &str) -> Result<$name, InvalidInput> {
                $name::parse(raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

text_type!(
    /// A channel's code: 1 to 64 characters, no control characters.
    ChannelCode,
    |raw| plain_text(&raw, 64)
);

text_type!(
    /// A session key: `[A-Za-z0-9_.:-]{1,64}` (generated keys, `SESS-…`, match it too).
    SessionKey,
    |raw| session_key_rule(&raw)
);

text_type!(
    /// A client's idempotency key: 1 to 128 visible ASCII characters.
    IdempotencyKey,
    |raw| idempotency_key_rule(&raw)
);

text_type!(
    /// What a session's handle is (`table`, `tab`, `marketplace`…): 1 to 32 characters, no
    /// control characters.
    HandleType,
    |raw| plain_text(&raw, 32)
);

text_type!(
    /// Which one (`12`, `#7 Ana`…): 1 to 64 characters, no control characters; `#`, `&` and
    /// accents are kept as given.
    HandleRef,
    |raw| plain_text(&raw, 64)
);

text_type!(
    /// A stock keeping unit: 1 to 64 characters, no control characters.
    Sku,
    |raw| plain_text(&raw, 64)
);

/// An amount of money in quanta (the currency's smallest unit): a JSON integer within `i64`.
///
/// ```
/// use omniman_core::input::Money;
/// assert_eq!(Money::from_json(&serde_json::json!(450)).unwrap().quanta(), 450);
/// assert!(Money::from_json(&serde_json::json!(4.5)).is_err());
/// assert!(Money::from_json(&serde_json::json!("450")).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Money(i64);

impl Money {
    /// An amount of `quanta`.
    pub const fn new(quanta: i64) -> Money {
        Money(quanta)
    }

    /// Reads a JSON integer within `i64`.
    pub fn from_json(value: &Value) -> Result<Money, InvalidInput> {
        value.as_i64().map(Money).ok_or_else(|| InvalidInput("must be an integer amount in quanta".into()))
    }

    /// The amount in quanta.
    pub const fn quanta(self) -> i64 {
        self.0
    }
}

/// A session addressed by its channel and key: what every call on one session takes, so the two
/// strings can never be swapped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SessionRef {
    /// The channel.
    pub channel: ChannelCode,
    /// The key, unique within the channel.
    pub key: SessionKey,
}

impl SessionRef {
    /// Parses both parts, reporting each problem under its usual field name.
    ///
    /// ```
    /// use omniman_core::input::SessionRef;
    /// let at = SessionRef::parse("pos", "SESS-1").unwrap();
    /// assert_eq!((at.channel.as_str(), at.key.as_str()), ("pos", "SESS-1"));
    /// let errors = SessionRef::parse("", "a b").unwrap_err();
    /// assert_eq!(errors.0.keys().collect::<Vec<_>>(), ["channel_code", "session_key"]);
    /// ```
    pub fn parse(channel: &str, key: &str) -> Result<SessionRef, FieldErrors> {
        let mut errors = FieldErrors::default();
        let channel = errors.take("channel_code", ChannelCode::parse(channel));
        let key = errors.take("session_key", SessionKey::parse(key));
        match (channel, key) {
            (Some(channel), Some(key)) => Ok(SessionRef { channel, key }),
            _ => Err(errors),
        }
    }
}

impl fmt::Display for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        assert!(ChannelCode::parse("pos").is_ok());
        assert!(ChannelCode::parse("a".repeat(64)).is_ok());
        assert_eq!(ChannelCode::parse("a".repeat(65)).unwrap_err().0, "at most 64 characters");
        assert_eq!(ChannelCode::parse("").unwrap_err().0, "may not be empty");
        for bad in ["po\0s", "tab\there", "line\n"] {
            let err = Sku::parse(bad).unwrap_err();
            assert!(err.0.contains("control characters"), "{bad:?}");
        }
        assert!(HandleRef::parse("#7 Ana & Zé").is_ok(), "symbols and accents are kept");
        assert!(HandleType::parse("x".repeat(33)).is_err());
        assert!(SessionKey::parse("SESS-PPBB2AH5MP84").is_ok());
        assert!(SessionKey::parse("IFOOD:123.a_b-c").is_ok());
        for bad in ["", "a b", "ção", "a\0", &"k".repeat(65)] {
            assert!(SessionKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IdempotencyKey::parse("till-1-0001").is_ok());
        for bad in ["", "a b", "ção", &"k".repeat(129)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn serde_checks_on_the_way_in() {
        let sku: Sku = serde_json::from_value(serde_json::json!("COFFEE")).unwrap();
        assert_eq!(serde_json::to_value(&sku).unwrap(), serde_json::json!("COFFEE"));
        assert!(serde_json::from_value::<Sku>(serde_json::json!("")).is_err());
        assert!(serde_json::from_value::<SessionKey>(serde_json::json!("a\u{0}b")).is_err());
    }

    #[test]
    fn errors_collect_by_path() {
        let mut errors = FieldErrors::default();
        assert!(errors.take("sku", Sku::parse("")).is_none());
        assert_eq!(errors.take("handle_ref", HandleRef::parse("12")).as_deref(), Some("12"));
        assert_eq!(errors.0.len(), 1);
        assert_eq!(InvalidInput("x".into()).at("ops[0].sku").0["ops[0].sku"], ["x"]);
    }
}
