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
use omniman_core::channel::{ChannelConfig, ChannelSpec, EditPolicy, PricingPolicy};
use omniman_core::events::EventType;
use omniman_core::fields::{FieldReader, MAX_DATA_BYTES};
use omniman_core::input::{ChannelCode, HandleRef, HandleType, IdempotencyKey, SessionKey};
use omniman_core::modify::parse_import_items;
use omniman_core::ops::Op;
use omniman_core::ports::Role;
use omniman_core::service::{ChannelChange, ImportSession, IssueToken, MAX_TOKEN_NAME_CHARS, OpenSession};
use omniman_core::session::Item;
use omniman_core::webhook::{MAX_URL_CHARS, NewWebhook, WebhookChange, parse_event_types};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::body::{Query, read_json};
use crate::error::ApiError;
use crate::ratelimit::{RateLimits, parse_rate_limits};

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

/// `POST /api/channels` (admin): a new channel, with the fields `omniman channels apply` reads.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct CreateChannelRequest {
    /// Unique code (1–64 characters).
    #[schema(value_type = String)]
    pub code: ChannelCode,
    /// Display name (≤ 128).
    pub name: Option<String>,
    /// `internal` (default) or `external`.
    #[schema(value_type = Option<String>)]
    pub pricing_policy: Option<PricingPolicy>,
    /// `open` (default) or `locked`.
    #[schema(value_type = Option<String>)]
    pub edit_policy: Option<EditPolicy>,
    /// Sort key (default 0).
    pub display_order: Option<u32>,
    /// Configuration (docs/reference.md, channel configuration); a known key of the wrong shape
    /// is refused.
    #[schema(value_type = Option<Object>)]
    pub config: Option<ChannelConfig>,
    /// Default `true`.
    pub is_active: Option<bool>,
}

impl RequestBody for CreateChannelRequest {
    fn read(f: &mut FieldReader<'_>, _: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let code = f.parsed("code", ChannelCode::parse);
        if f.raw("code").is_none() {
            f.error("code", "this field is required");
        }
        let change = read_channel_change(f);
        Ok(code.map(|code| CreateChannelRequest {
            code,
            name: change.name,
            pricing_policy: change.pricing_policy,
            edit_policy: change.edit_policy,
            display_order: change.display_order,
            config: change.config,
            is_active: change.is_active,
        }))
    }
}

impl From<CreateChannelRequest> for ChannelSpec {
    fn from(r: CreateChannelRequest) -> ChannelSpec {
        let defaults = ChannelSpec::new(String::from(r.code));
        ChannelSpec {
            name: r.name.unwrap_or(defaults.name),
            pricing_policy: r.pricing_policy.unwrap_or(defaults.pricing_policy),
            edit_policy: r.edit_policy.unwrap_or(defaults.edit_policy),
            display_order: r.display_order.unwrap_or(defaults.display_order),
            config: r.config.unwrap_or(defaults.config),
            is_active: r.is_active.unwrap_or(defaults.is_active),
            code: defaults.code,
        }
    }
}

/// `PATCH /api/channels/{code}` (admin): each field given replaces the stored one; `config`
/// replaces the whole configuration object.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct ChangeChannelRequest {
    /// Display name (≤ 128).
    pub name: Option<String>,
    /// `internal` or `external`.
    #[schema(value_type = Option<String>)]
    pub pricing_policy: Option<PricingPolicy>,
    /// `open` or `locked`.
    #[schema(value_type = Option<String>)]
    pub edit_policy: Option<EditPolicy>,
    /// Sort key.
    pub display_order: Option<u32>,
    /// The whole configuration object; a known key of the wrong shape is refused.
    #[schema(value_type = Option<Object>)]
    pub config: Option<ChannelConfig>,
    /// `false` deactivates the channel: it accepts no new sessions.
    pub is_active: Option<bool>,
}

impl RequestBody for ChangeChannelRequest {
    fn read(f: &mut FieldReader<'_>, _: &HttpRequest) -> Result<Option<Self>, ApiError> {
        Ok(Some(read_channel_change(f)))
    }
}

impl From<ChangeChannelRequest> for ChannelChange {
    fn from(r: ChangeChannelRequest) -> ChannelChange {
        ChannelChange {
            name: r.name,
            pricing_policy: r.pricing_policy,
            edit_policy: r.edit_policy,
            display_order: r.display_order,
            config: r.config,
            is_active: r.is_active,
        }
    }
}

/// The fields of a channel other than its code.
fn read_channel_change(f: &mut FieldReader<'_>) -> ChangeChannelRequest {
    let name = f.string("name", 128);
    let pricing_policy = f.string("pricing_policy", usize::MAX).and_then(|p| match p.as_str() {
        "internal" => Some(PricingPolicy::Internal),
        "external" => Some(PricingPolicy::External),
        _ => {
            f.error("pricing_policy", "must be internal or external");
            None
        }
    });
    let edit_policy = f.string("edit_policy", usize::MAX).and_then(|p| match p.as_str() {
        "open" => Some(EditPolicy::Open),
        "locked" => Some(EditPolicy::Locked),
        _ => {
            f.error("edit_policy", "must be open or locked");
            None
        }
    });
    let display_order = f.integer("display_order").and_then(|n| {
        let order = u32::try_from(n).ok();
        if order.is_none() {
            f.error("display_order", format!("must be between 0 and {}", u32::MAX));
        }
        order
    });
    let config = f.raw("config").and_then(|raw| match ChannelConfig::from_value(raw.clone()) {
        Ok(config) => Some(config),
        Err(e) if e.path.is_empty() => {
            f.error("config", e.message);
            None
        }
        Err(e) => {
            f.error(&format!("config.{}", e.path), e.message);
            None
        }
    });
    let is_active = f.boolean("is_active");
    ChangeChannelRequest { name, pricing_policy, edit_policy, display_order, config, is_active }
}

