//! Request bodies and query strings, read by hand so that every failure gets its own code.
//!
//! A body is read as bytes (bounded by the configured limit), checked for UTF-8 and parsed into
//! a JSON object, which `requests` then reads field by field.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use omniman_core::error::FieldErrors;
use omniman_core::fields::MAX_UNKNOWN_REPORTED;
use serde_json::{Map, Value};

use crate::config::DEFAULT_BODY_TIMEOUT;
use crate::error::ApiError;
use crate::middleware::Observe;

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
    let read = async {
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
        Ok(())
    };
    // A client that announces a body and stops sending it must not hold its connection forever.
    let timeout = req.app_data::<web::Data<Observe>>().map_or(DEFAULT_BODY_TIMEOUT, |o| o.body_timeout);
    actix_web::rt::time::timeout(timeout, read).await.map_err(|_| ApiError::request_timeout(timeout))??;
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
        // In JSON text U+0000 can only be the escape `\u0000` (a raw NUL byte is not JSON): a
        // body without one is not walked.
        Value::Object(map) if !text.contains("\\u0000") => Ok(map),
        Value::Object(map) => {
            refuse_nul_in_object(&map, "")?;
            Ok(map)
        }
        _ => Err(ApiError::field("body", "must be a JSON object")),
    }
}

/// What a refused NUL is told: PostgreSQL cannot store U+0000 in text or `jsonb`, so no backend
/// is given one.
const NUL_MESSAGE: &str = "must not contain the NUL character (U+0000)";

/// A name as a field path shows it, with any NUL written `\u0000`.
fn shown(name: &str) -> String {
    name.replace('\0', "\\u0000")
}

/// Refuses (`validation_error`) any string or object key containing U+0000 anywhere in `map`,
/// naming each with its path (`ops[0].meta.note`; a key is named by its own path).
fn refuse_nul_in_object(map: &Map<String, Value>, at: &str) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    let mut found = 0_usize;
    find_nul_in_object(map, at, &mut errors, &mut found);
    errors.into_result().map_err(|e| ApiError::validation(&e))
}

fn find_nul_in_object(map: &Map<String, Value>, at: &str, errors: &mut FieldErrors, found: &mut usize) {
    for (key, value) in map {
        let path = if at.is_empty() { shown(key) } else { format!("{at}.{}", shown(key)) };
        if key.contains('\0') {
            report_nul(&path, errors, found);
        }
        find_nul(value, &path, errors, found);
    }
}

fn find_nul(value: &Value, at: &str, errors: &mut FieldErrors, found: &mut usize) {
    match value {
        Value::String(text) if text.contains('\0') => report_nul(at, errors, found),
        Value::Array(list) => {
            for (i, item) in list.iter().enumerate() {
                find_nul(item, &format!("{at}[{i}]"), errors, found);
            }
        }
        Value::Object(map) => find_nul_in_object(map, at, errors, found),
        _ => {}
    }
}

/// Records one NUL, at most `MAX_UNKNOWN_REPORTED` of them.
fn report_nul(path: &str, errors: &mut FieldErrors, found: &mut usize) {
    if *found < MAX_UNKNOWN_REPORTED {
        errors.add(path, NUL_MESSAGE);
    }
    *found += 1;
}

/// Refuses a value read from the path (an order ref, a channel code, a directive id) that
/// holds U+0000, as `validation_error` at `name`.
pub(crate) fn path_text(name: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') { Err(ApiError::field(name, NUL_MESSAGE)) } else { Ok(()) }
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
        let mut errors = FieldErrors::default();
        let mut found = 0_usize;
        for (key, value) in &pairs {
            if key.contains('\0') || value.contains('\0') {
                report_nul(&shown(key), &mut errors, &mut found);
            }
        }
        errors.into_result().map_err(|e| ApiError::validation(&e))?;
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

    /// Every non-empty value of `key`, in order (a repeated parameter).
    pub(crate) fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(k, v)| k == key && !v.is_empty()).map(|(_, v)| v.as_str())
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
    fn nul_is_refused_anywhere_with_its_path() {
        let fields = |body: &[u8]| {
            let err = parse_object(body).unwrap_err();
            assert_eq!(err.code(), Code::ValidationError);
            err.context()["fields"].as_object().unwrap().keys().cloned().collect::<Vec<_>>()
        };
        assert_eq!(fields(br#"{"ops":[{"meta":{"note":"a\u0000b"}}]}"#), ["ops[0].meta.note"]);
        assert_eq!(fields(br#"{"a":{"k\u0000":1}}"#), ["a.k\\u0000"]);
        assert_eq!(fields(br#"{"a":[[1,"\u0000"]],"b":"\u0000"}"#), ["a[0][1]", "b"]);
        assert!(parse_object(br#"{"a":"\\u0000 is fine escaped"}"#).is_ok());
    }
}
