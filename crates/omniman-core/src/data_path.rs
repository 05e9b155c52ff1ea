//! Which `set_data` paths a caller may write (docs/reference.md §4): the reserved roots nobody
//! may write, and the allow-list API clients are held to. A leaf module: channels, ops and the
//! commit all read these rules.

use std::sync::Arc;

/// Which `set_data` paths a caller may write (docs/reference.md §4).
///
/// Reserved roots are refused for everyone. External callers (the HTTP API) are further limited
/// to an allow-list of roots and a maximum depth; internal callers (resolvers, importers) are not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathRules {
    /// Only the reserved roots are refused.
    Internal,
    /// Roots must be in the list and paths at most `max_depth` segments long.
    External {
        /// Allowed roots.
        allowed_roots: Arc<[String]>,
        /// Maximum number of segments.
        max_depth: usize,
    },
}

/// The default allow-list of `set_data` roots for external callers.
///
/// Besides the general-purpose roots it holds the three keys the commit's pre-order rule reads
/// (`delivery_date`, `delivery_time_slot`, `fulfillment_type`), so that rule is reachable over
/// HTTP. Every root written here reaches the order's `data` at commit unless the channel narrows
/// it with `order_data_keys` (docs/reference.md §6).
pub const DEFAULT_DATA_ROOTS: &[&str] = &[
    "customer",
    "delivery",
    "payment",
    "notes",
    "meta",
    "extra",
    "custom",
    "tags",
    "discounts",
    "fees",
    "tip",
    "coupon",
    "source",
    "operator",
    "table",
    "tab",
    "delivery_date",
    "delivery_time_slot",
    "fulfillment_type",
];

/// Roots nobody may write through `set_data`.
pub const RESERVED_DATA_ROOTS: &[&str] =
    &["checks", "issues", "state", "status", "rev", "session_key", "channel", "items", "pricing", "pricing_trace"];

/// Whether `set_data` refuses a root for every caller: a reserved name (any case) or `__…`.
pub fn is_reserved_root(root: &str) -> bool {
    root.starts_with("__") || RESERVED_DATA_ROOTS.iter().any(|r| r.eq_ignore_ascii_case(root))
}

impl PathRules {
    /// The external rules with the default allow-list and depth 5 (docs/reference.md §4).
    pub fn external_default() -> PathRules {
        PathRules::External {
            allowed_roots: DEFAULT_DATA_ROOTS.iter().map(|s| (*s).to_owned()).collect(),
            max_depth: 5,
        }
    }

    /// Checks a path; `Err` holds the reason.
    pub fn check<'p>(&self, path: &'p str) -> Result<Vec<&'p str>, String> {
        let segments: Vec<&str> = path.split('.').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err("path has an empty segment".into());
        }
        let root = segments[0];
        if is_reserved_root(root) {
            return Err(format!("'{root}' is reserved"));
        }
        if root.chars().any(char::is_uppercase) {
            return Err("the root segment must be lower case".into());
        }
        if let PathRules::External { allowed_roots, max_depth } = self {
            if !allowed_roots.iter().any(|r| r == root) {
                return Err(format!("'{root}' is not an allowed root (allowed: {})", allowed_roots.join(", ")));
            }
            if segments.len() > *max_depth {
                return Err(format!("at most {max_depth} segments"));
            }
        }
        Ok(segments)
    }
}
