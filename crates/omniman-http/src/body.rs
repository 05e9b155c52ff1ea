//! Request bodies and query strings, read by hand so that every failure gets its own code.
//!
//! A body is read as bytes (bounded by the configured limit), checked for UTF-8, parsed into a
//! `serde_json::Value` and then read field by field, recording problems under their paths.
//! A top-level field the route never reads is refused as unknown (a misspelt `idempotency_key`
//! must not silently commit without one); inside ops, `data` and `meta` the core's own rules
//! apply (unknown op fields are ignored, docs/reference.md §4).

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use omniman_core::error::FieldErrors;
use omniman_core::input::InvalidInput;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Whether a `Content-Type` value is JSON in UTF-8.
fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"));
    let utf8 = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    json && utf8
}

/// Checks the content type, reads at most `limit` bytes and parses a JSON object.
pub(crate) async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Map<String, Value>, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("<not ASCII>"));
    if !content_type.is_some_and(is_json) {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let mut bytes = web::BytesMut::with_capacity(declared.map_or(0, |n| usize::try_from(n).unwrap_or(0)));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => ApiError::payload_too_large(limit),
            other => ApiError::malformed_json(format!("the body could not be read: {other}"), Map::new()),
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    parse_object(&bytes)
}

/// Parses bytes as a JSON object.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::malformed_json("the body is not valid UTF-8", Map::new()).with_context("byte_offset", e.valid_up_to())
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::malformed_json("the body is empty; send a JSON object", Map::new()));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::malformed_json(format!("the body is not valid JSON: {e}"), Map::new())
            .with_context("line", e.line())
            .with_context("column", e.column())
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::field("body", "must be a JSON object")),
    }
}

/// Unknown fields named in one error, at most.
const MAX_UNKNOWN_REPORTED: usize = 10;

