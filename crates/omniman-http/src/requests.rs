//! The request bodies of the API: each type is both what its handler receives, already parsed,
//! and what the OpenAPI document describes, so the two cannot drift (a test compares the fields
//! each reader asks for with the fields of its schema).
//!
//! Bodies are read by `read_body`: bounded, checked for JSON, then read field by field with the
//! core's [`FieldReader`], so that every problem is reported with its path in one
//! `validation_error`, and a field the route does not read is refused (a misspelt
//! `idempotency_key` must not commit without one). Inside ops, `data` and `meta` the core's own
//! rules apply (unknown op fields are ignored, docs/reference.md §4).

use actix_web::{HttpRequest, web};
use omniman_core::fields::{FieldReader, MAX_DATA_BYTES};
use omniman_core::input::{ChannelCode, HandleRef, HandleType, IdempotencyKey, SessionKey};
use omniman_core::modify::parse_import_items;
use omniman_core::ops::Op;
use omniman_core::service::{ImportSession, OpenSession};
use omniman_core::session::Item;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::body::{Query, read_json};
use crate::error::ApiError;

/// Keys that name literal routes and so can never be session keys.
const RESERVED_KEYS: &[&str] = &["import"];

/// A request body read by hand, field by field.
pub(crate) trait RequestBody: Sized {
    /// Reads the body's fields; `None` when a problem was recorded in `f`. `req` gives the
    /// query string, where session POSTs may carry `channel_code`.
    fn read(f: &mut FieldReader<'_>, req: &HttpRequest) -> Result<Option<Self>, ApiError>;
}

/// Reads the JSON body of `req` as `T`, with `also` reading what the path carries (its problems
/// are reported with the body's, in one answer).
pub(crate) async fn read_body_with<T: RequestBody, X>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    also: impl FnOnce(&mut FieldReader<'_>) -> Option<X>,
) -> Result<(T, X), ApiError> {
    let body = read_json(req, payload, limit).await?;
    decode_with(&body, req, also)
}

/// The part of [`read_body_with`] after the bytes are read and parsed: the fields, all at once.
pub(crate) fn decode_with<T: RequestBody, X>(
    body: &Map<String, Value>,
    req: &HttpRequest,
    also: impl FnOnce(&mut FieldReader<'_>) -> Option<X>,
) -> Result<(T, X), ApiError> {
    let mut f = FieldReader::new(body);
    let extra = also(&mut f);
    let parsed = T::read(&mut f, req)?;
    f.finish_strict().map_err(|e| ApiError::validation(&e))?;
    // `finish_strict` has checked that every part was read.
    parsed.zip(extra).ok_or_else(|| ApiError::field("body", "a field could not be read"))
}

/// Reads the JSON body of `req` as `T`.
pub(crate) async fn read_body<T: RequestBody>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    read_body_with(req, payload, limit, |_| Some(())).await.map(|(body, ())| body)
}

/// The session key in a path, parsed with the body's fields.
pub(crate) fn path_key(key: String) -> impl FnOnce(&mut FieldReader<'_>) -> Option<SessionKey> {
    move |f| f.take("session_key", SessionKey::parse(key))
}

/// The required `channel_code` of a session POST, from the body or the query string; when both
/// name one, they must name the same channel. `None` when a problem was recorded.
fn channel_code(f: &mut FieldReader<'_>, req: &HttpRequest) -> Result<Option<ChannelCode>, ApiError> {
    let from_query = Query::parse_known(req, &["channel_code"])?.owned("channel_code");
    let raw = match (f.string("channel_code", usize::MAX), from_query) {
        (Some(body), Some(query)) if body != query => {
            let message =
                format!("the body names '{body}' and the query string '{query}': send one, or the same in both");
            f.error("channel_code", message);
            return Ok(None);
        }
        (Some(code), _) | (None, Some(code)) => code,
        (None, None) => {
            f.error("channel_code", "this field is required (in the body or as ?channel_code=)");
            return Ok(None);
        }
    };
    Ok(f.take("channel_code", ChannelCode::parse(raw)))
}

/// `POST /api/sessions`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct CreateSessionRequest {
    /// The channel (or `?channel_code=`).
    #[schema(value_type = String)]
    pub channel_code: ChannelCode,
    /// Client-chosen key (`[A-Za-z0-9_.:-]{1,64}`, not `import`); generated when absent.
    #[schema(value_type = Option<String>)]
    pub session_key: Option<SessionKey>,
    /// Handle type (≤ 32). With `handle_ref`, an open session holding both is returned (200).
    #[schema(value_type = Option<String>)]
    pub handle_type: Option<HandleType>,
    /// Handle ref (≤ 64).
    #[schema(value_type = Option<String>)]
    pub handle_ref: Option<HandleRef>,
}