/// `POST /api/tokens` (admin).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct CreateTokenRequest {
    /// Unique name (1–128 characters), recorded as the actor of what the token does.
    pub name: String,
    /// `client` or `admin`.
    #[schema(value_type = String)]
    pub role: Role,
    /// The channels a client token may use (each must exist); absent: every channel.
    pub channels: Option<Vec<String>>,
    /// The token's own rate limits, e.g. `modify=300/min,commit=60/min` (docs/api.md, Rate limits).
    #[schema(value_type = Option<String>)]
    pub rate_limit: Option<RateLimits>,
}

impl RequestBody for CreateTokenRequest {
    fn read(f: &mut FieldReader<'_>, _: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let name = f.non_empty("name", MAX_TOKEN_NAME_CHARS);
        let role = match f.required("role", usize::MAX).as_str() {
            "client" => Some(Role::Client),
            "admin" => Some(Role::Admin),
            "" => None,
            _ => {
                f.error("role", "must be client or admin");
                None
            }
        };
        let channels = f.strings("channels", 64);
        let rate_limit = f.string("rate_limit", 256).and_then(|text| match parse_rate_limits(&text) {
            Ok(limits) => Some(limits),
            Err(e) => {
                f.error("rate_limit", e.to_string());
                None
            }
        });
        Ok(role.map(|role| CreateTokenRequest { name, role, channels, rate_limit }))
    }
}

impl From<CreateTokenRequest> for IssueToken {
    fn from(r: CreateTokenRequest) -> IssueToken {
        IssueToken {
            name: r.name,
            role: r.role,
            channels: r.channels,
            // Stored in the parser's own spelling.
            rate_limits: r.rate_limit.filter(|l| !l.is_empty()).map(|l| l.to_string()),
        }
    }
}

/// `POST /api/webhooks` (admin).
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct CreateWebhookRequest {
    /// Where deliveries are posted: an absolute `http://` or `https://` URL (≤ 2048).
    pub url: String,
    /// The event types to receive, at least one (`order.created`, `session.committed`…; docs/webhooks.md).
    #[schema(value_type = Vec<String>, min_items = 1)]
    pub events: Vec<EventType>,
    /// Only events of these channels (each must exist); absent or `[]`: every channel.
    pub channels: Option<Vec<String>>,
    /// Default `true`; `false` creates it paused.
    pub active: Option<bool>,
}

impl RequestBody for CreateWebhookRequest {
    fn read(f: &mut FieldReader<'_>, _: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let url = f.non_empty("url", MAX_URL_CHARS);
        let events = match f.raw("events") {
            None => {
                f.error("events", "this field is required");
                None
            }
            Some(raw) => parse_event_types(raw).map_err(|errors| f.merge(errors)).ok(),
        };
        let channels = f.strings("channels", 64);
        let active = f.boolean("active");
        Ok(events.map(|events| CreateWebhookRequest { url, events, channels, active }))
    }
}

impl From<CreateWebhookRequest> for NewWebhook {
    fn from(r: CreateWebhookRequest) -> NewWebhook {
        // `[]` is every channel, as absent: a subscription to no channel would receive nothing.
        NewWebhook { url: r.url, events: r.events, channels: r.channels.filter(|c| !c.is_empty()), active: r.active }
    }
}

/// `PATCH /api/webhooks/{id}` (admin): each field given replaces the stored one.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)] // only documents `additionalProperties: false`: `finish_strict` enforces it
pub struct ChangeWebhookRequest {
    /// New URL (absolute `http://` or `https://`).
    pub url: Option<String>,
    /// New event types, at least one.
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Vec<EventType>>,
    /// New channels; `[]`: every channel.
    pub channels: Option<Vec<String>>,
    /// `false` pauses it, `true` resumes it.
    pub active: Option<bool>,
}

impl RequestBody for ChangeWebhookRequest {
    fn read(f: &mut FieldReader<'_>, _: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let url = f.string("url", MAX_URL_CHARS);
        let events = f.raw("events").and_then(|raw| parse_event_types(raw).map_err(|errors| f.merge(errors)).ok());
        let channels = f.strings("channels", 64);
        let active = f.boolean("active");
        Ok(Some(ChangeWebhookRequest { url, events, channels, active }))
    }
}

impl From<ChangeWebhookRequest> for WebhookChange {
    fn from(r: ChangeWebhookRequest) -> WebhookChange {
        WebhookChange {
            url: r.url,
            events: r.events,
            // `[]` lifts the restriction: a subscription to no channel would receive nothing.
            channels: r.channels.map(|codes| Some(codes).filter(|c| !c.is_empty())),
            active: r.active,
        }
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
        same::<CreateChannelRequest>("CreateChannelRequest");
        same::<CreateTokenRequest>("CreateTokenRequest");
        same::<ChangeChannelRequest>("ChangeChannelRequest");
        same::<CreateWebhookRequest>("CreateWebhookRequest");
        same::<ChangeWebhookRequest>("ChangeWebhookRequest");
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
