//! Prices of usage: what a quantity of a meter costs.
//!
//! Prices are in USD (every asset Purser settles is a USD stablecoin), as decimals so that a
//! unit may cost less than an asset's smallest unit (an LLM token at $0.000002). A rating
//! computes exactly and rounds once, at the end, to atomic units of a 6-decimal stablecoin
//! (micro-USD, half up): [`Rated::amount_atomic`].
//!
//! Free units come off the quantity first. Then, for the billable quantity `q`:
//! - **standard**: `q × unit`;
//! - **graduated**: each tier prices the units that fall in it (`unit` each, plus its `flat`
//!   once if any unit falls in it);
//! - **volume**: the tier `q` falls in prices all of `q` (`unit` each, plus its `flat`);
//! - **package**: `ceil(q / size)` packages at `amount` each;
//! - **percentage**: `percent` of the value, the value read as atomic units with
//!   `value_decimals` (0: the value is in USD already).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::money::Amount;

/// Tiers and packages are bounded so a price stays readable and a rating cheap.
const MAX_TIERS: usize = 32;

/// One tier of a graduated or volume price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    /// The tier's last unit (inclusive); `None` for the last tier, which has no end.
    #[serde(default)]
    pub up_to: Option<Decimal>,
    /// USD per unit in the tier.
    #[serde(default)]
    pub unit_amount: Decimal,
    /// USD once for the tier (graduated: if any unit falls in it; volume: if it is the tier).
    #[serde(default)]
    pub flat_amount: Decimal,
}

/// How a quantity is priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "camelCase")]
pub enum PriceModel {
    #[serde(rename_all = "camelCase")]
    Standard {
        unit_amount: Decimal,
    },
    Graduated {
        tiers: Vec<Tier>,
    },
    Volume {
        tiers: Vec<Tier>,
    },
    #[serde(rename_all = "camelCase")]
    Package {
        package_size: Decimal,
        package_amount: Decimal,
    },
    #[serde(rename_all = "camelCase")]
    Percentage {
        percent: Decimal,
        #[serde(default)]
        value_decimals: u8,
    },
}

/// A meter's price: a model and the units every subject gets free per period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterPrice {
    #[serde(flatten)]
    pub model: PriceModel,
    #[serde(default)]
    pub free_units: Decimal,
}

/// One line of a rating: which units were priced how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RatedLine {
    pub description: String,
    pub units: Decimal,
    pub unit_amount: Decimal,
    pub flat_amount: Decimal,
    /// USD, exact.
    pub amount: Decimal,
}

/// A quantity priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rated {
    pub quantity: Decimal,
    pub free_units: Decimal,
    pub billable: Decimal,
    pub lines: Vec<RatedLine>,
    /// USD, exact: the sum of the lines.
    pub amount: Decimal,
    /// `amount` in atomic units of a 6-decimal USD stablecoin, rounded half up.
    pub amount_atomic: Amount,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::InvalidPriceModel, message.into())
}

fn line(description: String, units: Decimal, unit: Decimal, flat: Decimal) -> Result<RatedLine> {
    let amount = units
        .checked_mul(unit)
        .and_then(|variable| variable.checked_add(flat))
        .ok_or_else(|| Error::invalid_input("the rated amount is beyond 28 significant digits"))?;
    Ok(RatedLine {
        description,
        units,
        unit_amount: unit,
        flat_amount: flat,
        amount,
    })
}

fn check_tiers(tiers: &[Tier]) -> Result<()> {
    if tiers.is_empty() || tiers.len() > MAX_TIERS {
        return Err(invalid("a tiered price needs 1 to 32 tiers"));
    }
    let mut last = Decimal::ZERO;
    for (at, tier) in tiers.iter().enumerate() {
        if tier.unit_amount.is_sign_negative() || tier.flat_amount.is_sign_negative() {
            return Err(invalid(format!("tier {} has a negative amount", at + 1)));
        }
        match tier.up_to {
            Some(up_to) if at + 1 == tiers.len() => {
                return Err(invalid(format!(
                    "the last tier must have no `upTo` (it has {up_to}): every quantity needs a tier"
                )));
            }
            Some(up_to) if up_to <= last => {
                return Err(invalid(format!(
                    "tier {}'s `upTo` must be above the previous tier's",
                    at + 1
                )));
            }
            Some(up_to) => last = up_to,
            None if at + 1 != tiers.len() => {
                return Err(invalid(format!(
                    "only the last tier may have no `upTo` (tier {} has none)",
                    at + 1
                )));
            }
            None => {}
        }
    }
    Ok(())
}

