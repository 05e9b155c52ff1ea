//! Money and quantities (docs/reference.md §2).
//!
//! Money is an `i64` count of the currency's smallest unit (a *quantum*, fields suffixed `_q`).
//! Quantities are fixed-point with exactly three decimals, held as thousandths in an `i64`, so every
//! computation is exact integer arithmetic.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Thousandths in one unit.
const MILLI: i64 = 1000;
/// Largest accepted quantity: nine integer digits and three decimals.
const MAX_MILLIS: i64 = 999_999_999_999;

/// A positive quantity with three decimals, e.g. `1.500`.
///
/// Parsed from a JSON number or a numeric string; written as a 3-decimal string.
///
/// ```
/// use omniman_core::money::Qty;
/// let q: Qty = "1.5".parse().unwrap();
/// assert_eq!(q.millis(), 1500);
/// assert_eq!(q.to_string(), "1.500");
/// assert!("0".parse::<Qty>().is_err());
/// assert!("1.2345".parse::<Qty>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Qty(i64);

/// Why a quantity was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QtyError {
    /// Not a finite decimal number.
    #[error("quantity is not a number")]
    NotANumber,
    /// Zero or negative.
    #[error("quantity must be greater than zero")]
    NotPositive,
    /// More than three decimals.
    #[error("quantity has more than 3 decimals")]
    TooPrecise,
    /// More than nine integer digits.
    #[error("quantity has more than 9 integer digits")]
    TooLarge,
}

impl Qty {
    /// One unit (`1.000`).
    pub const ONE: Qty = Qty(MILLI);
    /// The largest quantity: 999,999,999.999.
    pub const MAX: Qty = Qty(MAX_MILLIS);

    /// Builds a quantity from thousandths; `None` unless `0 < millis ≤ 999_999_999.999`.
    pub fn from_millis(millis: i64) -> Option<Qty> {
        (millis > 0 && millis <= MAX_MILLIS).then_some(Qty(millis))
    }

    /// A whole number of units; `None` when out of range.
    pub fn from_units(units: i64) -> Option<Qty> {
        units.checked_mul(MILLI).and_then(Qty::from_millis)
    }

    /// The quantity in thousandths.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Sum of two quantities; `None` when the result exceeds the limit.
    pub fn checked_add(self, other: Qty) -> Option<Qty> {
        self.0.checked_add(other.0).and_then(Qty::from_millis)
    }

    /// Parses a decimal value, applying every rule of docs/reference.md §2.
    fn from_decimal(value: Decimal) -> Result<Qty, QtyError> {
        let value = value.normalize();
        if value.scale() > 3 {
            return Err(QtyError::TooPrecise);
        }
        if value <= Decimal::ZERO {
            return Err(QtyError::NotPositive);
        }
        if value.trunc() >= Decimal::from(1_000_000_000_i64) {
            return Err(QtyError::TooLarge);
        }
        let millis = (value * Decimal::from(MILLI)).trunc().mantissa().try_into().map_err(|_| QtyError::TooLarge)?;
        Ok(Qty(millis))
    }

    /// Parses a JSON value: a number or a numeric string.
    ///
    /// Floats are read through their shortest round-trip decimal form, so `1.5` is exactly `1.500`
    /// and `0.1` is exactly `0.100`.
    pub fn from_json(value: &serde_json::Value) -> Result<Qty, QtyError> {
        match value {
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Qty::from_decimal(Decimal::from(i))
                } else if n.as_u64().is_some() {
                    Err(QtyError::TooLarge)
                } else {
                    n.to_string().parse()
                }
            }
            serde_json::Value::String(s) => s.parse(),
            _ => Err(QtyError::NotANumber),
        }
    }
}

/// A number as JSON writes one, without its sign: digits with an optional fraction and an
/// optional exponent (which may carry a sign). No `+` in front, no padding, no other notation.
fn is_plain_decimal(text: &str) -> bool {
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent.strip_prefix(['+', '-']).unwrap_or(exponent))),
        None => (text, None),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    digits(integer)
        && digits(fraction)
        && !(integer.is_empty() && fraction.is_empty())
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
}

impl FromStr for Qty {
    type Err = QtyError;

