//! Signing in to the console: the signed session cookie, the form tokens (CSRF) derived from it,
//! and the check every console request makes.
//!
//! The cookie is stateless, so any instance sharing the key (`--console-secret`) accepts it:
//! `v1.<token hash>.<expiry>.<nonce>.<HMAC-SHA256 of the rest>`. It holds the hash of the admin
//! token signed in with, never the token. Each request looks that hash up again, so a revoked
//! (or deleted) token signs its console sessions out on the next request.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use omniman_core::ports::Store;
use rand::Rng;
use sha2::Sha256;

use super::layout;
use crate::auth::Principal;
use crate::config::ConsoleSecret;
use crate::state::AppState;

/// The session cookie.
pub(crate) const COOKIE: &str = "omniman_console";
/// The cookie the sign-in form's token is bound to (there is no session yet to bind it to).
pub(crate) const SIGN_IN_COOKIE: &str = "omniman_console_sign_in";
/// How long a sign-in lasts, in seconds.
const LIFETIME_SECS: i64 = 12 * 60 * 60;
/// How long the sign-in form may stay open, in seconds.
const SIGN_IN_SECS: i64 = 30 * 60;
/// The form field holding the form token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// The console's signing key.
pub(crate) struct ConsoleKey(Vec<u8>);

impl std::fmt::Debug for ConsoleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleKey(..)")
    }
}

impl ConsoleKey {
    /// The key of `secret`, or a random one (valid for this process only).
    pub(crate) fn new(secret: Option<&ConsoleSecret>) -> ConsoleKey {
        match secret {
            Some(secret) => ConsoleKey(secret.as_bytes().to_vec()),
            None => ConsoleKey(rand::rng().random::<[u8; 32]>().to_vec()),
        }
    }

    fn hmac(&self, label: &str, value: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        // The label keeps a value signed for one purpose from being accepted for another.
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        mac
    }

    /// The hex HMAC of `value` for `label`.
    pub(crate) fn sign(&self, label: &str, value: &str) -> String {
        hex::encode(self.hmac(label, value).finalize().into_bytes())
    }

    /// Whether `mac` (hex) is the HMAC of `value` for `label`, compared in constant time.
    pub(crate) fn verify(&self, label: &str, value: &str, mac: &str) -> bool {
        hex::decode(mac).is_ok_and(|bytes| self.hmac(label, value).verify_slice(&bytes).is_ok())
    }

    /// A session cookie's value for the token with this hash.
    pub(crate) fn seal(&self, token_hash: &str, now: DateTime<Utc>) -> String {
        let expires = now.timestamp() + LIFETIME_SECS;
        let body = format!("v1.{token_hash}.{expires}.{}", nonce());
        let mac = self.sign("session", &body);
        format!("{body}.{mac}")
    }

    /// The token hash a session cookie holds, if it is ours and not expired.
    pub(crate) fn open(&self, cookie: &str, now: DateTime<Utc>) -> Option<String> {
        let (body, mac) = cookie.rsplit_once('.')?;
        if !self.verify("session", body, mac) {
            return None;
        }
        let mut parts = body.split('.');
        let (Some("v1"), Some(hash), Some(expires), Some(_nonce), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        (expires.parse::<i64>().ok()? > now.timestamp()).then(|| hash.to_owned())
    }

    /// The form token of a session (or of a sign-in form's nonce).
    pub(crate) fn csrf(&self, bound_to: &str) -> String {
        self.sign("csrf", bound_to)
    }
}

/// 16 random bytes, hex.
pub(crate) fn nonce() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// A signed-in operator: who, and the form token their forms carry.
#[derive(Clone, Debug)]
pub(crate) struct Signed {
    pub(crate) principal: Principal,
    pub(crate) csrf: String,
}

/// A cookie the request sent.
pub(crate) fn cookie<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(n, v)| (n == name).then_some(v))
}