impl RequestBody for CreateSessionRequest {
    fn read(f: &mut FieldReader<'_>, req: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let channel_code = channel_code(f, req)?;
        let session_key = f.parsed("session_key", SessionKey::parse);
        if session_key.as_ref().is_some_and(|k| RESERVED_KEYS.contains(&k.as_str())) {
            f.error("session_key", "is reserved (it names a route)");
        }
        let handle_type = f.parsed("handle_type", HandleType::parse);
        let handle_ref = f.parsed("handle_ref", HandleRef::parse);
        Ok(channel_code.map(|channel_code| CreateSessionRequest { channel_code, session_key, handle_type, handle_ref }))
    }
}

impl From<CreateSessionRequest> for OpenSession {
    fn from(r: CreateSessionRequest) -> OpenSession {
        OpenSession {
            channel_code: r.channel_code,
            session_key: r.session_key,
            handle_type: r.handle_type,
            handle_ref: r.handle_ref,
        }
    }
}

/// `POST /api/sessions/import` (admin).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct ImportSessionRequest {
    /// The channel (or `?channel_code=`).
    #[schema(value_type = String)]
    pub channel_code: ChannelCode,
    /// Key (`[A-Za-z0-9_.:-]{1,64}`); generated when absent.
    #[schema(value_type = Option<String>)]
    pub session_key: Option<SessionKey>,
    /// Handle type (≤ 32).
    #[schema(value_type = Option<String>)]
    pub handle_type: Option<HandleType>,
    /// Handle ref (≤ 64).
    #[schema(value_type = Option<String>)]
    pub handle_ref: Option<HandleRef>,
    /// Lines: `sku`, `qty` required; `line_id`, `name`, `unit_price_q`, `line_total_q`, `meta` optional.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Item>,
    /// Session data, stored as given (including `checks` and `issues`).
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
}

impl RequestBody for ImportSessionRequest {
    fn read(f: &mut FieldReader<'_>, req: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let open = CreateSessionRequest::read(f, req)?;
        let items = match f.raw("items") {
            None => {
                f.error("items", "this field is required");
                None
            }
            Some(raw) => parse_import_items(raw).map_err(|errors| f.merge(errors)).ok(),
        };
        let data = f.bounded_object("data", MAX_DATA_BYTES).cloned();
        Ok(open.zip(items).map(|(open, items)| ImportSessionRequest {
            channel_code: open.channel_code,
            session_key: open.session_key,
            handle_type: open.handle_type,
            handle_ref: open.handle_ref,
            items,
            data,
        }))
    }
}

impl From<ImportSessionRequest> for ImportSession {
    fn from(r: ImportSessionRequest) -> ImportSession {
        let open = OpenSession {
            channel_code: r.channel_code,
            session_key: r.session_key,
            handle_type: r.handle_type,
            handle_ref: r.handle_ref,
        };
        ImportSession { open, items: r.items, data: r.data }
    }
}

/// `POST /api/sessions/{key}/modify`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct ModifyRequest {
    /// The channel (or `?channel_code=`).
    #[schema(value_type = String)]
    pub channel_code: ChannelCode,
    /// A non-empty batch of ops, e.g. `{"op":"add_line","sku":"TEA","qty":2,"unit_price_q":300}`.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub ops: Vec<Op>,
}

impl RequestBody for ModifyRequest {
    fn read(f: &mut FieldReader<'_>, req: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let channel_code = channel_code(f, req)?;
        let ops = match f.raw("ops") {
            None => {
                f.error("ops", "this field is required");
                None
            }
            Some(Value::Array(list)) if list.is_empty() => {
                f.error("ops", "must contain at least one op");
                None
            }
            Some(value) => Op::parse_batch(value).map_err(|errors| f.merge(errors)).ok(),
        };
        Ok(channel_code.zip(ops).map(|(channel_code, ops)| ModifyRequest { channel_code, ops }))
    }
}

