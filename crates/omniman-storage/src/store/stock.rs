//! The built-in stock backend (docs/reference.md §7, §8 `StockBackend`) on [`Database`]: levels in
//! `stock_levels`, holds in `stock_holds`, on either backend.
//!
//! Semantics are those of the worker's in-process `MemoryStock`:
//!
//! * available = on hand − the holds that are `active` and not expired (expiry compared with
//!   the current time at microsecond precision); a SKU without a level has nothing on hand;
//!   `check_availability` ignores its date (no pre-orders: the same answer on every date);
//! * `create_hold` succeeds only when the whole quantity is available, and is atomic: the check
//!   and the insert run in one write transaction that first locks the SKU's level (PostgreSQL:
//!   `SELECT … FOR UPDATE`; SQLite: `BEGIN IMMEDIATE`), so two sessions (or two processes)
//!   racing for the last unit get exactly one hold;
//! * `fulfill_hold`: `active → fulfilled` and the level lowered by the hold's quantity, in one
//!   transaction; an already fulfilled hold answers `true` (at-least-once delivery), a released
//!   or unknown one `false`. An active hold is fulfilled even past its expiry (the commit
//!   checked expiry when the order was made);
//! * `release_hold` / `release_holds_for_reference`: `active → released` (expired or not);
//! * `get_alternatives`: always empty; the backend knows no catalogue to suggest from.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use omniman_core::error::StoreError;
use omniman_core::ext::{Alternative, Availability, BackendError, HoldResult, StockBackend};
use omniman_core::ids::{IdGen, RandomIds};
use omniman_core::money::Qty;

use super::rows::{HoldValues, affected, db_error, ts, violates};
use super::{pg, run, sqlite};
use crate::pool::Database;

/// How many times a hold is retried when its random id is taken.
const HOLD_ID_RETRIES: usize = 3;

/// One SKU's stock, as `omniman stock list` prints it. Quantities are 3-decimal strings
/// (`7.000`; on hand may be negative, `-1.000`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    /// The SKU.
    pub sku: String,
    /// Quantity on hand (fulfilled holds deducted).
    pub on_hand: String,
    /// Quantity taken by live holds (active, not expired).
    pub held: String,
    /// On hand − held, `0.000` when nothing is left.
    pub available: String,
}

