//! `stock_holds` rows.

use chrono::{DateTime, Utc};

// The statuses of a stock hold. The core names no hold status (a hold is the stock backend's own
// row), so the storage crate spells them here, once.
/// A hold that counts against its SKU's level (until it expires).
pub(crate) const HOLD_ACTIVE: &str = "active";
/// A hold given back.
pub(crate) const HOLD_RELEASED: &str = "released";
/// A hold whose quantity left the level with a committed order.
pub(crate) const HOLD_FULFILLED: &str = "fulfilled";

/// The values a hold insert writes (the hold starts `active`).
#[derive(Debug, Clone)]
pub(crate) struct HoldValues {
    pub hold_id: String,
    pub sku: String,
    pub qty_milli: i64,
    pub reference: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}