impl MeterPrice {
    /// `invalid_price_model` naming the first problem.
    pub fn validate(&self) -> Result<()> {
        if self.free_units.is_sign_negative() {
            return Err(invalid("free units cannot be negative"));
        }
        match &self.model {
            PriceModel::Standard { unit_amount } if unit_amount.is_sign_negative() => {
                Err(invalid("the unit amount cannot be negative"))
            }
            PriceModel::Standard { .. } => Ok(()),
            PriceModel::Graduated { tiers } | PriceModel::Volume { tiers } => check_tiers(tiers),
            PriceModel::Package {
                package_size,
                package_amount,
            } => {
                if *package_size <= Decimal::ZERO {
                    return Err(invalid("the package size must be positive"));
                }
                if package_amount.is_sign_negative() {
                    return Err(invalid("the package amount cannot be negative"));
                }
                Ok(())
            }
            PriceModel::Percentage {
                percent,
                value_decimals,
            } => {
                if percent.is_sign_negative() || *percent > Decimal::ONE_HUNDRED {
                    return Err(invalid("the percentage must be between 0 and 100"));
                }
                if *value_decimals > 18 {
                    return Err(invalid("value decimals must be at most 18"));
                }
                Ok(())
            }
        }
    }

    /// Prices `quantity` (a subject's usage over one period). A negative quantity (possible
    /// after corrections) prices as zero.
    pub fn rate(&self, quantity: Decimal) -> Result<Rated> {
        let free = self.free_units.min(quantity.max(Decimal::ZERO));
        let billable = (quantity - free).max(Decimal::ZERO);
        let mut lines = Vec::new();
        match &self.model {
            PriceModel::Standard { unit_amount } => {
                lines.push(line(
                    "per unit".into(),
                    billable,
                    *unit_amount,
                    Decimal::ZERO,
                )?);
            }
            PriceModel::Graduated { tiers } => {
                let mut floor = Decimal::ZERO;
                for (at, tier) in tiers.iter().enumerate() {
                    if billable <= floor {
                        break;
                    }
                    let top = tier.up_to.map_or(billable, |up_to| up_to.min(billable));
                    let units = top - floor;
                    lines.push(line(
                        tier_name(at, floor, tier.up_to),
                        units,
                        tier.unit_amount,
                        tier.flat_amount,
                    )?);
                    floor = top;
                }
            }
            PriceModel::Volume { tiers } => {
                if billable > Decimal::ZERO {
                    let at = tiers
                        .iter()
                        .position(|tier| tier.up_to.is_none_or(|up_to| billable <= up_to))
                        .unwrap_or(tiers.len() - 1);
                    let floor = at
                        .checked_sub(1)
                        .and_then(|before| tiers[before].up_to)
                        .unwrap_or(Decimal::ZERO);
                    let tier = &tiers[at];
                    lines.push(line(
                        tier_name(at, floor, tier.up_to),
                        billable,
                        tier.unit_amount,
                        tier.flat_amount,
                    )?);
                }
            }
            PriceModel::Package {
                package_size,
                package_amount,
            } => {
                let packages = (billable / package_size).ceil();
                lines.push(line(
                    format!("packages of {package_size}"),
                    packages,
                    *package_amount,
                    Decimal::ZERO,
                )?);
            }
            PriceModel::Percentage {
                percent,
                value_decimals,
            } => {
                let usd = billable / Decimal::from(10u64.pow(u32::from(*value_decimals)));
                lines.push(line(
                    format!("{percent}% of value"),
                    usd,
                    *percent / Decimal::ONE_HUNDRED,
                    Decimal::ZERO,
                )?);
            }
        }
        let amount = lines
            .iter()
            .try_fold(Decimal::ZERO, |sum, line| sum.checked_add(line.amount))
            .ok_or_else(|| {
                Error::invalid_input("the rated amount is beyond 28 significant digits")
            })?;
        Ok(Rated {
            quantity,
            free_units: free,
            billable,
            lines,
            amount,
            amount_atomic: usd_to_atomic(amount, 6)?,
        })
    }

    /// The list price of a call of `units` to a usage-priced resource, in USD: what those units
    /// cost a payer whose free units are used up ([`Self::marginal`] from the free units on).
    /// `invalid_price` when it is zero (an x402 price must be positive), or for a percentage
    /// model (a call has no value to take a percentage of).
    pub fn call_price(&self, units: Decimal) -> Result<Decimal> {
        if matches!(self.model, PriceModel::Percentage { .. }) {
            return Err(Error::new(
                ErrorCode::InvalidPrice,
                "a percentage price cannot price a call: it needs a value per event",
            ));
        }
        if units <= Decimal::ZERO {
            return Err(Error::new(
                ErrorCode::InvalidPrice,
                "a call's units must be positive",
            ));
        }
        let usd = self.marginal(self.free_units, units)?;
        if usd <= Decimal::ZERO {
            return Err(Error::new(
                ErrorCode::InvalidPrice,
                "the meter's price for one call is zero",
            ));
        }
        Ok(usd)
    }

