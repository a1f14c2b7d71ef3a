//! `Money`: USD as an integer count of nano-dollars. Never `f64` in storage or arithmetic.
//!
//! Nano-dollars because one cheap request costs fractions of a micro-dollar (10 tokens at $0.15 per
//! million is $0.0000015); rounding each to micro-dollars would misstate spend by up to 30 %.

use serde::{Serialize, Serializer};

/// An amount of USD in nano-dollars (1 USD = 1,000,000,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Money(i64);

const NANOS_PER_USD: f64 = 1_000_000_000.0;

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn from_nanos(nanos: i64) -> Self {
        Money(nanos)
    }

    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Converts a USD amount from JSON, rounding to the nearest nano-dollar. `None` when the
    /// number is negative, not finite, or beyond a billion dollars.
    pub fn from_usd(usd: f64) -> Option<Self> {
        (usd.is_finite() && (0.0..=1e9).contains(&usd))
            .then(|| Money((usd * NANOS_PER_USD).round() as i64))
    }

    pub fn as_usd(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD
    }
}

impl Serialize for Money {
    /// Serialized as a USD JSON number, as `API.md` states.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_usd())
    }
}

#[cfg(test)]
mod tests {
    use super::Money;

    #[test]
    fn usd_converts_exactly_and_refuses_nonsense() {
        assert_eq!(
            Money::from_usd(12.345678).map(Money::nanos),
            Some(12_345_678_000)
        );
        assert_eq!(Money::from_usd(0.0000015).map(Money::nanos), Some(1_500));
        assert_eq!(Money::from_usd(0.1).map(Money::as_usd), Some(0.1));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e10] {
            assert_eq!(Money::from_usd(bad), None, "{bad}");
        }
    }
}
