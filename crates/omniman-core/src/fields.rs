//! The one reader of JSON objects sent from outside: ops, import lines and HTTP request bodies.
//!
//! A [`FieldReader`] reads typed fields out of one JSON object and records every problem under
//! its path (`ops[2].qty`, `items[0].sku`, `channel_code`) instead of stopping at the first, so
//! that a client learns everything wrong with a request in one answer. `null` counts as absent
//! everywhere. It also remembers which keys were asked for, so that a caller that must refuse
//! unknown fields (an HTTP body: a misspelt `idempotency_key` must not commit without one) can do
//! so with [`FieldReader::finish_strict`], and a test can compare those keys with a documented
//! schema.
//!
//! ```
//! use omniman_core::fields::FieldReader;
//! use omniman_core::input::SessionKey;
//!
//! let body = serde_json::json!({"session_key": "T-1", "note": 3, "extra": true});
//! let mut f = FieldReader::new(body.as_object().unwrap());
//! let key = f.parsed("session_key", SessionKey::parse);
//! let note = f.string("note", 1000);
//! assert_eq!((key.unwrap().as_str(), note), ("T-1", None));
//! let errors = f.finish_strict().unwrap_err();
//! assert_eq!(errors.0["note"], ["must be a string"]);
//! assert!(errors.0["extra"][0].starts_with("unknown field"));
//! ```

use serde_json::{Map, Value};

use crate::error::FieldErrors;
use crate::input::InvalidInput;

/// Unknown fields reported in one answer, at most: a body of junk keys gets a bounded reply.
pub const MAX_UNKNOWN_REPORTED: usize = 10;

/// A line's `meta`, as compact JSON, at most (docs/api.md, "Limits").
pub const MAX_META_BYTES: usize = 16 * 1024;
/// A session's `data` (after a batch or an import) and one `set_data` value, as compact JSON, at
/// most (docs/api.md, "Limits").
pub const MAX_DATA_BYTES: usize = 64 * 1024;
/// Nesting of objects and lists in a `meta`, a `data` or a `set_data` value, counting the value
/// itself (`{}` is 1, `{"a": []}` is 2), and of a value within the session's `data` (its path's
/// segments count).
pub const MAX_JSON_DEPTH: usize = 16;
/// An object key anywhere inside a `meta`, a `data` or a `set_data` value, in characters.
pub const MAX_JSON_KEY_CHARS: usize = 128;

/// Checks a client-given JSON value against the limits: at most `max_bytes` as compact JSON, at
/// most [`MAX_JSON_DEPTH`] levels (counting from `depth`, the levels above it) and object keys of
/// at most [`MAX_JSON_KEY_CHARS`] characters. The error is the problem, for a field path.
///
/// ```
/// use omniman_core::fields::{check_json, MAX_JSON_DEPTH};
/// assert!(check_json(&serde_json::json!({"a": [1, 2]}), 100, 0).is_ok());
/// assert!(check_json(&serde_json::json!({"a": "long text"}), 10, 0).unwrap_err().contains("at most 10 bytes"));
/// assert!(check_json(&serde_json::json!([[]]), 100, MAX_JSON_DEPTH - 1).is_err());
/// ```
pub fn check_json(value: &Value, max_bytes: usize, depth: usize) -> Result<(), String> {
    within_limits(deepest(value, depth), value, max_bytes)
}

/// [`check_json`] of an object (a session's `data`) without wrapping it in a [`Value`].
pub fn check_json_object(map: &Map<String, Value>, max_bytes: usize) -> Result<(), String> {
    within_limits(deepest_in_object(map, 0), map, max_bytes)
}

fn within_limits(
    deepest: Result<usize, String>,
    value: &impl serde::Serialize,
    max_bytes: usize,
) -> Result<(), String> {
    if deepest.map_err(|e| format!("must have {e}"))? > MAX_JSON_DEPTH {
        return Err(format!("must be nested at most {MAX_JSON_DEPTH} levels deep"));
    }
    let mut size = Bounded { left: max_bytes };
    if serde_json::to_writer(&mut size, value).is_err() {
        return Err(format!("must be at most {max_bytes} bytes of JSON"));
    }
    Ok(())
}

/// The deepest level of containers in `value`, `depth` levels above it, or the first key that
/// is too long; stops counting past the limit.
fn deepest(value: &Value, depth: usize) -> Result<usize, String> {
    match value {
        Value::Array(list) => deepest_of(list.iter(), depth),
        Value::Object(map) => deepest_in_object(map, depth),
        _ => Ok(depth),
    }
}

fn deepest_in_object(map: &Map<String, Value>, depth: usize) -> Result<usize, String> {
    if map.keys().any(|key| key.chars().count() > MAX_JSON_KEY_CHARS) {
        return Err(format!("object keys of at most {MAX_JSON_KEY_CHARS} characters"));
    }
    deepest_of(map.values(), depth)
}

