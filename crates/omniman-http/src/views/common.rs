//! What the resource modules share: timestamps, counts and the list envelope.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// RFC 3339, UTC, `Z`.
pub(crate) fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

// Serde's `serialize_with` hands references in; the signatures are fixed.
#[allow(clippy::trivially_copy_pass_by_ref, clippy::ref_option)]
pub(super) mod ts {
    use super::{DateTime, Serializer, Utc, rfc3339};

    pub(in crate::views) fn one<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(at))
    }

    pub(in crate::views) fn opt<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&rfc3339(at)),
            None => s.serialize_none(),
        }
    }
}

/// A count as the views write it (`i64`, saturating).
pub(super) fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A page of a list: `{"next", "previous", "results"}` (docs/api.md, Pagination).
macro_rules! list_view {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Serialize, ToSchema)]
        pub struct $name {
            /// URL of the next page, or null.
            pub next: Option<String>,
            /// URL of the previous page, or null.
            pub previous: Option<String>,
            /// This page's rows.
            pub results: Vec<$item>,
        }
    };
}
