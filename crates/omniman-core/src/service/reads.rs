//! Reads: sessions, orders, channels and directives as an embedding program or the HTTP adapter
//! looks them up, each refusal with its own error ([`ReadError`]), and lists by filter and page.

use serde_json::{Map, Value};

use super::{Freshness, Missing, Omniman};
use crate::channel::Channel;
use crate::directive::{Directive, DirectiveStatus};
use crate::error::{Code, DomainError, ErrorCode, StoreError, ctx};
use crate::input::{ChannelCode, SessionKey, SessionRef};
use crate::page::{Page, PageRequest};
use crate::ports::{ApiToken, DirectiveFilter, OrderFilter, OrderSummary, SessionFilter, Store};
use crate::session::Session;

/// A read that found nothing, or could not read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReadError {
    /// A channel named by a request (its body, query or filter) does not exist.
    #[error("there is no channel '{channel_code}'")]
    UnknownChannel {
        /// The code.
        channel_code: String,
    },
    /// The channel looked up by its code does not exist.
    #[error("channel {channel_code} not found")]
    ChannelNotFound {
        /// The code.
        channel_code: String,
    },
    /// No session has this key (in this channel).
    #[error("session {session_key} not found")]
    SessionNotFound {
        /// The key.
        session_key: String,
    },
    /// The key exists in several channels: the read must name one.
    #[error("session key {session_key} exists in several channels; name the channel")]
    ChannelCodeRequired {
        /// The key.
        session_key: String,
    },
    /// No directive has this id.
    #[error("directive {directive_id} not found")]
    DirectiveNotFound {
        /// The id, as it was asked for.
        directive_id: String,
    },
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for ReadError {
    fn code(&self) -> ErrorCode<'_> {
        match self {
            ReadError::UnknownChannel { .. } => Code::UnknownChannel.into(),
            ReadError::ChannelNotFound { .. } => Code::ChannelNotFound.into(),
            ReadError::SessionNotFound { .. } => Code::SessionNotFound.into(),
            ReadError::ChannelCodeRequired { .. } => Code::ChannelCodeRequired.into(),
            ReadError::DirectiveNotFound { .. } => Code::DirectiveNotFound.into(),
            ReadError::Store(e) => e.code(),
        }
    }

    fn context(&self) -> Map<String, Value> {
        match self {
            ReadError::UnknownChannel { channel_code } | ReadError::ChannelNotFound { channel_code } => {
                ctx([("channel_code", channel_code.as_str().into())])
            }
            ReadError::SessionNotFound { session_key } | ReadError::ChannelCodeRequired { session_key } => {
                ctx([("session_key", session_key.as_str().into())])
            }
            ReadError::DirectiveNotFound { directive_id } => ctx([("directive_id", directive_id.as_str().into())]),
            ReadError::Store(e) => e.context(),
        }
    }
}

impl<S: Store> Omniman<S> {
    /// A session by key; without `channel_code` the key must be unambiguous.
    pub async fn get_session(
        &self,
        channel_code: Option<&ChannelCode>,
        session_key: &SessionKey,
    ) -> Result<Session, ReadError> {
        let not_found = || ReadError::SessionNotFound { session_key: session_key.to_string() };
        if let Some(channel) = channel_code {
            let at = SessionRef { channel: channel.clone(), key: session_key.clone() };
            return match self.find(&at, Freshness::Current).await? {
                Ok((_, session)) => Ok(session),
                Err(Missing::Channel) => Err(ReadError::UnknownChannel { channel_code: channel.to_string() }),
                Err(Missing::Session) => Err(not_found()),
            };
        }
        let mut found = self.store.sessions_by_key(session_key).await?;
        match found.len() {
            0 => Err(not_found()),
            1 => Ok(found.remove(0)),
            _ => Err(ReadError::ChannelCodeRequired { session_key: session_key.to_string() }),
        }
    }

    /// Sessions by filter, newest first.
    pub async fn sessions(&self, filter: &SessionFilter, page: &PageRequest) -> Result<Page<Session>, StoreError> {
        self.store.list_sessions(filter, page).await
    }

    /// Every channel, by (`display_order`, `id`), inactive ones included.
    pub async fn channels(&self) -> Result<Vec<Channel>, StoreError> {
        self.store.list_channels().await
    }

    /// A channel by code.
    pub async fn channel(&self, code: &str) -> Result<Channel, ReadError> {
        self.store
            .channel_by_code(code)
            .await?
            .ok_or_else(|| ReadError::ChannelNotFound { channel_code: code.to_owned() })
    }

    /// A channel a request names (in its body, query or filter): a missing one is
    /// `unknown_channel`, not a missing resource.
    pub async fn named_channel(&self, code: &str) -> Result<Channel, ReadError> {
        self.store
            .channel_by_code(code)
            .await?
            .ok_or_else(|| ReadError::UnknownChannel { channel_code: code.to_owned() })
    }

    /// Order summaries by filter, newest first.
    pub async fn orders(&self, filter: &OrderFilter, page: &PageRequest) -> Result<Page<OrderSummary>, StoreError> {
        self.store.list_orders(filter, page).await
    }

    /// Up to `limit` orders with an id above `since`, ascending: what a poller has not seen.
    pub async fn orders_after(&self, since: i64, limit: usize) -> Result<Vec<OrderSummary>, StoreError> {
        self.store.orders_after(since, limit).await
    }

    /// The highest order id (0 when there is none): where a poller starts.
    pub async fn last_order_id(&self) -> Result<i64, StoreError> {
        self.store.max_order_id().await
    }

    /// Directives by filter, newest first.
    pub async fn directives(
        &self,
        filter: &DirectiveFilter,
        page: &PageRequest,
    ) -> Result<Page<Directive>, StoreError> {
        self.store.list_directives(filter, page).await
    }

    /// A directive by id.
    pub async fn directive(&self, id: i64) -> Result<Directive, ReadError> {
        self.store.directive(id).await?.ok_or_else(|| ReadError::DirectiveNotFound { directive_id: id.to_string() })
    }

    /// How many directives are in each status.
    pub async fn directive_counts(&self) -> Result<Vec<(DirectiveStatus, i64)>, StoreError> {
        self.store.directive_counts().await
    }

    /// The API token with this hash, revoked or not.
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError> {
        self.store.token_by_hash(token_hash).await
    }
}
