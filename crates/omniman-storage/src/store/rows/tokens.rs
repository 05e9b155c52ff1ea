//! `api_tokens` rows.

use chrono::{DateTime, Utc};
use diesel::Queryable;
use omniman_core::error::StoreError;
use omniman_core::ports::{ApiToken, Role};
use serde_json::Value;

use super::{corrupt, ts, ts_opt};

/// `api_tokens.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct TokenRow {
    pub id: i64,
    pub name: String,
    pub token_hash: String,
    pub role: String,
    pub channels: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rate_limits: Option<String>,
}

impl TokenRow {
    pub(crate) fn into_token(self) -> Result<ApiToken, StoreError> {
        let role = match self.role.as_str() {
            "client" => Role::Client,
            "admin" => Role::Admin,
            other => return Err(corrupt("token role", other)),
        };
        let channels = self
            .channels
            .map(serde_json::from_value::<Vec<String>>)
            .transpose()
            .map_err(|e| corrupt("token channels", e))?;
        Ok(ApiToken {
            id: self.id,
            name: self.name,
            token_hash: self.token_hash,
            role,
            channels,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
            rate_limits: self.rate_limits,
        })
    }
}

/// The values a token insert writes.
#[derive(Debug, Clone)]
pub(crate) struct TokenValues {
    pub name: String,
    pub token_hash: String,
    pub role: &'static str,
    pub channels: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub rate_limits: Option<String>,
}

impl TokenValues {
    pub(crate) fn new(t: &ApiToken) -> TokenValues {
        TokenValues {
            name: t.name.clone(),
            token_hash: t.token_hash.clone(),
            role: t.role.as_str(),
            channels: t.channels.as_ref().map(|c| Value::from(c.clone())),
            created_at: ts(t.created_at),
            revoked_at: ts_opt(t.revoked_at),
            rate_limits: t.rate_limits.clone(),
        }
    }
}