    fn from_str(s: &str) -> Result<Qty, QtyError> {
        let plain = s.strip_prefix('-').unwrap_or(s);
        if !is_plain_decimal(plain) {
            return Err(QtyError::NotANumber);
        }
        // Integer digits are bounded before parsing so huge inputs cannot overflow the decimal.
        let integer_digits = plain.split(['.', 'e', 'E']).next().map_or(0, |d| d.trim_start_matches('0').len());
        if !plain.contains(['e', 'E']) && integer_digits > 9 {
            return if s.starts_with('-') { Err(QtyError::NotPositive) } else { Err(QtyError::TooLarge) };
        }
        let value = if plain.contains(['e', 'E']) { Decimal::from_scientific(s) } else { Decimal::from_str_exact(s) }
            .map_err(|_| QtyError::NotANumber)?;
        Qty::from_decimal(value)
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / MILLI, self.0 % MILLI)
    }
}

impl Serialize for Qty {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Qty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Qty, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Qty::from_json(&value).map_err(serde::de::Error::custom)
    }
}

/// Divides `numerator` by a positive `denominator`, rounding half away from zero.
fn div_round_half_away(numerator: i128, denominator: i128) -> i128 {
    debug_assert!(denominator > 0);
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.abs() * 2 >= denominator { quotient + numerator.signum() } else { quotient }
}

/// Saturates an exact result into `i64`; only reachable with prices near `i64::MAX`.
fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// `qty × unit_price_q`, rounded to a whole quantum half away from zero (Python's `ROUND_HALF_UP`).
///
/// ```
/// use omniman_core::money::{monetary_mult, Qty};
/// let q = |s: &str| s.parse::<Qty>().unwrap();
/// assert_eq!(monetary_mult(q("1.5"), 333), 500);
/// assert_eq!(monetary_mult(q("2.5"), 333), 833);
/// assert_eq!(monetary_mult(q("1.5"), -333), -500);
/// assert_eq!(monetary_mult(q("0.333"), 1), 0);
/// ```
pub fn monetary_mult(qty: Qty, unit_price_q: i64) -> i64 {
    saturate(exact_mult(qty, unit_price_q))
}

/// `qty × unit_price_q` as [`monetary_mult`] rounds it, or `None` when the result does not fit
/// in an `i64`: a line total is refused (`invalid_amount`) rather than saturated.
///
/// ```
/// use omniman_core::money::{checked_monetary_mult, Qty};
/// let q = |s: &str| s.parse::<Qty>().unwrap();
/// assert_eq!(checked_monetary_mult(q("1.5"), 333), Some(500));
/// assert_eq!(checked_monetary_mult(q("4"), 1 << 62), None);
/// ```
pub fn checked_monetary_mult(qty: Qty, unit_price_q: i64) -> Option<i64> {
    i64::try_from(exact_mult(qty, unit_price_q)).ok()
}

fn exact_mult(qty: Qty, unit_price_q: i64) -> i128 {
    div_round_half_away(i128::from(qty.millis()) * i128::from(unit_price_q), i128::from(MILLI))
}

/// `total / n` rounded half away from zero; `None` when `n` is zero or negative.
///
/// ```
/// assert_eq!(omniman_core::money::monetary_div(1000, 3), Some(333));
/// assert_eq!(omniman_core::money::monetary_div(5, 2), Some(3));
/// ```
pub fn monetary_div(total: i64, n: i64) -> Option<i64> {
    (n > 0).then(|| saturate(div_round_half_away(i128::from(total), i128::from(n))))
}

/// A quantity as stock answers write it (`"1.500"`), `"0.000"` for none.
///
/// ```
/// use omniman_core::money::{Qty, qty_or_zero};
/// assert_eq!(qty_or_zero(Qty::from_millis(1_500)), "1.500");
/// assert_eq!(qty_or_zero(None), "0.000");
/// ```
pub fn qty_or_zero(qty: Option<Qty>) -> String {
    qty.map_or_else(|| "0.000".to_owned(), |q| q.to_string())
}