/// `POST /api/sessions/{key}/resolve`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct ResolveRequest {
    /// The channel (or `?channel_code=`).
    #[schema(value_type = String)]
    pub channel_code: ChannelCode,
    /// The issue (≤ 64).
    pub issue_id: String,
    /// One of the issue's actions (≤ 64).
    pub action_id: String,
}

impl RequestBody for ResolveRequest {
    fn read(f: &mut FieldReader<'_>, req: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let channel_code = channel_code(f, req)?;
        let issue_id = f.non_empty("issue_id", 64);
        let action_id = f.non_empty("action_id", 64);
        Ok(channel_code.map(|channel_code| ResolveRequest { channel_code, issue_id, action_id }))
    }
}

/// `POST /api/sessions/{key}/commit`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct CommitRequest {
    /// The channel (or `?channel_code=`).
    #[schema(value_type = String)]
    pub channel_code: ChannelCode,
    /// 1–128 visible ASCII characters; the same key replays the same answer. Generated (and
    /// then not replayable) when absent.
    #[schema(value_type = Option<String>)]
    pub idempotency_key: Option<IdempotencyKey>,
}

impl RequestBody for CommitRequest {
    fn read(f: &mut FieldReader<'_>, req: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let channel_code = channel_code(f, req)?;
        let idempotency_key = f.parsed("idempotency_key", IdempotencyKey::parse);
        Ok(channel_code.map(|channel_code| CommitRequest { channel_code, idempotency_key }))
    }
}

/// `POST /api/sessions/{key}/abandon`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct AbandonRequest {
    /// The channel (or `?channel_code=`).
    #[schema(value_type = String)]
    pub channel_code: ChannelCode,
}

impl RequestBody for AbandonRequest {
    fn read(f: &mut FieldReader<'_>, req: &HttpRequest) -> Result<Option<Self>, ApiError> {
        Ok(channel_code(f, req)?.map(|channel_code| AbandonRequest { channel_code }))
    }
}

/// `POST /api/orders/{ref}/transition`.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct TransitionRequest {
    /// The status to move to.
    pub status: String,
    /// Recorded in the `status_changed` event (≤ 1000).
    pub note: Option<String>,
}

impl RequestBody for TransitionRequest {
    fn read(f: &mut FieldReader<'_>, _: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let status = f.non_empty("status", 64);
        let note = f.string("note", 1000);
        Ok(Some(TransitionRequest { status, note }))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use utoipa::PartialSchema;
    use utoipa::openapi::{RefOr, Schema};

    use super::*;

    /// The fields a reader asks for, in the order it asks.
    fn asked<T: RequestBody>() -> Vec<&'static str> {
        let empty = Map::new();
        let mut f = FieldReader::new(&empty);
        let _ = T::read(&mut f, &TestRequest::default().to_http_request());
        f.asked().to_vec()
    }

    /// The properties of a type's OpenAPI schema, in declaration order.
    fn documented<T: PartialSchema>() -> Vec<String> {
        match T::schema() {
            RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
            _ => panic!("not an inline object schema"),
        }
    }

    #[test]
    fn every_request_documents_exactly_the_fields_its_reader_reads() {
        fn same<T: RequestBody + PartialSchema>(name: &str) {
            let (mut read, mut doc) = (asked::<T>(), documented::<T>());
            read.sort_unstable();
            doc.sort_unstable();
            assert_eq!(read, doc, "{name}: the fields read and the fields documented differ");
        }
        same::<CreateSessionRequest>("CreateSessionRequest");
        same::<ImportSessionRequest>("ImportSessionRequest");
        same::<ModifyRequest>("ModifyRequest");
        same::<ResolveRequest>("ResolveRequest");
        same::<CommitRequest>("CommitRequest");
        same::<AbandonRequest>("AbandonRequest");
        same::<TransitionRequest>("TransitionRequest");
    }

    #[test]
    fn a_body_and_its_path_are_reported_together() {
        let body = serde_json::json!({"channel_code": "pos", "ops": [], "extra": 1});
        let mut f = FieldReader::new(body.as_object().unwrap());
        let key = path_key("not a key!".into())(&mut f);
        let parsed = ModifyRequest::read(&mut f, &TestRequest::default().to_http_request()).unwrap();
        assert!(key.is_none() && parsed.is_none());
        let errors = f.finish_strict().unwrap_err().0;
        assert_eq!(errors.keys().collect::<Vec<_>>(), ["extra", "ops", "session_key"]);
    }
}
