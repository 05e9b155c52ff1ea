//! Rate limits per principal and route class (docs/api.md, Rate limits): an in-process token bucket,
//! or a [`RateLimitBackend`] shared by several instances.
//!
//! Nothing is limited unless limits are configured: server-wide defaults, or a token's own limits
//! (which win, class by class). Each (principal, class) pair has its own bucket holding up to
//! `requests` tokens, refilled continuously at `requests / per`. With a backend (the server's is
//! Redis), the budget is counted there, so every instance draws from one; when the backend
//! cannot answer, this process counts alone until it can.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// The classes of routes that are limited separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// `POST /api/sessions/{key}/modify`.
    Modify,
    /// `POST /api/sessions/{key}/commit`.
    Commit,
    /// Every other authenticated route.
    Other,
}

impl RouteClass {
    /// The spelling used in configuration strings.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Modify => "modify",
            RouteClass::Commit => "commit",
            RouteClass::Other => "other",
        }
    }

    /// The class of a matched route pattern.
    pub fn of_pattern(pattern: &str) -> RouteClass {
        if pattern.ends_with("/modify") {
            RouteClass::Modify
        } else if pattern.ends_with("/commit") {
            RouteClass::Commit
        } else {
            RouteClass::Other
        }
    }
}

/// A rate: `requests` per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per window (also the burst size).
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s".to_owned(),
            60 => "min".to_owned(),
            3600 => "hour".to_owned(),
            86_400 => "day".to_owned(),
            n => format!("{n}s"),
        };
        write!(f, "{}/{unit}", self.requests)
    }
}

/// Limits by route class; `None` = unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Limit of modify calls.
    pub modify: Option<Rate>,
    /// Limit of commit calls.
    pub commit: Option<Rate>,
    /// Limit of every other call.
    pub other: Option<Rate>,
}

impl RateLimits {
    /// No limit at all.
    pub fn is_empty(&self) -> bool {
        self.modify.is_none() && self.commit.is_none() && self.other.is_none()
    }

    /// The limit of a class.
    pub fn get(&self, class: RouteClass) -> Option<Rate> {
        match class {
            RouteClass::Modify => self.modify,
            RouteClass::Commit => self.commit,
            RouteClass::Other => self.other,
        }
    }
}

impl fmt::Display for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [RouteClass::Modify, RouteClass::Commit, RouteClass::Other]
            .into_iter()
            .filter_map(|c| self.get(c).map(|r| format!("{}={r}", c.as_str())))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A rate limit string that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate limit '{input}': {reason}")]
pub struct RateLimitParseError {
    /// The offending part.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

fn parse_error(input: &str, reason: &str) -> RateLimitParseError {
    RateLimitParseError { input: input.to_owned(), reason: reason.to_owned() }
}

fn parse_window(unit: &str) -> Option<Duration> {
    let (count, unit) = match unit.find(|c: char| !c.is_ascii_digit()) {
        Some(0) => (1, unit),
        Some(i) => (unit[..i].parse::<u64>().ok().filter(|n| *n > 0)?, &unit[i..]),
        None => return None,
    };
    let secs = match unit {
        "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(count.checked_mul(secs)?))
}

/// Parses `class=N/unit` pairs separated by commas, e.g. `commit=60/min,modify=300/min`.
///
/// Classes: `modify`, `commit`, `other`. Units: `s`, `min` (or `m`), `hour` (or `h`), `day`
/// (or `d`), optionally with a count (`100/5min`). An empty string means no limits.
///
/// ```
/// use omniman_http::parse_rate_limits;
/// let limits = parse_rate_limits("commit=60/min,modify=300/min").unwrap();
/// assert_eq!(limits.commit.unwrap().requests, 60);
/// assert!(limits.other.is_none());
/// assert!(parse_rate_limits("commit=lots").is_err());
/// ```
pub fn parse_rate_limits(text: &str) -> Result<RateLimits, RateLimitParseError> {
    let mut limits = RateLimits::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (class, rate) = part.split_once('=').ok_or_else(|| parse_error(part, "expected class=N/unit"))?;
        let (count, unit) =
            rate.trim().split_once('/').ok_or_else(|| parse_error(part, "expected N/unit, e.g. 60/min"))?;
        let requests: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| parse_error(part, "the count must be a positive integer"))?;
        let per = parse_window(unit.trim()).ok_or_else(|| parse_error(part, "unknown unit (use s, min, hour, day)"))?;
        let slot = match class.trim() {
            "modify" => &mut limits.modify,
            "commit" => &mut limits.commit,
            "other" => &mut limits.other,
            _ => return Err(parse_error(part, "unknown class (use modify, commit, other)")),
        };
        if slot.is_some() {
            return Err(parse_error(part, "class given twice"));
        }
        *slot = Some(Rate { requests, per });
    }
    Ok(limits)
}

impl FromStr for RateLimits {
    type Err = RateLimitParseError;

    fn from_str(s: &str) -> Result<RateLimits, RateLimitParseError> {
        parse_rate_limits(s)
    }
}

/// What a limited request learns about its bucket; sent as `RateLimit-*` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// The class.
    pub class: RouteClass,
    /// Bucket size.
    pub limit: u32,
    /// Whole tokens left.
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Window length in seconds.
    pub window_secs: u64,
    /// When refused: seconds until one token is available.
    pub retry_after_secs: Option<u64>,
}

