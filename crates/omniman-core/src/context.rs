//! Who is calling and when: the context every pipeline and extension receives.

use chrono::{DateTime, Utc};

use crate::ops::PathRules;

/// The caller of a service operation.
///
/// ```
/// use omniman_core::context::Caller;
/// let api = Caller::external("pos-terminal-3");
/// let system = Caller::internal("system");
/// assert_eq!(api.actor, "pos-terminal-3");
/// # let _ = system;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Recorded as the `actor` of events.
    pub actor: String,
    /// Which `set_data` paths the caller may write.
    pub path_rules: PathRules,
}

impl Caller {
    /// A trusted in-process caller (resolvers, importers, handlers).
    pub fn internal(actor: impl Into<String>) -> Caller {
        Caller { actor: actor.into(), path_rules: PathRules::Internal }
    }

    /// An API client, bound by the default `set_data` allow-list.
    pub fn external(actor: impl Into<String>) -> Caller {
        Caller { actor: actor.into(), path_rules: PathRules::external_default() }
    }
}

/// A caller at an instant: what pure decisions and extensions receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// Who.
    pub caller: Caller,
    /// When.
    pub now: DateTime<Utc>,
}

impl Ctx {
    /// Builds a context.
    pub fn new(caller: Caller, now: DateTime<Utc>) -> Ctx {
        Ctx { caller, now }
    }

    /// The actor's name.
    pub fn actor(&self) -> &str {
        &self.caller.actor
    }
}