/// Formats quanta as a decimal with two places (`2500` → `"25.00"`), as the order stream shows totals.
pub fn format_q2(total_q: i64) -> String {
    let sign = if total_q < 0 { "-" } else { "" };
    let abs = total_q.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Qty {
        s.parse().unwrap()
    }

    #[test]
    fn monetary_mult_rounds_half_away_from_zero() {
        assert_eq!(monetary_mult(q("1.5"), 333), 500);
        assert_eq!(monetary_mult(q("2.5"), 333), 833);
        assert_eq!(monetary_mult(q("7"), 333), 2331);
        assert_eq!(monetary_mult(q("0.333"), 1), 0);
        assert_eq!(monetary_mult(q("0.5"), 1), 1);
        assert_eq!(monetary_mult(q("1.5"), -333), -500);
        assert_eq!(monetary_mult(q("2"), 1000), 2000);
    }

    #[test]
    fn monetary_mult_saturates_instead_of_overflowing() {
        assert_eq!(monetary_mult(q("999999999.999"), i64::MAX), i64::MAX);
        assert_eq!(monetary_mult(q("999999999.999"), i64::MIN), i64::MIN);
    }

    #[test]
    fn monetary_div_rounds_half_away_from_zero() {
        assert_eq!(monetary_div(10, 4), Some(3));
        assert_eq!(monetary_div(-10, 4), Some(-3));
        assert_eq!(monetary_div(9, 4), Some(2));
        assert_eq!(monetary_div(1, 0), None);
    }

    #[test]
    fn qty_parses_numbers_and_strings() {
        assert_eq!(Qty::from_json(&json!(2)).unwrap().millis(), 2000);
        assert_eq!(Qty::from_json(&json!(2.5)).unwrap().millis(), 2500);
        assert_eq!(Qty::from_json(&json!(0.1)).unwrap().millis(), 100);
        assert_eq!(Qty::from_json(&json!("1.500")).unwrap().millis(), 1500);
        assert_eq!(Qty::from_json(&json!("1.5000")).unwrap().millis(), 1500);
        assert_eq!(Qty::from_json(&json!("999999999.999")).unwrap().millis(), MAX_MILLIS);
        assert_eq!(Qty::from_json(&json!("1e2")).unwrap().millis(), 100_000);
    }

    #[test]
    fn qty_refuses_what_spec_refuses() {
        assert_eq!(Qty::from_json(&json!(0)), Err(QtyError::NotPositive));
        assert_eq!(Qty::from_json(&json!(-1)), Err(QtyError::NotPositive));
        assert_eq!(Qty::from_json(&json!("-0.5")), Err(QtyError::NotPositive));
        assert_eq!(Qty::from_json(&json!(1.2345)), Err(QtyError::TooPrecise));
        assert_eq!(Qty::from_json(&json!("0.0001")), Err(QtyError::TooPrecise));
        assert_eq!(Qty::from_json(&json!("1000000000")), Err(QtyError::TooLarge));
        assert_eq!(Qty::from_json(&json!(1e20)), Err(QtyError::TooLarge));
        assert_eq!(Qty::from_json(&json!(u64::MAX)), Err(QtyError::TooLarge));
        assert_eq!(Qty::from_json(&json!("99999999999999999999999999999999")), Err(QtyError::TooLarge));
        assert_eq!(Qty::from_json(&json!("abc")), Err(QtyError::NotANumber));
        assert_eq!(Qty::from_json(&json!("")), Err(QtyError::NotANumber));
        assert_eq!(Qty::from_json(&json!("NaN")), Err(QtyError::NotANumber));
        assert_eq!(Qty::from_json(&json!(true)), Err(QtyError::NotANumber));
        assert_eq!(Qty::from_json(&json!(null)), Err(QtyError::NotANumber));
    }

    #[test]
    fn qty_strings_are_plain_numbers_without_a_plus_sign_or_padding() {
        for padded in ["+1", " 1", "1 ", "\t2\n", "+1e2", "+0.5", "1e2 ", "1_000", "0x10"] {
            assert_eq!(Qty::from_json(&json!(padded)), Err(QtyError::NotANumber), "{padded:?}");
        }
        assert_eq!(Qty::from_json(&json!("1e+2")).unwrap().millis(), 100_000, "an exponent may carry its sign");
        assert_eq!(Qty::from_json(&json!("-1")), Err(QtyError::NotPositive));
    }

    #[test]
    fn qty_serializes_as_three_decimal_string() {
        assert_eq!(serde_json::to_value(q("1.5")).unwrap(), json!("1.500"));
        assert_eq!(serde_json::to_value(q("2")).unwrap(), json!("2.000"));
        assert_eq!(serde_json::to_value(q("0.001")).unwrap(), json!("0.001"));
        let back: Qty = serde_json::from_value(json!("2.500")).unwrap();
        assert_eq!(back, q("2.5"));
    }

    #[test]
    fn q2_format() {
        assert_eq!(format_q2(0), "0.00");
        assert_eq!(format_q2(2500), "25.00");
        assert_eq!(format_q2(5), "0.05");
        assert_eq!(format_q2(-1050), "-10.50");
    }
}