/// Thousandths as a 3-decimal string: `7000` → `7.000`, `-500` → `-0.500`.
fn milli_text(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let abs = millis.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

fn backend_error(e: impl std::fmt::Display) -> BackendError {
    BackendError(e.to_string())
}

/// The current time as stored (microseconds).
fn now() -> DateTime<Utc> {
    ts(Utc::now())
}

/// A fresh hold id: `HOLD-` and 16 random symbols.
fn new_hold_id() -> String {
    RandomIds::from_entropy().with_prefix("HOLD-", 16)
}

#[async_trait]
impl StockBackend for Database {
    async fn check_availability(
        &self,
        sku: &str,
        qty: Qty,
        _date: Option<NaiveDate>,
    ) -> Result<Availability, BackendError> {
        let (sku_owned, now) = (sku.to_owned(), now());
        let (on_hand, held) = on_db!(read self, |conn, q| q::stock_of(conn, &sku_owned, now).await.map_err(db_error))
            .map_err(backend_error)?;
        Ok(Availability::for_request(sku, qty, on_hand.unwrap_or(0).saturating_sub(held)))
    }

    async fn create_hold(
        &self,
        sku: &str,
        qty: Qty,
        expires_at: Option<DateTime<Utc>>,
        reference: Option<&str>,
    ) -> Result<HoldResult, BackendError> {
        let values = HoldValues {
            hold_id: new_hold_id(),
            sku: sku.to_owned(),
            qty_milli: qty.millis(),
            reference: reference.map(str::to_owned),
            expires_at: expires_at.map(ts),
            now: now(),
        };
        let expires_at = values.expires_at;
        let created = on_db!(self, |conn, q| {
            let mut values = values;
            let mut attempt = 0;
            loop {
                match q::create_hold(conn, values.clone()).await {
                    Ok(true) => return Ok(Some(values.hold_id)),
                    Ok(false) => return Ok(None),
                    Err(e)
                        if attempt < HOLD_ID_RETRIES
                            && violates(&e, "stock_holds_hold_id_key", "stock_holds.hold_id") =>
                    {
                        attempt += 1;
                        values.hold_id = new_hold_id();
                    }
                    Err(e) => return Err(db_error(e)),
                }
            }
        })
        .map_err(backend_error)?;
        Ok(match created {
            Some(hold_id) => HoldResult::held(hold_id, expires_at),
            None => HoldResult::insufficient(sku),
        })
    }

    async fn release_hold(&self, hold_id: &str) -> Result<bool, BackendError> {
        let (hold_id, now) = (hold_id.to_owned(), now());
        on_db!(self, |conn, q| Ok(q::release_hold(conn, &hold_id, now).await.map_err(db_error)? == 1))
            .map_err(backend_error)
    }

    async fn fulfill_hold(&self, hold_id: &str, reference: Option<&str>) -> Result<bool, BackendError> {
        let (hold_id, reference, now) = (hold_id.to_owned(), reference.map(str::to_owned), now());
        on_db!(self, |conn, q| q::fulfill_hold(conn, hold_id, reference, now).await.map_err(db_error))
            .map_err(backend_error)
    }

    /// Always empty: the stock tables know no catalogue to suggest substitutes from (and no
    /// flow asks for them, docs/reference.md §7).
    async fn get_alternatives(&self, _sku: &str, _qty: Qty) -> Result<Vec<Alternative>, BackendError> {
        Ok(Vec::new())
    }

    async fn release_holds_for_reference(&self, reference: &str) -> Result<u64, BackendError> {
        let (reference, now) = (reference.to_owned(), now());
        on_db!(self, |conn, q| Ok(affected(
            q::release_holds_for_reference(conn, &reference, now).await.map_err(db_error)?
        )))
        .map_err(backend_error)
    }
}

impl Database {
    /// Sets the quantity on hand of `sku` (creating its level). Live holds keep what they hold:
    /// lowering the level below them leaves nothing available until they end.
    pub async fn set_stock_level(&self, sku: &str, qty: Qty, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_on_hand(sku, qty.millis(), now).await
    }

    /// Sets the quantity on hand of `sku` to zero, i.e. sold out (creating its level). A [`Qty`]
    /// is never zero, hence a method of its own. Live holds keep what they hold.
    pub async fn set_stock_sold_out(&self, sku: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_on_hand(sku, 0, now).await
    }

    async fn set_on_hand(&self, sku: &str, millis: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        let (sku, now) = (sku.to_owned(), ts(now));
        on_db!(self, |conn, q| q::set_stock_level(conn, &sku, millis, now).await.map(drop).map_err(db_error))
    }

    /// Every SKU with a level, by SKU: on hand, held by live holds at `now`, and available.
    pub async fn stock_levels(&self, now: DateTime<Utc>) -> Result<Vec<StockLevel>, StoreError> {
        let now = ts(now);
        let rows = on_db!(read self, |conn, q| q::stock_levels(conn, now).await.map_err(db_error))?;
        Ok(rows
            .into_iter()
            .map(|(sku, on_hand, held)| StockLevel {
                sku,
                on_hand: milli_text(on_hand),
                held: milli_text(held),
                available: milli_text(on_hand.saturating_sub(held).max(0)),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::milli_text;

    #[test]
    fn quantities_have_three_decimals_and_a_sign() {
        assert_eq!(milli_text(7_000), "7.000");
        assert_eq!(milli_text(0), "0.000");
        assert_eq!(milli_text(1_500), "1.500");
        assert_eq!(milli_text(-1_000), "-1.000");
        assert_eq!(milli_text(-500), "-0.500");
        assert_eq!(milli_text(i64::MIN), "-9223372036854775.808");
    }
}
