//! Identifier generation (docs/reference.md §3).
//!
//! Random parts use a 32-symbol alphabet without `0 1 O I`. Production code draws them from a
//! CSPRNG seeded by the operating system; tests and benches use a seeded generator so every run
//! produces the same ids.

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The symbols random id parts are drawn from.
pub const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A source of random id symbols.
///
/// Implementors only fill buffers with symbols from [`ALPHABET`]; the id formats are provided.
///
/// ```
/// use omniman_core::ids::{IdGen, RandomIds};
/// let mut ids = RandomIds::seeded(7);
/// let key = ids.session_key();
/// assert!(key.starts_with("SESS-") && key.len() == 17);
/// ```
pub trait IdGen: Send {
    /// Fills `out` with symbols drawn uniformly from [`ALPHABET`].
    fn fill_symbols(&mut self, out: &mut [u8]);

    /// `prefix` followed by `n` random symbols.
    fn with_prefix(&mut self, prefix: &str, n: usize) -> String {
        // Every id format draws at most 16 symbols: a stack buffer spares an allocation per id.
        let (mut stack, mut heap) = ([0_u8; 32], Vec::new());
        let buf = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap.resize(n, 0);
            &mut heap[..]
        };
        self.fill_symbols(buf);
        let mut id = String::with_capacity(prefix.len() + n);
        id.push_str(prefix);
        // Symbols are ASCII by construction.
        id.extend(buf.iter().map(|&b| char::from(b)));
        id
    }

    /// `SESS-` + 12 symbols.
    fn session_key(&mut self) -> String {
        self.with_prefix("SESS-", 12)
    }

    /// `L-` + 8 symbols.
    fn line_id(&mut self) -> String {
        self.with_prefix("L-", 8)
    }

    /// `ORD-YYYYMMDD-` + 8 symbols, dated in the business time zone.
    fn order_ref(&mut self, business_date: NaiveDate) -> String {
        let prefix = format!("ORD-{}-", business_date.format("%Y%m%d"));
        self.with_prefix(&prefix, 8)
    }

    /// `ISS-` + 8 symbols.
    fn issue_id(&mut self) -> String {
        self.with_prefix("ISS-", 8)
    }

    /// `ACT-` + 8 symbols.
    fn action_id(&mut self) -> String {
        self.with_prefix("ACT-", 8)
    }

    /// `IDEM-` + 16 symbols, for commits that came without a key.
    fn idempotency_key(&mut self) -> String {
        self.with_prefix("IDEM-", 16)
    }
}

/// The standard generator: a ChaCha-based CSPRNG.
#[derive(Debug)]
pub struct RandomIds {
    rng: StdRng,
}

impl RandomIds {
    /// Seeded from the operating system; use in production.
    pub fn from_entropy() -> RandomIds {
        RandomIds { rng: StdRng::from_os_rng() }
    }

    /// Deterministic; use in tests and benches.
    pub fn seeded(seed: u64) -> RandomIds {
        RandomIds { rng: StdRng::seed_from_u64(seed) }
    }
}

impl IdGen for RandomIds {
    fn fill_symbols(&mut self, out: &mut [u8]) {
        for slot in out {
            // 32 symbols: the low five bits of a uniform byte are uniform.
            *slot = ALPHABET[usize::from(self.rng.random::<u8>() & 31)];
        }
    }
}

/// Whether a client-chosen session key is acceptable: `[A-Za-z0-9_.:-]{1,64}`.
pub fn is_valid_session_key(key: &str) -> bool {
    crate::input::session_key_rule(key).is_ok()
}

/// Whether a client idempotency key is acceptable: 1–128 visible ASCII characters.
pub fn is_valid_idempotency_key(key: &str) -> bool {
    crate::input::idempotency_key_rule(key).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_spec() {
        let mut ids = RandomIds::seeded(1);
        let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let cases = [
            (ids.session_key(), "SESS-", 12),
            (ids.line_id(), "L-", 8),
            (ids.order_ref(date), "ORD-20261121-", 8),
            (ids.issue_id(), "ISS-", 8),
            (ids.action_id(), "ACT-", 8),
            (ids.idempotency_key(), "IDEM-", 16),
        ];
        for (id, prefix, n) in cases {
            let rest = id.strip_prefix(prefix).unwrap_or_else(|| panic!("{id} lacks {prefix}"));
            assert_eq!(rest.len(), n, "{id}");
            assert!(rest.bytes().all(|b| ALPHABET.contains(&b)), "{id}");
        }
    }

    #[test]
    fn seeded_is_deterministic_and_entropy_is_not() {
        assert_eq!(RandomIds::seeded(9).session_key(), RandomIds::seeded(9).session_key());
        assert_ne!(RandomIds::from_entropy().session_key(), RandomIds::from_entropy().session_key());
    }

    #[test]
    fn alphabet_has_no_ambiguous_symbols() {
        for b in b"01OI" {
            assert!(!ALPHABET.contains(b));
        }
    }

    #[test]
    fn key_rules() {
        assert!(is_valid_session_key("table-12:tab_3.a"));
        assert!(!is_valid_session_key(""));
        assert!(!is_valid_session_key("has space"));
        assert!(!is_valid_session_key(&"k".repeat(65)));
        assert!(is_valid_idempotency_key(&"k".repeat(128)));
        assert!(!is_valid_idempotency_key(&"k".repeat(129)));
        assert!(!is_valid_idempotency_key("tab\there"));
        assert!(!is_valid_idempotency_key("ção"));
    }
}