/// Where budgets are counted when several instances must share them (the server's is Redis).
#[async_trait]
pub trait RateLimitBackend: Send + Sync + fmt::Debug {
    /// Takes one request for `principal` on `class` from a budget of `rate`, shared by every
    /// instance using the backend. `None` when the backend cannot decide now: the request is then
    /// counted in process (the backend counts these fallbacks for its metrics).
    async fn acquire(&self, principal: &str, class: RouteClass, rate: Rate) -> Option<RateLimitStatus>;
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every (principal, class) pair seen.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<(String, RouteClass), Bucket>>,
    shared: Option<Arc<dyn RateLimitBackend>>,
}

fn ceil_secs(secs: f64) -> u64 {
    // Non-negative and bounded by the window, so the conversion cannot truncate meaningfully.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = secs.max(0.0).ceil() as u64;
    whole
}

impl RateLimiter {
    pub(crate) fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter { limits, buckets: Mutex::new(HashMap::new()), shared: None }
    }

    /// Counts in `backend` first, in process only when it cannot answer.
    pub(crate) fn with_backend(mut self, backend: Arc<dyn RateLimitBackend>) -> RateLimiter {
        self.shared = Some(backend);
        self
    }

    /// The server's default limits.
    pub(crate) fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Takes one token for `principal` on `class`, under the principal's own limit of that
    /// class if it has one, else the server's default. `None`: the class is not limited.
    pub(crate) async fn acquire(
        &self,
        principal: &str,
        class: RouteClass,
        own: &RateLimits,
    ) -> Option<RateLimitStatus> {
        let rate = own.get(class).or_else(|| self.limits.get(class))?;
        if let Some(shared) = &self.shared {
            if let Some(status) = shared.acquire(principal, class, rate).await {
                return Some(status);
            }
        }
        self.acquire_at(principal, class, own, Instant::now())
    }

    fn acquire_at(
        &self,
        principal: &str,
        class: RouteClass,
        own: &RateLimits,
        now: Instant,
    ) -> Option<RateLimitStatus> {
        let rate = own.get(class).or_else(|| self.limits.get(class))?;
        let capacity = f64::from(rate.requests);
        let per_sec = capacity / rate.per.as_secs_f64().max(f64::EPSILON);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket =
            buckets.entry((principal.to_owned(), class)).or_insert_with(|| Bucket { tokens: capacity, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.at = now;
        let retry_after_secs = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            None
        } else {
            Some(ceil_secs((1.0 - bucket.tokens) / per_sec).max(1))
        };
        // Whole tokens left, at most `requests`.
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let remaining = bucket.tokens.floor().max(0.0) as u32;
        Some(RateLimitStatus {
            class,
            limit: rate.requests,
            remaining,
            reset_secs: ceil_secs((capacity - bucket.tokens) / per_sec),
            window_secs: rate.per.as_secs(),
            retry_after_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let limits = parse_rate_limits(" commit=60/min, modify=300/min ,other=10/5s").unwrap();
        assert_eq!(limits.commit, Some(Rate { requests: 60, per: Duration::from_secs(60) }));
        assert_eq!(limits.modify.unwrap().requests, 300);
        assert_eq!(limits.other, Some(Rate { requests: 10, per: Duration::from_secs(5) }));
        assert_eq!(limits.to_string(), "modify=300/min,commit=60/min,other=10/5s");
        assert!(parse_rate_limits("").unwrap().is_empty());
        assert_eq!(parse_rate_limits("other=5/h").unwrap().other.unwrap().per, Duration::from_secs(3600));
        for bad in
            ["commit", "commit=60", "commit=0/min", "commit=x/min", "commit=1/year", "pay=1/s", "commit=1/s,commit=2/s"]
        {
            assert!(parse_rate_limits(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_refuses_then_refills() {
        let limiter = RateLimiter::new(parse_rate_limits("commit=2/min").unwrap());
        let none = RateLimits::default();
        let t0 = Instant::now();
        assert!(limiter.acquire_at("a", RouteClass::Other, &none, t0).is_none());
        assert_eq!(limiter.acquire_at("a", RouteClass::Commit, &none, t0).unwrap().remaining, 1);
        assert!(limiter.acquire_at("a", RouteClass::Commit, &none, t0).unwrap().retry_after_secs.is_none());
        let refused = limiter.acquire_at("a", RouteClass::Commit, &none, t0).unwrap();
        assert_eq!(refused.retry_after_secs, Some(30));
        // Another principal has its own bucket.
        assert!(limiter.acquire_at("b", RouteClass::Commit, &none, t0).unwrap().retry_after_secs.is_none());
        let later = limiter.acquire_at("a", RouteClass::Commit, &none, t0 + Duration::from_secs(30)).unwrap();
        assert!(later.retry_after_secs.is_none());
    }

    #[test]
    fn a_principal_s_own_limit_wins_class_by_class() {
        let limiter = RateLimiter::new(parse_rate_limits("commit=2/min,modify=5/min").unwrap());
        let own = parse_rate_limits("commit=1/min,other=3/s").unwrap();
        let t0 = Instant::now();
        let commit = limiter.acquire_at("till", RouteClass::Commit, &own, t0).unwrap();
        assert_eq!((commit.limit, commit.remaining), (1, 0));
        assert_eq!(limiter.acquire_at("till", RouteClass::Commit, &own, t0).unwrap().retry_after_secs, Some(60));
        // Classes the principal leaves out keep the server's default; `other` is limited for it alone.
        assert_eq!(limiter.acquire_at("till", RouteClass::Modify, &own, t0).unwrap().limit, 5);
        assert_eq!(limiter.acquire_at("till", RouteClass::Other, &own, t0).unwrap().limit, 3);
        assert!(limiter.acquire_at("web", RouteClass::Other, &RateLimits::default(), t0).is_none());
    }
}
