//! Management: channels and API tokens, with the rules the CLI and the HTTP API share
//! (docs/api.md, "Management"). Each refusal has its own error ([`ManageError`]).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::Omniman;
use crate::channel::{Channel, ChannelConfig, ChannelSpec, EditPolicy, PricingPolicy};
use crate::error::{Code, DomainError, ErrorCode, FieldErrors, StoreError, ctx};
use crate::ports::{ApiToken, Role, Store};

/// The longest token name.
pub const MAX_TOKEN_NAME_CHARS: usize = 128;

/// A token to issue. The core draws no randomness: the caller generates the secret, hands it to
/// its holder once, and gives only its hash here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueToken {
    /// Unique name, recorded as the actor of what the token does (1 to 128 characters).
    pub name: String,
    /// Role.
    pub role: Role,
    /// The channels a client token may use (`None`: every channel); each must exist.
    pub channels: Option<Vec<String>>,
    /// The token's own rate limits, already checked by the adapter that gives them meaning.
    pub rate_limits: Option<String>,
}

/// A change to a channel: each field given replaces the stored one; `config` replaces the whole
/// configuration object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChannelChange {
    /// Display name.
    pub name: Option<String>,
    /// Pricing policy.
    pub pricing_policy: Option<PricingPolicy>,
    /// Edit policy.
    pub edit_policy: Option<EditPolicy>,
    /// Sort key.
    pub display_order: Option<u32>,
    /// The whole configuration object.
    pub config: Option<ChannelConfig>,
    /// Active flag: an inactive channel accepts no new sessions.
    pub is_active: Option<bool>,
}

/// A management request the rules refuse, or a storage failure.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ManageError {
    /// Fields of the wrong shape.
    #[error("validation failed: {0}")]
    Validation(FieldErrors),
    /// A token names channels that do not exist.
    #[error("{}", unknown_channels(unknown, known))]
    UnknownChannels {
        /// The codes that exist nowhere.
        unknown: Vec<String>,
        /// Every code that does.
        known: Vec<String>,
    },
    /// A token with this name exists (revoked ones included: names stay unique for the record).
    #[error("a token named '{name}' already exists")]
    TokenExists {
        /// The name.
        name: String,
    },
    /// No unrevoked token has this id.
    #[error("token {token_id} not found")]
    TokenNotFound {
        /// The id, as it was asked for.
        token_id: String,
    },
    /// A channel with this code exists.
    #[error("channel '{channel_code}' already exists")]
    ChannelExists {
        /// The code.
        channel_code: String,
    },
    /// No channel has this code.
    #[error("channel {channel_code} not found")]
    ChannelNotFound {
        /// The code.
        channel_code: String,
    },
    /// No webhook subscription has this id.
    #[error("webhook {webhook_id} not found")]
    WebhookNotFound {
        /// The id, as it was asked for.
        webhook_id: String,
    },
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for ManageError {
    fn code(&self) -> ErrorCode<'_> {
        match self {
            ManageError::Validation(_) => Code::ValidationError.into(),
            ManageError::UnknownChannels { .. } => Code::UnknownChannel.into(),
            ManageError::TokenExists { .. } => Code::TokenExists.into(),
            ManageError::TokenNotFound { .. } => Code::TokenNotFound.into(),
            ManageError::ChannelExists { .. } => Code::ChannelExists.into(),
            ManageError::ChannelNotFound { .. } => Code::ChannelNotFound.into(),
            ManageError::WebhookNotFound { .. } => Code::WebhookNotFound.into(),
            ManageError::Store(e) => e.code(),
        }
    }

    fn context(&self) -> Map<String, Value> {
        let strings = |list: &[String]| Value::from(list.to_vec());
        match self {
            ManageError::Validation(f) => f.to_context(),
            ManageError::UnknownChannels { unknown, known } => {
                ctx([("channel_codes", strings(unknown)), ("known", strings(known))])
            }
            ManageError::TokenExists { name } => ctx([("name", name.as_str().into())]),
            ManageError::TokenNotFound { token_id } => ctx([("token_id", token_id.as_str().into())]),
            ManageError::ChannelExists { channel_code } | ManageError::ChannelNotFound { channel_code } => {
                ctx([("channel_code", channel_code.as_str().into())])
            }
            ManageError::WebhookNotFound { webhook_id } => ctx([("webhook_id", webhook_id.as_str().into())]),
            ManageError::Store(e) => e.context(),
        }
    }
}

/// `unknown channel: nope (known: pos, web)`: what is wrong and what would be right.
fn unknown_channels(unknown: &[String], known: &[String]) -> String {
    let noun = if unknown.len() == 1 { "channel" } else { "channels" };
    let known =
        if known.is_empty() { "there are no channels yet".to_owned() } else { format!("known: {}", known.join(", ")) };
    format!("unknown {noun}: {} ({known})", unknown.join(", "))
}

fn validated(spec: ChannelSpec) -> Result<ChannelSpec, ManageError> {
    match spec.validate() {
        Ok(()) => Ok(spec),
        Err(e) => Err(ManageError::Validation(FieldErrors::one(e.path, e.message))),
    }
}