/// A `Set-Cookie` value scoped to the console: HttpOnly, SameSite=Strict, `Secure` when the
/// console is reached over https; `max_age` 0 deletes it.
pub(crate) fn set_cookie<S>(req: &HttpRequest, state: &AppState<S>, name: &str, value: &str, max_age: i64) -> String {
    let https = req.connection_info().scheme() == "https"
        || state.config.public_url.as_deref().is_some_and(|url| url.starts_with("https://"));
    let secure = if https { "; Secure" } else { "" };
    format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The session cookie for a token.
pub(crate) fn session_cookie<S>(req: &HttpRequest, state: &AppState<S>, token_hash: &str) -> String {
    set_cookie(req, state, COOKIE, &state.console.seal(token_hash, Utc::now()), LIFETIME_SECS)
}

/// The sign-in form's cookie (a fresh nonce) and the form token bound to it.
pub(crate) fn sign_in_cookie<S>(req: &HttpRequest, state: &AppState<S>) -> (String, String) {
    let nonce = nonce();
    let csrf = state.console.csrf(&format!("sign-in.{nonce}"));
    (set_cookie(req, state, SIGN_IN_COOKIE, &nonce, SIGN_IN_SECS), csrf)
}

/// Whether a sign-in form's token matches the nonce cookie it was served with.
pub(crate) fn sign_in_csrf_ok<S>(req: &HttpRequest, state: &AppState<S>, sent: Option<&str>) -> bool {
    match (cookie(req, SIGN_IN_COOKIE), sent) {
        (Some(nonce), Some(sent)) => state.console.verify("csrf", &format!("sign-in.{nonce}"), sent),
        _ => false,
    }
}

/// The signed-in operator of a console request, with their form token.
pub(crate) async fn signed<S: Store + 'static>(req: &HttpRequest, state: &AppState<S>) -> Result<Signed, HttpResponse> {
    let Some(value) = cookie(req, COOKIE) else { return Err(layout::to_sign_in()) };
    let Some(hash) = state.console.open(value, Utc::now()) else { return Err(layout::to_sign_in()) };
    match state.hub.token_by_hash(&hash).await {
        Ok(Some(token)) if token.revoked_at.is_none() && token.role == omniman_core::ports::Role::Admin => {
            Ok(Signed { principal: token.into(), csrf: state.console.csrf(value) })
        }
        // Revoked, deleted or no longer admin: signed out.
        Ok(_) => Err(layout::to_sign_in()),
        Err(e) => Err(layout::api_error(&crate::error::ApiError::from(e), None)),
    }
}

/// The signed-in operator of a console request, for routes other modules add under `/console`
/// (such as the board's event stream).
///
/// It reads the session cookie, checks its signature and expiry, and looks its admin token up
/// again (a revoked token is signed out). `Err` is the answer to send as is: `303 See Other` to
/// the sign-in page when there is no valid session (an `EventSource` treats it as a failure and
/// stops; the board's script then polls, and a poll redirected to the sign-in page reloads
/// there), or an error page when the store cannot be read. The security headers are added to
/// every `/console` answer by the app's middleware. Console routes are not rate limited.
pub(crate) async fn signed_in<S: Store + 'static>(
    req: &HttpRequest,
    state: &AppState<S>,
) -> Result<Principal, HttpResponse> {
    signed(req, state).await.map(|s| s.principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_cookie_opens_until_it_expires_and_not_with_another_key_or_edited() {
        let key = ConsoleKey::new(Some(&ConsoleSecret::new("one")));
        let now = Utc::now();
        let cookie = key.seal("abc", now);
        assert_eq!(key.open(&cookie, now).as_deref(), Some("abc"));
        assert_eq!(key.open(&cookie, now + chrono::TimeDelta::seconds(LIFETIME_SECS + 1)), None);
        assert_eq!(ConsoleKey::new(Some(&ConsoleSecret::new("two"))).open(&cookie, now), None);
        assert_eq!(ConsoleKey::new(None).open(&cookie, now), None);
        assert_eq!(key.open(&cookie.replacen("abc", "abd", 1), now), None);
        assert_ne!(key.seal("abc", now), cookie, "a nonce in each");
        assert!(key.verify("csrf", &cookie, &key.csrf(&cookie)));
        assert!(!key.verify("csrf", &cookie, &key.sign("session", &cookie)));
        assert!(!key.verify("csrf", &cookie, "zz"));
    }
}