/// Reads typed fields out of a JSON object, recording shape errors by path.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    errors: FieldErrors,
    /// Every key the route asked for, known or not: what `finish` accepts.
    asked: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>) -> Fields<'a> {
        Fields { map, errors: FieldErrors::default(), asked: Vec::new() }
    }

    /// The raw value of a field (absent and `null` are the same).
    pub(crate) fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        if !self.asked.contains(&key) {
            self.asked.push(key);
        }
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional string field parsed into an input type (`SessionKey::parse`…); a problem is
    /// recorded under the field's name.
    pub(crate) fn parsed<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(String) -> Result<T, InvalidInput>,
    ) -> Option<T> {
        let raw = self.string(key, usize::MAX)?;
        self.errors.take(key, parse(raw))
    }

    /// A value parsed elsewhere (a path segment…), or `None` with its problem recorded at `path`.
    pub(crate) fn take<T>(&mut self, path: &str, parsed: Result<T, InvalidInput>) -> Option<T> {
        self.errors.take(path, parsed)
    }

    /// Records a problem.
    pub(crate) fn error(&mut self, path: &str, message: &str) {
        self.errors.add(path, message);
    }

    /// An optional string of at most `max` characters.
    pub(crate) fn string(&mut self, key: &'static str, max: usize) -> Option<String> {
        match self.raw(key) {
            None => None,
            Some(Value::String(s)) if s.chars().count() > max => {
                self.errors.add(key, format!("at most {max} characters"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.errors.add(key, "must be a string");
                None
            }
        }
    }

    /// A required non-empty string of at most `max` characters.
    pub(crate) fn required(&mut self, key: &'static str, max: usize) -> String {
        match self.raw(key) {
            None => {
                self.errors.add(key, "this field is required");
                String::new()
            }
            Some(Value::String(s)) if s.is_empty() => {
                self.errors.add(key, "may not be empty");
                String::new()
            }
            Some(_) => self.string(key, max).unwrap_or_default(),
        }
    }

    /// `Ok` when no problem was recorded and every field of the body was one the route reads,
    /// else `validation_error`.
    pub(crate) fn finish(mut self) -> Result<(), ApiError> {
        let mut asked = self.asked;
        // A body of junk keys gets a bounded answer.
        let unknown: Vec<&String> =
            self.map.keys().filter(|k| !asked.contains(&k.as_str())).take(MAX_UNKNOWN_REPORTED).collect();
        if !unknown.is_empty() {
            asked.sort_unstable();
            let message = format!("unknown field (this route reads: {})", asked.join(", "));
            for key in unknown {
                self.errors.add(key.as_str(), message.clone());
            }
        }
        self.errors.into_result().map_err(|f| ApiError::validation(&f))
    }

    /// Adds problems found elsewhere (e.g. the ops batch).
    pub(crate) fn merge(&mut self, other: FieldErrors) {
        for (path, messages) in other.0 {
            for message in messages {
                self.errors.add(path.clone(), message);
            }
        }
    }
}

/// A parsed query string; the first value of a repeated key wins, empty values count as absent.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub(crate) fn parse(req: &HttpRequest) -> Result<Query, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
            .map_err(|_| ApiError::field("query", "the query string could not be parsed"))?;
        Ok(Query { pairs })
    }

    /// Parses the query string of a route that reads only the `known` parameters: any other is a
    /// `validation_error` naming it and the parameters the route reads, so that a misspelt filter
    /// never silently lists everything.
    pub(crate) fn parse_known(req: &HttpRequest, known: &[&str]) -> Result<Query, ApiError> {
        let query = Query::parse(req)?;
        let mut unknown: Vec<&str> = Vec::new();
        for (key, _) in &query.pairs {
            if !known.contains(&key.as_str()) && !unknown.contains(&key.as_str()) {
                unknown.push(key);
            }
        }
        if unknown.is_empty() {
            return Ok(query);
        }
        let message = format!("unknown query parameter (this route reads: {})", known.join(", "));
        let mut errors = FieldErrors::default();
        for key in unknown.into_iter().take(MAX_UNKNOWN_REPORTED) {
            errors.add(key, message.clone());
        }
        Err(ApiError::validation(&errors))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub(crate) fn owned(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_owned)
    }

    /// The query string with `key` replaced by `value` (appended when absent).
    pub(crate) fn with(&self, key: &str, value: &str) -> String {
        let mut pairs: Vec<(&str, &str)> =
            self.pairs.iter().filter(|(k, _)| k != key).map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.push((key, value));
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use omniman_core::error::Code;

    use super::*;

    #[test]
    fn content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=UTF-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("application/json; charset=latin1"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn objects_only() {
        assert!(parse_object(br#"{"a":1}"#).is_ok());
        assert_eq!(parse_object(b"[1]").unwrap_err().code(), Code::ValidationError);
        assert_eq!(parse_object(b"{").unwrap_err().code(), Code::MalformedJson);
        assert_eq!(parse_object(b"\xff\xfe").unwrap_err().code(), Code::MalformedJson);
        assert_eq!(parse_object(b"").unwrap_err().code(), Code::MalformedJson);
        assert_eq!(parse_object(br#"{"n": 1e999}"#).unwrap_err().code(), Code::MalformedJson);
    }

    #[test]
    fn fields_the_route_never_reads_are_refused() {
        let body = parse_object(br#"{"channel_code": "pos", "idempotency_kye": "K1", "note": null}"#).unwrap();
        let mut f = Fields::new(&body);
        assert_eq!(f.required("channel_code", 64), "pos");
        let _ = f.string("idempotency_key", 128);
        let err = f.finish().unwrap_err();
        assert_eq!(err.code(), Code::ValidationError);
        let text = serde_json::to_string(&err.body()).unwrap();
        assert!(text.contains("idempotency_kye"), "{text}");
        assert!(text.contains("unknown field (this route reads: channel_code, idempotency_key)"), "{text}");
        assert!(!text.contains("\"channel_code\":"), "read fields are not reported: {text}");

        let mut f = Fields::new(&body);
        let _ = (f.raw("channel_code"), f.raw("idempotency_kye"), f.raw("note"));
        assert!(f.finish().is_ok(), "every field was read");

        let junk: Map<String, Value> = (0..1000).map(|i| (format!("k{i}"), Value::Null)).collect();
        let err = Fields::new(&junk).finish().unwrap_err();
        let fields = err.context()["fields"].as_object().unwrap().len();
        assert_eq!(fields, MAX_UNKNOWN_REPORTED, "a bounded answer to a body of junk keys");
    }
}