    /// What `units` more cost a subject that used `prior` in the period: the price of the next
    /// call of a usage-priced resource.
    pub fn marginal(&self, prior: Decimal, units: Decimal) -> Result<Decimal> {
        let before = self.rate(prior)?.amount;
        let after = self.rate(prior + units)?.amount;
        Ok((after - before).max(Decimal::ZERO))
    }
}

fn tier_name(at: usize, floor: Decimal, up_to: Option<Decimal>) -> String {
    match up_to {
        Some(up_to) => format!("tier {} (above {floor} up to {up_to})", at + 1),
        None => format!("tier {} (above {floor})", at + 1),
    }
}

/// `usd` in atomic units of a stablecoin with `decimals`, rounded half up (away from zero);
/// a negative amount is zero.
pub fn usd_to_atomic(usd: Decimal, decimals: u8) -> Result<Amount> {
    let scaled = usd
        .max(Decimal::ZERO)
        .checked_mul(Decimal::from(10u64.pow(u32::from(decimals.min(18)))))
        .ok_or_else(|| Error::invalid_input("the amount is beyond 28 significant digits"))?
        .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let atomic: u128 = scaled
        .mantissa()
        .try_into()
        .map_err(|_| Error::invalid_input("the amount is out of range"))?;
    // `scaled` has scale 0 after rounding, so its mantissa is its value.
    debug_assert_eq!(scaled.scale(), 0);
    Ok(Amount::from_atomic(atomic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    fn tiers() -> Vec<Tier> {
        vec![
            Tier {
                up_to: Some(dec!(100)),
                unit_amount: dec!(0.01),
                flat_amount: Decimal::ZERO,
            },
            Tier {
                up_to: Some(dec!(1000)),
                unit_amount: dec!(0.005),
                flat_amount: dec!(1),
            },
            Tier {
                up_to: None,
                unit_amount: dec!(0.001),
                flat_amount: Decimal::ZERO,
            },
        ]
    }

    fn price(model: PriceModel, free: Decimal) -> MeterPrice {
        let price = MeterPrice {
            model,
            free_units: free,
        };
        price.validate().unwrap();
        price
    }

    #[test]
    fn standard_with_free_units() {
        let p = price(
            PriceModel::Standard {
                unit_amount: dec!(0.000002),
            },
            dec!(1000),
        );
        let rated = p.rate(dec!(1_500_000)).unwrap();
        assert_eq!(rated.free_units, dec!(1000));
        assert_eq!(rated.billable, dec!(1_499_000));
        assert_eq!(rated.amount, dec!(2.998));
        assert_eq!(rated.amount_atomic, Amount::from_atomic(2_998_000));
        assert_eq!(p.rate(dec!(999)).unwrap().amount, Decimal::ZERO);
        assert_eq!(p.rate(dec!(-5)).unwrap().amount, Decimal::ZERO);
    }

    #[test]
    fn graduated_prices_each_tier() {
        let p = price(PriceModel::Graduated { tiers: tiers() }, Decimal::ZERO);
        // 100 × 0.01 + (1 + 900 × 0.005) + 500 × 0.001 = 1 + 5.5 + 0.5
        let rated = p.rate(dec!(1500)).unwrap();
        assert_eq!(rated.lines.len(), 3);
        assert_eq!(rated.amount, dec!(7.0));
        assert_eq!(p.rate(dec!(100)).unwrap().amount, dec!(1.00));
        // The second tier's flat fee comes with its first unit.
        assert_eq!(p.rate(dec!(101)).unwrap().amount, dec!(2.005));
        assert_eq!(p.marginal(dec!(100), dec!(1)).unwrap(), dec!(1.005));
        assert_eq!(p.marginal(dec!(101), dec!(1)).unwrap(), dec!(0.005));
    }

    #[test]
    fn volume_prices_all_units_at_one_tier() {
        let p = price(PriceModel::Volume { tiers: tiers() }, Decimal::ZERO);
        assert_eq!(p.rate(dec!(100)).unwrap().amount, dec!(1.00));
        assert_eq!(p.rate(dec!(500)).unwrap().amount, dec!(3.5));
        assert_eq!(p.rate(dec!(1500)).unwrap().amount, dec!(1.5));
        assert_eq!(p.rate(Decimal::ZERO).unwrap().lines, vec![]);
    }

    #[test]
    fn package_and_percentage() {
        let p = price(
            PriceModel::Package {
                package_size: dec!(1000),
                package_amount: dec!(0.5),
            },
            dec!(10),
        );
        assert_eq!(p.rate(dec!(10)).unwrap().amount, Decimal::ZERO);
        assert_eq!(p.rate(dec!(11)).unwrap().amount, dec!(0.5));
        assert_eq!(p.rate(dec!(2010)).unwrap().amount, dec!(1.0));
        assert_eq!(p.rate(dec!(2011)).unwrap().amount, dec!(1.5));

        // 2.5% of 1,234.567891 USD given in 6-decimal atomic units.
        let p = price(
            PriceModel::Percentage {
                percent: dec!(2.5),
                value_decimals: 6,
            },
            Decimal::ZERO,
        );
        let rated = p.rate(dec!(1234567891)).unwrap();
        assert_eq!(rated.amount, dec!(30.864197275));
        assert_eq!(rated.amount_atomic, Amount::from_atomic(30_864_197));
    }

    #[test]
    fn rounds_half_up_once() {
        let p = price(
            PriceModel::Standard {
                unit_amount: dec!(0.0000005),
            },
            Decimal::ZERO,
        );
        assert_eq!(
            p.rate(dec!(1)).unwrap().amount_atomic,
            Amount::from_atomic(1)
        );
        assert_eq!(
            p.rate(dec!(3)).unwrap().amount_atomic,
            Amount::from_atomic(2)
        );
        assert_eq!(
            p.rate(dec!(2)).unwrap().amount_atomic,
            Amount::from_atomic(1)
        );
    }

    #[test]
    fn prices_a_call_after_the_free_units() {
        let p = price(PriceModel::Graduated { tiers: tiers() }, dec!(50));
        // 50 free, then 10 units of the first tier.
        assert_eq!(p.call_price(dec!(10)).unwrap(), dec!(0.10));
        // 110 units: 100 at the first tier, then the second tier's flat fee and 10 units.
        assert_eq!(p.call_price(dec!(110)).unwrap(), dec!(2.05));
        let atomic = usd_to_atomic(p.call_price(dec!(10)).unwrap(), 6).unwrap();
        assert_eq!(atomic, Amount::from_atomic(100_000));
        assert_eq!(
            p.call_price(Decimal::ZERO).unwrap_err().code(),
            ErrorCode::InvalidPrice
        );
        let free = price(
            PriceModel::Standard {
                unit_amount: Decimal::ZERO,
            },
            Decimal::ZERO,
        );
        assert_eq!(
            free.call_price(dec!(1)).unwrap_err().code(),
            ErrorCode::InvalidPrice
        );
        let percent = price(
            PriceModel::Percentage {
                percent: dec!(1),
                value_decimals: 0,
            },
            Decimal::ZERO,
        );
        assert!(percent.call_price(dec!(1)).is_err());
    }

    #[test]
    fn refuses_bad_prices() {
        let bad = [
            PriceModel::Standard {
                unit_amount: dec!(-1),
            },
            PriceModel::Graduated { tiers: vec![] },
            PriceModel::Graduated {
                tiers: vec![Tier {
                    up_to: Some(dec!(5)),
                    unit_amount: dec!(1),
                    flat_amount: Decimal::ZERO,
                }],
            },
            PriceModel::Volume {
                tiers: vec![
                    Tier {
                        up_to: Some(dec!(5)),
                        unit_amount: dec!(1),
                        flat_amount: Decimal::ZERO,
                    },
                    Tier {
                        up_to: Some(dec!(5)),
                        unit_amount: dec!(1),
                        flat_amount: Decimal::ZERO,
                    },
                    Tier {
                        up_to: None,
                        unit_amount: dec!(1),
                        flat_amount: Decimal::ZERO,
                    },
                ],
            },
            PriceModel::Package {
                package_size: Decimal::ZERO,
                package_amount: dec!(1),
            },
            PriceModel::Percentage {
                percent: dec!(101),
                value_decimals: 0,
            },
        ];
        for model in bad {
            let price = MeterPrice {
                model: model.clone(),
                free_units: Decimal::ZERO,
            };
            assert_eq!(
                price.validate().unwrap_err().code(),
                ErrorCode::InvalidPriceModel,
                "{model:?}"
            );
        }
        let negative_free = MeterPrice {
            model: PriceModel::Standard {
                unit_amount: dec!(1),
            },
            free_units: dec!(-1),
        };
        assert!(negative_free.validate().is_err());
    }

    #[test]
    fn reads_json() {
        let price: MeterPrice = serde_json::from_value(serde_json::json!({
            "model": "graduated",
            "freeUnits": "100",
            "tiers": [{"upTo": "1000", "unitAmount": "0.01"}, {"unitAmount": "0.005", "flatAmount": "2"}]
        }))
        .unwrap();
        price.validate().unwrap();
        assert_eq!(price.free_units, dec!(100));
        assert_eq!(price.rate(dec!(1200)).unwrap().amount, dec!(12.5));
    }
}
