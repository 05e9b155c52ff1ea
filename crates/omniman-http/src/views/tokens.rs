//! `/api/tokens…`.

use chrono::{DateTime, Utc};
use omniman_core::ports::ApiToken;
use serde::Serialize;
use utoipa::ToSchema;

use super::common::ts;

/// An API token as listed: never its secret, which is stored only as a hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Id (`DELETE /api/tokens/{id}` revokes it).
    pub id: i64,
    /// Unique name, recorded as the actor of what the token does.
    pub name: String,
    /// `client` or `admin`.
    pub role: String,
    /// The channels it may use; null: every channel.
    pub channels: Option<Vec<String>>,
    /// Its own rate limits, e.g. `modify=300/min`; null: the server's defaults.
    pub rate_limit: Option<String>,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
    /// Revocation time; null while the token works.
    #[serde(serialize_with = "ts::opt")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&ApiToken> for TokenView {
    fn from(t: &ApiToken) -> TokenView {
        TokenView {
            id: t.id,
            name: t.name.clone(),
            role: t.role.as_str().to_owned(),
            channels: t.channels.clone(),
            rate_limit: t.rate_limits.clone(),
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A token just issued: the only answer that carries its secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct IssuedTokenView {
    /// The secret, to send as `Authorization: Bearer …`. Shown this once: only its hash is kept.
    pub token: String,
    /// The token as listed.
    #[serde(flatten)]
    pub details: TokenView,
}

list_view!(
    /// A page of tokens, oldest first.
    TokenList,
    TokenView
);
