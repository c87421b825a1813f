//! Money as integers: an [`Amount`] counts atomic units of an asset (USDC has 6 decimals, so
//! `1_000_000` is one dollar), and the asset's decimals travel with it in [`Money`]. There are
//! no floats anywhere on this path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ErrorCode};

/// The most decimals an asset may declare. 10^36 still fits in a `u128` with room for amounts.
pub const MAX_DECIMALS: u8 = 36;

/// A non-negative count of an asset's atomic units. On the wire it is a decimal string, as in
/// x402's `amount`, so JavaScript clients never lose precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(u128);

impl Amount {
    pub const ZERO: Amount = Amount(0);
    pub const MAX: Amount = Amount(u128::MAX);

    pub const fn from_atomic(units: u128) -> Self {
        Self(units)
    }

    pub const fn atomic(self) -> u128 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// Parses a decimal string of atomic units: ASCII digits only, no sign, no exponent.
    pub fn parse_atomic(s: &str) -> Result<Self, Error> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::new(
                ErrorCode::InvalidInput,
                "amount must be a non-empty string of decimal digits (atomic units)",
            ));
        }
        s.parse::<u128>().map(Amount).map_err(|_| {
            Error::new(
                ErrorCode::InvalidInput,
                "amount is larger than the largest supported amount",
            )
        })
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl FromStr for Amount {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Amount::parse_atomic(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Amount::parse_atomic(&s).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// An amount together with its asset's decimals, so it can be shown and parsed in whole units.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Money {
    amount: Amount,
    decimals: u8,
}

impl Money {
    pub fn new(amount: Amount, decimals: u8) -> Result<Self, Error> {
        check_decimals(decimals)?;
        Ok(Self { amount, decimals })
    }

    pub fn amount(&self) -> Amount {
        self.amount
    }

    pub fn decimals(&self) -> u8 {
        self.decimals
    }

    /// Parses whole units such as `"1.25"` exactly. More fractional digits than the asset has
    /// is an error, never a rounding.
    pub fn parse_units(s: &str, decimals: u8) -> Result<Self, Error> {
        check_decimals(decimals)?;
        let invalid = || {
            Error::new(
                ErrorCode::InvalidInput,
                format!(
                    "`{}` is not a decimal amount",
                    s.chars().take(48).collect::<String>()
                ),
            )
        };
        let (whole, fraction) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        let digits_only = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
            return Err(invalid());
        }
        if s.ends_with('.') {
            return Err(invalid());
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > usize::from(decimals) {
            return Err(Error::new(
                ErrorCode::InvalidInput,
                format!("amount has more than {decimals} decimal places"),
            ));
        }
        let too_large = || Error::new(ErrorCode::InvalidInput, "amount is too large");
        let scale = 10u128.pow(u32::from(decimals));
        let whole: u128 = whole.parse().map_err(|_| too_large())?;
        let fraction_units: u128 = if fraction.is_empty() {
            0
        } else {
            let padding = 10u128.pow(u32::from(decimals) - fraction.len() as u32);
            fraction.parse::<u128>().map_err(|_| invalid())? * padding
        };
        let atomic = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(fraction_units))
            .ok_or_else(too_large)?;
        Ok(Self {
            amount: Amount(atomic),
            decimals,
        })
    }

    /// Whole units with exactly as many fractional digits as needed (`"1.25"`, `"3"`).
    pub fn to_units_string(&self) -> String {
        let scale = 10u128.pow(u32::from(self.decimals));
        let whole = self.amount.0 / scale;
        let fraction = self.amount.0 % scale;
        if fraction == 0 {
            return whole.to_string();
        }
        let fraction = format!("{fraction:0width$}", width = usize::from(self.decimals));
        format!("{whole}.{}", fraction.trim_end_matches('0'))
    }
}

fn check_decimals(decimals: u8) -> Result<(), Error> {
    if decimals > MAX_DECIMALS {
        return Err(Error::new(
            ErrorCode::InvalidInput,
            format!("an asset may have at most {MAX_DECIMALS} decimals"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_whole_units_exactly() {
        let m = Money::parse_units("1.25", 6).unwrap();
        assert_eq!(m.amount().atomic(), 1_250_000);
        assert_eq!(m.to_units_string(), "1.25");
        assert_eq!(
            Money::parse_units("0.000001", 6).unwrap().amount().atomic(),
            1
        );
        assert_eq!(Money::parse_units("7", 0).unwrap().amount().atomic(), 7);
        assert_eq!(
            Money::parse_units("2.500", 6).unwrap().to_units_string(),
            "2.5"
        );
    }

    #[test]
    fn refuses_rounding_and_junk() {
        for bad in [
            "", ".5", "1.", "-1", "+1", "1e6", "1.2.3", " 1", "0x10", "1,5",
        ] {
            assert!(Money::parse_units(bad, 6).is_err(), "{bad:?} was accepted");
        }
        let err = Money::parse_units("0.0000001", 6).unwrap_err();
        assert!(err.message().contains("6 decimal places"));
        assert!(Money::parse_units("1", 37).is_err());
        assert!(Money::parse_units("400000000000000000000000000000000", 6).is_err());
    }

    #[test]
    fn atomic_amounts_are_strict_decimal_strings_on_the_wire() {
        let a: Amount = serde_json::from_str("\"10000\"").unwrap();
        assert_eq!(a.atomic(), 10_000);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"10000\"");
        for bad in [
            "10000",
            "\"-1\"",
            "\"1.5\"",
            "\"\"",
            "\"1e3\"",
            "\"99999999999999999999999999999999999999999\"",
        ] {
            assert!(
                serde_json::from_str::<Amount>(bad).is_err(),
                "{bad} was accepted"
            );
        }
    }

    proptest! {
        #[test]
        fn units_round_trip(atomic in any::<u64>(), decimals in 0u8..=18) {
            let m = Money::new(Amount::from_atomic(u128::from(atomic)), decimals).unwrap();
            let back = Money::parse_units(&m.to_units_string(), decimals).unwrap();
            prop_assert_eq!(back, m);
        }

        #[test]
        fn parsing_never_panics(s in "\\PC{0,48}", decimals in 0u8..=40) {
            let _ = Money::parse_units(&s, decimals);
            let _ = Amount::parse_atomic(&s);
        }
    }
}
