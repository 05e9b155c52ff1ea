//! Test harness: an in-memory hub with channels and tokens, request builders and a response
//! reader.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test::{self, TestRequest};
use chrono::{DateTime, SubsecRound, Utc};
use omniman_core::Omniman;
use omniman_core::channel::{Channel, EditPolicy, PricingPolicy};
use omniman_core::clock::Clock;
use omniman_core::ext::{Extensions, ExtensionsBuilder};
use omniman_core::memory::InMemoryStore;
use omniman_core::ports::{ApiToken, Role, TokenStore};
use omniman_core::testing::{channel_with, epoch};
use omniman_http::{AppState, HttpConfig, hash_token};
use serde_json::{Value, json};

/// Admin, every channel.
pub(crate) const ADMIN: &str = "omni_admin0000000000000000000000000000";
/// Client, every channel.
pub(crate) const CLIENT: &str = "omni_client000000000000000000000000000";
/// Client limited to `pos`.
pub(crate) const POS: &str = "omni_posonly00000000000000000000000000";
/// A revoked client token.
pub(crate) const REVOKED: &str = "omni_revoked00000000000000000000000000";
/// Client, every channel, with its own limit of `commit=1/min`.
pub(crate) const LIMITED: &str = "omni_limited00000000000000000000000000";

pub(crate) type Hub = Arc<Omniman<InMemoryStore>>;

/// The channels every test starts with.
fn channels() -> Vec<Channel> {
    vec![
        Channel { name: "Point of Sale".into(), ..channel_with("pos", json!({})) },
        Channel { id: 2, display_order: 1, ..channel_with("web", json!({})) },
        Channel {
            id: 3,
            name: "Marketplace".into(),
            display_order: 2,
            edit_policy: EditPolicy::Locked,
            pricing_policy: PricingPolicy::External,
            ..channel_with("market", json!({}))
        },
        Channel { id: 4, display_order: 3, is_active: false, ..channel_with("closed", json!({})) },
        Channel {
            id: 5,
            display_order: 4,
            ..channel_with(
                "checked",
                json!({"required_checks_on_commit": ["stock"], "post_commit_directives": ["stock.commit"]}),
            )
        },
        Channel { id: 6, display_order: 5, pricing_policy: PricingPolicy::External, ..channel_with("ext", json!({})) },
    ]
}

async fn token(hub: &Hub, name: &str, secret: &str, role: Role, channels: Option<Vec<String>>) {
    let token = ApiToken {
        id: 0,
        name: name.into(),
        token_hash: hash_token(secret),
        role,
        channels,
        created_at: epoch(),
        revoked_at: None,
        rate_limits: None,
    };
    assert!(hub.store().create_token(&token).await.unwrap());
}

/// The system clock at microsecond precision, as a database stores it: page cursors carry
/// microseconds, so the in-memory store must not keep finer instants than they can name.
#[derive(Debug)]
struct MicrosClock;

impl Clock for MicrosClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A hub with the test channels and tokens.
pub(crate) async fn hub_with(ext: Extensions) -> Hub {
    let store = InMemoryStore::new();
    for channel in channels() {
        store.put_channel(channel);
    }
    let hub = Arc::new(Omniman::new(store, ext).with_clock(Arc::new(MicrosClock)));
    token(&hub, "admin", ADMIN, Role::Admin, None).await;
    token(&hub, "client", CLIENT, Role::Client, None).await;
    token(&hub, "pos-till", POS, Role::Client, Some(vec!["pos".into()])).await;
    token(&hub, "old", REVOKED, Role::Client, None).await;
    assert!(hub.store().revoke_token("old", epoch()).await.unwrap());
    let limited = ApiToken {
        id: 0,
        name: "limited".into(),
        token_hash: hash_token(LIMITED),
        role: Role::Client,
        channels: None,
        created_at: epoch(),
        revoked_at: None,
        rate_limits: Some("commit=1/min".into()),
    };
    assert!(hub.store().create_token(&limited).await.unwrap());
    hub
}

pub(crate) use omniman_core::testing::at;

