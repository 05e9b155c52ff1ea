//! Bearer tokens: hashing, generation, and the [`Principal`] extractor.
//!
//! A token is `omni_` followed by 32 random alphanumerics (about 190 bits of entropy). Only its
//! hex SHA-256 is stored; a request's token is hashed and looked up by that hash through
//! [`TokenStore::token_by_hash`](omniman_core::ports::TokenStore::token_by_hash).
//!
//! **Why the lookup does not leak timing.** The secret itself is never compared with anything:
//! the store compares *hashes*, usually through an index. Whatever the time of that lookup
//! reveals is about how the SHA-256 of the attacker's own guess relates to stored hashes. Since
//! SHA-256 is preimage resistant, learning that the hash of a guess shares a prefix with a stored
//! hash says nothing useful about which other input would hash to it, so the classic byte-by-byte
//! timing attack on a string comparison has nothing to climb. The tokens' entropy makes guessing
//! hopeless anyway.

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use omniman_core::ports::{ApiToken, Role};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::ratelimit::{RateLimitStatus, RateLimiter, RateLimits, RouteClass, parse_rate_limits};
use crate::state::TokenLookup;

/// The prefix of generated tokens.
pub const TOKEN_PREFIX: &str = "omni_";

/// The hex SHA-256 of a token, as stored.
///
/// ```
/// assert_eq!(
///     omniman_http::hash_token("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
/// );
/// ```
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in &digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
    }
    hex
}

/// A new random token: `omni_` + 32 alphanumerics from the thread's CSPRNG (ChaCha seeded by
/// the operating system).
///
/// ```
/// let token = omniman_http::generate_token();
/// assert!(token.starts_with("omni_") && token.len() == 37);
/// ```
pub fn generate_token() -> String {
    let random: String = rand::rng().sample_iter(Alphanumeric).take(32).map(char::from).collect();
    format!("{TOKEN_PREFIX}{random}")
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token's name; recorded as the actor of what it does.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Allowed channel codes (`None` = every channel).
    pub channels: Option<Vec<String>>,
    /// The token's own rate limits; a class they leave out falls back to the server's default.
    pub rate_limits: RateLimits,
}

impl From<ApiToken> for Principal {
    fn from(token: ApiToken) -> Principal {
        let rate_limits = match token.rate_limits.as_deref().map(parse_rate_limits) {
            None => RateLimits::default(),
            Some(Ok(limits)) => limits,
            // `omniman tokens create` checks the text, so only a hand-edited row gets here; the
            // server's defaults still apply, and the operator hears of it on every request.
            Some(Err(error)) => {
                tracing::warn!(token = %token.name, %error, "ignoring the token's unreadable rate limits");
                RateLimits::default()
            }
        };
        Principal { name: token.name, role: token.role, channels: token.channels, rate_limits }
    }
}

impl Principal {
    /// Whether the principal has the admin role.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// 403 unless admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::forbidden("this route needs an admin token")) }
    }

    /// Whether the principal may act on a channel.
    pub fn may_use(&self, channel_code: &str) -> bool {
        self.channels.as_ref().is_none_or(|codes| codes.iter().any(|c| c == channel_code))
    }

    /// 403 unless the principal may act on the channel.
    pub fn require_channel(&self, channel_code: &str) -> Result<(), ApiError> {
        if self.may_use(channel_code) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this token may not use channel '{channel_code}'"))
                .with_context("channel_code", channel_code))
        }
    }
}

/// What the [`Principal`] extractor needs, without the store's type.
#[derive(Clone)]
pub(crate) struct AuthGate {
    pub(crate) tokens: Arc<dyn TokenLookup>,
    pub(crate) limiter: Arc<RateLimiter>,
}

impl std::fmt::Debug for AuthGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthGate").field("limiter", &self.limiter).finish_non_exhaustive()
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("missing Authorization: Bearer <token>"))?;
    let text = header.to_str().map_err(|_| ApiError::unauthenticated("malformed Authorization header"))?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthenticated("expected Authorization: Bearer <token>"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthenticated("expected Authorization: Bearer <token>"));
    }
    Ok(token.to_owned())
}

/// Authenticates, then applies the rate limit of the route's class.
async fn authenticate(req: HttpRequest) -> Result<Principal, ApiError> {
    let gate = req
        .app_data::<web::Data<AuthGate>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(&"the authentication gate is not configured"))?;
    let token = bearer(&req)?;
    let hash = hash_token(&token);
    let principal: Principal = gate
        .tokens
        .token_by_hash(&hash)
        .await
        // A database that cannot be reached is 503 `service_unavailable` here as everywhere.
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::unauthenticated("unknown or revoked token"))?
        .into();
    let class = RouteClass::of_pattern(&crate::middleware::route_pattern(&req));
    if let Some(status) = gate.limiter.acquire(&principal.name, class, &principal.rate_limits).await {
        let retry_after = status.retry_after_secs;
        req.extensions_mut().insert::<RateLimitStatus>(status);
        if let Some(secs) = retry_after {
            return Err(ApiError::rate_limited(class.as_str(), secs));
        }
    }
    tracing::Span::current().record("principal", principal.name.as_str());
    Ok(principal)
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_hex() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a[TOKEN_PREFIX.len()..].chars().all(|c| c.is_ascii_alphanumeric()));
        let h = hash_token(&a);
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