fn deepest_of<'v>(children: impl Iterator<Item = &'v Value>, depth: usize) -> Result<usize, String> {
    let mut max = depth + 1;
    for child in children {
        if max > MAX_JSON_DEPTH {
            break;
        }
        max = max.max(deepest(child, depth + 1)?);
    }
    Ok(max)
}

/// A writer that takes `left` bytes and then fails: measures JSON without building it.
struct Bounded {
    left: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.left = self.left.checked_sub(buf.len()).ok_or_else(|| std::io::Error::other("too big"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads typed fields out of one JSON object, recording problems by path. See the
/// [module docs](self).
#[derive(Debug)]
pub struct FieldReader<'a> {
    object: &'a Map<String, Value>,
    /// Prepended to every key in a recorded path (`ops[3]` → `ops[3].sku`); empty at the top.
    prefix: String,
    errors: FieldErrors,
    /// Every key asked for, present or not.
    asked: Vec<&'static str>,
}

impl<'a> FieldReader<'a> {
    /// A reader of a top-level object: paths are the bare keys.
    pub fn new(object: &'a Map<String, Value>) -> FieldReader<'a> {
        FieldReader::at("", object)
    }

    /// A reader of a nested object whose paths start with `prefix` (`items[2]`).
    pub fn at(prefix: impl Into<String>, object: &'a Map<String, Value>) -> FieldReader<'a> {
        FieldReader { object, prefix: prefix.into(), errors: FieldErrors::default(), asked: Vec::new() }
    }

    /// The full path of `key` in this object.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_owned() } else { format!("{}.{key}", self.prefix) }
    }

    /// The raw value of a field; absent and `null` are the same.
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.as_sent(key).filter(|v| !v.is_null())
    }

    /// The value of a field as sent, `null` included, for the rare field where `null` is a
    /// value to refuse by its own rule rather than an absence.
    pub fn as_sent(&mut self, key: &'static str) -> Option<&'a Value> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        self.object.get(key)
    }

    /// An optional string of at most `max` characters.
    pub fn string(&mut self, key: &'static str, max: usize) -> Option<String> {
        match self.raw(key)? {
            Value::String(s) if s.chars().count() > max => {
                self.error(key, format!("at most {max} characters"));
                None
            }
            Value::String(s) => Some(s.clone()),
            _ => {
                self.error(key, "must be a string");
                None
            }
        }
    }

    /// A string that must be present (it may be empty: what an empty one means is the caller's
    /// rule); `""` when a problem was recorded.
    pub fn required(&mut self, key: &'static str, max: usize) -> String {
        if self.raw(key).is_none() {
            self.error(key, "this field is required");
            return String::new();
        }
        self.string(key, max).unwrap_or_default()
    }

    /// A string that must be present and not empty; `""` when a problem was recorded.
    pub fn non_empty(&mut self, key: &'static str, max: usize) -> String {
        if self.raw(key).is_some_and(|v| v.as_str() == Some("")) {
            self.error(key, "may not be empty");
            return String::new();
        }
        self.required(key, max)
    }

    /// An optional whole number within 64 bits.
    pub fn integer(&mut self, key: &'static str) -> Option<i64> {
        match self.raw(key)? {
            Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
            Value::Number(n) if n.is_f64() => {
                self.error(key, "must be a whole number");
                None
            }
            Value::Number(_) => {
                self.error(key, "out of range for a 64-bit integer");
                None
            }
            _ => {
                self.error(key, "must be an integer");
                None
            }
        }
    }

    /// An optional `true` or `false`.
    pub fn boolean(&mut self, key: &'static str) -> Option<bool> {
        let value = self.raw(key)?.as_bool();
        if value.is_none() {
            self.error(key, "must be true or false");
        }
        value
    }

    /// An optional list of strings, each of at most `max` characters.
    pub fn strings(&mut self, key: &'static str, max: usize) -> Option<Vec<String>> {
        let list = self.list(key)?;
        let mut strings = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            match item.as_str() {
                Some(s) if s.chars().count() <= max => strings.push(s.to_owned()),
                Some(_) => self.error(&format!("{key}[{i}]"), format!("at most {max} characters")),
                None => self.error(&format!("{key}[{i}]"), "must be a string"),
            }
        }
        (strings.len() == list.len()).then_some(strings)
    }

    /// An optional JSON object.
    pub fn object(&mut self, key: &'static str) -> Option<&'a Map<String, Value>> {
        let value = self.raw(key)?;
        if let Value::Object(m) = value {
            return Some(m);
        }
        self.error(key, "must be an object");
        None
    }

    /// An optional JSON object within the limits of [`check_json`] (`max_bytes`, depth, keys):
    /// a `meta` or a `data`.
    pub fn bounded_object(&mut self, key: &'static str, max_bytes: usize) -> Option<&'a Map<String, Value>> {
        let map = self.object(key)?;
        let value = self.raw(key)?;
        match check_json(value, max_bytes, 0) {
            Ok(()) => Some(map),
            Err(problem) => {
                self.error(key, problem);
                None
            }
        }
    }

    /// An optional JSON list.
    pub fn list(&mut self, key: &'static str) -> Option<&'a Vec<Value>> {
        let value = self.raw(key)?;
        if let Value::Array(list) = value {
            return Some(list);
        }
        self.error(key, "must be a list");
        None
    }

    /// An optional string parsed into an input type (`SessionKey::parse`…).
    pub fn parsed<T>(&mut self, key: &'static str, parse: impl FnOnce(String) -> Result<T, InvalidInput>) -> Option<T> {
        let raw = self.string(key, usize::MAX)?;
        self.take(key, parse(raw))
    }

    /// A value parsed elsewhere (a path segment, a query parameter…), or `None` with its problem
    /// recorded at `key`.
    pub fn take<T>(&mut self, key: &str, parsed: Result<T, InvalidInput>) -> Option<T> {
        let path = self.path(key);
        self.errors.take(&path, parsed)
    }

    /// Records a problem at `key`.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path(key);
        self.errors.add(path, message);
    }

    /// Adds problems found elsewhere, with their paths as they are (e.g. a batch of ops).
    pub fn merge(&mut self, other: FieldErrors) {
        self.errors.merge(other);
    }

    /// Whether no problem has been recorded yet.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// The keys asked for so far, in the order first asked.
    pub fn asked(&self) -> &[&'static str] {
        &self.asked
    }

    /// The problems recorded; fields never asked for are ignored (ops, import lines: unknown
    /// fields there are allowed, docs/reference.md §4).
    pub fn finish(self) -> Result<(), FieldErrors> {
        self.errors.into_result()
    }

    /// Like [`finish`](Self::finish), and every field of the object must be one that was asked
    /// for: the others are refused as unknown, naming the fields that are read (at most
    /// [`MAX_UNKNOWN_REPORTED`] reported).
    pub fn finish_strict(mut self) -> Result<(), FieldErrors> {
        let unknown: Vec<&String> =
            self.object.keys().filter(|k| !self.asked.contains(&k.as_str())).take(MAX_UNKNOWN_REPORTED).collect();
        if !unknown.is_empty() {
            let mut asked = self.asked.clone();
            asked.sort_unstable();
            let message = format!("unknown field (this route reads: {})", asked.join(", "));
            for key in unknown {
                let path = self.path(key);
                self.errors.add(path, message.clone());
            }
        }
        self.errors.into_result()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            _ => unreachable!("a test object"),
        }
    }

    #[test]
    fn paths_carry_the_prefix_and_null_is_absent() {
        let o = object(json!({"qty": null, "n": 1.5, "big": u64::MAX, "m": [], "l": {}}));
        let mut f = FieldReader::at("items[2]", &o);
        assert_eq!(f.required("qty", 10), "");
        assert_eq!(f.integer("n"), None);
        assert_eq!(f.integer("big"), None);
        assert_eq!(f.object("m"), None);
        assert_eq!(f.list("l"), None);
        let errors = f.finish().unwrap_err().0;
        assert_eq!(errors["items[2].qty"], ["this field is required"]);
        assert_eq!(errors["items[2].n"], ["must be a whole number"]);
        assert_eq!(errors["items[2].big"], ["out of range for a 64-bit integer"]);
        assert_eq!(errors["items[2].m"], ["must be an object"]);
        assert_eq!(errors["items[2].l"], ["must be a list"]);
    }

    #[test]
    fn required_allows_empty_and_non_empty_does_not() {
        let o = object(json!({"a": "", "b": "", "c": "xyz"}));
        let mut f = FieldReader::new(&o);
        assert_eq!(f.required("a", 5), "");
        assert_eq!(f.non_empty("b", 5), "");
        assert_eq!(f.non_empty("c", 2), "");
        let errors = f.finish().unwrap_err().0;
        assert!(!errors.contains_key("a"));
        assert_eq!(errors["b"], ["may not be empty"]);
        assert_eq!(errors["c"], ["at most 2 characters"]);
    }

    #[test]
    fn strict_finish_refuses_fields_never_asked_for_and_bounds_the_answer() {
        let o = object(json!({"channel_code": "pos", "idempotency_kye": "K1", "note": null}));
        let mut f = FieldReader::new(&o);
        assert_eq!(f.non_empty("channel_code", 64), "pos");
        assert_eq!(f.string("idempotency_key", 128), None);
        let errors = f.finish_strict().unwrap_err().0;
        assert_eq!(errors.keys().collect::<Vec<_>>(), ["idempotency_kye", "note"]);
        assert_eq!(errors["note"], ["unknown field (this route reads: channel_code, idempotency_key)"]);

        let mut f = FieldReader::new(&o);
        let _ = (f.raw("channel_code"), f.raw("idempotency_kye"), f.raw("note"));
        assert_eq!(f.asked(), ["channel_code", "idempotency_kye", "note"]);
        assert!(f.finish_strict().is_ok(), "every field was read");

        let junk: Map<String, Value> = (0..1000).map(|i| (format!("k{i}"), Value::Null)).collect();
        assert_eq!(FieldReader::new(&junk).finish_strict().unwrap_err().0.len(), MAX_UNKNOWN_REPORTED);
    }
}