/// The default state.
pub(crate) async fn state() -> AppState<InMemoryStore> {
    AppState::new(hub_with(Extensions::default()).await, HttpConfig::default())
}

/// A state with extensions and settings.
pub(crate) async fn state_with(ext: ExtensionsBuilder, config: HttpConfig) -> AppState<InMemoryStore> {
    AppState::new(hub_with(ext.build()).await, config)
}

/// `GET` with a token.
pub(crate) fn get(path: &str, token: &str) -> TestRequest {
    TestRequest::get().uri(path).insert_header(("Authorization", format!("Bearer {token}")))
}

/// `POST` of a JSON body with a token.
pub(crate) fn post(path: &str, token: &str, body: &Value) -> TestRequest {
    TestRequest::post().uri(path).insert_header(("Authorization", format!("Bearer {token}"))).set_json(body)
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) bytes: Vec<u8>,
}

impl Resp {
    pub(crate) async fn read<B: MessageBody>(res: ServiceResponse<B>) -> Resp {
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = test::read_body(res).await.to_vec();
        Resp { status, headers, bytes }
    }

    /// The body as JSON (panics with the body when it is not).
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error code, checking the error envelope's shape.
    pub(crate) fn code(&self) -> String {
        let body = self.json();
        let error = body.get("error").unwrap_or_else(|| panic!("not an error body: {body}"));
        assert!(error["message"].is_string(), "{body}");
        assert!(error["context"].is_object(), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        error["code"].as_str().unwrap().to_owned()
    }

    /// Asserts status and error code; returns the error's context.
    #[track_caller]
    pub(crate) fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            (self.status.as_u16(), self.code().as_str()),
            (status, code),
            "{}",
            String::from_utf8_lossy(&self.bytes)
        );
        self.json()["error"]["context"].clone()
    }

    #[track_caller]
    pub(crate) fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", String::from_utf8_lossy(&self.bytes));
        if self.bytes.is_empty() { Value::Null } else { self.json() }
    }
}

/// Sends a request to a service built by `test::init_service` and reads the whole response.
macro_rules! call {
    ($app:expr, $req:expr) => {
        $crate::common::Resp::read(actix_web::test::call_service(&$app, $req.to_request()).await).await
    };
}

/// Builds the app's service.
macro_rules! service {
    ($state:expr) => {
        actix_web::test::init_service(omniman_http::app($state.clone())).await
    };
}

/// Opens a session on `channel` and returns its key.
macro_rules! open {
    ($app:expr, $channel:expr) => {{
        let r = call!($app, $crate::common::post("/api/sessions", $crate::common::CLIENT, &serde_json::json!({"channel_code": $channel})));
        r.expect(201)["session_key"].as_str().unwrap().to_owned()
    }};
}

/// Adds one priced line and returns the session body.
macro_rules! add_line {
    ($app:expr, $channel:expr, $key:expr, $sku:expr, $qty:expr, $price:expr) => {{
        let r = call!(
            $app,
            $crate::common::post(
                &format!("/api/sessions/{}/modify", $key),
                $crate::common::CLIENT,
                &serde_json::json!({"channel_code": $channel, "ops": [{"op": "add_line", "sku": $sku, "qty": $qty, "unit_price_q": $price}]})
            )
        );
        r.expect(200)
    }};
}

/// Commits with a key and returns the response.
macro_rules! commit {
    ($app:expr, $channel:expr, $key:expr, $idem:expr) => {
        call!(
            $app,
            $crate::common::post(
                &format!("/api/sessions/{}/commit", $key),
                $crate::common::CLIENT,
                &serde_json::json!({"channel_code": $channel, "idempotency_key": $idem})
            )
        )
    };
}

/// Opens, fills and commits a session; returns the order ref.
macro_rules! order {
    ($app:expr, $channel:expr, $price:expr) => {{
        let key = open!($app, $channel);
        add_line!($app, $channel, key, "SKU", 1, $price);
        let r = commit!($app, $channel, key, format!("k-{key}"));
        r.expect(201)["order_ref"].as_str().unwrap().to_owned()
    }};
}