impl<S: Store> Omniman<S> {
    /// Creates a channel; refuses a code that exists (use [`Omniman::change_channel`]).
    ///
    /// ```
    /// use omniman_core::channel::ChannelSpec;
    /// use omniman_core::memory::InMemoryStore;
    /// use omniman_core::service::{ChannelChange, ManageError};
    /// use omniman_core::prelude::*;
    ///
    /// # futures_executor::block_on(async {
    /// let hub = Omniman::new(InMemoryStore::new(), Extensions::default());
    /// hub.create_channel(ChannelSpec::new("pos")).await?;
    /// assert!(matches!(hub.create_channel(ChannelSpec::new("pos")).await, Err(ManageError::ChannelExists { .. })));
    /// let closed = hub.change_channel("pos", ChannelChange { is_active: Some(false), ..Default::default() }).await?;
    /// assert!(!closed.is_active);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn create_channel(&self, spec: ChannelSpec) -> Result<Channel, ManageError> {
        let spec = validated(spec)?;
        if self.store.channel_by_code(&spec.code).await?.is_some() {
            return Err(ManageError::ChannelExists { channel_code: spec.code });
        }
        Ok(self.store.upsert_channel(&spec, self.clock.now()).await?)
    }

    /// Creates the channel or replaces it whole (what `omniman channels apply` does); the flag
    /// says whether it existed.
    pub async fn put_channel(&self, spec: ChannelSpec) -> Result<(Channel, bool), ManageError> {
        let spec = validated(spec)?;
        let existed = self.store.channel_by_code(&spec.code).await?.is_some();
        Ok((self.store.upsert_channel(&spec, self.clock.now()).await?, existed))
    }

    /// Changes the fields `change` gives of an existing channel.
    pub async fn change_channel(&self, code: &str, change: ChannelChange) -> Result<Channel, ManageError> {
        let Some(channel) = self.store.channel_by_code(code).await? else {
            return Err(ManageError::ChannelNotFound { channel_code: code.to_owned() });
        };
        let spec = validated(ChannelSpec {
            code: channel.code,
            name: change.name.unwrap_or(channel.name),
            pricing_policy: change.pricing_policy.unwrap_or(channel.pricing_policy),
            edit_policy: change.edit_policy.unwrap_or(channel.edit_policy),
            display_order: change.display_order.unwrap_or(channel.display_order),
            config: change.config.unwrap_or(channel.config),
            is_active: change.is_active.unwrap_or(channel.is_active),
        })?;
        Ok(self.store.upsert_channel(&spec, self.clock.now()).await?)
    }

    /// Stores a new token under `token_hash` (the hash of a secret the caller generated).
    pub async fn issue_token(&self, request: IssueToken, token_hash: String) -> Result<ApiToken, ManageError> {
        let name = request.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS {
            let message = format!("must be 1 to {MAX_TOKEN_NAME_CHARS} characters");
            return Err(ManageError::Validation(FieldErrors::one("name", message)));
        }
        let channels: Option<Vec<String>> =
            request.channels.map(|codes| codes.iter().map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect());
        if let Some(codes) = &channels {
            // A token for a misspelt channel would be refused on every request, long after it
            // was handed out.
            self.check_channels_exist(codes).await?;
        }
        let token = ApiToken {
            id: 0,
            name,
            token_hash,
            role: request.role,
            channels,
            created_at: self.clock.now(),
            revoked_at: None,
            rate_limits: request.rate_limits.filter(|l| !l.is_empty()),
        };
        if !self.store.create_token(&token).await? {
            return Err(ManageError::TokenExists { name: token.name });
        }
        // The store assigns the id; read the stored row back by its (unique) name.
        self.tokens().await?.into_iter().find(|t| t.name == token.name).ok_or_else(|| {
            ManageError::Store(StoreError::Other(format!("token '{}' vanished after it was created", token.name)))
        })
    }

    /// Refuses codes that name no channel ([`ManageError::UnknownChannels`]).
    pub(super) async fn check_channels_exist(&self, codes: &[String]) -> Result<(), ManageError> {
        let known: Vec<String> = self.store.list_channels().await?.into_iter().map(|c| c.code).collect();
        let unknown: Vec<String> = codes.iter().filter(|c| !known.contains(c)).cloned().collect();
        if unknown.is_empty() { Ok(()) } else { Err(ManageError::UnknownChannels { unknown, known }) }
    }

    /// Every token, revoked ones included, in creation order.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.store.list_tokens().await
    }

    /// Revokes the token named `name`; a token already revoked, or none, is
    /// [`ManageError::TokenNotFound`].
    pub async fn revoke_token(&self, name: &str) -> Result<DateTime<Utc>, ManageError> {
        let now = self.clock.now();
        if self.store.revoke_token(name, now).await? {
            Ok(now)
        } else {
            Err(ManageError::TokenNotFound { token_id: name.to_owned() })
        }
    }

    /// Revokes the unrevoked token with this id.
    pub async fn revoke_token_by_id(&self, id: i64) -> Result<ApiToken, ManageError> {
        let not_found = || ManageError::TokenNotFound { token_id: id.to_string() };
        let token =
            self.tokens().await?.into_iter().find(|t| t.id == id && t.revoked_at.is_none()).ok_or_else(not_found)?;
        // Revoked by someone else between the two reads: as absent as it was for them.
        let revoked_at = match self.revoke_token(&token.name).await {
            Err(ManageError::TokenNotFound { .. }) => return Err(not_found()),
            other => other?,
        };
        Ok(ApiToken { revoked_at: Some(revoked_at), ..token })
    }
}
